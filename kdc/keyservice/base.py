"""The key-service seam: the only path from the KDC front-end to any long-term key.

The front-end names a key by reference (principal, kvno, etype) and asks for RFC 3961
encryption or decryption under it; it never sees the key. Two implementations exist: the MPC
key service (the product: the key exists only as shares on three nodes) and the reference key
service (clear keys, for tests: the oracle that MPC results must equal byte for byte).

Principal lookup returns public metadata only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# Principal attributes, named as MIT kadmin's flags (getprinc shows them in this spelling).
REQUIRES_PREAUTH = "REQUIRES_PRE_AUTH"
DISALLOW_ALL_TIX = "DISALLOW_ALL_TIX"
DISALLOW_FORWARDABLE = "DISALLOW_FORWARDABLE"
DISALLOW_RENEWABLE = "DISALLOW_RENEWABLE"
DISALLOW_SVR = "DISALLOW_SVR"
DISALLOW_POSTDATED = "DISALLOW_POSTDATED"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """Public facts about one long-term key: what a client needs to derive it from a password."""

    etype: int
    kvno: int
    salt: bytes
    s2kparams: bytes | None = None


@dataclass(frozen=True, slots=True)
class PrincipalEntry:
    """Public metadata of one principal; ``name`` is the canonical ``comp/comp@REALM`` form."""

    name: str
    kvno: int
    keys: tuple[KeyInfo, ...]  # current kvno, in the realm's preference order
    attributes: frozenset[str] = frozenset()
    max_life: int | None = None  # seconds; None = realm default
    max_renewable_life: int | None = None
    expiration: int | None = None  # POSIX seconds; None = never
    pw_expiration: int | None = None
    created: int | None = None
    modified: int | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def requires_preauth(self) -> bool:
        return REQUIRES_PREAUTH in self.attributes

    def key_for(self, etypes: tuple[int, ...] | list[int]) -> KeyInfo | None:
        """The first of the client's etypes (its preference order) for which a key exists."""
        by_etype = {k.etype: k for k in self.keys}
        for e in etypes:
            if e in by_etype:
                return by_etype[e]
        return None


@dataclass(frozen=True, slots=True)
class KeyRef:
    """Names one long-term key without holding it."""

    principal: str
    kvno: int
    etype: int


class KeyServiceError(Exception):
    """Base of key-service failures. Messages never carry key or share bytes."""


class IntegrityFailure(KeyServiceError):
    """The ciphertext's HMAC did not verify under the referenced key (RFC 3961 §5.3)."""


class UnknownKey(KeyServiceError):
    """No key with that principal, kvno and etype."""


class KeyServiceUnavailable(KeyServiceError):
    """The backend cannot answer now (an MPC node is down): the KDC answers SVC_UNAVAILABLE."""


@runtime_checkable
class KeyService(Protocol):
    async def lookup(self, principal: str) -> PrincipalEntry | None:
        """Public metadata of ``principal`` (canonical name), or None if it does not exist."""

    async def encrypt(
        self, ref: KeyRef, usage: int, plaintext: bytes, confounder: bytes | None = None
    ) -> bytes:
        """RFC 3961 encryption (confounder, CBC-CTS, HMAC-SHA1-96) under the referenced key.

        Returns EncryptedData.cipher. ``confounder`` is for tests that compare implementations;
        the KDC leaves it None and a fresh random one is drawn.
        """

    async def decrypt(self, ref: KeyRef, usage: int, ciphertext: bytes) -> bytes:
        """RFC 3961 decryption with the integrity check; raises IntegrityFailure on a bad tag."""
