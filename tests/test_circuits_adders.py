"""Adders modulo 2^32 (mpc.circuits.adders): values, AND counts and AND-depths."""

from __future__ import annotations

import random

import pytest

from mpc.builder import CircuitBuilder
from mpc.circuits import adders
from mpc.circuits.plain_builder import PlainBuilder
from mpc.sharing import pack_ints, unpack_ints

MOD = 1 << 32
EDGE = [0, 1, MOD - 1, 0x80000000, 0x7FFFFFFF, 0x55555555, 0xAAAAAAAA]


def _operands(count: int, lanes: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    ops = [[rng.getrandbits(32) for _ in range(lanes)] for _ in range(count)]
    for i, (x, y) in enumerate((x, y) for x in EDGE for y in EDGE):  # every edge pair
        ops[0][i] = x
        ops[1 % count][i] = y
    return ops


def _plain_sum(fn, operands: list[list[int]]) -> tuple[list[int], int, int]:
    lanes = len(operands[0])
    b = PlainBuilder(lanes)
    wires = [b.input_bytes([v.to_bytes(4, "big") for v in op]) for op in operands]
    out = fn(b, *wires) if fn is not adders.csa_sum else fn(b, wires)
    got = [int.from_bytes(v, "big") for v in b.read_all(out)]
    return got, b.live_and_count(out), b.and_depth_of(out)


@pytest.mark.parametrize(
    ("fn", "and_count", "depth"),
    [(adders.ripple_add, 31, 31), (adders.sklansky_add, 151, 6), (adders.prefix_add, 184, 5)],
)
def test_two_operand_adders(fn, and_count, depth):
    ops = _operands(2, 200, seed=depth)
    got, ands, d = _plain_sum(fn, ops)
    assert got == [(x + y) % MOD for x, y in zip(*ops, strict=True)]
    assert (ands, d) == (and_count, depth)


@pytest.mark.parametrize(("count", "depth"), [(1, 0), (2, 6), (3, 6), (4, 7), (5, 8), (9, 9)])
def test_csa_sum(count, depth):
    ops = _operands(count, 200, seed=count)
    got, _, d = _plain_sum(adders.csa_sum, ops)
    assert got == [sum(col) % MOD for col in zip(*ops, strict=True)]
    assert d == depth


def test_maj_and_constants():
    b = PlainBuilder(8)
    x, y, z = (b.input(1, [v])[0] for v in (0b11110000, 0b11001100, 0b10101010))
    assert b.values[adders.maj(b, x, y, z)] == 0b11101000
    one = adders.ONE
    assert b.values[adders.maj(b, x, y, one)] == 0b11111100  # x | y
    assert adders.maj(b, x, None, z) is not None
    assert adders.xor_bit(b, one, one) is None
    assert adders.const_bits(5, 4) == [one, None, one, None]


def test_width_mismatch_rejected():
    b = PlainBuilder()
    with pytest.raises(ValueError):
        adders.sklansky_add(b, b.input(32), b.input(16))


@pytest.mark.parametrize("name", ["ripple_add", "sklansky_add", "prefix_add", "csa_sum"])
def test_real_builder(name):
    n_ops = 5 if name == "csa_sum" else 2
    b = CircuitBuilder()
    wires = [b.input(32) for _ in range(n_ops)]
    fn = getattr(adders, name)
    b.output(fn(b, wires) if name == "csa_sum" else fn(b, *wires))
    circuit = b.build()
    expected_depth = {"ripple_add": 31, "sklansky_add": 6, "prefix_add": 5, "csa_sum": 8}[name]
    assert circuit.and_depth == expected_depth
    ops = _operands(n_ops, 130, seed=99)
    out = circuit.evaluate_plain([pack_ints(op, 32) for op in ops])[0]
    assert unpack_ints(out, 130) == [sum(col) % MOD for col in zip(*ops, strict=True)]
