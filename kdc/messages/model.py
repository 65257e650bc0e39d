"""RFC 4120 §5 messages as plain Python objects.

The KDC core and the client work on these objects only; the codecs in this package turn them
into DER and back (a fast hand-written codec on the hot path, pyasn1 as the reference that the
fast one is tested against). Field names follow the ASN.1 with ``-`` turned into ``_``.

Conventions:
- KerberosTime is an ``int`` of POSIX seconds (UTC); microseconds travel in separate fields as
  the RFC has them (``cusec``, ``pausec``, ``susec``).
- KerberosFlags (kdc-options, ticket flags, ap-options) are ``int`` values of the 32-bit string
  read big-endian: RFC bit 0 is ``1 << 31`` (see ``kdc.messages.constants.flag``).
- OPTIONAL fields are ``None`` when absent; SEQUENCE OF fields are tuples.
- Objects that hold key bytes never show them in ``repr``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, dataclass_transform


def _fast_init(cls: type) -> type:
    """Give a frozen, slotted dataclass an ``__init__`` that stores through the slot
    descriptors.

    The generated frozen ``__init__`` calls ``object.__setattr__`` once per field, which looks
    up the attribute by name each time; the KDC builds a few dozen of these objects for every
    request, so the constructor shows in profiles. Storing through each slot's descriptor
    bypasses the frozen ``__setattr__`` the same way and is about twice as fast. Signature,
    defaults, immutability, equality and hashing are the dataclass's own.
    """
    params = []
    body = []
    namespace: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:  # not used by the model
            raise TypeError("default_factory is not supported by _fast_init")
        else:
            params.append(f.name)
        body.append(f"    _set_{f.name}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        raise TypeError("__post_init__ is not supported by _fast_init")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["    pass"])
    exec(source, namespace)  # noqa: S102 - source built from the class's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    setattr(cls, "__init__", init)  # noqa: B010 - mypy refuses a direct __init__ store
    return cls


@dataclass_transform()  # type checkers (and mypyc, codec.py) see the model as dataclasses
def dataclass(cls: type | None = None, /, **options):
    """``dataclasses.dataclass`` with the model's fast ``__init__`` for frozen slotted classes."""

    def wrap(c: type) -> type:
        made: type = dataclasses.dataclass(**options)(c)
        if options.get("frozen") and options.get("slots"):
            made = _fast_init(made)
        return made

    return wrap if cls is None else wrap(cls)


@dataclass(frozen=True, slots=True)
class PrincipalName:
    name_type: int
    components: tuple[str, ...]

    def __str__(self) -> str:
        return "/".join(c.replace("/", "\\/").replace("@", "\\@") for c in self.components)


@dataclass(frozen=True, slots=True)
class EncryptedData:
    etype: int
    kvno: int | None
    cipher: bytes


@dataclass(frozen=True, slots=True)
class EncryptionKey:
    keytype: int
    keyvalue: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Checksum:
    cksumtype: int
    checksum: bytes


@dataclass(frozen=True, slots=True)
class PAData:
    padata_type: int
    padata_value: bytes


@dataclass(frozen=True, slots=True)
class HostAddress:
    addr_type: int
    address: bytes


@dataclass(frozen=True, slots=True)
class AuthorizationDataEntry:
    ad_type: int
    ad_data: bytes


@dataclass(frozen=True, slots=True)
class TransitedEncoding:
    tr_type: int
    contents: bytes


@dataclass(frozen=True, slots=True)
class Ticket:
    """Ticket ::= [APPLICATION 1]; tkt-vno is always 5."""

    realm: str
    sname: PrincipalName
    enc_part: EncryptedData


@dataclass(frozen=True, slots=True)
class EncTicketPart:
    """EncTicketPart ::= [APPLICATION 3]."""

    flags: int
    key: EncryptionKey
    crealm: str
    cname: PrincipalName
    transited: TransitedEncoding
    authtime: int
    starttime: int | None
    endtime: int
    renew_till: int | None
    caddr: tuple[HostAddress, ...] | None = None
    authorization_data: tuple[AuthorizationDataEntry, ...] | None = None


