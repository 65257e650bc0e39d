"""RFC 3961 §5.1 key derivation (DR / DK) and the per-usage keys of §5.3.

Also the bounded LRU of prepared per-(key, usage) crypto state: deriving Ke/Ki/Kc costs six
AES block operations and key schedules, which the hot path (every reply encryption) should
pay once per key and usage, not per message.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from functools import lru_cache

from .cts import BLOCK, AesCts, ecb_encryptor
from .keys import Key, UsageKeys
from .nfold import nfold
from .profiles import profile

# RFC 3961 §5.3: the last octet of the derivation constant names the derived key.
KC = 0x99  # checksum key
KE = 0xAA  # encryption key
KI = 0x55  # integrity key

KERBEROS_CONSTANT = b"kerberos"  # RFC 3961 §5.3 / RFC 3962 §4 string-to-key
PRF_CONSTANT = b"prf"  # RFC 3962 §4 pseudo-random function


def usage_constant(usage: int, kind: int) -> bytes:
    """usage (4 octets, big-endian) | kind octet (RFC 3961 §5.3)."""
    if not 0 <= usage < 1 << 32:
        raise ValueError("key usage must fit in 32 bits")
    return usage.to_bytes(4, "big") + bytes([kind])


@lru_cache(maxsize=4096)
def _folded(constant: bytes) -> bytes:
    # Public data only (usage constants, "kerberos", "prf"): safe to memoise.
    return constant if len(constant) == BLOCK else nfold(constant, BLOCK)


def derive_random(base_key: bytes | AesCts, constant: bytes, out_bytes: int | None = None) -> bytes:
    """DR(Key, Constant) for an AES base key (RFC 3961 §5.1).

    K1 = E(Key, n-fold(Constant)), K(i+1) = E(Key, Ki); the concatenation truncated to the
    key length (or ``out_bytes``). E on one block with a zero IV is a single AES block.
    ``base_key`` may be a prepared AesCts (then ``out_bytes`` is required).
    """
    if isinstance(base_key, AesCts):
        if out_bytes is None:
            raise ValueError("out_bytes is required with a prepared cipher")
        aes, want = base_key, out_bytes
    else:
        aes = AesCts(base_key)
        want = len(base_key) if out_bytes is None else out_bytes
    block = _folded(constant)
    out = []
    have = 0
    while have < want:
        block = aes.encrypt_block(block)
        out.append(block)
        have += BLOCK
    return b"".join(out)[:want]


def derive_key(key: Key | bytes, constant: bytes) -> bytes:
    """DK(Key, Constant) = random-to-key(DR(Key, Constant)) (RFC 3961 §5.1).

    For AES random-to-key is the identity (RFC 3962 §6), so DK equals DR truncated to the key
    length.
    """
    raw = key.contents if isinstance(key, Key) else key
    if isinstance(key, Key):
        profile(key.etype)
    return derive_random(raw, constant)


@lru_cache(maxsize=1024)
def _usage_blocks(usage: int) -> bytes:
    # Public data only: n-fold of the Ke, Ki and Kc constants of one usage, concatenated.
    return b"".join(_folded(usage_constant(usage, kind)) for kind in (KE, KI, KC))


def usage_keys(key: Key, usage: int) -> UsageKeys:
    """Ke, Ki and Kc of ``key`` for ``usage`` (RFC 3961 §5.3 simplified profile).

    The three DR chains (RFC 3961 §5.1: K1 = E(n-fold(constant)), K(i+1) = E(Ki)) advance
    together under one key schedule: each step is one ECB call over the three current blocks.
    """
    n = profile(key.etype).key_bytes
    ecb = ecb_encryptor(key.contents)
    blocks = _usage_blocks(usage)
    ke = ki = kc = b""
    while len(ke) < n:
        blocks = ecb.update(blocks)
        ke += blocks[:BLOCK]
        ki += blocks[BLOCK : 2 * BLOCK]
        kc += blocks[2 * BLOCK :]
    return UsageKeys(ke=ke[:n], ki=ki[:n], kc=kc[:n])


@lru_cache(maxsize=1024)
def _usage_blocks_ke_ki(usage: int) -> bytes:
    # Public data only: n-fold of the Ke and Ki constants of one usage, concatenated.
    return b"".join(_folded(usage_constant(usage, kind)) for kind in (KE, KI))


def encryption_keys(key: Key, usage: int) -> tuple[bytes, bytes]:
    """(Ke, Ki) of ``key`` for ``usage`` (RFC 3961 §5.3), without Kc.

    For a key that encrypts one message (a fresh session key or subkey): the two DR chains
    advance together under one key schedule, as in :func:`usage_keys`.
    """
    n = profile(key.etype).key_bytes
    ecb = ecb_encryptor(key.contents)
    blocks = ecb.update(_usage_blocks_ke_ki(usage))
    if n <= BLOCK:
        return blocks[:n], blocks[BLOCK : BLOCK + n]
    more = ecb.update(blocks)  # K2 = E(K1) of each chain (RFC 3961 §5.1)
    ke = blocks[:BLOCK] + more[:BLOCK]
    ki = blocks[BLOCK:] + more[BLOCK:]
    return ke[:n], ki[:n]


class PreparedUsage:
    """Ready-to-use crypto state for one (key, usage): CTS cipher under Ke, HMAC under Ki/Kc."""

    __slots__ = ("keys", "cipher", "ki_mac", "_kc_mac", "mac_bytes", "cksumtype")

    def __init__(self, key: Key, usage: int) -> None:
        p = profile(key.etype)
        self.keys = usage_keys(key, usage)
        self.cipher = AesCts(self.keys.ke)
        # Keyed HMAC templates: .copy() skips re-hashing the key pads for each message.
        self.ki_mac = hmac.new(self.keys.ki, digestmod=hashlib.sha1)
        self._kc_mac = None  # made on first use: most usages never make a checksum
        self.mac_bytes = p.mac_bytes
        self.cksumtype = p.cksumtype

    @property
    def kc_mac(self):
        """HMAC-SHA1 template keyed with Kc (checksums, RFC 3962 §7)."""
        mac = self._kc_mac
        if mac is None:
            mac = self._kc_mac = hmac.new(self.keys.kc, digestmod=hashlib.sha1)
        return mac

    def __repr__(self) -> str:
        return "PreparedUsage(<redacted>)"


class UsageKeyCache:
    """Bounded LRU of PreparedUsage by (etype, key octets, usage).

    Holds derived keys in memory, so it belongs to the process that already holds the base
    keys (the reference key service, or the front-end for session keys). Not thread-safe.
    """

    __slots__ = ("_entries", "maxsize")

    def __init__(self, maxsize: int = 1024) -> None:
        if maxsize < 1:
            raise ValueError("cache size must be positive")
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple[int, bytes, int], PreparedUsage] = OrderedDict()

    def __repr__(self) -> str:
        return f"UsageKeyCache(size={len(self._entries)}, maxsize={self.maxsize})"

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key, usage: int) -> PreparedUsage:
        ident = (key.etype, key.contents, usage)
        entries = self._entries
        prepared = entries.get(ident)
        if prepared is not None:
            entries.move_to_end(ident)
            return prepared
        prepared = PreparedUsage(key, usage)
        entries[ident] = prepared
        if len(entries) > self.maxsize:
            entries.popitem(last=False)
        return prepared

    def clear(self) -> None:
        self._entries.clear()
