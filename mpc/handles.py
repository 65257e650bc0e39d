"""Names of share handles: the one place that spells them (nodes, key service, admin tool).

A handle names one secret a node holds shares of. Every long-term key and every value
precomputed from it lives under the principal, the kvno and the etype it belongs to::

    krb/<principal>/<kvno>/<etype>/base             the long-term key (RFC 3961 protocol key)
    krb/<principal>/<kvno>/<etype>/u<usage>/ke      AES round keys of Ke  (RFC 3961 §5.3 DK)
    krb/<principal>/<kvno>/<etype>/u<usage>/ki-in   SHA-1 state after the Ki^ipad block
    krb/<principal>/<kvno>/<etype>/u<usage>/ki-out  SHA-1 state after the Ki^opad block
                                                    (RFC 2104 HMAC, RFC 3962 HMAC-SHA1-96)

The kvno is part of every name, so material of two key versions can never be mixed: the KDC
only forms handles for the kvno its committed principal record lists.

``<principal>`` is the canonical principal name with every byte outside printable ASCII and
every '/' and '%' percent-encoded (RFC 3986 §2.1 style, UTF-8 first), so the encoded name
holds no '/' and ``principal_prefix`` matches exactly one principal's handles. Nodes refuse
handles over :data:`MAX_HANDLE_LEN` bytes; :func:`check_principal` says up front whether a
name fits.
"""

from __future__ import annotations

from dataclasses import dataclass

# Equal to mpc.node.MAX_HANDLE_LEN (a test checks); not imported to keep this module light.
MAX_HANDLE_LEN = 256
MAX_KVNO = 2**32 - 1  # RFC 4120 §5.2.9: kvno is UInt32
MAX_USAGE = 2**32 - 1  # RFC 3961 §3: key usage numbers are 32-bit
MAX_ETYPE = 2**31 - 1  # RFC 4120 §5.2.9: etype is Int32

PREFIX = "krb/"
BASE = "base"
USAGE_KINDS = ("ke", "ki-in", "ki-out")

_SAFE = frozenset(range(0x21, 0x7F)) - {ord("/"), ord("%")}


class BadHandle(ValueError):
    """A handle that is not a key handle, or a name/number that cannot become one."""


@dataclass(frozen=True, slots=True)
class KeyHandle:
    """A parsed key handle. ``usage`` is None for the base key; ``kind`` is "base" or one
    of :data:`USAGE_KINDS`."""

    principal: str
    kvno: int
    etype: int
    kind: str
    usage: int | None = None

    def __str__(self) -> str:
        if self.kind == BASE:
            return base_key(self.principal, self.kvno, self.etype)
        material = usage_material(self.principal, self.kvno, self.etype, self.usage)
        return material[USAGE_KINDS.index(self.kind)]


def encode_principal(principal: str) -> str:
    """Percent-encode a principal name so that it contains no '/' and only printable ASCII."""
    if not isinstance(principal, str) or not principal:
        raise BadHandle("principal name must be a non-empty string")
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in principal.encode("utf-8"))


def decode_principal(text: str) -> str:
    """Inverse of :func:`encode_principal`; rejects anything that encoder would not produce."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or any(ch not in "0123456789ABCDEF" for ch in pair):
                raise BadHandle("bad percent escape in handle")
            b = int(pair, 16)
            if b in _SAFE:
                raise BadHandle("needless percent escape in handle")
            out.append(b)
            i += 3
        elif ord(c) in _SAFE:
            out.append(ord(c))
            i += 1
        else:
            raise BadHandle("unencoded character in handle")
    try:
        name = out.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadHandle("principal in handle is not UTF-8") from e
    if not name:
        raise BadHandle("empty principal in handle")
    return name


def principal_prefix(principal: str) -> str:
    """The prefix shared by every handle of ``principal`` and by no other principal's."""
    return f"{PREFIX}{encode_principal(principal)}/"


def kvno_prefix(principal: str, kvno: int) -> str:
    """The prefix shared by every handle of one key version of ``principal``."""
    return f"{principal_prefix(principal)}{_number(kvno, MAX_KVNO, 'kvno')}/"


def base_key(principal: str, kvno: int, etype: int) -> str:
    """Handle of the long-term key itself."""
    return _checked(_key_root(principal, kvno, etype) + "/" + BASE)


def usage_material(principal: str, kvno: int, etype: int, usage: int) -> tuple[str, str, str]:
    """Handles of (Ke round keys, Ki inner SHA-1 state, Ki outer SHA-1 state) for one usage."""
    root = _key_root(principal, kvno, etype) + f"/u{_number(usage, MAX_USAGE, 'usage')}/"
    return tuple(_checked(root + kind) for kind in USAGE_KINDS)  # type: ignore[return-value]


def check_principal(principal: str) -> None:
    """Raise :class:`BadHandle` unless every handle of ``principal`` (any kvno, etype and
    usage) fits in :data:`MAX_HANDLE_LEN` bytes. Admin tools call this before registering."""
    usage_material(principal, MAX_KVNO, MAX_ETYPE, MAX_USAGE)


def parse(handle: str) -> KeyHandle:
    """Parse a key handle back; raises :class:`BadHandle` for anything else."""
    if not isinstance(handle, str) or not handle.startswith(PREFIX):
        raise BadHandle("not a key handle")
    parts = handle[len(PREFIX) :].split("/")
    if len(parts) == 4 and parts[3] == BASE:
        usage, kind = None, BASE
    elif len(parts) == 5 and parts[4] in USAGE_KINDS and parts[3].startswith("u"):
        usage, kind = _parse_number(parts[3][1:], MAX_USAGE), parts[4]
    else:
        raise BadHandle("not a key handle")
    key = KeyHandle(decode_principal(parts[0]), _parse_number(parts[1], MAX_KVNO),
                    _parse_number(parts[2], MAX_ETYPE), kind, usage)
    if str(key) != handle:  # exactly one spelling per handle
        raise BadHandle("non-canonical key handle")
    return key


def try_parse(handle: str) -> KeyHandle | None:
    """:func:`parse`, or None for a handle that is not a key handle."""
    try:
        return parse(handle)
    except BadHandle:
        return None


def _key_root(principal: str, kvno: int, etype: int) -> str:
    return (f"{principal_prefix(principal)}{_number(kvno, MAX_KVNO, 'kvno')}/"
            f"{_number(etype, MAX_ETYPE, 'etype')}")


def _number(value: int, limit: int, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise BadHandle(f"{what} must be an integer in 0..{limit}")
    return str(value)


def _parse_number(text: str, limit: int) -> int:
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        raise BadHandle("bad number in key handle")
    value = int(text)
    if value > limit:
        raise BadHandle("number out of range in key handle")
    return value


def _checked(handle: str) -> str:
    if len(handle.encode("utf-8")) > MAX_HANDLE_LEN:
        raise BadHandle(f"handle longer than {MAX_HANDLE_LEN} bytes (principal name too long)")
    return handle
