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

# Opcodes (must match mpc.circuit; literals here keep the kernels free of globals lookups).
_XOR = 0
_AND = 1
_NOT = 2
_CONST = 3

ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
ZERO = np.uint64(0)


@njit(cache=True, nogil=True)
def install_z(wires, prev_layer, recv, words):
    """Write z_{i+1} (received from party i+1) into share slot 1 of each AND output wire."""
    for j in range(prev_layer.shape[0]):
        o = prev_layer[j, 3]
        for k in range(words):
            wires[o, words + k] = recv[j, k]


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
def and_cross_terms(wires, layer, words, alpha_own, alpha_next, send):
    """z_i = x_i&y_i ^ x_i&y_{i+1} ^ x_{i+1}&y_i ^ alpha_i (Araki et al. 2016 §2.2), with the
    zero-share alpha_i = F(k_i) ^ F(k_{i+1}) passed as its two PRF streams. z_i goes to share
    slot 0 of the output wire and to row j of the send buffer."""
    for j in range(layer.shape[0]):
        a = layer[j, 1]
        b = layer[j, 2]
        o = layer[j, 3]
        for k in range(words):
            xa = wires[a, k]
            xb = wires[a, words + k]
            ya = wires[b, k]
            yb = wires[b, words + k]
            z = (xa & (ya ^ yb)) ^ (xb & ya) ^ alpha_own[j, k] ^ alpha_next[j, k]
            wires[o, k] = z
            send[j, k] = z


@njit(cache=True, nogil=True)
def party_round(wires, prev_layer, recv, segment, layer, alpha_own, alpha_next, send, flip0, flip1):
    """One round of one party: install received z, run the local segment, compute the next
    AND layer's z into ``send``. Any of the three steps may be empty (0-row arrays)."""
    words = wires.shape[1] // 2
    install_z(wires, prev_layer, recv, words)
    local_gates(wires, segment, words, flip0, flip1)
    and_cross_terms(wires, layer, words, alpha_own, alpha_next, send)


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
        elif op == _AND:
            for k in range(words):
                wires[o, k] = wires[a, k] & wires[b, k]
        elif op == _NOT:
            for k in range(words):
                wires[o, k] = wires[a, k] ^ ones
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
    schedule_circuit(ops, zeros, np.array([0, 0, 1], dtype=np.int32), ids, ids + 1, True)


# -- circuit scheduling (used by mpc.circuit.build_circuit) -----------------------------------

_INPUT = 4


