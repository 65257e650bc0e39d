"""SHA-1 compression circuit (mpc.circuits.sha1) against hashlib, both adder arrangements."""

from __future__ import annotations

import hashlib
import random

import pytest

from mpc.builder import CircuitBuilder
from mpc.circuits import sha1
from mpc.circuits.hmac import sha1_padding
from mpc.circuits.plain_builder import PlainBuilder
from mpc.sharing import pack_bytes, unpack_bytes
from tests.vectors import load

IV_BYTES = b"".join(v.to_bytes(4, "big") for v in sha1.IV)


def _reference_digest(message: bytes) -> bytes:
    data = message + sha1_padding(len(message), prefix_len=0)
    state = IV_BYTES
    for i in range(0, len(data), 64):
        state = sha1.reference_compress(state, data[i : i + 64])
    return state


def test_reference_compress_matches_hashlib():
    vectors = [v for v in load("sha_digest", hash="sha1") if "input" in v]
    assert vectors
    for v in vectors:
        assert _reference_digest(v["input"]) == v["digest"]
    rng = random.Random(1)
    for n in (0, 55, 56, 63, 64, 119, 200, 1000):
        message = rng.randbytes(n)
        assert _reference_digest(message) == hashlib.sha1(message).digest()


@pytest.mark.parametrize("adder", ["prefix", "ripple"])
def test_abc_single_block(adder):
    (vector,) = [v for v in load("sha_digest", hash="sha1") if v.get("input") == b"abc"]
    block = vector["input"] + sha1_padding(3, prefix_len=0)
    b = PlainBuilder()
    out = sha1.compress(b, b.input_bytes([IV_BYTES]), b.input_bytes([block]), adder=adder)
    assert b.read_bytes(out) == vector["digest"] == hashlib.sha1(b"abc").digest()


@pytest.mark.parametrize("adder", ["prefix", "ripple"])
def test_random_states_and_blocks(adder):
    rng = random.Random(adder)
    states = [rng.randbytes(20) for _ in range(64)]
    blocks = [rng.randbytes(64) for _ in range(64)]
    b = PlainBuilder(64)
    out = sha1.compress(b, b.input_bytes(states), b.input_bytes(blocks), adder=adder)
    assert b.read_all(out) == [
        sha1.reference_compress(s, m) for s, m in zip(states, blocks, strict=True)
    ]


def test_bad_arguments():
    b = PlainBuilder()
    with pytest.raises(ValueError):
        sha1.compress(b, b.input(160), b.input(512), adder="kogge")
    with pytest.raises(ValueError):
        sha1.compress(b, b.input(128), b.input(512))
    with pytest.raises(ValueError):
        sha1.compress(b, b.input(160), b.input(500))


@pytest.mark.parametrize(("adder", "max_depth"), [("prefix", 400), ("ripple", 2165)])
def test_real_builder(adder, max_depth):
    b = CircuitBuilder()
    state, block = b.input(160), b.input(512)
    b.output(sha1.compress(b, state, block, adder=adder))
    circuit = b.build()
    assert circuit.and_depth <= max_depth
    print(f"SHA-1 compression ({adder}): {circuit.and_count} AND, AND-depth {circuit.and_depth}")
    rng = random.Random(3)
    states = [rng.randbytes(20) for _ in range(100)] + [IV_BYTES]
    blocks = [rng.randbytes(64) for _ in range(100)] + [b"abc" + sha1_padding(3, 0)]
    out = circuit.evaluate_plain([pack_bytes(states), pack_bytes(blocks)])[0]
    got = unpack_bytes(out, len(states))
    assert got == [sha1.reference_compress(s, m) for s, m in zip(states, blocks, strict=True)]
    assert got[-1] == hashlib.sha1(b"abc").digest()


def test_public_block_folds_to_fewer_ands():
    """A public block given as constants (as a circuit could do) costs fewer ANDs."""
    block = b"abc" + sha1_padding(3, 0)
    b = CircuitBuilder()
    state = b.input(160)
    b.output(sha1.compress(b, state, b.const_bytes(block), adder="ripple"))
    circuit = b.build()
    assert circuit.and_count < 11215
    out = circuit.evaluate_plain([pack_bytes([IV_BYTES])])[0]
    assert unpack_bytes(out, 1) == [hashlib.sha1(b"abc").digest()]


def test_three_party_abc():
    from mpc.local import run_three

    b = CircuitBuilder()
    state, block = b.input(160), b.input(512)
    b.output(sha1.compress(b, state, block))
    circuit = b.build()
    padded = b"abc" + sha1_padding(3, 0)
    (out,) = run_three(circuit, [pack_bytes([IV_BYTES]), pack_bytes([padded])])
    assert unpack_bytes(out, 1) == [hashlib.sha1(b"abc").digest()]
