"""Pre-authentication mechanisms as a table (Heimdal ``pat[]`` style).

Each row names a padata type, whether it can verify client padata, what it advertises in the
METHOD-DATA of PREAUTH_REQUIRED/PREAUTH_FAILED, and ``uses_long_term_key``: verifying it costs an
operation under the client's long-term key, i.e. an MPC evaluation. Those are the requests a
front-end must rate-limit, because anyone can send them without knowing a password.

Rows, in advertisement order (MIT ``get_preauth_hint_list`` order, minus FAST, which the first
version does not offer):

- PA-ETYPE-INFO2 (19): hint only; tells the client the etype and salt of its key
  (RFC 4120 §5.2.7.5).
- PA-ENC-TIMESTAMP (2): the encrypted timestamp (RFC 4120 §5.2.7.2), decrypted by the key
  service under the client's key with key usage 1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kdc.keyservice.base import KeyInfo, KeyService, PrincipalEntry
from kdc.messages import constants as C
from kdc.messages import encode_etype_info2
from kdc.messages.model import EtypeInfo2Entry, PAData
from kdc.preauth import enc_timestamp

# verify(keys, client, padata_value, now, clockskew) -> None on success, raises KdcError
Verifier = Callable[[KeyService, PrincipalEntry, bytes, float, int], Awaitable[None]]
# hint(client, reply_key) -> PAData to advertise, or None
Hinter = Callable[[PrincipalEntry, KeyInfo | None], PAData | None]


@dataclass(frozen=True, slots=True)
class PreauthMechanism:
    padata_type: int
    name: str  # as MIT logs it: "preauth (encrypted_timestamp) verify failure: ..."
    uses_long_term_key: bool
    verify: Verifier | None = None
    hint: Hinter | None = None


def etype_info2_entry(key: KeyInfo) -> EtypeInfo2Entry:
    """The ETYPE-INFO2-ENTRY for one of the client's keys (salt as sent by MIT: the raw bytes)."""
    try:
        salt = key.salt.decode("utf-8")
    except UnicodeDecodeError:
        salt = key.salt.decode("latin-1")
    return EtypeInfo2Entry(etype=key.etype, salt=salt, s2kparams=key.s2kparams)


def etype_info2_padata(key: KeyInfo) -> PAData:
    """PA-ETYPE-INFO2 with the one entry for ``key`` (MIT sends only the chosen key's)."""
    return PAData(C.PA_ETYPE_INFO2, encode_etype_info2([etype_info2_entry(key)]))


def _etype_info2_hint(client: PrincipalEntry, reply_key: KeyInfo | None) -> PAData | None:
    return None if reply_key is None else etype_info2_padata(reply_key)


def _enc_timestamp_hint(client: PrincipalEntry, reply_key: KeyInfo | None) -> PAData | None:
    return PAData(C.PA_ENC_TIMESTAMP, b"")


MECHANISMS: tuple[PreauthMechanism, ...] = (
    PreauthMechanism(
        padata_type=C.PA_ETYPE_INFO2,
        name="etype-info2",
        uses_long_term_key=False,
        hint=_etype_info2_hint,
    ),
    PreauthMechanism(
        padata_type=C.PA_ENC_TIMESTAMP,
        name="encrypted_timestamp",
        uses_long_term_key=True,
        verify=enc_timestamp.verify,
        hint=_enc_timestamp_hint,
    ),
)

BY_TYPE: dict[int, PreauthMechanism] = {m.padata_type: m for m in MECHANISMS}


def verifiable(padata: tuple[PAData, ...]) -> list[tuple[PreauthMechanism, PAData]]:
    """The request's padata that some mechanism can verify, in the client's order."""
    out = []
    for pa in padata:
        mech = BY_TYPE.get(pa.padata_type)
        if mech is not None and mech.verify is not None:
            out.append((mech, pa))
    return out


def hint_list(client: PrincipalEntry, reply_key: KeyInfo | None) -> list[PAData]:
    """METHOD-DATA entries for PREAUTH_REQUIRED/PREAUTH_FAILED (MIT get_preauth_hint_list)."""
    out = []
    for mech in MECHANISMS:
        if mech.hint is not None:
            pa = mech.hint(client, reply_key)
            if pa is not None:
                out.append(pa)
    return out


def costs_long_term_key(padata: tuple[PAData, ...]) -> bool:
    """True when verifying this request's padata needs an operation under a long-term key."""
    return any(m.uses_long_term_key for m, _ in verifiable(padata))
