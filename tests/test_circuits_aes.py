"""AES circuits (mpc.circuits.aes, mpc.circuits.sbox) against FIPS-197 and `cryptography`.

Each circuit is checked twice: on the evaluating PlainBuilder (many random lanes at once) and
on the real CircuitBuilder + Circuit.evaluate_plain, which also gives the AND count and
AND-depth the engine will pay.
"""

from __future__ import annotations

import os
import random

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mpc.builder import CircuitBuilder
from mpc.circuits import aes
from mpc.circuits.plain_builder import PlainBuilder
from mpc.circuits.sbox import inv_sub_byte, parse_sections, sub_byte
from mpc.sharing import pack_bytes, unpack_bytes
from tests.vectors import load


def _gf_mul(x: int, y: int) -> int:
    out = 0
    while y:
        if y & 1:
            out ^= x
        x = ((x << 1) ^ (0x11B if x & 0x80 else 0)) & 0x1FF
        y >>= 1
    return out


def _sbox_table() -> list[int]:
    """FIPS-197 §5.1.1 from the definition: GF(2^8) inverse, then the affine map."""
    table = []
    for x in range(256):
        inv = next((y for y in range(1, 256) if _gf_mul(x, y) == 1), 0)
        s = 0x63
        for i in range(5):
            s ^= ((inv << i) | (inv >> (8 - i))) & 0xFF
        table.append(s)
    return table


SBOX = _sbox_table()
INV_SBOX = [SBOX.index(y) for y in range(256)]


