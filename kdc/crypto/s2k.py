"""RFC 3962 §4 string-to-key (PBKDF2-HMAC-SHA1 then DK "kerberos") and random keys."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from .derive import KERBEROS_CONSTANT, derive_random
from .keys import Key
from .profiles import profile

# MIT krb5 refuses counts at or above 2^24 (lib/crypto/krb/s2k_pbkdf2.c); we do the same so a
# hostile s2kparams cannot buy unbounded CPU.
MAX_ITERATIONS = 0x1000000


def iterations_from_s2kparams(s2kparams: bytes | None, default: int) -> int:
    """The PBKDF2 count carried in s2kparams (RFC 3962 §4: 4 octets, big-endian)."""
    if not s2kparams:
        return default
    if len(s2kparams) != 4:
        raise ValueError("s2kparams for AES must be 4 octets")
    count = int.from_bytes(s2kparams, "big")
    if count == 0:  # RFC 3962 §4: zero means 2^32
        count = 1 << 32
    if count >= MAX_ITERATIONS:
        raise ValueError("s2kparams iteration count too large")
    return count


def string_to_key(
    etype: int,
    password: str | bytes,
    salt: str | bytes,
    s2kparams: bytes | None = None,
) -> Key:
    """RFC 3962 §4: tkey = PBKDF2-HMAC-SHA1(password, salt, count, keylen); key = DK(tkey, "kerberos").

    Text is encoded as UTF-8. The default salt of a principal is realm + name components
    (RFC 4120 §4), computed by the caller.
    """
    p = profile(etype)
    pw = password.encode("utf-8") if isinstance(password, str) else bytes(password)
    sl = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)
    count = iterations_from_s2kparams(s2kparams, p.default_iterations)
    tkey = hashlib.pbkdf2_hmac("sha1", pw, sl, count, p.key_bytes)
    return Key(etype, derive_random(tkey, KERBEROS_CONSTANT))


def random_key(etype: int, rng: Callable[[int], bytes] = os.urandom) -> Key:
    """A fresh random key (RFC 3961 random-to-key is the identity for AES)."""
    return Key(etype, rng(profile(etype).key_bytes))
