"""Three PartyEvaluations in one process: revealed outputs == evaluate_plain; sans-IO API."""

from __future__ import annotations

import numpy as np
import pytest

from mpc.builder import CircuitBuilder
from mpc.evaluator import EvaluationStateError, PartyEvaluation
from mpc.local import run_three
from mpc.prf import BatchIdReused, party_randomness
from mpc.sharing import reveal, share_bits
from tests.test_mpc_builder import build_program, random_inputs, random_program, run_program

SIZES = (6, 5)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("words", [1, 2, 5])
def test_random_circuits_match_plain(seed, words):
    rng = np.random.default_rng(100 * seed + words)
    prog, outputs = random_program(rng, SIZES, n_gates=300)
    circuit = build_program(prog, outputs, SIZES)
    assert circuit.and_depth > 3
    inputs = random_inputs(rng, SIZES, words)
    got = run_three(circuit, inputs, words, batch_id=seed, rng=rng)
    plain = circuit.evaluate_plain(inputs)
    direct = run_program(prog, outputs, inputs)
    for g, p, d in zip(got, plain, direct, strict=True):
        assert np.array_equal(g, p)
        assert np.array_equal(g, d)


@pytest.mark.parametrize("layer_max", [0, 100, 1 << 30])
def test_prf_window_and_per_layer_streams_agree(monkeypatch, layer_max):
    """Zero-shares drawn per layer, in windows of many layers, or a mix of both (layers
    around the size limit) give identical messages and results."""
    import mpc.evaluator as evaluator

    rng = np.random.default_rng(77)
    prog, outputs = random_program(rng, SIZES, n_gates=300)
    circuit = build_program(prog, outputs, SIZES)
    layer_bytes = [n * 3 * 8 for n in circuit.layer_sizes]
    assert min(layer_bytes) <= 100 < max(layer_bytes)  # the mixed case mixes
    inputs = random_inputs(rng, SIZES, 3)
    shares = [share_bits(v, rng) for v in inputs]
    rands = party_randomness()

    def transcript():
        parties = [PartyEvaluation(circuit, i, rands[i], 4, 3) for i in range(3)]
        for k in range(len(inputs)):
            for i in range(3):
                parties[i].set_input(k, shares[k][i])
        sends, seen = [p.start() for p in parties], []
        while sends[0] is not None:
            seen.append([s.copy() for s in sends])
            for p in parties:
                p.prepare_next()
            sends = [parties[i].receive(sends[(i + 1) % 3]) for i in range(3)]
        return seen, reveal_all(parties, circuit)

    want_sends, want = transcript()
    monkeypatch.setattr(evaluator, "WINDOW_LAYER_MAX", layer_max)
    monkeypatch.setattr(evaluator, "WINDOW_BYTES", max(64, min(layer_max * 4, 1 << 15)))
    got_sends, got = transcript()
    for a, b in zip(want_sends, got_sends, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    for a, b in zip(want, got, strict=True):
        assert np.array_equal(a, b)


def small_circuit():
    b = CircuitBuilder()
    x, y = b.input(8), b.input(8)
    t = [b.and_(a, c) for a, c in zip(x, y, strict=True)]
    u = [b.and_(b.xor(t[k], x[(k + 1) % 8]), b.not_(y[k])) for k in range(8)]
    b.output(u)
    b.output([b.const(1), b.not_(x[0])])
    return b.build()


def parties_for(circuit, inputs, words, batch_id, rands, **kw):
    parties = [PartyEvaluation(circuit, i, rands[i], batch_id, words, **kw) for i in range(3)]
    for k, value in enumerate(inputs):
        for i, s in enumerate(share_bits(value)):
            parties[i].set_input(k, s)
    return parties


def reveal_all(parties, circuit):
    return [reveal([p.output(k) for p in parties]) for k in range(len(circuit.output_wires))]


def test_many_batches_in_flight_interleaved():
    """Several evaluations share one PartyRandomness per party and advance in an interleaved
    order, as the nodes do with several batches per frame; each ends with its own result."""
    circuit = small_circuit()
    rng = np.random.default_rng(5)
    rands = party_randomness()
    batches = []
    for batch_id in range(4):
        words = batch_id + 1
        inputs = random_inputs(rng, (8, 8), words)
        parties = parties_for(circuit, inputs, words, batch_id, rands)
        batches.append((parties, inputs, [p.start() for p in parties]))
    for _ in range(circuit.and_depth):
        for b in reversed(range(len(batches))):
            parties, inputs, sends = batches[b]
            new = [parties[i].receive(sends[(i + 1) % 3]) for i in range(3)]
            batches[b] = (parties, inputs, new)
    for parties, inputs, sends in batches:
        assert sends == [None, None, None]
        assert all(p.finished for p in parties)
        got = reveal_all(parties, circuit)
        for g, w in zip(got, circuit.evaluate_plain(inputs), strict=True):
            assert np.array_equal(g, w)


def test_bytes_messages_and_reused_send_buffers():
    """z may arrive as little-endian bytes (as off a socket); reuse_send_buffers is correct."""
    circuit = small_circuit()
    rng = np.random.default_rng(6)
    inputs = random_inputs(rng, (8, 8), 3)
    parties = parties_for(circuit, inputs, 3, 9, party_randomness(), reuse_send_buffers=True)
    sends = [p.start() for p in parties]
    assert [p.round for p in parties] == [0, 0, 0]
    while sends[0] is not None:
        assert parties[0].expected_receive_shape() == sends[1].shape
        wire = [s.tobytes() for s in sends]
        sends = [parties[i].receive(memoryview(wire[(i + 1) % 3])) for i in range(3)]
    assert parties[0].round == circuit.and_depth
    for g, w in zip(reveal_all(parties, circuit), circuit.evaluate_plain(inputs), strict=True):
        assert np.array_equal(g, w)


def test_messages_are_masked():
    """What party i sends is z_i, masked by its zero-share: not x & y itself, and it changes
    with the batch label even for the same input shares."""
    b = CircuitBuilder()
    x, y = b.input(64), b.input(64)
    b.output([b.and_(p, q) for p, q in zip(x, y, strict=True)])
    circuit = b.build()
    rng = np.random.default_rng(8)
    xv, yv = random_inputs(rng, (64, 64), 2)
    xs, ys = share_bits(xv), share_bits(yv)
    rands = party_randomness()
    firsts = []
    for batch_id in (1, 2):
        parties = [PartyEvaluation(circuit, i, rands[i], batch_id, 2) for i in range(3)]
        for i in range(3):
            parties[i].set_input(0, xs[i])
            parties[i].set_input(1, ys[i])
        sends = [p.start() for p in parties]
        assert np.array_equal(sends[0] ^ sends[1] ^ sends[2], xv & yv)
        assert not any(np.array_equal(s, xv & yv) for s in sends)
        firsts.append(sends[0])
    assert not np.array_equal(firsts[0], firsts[1])


def test_state_errors_and_bad_messages():
    circuit = small_circuit()
    rands = party_randomness()
    p = PartyEvaluation(circuit, 0, rands[0], 0, 2)
    with pytest.raises(EvaluationStateError):
        p.receive(np.zeros((8, 2), dtype=np.uint64))
    with pytest.raises(EvaluationStateError):
        p.start()  # inputs missing
    with pytest.raises(ValueError):
        p.set_input(0, np.zeros((8, 2, 3), dtype=np.uint64))
    p.set_input(0, np.zeros((8, 2, 2), dtype=np.uint64))
    p.set_input(1, np.zeros((8, 2, 2), dtype=np.uint64))
    with pytest.raises(EvaluationStateError):
        p.output(0)
    send = p.start()
    assert send.shape == (8, 2)
    with pytest.raises(EvaluationStateError):
        p.start()
    with pytest.raises(EvaluationStateError):
        p.set_input(0, np.zeros((8, 2, 2), dtype=np.uint64))
    with pytest.raises(ValueError):
        p.receive(np.zeros((7, 2), dtype=np.uint64))
    with pytest.raises(ValueError):
        p.receive(b"\x00" * 15)
    with pytest.raises(ValueError):
        PartyEvaluation(circuit, 3, rands[0], 0, 2)
    PartyEvaluation(circuit, 1, rands[1], 77, 2, claim_batch_id=True)
    with pytest.raises(BatchIdReused):
        PartyEvaluation(circuit, 1, rands[1], 77, 2, claim_batch_id=True)


def test_circuit_without_and_gates_finishes_at_start():
    b = CircuitBuilder()
    x = b.input(4)
    b.output([b.xor(x[0], x[1]), b.not_(x[2]), b.const(1), x[3]])
    circuit = b.build()
    rng = np.random.default_rng(2)
    (value,) = random_inputs(rng, (4,), 2)
    (got,) = run_three(circuit, [value])
    (want,) = circuit.evaluate_plain([value])
    assert np.array_equal(got, want)
    parties = parties_for(circuit, [value], 2, 0, party_randomness())
    assert [p.start() for p in parties] == [None, None, None]


def test_batches_in_threads_share_randomness():
    """PartyRandomness objects (per-thread AES contexts) and a Circuit are shared by batches
    running concurrently in threads (the kernels release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    circuit = small_circuit()
    rands = party_randomness()
    rng = np.random.default_rng(12)
    jobs = [random_inputs(rng, (8, 8), 40) for _ in range(6)]

    def run(k):
        return run_three(circuit, jobs[k], batch_id=1000 + k, randomness=rands)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(run, range(len(jobs))))
    for inputs, got in zip(jobs, results, strict=True):
        for g, w in zip(got, circuit.evaluate_plain(inputs), strict=True):
            assert np.array_equal(g, w)
