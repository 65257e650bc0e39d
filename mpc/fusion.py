"""Reshare sums of products, not single ANDs: fewer bits per round for the same circuit.

In 3-party replicated sharing a party can compute an additive share of any product x&y
locally (the three cross terms of Araki et al. 2016 §2.2), and additive shares add up under
XOR. So a wire that is an XOR of several AND outputs of one layer (plus wires already known)
needs one z word on the link, not one per AND: the party XORs the local products first and
masks the sum with one zero-share (the inner product "for free" of replicated sharing that
ABY3, Mohassel–Rindal CCS 2018, uses over rings, here over GF(2)). The AES S-box is the case
that pays: the bottom linear layer of Boyar–Peralta's circuit folds 18 products into 8 bits.

:func:`fuse_layers` decides, for each AND layer d, which wires of AND depth d are *reshared*:

* every wire of depth d that something later reads (an AND of a later layer, a local gate of a
  greater depth, or a circuit output) must be known as replicated shares after round d;
* each such wire is a GF(2)-linear combination of layer d's products plus wires known
  before the round. Over the product parts, a basis is reshared; every other needed wire is
  rebuilt after the round as the XOR of basis wires plus a correction made of earlier wires
  (its "shadow": the wire with layer d's products set to 0), so it costs no communication.

Products are grouped into independent components (wires that share products); a component of
at most 256 products is solved with 256-bit masks, a larger one (none in AES or SHA-1) keeps
its ANDs reshared as without fusion, so fusion never sends more than the AND count. A needed
wire whose products cancel is rebuilt with a sent wire of its layer XORed in twice, which
keeps it (and every depth after it) in its round. The scheduler (:func:`mpc.kernels.schedule_circuit`) then runs the
depth-d work that feeds reshared wires inside the layer on additive shares, masks and sends
the reshared wires, and runs the rebuilt wires as ordinary local gates after the round.

The rewritten gate list computes the same outputs (tests check it in the clear and through
MPC); only which wires travel changes. Security is the AND gate's: each sent word is the
party's additive share masked by a fresh zero-share, so a receiver learns nothing new.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Opcodes (literals, as in mpc.kernels; must match mpc.circuit).
_XOR = 0
_AND = 1
_NOT = 2
_CONST = 3
_INPUT = 4

_WORDS = 4  # mask words per wire: components of up to 256 products are solved exactly
_SMALL = 64 * _WORDS
_ZERO = -1  # "the constant 0" while building shadows (no gate needed)


@njit(cache=True, nogil=True)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@njit(cache=True, nogil=True)
def _top_bit(v):
    bit = 0
    while v > np.uint64(1):
        v >>= np.uint64(1)
        bit += 1
    return bit


@njit(cache=True, nogil=True)
def live_and_depth(ops, in0, in1, output_ids):
    """Live wires (those an output depends on) and the AND depth of every wire."""
    n = ops.shape[0]
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
    depth = np.zeros(n, dtype=np.int32)
    for w in range(n):
        op = ops[w]
        if op == _INPUT or op == _CONST:
            continue
        d = depth[in0[w]]
        if op != _NOT and depth[in1[w]] > d:
            d = depth[in1[w]]
        depth[w] = d + 1 if op == _AND else d
    return live, depth


@njit(cache=True, nogil=True)
def gate_inputs(op, a, b):
    """The wires an XOR (a, b) or a NOT (a, a: read twice is the same as once) reads."""
    return (a, b) if op == _XOR else (a, a)


@njit(cache=True, nogil=True)
def _depth_order(depth, m):
    """Wires 0..m-1 sorted by (depth, id) (a stable counting sort), and where each depth's run
    starts (``start[d]``; ``start[-1]`` = m)."""
    d_max = 0
    for w in range(m):
        if depth[w] > d_max:
            d_max = depth[w]
    start = np.zeros(d_max + 2, dtype=np.int64)
    for w in range(m):
        start[depth[w] + 1] += 1
    for d in range(d_max + 1):
        start[d + 1] += start[d]
    fill = start.copy()
    order = np.empty(m, dtype=np.int64)
    for w in range(m):
        order[fill[depth[w]]] = w
        fill[depth[w]] += 1
    return order, start


@njit(cache=True, nogil=True)
def _add(ops, in0, in1, depth, count, op, a, b):
    w = count[0]
    ops[w] = op
    in0[w] = a
    in1[w] = b
    if op == _XOR:
        depth[w] = max(depth[a], depth[b])
    elif op == _NOT:
        depth[w] = depth[a]
    else:
        depth[w] = 0
    count[0] = w + 1
    return w


@njit(cache=True, nogil=True)
def _xor(ops, in0, in1, depth, count, a, b):
    if a == _ZERO:
        return b
    if b == _ZERO:
        return a
    if a == b:
        return _ZERO
    return _add(ops, in0, in1, depth, count, _XOR, a, b)


@njit(cache=True, nogil=True)
def _top_bit_of(v):
    """Highest set bit of a multi-word mask, -1 for zero."""
    for i in range(v.shape[0] - 1, -1, -1):
        if v[i] != np.uint64(0):
            return 64 * i + _top_bit(v[i])
    return -1


@njit(cache=True, nogil=True)
def _grow(arr, cap):
    out = np.zeros(cap, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


@njit(cache=True, nogil=True)
def fuse_layers(ops, in0, in1, output_ids):
    """Rewrite a topologically ordered gate list (see :func:`mpc.circuit.build_circuit`) so that
    only a basis of each layer's needed sums of products is reshared.

    Returns ``(ops, in0, in1, new_id, output_ids, reshare)``: the new gate list (still
    topological, sorted by AND depth), the new id of every old wire (inputs keep their meaning),
    the output wires in the new ids (a rebuilt wire replaces the old one there), and a flag per
    new wire: 1 = its replicated shares are produced by resharing in its layer.
    """
    n = ops.shape[0]
    live, depth = live_and_depth(ops, in0, in1, output_ids)

    # Which wires of depth >= 1 are read after their own layer.
    needed = np.zeros(n, dtype=np.uint8)
    for w in range(n):
        if not live[w]:
            continue
        op = ops[w]
        if op == _AND:
            needed[in0[w]] = 1
            needed[in1[w]] = 1
        elif op == _XOR:
            if depth[in0[w]] < depth[w]:
                needed[in0[w]] = 1
            if depth[in1[w]] < depth[w]:
                needed[in1[w]] = 1
        elif op == _NOT and depth[in0[w]] < depth[w]:
            needed[in0[w]] = 1
    for i in range(output_ids.shape[0]):
        needed[output_ids[i]] = 1

    # Wires grouped by depth, topological order kept inside a group.
    order, start = _depth_order(depth, n)
    d_max = start.shape[0] - 2
    pos = np.empty(n, dtype=np.int64)  # a wire's place in its group
    for k in range(n):
        pos[order[k]] = k - start[depth[order[k]]]

    # The new gate list: old wires keep their ids, new gates follow (grown as needed).
    cap = n + n // 8 + 16
    n_ops = np.zeros(cap, dtype=np.int32)
    n_in0 = np.zeros(cap, dtype=np.int32)
    n_in1 = np.zeros(cap, dtype=np.int32)
    n_depth = np.zeros(cap, dtype=np.int32)
    n_ops[:n] = ops
    n_in0[:n] = in0
    n_in1[:n] = in1
    n_depth[:n] = depth
    count = np.array([n], dtype=np.int64)
    one = -1  # a CONST 1 wire, for the shadow of NOT(product)
    for w in range(n):
        if live[w] and ops[w] == _CONST and in0[w] & 1:
            one = w
            break

    parent = np.arange(n)
    products = np.zeros(n, dtype=np.int64)  # per component root
    b_count = np.zeros(n, dtype=np.int64)  # per root: basis size
    b_offset = np.zeros(n, dtype=np.int64)  # per root: its slice of the group's basis pool
    shadowed = np.zeros(n, dtype=np.uint8)  # per root: has a rebuilt wire
    reshare = np.zeros(n, dtype=np.uint8)
    rebuilt = np.zeros(n, dtype=np.uint8)
    shadow = np.full(n, _ZERO, dtype=np.int64)
    replace = np.arange(n)
    for d in range(1, d_max + 1):
        lo = start[d]
        size = start[d + 1] - lo
        # Components: the products a depth-d wire mixes (union over its depth-d inputs).
        for g in range(size):
            w = order[lo + g]
            op = ops[w]
            if not live[w] or op == _AND:
                continue
            for x in gate_inputs(op, in0[w], in1[w]):
                if depth[x] == d:
                    ra = _find(parent, w)
                    rb = _find(parent, x)
                    if ra != rb:
                        parent[ra] = rb
        index = np.zeros(size, dtype=np.int64)  # per AND: its bit in the component's masks
        for g in range(size):
            w = order[lo + g]
            if live[w] and ops[w] == _AND:
                r = _find(parent, w)
                index[g] = products[r]
                products[r] += 1
        mask = np.zeros((size, _WORDS), dtype=np.uint64)
        total = 0
        for g in range(size):
            w = order[lo + g]
            if not live[w]:
                continue
            r = _find(parent, w)
            if products[r] > _SMALL:
                continue
            op = ops[w]
            if op == _AND:
                k = index[g]
                mask[g, k >> 6] = np.uint64(1) << np.uint64(k & 63)
            elif op == _XOR:
                if depth[in0[w]] == d:
                    mask[g] ^= mask[pos[in0[w]]]
                if depth[in1[w]] == d:
                    mask[g] ^= mask[pos[in1[w]]]
            else:
                mask[g] = mask[pos[in0[w]]]
        for g in range(size):
            w = order[lo + g]
            if live[w] and _find(parent, w) == w:
                b_offset[w] = total
                total += min(products[w], _SMALL)
        b_vec = np.zeros((total + 1, _WORDS), dtype=np.uint64)
        b_combo = np.zeros((total + 1, _WORDS), dtype=np.uint64)
        b_pivot = np.zeros(total + 1, dtype=np.int64)
        b_wire = np.zeros(total + 1, dtype=np.int64)
        combo = np.zeros((size, _WORDS), dtype=np.uint64)
        # A component too big to solve keeps its ANDs reshared, as without fusion.
        for g in range(size):
            w = order[lo + g]
            if live[w] and ops[w] == _AND and products[_find(parent, w)] > _SMALL:
                reshare[w] = 1
        # In topological order: a wire whose depth-d inputs are all sent, rebuilt or themselves
        # available after the round is *available* (its own gate runs after the round, no new
        # arithmetic). Any other needed wire goes through a Gaussian elimination per component:
        # if its product part is independent of the basis so far it joins it (reshared), else
        # it is a combination of basis wires (``combo`` bits index the component's basis).
        avail = np.zeros(size, dtype=np.uint8)
        extra = 1  # a CONST 1 wire
        for g in range(size):
            w = order[lo + g]
            if not live[w]:
                continue
            op = ops[w]
            if op == _XOR or op == _NOT:
                ok = 1
                for x in gate_inputs(op, in0[w], in1[w]):
                    if depth[x] == d and not (reshare[x] or rebuilt[x] or avail[pos[x]]):
                        ok = 0
                avail[g] = ok
            if not needed[w] or avail[g] or reshare[w]:
                continue
            r = _find(parent, w)
            if products[r] > _SMALL:
                reshare[w] = 1  # (not reached: such a component's wires are all available)
                continue
            base = b_offset[r]
            v = mask[g].copy()
            c = np.zeros(_WORDS, dtype=np.uint64)
            top = _top_bit_of(v)
            if top < 0:
                # its products cancel: rebuilt (below) with a depth-d wire XORed in twice, so
                # that it keeps its round and every depth this analysis stands on
                rebuilt[w] = 1
                shadowed[r] = 1
                extra += 3
                continue
            while top >= 0:
                hit = -1
                for k in range(b_count[r]):
                    if b_pivot[base + k] == top:
                        hit = base + k
                        break
                if hit < 0:
                    break
                v ^= b_vec[hit]
                c ^= b_combo[hit]
                top = _top_bit_of(v)
            if top < 0:
                rebuilt[w] = 1
                shadowed[r] = 1
                combo[g] = c
                extra += 2 * b_count[r] + 1  # at most two XORs per basis wire, one to join
            else:
                k = b_count[r]
                b_vec[base + k] = v
                b_pivot[base + k] = top
                c[k >> 6] ^= np.uint64(1) << np.uint64(k & 63)
                b_combo[base + k] = c
                b_wire[base + k] = w
                b_count[r] = k + 1
                reshare[w] = 1
        # Available wires read after the round get a copy of their gate that runs after it
        # (the original may still be read inside the layer, on additive shares).
        copy = np.zeros(size, dtype=np.uint8)
        for g in range(size - 1, -1, -1):
            w = order[lo + g]
            if not live[w] or reshare[w] or not avail[g]:
                continue
            if needed[w]:
                copy[g] = 1
            if copy[g]:
                extra += 1
                for x in gate_inputs(ops[w], in0[w], in1[w]):
                    if depth[x] == d and avail[pos[x]] and not reshare[x]:
                        copy[pos[x]] = 1
        anchor = -1  # a wire reshared in this layer
        for g in range(size):
            w = order[lo + g]
            if reshare[w]:
                anchor = w
                break
        for g in range(size):
            w = order[lo + g]
            if anchor < 0 and rebuilt[w] and not combo[g].any():
                rebuilt[w] = 0  # products cancel and no wire of the layer is sent: send it
                reshare[w] = 1
                anchor = w
            if live[w] and shadowed[_find(parent, w)]:
                extra += 1
        if count[0] + extra > cap:
            cap = max(2 * cap, count[0] + extra)
            n_ops = _grow(n_ops, cap)
            n_in0 = _grow(n_in0, cap)
            n_in1 = _grow(n_in1, cap)
            n_depth = _grow(n_depth, cap)
        # The shadow of a depth-d wire is the same XOR/NOT expression with layer d's products
        # set to 0 (earlier wires it reads are their rebuilt versions). A rebuilt wire is the
        # XOR of its basis wires plus its shadow and theirs; its basis wires precede it.
        for g in range(size):
            w = order[lo + g]
            if not live[w]:
                continue
            r = _find(parent, w)
            op = ops[w]
            if shadowed[r] and op != _AND:
                a = in0[w]
                sa = replace[a] if depth[a] < d else shadow[a]
                if op == _XOR:
                    b = in1[w]
                    sb = replace[b] if depth[b] < d else shadow[b]
                    shadow[w] = _xor(n_ops, n_in0, n_in1, n_depth, count, sa, sb)
                elif sa == _ZERO:
                    if one < 0:
                        one = _add(n_ops, n_in0, n_in1, n_depth, count, _CONST, 1, 0)
                    shadow[w] = one
                else:
                    shadow[w] = _add(n_ops, n_in0, n_in1, n_depth, count, _NOT, sa, 0)
            if copy[g]:
                a = replace[in0[w]]  # the input as it exists after the round
                b = replace[in1[w]] if op == _XOR else 0
                replace[w] = _add(n_ops, n_in0, n_in1, n_depth, count, op, a, b)
                continue
            if not rebuilt[w]:
                continue
            if not combo[g].any():  # (shadow ^ anchor) ^ anchor: the value, at depth d
                twice = _add(n_ops, n_in0, n_in1, n_depth, count, _XOR, anchor, anchor)
                if shadow[w] != _ZERO:
                    twice = _add(n_ops, n_in0, n_in1, n_depth, count, _XOR, shadow[w], twice)
                replace[w] = twice
                continue
            base = b_offset[r]
            acc = np.int64(_ZERO)
            fix = shadow[w]
            for k in range(b_count[r]):
                if (combo[g, k >> 6] >> np.uint64(k & 63)) & np.uint64(1):
                    acc = _xor(n_ops, n_in0, n_in1, n_depth, count, acc, b_wire[base + k])
                    fix = _xor(n_ops, n_in0, n_in1, n_depth, count, fix, shadow[b_wire[base + k]])
            replace[w] = _xor(n_ops, n_in0, n_in1, n_depth, count, acc, fix)  # acc: depth d

    # Readers after the layer read the rebuilt wire; readers inside the layer keep the old one.
    for w in range(n):
        if not live[w]:
            continue
        op = ops[w]
        if op == _AND or op == _XOR:
            if depth[in0[w]] < depth[w]:
                n_in0[w] = replace[in0[w]]
            if depth[in1[w]] < depth[w]:
                n_in1[w] = replace[in1[w]]
        elif op == _NOT and depth[in0[w]] < depth[w]:
            n_in0[w] = replace[in0[w]]
    outs = output_ids.copy()
    for i in range(outs.shape[0]):
        outs[i] = replace[outs[i]]

    # Sort by (depth, id): topological, since a gate's inputs have a smaller depth, or the same
    # depth and a smaller id (new gates only read older wires).
    m = count[0]
    order, _ = _depth_order(n_depth, m)
    new_id = np.empty(m, dtype=np.int64)
    for k in range(m):
        new_id[order[k]] = k
    s_ops = np.empty(m, dtype=np.int32)
    s_in0 = np.zeros(m, dtype=np.int32)
    s_in1 = np.zeros(m, dtype=np.int32)
    s_reshare = np.zeros(m, dtype=np.uint8)
    for w in range(m):
        i = new_id[w]
        op = n_ops[w]
        s_ops[i] = op
        if op == _XOR or op == _AND:
            s_in0[i] = new_id[n_in0[w]]
            s_in1[i] = new_id[n_in1[w]]
        elif op == _NOT:
            s_in0[i] = new_id[n_in0[w]]
        elif op == _CONST:
            s_in0[i] = n_in0[w]
        if w < n and reshare[w]:
            s_reshare[i] = 1
    for i in range(outs.shape[0]):
        outs[i] = new_id[outs[i]]
    return s_ops, s_in0, s_in1, new_id[:n].copy(), outs, s_reshare
