"""Fused AND layers (mpc.fusion): sums of products are reshared, the outputs never change."""

from __future__ import annotations

import numpy as np
import pytest

from mpc import kernels, kernels_ref
from mpc.builder import CircuitBuilder
from mpc.circuit import AND, INPUT, NOT, PROD, SEND, XOR
from mpc.local import run_three
from tests.test_mpc_builder import build_program, random_program


def _same_outputs(fused, plain, n_words: int = 2, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(0, 1 << 64, size=(n, n_words), dtype=np.uint64)
              for n in plain.input_sizes]
    for got, want in zip(fused.evaluate_plain(inputs), plain.evaluate_plain(inputs), strict=True):
        assert np.array_equal(got, want)


def test_fused_layers_reshare_the_sum_not_the_product():
    """With fusion (the default) the XOR/NOT work that only feeds the next reshared wire runs
    inside the layer on additive shares, and the sum is sent instead of the product."""
    b = CircuitBuilder()
    x = b.input(3)
    t = b.xor(x[0], x[1])
    a = b.and_(t, x[2])
    u = b.not_(b.xor(a, x[0]))  # read by the next AND: reshared, a itself is not
    v = b.and_(u, t)
    b.output([b.xor(v, x[1])])  # the output is reshared, v is not
    c = b.build()
    assert [layer[:, 0].tolist() for layer in c.and_layers] == [
        [PROD, XOR, NOT, SEND],
        [PROD, XOR, SEND],
    ]
    assert [len(s) for s in c.segments] == [1, 0, 0]
    assert c.layer_sizes == [1, 1] and (c.and_count, c.sent_count) == (2, 2)
    for bits in range(8):
        plain = [(bits >> k) & 1 for k in range(3)]
        want = (((plain[0] ^ plain[1]) & plain[2]) ^ plain[0] ^ 1) & (plain[0] ^ plain[1])
        assert c.evaluate_plain([np.array(plain, dtype=np.uint8)])[0].tolist() == [
            want ^ plain[1]
        ]


def test_fusion_sends_one_word_per_independent_sum():
    """Three products folded into two needed sums and their XOR: two words go out, and the
    third sum is rebuilt after the round from the two reshared ones."""
    b = CircuitBuilder()
    x = b.input(6)
    p = [b.and_(x[0], x[1]), b.and_(x[2], x[3]), b.and_(x[4], x[5])]
    s1 = b.xor(p[0], p[1])
    s2 = b.xor(b.xor(p[1], p[2]), x[0])
    s3 = b.xor(s1, s2)  # = p0 ^ p2 ^ x0: dependent
    b.output([b.and_(s1, x[5]), b.and_(s2, x[4]), b.and_(s3, x[3])])
    fused, plain = b.build(), b.build(fuse=False)
    assert fused.layer_sizes == [2, 3] and plain.layer_sizes == [3, 3]
    rng = np.random.default_rng(5)
    words = rng.integers(0, 1 << 64, size=(6, 2), dtype=np.uint64)
    for got, want in zip(fused.evaluate_plain([words]), plain.evaluate_plain([words]),
                         strict=True):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("seed", range(12))
def test_fusion_keeps_outputs_and_rounds_and_sends_no_more(seed):
    prog, outputs = random_program(np.random.default_rng(seed), n_gates=400, p_and=0.3)
    fused = build_program(prog, outputs)
    plain = build_program(prog, outputs, fuse=False)
    _same_outputs(fused, plain, seed=seed)
    assert fused.and_depth == plain.and_depth
    assert fused.and_count <= plain.and_count  # an AND whose products all cancel is dropped
    assert all(f <= p for f, p in zip(fused.layer_sizes, plain.layer_sizes, strict=True))
    assert plain.sent_count == plain.and_count


def test_products_that_cancel_keep_their_round():
    """x ^ (p ^ q) ^ q has no product left: rebuilt from earlier wires alone it would move a
    round earlier and shift every depth after it, so a sent wire of its layer is XORed in
    twice: same value, same round, nothing more on the link."""
    b = CircuitBuilder()
    x = b.input(4)
    p, q = b.and_(x[0], x[1]), b.and_(x[2], x[3])
    w = b.xor(b.xor(x[0], b.xor(p, q)), q)  # = x0 ^ p
    b.output([b.and_(w, x[1]), b.and_(b.xor(p, q), x[2]), b.and_(b.xor(w, p), x[3])])
    fused, plain = b.build(), b.build(fuse=False)
    assert fused.and_depth == plain.and_depth == 2
    assert fused.layer_sizes == [2, 3]  # w (products p) and p ^ q are sent; w ^ p is rebuilt
    _same_outputs(fused, plain)


def test_a_component_over_256_products_is_left_unfused():
    """Past 256 products a component is not solved: its ANDs are reshared as without fusion,
    so fusion never sends more than the AND count."""
    b = CircuitBuilder()
    x = b.input(2 * 300)
    total = b.and_(x[0], x[1])
    for k in range(1, 300):
        total = b.xor(total, b.and_(x[2 * k], x[2 * k + 1]))
    other = b.xor(total, x[0])  # dependent on total
    b.output([b.and_(total, x[3]), b.and_(other, x[5])])
    fused, plain = b.build(), b.build(fuse=False)
    assert fused.layer_sizes == plain.layer_sizes == [300, 2]
    _same_outputs(fused, plain)


def test_fused_aes_through_three_parties_matches_the_clear_circuit():
    from mpc.circuits import aes

    b = CircuitBuilder()
    keys = [b.input(128) for _ in range(11)]
    block = b.input(128)
    b.output(aes.encrypt_block(b, keys, block))
    fused = b.build()
    assert fused.sent_count < fused.and_count
    rng = np.random.default_rng(9)
    inputs = [rng.integers(0, 1 << 64, size=(n, 3), dtype=np.uint64) for n in fused.input_sizes]
    assert np.array_equal(run_three(fused, inputs, 3)[0], fused.evaluate_plain(inputs)[0])


@pytest.mark.parametrize("schedule", [kernels.schedule_circuit, kernels_ref.schedule_circuit])
def test_scheduler_refuses_a_local_gate_reading_a_wire_never_reshared(schedule):
    """reshare flags that leave a later-read sum unsent are a fusion bug: refused, not run."""
    ops = np.array([INPUT, INPUT, INPUT, AND, XOR, AND], dtype=np.int32)
    in0 = np.array([0, 0, 0, 0, 3, 4], dtype=np.int32)
    in1 = np.array([0, 0, 0, 1, 2, 2], dtype=np.int32)
    ids = np.arange(3, dtype=np.int64)
    outputs = np.array([5], dtype=np.int64)
    ok = np.array([0, 0, 0, 0, 1, 1], dtype=np.uint8)  # the sum is reshared
    rows, _, _, _ = schedule(ops, in0, in1, ids, outputs, True, ok)
    assert rows[:, 0].tolist() == [PROD, XOR, SEND, AND]
    unsent = np.zeros(6, dtype=np.uint8)  # nothing of round 1 sent: the XOR after it can't run
    with pytest.raises(ValueError, match="never reshared"):
        schedule(ops, in0, in1, ids, outputs, True, unsent)