@njit(cache=True, nogil=True)
def schedule_circuit(ops, in0, in1, input_ids, output_ids, late):
    """Dead-gate elimination, AND depth, segment placement and register allocation of a
    topologically ordered gate list (one entry per builder wire; see mpc.circuit).

    Returns (rows, bounds, reg, n_regs): rows (G, 4) int32 in schedule order; bounds cut them
    into segment 0, AND layer 1, segment 1, ..., segment D; reg maps builder wire -> register
    (-1 for dead wires). Same algorithm as mpc.kernels_ref.schedule_circuit, compiled: large
    circuits (HMAC, Kerberos decryption) have millions of builder calls' worth of gates.
    """
    n = ops.shape[0]
    # Dead-gate elimination, backwards from the outputs.
    live = np.zeros(n, dtype=np.uint8)
    for i in range(output_ids.shape[0]):
        live[output_ids[i]] = 1
    for w in range(n - 1, -1, -1):
        if live[w]:
            op = ops[w]
            if op == _XOR or op == _AND:
                live[in0[w]] = 1
                live[in1[w]] = 1
            elif op == _NOT:
                live[in0[w]] = 1
    # AND depth.
    depth = np.zeros(n, dtype=np.int32)
    and_depth = 0
    for w in range(n):
        if not live[w]:
            continue
        op = ops[w]
        if op == _INPUT or op == _CONST:
            continue
        d = depth[in0[w]]
        if op != _NOT and depth[in1[w]] > d:
            d = depth[in1[w]]
        if op == _AND:
            d += 1
            if d > and_depth:
                and_depth = d
        depth[w] = d
    # Segment of each local gate: right after its inputs ("early") or just before its first
    # consumer ("late"); an AND of depth d reads its inputs after segment d - 1.
    seg = depth.copy()
    if late:
        latest = np.full(n, and_depth, dtype=np.int32)
        for w in range(n - 1, -1, -1):
            if not live[w]:
                continue
            op = ops[w]
            if op == _AND:
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
            if op == _XOR or op == _NOT or op == _CONST:
                seg[w] = latest[w]
    # Counting sort into 2D+1 pieces (stable in wire order = topological order).
    pieces = 2 * and_depth + 1
    count = np.zeros(pieces + 1, dtype=np.int64)
    for w in range(n):
        if live[w] and ops[w] != _INPUT:
            p = 2 * depth[w] - 1 if ops[w] == _AND else 2 * seg[w]
            count[p + 1] += 1
    bounds = np.cumsum(count)
    fill = bounds[:-1].copy()
    order = np.empty(bounds[-1], dtype=np.int64)
    piece_of = np.empty(bounds[-1], dtype=np.int64)
    for w in range(n):
        if live[w] and ops[w] != _INPUT:
            p = 2 * depth[w] - 1 if ops[w] == _AND else 2 * seg[w]
            order[fill[p]] = w
            piece_of[fill[p]] = p
            fill[p] += 1
    # Events: each local gate is one event; a whole AND layer is one event (all its inputs are
    # read before any output is written).
    total = order.shape[0]
    event = np.empty(total, dtype=np.int64)
    e = -1
    for k in range(total):
        if ops[order[k]] != _AND or k == 0 or piece_of[k - 1] != piece_of[k]:
            e += 1
        event[k] = e
    never = e + 2
    last_use = np.full(n, -1, dtype=np.int64)
    for k in range(total):
        w = order[k]
        op = ops[w]
        if op == _XOR or op == _AND:
            last_use[in0[w]] = event[k]
            last_use[in1[w]] = event[k]
        elif op == _NOT:
            last_use[in0[w]] = event[k]
    for i in range(output_ids.shape[0]):
        last_use[output_ids[i]] = never
    # Register allocation with a LIFO free list (freed, cache-hot slots are reused first).
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
    freed = np.zeros(n, dtype=np.uint8)
    rows = np.empty((total, 4), dtype=np.int32)
    k = 0
    while k < total:
        w = order[k]
        if ops[w] == _AND:
            end = k
            while end < total and event[end] == event[k]:
                end += 1
            for j in range(k, end):
                g = order[j]
                if n_free > 0:
                    n_free -= 1
                    reg[g] = free[n_free]
                else:
                    reg[g] = n_regs
                    n_regs += 1
                rows[j, 0] = _AND
                rows[j, 1] = reg[in0[g]]
                rows[j, 2] = reg[in1[g]]
                rows[j, 3] = reg[g]
            for j in range(k, end):
                g = order[j]
                for x in (in0[g], in1[g]):
                    if last_use[x] == event[k] and not freed[x]:
                        freed[x] = 1
                        free[n_free] = reg[x]
                        n_free += 1
            k = end
            continue
        if n_free > 0:
            n_free -= 1
            r = free[n_free]
        else:
            r = n_regs
            n_regs += 1
        op = ops[w]
        rows[k, 0] = op
        rows[k, 3] = r
        if op == _CONST:
            rows[k, 1] = in0[w] & 1
            rows[k, 2] = 0
        else:
            a = in0[w]
            rows[k, 1] = reg[a]
            rows[k, 2] = reg[in1[w]] if op == _XOR else 0
            if last_use[a] == event[k] and not freed[a]:
                freed[a] = 1
                free[n_free] = reg[a]
                n_free += 1
            if op == _XOR:
                b = in1[w]
                if last_use[b] == event[k] and not freed[b]:
                    freed[b] = 1
                    free[n_free] = reg[b]
                    n_free += 1
        reg[w] = r
        k += 1
    return rows, bounds, reg, n_regs
