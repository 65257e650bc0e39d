"""RFC 3961 §5.3 simplified-profile encryption and checksums for the AES-SHA1 enctypes.

ciphertext = E(Ke, confounder | plaintext) with AES-CBC-CTS and a zero IV (RFC 3962 §6)
             || HMAC-SHA1(Ki, confounder | plaintext)[:12]
checksum   = HMAC-SHA1(Kc, data)[:12]

Note the HMAC covers the plaintext, not the ciphertext (unlike RFC 8009).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

from .cts import AesCts, cbc_cts_encrypt_once
from .derive import PRF_CONSTANT, UsageKeyCache, derive_random, encryption_keys
from .keys import Key
from .profiles import CKSUMTYPES, profile


class IntegrityError(Exception):
    """Decryption failed: ciphertext too short or its HMAC does not verify.

    The message is fixed text; it never carries key, plaintext or ciphertext bytes.
    """


# Cache for callers that do not bring their own (session keys on the front-end). One per
# thread: prepared cipher contexts carry chaining state and must not be shared across threads.
DEFAULT_CACHE_SIZE = 1024
_local = threading.local()


def default_cache() -> UsageKeyCache:
    """This thread's default UsageKeyCache."""
    try:
        return _local.cache
    except AttributeError:
        _local.cache = UsageKeyCache(DEFAULT_CACHE_SIZE)
        return _local.cache


def encrypt(
    key: Key,
    usage: int,
    plaintext: bytes,
    confounder: bytes | None = None,
    *,
    cache: UsageKeyCache | None = None,
) -> bytes:
    """RFC 3961 §5.3 encryption; returns the EncryptedData.cipher octets.

    ``confounder`` (16 octets) is for known-answer tests and for comparing implementations;
    normally it is None and drawn from os.urandom.
    """
    prep = (default_cache() if cache is None else cache).get(key, usage)
    if confounder is None:
        confounder = os.urandom(16)
    elif len(confounder) != 16:
        raise ValueError("confounder must be 16 octets")
    data = confounder + plaintext
    mac = prep.ki_mac.copy()
    mac.update(data)
    return prep.cipher.encrypt(data) + mac.digest()[: prep.mac_bytes]


def encrypt_once(
    key: Key, usage: int, plaintext: bytes, confounder: bytes | None = None
) -> bytes:
    """RFC 3961 §5.3 encryption under a key that encrypts one message; same output as
    :func:`encrypt`.

    For fresh keys (an authenticator subkey, RFC 4120 §3.3.3): derives only Ke and Ki, uses
    one AES context and a one-shot HMAC, and keeps nothing, so a key that will never come back
    neither pays for prepared state nor pushes useful keys out of the cache.
    """
    mac_bytes = profile(key.etype).mac_bytes
    if confounder is None:
        confounder = os.urandom(16)
    elif len(confounder) != 16:
        raise ValueError("confounder must be 16 octets")
    ke, ki = encryption_keys(key, usage)
    data = confounder + plaintext
    return cbc_cts_encrypt_once(ke, data) + hmac.digest(ki, data, "sha1")[:mac_bytes]


def decrypt(
    key: Key, usage: int, ciphertext: bytes, *, cache: UsageKeyCache | None = None
) -> bytes:
    """RFC 3961 §5.3 decryption with the integrity check; raises IntegrityError."""
    prep = (default_cache() if cache is None else cache).get(key, usage)
    mac_len = prep.mac_bytes
    if len(ciphertext) < 16 + mac_len:
        raise IntegrityError("ciphertext too short")
    body = ciphertext[:-mac_len]
    data = prep.cipher.decrypt(body)
    mac = prep.ki_mac.copy()
    mac.update(data)
    if not hmac.compare_digest(mac.digest()[:mac_len], ciphertext[-mac_len:]):
        raise IntegrityError("ciphertext integrity check failed")
    return data[16:]


def make_checksum(
    key: Key, usage: int, data: bytes, *, cache: UsageKeyCache | None = None
) -> tuple[int, bytes]:
    """Keyed checksum of the enctype (RFC 3962 §7): (cksumtype, HMAC-SHA1(Kc, data)[:12])."""
    prep = (default_cache() if cache is None else cache).get(key, usage)
    mac = prep.kc_mac.copy()
    mac.update(data)
    return prep.cksumtype, mac.digest()[: prep.mac_bytes]


def verify_checksum(
    key: Key,
    usage: int,
    data: bytes,
    cksumtype: int,
    value: bytes,
    *,
    cache: UsageKeyCache | None = None,
) -> bool:
    """Constant-time check of a keyed checksum; False for a cksumtype that does not match
    the key's enctype (or is unkeyed/unknown)."""
    if CKSUMTYPES.get(cksumtype) != key.etype:
        return False
    _, expected = make_checksum(key, usage, data, cache=cache)
    return hmac.compare_digest(expected, value)


def prf(key: Key, data: bytes) -> bytes:
    """RFC 3962 §4 pseudo-random function: E(DK(key, "prf"), truncate16(SHA-1(data)))."""
    profile(key.etype)
    dk = derive_random(key.contents, PRF_CONSTANT)
    return AesCts(dk).encrypt_block(hashlib.sha1(data).digest()[:16])


def prf_plus(key: Key, data: bytes, nbytes: int) -> bytes:
    """RFC 6113 §5.1 PRF+: PRF(key, 1 | data) || PRF(key, 2 | data) || ... truncated."""
    if not 0 < nbytes <= 255 * 16:
        raise ValueError("PRF+ output size out of range")
    out = []
    have = 0
    counter = 1
    while have < nbytes:
        block = prf(key, bytes([counter]) + data)
        out.append(block)
        have += len(block)
        counter += 1
    return b"".join(out)[:nbytes]


def cf2(key1: Key, pepper1: bytes, key2: Key, pepper2: bytes) -> Key:
    """RFC 6113 §5.1 KRB-FX-CF2: random-to-key(PRF+(k1, p1) ^ PRF+(k2, p2)), enctype of k1.

    Used for FAST armor keys (not yet advertised by the KDC; here for completeness).
    """
    n = profile(key1.etype).key_bytes
    a = prf_plus(key1, pepper1, n)
    b = prf_plus(key2, pepper2, n)
    return Key(key1.etype, bytes(x ^ y for x, y in zip(a, b, strict=True)))