@dataclass(frozen=True, slots=True)
class KdcReqBody:
    kdc_options: int
    cname: PrincipalName | None
    realm: str
    sname: PrincipalName | None
    from_: int | None
    till: int | None  # required by RFC 4120; None only for a malformed request we still answer
    rtime: int | None
    nonce: int
    etype: tuple[int, ...]
    addresses: tuple[HostAddress, ...] | None = None
    enc_authorization_data: EncryptedData | None = None
    additional_tickets: tuple[Ticket, ...] | None = None


@dataclass(frozen=True, slots=True)
class KdcReq:
    """AS-REQ [APPLICATION 10] (msg_type 10) or TGS-REQ [APPLICATION 12] (msg_type 12).

    ``req_body_bytes`` is the DER of req-body exactly as received (the TGS-REQ authenticator's
    checksum covers these bytes, RFC 4120 §7.2.2 / §5.5.1); encoders ignore it and encode
    ``req_body``; decoders fill it.
    """

    msg_type: int
    padata: tuple[PAData, ...]
    req_body: KdcReqBody
    req_body_bytes: bytes = b""

    def find_padata(self, padata_type: int) -> PAData | None:
        for pa in self.padata:
            if pa.padata_type == padata_type:
                return pa
        return None


@dataclass(frozen=True, slots=True)
class KdcRep:
    """AS-REP [APPLICATION 11] (msg_type 11) or TGS-REP [APPLICATION 13] (msg_type 13)."""

    msg_type: int
    padata: tuple[PAData, ...] | None
    crealm: str
    cname: PrincipalName
    ticket: Ticket
    enc_part: EncryptedData


@dataclass(frozen=True, slots=True)
class LastReqEntry:
    lr_type: int
    lr_value: int


@dataclass(frozen=True, slots=True)
class EncKdcRepPart:
    """EncASRepPart [APPLICATION 25] / EncTGSRepPart [APPLICATION 26].

    ``tag`` is the application tag to encode with, or the one that was decoded; decoders accept
    both for either reply (RFC 4120 §5.4.2: MIT sends 26 in AS-REPs too).
    """

    key: EncryptionKey
    last_req: tuple[LastReqEntry, ...]
    nonce: int
    key_expiration: int | None
    flags: int
    authtime: int
    starttime: int | None
    endtime: int
    renew_till: int | None
    srealm: str
    sname: PrincipalName
    caddr: tuple[HostAddress, ...] | None = None
    encrypted_pa_data: tuple[PAData, ...] | None = None
    tag: int = 25


@dataclass(frozen=True, slots=True)
class ApReq:
    """AP-REQ [APPLICATION 14]."""

    ap_options: int
    ticket: Ticket
    authenticator: EncryptedData


@dataclass(frozen=True, slots=True)
class Authenticator:
    """Authenticator [APPLICATION 2]; authenticator-vno is always 5."""

    crealm: str
    cname: PrincipalName
    cksum: Checksum | None
    cusec: int
    ctime: int
    subkey: EncryptionKey | None = None
    seq_number: int | None = None
    authorization_data: tuple[AuthorizationDataEntry, ...] | None = None


@dataclass(frozen=True, slots=True)
class ApRep:
    """AP-REP [APPLICATION 15]."""

    enc_part: EncryptedData


@dataclass(frozen=True, slots=True)
class EncApRepPart:
    """EncAPRepPart [APPLICATION 27]."""

    ctime: int
    cusec: int
    subkey: EncryptionKey | None = None
    seq_number: int | None = None


@dataclass(frozen=True, slots=True)
class KrbError:
    """KRB-ERROR [APPLICATION 30]."""

    ctime: int | None
    cusec: int | None
    stime: int
    susec: int
    error_code: int
    crealm: str | None
    cname: PrincipalName | None
    realm: str
    sname: PrincipalName
    e_text: str | None = None
    e_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class PaEncTsEnc:
    patimestamp: int
    pausec: int | None


@dataclass(frozen=True, slots=True)
class EtypeInfo2Entry:
    etype: int
    salt: str | None
    s2kparams: bytes | None = None
