"""Plain numpy reference of :mod:`mpc.kernels` (same signatures, same results).

Slow on purpose (a Python loop over gates, numpy over words); tests compare the numba kernels
against these on random data. Written from the protocol, not from the kernels: each share is a
separate array slice and the AND cross terms are spelled out as in Araki et al. 2016 §2.2.
"""

from __future__ import annotations

import numpy as np

from mpc.circuit import AND, CONST, NOT, XOR


def install_z(wires: np.ndarray, prev_layer: np.ndarray, recv: np.ndarray, words: int) -> None:
    for j, row in enumerate(prev_layer):
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
) -> None:
    for j, (op, a, b, o) in enumerate(layer.tolist()):
        if op != AND:
            raise ValueError("AND layer holds a non-AND gate")
        x_i, x_next = wires[a, :words].copy(), wires[a, words:].copy()
        y_i, y_next = wires[b, :words].copy(), wires[b, words:].copy()
        alpha = alpha_own[j] ^ alpha_next[j]
        z = (x_i & y_i) ^ (x_i & y_next) ^ (x_next & y_i) ^ alpha
        wires[o, :words] = z
        send[j] = z


def party_round(
    wires, prev_layer, recv, segment, layer, alpha_own, alpha_next, send, flip0, flip1
) -> None:
    words = wires.shape[1] // 2
    install_z(wires, prev_layer, recv, words)
    local_gates(wires, segment, words, flip0, flip1)
    and_cross_terms(wires, layer, words, alpha_own, alpha_next, send)


def plain_circuit(wires: np.ndarray, gates: np.ndarray) -> None:
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    for op, a, b, o in gates.tolist():
        if op == XOR:
            wires[o] = wires[a] ^ wires[b]
        elif op == AND:
            wires[o] = wires[a] & wires[b]
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Plain Python scheduler with the result of :func:`mpc.kernels.schedule_circuit`: lists
    of gates per AND depth, segment placement, and register allocation with a free list."""
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

    depth = [0] * n
    for w in range(n):
        if live[w] and ops[w] in (XOR, AND, NOT):
            d = depth[in0[w]] if ops[w] == NOT else max(depth[in0[w]], depth[in1[w]])
            depth[w] = d + (ops[w] == AND)
    and_depth = max((depth[w] for w in range(n) if live[w]), default=0)
    local_ops = (XOR, NOT, CONST)

    segment = list(depth)
    if late:
        # the last segment before every consumer: AND of depth d reads after segment d - 1
        latest = [and_depth] * n
        for w in range(n - 1, -1, -1):
            if not live[w] or ops[w] not in (XOR, AND, NOT):
                continue
            need = depth[w] - 1 if ops[w] == AND else latest[w]
            for x in (in0[w],) if ops[w] == NOT else (in0[w], in1[w]):
                latest[x] = min(latest[x], need)
        for w in range(n):
            if ops[w] in local_ops:
                segment[w] = latest[w]

    ands = [[] for _ in range(and_depth + 1)]
    locals_ = [[] for _ in range(and_depth + 1)]
    for w in range(n):
        if live[w] and ops[w] == AND:
            ands[depth[w]].append(w)
        elif live[w] and ops[w] in local_ops:
            locals_[segment[w]].append(w)
    events = []  # list of gate lists, in schedule order
    for d in range(and_depth + 1):
        if d > 0:
            events.append(ands[d])
        events.extend([w] for w in locals_[d])

    def reads(w):
        if ops[w] in (XOR, AND):
            return [in0[w], in1[w]]
        return [in0[w]] if ops[w] == NOT else []

    last_use = [-1] * n
    for e, gates in enumerate(events):
        for w in gates:
            for x in reads(w):
                last_use[x] = e
    for w in outputs:
        last_use[w] = len(events) + 1

    reg = [-1] * n
    free: list[int] = []
    n_regs = 0
    for w in inputs:
        reg[w] = n_regs
        n_regs += 1
    free.extend(reg[w] for w in inputs if last_use[w] == -1)

    def allocate() -> int:
        nonlocal n_regs
        if free:
            return free.pop()
        n_regs += 1
        return n_regs - 1

    rows = []
    bounds = [0]
    e = 0
    for d in range(and_depth + 1):
        if d > 0:
            for w in events[e]:  # outputs first, then release inputs read for the last time
                reg[w] = allocate()
                rows.append((AND, reg[in0[w]], reg[in1[w]], reg[w]))
            released = []
            for w in events[e]:
                for x in reads(w):
                    if last_use[x] == e and x not in released:
                        released.append(x)
            free.extend(reg[x] for x in released)
            e += 1
            bounds.append(len(rows))
        for w in locals_[d]:
            r = allocate()
            if ops[w] == CONST:
                rows.append((CONST, in0[w] & 1, 0, r))
            else:
                rows.append((ops[w], reg[in0[w]], reg[in1[w]] if ops[w] == XOR else 0, r))
                done = []
                for x in reads(w):
                    if last_use[x] == e and x not in done:
                        done.append(x)
                        free.append(reg[x])
            reg[w] = r
            e += 1
        bounds.append(len(rows))
    return (
        np.array(rows, dtype=np.int32).reshape(-1, 4),
        np.array(bounds, dtype=np.int64),
        np.array(reg, dtype=np.int64),
        n_regs,
    )
