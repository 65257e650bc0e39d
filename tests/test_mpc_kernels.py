"""numba kernels == plain numpy reference on random data, and the AND protocol identity."""

from __future__ import annotations

import numpy as np
import pytest

from mpc import kernels, kernels_ref
from mpc.builder import CircuitBuilder
from mpc.circuit import AND, CONST, NOT, PROD, SEND, XOR
from mpc.prf import party_randomness
from mpc.sharing import reveal, share_bits

ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
ZERO = np.uint64(0)
FLIPS = {0: (ONES, ZERO), 1: (ZERO, ZERO), 2: (ZERO, ONES)}


def random_words(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(0, 1 << 64, size=shape, dtype=np.uint64, endpoint=False)


def random_gates(rng, n, n_wires, ops) -> np.ndarray:
    g = np.empty((n, 4), dtype=np.int32)
    g[:, 0] = rng.choice(ops, size=n)
    g[:, 1] = rng.integers(0, n_wires, size=n)
    g[:, 2] = rng.integers(0, n_wires, size=n)
    g[:, 3] = rng.integers(0, n_wires, size=n)
    consts = g[:, 0] == CONST
    g[consts, 1] = rng.integers(0, 2, size=int(consts.sum()))
    return g


@pytest.mark.parametrize("words", [1, 3, 64])
@pytest.mark.parametrize("party", [0, 1, 2])
def test_party_round_matches_reference(words, party):
    rng = np.random.default_rng(1000 * words + party)
    n_wires = 60
    wires = random_words(rng, (n_wires, 2 * words))
    layer_ops = [AND, PROD, XOR, NOT, SEND]  # a fused layer (mpc.fusion) holds all five
    prev = random_gates(rng, 9, n_wires, layer_ops)
    recv = random_words(rng, (9, words))
    segment = random_gates(rng, 80, n_wires, [XOR, XOR, XOR, NOT, CONST])
    layer = random_gates(rng, 17, n_wires, layer_ops)
    a_own = random_words(rng, (17, words))
    a_next = random_words(rng, (17, words))
    flip0, flip1 = FLIPS[party]

    w_fast, w_ref = wires.copy(), wires.copy()
    s_fast = np.zeros((17, words), dtype=np.uint64)
    s_ref = np.zeros((17, words), dtype=np.uint64)
    kernels.party_round(w_fast, prev, recv, segment, layer, a_own, a_next, s_fast, flip0, flip1)
    kernels_ref.party_round(w_ref, prev, recv, segment, layer, a_own, a_next, s_ref, flip0, flip1)
    assert np.array_equal(w_fast, w_ref)
    assert np.array_equal(s_fast, s_ref)
    assert not np.array_equal(w_fast, wires)  # the round did something


@pytest.mark.parametrize("words", [1, 2, 17])
def test_plain_circuit_matches_reference(words):
    rng = np.random.default_rng(words)
    wires = random_words(rng, (40, words))
    gates = random_gates(rng, 300, 40, [XOR, AND, NOT, CONST, PROD, SEND])
    w_fast, w_ref = wires.copy(), wires.copy()
    kernels.plain_circuit(w_fast, gates)
    kernels_ref.plain_circuit(w_ref, gates)
    assert np.array_equal(w_fast, w_ref)


def test_single_steps_match_reference():
    rng = np.random.default_rng(7)
    words = 5
    wires = random_words(rng, (30, 2 * words))
    prev = random_gates(rng, 6, 30, [AND])
    recv = random_words(rng, (6, words))
    a, b = wires.copy(), wires.copy()
    kernels.install_z(a, prev, recv, words)
    kernels_ref.install_z(b, prev, recv, words)
    assert np.array_equal(a, b)
    seg = random_gates(rng, 50, 30, [XOR, NOT, CONST])
    kernels.local_gates(a, seg, words, ONES, ZERO)
    kernels_ref.local_gates(b, seg, words, ONES, ZERO)
    assert np.array_equal(a, b)


def test_and_shares_reconstruct_product():
    """XOR of the three parties' z_i is x & y (the zero-shares cancel), and after installing
    z_{i+1} the output wires form a consistent replicated sharing of x & y."""
    rng = np.random.default_rng(3)
    words, n = 4, 10
    x = random_words(rng, (n, words))
    y = random_words(rng, (n, words))
    xs, ys = share_bits(x, rng), share_bits(y, rng)
    rands = party_randomness()
    layer = np.array([[AND, j, n + j, 2 * n + j] for j in range(n)], dtype=np.int32)
    walls, sends = [], []
    for i in range(3):
        w = np.zeros((3 * n, 2, words), dtype=np.uint64)
        w[:n], w[n : 2 * n] = xs[i], ys[i]
        own = np.empty((n, words), dtype=np.uint64)
        nxt = np.empty((n, words), dtype=np.uint64)
        rands[i].zero_share_streams(5, 0, own, nxt)
        send = np.empty((n, words), dtype=np.uint64)
        empty = kernels.empty_layer()
        none = np.zeros((0, words), dtype=np.uint64)
        flat = w.reshape(3 * n, 2 * words)
        kernels.party_round(flat, empty, none, empty, layer, own, nxt, send, *FLIPS[i])
        walls.append(w)
        sends.append(send)
    assert np.array_equal(sends[0] ^ sends[1] ^ sends[2], x & y)
    assert not np.array_equal(sends[0], x & y)  # masked by the zero-share
    for i in range(3):
        flat = walls[i].reshape(3 * n, 2 * words)
        none = np.zeros((0, words), dtype=np.uint64)
        empty = kernels.empty_layer()
        kernels.party_round(
            flat, layer, sends[(i + 1) % 3], empty, empty, none, none, none, *FLIPS[i]
        )
    assert np.array_equal(reveal([w[2 * n :] for w in walls]), x & y)


def random_builder(rng: np.random.Generator, n_gates: int) -> CircuitBuilder:
    b = CircuitBuilder()
    vals = b.input(9) + b.input(4)
    for _ in range(n_gates):
        i = len(vals) - 1 - min(len(vals) - 1, int(rng.geometric(0.05)) - 1)
        j = int(rng.integers(0, len(vals)))
        r = rng.random()
        if r < 0.3:
            vals.append(b.and_(vals[i], vals[j]))
        elif r < 0.85:
            vals.append(b.xor(vals[i], vals[j]))
        elif r < 0.97:
            vals.append(b.not_(vals[i]))
        else:
            vals.append(b.const(int(rng.integers(0, 2))))
    for _ in range(3):
        b.output([vals[int(k)] for k in rng.integers(len(vals) // 3, len(vals), size=6)])
    b.output([vals[0], b.const(1)])
    return b


@pytest.mark.parametrize("placement", ["late", "early"])
@pytest.mark.parametrize(("seed", "n_gates"), [(0, 50), (1, 400), (2, 3000), (3, 3000)])
def test_scheduler_matches_reference(seed, n_gates, placement):
    """The numba scheduler gives exactly the plain Python scheduler's gates, cuts and
    registers."""
    b = random_builder(np.random.default_rng(seed), n_gates)
    fast = b.build(local_placement=placement)
    ref = b.build(local_placement=placement, reference=True)
    assert np.array_equal(fast.gates, ref.gates)
    assert np.array_equal(fast.bounds, ref.bounds)
    assert fast.n_wires == ref.n_wires
    for f, r in zip(
        fast.input_wires + fast.output_wires, ref.input_wires + ref.output_wires, strict=True
    ):
        assert np.array_equal(f, r)
    assert fast.digest() == ref.digest()
    assert fast.and_depth > 0 or n_gates < 100
