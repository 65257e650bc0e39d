"""AES in CBC mode with ciphertext stealing, as RFC 3962 §5 uses it.

RFC 3962 CTS is CBC-CS3: the last two ciphertext blocks are always swapped, also when the
input is a whole number of blocks (RFC 3962 §5 "If the input length is a multiple of the block
size, the last two blocks are swapped"); a single 16-octet block is plain CBC. Inputs shorter
than one block are rejected (Kerberos always prepends a 16-octet confounder).

``AesCts`` keeps reusable ECB contexts for one key so repeated use on the hot path does not
re-expand the AES key; it is not thread-safe (one per event loop).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
_ZERO_IV = bytes(BLOCK)
AES_KEY_SIZES = (16, 24, 32)
# Mode objects are immutable values; building them costs more than a block of AES, so the
# two every context uses are made once.
_CBC_ZERO_IV = modes.CBC(_ZERO_IV)
_ECB = modes.ECB()
# ``algorithms`` is a module proxy whose attribute access runs Python code (deprecation
# checks); the class is looked up once.
_AES = algorithms.AES


def aes_encryptor(key: bytes, mode):
    return Cipher(_AES(key), mode).encryptor()


def aes_decryptor(key: bytes, mode):
    return Cipher(_AES(key), mode).decryptor()


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


class AesCts:
    """AES-CBC-CTS under one key, with prepared cipher contexts.

    Building an OpenSSL context costs more than encrypting a 200-octet message, so one CBC
    encryptor context lives as long as the key: its chaining state is always the last
    ciphertext block it produced, and XOR-ing that state into the first block of the next
    message turns the running context back into CBC with any chosen IV
    (C1 = E(P1 ^ IV ^ state ^ state)). Inputs are always whole blocks, so the context never
    buffers. The decryptor (ECB: CBC decryption is parallel) is built on first use.
    """

    __slots__ = ("_key", "_cbc", "_state", "_ecb_dec")

    def __init__(self, key: bytes) -> None:
        if type(key) is not bytes:
            key = bytes(key)
        if len(key) not in AES_KEY_SIZES:
            raise ValueError("AES key must be 16, 24 or 32 octets")
        self._key = key
        self._cbc = aes_encryptor(key, _CBC_ZERO_IV)
        self._state = _ZERO_IV  # chaining value of self._cbc
        self._ecb_dec = None

    def __repr__(self) -> str:
        return "AesCts(<redacted>)"

    def _cbc_encrypt(self, blocks: bytes, iv: bytes) -> bytes:
        """Plain CBC of whole blocks with ``iv``, on the long-lived context."""
        mask = _xor(iv, self._state) if iv != _ZERO_IV else self._state
        # A fresh context (zero chaining state) with a zero IV needs no correction.
        data = blocks if mask == _ZERO_IV else _xor(blocks[:BLOCK], mask) + blocks[BLOCK:]
        out = self._cbc.update(data)
        self._state = out[-BLOCK:]
        return out

    def _decryptor(self):
        dec = self._ecb_dec
        if dec is None:
            dec = self._ecb_dec = aes_decryptor(self._key, _ECB)
        return dec

    def encrypt_block(self, block: bytes) -> bytes:
        """One raw AES block encryption (used by DR, RFC 3961 §5.1, and the PRF)."""
        return self._cbc_encrypt(block, _ZERO_IV)

    def encrypt(self, data: bytes, iv: bytes = _ZERO_IV) -> bytes:
        """CBC-CTS encryption of ``data`` (at least 16 octets) with initial vector ``iv``."""
        n = len(data)
        if n < BLOCK:
            raise ValueError("CBC-CTS input must be at least one block")
        if n == BLOCK:  # RFC 3962 §5: one block is plain CBC
            return self._cbc_encrypt(data, iv)
        last_len = n - BLOCK * ((n - 1) // BLOCK)
        # CS3 via zero padding: the final CBC block is E(C[n-1] ^ (P[n] | 0...))
        c = self._cbc_encrypt(data + bytes(BLOCK - last_len), iv)
        # RFC 3962 §5: swap the last two blocks, truncate the (now last) block
        return c[: -2 * BLOCK] + c[-BLOCK:] + c[-2 * BLOCK : -2 * BLOCK + last_len]

    def decrypt(self, data: bytes, iv: bytes = _ZERO_IV) -> bytes:
        """CBC-CTS decryption; the inverse of ``encrypt``."""
        n = len(data)
        if n < BLOCK:
            raise ValueError("CBC-CTS input must be at least one block")
        dec = self._decryptor()
        if n == BLOCK:
            return _xor(dec.update(data), iv)
        m = (n + BLOCK - 1) // BLOCK
        last_len = n - BLOCK * (m - 1)
        head = data[: BLOCK * (m - 2)]
        c_last_full = data[BLOCK * (m - 2) : BLOCK * (m - 1)]  # the swapped-in final CBC block
        tail = data[BLOCK * (m - 1) :]  # truncated second-to-last CBC block
        d = dec.update(c_last_full)  # = C[n-1] ^ (P[n] | 0...)
        p_last = _xor(d[:last_len], tail)
        chain = head + tail + d[last_len:]  # the CBC ciphertext blocks 1 .. n-1
        # CBC decryption is parallel: P[i] = D(C[i]) ^ C[i-1]
        p = _xor(dec.update(chain), iv + chain[:-BLOCK])
        return p + p_last


def ecb_encryptor(key: bytes):
    """An AES-ECB encryption context: ``.update(whole blocks)`` encrypts independent blocks in
    one call (DR of several constants at once, RFC 3961 §5.1)."""
    if type(key) is not bytes:
        key = bytes(key)
    if len(key) not in AES_KEY_SIZES:
        raise ValueError("AES key must be 16, 24 or 32 octets")
    return aes_encryptor(key, _ECB)


def cbc_cts_encrypt_once(key: bytes, data: bytes) -> bytes:
    """CBC-CTS encryption with a zero IV (RFC 3962 §5) under a key used for one message.

    One fresh CBC context and no chaining bookkeeping: cheaper than an ``AesCts`` when the key
    (a fresh session key or authenticator subkey) will not be used again. ``key`` must be a
    valid AES key (the caller derived it) and ``data`` at least one block.
    """
    n = len(data)
    if n < BLOCK:
        raise ValueError("CBC-CTS input must be at least one block")
    cbc = aes_encryptor(key, _CBC_ZERO_IV)
    if n == BLOCK:  # RFC 3962 §5: one block is plain CBC
        return cbc.update(data)
    last_len = n - BLOCK * ((n - 1) // BLOCK)
    c = cbc.update(data + bytes(BLOCK - last_len) if last_len != BLOCK else data)
    # RFC 3962 §5: swap the last two blocks, truncate the (now last) block
    return c[: -2 * BLOCK] + c[-BLOCK:] + c[-2 * BLOCK : -2 * BLOCK + last_len]


def cts_next_iv(ciphertext: bytes) -> bytes:
    """The cipher state after encrypting: the last full CBC block (second-to-last output)."""
    n = len(ciphertext)
    m = (n + BLOCK - 1) // BLOCK
    start = BLOCK * max(m - 2, 0)
    return ciphertext[start : start + BLOCK]


def cts_encrypt(key_bytes: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC-CTS encryption (RFC 3962 §5) with a one-off key."""
    return AesCts(key_bytes).encrypt(data, iv)


def cts_decrypt(key_bytes: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC-CTS decryption (RFC 3962 §5) with a one-off key."""
    return AesCts(key_bytes).decrypt(data, iv)