def _ecb(key: bytes, block: bytes, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(block) + ctx.finalize()


def _plain_key_expansion(key: bytes) -> list[bytes]:
    """FIPS-197 §5.2 on bytes, the oracle for expand_key."""
    nk = len(key) // 4
    nr = nk + 6
    words = [list(key[4 * i : 4 * i + 4]) for i in range(nk)]
    rcon = 1
    for i in range(nk, 4 * (nr + 1)):
        temp = list(words[i - 1])
        if i % nk == 0:
            temp = [SBOX[v] for v in temp[1:] + temp[:1]]
            temp[0] ^= rcon
            rcon = _gf_mul(rcon, 2)
        elif nk > 6 and i % nk == 4:
            temp = [SBOX[v] for v in temp]
        words.append([a ^ c for a, c in zip(words[i - nk], temp, strict=True)])
    return [bytes(sum(words[4 * r : 4 * r + 4], [])) for r in range(nr + 1)]


def test_sbox_tables_fixed_points():
    assert (SBOX[0x00], SBOX[0x53], SBOX[0xFF], INV_SBOX[0x00]) == (0x63, 0xED, 0x16, 0x52)


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_sbox_all_256_inputs(direction):
    b = PlainBuilder(256)
    x = b.input_bytes([bytes([v]) for v in range(256)])
    out = sub_byte(b, x) if direction == "forward" else inv_sub_byte(b, x)
    table = SBOX if direction == "forward" else INV_SBOX
    assert b.read_all(out) == [bytes([table[v]]) for v in range(256)]
    assert b.live_and_count(out) == 34
    assert b.and_depth_of(out) == 4


def test_parse_rejects_garbage():
    with pytest.raises(ValueError):
        parse_sections("SECTION x\nA = B OR C\nEND\n")


def _plain_encrypt(keys: list[bytes], blocks: list[bytes], decrypt: bool = False) -> list[bytes]:
    b = PlainBuilder(len(keys))
    rk = aes.expand_key(b, b.input_bytes(keys))
    data = b.input_bytes(blocks)
    out = aes.decrypt_block(b, rk, data) if decrypt else aes.encrypt_block(b, rk, data)
    return b.read_all(out)


def test_fips197_vectors_plain_builder():
    vectors = load("aes_block")
    assert {v["key_bits"] for v in vectors} >= {128, 256}
    for v in vectors:
        assert _plain_encrypt([v["key"]], [v["plaintext"]]) == [v["ciphertext"]]
        assert _plain_encrypt([v["key"]], [v["ciphertext"]], decrypt=True) == [v["plaintext"]]


@pytest.mark.parametrize("key_bits", [128, 256])
def test_kat_sample(key_bits):
    vectors = [v for v in load("aes_block_kat", key_bits=key_bits)][::8]
    assert len(vectors) >= 20
    keys = [v["key"] for v in vectors]
    assert _plain_encrypt(keys, [v["plaintext"] for v in vectors]) == [
        v["ciphertext"] for v in vectors
    ]
    assert _plain_encrypt(keys, [v["ciphertext"] for v in vectors], decrypt=True) == [
        v["plaintext"] for v in vectors
    ]


@pytest.mark.parametrize("key_len", [16, 24, 32])
def test_random_against_cryptography(key_len):
    rng = random.Random(key_len)
    keys = [rng.randbytes(key_len) for _ in range(48)]
    blocks = [rng.randbytes(16) for _ in range(48)]
    assert _plain_encrypt(keys, blocks) == [_ecb(k, p) for k, p in zip(keys, blocks, strict=True)]
    assert _plain_encrypt(keys, blocks, decrypt=True) == [
        _ecb(k, p, decrypt=True) for k, p in zip(keys, blocks, strict=True)
    ]


@pytest.mark.parametrize("key_len", [16, 32])
def test_expand_key_matches_plain(key_len):
    keys = [os.urandom(key_len) for _ in range(16)]
    b = PlainBuilder(len(keys))
    rk = aes.expand_key(b, b.input_bytes(keys))
    assert len(rk) == key_len // 4 + 7
    for lane, key in enumerate(keys):
        assert [b.read_bytes(r, lane) for r in rk] == _plain_key_expansion(key)


def test_bad_arguments():
    b = PlainBuilder()
    with pytest.raises(ValueError):
        aes.expand_key(b, b.input(100))
    with pytest.raises(ValueError):
        aes.encrypt_block(b, [b.input(128)] * 5, b.input(128))


# -- real builder: counts, depth, evaluate_plain ------------------------------------------------


# sent: words each party sends per block. Fused layers (mpc.fusion) reshare 19 sums per S-box
# instead of its 34 products: 4 + 3 + 4 + 8 over its four rounds (the last 8 are the S-box's
# output bits, whose products the bottom linear layer folds together).
@pytest.mark.parametrize(("key_len", "and_count", "sent", "depth"),
                         [(16, 5440, 3040, 40), (32, 7616, 4256, 56)])
@pytest.mark.parametrize("decrypt", [False, True])
def test_real_builder_counts_and_values(key_len, and_count, sent, depth, decrypt):
    nr = key_len // 4 + 6
    b = CircuitBuilder()
    rk = [b.input(128) for _ in range(nr + 1)]
    data = b.input(128)
    b.output(aes.decrypt_block(b, rk, data) if decrypt else aes.encrypt_block(b, rk, data))
    circuit = b.build()
    assert (circuit.and_count, circuit.sent_count, circuit.and_depth) == (and_count, sent, depth)
    assert circuit.layer_sizes[:4] == [16 * 4, 16 * 3, 16 * 4, 16 * 8]  # one round's 16 S-boxes

    rng = random.Random(7 + key_len)
    keys = [rng.randbytes(key_len) for _ in range(70)]
    blocks = [rng.randbytes(16) for _ in range(70)]
    schedules = [_plain_key_expansion(k) for k in keys]
    inputs = [pack_bytes([s[r] for s in schedules]) for r in range(nr + 1)] + [pack_bytes(blocks)]
    out = unpack_bytes(circuit.evaluate_plain(inputs)[0], len(keys))
    assert out == [_ecb(k, p, decrypt) for k, p in zip(keys, blocks, strict=True)]


@pytest.mark.parametrize(("key_len", "and_count", "sent", "depth"),
                         [(16, 1360, 760, 40), (32, 1768, 988, 52)])
def test_real_builder_key_expansion(key_len, and_count, sent, depth):
    b = CircuitBuilder()
    key = b.input(8 * key_len)
    for r in aes.expand_key(b, key):
        b.output(r)
    circuit = b.build()
    assert (circuit.and_count, circuit.sent_count, circuit.and_depth) == (and_count, sent, depth)
    keys = [os.urandom(key_len) for _ in range(10)]
    outs = circuit.evaluate_plain([pack_bytes(keys)])
    got = [unpack_bytes(o, len(keys)) for o in outs]
    for lane, key in enumerate(keys):
        assert [g[lane] for g in got] == _plain_key_expansion(key)


# -- through the three-party evaluator (shares, AND protocol, reveal) ---------------------------


@pytest.mark.parametrize("key_bits", [128, 256])
def test_three_party_fips197(key_bits):
    from mpc.local import run_three

    v = [v for v in load("aes_block", key_bits=key_bits) if "FIPS-197" in v["source"]][0]
    b = CircuitBuilder()
    key, block = b.input(key_bits), b.input(128)
    rk = aes.expand_key(b, key)
    ct = aes.encrypt_block(b, rk, block)
    b.output(ct)
    b.output(aes.decrypt_block(b, rk, ct))
    circuit = b.build()
    enc, dec = run_three(circuit, [pack_bytes([v["key"]]), pack_bytes([v["plaintext"]])])
    assert unpack_bytes(enc, 1) == [v["ciphertext"]]
    assert unpack_bytes(dec, 1) == [v["plaintext"]]
