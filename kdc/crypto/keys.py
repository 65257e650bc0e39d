"""Key-holding value types. Their repr never shows key bytes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from .profiles import ENCTYPES


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Key:
    """A Kerberos protocol key (RFC 3961 §3): enctype number and key octets."""

    etype: int
    contents: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.contents, bytes):
            object.__setattr__(self, "contents", bytes(self.contents))
        p = ENCTYPES.get(self.etype)
        if p is not None and len(self.contents) != p.key_bytes:
            raise ValueError(
                f"enctype {self.etype} needs a {p.key_bytes}-octet key, got {len(self.contents)}"
            )

    def __repr__(self) -> str:
        return f"Key(etype={self.etype}, <redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        return self.etype == other.etype and hmac.compare_digest(self.contents, other.contents)

    def __hash__(self) -> int:
        return hash((self.etype, self.contents))


@dataclass(frozen=True, slots=True, repr=False)
class UsageKeys:
    """The three keys RFC 3961 §5.3 derives from a base key for one key usage."""

    ke: bytes  # encryption key, DK(base, usage | 0xAA)
    ki: bytes  # integrity key, DK(base, usage | 0x55)
    kc: bytes  # checksum key, DK(base, usage | 0x99)

    def __repr__(self) -> str:
        return "UsageKeys(<redacted>)"

    __str__ = __repr__
