"""MIT keytab files, format version 0x0502 (read and write).

File layout (all integers big-endian; MIT ``src/lib/krb5/keytab/kt_file.c``, documented in
MIT's "Keytab file format"):

    uint16   0x0502                                  file format version
    then records, each:
    int32    size                                    bytes that follow; < 0 marks a hole
                                                     (a deleted entry) of -size bytes
    uint16   number of components (realm not counted in v0x502)
    uint16 + bytes   realm
    (uint16 + bytes) per component
    uint32   name type                               (v0x502 only)
    uint32   timestamp                               (POSIX seconds)
    uint8    kvno mod 256
    uint16   enctype
    uint16 + bytes   key contents
    uint32   kvno                                    (optional; when present and non-zero it
                                                     overrides the 8-bit kvno)

Files are created with mode 0600: they hold long-term keys.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from clients.binreader import BinaryReader, rewrite_private_file
from kdc.crypto import Key
from kdc.messages.model import PrincipalName
from kdc.principal import PrincipalParseError, parse_principal, unparse_principal

KEYTAB_VERSION = 0x0502


class KeytabError(ValueError):
    """A keytab file is malformed or cannot be used; the message names the file, never a key."""


@dataclass(frozen=True)
class KeytabEntry:
    """One key of one principal. ``principal`` is the canonical text ("HTTP/h@REALM").

    ``name_type`` None means "what parse_principal gives" (NT_PRINCIPAL, NT_SRV_INST for krbtgt).
    """

    principal: str
    kvno: int
    key: Key = field(repr=False)
    timestamp: int = 0
    name_type: int | None = None

    def __repr__(self) -> str:
        return (
            f"KeytabEntry(principal={self.principal!r}, kvno={self.kvno}, "
            f"etype={self.key.etype}, timestamp={self.timestamp}, <key redacted>)"
        )

    @property
    def etype(self) -> int:
        return self.key.etype


def keytab_path(name: str) -> str:
    """Strip MIT's ``FILE:``/``WRFILE:`` prefix; other keytab types are not supported."""
    if name.startswith("FILE:"):
        return name[5:]
    if name.startswith("WRFILE:"):
        return name[7:]
    if ":" in name and not name.startswith("/") and name.split(":", 1)[0].isupper():
        raise KeytabError(f"Unsupported key table type {name.split(':', 1)[0]}")
    return name


class _Reader(BinaryReader):
    def __init__(self, data: bytes, where: str) -> None:
        super().__init__(data, where, KeytabError, "keytab entry")

    def counted(self) -> bytes:
        return self.take(self.u16())


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KeytabError(f"{where}: principal name is not UTF-8") from None


def parse_keytab(data: bytes, where: str = "keytab") -> list[KeytabEntry]:
    """Entries of a keytab image (holes skipped)."""
    if len(data) < 2:
        raise KeytabError(f"{where}: Bad format in keytab (too short)")
    version = struct.unpack(">H", data[:2])[0]
    if version != KEYTAB_VERSION:
        raise KeytabError(f"Unsupported key table format version number (0x{version:04x})")
    entries: list[KeytabEntry] = []
    pos = 2
    while pos < len(data):
        if pos + 4 > len(data):
            raise KeytabError(f"{where}: truncated record length at offset {pos}")
        (size,) = struct.unpack(">i", data[pos : pos + 4])
        pos += 4
        if size == 0:  # MIT stops at a zero length (end of used space)
            break
        if size < 0:  # a hole left by a deleted entry
            pos += -size
            continue
        if pos + size > len(data):
            raise KeytabError(f"{where}: truncated keytab entry at offset {pos - 4}")
        entries.append(_parse_record(data[pos : pos + size], f"{where} offset {pos - 4}"))
        pos += size
    return entries


def _parse_record(record: bytes, where: str) -> KeytabEntry:
    r = _Reader(record, where)
    n_components = r.u16()
    realm = _text(r.counted(), where)
    components = tuple(_text(r.counted(), where) for _ in range(n_components))
    name_type = r.u32()
    timestamp = r.u32()
    kvno = r.u8()
    etype = r.u16()
    contents = r.counted()
    if r.remaining() >= 4:  # MIT: a 32-bit kvno follows; non-zero overrides the 8-bit one
        kvno32 = r.u32()
        if kvno32:
            kvno = kvno32
    principal = unparse_principal(PrincipalName(name_type, components), realm)
    try:
        key = Key(etype, contents)
    except ValueError:
        raise KeytabError(f"{where}: key of wrong length for enctype {etype}") from None
    return KeytabEntry(principal, kvno, key, timestamp, name_type)


def read_keytab(path: str) -> list[KeytabEntry]:
    """All entries of the keytab file at ``path`` (``FILE:`` prefix accepted)."""
    real = keytab_path(path)
    try:
        with open(real, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise KeytabError(f"Key table file '{real}' not found") from None
    except OSError as exc:
        raise KeytabError(f"cannot read key table file '{real}': {exc.strerror}") from None
    return parse_keytab(data, real)


def encode_entry(entry: KeytabEntry) -> bytes:
    """One record (with its int32 length prefix)."""
    try:
        name, realm = parse_principal(entry.principal, "")
    except PrincipalParseError as exc:
        raise KeytabError(f"bad principal name '{entry.principal}': {exc}") from None
    if not realm:
        raise KeytabError(f"principal '{entry.principal}' has no realm")
    name_type = name.name_type if entry.name_type is None else entry.name_type

    def counted(text: str) -> bytes:
        raw = text.encode("utf-8")
        if len(raw) > 0xFFFF:
            raise KeytabError("principal component too long for a keytab")
        return struct.pack(">H", len(raw)) + raw

    body = bytearray(struct.pack(">H", len(name.components)))
    body += counted(realm)
    for component in name.components:
        body += counted(component)
    body += struct.pack(">IIBH", name_type, entry.timestamp & 0xFFFFFFFF, entry.kvno & 0xFF,
                        entry.key.etype)
    body += struct.pack(">H", len(entry.key.contents)) + entry.key.contents
    body += struct.pack(">I", entry.kvno & 0xFFFFFFFF)
    return struct.pack(">i", len(body)) + bytes(body)


def serialize_keytab(entries: Iterable[KeytabEntry]) -> bytes:
    return struct.pack(">H", KEYTAB_VERSION) + b"".join(encode_entry(e) for e in entries)


def write_keytab(path: str, entries: Iterable[KeytabEntry], append: bool = False) -> None:
    """Write (or with ``append`` add to) a keytab with mode 0600.

    Written in place under a POSIX write lock, never through a temporary copy, so no stray
    file holding keys is ever left behind.
    """
    real = keytab_path(path)
    entries = list(entries)
    if append and os.path.exists(real):
        existing = read_keytab(real)  # validates the version before we add to it
        del existing
        records = b"".join(encode_entry(e) for e in entries)
        fd = os.open(real, os.O_WRONLY | os.O_APPEND)
        with os.fdopen(fd, "wb") as f:
            fcntl.lockf(f, fcntl.LOCK_EX)
            f.write(records)
        return
    data = serialize_keytab(entries)
    try:
        rewrite_private_file(real, data)
    except OSError as exc:
        raise KeytabError(f"cannot write key table file '{real}': {exc.strerror}") from None
