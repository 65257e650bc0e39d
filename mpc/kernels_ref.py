"""Plain numpy reference of :mod:`mpc.kernels` (same signatures, same results).

Slow on purpose (a Python loop over gates, numpy over words); tests compare the numba kernels
against these on random data. Written from the protocol, not from the kernels: each share is a
separate array slice and the AND cross terms are spelled out as in Araki et al. 2016 §2.2.
"""

from __future__ import annotations

import numpy as np

from mpc.circuit import AND, CONST, NOT, PROD, SEND, XOR


def install_z(wires: np.ndarray, prev_layer: np.ndarray, recv: np.ndarray, words: int) -> None:
    sent = [row for row in prev_layer.tolist() if row[0] in (AND, SEND)]
    for j, row in enumerate(sent):
        wires[row[3], words:] = recv[j]


def local_gates(
    wires: np.ndarray, gates: np.ndarray, words: int, flip0: np.uint64, flip1: np.uint64
) -> None:
    for op, a, b, o in gates.tolist():
        share0 = wires[:, :words]
        share1 = wires[:, words:]
        if op == XOR:
            share0[o] = share0[a] ^ share0[b]
            share1[o] = share1[a] ^ share1[b]
        elif op == NOT:
            share0[o] = share0[a] ^ flip0
            share1[o] = share1[a] ^ flip1
        elif op == CONST:
            share0[o] = flip0 if a else np.uint64(0)
            share1[o] = flip1 if a else np.uint64(0)
        else:
            raise ValueError(f"opcode {op} is not local")


def and_cross_terms(
    wires: np.ndarray,
    layer: np.ndarray,
    words: int,
    alpha_own: np.ndarray,
    alpha_next: np.ndarray,
    send: np.ndarray,
    flip0: np.uint64,
) -> None:
    additive = wires[:, :words]  # party i's x_i: an additive share of x
    j = 0
    for op, a, b, o in layer.tolist():
        if op in (AND, PROD):
            x_i, x_next = wires[a, :words].copy(), wires[a, words:].copy()
            y_i, y_next = wires[b, :words].copy(), wires[b, words:].copy()
            additive[o] = (x_i & y_i) ^ (x_i & y_next) ^ (x_next & y_i)
        elif op == XOR:
            additive[o] = additive[a] ^ additive[b]
        elif op == NOT:
            additive[o] = additive[a] ^ flip0
        elif op != SEND:
            raise ValueError(f"opcode {op} does not belong in an AND layer")
        if op in (AND, SEND):
            additive[o] ^= alpha_own[j] ^ alpha_next[j]
            send[j] = additive[o]
            j += 1


def party_round(
    wires, prev_layer, recv, segment, layer, alpha_own, alpha_next, send, flip0, flip1
) -> None:
    words = wires.shape[1] // 2
    install_z(wires, prev_layer, recv, words)
    local_gates(wires, segment, words, flip0, flip1)
    and_cross_terms(wires, layer, words, alpha_own, alpha_next, send, flip0)


def plain_circuit(wires: np.ndarray, gates: np.ndarray) -> None:
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    for op, a, b, o in gates.tolist():
        if op == XOR:
            wires[o] = wires[a] ^ wires[b]
        elif op in (AND, PROD):
            wires[o] = wires[a] & wires[b]
        elif op == SEND:
            continue
        elif op == NOT:
            wires[o] = wires[a] ^ ones
        elif op == CONST:
            wires[o] = ones if a else np.uint64(0)
        else:
            raise ValueError(f"unknown opcode {op}")


