"""Bristol Fashion import: published AES / SHA-256 answers through share -> run_three -> reveal."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mpc.bristol import BristolFormatError, load_bristol, parse_bristol
from mpc.local import run_three
from mpc.sharing import pack_bytes, pack_ints, unpack_bytes, unpack_ints
from tests.vectors import load, shared_dir


def bristol(name: str):
    return load_bristol(shared_dir() / "circuits" / "bristol" / f"{name}.txt")


def aes_vectors(key_bits: int) -> list[dict]:
    """FIPS-197 / SP 800-38A blocks plus the krb5 variable-key/variable-text KAT sets."""
    return load("aes_block", key_bits=key_bits) + load("aes_block_kat", key_bits=key_bits)


@pytest.mark.parametrize(
    ("name", "key_bits", "fips_key", "fips_ct"),
    [
        ("aes_128", 128, "000102030405060708090a0b0c0d0e0f", "69c4e0d86a7b0430d8cdb78070b4c55a"),
        (
            "aes_256",
            256,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "8ea2b7ca516745bfeafc49904b496089",
        ),
    ],
)
def test_bristol_aes_in_mpc(name, key_bits, fips_key, fips_ct):
    circuit = bristol(name)
    assert circuit.input_sizes == [key_bits, 128] and circuit.output_sizes == [128]
    vectors = aes_vectors(key_bits)
    assert len(vectors) > 250
    # FIPS-197 C.1 / C.3 is among them
    assert any(v["key"].hex() == fips_key and v["ciphertext"].hex() == fips_ct for v in vectors)
    keys = pack_bytes([v["key"] for v in vectors])
    blocks = pack_bytes([v["plaintext"] for v in vectors])
    (out,) = run_three(circuit, [keys, blocks], batch_id=key_bits)
    got = unpack_bytes(out, len(vectors))
    assert got == [v["ciphertext"] for v in vectors]


def test_bristol_aes_128_plain_matches_cryptography():
    rng = np.random.default_rng(128)
    keys = [rng.bytes(16) for _ in range(70)]
    blocks = [rng.bytes(16) for _ in range(70)]
    (out,) = bristol("aes_128").evaluate_plain([pack_bytes(keys), pack_bytes(blocks)])
    want = [
        Cipher(algorithms.AES(k), modes.ECB()).encryptor().update(p)
        for k, p in zip(keys, blocks, strict=True)
    ]
    assert unpack_bytes(out, 70) == want


SHA256_IV = struct.pack(
    ">8I",
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)  # FIPS 180-4 §5.3.3


def sha256_pad(message: bytes) -> list[bytes]:
    """FIPS 180-4 §5.1.1 padding, split into 64-byte blocks."""
    padded = (
        message + b"\x80" + bytes((55 - len(message)) % 64) + struct.pack(">Q", 8 * len(message))
    )
    return [padded[i : i + 64] for i in range(0, len(padded), 64)]


def test_bristol_sha256_in_mpc():
    """One-block messages ("abc" and "") in one batch, then the two-block FIPS message chained
    through two evaluations; digests from sha_digest.json."""
    circuit = bristol("sha256")
    vectors = [v for v in load("sha_digest", hash="sha256") if "input" in v]
    one_block = [v for v in vectors if len(sha256_pad(v["input"])) == 1]
    two_block = [v for v in vectors if len(sha256_pad(v["input"])) == 2]
    assert any(v["input"] == b"abc" for v in one_block) and two_block

    blocks = pack_bytes([sha256_pad(v["input"])[0] for v in one_block])
    state = pack_bytes([SHA256_IV] * len(one_block))
    (digest,) = run_three(circuit, [blocks, state], batch_id=1)
    assert unpack_bytes(digest, len(one_block)) == [v["digest"] for v in one_block]

    v = two_block[0]
    state = pack_bytes([SHA256_IV])
    for k, block in enumerate(sha256_pad(v["input"])):
        (state,) = run_three(circuit, [pack_bytes([block]), state], batch_id=10 + k)
    assert unpack_bytes(state, 1) == [v["digest"]] == [hashlib.sha256(v["input"]).digest()]


# -- format and bit order on a small hand-written file ------------------------------------------

TINY = """6 14
1 8
2 4 1

1 1 0 9 EQW
1 1 7 10 INV
2 1 1 2 11 AND
1 1 1 12 EQ
2 1 3 4 8 XOR
2 1 8 5 13 XOR
"""


def tiny_expected(v: int) -> tuple[int, int]:
    # Bristol: value bit i = wire offset + i. Output 1 wires 9..12 = bits 0..3.
    out1 = (v & 1) | (((~v >> 7) & 1) << 1) | ((((v >> 1) & (v >> 2)) & 1) << 2) | (1 << 3)
    out2 = ((v >> 3) ^ (v >> 4) ^ (v >> 5)) & 1
    return out1, out2


def test_tiny_file_bit_order_and_gate_kinds():
    circuit = parse_bristol(TINY)
    assert circuit.input_sizes == [8] and circuit.output_sizes == [4, 1]
    assert circuit.and_count == 1
    values = list(range(256))
    o1, o2 = circuit.evaluate_plain([pack_ints(values, 8)])
    want = [tiny_expected(v) for v in values]
    assert unpack_ints(o1, 256) == [w[0] for w in want]
    assert unpack_ints(o2, 256) == [w[1] for w in want]
    m1, m2 = run_three(circuit, [pack_ints(values, 8)])
    assert np.array_equal(m1, o1) and np.array_equal(m2, o2)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1 3\n1 1\n1 1\n\n2 1 0 5 2 AND\n",  # wire out of range
        "1 3\n1 1\n1 1\n\n2 1 0 1 2 AND\n",  # wire 1 used before assignment
        "1 3\n1 2\n1 1\n\n2 1 0 1 2 OR\n",  # unknown gate
        "2 3\n1 2\n1 1\n\n2 1 0 1 2 AND\n",  # truncated
        "1 3\n2 2\n1 1\n\n2 1 0 1 2 AND\n",  # input value count mismatch
        "1 x\n1 2\n1 1\n\n2 1 0 1 2 AND\n",  # bad header
    ],
)
def test_malformed_files_rejected(text):
    with pytest.raises(BristolFormatError):
        parse_bristol(text)
