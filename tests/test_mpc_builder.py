"""CircuitBuilder / Circuit: folding, dead-gate elimination, layering, evaluate_plain."""

from __future__ import annotations

import numpy as np
import pytest

from mpc.builder import CircuitBuilder
from mpc.circuit import AND, CONST, NOT, XOR, Circuit
from mpc.sharing import pack_ints, unpack_ints

# -- a random program and an independent evaluator (used by test_mpc_local too) ----------------


def random_program(rng: np.random.Generator, input_sizes=(6, 5), n_gates=250, p_and=0.35):
    """A random straight-line program: ("in", k, p) / ("xor", i, j) / ("and", i, j) /
    ("not", i) / ("const", bit) over value indices, plus output index lists. Operands lean
    towards recent values so the AND depth grows."""
    prog = [("in", k, p) for k, size in enumerate(input_sizes) for p in range(size)]
    for _ in range(n_gates):
        n = len(prog)
        i = int(n - 1 - min(n - 1, rng.geometric(0.08) - 1))
        j = int(rng.integers(0, n))
        r = rng.random()
        if r < p_and:
            prog.append(("and", i, j))
        elif r < 0.85:
            prog.append(("xor", i, j))
        elif r < 0.97:
            prog.append(("not", i))
        else:
            prog.append(("const", int(rng.integers(0, 2))))
    n = len(prog)
    outputs = [
        [int(x) for x in rng.integers(n // 2, n, size=7)],
        [int(x) for x in rng.integers(0, n, size=4)],
    ]
    return prog, outputs


def build_program(prog, outputs, input_sizes=(6, 5), placement="late", fuse=True) -> Circuit:
    b = CircuitBuilder()
    ins = [b.input(s) for s in input_sizes]
    vals = []
    for step in prog:
        kind = step[0]
        if kind == "in":
            vals.append(ins[step[1]][step[2]])
        elif kind == "xor":
            vals.append(b.xor(vals[step[1]], vals[step[2]]))
        elif kind == "and":
            vals.append(b.and_(vals[step[1]], vals[step[2]]))
        elif kind == "not":
            vals.append(b.not_(vals[step[1]]))
        else:
            vals.append(b.const(step[1]))
    for out in outputs:
        b.output([vals[i] for i in out])
    return b.build(local_placement=placement, fuse=fuse)


def run_program(prog, outputs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Evaluate the program directly on bit-sliced words (rows of the inputs)."""
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    words = inputs[0].shape[1]
    vals = []
    for step in prog:
        kind = step[0]
        if kind == "in":
            vals.append(inputs[step[1]][step[2]])
        elif kind == "xor":
            vals.append(vals[step[1]] ^ vals[step[2]])
        elif kind == "and":
            vals.append(vals[step[1]] & vals[step[2]])
        elif kind == "not":
            vals.append(vals[step[1]] ^ ones)
        else:
            vals.append(np.full(words, ones if step[1] else 0, dtype=np.uint64))
    return [np.array([vals[i] for i in out], dtype=np.uint64) for out in outputs]


def random_inputs(rng, sizes, words):
    return [
        rng.integers(0, 1 << 64, size=(s, words), dtype=np.uint64, endpoint=False) for s in sizes
    ]


# -- folding -----------------------------------------------------------------------------------


def test_constant_folding_and_sharing():
    b = CircuitBuilder()
    x, y = b.input(2)
    zero, one = b.const(0), b.const(1)
    assert b.const(0) == zero and zero != one
    assert b.xor(x, zero) == x and b.xor(zero, x) == x
    assert b.xor(x, x) == zero
    assert b.and_(x, one) == x and b.and_(zero, x) == zero
    assert b.and_(x, x) == x
    nx = b.not_(x)
    assert b.not_(x) == nx and b.not_(nx) == x
    assert b.xor(x, one) == nx
    assert b.xor(x, nx) == one
    assert b.and_(x, nx) == zero
    assert b.not_(zero) == one and b.xor(one, one) == zero
    g = b.and_(x, y)
    assert b.and_(y, x) == g  # commutative sharing
    assert b.xor(y, x) == b.xor(x, y)
    assert b.and_count == 1


def test_bad_wires_rejected():
    b = CircuitBuilder()
    (x,) = b.input(1)
    with pytest.raises(ValueError):
        b.xor(x, 99)
    with pytest.raises(ValueError):
        b.and_(-1, x)
    with pytest.raises(TypeError):
        b.not_("a")
    with pytest.raises(ValueError):
        b.const(2)
    with pytest.raises(ValueError):
        b.output([x, 5])
    assert b.xor(np.int64(x), np.int32(x)) == b.const(0)  # numpy ints are fine


# -- structure ---------------------------------------------------------------------------------


def test_dead_gates_removed_and_layering():
    b = CircuitBuilder()
    x = b.input(4)
    a1 = b.and_(x[0], x[1])  # depth 1
    a2 = b.and_(a1, x[2])  # depth 2
    a3 = b.and_(a2, b.xor(x[3], a1))  # depth 3
    b.and_(x[2], x[3])  # dead
    b.xor(a3, x[0])  # dead
    b.output([a3, b.xor(a1, x[3])])
    c = b.build()
    assert c.and_count == 3
    assert c.and_depth == 3
    assert c.layer_sizes == [1, 1, 1]
    assert c.xor_count == 1  # x3 ^ a1 is shared by both uses
    assert len(c.segments) == 4
    for layer in c.and_layers:
        assert (layer[:, 0] == AND).all()
    for seg in c.segments:
        assert np.isin(seg[:, 0], [XOR, NOT, CONST]).all()
    assert int(c.gates.shape[0]) == c.gate_count == 4


def test_xor_work_is_folded_between_and_layers():
    """Local gates sit in the segment right after the AND layer their inputs come from."""
    b = CircuitBuilder()
    x = b.input(3)
    t = b.xor(x[0], x[1])  # segment 0
    a = b.and_(t, x[2])  # layer 1
    u = b.not_(b.xor(a, x[0]))  # segment 1
    v = b.and_(u, t)  # layer 2
    b.output([b.xor(v, x[1])])  # segment 2
    c = b.build(fuse=False)
    assert [len(s) for s in c.segments] == [1, 2, 1]
    assert c.segments[1][:, 0].tolist() == [XOR, NOT]
    assert [layer[:, 0].tolist() for layer in c.and_layers] == [[AND], [AND]]


def test_register_allocation_reuses_wires():
    b = CircuitBuilder()
    (x,) = b.input(1)
    (y,) = b.input(1)
    acc = x
    for _ in range(500):
        acc = b.and_(b.xor(acc, y), b.not_(acc))
    b.output([acc])
    c = b.build()
    assert c.and_depth == 500
    assert c.n_wires < 10  # a chain needs a handful of registers, not 1500


def test_late_placement_defers_xor_only_work():
    """A SHA-1-style XOR-only expansion of the input, consumed one word per AND layer, is
    computed just before each use ("late"), not all in segment 0 ("early")."""
    b = CircuitBuilder()
    w = b.input(16)
    (acc,) = b.input(1)
    for t in range(16, 80):  # W_t = W_{t-3} ^ W_{t-8} ^ W_{t-14} ^ W_{t-16} (no rotation)
        w.append(b.xor(b.xor(w[t - 3], w[t - 8]), b.xor(w[t - 14], w[t - 16])))
    for t in range(80):
        acc = b.and_(acc, w[t])
    b.output([acc])
    late, early = b.build(), b.build(local_placement="early")
    assert late.and_depth == early.and_depth == 80
    assert late.input_sizes == [16, 1]  # extending the list input() returned changes nothing
    assert late.n_wires < early.n_wires / 2
    assert len(early.segments[0]) > 100 and len(late.segments[0]) < 10
    rng = np.random.default_rng(0)
    inputs = random_inputs(rng, (16, 1), 2)
    assert np.array_equal(late.evaluate_plain(inputs)[0], early.evaluate_plain(inputs)[0])
    with pytest.raises(ValueError):
        b.build(local_placement="sideways")


def test_outputs_may_be_inputs_constants_or_repeated():
    b = CircuitBuilder()
    x = b.input(3)
    b.output([x[2], b.const(1), b.const(0), x[2], b.not_(x[0])])
    c = b.build()
    assert c.and_depth == 0
    for v in range(8):
        bits = np.array([(v >> (2 - k)) & 1 for k in range(3)])
        (out,) = c.evaluate_plain([bits])
        assert out.tolist() == [bits[2], 1, 0, bits[2], 1 - bits[0]]
    assert (c.gates[:, 0] == CONST).sum() == 2


# -- evaluate_plain ------------------------------------------------------------------------------


def ripple_add(b, x, y):
    """MSB-first n-bit adder mod 2^n (test circuit)."""
    n = len(x)
    carry = b.const(0)
    out = [0] * n
    for k in range(n - 1, -1, -1):
        t = b.xor(x[k], y[k])
        out[k] = b.xor(t, carry)
        carry = b.xor(b.and_(x[k], y[k]), b.and_(t, carry))
    return out


def test_evaluate_plain_adder_exhaustive():
    b = CircuitBuilder()
    x, y = b.input(5), b.input(5)
    b.output(ripple_add(b, x, y))
    c = b.build()
    values = [(u, v) for u in range(32) for v in range(32)]
    xs = pack_ints([u for u, _ in values], 5)
    ys = pack_ints([v for _, v in values], 5)
    (out,) = c.evaluate_plain([xs, ys])
    assert unpack_ints(out, len(values)) == [(u + v) % 32 for u, v in values]
    # the plain-bits form gives the same answers
    for u, v in values[::37]:
        bits = [np.array([(n >> (4 - k)) & 1 for k in range(5)]) for n in (u, v)]
        (o,) = c.evaluate_plain(bits)
        assert int("".join(map(str, o.tolist())), 2) == (u + v) % 32


@pytest.mark.parametrize("placement", ["late", "early"])
@pytest.mark.parametrize("seed", range(6))
def test_random_programs_evaluate_like_the_program(seed, placement):
    rng = np.random.default_rng(seed)
    prog, outputs = random_program(rng)
    c = build_program(prog, outputs, placement=placement)
    inputs = random_inputs(rng, (6, 5), 3)
    got = c.evaluate_plain(inputs)
    want = run_program(prog, outputs, inputs)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)


def test_evaluate_plain_checks_inputs():
    b = CircuitBuilder()
    x = b.input(4)
    b.output([b.and_(x[0], x[1])])
    c = b.build()
    with pytest.raises(ValueError):
        c.evaluate_plain([np.zeros(3, dtype=np.uint8)])
    with pytest.raises(ValueError):
        c.evaluate_plain([])
    with pytest.raises(TypeError):
        c.evaluate_plain([np.zeros((4, 1), dtype=np.int64)])


def test_circuit_repr_and_counts():
    b = CircuitBuilder()
    x = b.input(2)
    b.output([b.and_(x[0], b.not_(x[1]))])
    c = b.build()
    assert (c.and_count, c.xor_count, c.not_count, c.and_depth) == (1, 0, 1, 1)
    assert "and_depth=1" in repr(c)
    assert c.input_sizes == [2] and c.output_sizes == [1]
    assert (c.segments[0][:, 0] == NOT).all()


def test_digest_identifies_the_schedule():
    rng = np.random.default_rng(3)
    prog, outputs = random_program(rng)
    a, b = build_program(prog, outputs), build_program(prog, outputs)
    assert a.digest() == b.digest() and len(a.digest()) == 64
    assert build_program(prog, outputs, placement="early").digest() != a.digest()
    prog2, outputs2 = random_program(np.random.default_rng(4))
    assert build_program(prog2, outputs2).digest() != a.digest()
