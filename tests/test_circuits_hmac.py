"""HMAC-SHA1-96 circuit (mpc.circuits.hmac) and the in-MPC tag comparison (compare.equal)."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from mpc.builder import CircuitBuilder
from mpc.circuits import compare
from mpc.circuits import hmac as mhmac
from mpc.circuits.plain_builder import PlainBuilder
from mpc.circuits.sha1 import IV, reference_compress
from mpc.sharing import pack_bytes, unpack_bitmatrix, unpack_bytes
from tests.vectors import load

IV_BYTES = b"".join(v.to_bytes(4, "big") for v in IV)


def _pad_states(key: bytes) -> tuple[bytes, bytes]:
    """RFC 2104: SHA-1 states after K^ipad and K^opad (keys <= 64 bytes)."""
    assert len(key) <= 64
    k = key.ljust(64, b"\0")
    inner = reference_compress(IV_BYTES, bytes(x ^ 0x36 for x in k))
    outer = reference_compress(IV_BYTES, bytes(x ^ 0x5C for x in k))
    return inner, outer


def _plain_macs(keys: list[bytes], message_len: int, messages: list[bytes], adder: str):
    b = PlainBuilder(len(keys))
    states = [_pad_states(k) for k in keys]
    inner = b.input_bytes([s[0] for s in states])
    outer = b.input_bytes([s[1] for s in states])
    blocks = [mhmac.padded_blocks(m) for m in messages]
    wires = [b.input_bytes([bl[j] for bl in blocks]) for j in range(len(blocks[0]))]
    out = mhmac.hmac_sha1_96(b, inner, outer, wires, adder=adder)
    assert len(out) == 96
    return b.read_all(out)


def test_sha1_padding():
    for n in range(0, 200):
        for prefix in (0, 64, 128):
            pad = mhmac.sha1_padding(n, prefix)
            assert (prefix + n + len(pad)) % 64 == 0
            assert pad[0] == 0x80 and 9 <= len(pad) <= 72
            assert int.from_bytes(pad[-8:], "big") == 8 * (prefix + n)
            assert not any(pad[1:-8])
    assert mhmac.block_count(216) == 4
    assert mhmac.block_count(42) == 1
    with pytest.raises(ValueError):
        mhmac.sha1_padding(10, prefix_len=10)


@pytest.mark.parametrize("adder", ["prefix", "ripple"])
def test_rfc2202_vectors(adder):
    vectors = [v for v in load("hmac_sha1") if len(v["key"]) <= 64]
    assert len(vectors) >= 5
    for v in vectors:
        got = _plain_macs([v["key"]], len(v["data"]), [v["data"]], adder)[0]
        assert got == v["digest"][:12]
        if "digest_96" in v:
            assert got == v["digest_96"]


@pytest.mark.parametrize("adder", ["prefix", "ripple"])
def test_216_byte_messages(adder):
    rng = random.Random(adder)
    keys = [rng.randbytes(20) for _ in range(16)]
    messages = [rng.randbytes(216) for _ in range(16)]
    got = _plain_macs(keys, 216, messages, adder)
    assert got == [
        hmac.new(k, m, hashlib.sha1).digest()[:12] for k, m in zip(keys, messages, strict=True)
    ]


def test_key_states_in_circuit():
    keys = [bytes(range(16)), b"\xaa" * 32, b"k" * 64]
    for key in keys:
        b = CircuitBuilder()
        inner, outer = mhmac.key_states(b, b.input(8 * len(key)))
        b.output(inner)
        b.output(outer)
        circuit = b.build()
        got = [unpack_bytes(o, 1)[0] for o in circuit.evaluate_plain([pack_bytes([key])])]
        assert tuple(got) == _pad_states(key)
    with pytest.raises(ValueError):
        mhmac.key_states(CircuitBuilder(), list(range(8 * 65)))


def test_flat_block_list_and_errors():
    key, message = b"k" * 20, b"m" * 100
    inner, outer = _pad_states(key)
    b = PlainBuilder()
    flat = b.input_bytes([b"".join(mhmac.padded_blocks(message))])
    out = mhmac.hmac_sha1_96(b, b.input_bytes([inner]), b.input_bytes([outer]), flat)
    assert b.read_bytes(out) == hmac.new(key, message, hashlib.sha1).digest()[:12]
    with pytest.raises(ValueError):
        mhmac.hmac_sha1_96(b, b.input(160), b.input(160), b.input(500))
    with pytest.raises(ValueError):
        mhmac.hmac_sha1_96(b, b.input(160), b.input(160), [])


def test_real_builder_216_bytes_depth_and_values():
    """The ticket-sized MAC: 4 inner compressions + 1 outer must stay within 2,600 rounds."""
    b = CircuitBuilder()
    inner, outer = b.input(160), b.input(160)
    blocks = [b.input(512) for _ in range(mhmac.block_count(216))]
    b.output(mhmac.hmac_sha1_96(b, inner, outer, blocks))
    circuit = b.build()
    print(f"HMAC-SHA1-96 216 B (prefix): {circuit.and_count} AND, AND-depth {circuit.and_depth}")
    assert circuit.and_depth <= 2600

    rng = random.Random(216)
    keys = [rng.randbytes(20) for _ in range(70)]
    messages = [rng.randbytes(216) for _ in range(70)]
    states = [_pad_states(k) for k in keys]
    padded = [mhmac.padded_blocks(m) for m in messages]
    inputs = [pack_bytes([s[0] for s in states]), pack_bytes([s[1] for s in states])]
    inputs += [pack_bytes([p[j] for p in padded]) for j in range(len(blocks))]
    got = unpack_bytes(circuit.evaluate_plain(inputs)[0], len(keys))
    assert got == [
        hmac.new(k, m, hashlib.sha1).digest()[:12] for k, m in zip(keys, messages, strict=True)
    ]


# -- equality (tag check inside MPC) -------------------------------------------------------------


def test_equal_plain():
    rng = random.Random(5)
    xs = [rng.randbytes(12) for _ in range(64)]
    ys = [x if i % 2 else bytearray(x) for i, x in enumerate(xs)]
    for i in range(0, 64, 2):  # flip one bit (a different one each time) in the even lanes
        ys[i][(i // 2) % 12] ^= 1 << (i % 8)
    ys = [bytes(y) for y in ys]
    b = PlainBuilder(64)
    (w,) = compare.equal(b, b.input_bytes(xs), b.input_bytes(ys))
    assert [(b.values[w] >> lane) & 1 for lane in range(64)] == [i % 2 for i in range(64)]
    assert b.and_depth_of([w]) == 7 and b.live_and_count([w]) == 95


def test_equal_real_builder():
    b = CircuitBuilder()
    x, y = b.input(96), b.input(96)
    b.output(compare.equal(b, x, y))
    circuit = b.build()
    assert (circuit.and_count, circuit.and_depth) == (95, 7)
    xs = [bytes(12), b"\xff" * 12, b"tag-of-12-by", b"tag-of-12-by"]
    ys = [bytes(12), b"\xff" * 11 + b"\xfe", b"tag-of-12-by", b"Tag-of-12-by"]
    out = circuit.evaluate_plain([pack_bytes(xs), pack_bytes(ys)])[0]
    assert unpack_bitmatrix(out, 4)[:, 0].tolist() == [1, 0, 1, 0]
    with pytest.raises(ValueError):
        compare.equal(b, x, y[:5])


def test_three_party_mac_and_tag_check():
    """RFC 2202 case 2 in three parties: the MAC and its in-MPC comparison with a tag."""
    from mpc.local import run_three

    (v,) = load("hmac_sha1", test_case=2)
    inner, outer = _pad_states(v["key"])
    padded = mhmac.padded_blocks(v["data"])
    b = CircuitBuilder()
    wires_in, wires_out = b.input(160), b.input(160)
    blocks = [b.input(512) for _ in padded]
    received = b.input(96)
    mac = mhmac.hmac_sha1_96(b, wires_in, wires_out, blocks)
    b.output(mac)
    b.output(compare.equal(b, mac, received))
    circuit = b.build()
    good, bad = v["digest"][:12], bytes(12)
    inputs = [pack_bytes([inner] * 2), pack_bytes([outer] * 2)]
    inputs += [pack_bytes([p] * 2) for p in padded] + [pack_bytes([good, bad])]
    mac_bits, ok_bits = run_three(circuit, inputs)
    assert unpack_bytes(mac_bits, 2) == [good, good]
    assert unpack_bitmatrix(ok_bits, 2)[:, 0].tolist() == [1, 0]
