"""Plain Kerberos crypto for enctypes 17 and 18 (RFC 3961 simplified profile, RFC 3962).

This is the reference path: session-key crypto on the front-end and the oracle that the MPC
key service must match byte for byte.

Prepared per-(key, usage) state is cached (``UsageKeyCache``); the module-level default cache
is per thread, an explicit cache must stay on one thread (cipher contexts carry state).
"""

from .cts import AesCts, cts_decrypt, cts_encrypt, cts_next_iv
from .derive import (
    KC,
    KE,
    KI,
    PreparedUsage,
    UsageKeyCache,
    derive_key,
    derive_random,
    encryption_keys,
    usage_constant,
    usage_keys,
)
from .keys import Key, UsageKeys
from .nfold import nfold
from .profiles import (
    CKSUMTYPES,
    ENCTYPES,
    EnctypeProfile,
    UnsupportedEnctype,
    enctype_name,
    parse_enctype,
    parse_enctype_list,
    profile,
)
from .s2k import random_key, string_to_key
from .simplified import (
    IntegrityError,
    cf2,
    decrypt,
    default_cache,
    encrypt,
    encrypt_once,
    make_checksum,
    prf,
    prf_plus,
    verify_checksum,
)

__all__ = [
    "AesCts",
    "CKSUMTYPES",
    "ENCTYPES",
    "EnctypeProfile",
    "IntegrityError",
    "KC",
    "KE",
    "KI",
    "Key",
    "PreparedUsage",
    "UnsupportedEnctype",
    "UsageKeyCache",
    "UsageKeys",
    "cf2",
    "cts_decrypt",
    "cts_encrypt",
    "cts_next_iv",
    "decrypt",
    "default_cache",
    "derive_key",
    "derive_random",
    "encrypt",
    "encrypt_once",
    "encryption_keys",
    "enctype_name",
    "make_checksum",
    "nfold",
    "parse_enctype",
    "parse_enctype_list",
    "prf",
    "prf_plus",
    "profile",
    "random_key",
    "string_to_key",
    "usage_constant",
    "usage_keys",
    "verify_checksum",
]
