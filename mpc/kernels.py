"""numba kernels: one generic evaluator over gate arrays, compiled once and cached.

Party wires are a C-contiguous uint64 array viewed as ``(n_wires, 2 * words)``: columns
``[0, words)`` hold share x_i, columns ``[words, 2 * words)`` hold x_{i+1} (party i's two
replicated shares; 64 instances per word). Gate arrays are int32 rows (opcode, in0, in1, out)
with the opcodes of :mod:`mpc.circuit`.

One call of :func:`party_round` does all local work of one round: install the z_{i+1} received
for the previous AND layer, run the local segment, and compute this party's z_i for the next
AND layer into the contiguous send buffer. No Python loop over gates; single-threaded
(research/limits.md §1: threads only oversubscribe with 3 parties on 2 cores). The plain numpy
twins in :mod:`mpc.kernels_ref` are the reference the tests compare against.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mpc.fusion import fuse_layers, gate_inputs, live_and_depth

# Opcodes (must match mpc.circuit; literals here keep the kernels free of globals lookups).
_XOR = 0
_AND = 1
_NOT = 2
_CONST = 3
_PROD = 5
_SEND = 6

ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
ZERO = np.uint64(0)


@njit(cache=True, nogil=True)
def install_z(wires, prev_layer, recv, words):
    """Write z_{i+1} (received from party i+1) into share slot 1 of each wire the previous
    layer sent (its AND and SEND rows, in order)."""
    j = 0
    for g in range(prev_layer.shape[0]):
        op = prev_layer[g, 0]
        if op == _AND or op == _SEND:
            o = prev_layer[g, 3]
            for k in range(words):
                wires[o, words + k] = recv[j, k]
            j += 1


@njit(cache=True, nogil=True)
def local_gates(wires, gates, words, flip0, flip1):
    """XOR / NOT / CONST on both shares. NOT and CONST touch x_0 only (public constants
    are shared as (c, 0, 0)), which party 0 holds in slot 0 and party 2 in slot 1: flip0 and
    flip1 are the all-ones word for those parties and 0 otherwise."""
    w2 = 2 * words
    for g in range(gates.shape[0]):
        op = gates[g, 0]
        a = gates[g, 1]
        o = gates[g, 3]
        if op == _XOR:
            b = gates[g, 2]
            for k in range(w2):
                wires[o, k] = wires[a, k] ^ wires[b, k]
        elif op == _NOT:
            for k in range(words):
                wires[o, k] = wires[a, k] ^ flip0
            for k in range(words, w2):
                wires[o, k] = wires[a, k] ^ flip1
        elif op == _CONST:
            c0 = flip0 if a != 0 else np.uint64(0)
            c1 = flip1 if a != 0 else np.uint64(0)
            for k in range(words):
                wires[o, k] = c0
            for k in range(words, w2):
                wires[o, k] = c1


@njit(cache=True, nogil=True)
def and_cross_terms(wires, layer, words, alpha_own, alpha_next, send, flip0):
    """One AND layer on additive shares in share slot 0 (Araki et al. 2016 §2.2), row by row.

    AND and PROD: x_i&y_i ^ x_i&y_{i+1} ^ x_{i+1}&y_i, party i's additive share of x&y. XOR and
    NOT act on slot 0 alone (NOT flips party 0's share, as x_0 sits there). AND and SEND then
    mask the wire with the zero-share alpha_i = F(k_i) ^ F(k_{i+1}) of the next send row, which
    makes it z_i: kept in slot 0 and written to that row of the send buffer (reading a wire
    before or after its mask gives additive shares of the same value)."""
    j = 0
    for g in range(layer.shape[0]):
        op = layer[g, 0]
        a = layer[g, 1]
        b = layer[g, 2]
        o = layer[g, 3]
        if op == _AND:
            for k in range(words):
                xa = wires[a, k]
                xb = wires[a, words + k]
                ya = wires[b, k]
                yb = wires[b, words + k]
                z = (xa & (ya ^ yb)) ^ (xb & ya) ^ alpha_own[j, k] ^ alpha_next[j, k]
                wires[o, k] = z
                send[j, k] = z
            j += 1
        elif op == _PROD:
            for k in range(words):
                xa = wires[a, k]
                ya = wires[b, k]
                wires[o, k] = (xa & (ya ^ wires[b, words + k])) ^ (wires[a, words + k] & ya)
        elif op == _XOR:
            for k in range(words):
                wires[o, k] = wires[a, k] ^ wires[b, k]
        elif op == _NOT:
            for k in range(words):
                wires[o, k] = wires[a, k] ^ flip0
        else:  # SEND
            for k in range(words):
                z = wires[o, k] ^ alpha_own[j, k] ^ alpha_next[j, k]
                wires[o, k] = z
                send[j, k] = z
            j += 1


@njit(cache=True, nogil=True)
def party_round(wires, prev_layer, recv, segment, layer, alpha_own, alpha_next, send, flip0, flip1):
    """One round of one party: install received z, run the local segment, compute the next
    AND layer's z into ``send``. Any of the three steps may be empty (0-row arrays)."""
    words = wires.shape[1] // 2
    install_z(wires, prev_layer, recv, words)
    local_gates(wires, segment, words, flip0, flip1)
    and_cross_terms(wires, layer, words, alpha_own, alpha_next, send, flip0)


@njit(cache=True, nogil=True)
def plain_circuit(wires, gates):
    """Evaluate a whole scheduled circuit in the clear on ``(n_wires, words)`` words."""
    words = wires.shape[1]
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    for g in range(gates.shape[0]):
        op = gates[g, 0]
        a = gates[g, 1]
        b = gates[g, 2]
        o = gates[g, 3]
        if op == _XOR:
            for k in range(words):
                wires[o, k] = wires[a, k] ^ wires[b, k]
        elif op == _AND or op == _PROD:
            for k in range(words):
                wires[o, k] = wires[a, k] & wires[b, k]
        elif op == _NOT:
            for k in range(words):
                wires[o, k] = wires[a, k] ^ ones
        elif op == _SEND:
            continue
        else:
            c = ones if a != 0 else np.uint64(0)
            for k in range(words):
                wires[o, k] = c


def empty_layer() -> np.ndarray:
    """A 0-row gate array (for rounds without a previous or next AND layer)."""
    return np.zeros((0, 4), dtype=np.int32)


def warm_up() -> None:
    """Load (or compile) every kernel variant the evaluator, evaluate_plain and the circuit
    scheduler use.

    numba pays a one-time start-up on the first call in a process (about 0.5 s from the disk
    cache, several seconds on a cold cache); call this when a node starts, before it reports
    ready, so the first real round does not. Received z that come straight from bytes are
    read-only arrays, a separate variant, so both are touched.
    """
    wires = np.zeros((2, 2), dtype=np.uint64)
    empty = empty_layer()
    none = np.zeros((0, 1), dtype=np.uint64)
    read_only = np.frombuffer(b"", dtype="<u8").reshape(0, 1)
    party_round(wires, empty, none, empty, empty, none, none, none, ZERO, ZERO)
    party_round(wires, empty, read_only, empty, empty, none, none, none, ZERO, ZERO)
    plain_circuit(np.zeros((2, 1), dtype=np.uint64), empty)
    ids = np.arange(2, dtype=np.int64)
    ops = np.array([_INPUT, _INPUT, _AND], dtype=np.int32)
    zeros = np.zeros(3, dtype=np.int32)
    second = np.array([0, 0, 1], dtype=np.int32)
    schedule_circuit(ops, zeros, second, ids, ids + 1, True, np.zeros(0, dtype=np.uint8))
    fuse_layers(ops, zeros, second, ids + 1)


# -- circuit scheduling (used by mpc.circuit.build_circuit) -----------------------------------

_INPUT = 4


@njit(cache=True, nogil=True)
def schedule_circuit(ops, in0, in1, input_ids, output_ids, late, reshare):
    """Dead-gate elimination, AND depth, placement and register allocation of a topologically
    ordered gate list (one entry per builder wire; see mpc.circuit).

    ``reshare`` flags the wires whose replicated shares come from resharing in their layer
    (:func:`mpc.fusion.fuse_layers`); an empty array means every AND and nothing else. The
    wires of depth d that feed a reshared wire run inside AND layer d on additive shares (AND
    -> PROD when not itself reshared, XOR/NOT as they are, SEND after a reshared XOR/NOT);
    every other XOR/NOT/CONST is a local gate placed in a segment.

    Returns (rows, bounds, reg, n_regs): rows (G, 4) int32 in schedule order; bounds cut them
    into segment 0, AND layer 1, segment 1, ..., segment D; reg maps builder wire -> register
    (-1 for dead wires). Same algorithm as mpc.kernels_ref.schedule_circuit, compiled: large
    circuits (HMAC, Kerberos decryption) have millions of builder calls' worth of gates.
    """
    n = ops.shape[0]
    # Dead-gate elimination, backwards from the outputs; AND depth.
    live, depth = live_and_depth(ops, in0, in1, output_ids)
    and_depth = 0
    for w in range(n):
        if live[w] and depth[w] > and_depth:
            and_depth = depth[w]
    # In-layer gates: every AND, and the depth-d XOR/NOT that feed a reshared wire.
    sent = np.zeros(n, dtype=np.uint8)
    inlayer = np.zeros(n, dtype=np.uint8)
    for w in range(n - 1, -1, -1):
        if not live[w]:
            continue
        op = ops[w]
        if reshare.shape[0] == 0:
            sent[w] = op == _AND
        elif reshare[w]:
            sent[w] = 1
        if op == _AND or (depth[w] > 0 and (sent[w] or inlayer[w])):
            inlayer[w] = 1
            if op == _XOR or op == _NOT:
                if depth[in0[w]] == depth[w]:
                    inlayer[in0[w]] = 1
                if op == _XOR and depth[in1[w]] == depth[w]:
                    inlayer[in1[w]] = 1
    for w in range(n):
        op = ops[w]
        if live[w] and depth[w] > 0 and not inlayer[w] and (op == _XOR or op == _NOT):
            # a local gate after its round may read only wires that exist as shares by then
            for x in gate_inputs(op, in0[w], in1[w]):
                if depth[x] == depth[w] and inlayer[x] and not sent[x]:
                    raise ValueError("a local gate reads a wire that is never reshared")
    # Segment of each local gate: right after its inputs ("early") or just before its first
    # consumer ("late"); an in-layer gate of depth d reads its inputs after segment d - 1.
    seg = depth.copy()
    if late:
        latest = np.full(n, and_depth, dtype=np.int32)
        for w in range(n - 1, -1, -1):
            if not live[w]:
                continue
            op = ops[w]
            if inlayer[w]:
                need = depth[w] - 1
            elif op == _XOR or op == _NOT:
                need = latest[w]
            else:
                continue
            if need < latest[in0[w]]:
                latest[in0[w]] = need
            if op != _NOT and need < latest[in1[w]]:
                latest[in1[w]] = need
        for w in range(n):
            op = ops[w]
            if not inlayer[w] and (op == _XOR or op == _NOT or op == _CONST):
                seg[w] = latest[w]
    # Counting sort into 2D+1 pieces (stable in wire order = topological order); a reshared
    # XOR/NOT takes two rows (the gate, then SEND).
    pieces = 2 * and_depth + 1
    count = np.zeros(pieces + 1, dtype=np.int64)
    row_count = np.zeros(pieces + 1, dtype=np.int64)
    for w in range(n):
        if live[w] and ops[w] != _INPUT:
            p = 2 * depth[w] - 1 if inlayer[w] else 2 * seg[w]
            count[p + 1] += 1
            row_count[p + 1] += 2 if sent[w] and ops[w] != _AND else 1
    starts = np.cumsum(count)
    bounds = np.cumsum(row_count)
    fill = starts[:-1].copy()
    order = np.empty(starts[-1], dtype=np.int64)
    piece_of = np.empty(starts[-1], dtype=np.int64)
    for w in range(n):
        if live[w] and ops[w] != _INPUT:
            p = 2 * depth[w] - 1 if inlayer[w] else 2 * seg[w]
            order[fill[p]] = w
            piece_of[fill[p]] = p
            fill[p] += 1
    # Last reader of every wire, by position in the schedule. Every gate, inside a layer or
    # not, is evaluated row by row, so a register is free again right after its last reader.
    total = order.shape[0]
    never = total + 1
    last_use = np.full(n, -1, dtype=np.int64)
    for k in range(total):
        w = order[k]
        op = ops[w]
        if op == _XOR or op == _AND:
            last_use[in0[w]] = k
            last_use[in1[w]] = k
        elif op == _NOT:
            last_use[in0[w]] = k
    for i in range(output_ids.shape[0]):
        last_use[output_ids[i]] = never
    # Register allocation with a LIFO free list (freed, cache-hot slots are reused first); a
    # gate's output never takes the register of one of its own inputs.
    reg = np.full(n, -1, dtype=np.int64)
    free = np.empty(n + 1, dtype=np.int64)
    n_free = 0
    n_regs = 0
    for i in range(input_ids.shape[0]):
        reg[input_ids[i]] = n_regs
        n_regs += 1
    for i in range(input_ids.shape[0]):
        if last_use[input_ids[i]] == -1:
            free[n_free] = reg[input_ids[i]]
            n_free += 1
    rows = np.zeros((bounds[-1], 4), dtype=np.int32)
    r_out = 0
    for k in range(total):
        w = order[k]
        if n_free > 0:
            n_free -= 1
            r = free[n_free]
        else:
            r = n_regs
            n_regs += 1
        op = ops[w]
        rows[r_out, 0] = _PROD if op == _AND and not sent[w] else op
        rows[r_out, 3] = r
        if op == _CONST:
            rows[r_out, 1] = in0[w] & 1
        else:
            a = in0[w]
            b = in1[w] if op != _NOT else a
            rows[r_out, 1] = reg[a]
            rows[r_out, 2] = reg[b] if op != _NOT else 0
            if last_use[a] == k:
                free[n_free] = reg[a]
                n_free += 1
            if b != a and last_use[b] == k:
                free[n_free] = reg[b]
                n_free += 1
        reg[w] = r
        r_out += 1
        if sent[w] and op != _AND:
            rows[r_out, 0] = _SEND
            rows[r_out, 1] = r
            rows[r_out, 3] = r
            r_out += 1
    return rows, bounds, reg, n_regs
