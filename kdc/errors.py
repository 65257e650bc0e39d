"""KRB-ERROR replies as MIT krb5kdc 1.20 builds them.

Every failure inside an exchange raises :class:`KdcError` carrying the RFC 4120 §7.5.9 code and
MIT's status string; the core turns it into a KRB-ERROR here. Like MIT ``prepare_error_as`` /
``prepare_error_tgs``, the e-text is the status ("NEEDED_PREAUTH", "CLIENT_NOT_FOUND", ...), ctime
and cusec are left out, stime/susec are the KDC's clock (the client corrects its skew from them,
RFC 4120 §5.9.1), the server name is the requested one and the client name is the requested
client (AS) or the TGT's client (TGS).
"""

from __future__ import annotations

from collections.abc import Sequence

from kdc.messages import constants as C
from kdc.messages import encode, encode_etype_info2, encode_method_data
from kdc.messages.model import EtypeInfo2Entry, KrbError, PAData, PrincipalName


class KdcError(Exception):
    """A protocol failure with its KRB-ERROR code, MIT status and optional METHOD-DATA e-data.

    Messages carry names and codes only, never key bytes.
    """

    def __init__(self, code: int, status: str, *, e_data: bytes | None = None) -> None:
        super().__init__(f"{status} ({code})")
        self.code = code
        self.status = status
        self.e_data = e_data


def split_time(now: float) -> tuple[int, int]:
    """KerberosTime seconds and microseconds of ``now``."""
    seconds = int(now)
    usec = int(round((now - seconds) * 1_000_000))
    if usec >= 1_000_000:
        seconds, usec = seconds + 1, usec - 1_000_000
    return seconds, max(usec, 0)


def tgs_principal(realm: str) -> PrincipalName:
    """krbtgt/REALM, the server name MIT puts in errors about requests it cannot read."""
    return PrincipalName(C.NT_SRV_INST, ("krbtgt", realm))


def build_error(
    code: int,
    now: float,
    *,
    realm: str,
    sname: PrincipalName | None = None,
    crealm: str | None = None,
    cname: PrincipalName | None = None,
    e_text: str | None = None,
    e_data: bytes | None = None,
) -> KrbError:
    stime, susec = split_time(now)
    return KrbError(
        ctime=None,
        cusec=None,
        stime=stime,
        susec=susec,
        error_code=code,
        crealm=crealm if cname is not None else None,
        cname=cname,
        realm=realm,
        sname=sname if sname is not None else tgs_principal(realm),
        e_text=e_text,
        e_data=e_data,
    )


def encode_error(*args, **kwargs) -> bytes:
    """DER of :func:`build_error`'s KRB-ERROR."""
    return encode(build_error(*args, **kwargs))


def etype_info2_padata(entries: Sequence[EtypeInfo2Entry]) -> PAData:
    """PA-ETYPE-INFO2 (RFC 4120 §5.2.7.5): the salt and etype the client derives its key with."""
    return PAData(C.PA_ETYPE_INFO2, encode_etype_info2(list(entries)))


def method_data(padata: Sequence[PAData]) -> bytes:
    """METHOD-DATA e-data (RFC 4120 §5.9.1, §7.5.2) for PREAUTH_REQUIRED / PREAUTH_FAILED."""
    return encode_method_data(list(padata))


def too_big_error(now: float, realm: str) -> bytes:
    """KRB_ERR_RESPONSE_TOO_BIG (RFC 4120 §7.2.1), shaped as MIT ``make_too_big_error``:
    server krbtgt/REALM, no client, no e-text, no e-data."""
    return encode_error(C.KRB_ERR_RESPONSE_TOO_BIG, now, realm=realm)