def schedule_circuit(
    ops: np.ndarray,
    in0: np.ndarray,
    in1: np.ndarray,
    input_ids: np.ndarray,
    output_ids: np.ndarray,
    late: bool,
    reshare: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Plain Python scheduler with the result of :func:`mpc.kernels.schedule_circuit`: lists
    of gates per AND depth, in-layer gates, segment placement, and register allocation with a
    free list."""
    ops, in0, in1 = ops.tolist(), in0.tolist(), in1.tolist()
    inputs, outputs = input_ids.tolist(), output_ids.tolist()
    n = len(ops)
    live = [False] * n
    for w in outputs:
        live[w] = True
    for w in range(n - 1, -1, -1):
        if live[w] and ops[w] in (XOR, AND):
            live[in0[w]] = live[in1[w]] = True
        elif live[w] and ops[w] == NOT:
            live[in0[w]] = True

    def reads(w):
        if ops[w] in (XOR, AND):
            return [in0[w], in1[w]]
        return [in0[w]] if ops[w] == NOT else []

    depth = [0] * n
    for w in range(n):
        if live[w] and ops[w] in (XOR, AND, NOT):
            depth[w] = max(depth[x] for x in reads(w)) + (ops[w] == AND)
    and_depth = max((depth[w] for w in range(n) if live[w]), default=0)

    # reshared wires, and the wires of their depth that feed them (computed inside the layer)
    sent = [live[w] and (bool(reshare[w]) if len(reshare) else ops[w] == AND) for w in range(n)]
    inlayer = [False] * n
    for w in range(n - 1, -1, -1):
        if live[w] and (ops[w] == AND or (depth[w] > 0 and (sent[w] or inlayer[w]))):
            inlayer[w] = True
            for x in reads(w):
                if ops[w] != AND and depth[x] == depth[w]:
                    inlayer[x] = True
    for w in range(n):
        if live[w] and depth[w] > 0 and not inlayer[w]:
            if any(depth[x] == depth[w] and inlayer[x] and not sent[x] for x in reads(w)):
                raise ValueError("a local gate reads a wire that is never reshared")
    local = [live[w] and not inlayer[w] and ops[w] in (XOR, NOT, CONST) for w in range(n)]

    segment = list(depth)
    if late:
        # the last segment before every consumer: in-layer gates of depth d read after d - 1
        latest = [and_depth] * n
        for w in range(n - 1, -1, -1):
            if not live[w] or ops[w] not in (XOR, AND, NOT):
                continue
            need = depth[w] - 1 if inlayer[w] else latest[w]
            for x in reads(w):
                latest[x] = min(latest[x], need)
        for w in range(n):
            if local[w]:
                segment[w] = latest[w]

    layers = [[] for _ in range(and_depth + 1)]
    locals_ = [[] for _ in range(and_depth + 1)]
    for w in range(n):
        if live[w] and inlayer[w]:
            layers[depth[w]].append(w)
        elif local[w]:
            locals_[segment[w]].append(w)
    schedule = []  # every gate in order; the pieces: segment 0, layer 1, segment 1, ...
    cuts = [0]
    for d in range(and_depth + 1):
        if d > 0:
            schedule.extend(layers[d])
            cuts.append(len(schedule))
        schedule.extend(locals_[d])
        cuts.append(len(schedule))

    last_use = [-1] * n  # position of the last reader
    for k, w in enumerate(schedule):
        for x in reads(w):
            last_use[x] = k
    for w in outputs:
        last_use[w] = len(schedule) + 1

    reg = [-1] * n
    free: list[int] = []
    n_regs = 0
    for w in inputs:
        reg[w] = n_regs
        n_regs += 1
    free.extend(reg[w] for w in inputs if last_use[w] == -1)

    rows = []
    rows_after = [0]  # rows_after[k]: rows emitted by the first k gates
    for k, w in enumerate(schedule):
        if free:  # the output first, then release what this gate read for the last time
            r = free.pop()
        else:
            r = n_regs
            n_regs += 1
        if ops[w] == CONST:
            rows.append((CONST, in0[w] & 1, 0, r))
        else:
            op = PROD if ops[w] == AND and not sent[w] else ops[w]
            second = reg[in1[w]] if ops[w] in (XOR, AND) else 0
            rows.append((op, reg[in0[w]], second, r))
            for x in dict.fromkeys(reads(w)):
                if last_use[x] == k:
                    free.append(reg[x])
        reg[w] = r
        if sent[w] and ops[w] != AND:
            rows.append((SEND, r, 0, r))
        rows_after.append(len(rows))
    bounds = [rows_after[c] for c in cuts]
    return (
        np.array(rows, dtype=np.int32).reshape(-1, 4),
        np.array(bounds, dtype=np.int64),
        np.array(reg, dtype=np.int64),
        n_regs,
    )
