"""PA-ENC-TIMESTAMP (RFC 4120 §5.2.7.2): the client proves its key by encrypting the time.

The padata value is an EncryptedData of PA-ENC-TS-ENC under the client's long-term key, key
usage 1. Decryption (and its integrity check) happens in the key service, which for the MPC
backend means inside MPC: the front-end learns only accept/reject and, on accept, the timestamp.

Outcomes (as MIT ``kdc_preauth_encts.c`` and ``check_padata`` map them):
- undecodable padata, no key of that etype, or a failed integrity check:
  KDC_ERR_PREAUTH_FAILED (24), which the caller answers with the hint list as e-data;
- a timestamp farther than the clock skew from the KDC's time: KRB_AP_ERR_SKEW (37), no e-data.
"""

from __future__ import annotations

from kdc.errors import KdcError
from kdc.keyservice.base import IntegrityFailure, KeyRef, KeyService, PrincipalEntry, UnknownKey
from kdc.messages import DecodeError, decode
from kdc.messages import constants as C
from kdc.messages.model import EncryptedData, PaEncTsEnc

STATUS_FAILED = "PREAUTH_FAILED"


async def verify(
    keys: KeyService, client: PrincipalEntry, padata_value: bytes, now: float, clockskew: int
) -> None:
    """Accept the encrypted timestamp or raise KdcError (24 or 37)."""
    try:
        enc = decode(EncryptedData, padata_value)
    except DecodeError:
        raise KdcError(C.KDC_ERR_PREAUTH_FAILED, STATUS_FAILED) from None
    key = next((k for k in client.keys if k.etype == enc.etype), None)
    if key is None:
        # MIT: no client key of the timestamp's enctype -> PREAUTH_FAILED with hints, so the
        # client retries with the etype from PA-ETYPE-INFO2.
        raise KdcError(C.KDC_ERR_PREAUTH_FAILED, STATUS_FAILED)
    ref = KeyRef(client.name, key.kvno, key.etype)
    try:
        plain = await keys.decrypt(ref, C.KU_PA_ENC_TIMESTAMP, enc.cipher)
    except (IntegrityFailure, UnknownKey):
        raise KdcError(C.KDC_ERR_PREAUTH_FAILED, STATUS_FAILED) from None
    try:
        ts = decode(PaEncTsEnc, plain)
    except DecodeError:
        raise KdcError(C.KDC_ERR_PREAUTH_FAILED, STATUS_FAILED) from None
    # RFC 4120 §5.2.7.2: reject a timestamp outside the acceptable clock skew (the client
    # then retries with its offset corrected from the error's stime, §5.9.1).
    if abs(ts.patimestamp - int(now)) > clockskew:
        raise KdcError(C.KRB_AP_ERR_SKEW, STATUS_FAILED)
