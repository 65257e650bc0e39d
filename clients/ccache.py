"""MIT FILE credential caches, format version 4 (0x0504), read and write.

File layout (integers big-endian; MIT ``src/lib/krb5/ccache/cc_file.c`` and MIT's
"Credential cache file format" document):

    uint16  0x0504
    uint16  header length, then header tags: uint16 tag, uint16 length, value
            (tag 1 = DeltaTime: int32 seconds, int32 microseconds of KDC clock offset)
    principal   default principal
    credentials, until end of file:
        principal client, principal server
        keyblock:   uint16 enctype, uint32 length + key
        uint32 authtime, starttime, endtime, renew_till
        uint8  is_skey
        uint32 ticket flags (RFC bit 0 is the top bit, as in the message model)
        uint32 address count,  each: uint16 addrtype, uint32 length + address
        uint32 authdata count, each: uint16 ad_type,  uint32 length + data
        uint32 length + ticket (DER), uint32 length + second ticket

    principal:  uint32 name type, uint32 component count, uint32 length + realm,
                (uint32 length + component) per component

Entries whose server realm is ``X-CACHECONF:`` are MIT configuration entries (``pa_type``,
``fast_avail``, ...); they are kept as credentials with ``is_config`` true.
Files are written in place with mode 0600 under a POSIX lock, like MIT's.
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass, field, replace

from clients.binreader import BinaryReader, rewrite_private_file
from kdc.crypto import Key
from kdc.messages.model import AuthorizationDataEntry, HostAddress, PrincipalName
from kdc.principal import PrincipalParseError, parse_principal, unparse_principal

CCACHE_VERSION = 0x0504
TAG_DELTATIME = 1
CONFIG_REALM = "X-CACHECONF:"
CONFIG_FIRST_COMPONENT = "krb5_ccache_conf_data"
#: MIT's kinit writes a DeltaTime tag with a zero offset.
DEFAULT_HEADER_TAGS: tuple[tuple[int, bytes], ...] = ((TAG_DELTATIME, bytes(8)),)


class CcacheError(ValueError):
    """A credential cache file is malformed, missing or of an unsupported kind."""


def _principal_text(name: PrincipalName, realm: str) -> str:
    return unparse_principal(name, realm)


@dataclass(frozen=True)
class Credential:
    """One cached ticket with its session key.

    ``client``/``server`` are canonical principal texts; ``client_name``/``server_name`` keep the
    exact name type and components as stored (filled by the reader, derived from the text
    when None). Times are POSIX seconds; 0 means absent (MIT's convention in the file).
    """

    client: str
    server: str
    key: Key = field(repr=False)
    authtime: int
    starttime: int
    endtime: int
    renew_till: int
    flags: int
    ticket: bytes = field(repr=False)
    second_ticket: bytes = field(default=b"", repr=False)
    is_skey: bool = False
    addresses: tuple[HostAddress, ...] = ()
    authdata: tuple[AuthorizationDataEntry, ...] = ()
    client_name: PrincipalName | None = None
    server_name: PrincipalName | None = None

    def __repr__(self) -> str:
        return (
            f"Credential(client={self.client!r}, server={self.server!r}, "
            f"etype={self.key.etype}, authtime={self.authtime}, starttime={self.starttime}, "
            f"endtime={self.endtime}, renew_till={self.renew_till}, flags=0x{self.flags:08x}, "
            f"<key redacted>)"
        )

    @property
    def is_config(self) -> bool:
        return self._server_name_realm()[1] == CONFIG_REALM

    def _server_name_realm(self) -> tuple[PrincipalName, str]:
        return _name_realm(self.server, self.server_name)

    def _client_name_realm(self) -> tuple[PrincipalName, str]:
        return _name_realm(self.client, self.client_name)


def _name_realm(text: str, name: PrincipalName | None) -> tuple[PrincipalName, str]:
    try:
        parsed, realm = parse_principal(text, "")
    except PrincipalParseError:
        if name is not None and text.endswith("@") and not text.endswith("\\@"):
            return name, ""  # a principal stored with an empty realm unparses as "name@"
        raise CcacheError(f"malformed principal name {text!r}") from None
    return (name if name is not None else parsed), realm


@dataclass(frozen=True)
class Ccache:
    """A whole cache: the default principal and its credentials, in file order."""

    default_principal: str
    credentials: list[Credential] = field(default_factory=list)
    header_tags: tuple[tuple[int, bytes], ...] = DEFAULT_HEADER_TAGS
    default_name: PrincipalName | None = None

    def tickets(self) -> list[Credential]:
        """Credentials without MIT config entries."""
        return [c for c in self.credentials if not c.is_config]

    def find(self, server: str) -> Credential | None:
        """The last-stored (newest) non-config credential for ``server``."""
        found = None
        for c in self.credentials:
            if not c.is_config and c.server == server:
                found = c
        return found

    def with_credential(self, cred: Credential) -> Ccache:
        """A copy with ``cred`` added, replacing older credentials for the same client/server."""
        kept = [
            c for c in self.credentials if not (c.server == cred.server and c.client == cred.client)
        ]
        return replace(self, credentials=[*kept, cred])


def ccache_path(name: str) -> str:
    """Path of a ``FILE:`` cache name (a bare path is FILE too); other types are refused."""
    if name.startswith("FILE:"):
        return name[5:]
    kind, sep, _ = name.partition(":")
    if sep and not name.startswith("/") and kind.isupper():
        raise CcacheError(f"Unsupported credentials cache type {kind} (only FILE is supported)")
    return name


class _Reader(BinaryReader):
    def __init__(self, data: bytes, where: str) -> None:
        super().__init__(data, where, CcacheError, "credentials cache")

    def data32(self) -> bytes:
        return self.take(self.u32())

    def text32(self) -> str:
        raw = self.data32()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CcacheError(f"{self.where}: principal name is not UTF-8") from None

    def principal(self) -> tuple[PrincipalName, str]:
        name_type = self.u32()
        count = self.u32()
        if count > 64:
            raise CcacheError(f"{self.where}: implausible principal with {count} components")
        realm = self.text32()
        components = tuple(self.text32() for _ in range(count))
        return PrincipalName(name_type, components), realm


def parse_ccache(data: bytes, where: str = "ccache") -> Ccache:
    r = _Reader(data, where)
    if len(data) < 2:
        raise CcacheError(f"{where}: Bad format in credentials cache")
    version = r.u16()
    if version != CCACHE_VERSION:
        raise CcacheError(
            f"Unsupported credentials cache format version number (filename: {where})"
        )
    header = _Reader(r.take(r.u16()), where)
    tags = []
    while not header.at_end():
        tag = header.u16()
        tags.append((tag, header.take(header.u16())))
    default_name, default_realm = r.principal()
    creds = []
    while not r.at_end():
        creds.append(_read_credential(r))
    return Ccache(
        _principal_text(default_name, default_realm), creds, tuple(tags), default_name
    )


def _read_credential(r: _Reader) -> Credential:
    cname, crealm = r.principal()
    sname, srealm = r.principal()
    etype = r.u16()
    key_bytes = r.data32()
    try:
        key = Key(etype, key_bytes)
    except ValueError:
        raise CcacheError(f"{r.where}: session key of wrong length for its enctype") from None
    authtime, starttime, endtime, renew_till = struct.unpack(">IIII", r.take(16))
    is_skey = bool(r.u8())
    flags = r.u32()
    addresses = []
    for _ in range(r.u32()):
        addr_type = r.u16()
        addresses.append(HostAddress(addr_type, r.data32()))
    authdata = []
    for _ in range(r.u32()):
        ad_type = r.u16()
        authdata.append(AuthorizationDataEntry(ad_type, r.data32()))
    ticket = r.data32()
    second_ticket = r.data32()
    return Credential(
        client=_principal_text(cname, crealm),
        server=_principal_text(sname, srealm),
        key=key,
        authtime=authtime,
        starttime=starttime,
        endtime=endtime,
        renew_till=renew_till,
        flags=flags,
        ticket=ticket,
        second_ticket=second_ticket,
        is_skey=is_skey,
        addresses=tuple(addresses),
        authdata=tuple(authdata),
        client_name=cname,
        server_name=sname,
    )


def read_ccache(path: str) -> Ccache:
    """Read a FILE ccache (``FILE:`` prefix accepted)."""
    real = ccache_path(path)
    try:
        with open(real, "rb") as f:
            fcntl.lockf(f, fcntl.LOCK_SH)  # a writer holds LOCK_EX while it rewrites
            data = f.read()
    except FileNotFoundError:
        raise CcacheError(f"No credentials cache found (filename: {real})") from None
    except OSError as exc:
        raise CcacheError(f"cannot read credentials cache {real}: {exc.strerror}") from None
    return parse_ccache(data, real)


def _data32(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def _encode_principal(name: PrincipalName, realm: str) -> bytes:
    out = bytearray(struct.pack(">II", name.name_type, len(name.components)))
    out += _data32(realm.encode("utf-8"))
    for component in name.components:
        out += _data32(component.encode("utf-8"))
    return bytes(out)


def _encode_credential(c: Credential) -> bytes:
    out = bytearray(_encode_principal(*c._client_name_realm()))
    out += _encode_principal(*c._server_name_realm())
    out += struct.pack(">H", c.key.etype) + _data32(c.key.contents)
    out += struct.pack(
        ">IIIIBI",
        c.authtime & 0xFFFFFFFF,
        c.starttime & 0xFFFFFFFF,
        c.endtime & 0xFFFFFFFF,
        c.renew_till & 0xFFFFFFFF,
        1 if c.is_skey else 0,
        c.flags & 0xFFFFFFFF,
    )
    out += struct.pack(">I", len(c.addresses))
    for a in c.addresses:
        out += struct.pack(">H", a.addr_type) + _data32(a.address)
    out += struct.pack(">I", len(c.authdata))
    for ad in c.authdata:
        out += struct.pack(">H", ad.ad_type) + _data32(ad.ad_data)
    out += _data32(c.ticket) + _data32(c.second_ticket)
    return bytes(out)


def serialize_ccache(cc: Ccache) -> bytes:
    header = b"".join(struct.pack(">HH", tag, len(v)) + v for tag, v in cc.header_tags)
    name, realm = _name_realm(cc.default_principal, cc.default_name)
    out = bytearray(struct.pack(">HH", CCACHE_VERSION, len(header)) + header)
    out += _encode_principal(name, realm)
    for c in cc.credentials:
        out += _encode_credential(c)
    return bytes(out)


def write_ccache(path: str, cc: Ccache) -> None:
    """Write ``cc`` to a FILE ccache with mode 0600.

    Written in place under a POSIX write lock (as MIT's cc_file.c locks with fcntl), never
    through a temporary copy: no stray file with session keys is left behind.
    """
    real = ccache_path(path)
    data = serialize_ccache(cc)
    try:
        rewrite_private_file(real, data)
    except OSError as exc:
        raise CcacheError(f"cannot write credentials cache {real}: {exc.strerror}") from None


def default_ccache_name(environ: dict | None = None, config_default: str | None = None) -> str:
    """``$KRB5CCNAME``, else krb5.conf's default_ccache_name, else MIT's FILE:/tmp/krb5cc_%{uid}."""
    env = os.environ if environ is None else environ
    name = env.get("KRB5CCNAME") or config_default or "FILE:/tmp/krb5cc_%{uid}"
    return name.replace("%{uid}", str(os.getuid())).replace("%{euid}", str(os.geteuid()))
