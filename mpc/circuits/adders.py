"""Adders modulo 2^n as boolean circuits, for SHA-1 in 3-party MPC.

In replicated sharing XOR is free and every AND layer costs a network round, so the choice of
adder trades AND gates for AND-depth (32-bit, measured with the plain builder):

=================  ======  =========
adder              AND     AND-depth
=================  ======  =========
``ripple_add``      31      31
``sklansky_add``    151     6  (1 generate layer + log2(32) prefix layers)
``prefix_bits``     ~180    5  (inputs that arrive together; less after their arrival
                               when some inputs arrive early: see below)
=================  ======  =========

``csa_sum`` adds many operands with a carry-save (3:2 compressor) tree, one AND layer per
level, and a single Sklansky adder at the end.

Public functions take and return MSB-first wire lists (wire 0 = bit n-1, the project's
big-endian order). Internally bits are LSB-first and ``None`` stands for a known zero bit
(the shifted-out carry of a 3:2 compressor), which saves gates without constant wires.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from mpc.circuits.sbox import GateBuilder


class _One:
    """Marker for a known constant-1 bit (a public constant, e.g. a SHA-1 round constant)."""

    def __repr__(self) -> str:
        return "ONE"


ONE = _One()
Bit = int | None | _One  # a wire id, None = constant 0, ONE = constant 1
Bits = list[Bit]  # LSB first


def const_bits(value: int, n: int = 32) -> Bits:
    """The public n-bit constant ``value`` as LSB-first constant bits (no gates)."""
    return [ONE if (value >> i) & 1 else None for i in range(n)]


def xor_bit(b: GateBuilder, x: Bit, y: Bit) -> Bit:
    if x is None:
        return y
    if y is None:
        return x
    if x is ONE:
        return None if y is ONE else b.not_(y)
    if y is ONE:
        return b.not_(x)
    return b.xor(x, y)


def and_bit(b: GateBuilder, x: Bit, y: Bit) -> Bit:
    if x is None or y is None:
        return None
    if x is ONE:
        return y
    if y is ONE or x == y:
        return x
    return b.and_(x, y)


def lsb_first(wires: Sequence[int]) -> Bits:
    """MSB-first wire list -> LSB-first Bits."""
    return list(reversed(wires))


def msb_first(b: GateBuilder, bits: Bits) -> list[int]:
    """LSB-first Bits -> MSB-first wire list (constant bits become ``b.const`` wires)."""
    consts: dict[int, int] = {}
    out: list[int] = []
    for w in reversed(bits):
        if w is None or w is ONE:
            bit = 0 if w is None else 1
            if bit not in consts:
                consts[bit] = b.const(bit)
            w = consts[bit]
        out.append(w)
    return out


def maj(b: GateBuilder, x: Bit, y: Bit, z: Bit) -> Bit:
    """Majority with one AND: ((x^y) & (x^z)) ^ x; fewer gates when an input is zero."""
    if x is None:
        return and_bit(b, y, z)
    if y is None:
        return and_bit(b, x, z)
    if z is None:
        return and_bit(b, x, y)
    return xor_bit(b, and_bit(b, xor_bit(b, x, y), xor_bit(b, x, z)), x)


def ripple_bits(b: GateBuilder, x: Bits, y: Bits) -> Bits:
    """x + y mod 2^n, LSB-first, ripple carry: n-1 AND, AND-depth n-1."""
    n = len(x)
    out: Bits = []
    carry: Bit = None
    for i in range(n):
        out.append(xor_bit(b, xor_bit(b, x[i], y[i]), carry))
        if i < n - 1:
            carry = maj(b, x[i], y[i], carry)
    return out


def sklansky_bits(b: GateBuilder, x: Bits, y: Bits) -> Bits:
    """x + y mod 2^n, LSB-first, Sklansky parallel-prefix carries: AND-depth 1 + ceil(log2(n-1)).

    Generate g = x&y and propagate p = x^y never hold together, so the prefix operator's OR
    is an XOR: (G, P) o (G', P') = (G ^ P&G', P&P').
    """
    n = len(x)
    p = [xor_bit(b, x[i], y[i]) for i in range(n)]
    # G[i], P[i]: generate/propagate of the group ending at bit i (carry out of bit i)
    gen = [and_bit(b, x[i], y[i]) for i in range(n - 1)]
    prop = p[: n - 1]
    m = n - 1
    span = 1
    while span < m:
        new_gen = list(gen)
        new_prop = list(prop)
        for i in range(m):
            if (i // span) % 2 == 1:
                j = (i // span) * span - 1  # top bit of the lower neighbouring group
                new_gen[i] = xor_bit(b, gen[i], and_bit(b, prop[i], gen[j]))
                # a merged group that reaches bit 0 never needs its propagate
                new_prop[i] = and_bit(b, prop[i], prop[j]) if i // (2 * span) else None
        gen, prop = new_gen, new_prop
        span *= 2
    return [p[0]] + [xor_bit(b, p[i], gen[i - 1]) for i in range(1, n)]


def prefix_bits(b: GateBuilder, x: Bits, y: Bits) -> Bits:
    """x + y mod 2^n, LSB-first, with a prefix network fitted to when each input bit arrives.

    The carry into bit k is G[0..k-1], the XOR over i < k of g_i AND p_{i+1} ... p_{k-1}
    (g = x&y, p = x^y; generate and propagate never hold together, so OR is XOR). Built from
    (G, P) o (G', P') = (G ^ P&G', P&P') on ranges of bits, each range's split is chosen by
    dynamic programming over the inputs' AND-depths (``b.wire_depth``), so late bits meet
    few AND layers: with all inputs at once the top carry is a product of 32 linear terms,
    depth 5, one less than Sklansky's separate generate layer; with early low bits (an
    operand that is itself the output of a prefix adder) the carries follow them.
    Among equally deep splits the one with the longest low part wins: for ranges from bit 0
    that part is another carry, which is shared (fewest gates). Builders without
    ``wire_depth`` get the plan for inputs that arrive together.
    """
    n = len(x)
    p = [xor_bit(b, x[i], y[i]) for i in range(n)]
    g = [and_bit(b, x[i], y[i]) for i in range(n - 1)]
    depth = getattr(b, "wire_depth", None)

    def arrival(w: Bit) -> int:
        return -1 if w is None or w is ONE or depth is None else depth(w)

    ag = [arrival(w) for w in g]
    ap = [arrival(w) for w in p[: n - 1]]
    base = min(ag + ap, default=0)
    split_g, split_p = _prefix_plan(tuple(a - base for a in ag), tuple(a - base for a in ap))
    gs: dict[tuple[int, int], Bit] = {}
    ps: dict[tuple[int, int], Bit] = {}

    def prop(lo: int, hi: int) -> Bit:
        if lo == hi:
            return p[lo]
        if (lo, hi) not in ps:
            m = split_p[lo, hi]
            ps[lo, hi] = and_bit(b, prop(m, hi), prop(lo, m - 1))
        return ps[lo, hi]

    def gen(lo: int, hi: int) -> Bit:
        if lo == hi:
            return g[lo]
        if (lo, hi) not in gs:
            m = split_g[lo, hi]
            gs[lo, hi] = xor_bit(b, gen(m, hi), and_bit(b, prop(m, hi), gen(lo, m - 1)))
        return gs[lo, hi]

    return [p[0]] + [xor_bit(b, p[k], gen(0, k - 1)) for k in range(1, n)]


@lru_cache(maxsize=256)
def _prefix_plan(ag: tuple[int, ...], ap: tuple[int, ...]) -> tuple[dict, dict]:
    """Splits {(lo, hi): m} for the shallowest G and P of every bit range (see prefix_bits);
    arrival patterns repeat from one SHA-1 round to the next, so plans are cached."""
    dg = {(i, i): a for i, a in enumerate(ag)}
    dp = {(i, i): a for i, a in enumerate(ap)}
    split_g: dict[tuple[int, int], int] = {}
    split_p: dict[tuple[int, int], int] = {}
    m_bits = len(ag)
    for length in range(2, m_bits + 1):
        for lo in range(m_bits - length + 1):
            hi = lo + length - 1
            best_g = best_p = None
            for m in range(hi, lo, -1):  # the longest low part first (see prefix_bits)
                d = max(dg[m, hi], 1 + max(dp[m, hi], dg[lo, m - 1]))
                if best_g is None or d < best_g:
                    best_g, split_g[lo, hi] = d, m
                d = 1 + max(dp[m, hi], dp[lo, m - 1])
                if best_p is None or d < best_p:
                    best_p, split_p[lo, hi] = d, m
            dg[lo, hi], dp[lo, hi] = best_g, best_p
    return split_g, split_p


def csa_bits(b: GateBuilder, x: Bits, y: Bits, z: Bits) -> tuple[Bits, Bits]:
    """3:2 carry-save compressor: x+y+z = s + c mod 2^n with one AND layer."""
    n = len(x)
    s = [xor_bit(b, xor_bit(b, x[i], y[i]), z[i]) for i in range(n)]
    c: Bits = [None] + [maj(b, x[i], y[i], z[i]) for i in range(n - 1)]
    return s, c


def csa_tree_bits(b: GateBuilder, operands: Sequence[Bits]) -> tuple[Bits, Bits]:
    """Reduce operands to two with layers of 3:2 compressors (Wallace tree)."""
    ops = list(operands)
    if not ops:
        raise ValueError("no operands")
    if len(ops) == 1:
        return ops[0], [None] * len(ops[0])
    while len(ops) > 2:
        nxt: list[Bits] = []
        for k in range(0, len(ops) - 2, 3):
            nxt.extend(csa_bits(b, ops[k], ops[k + 1], ops[k + 2]))
        nxt.extend(ops[len(ops) - len(ops) % 3 :] if len(ops) % 3 else [])
        ops = nxt
    return ops[0], ops[1]


def _check(*operands: Sequence[int]) -> None:
    if len({len(op) for op in operands}) != 1:
        raise ValueError("operands must have the same width")


def ripple_add(b: GateBuilder, x: Sequence[int], y: Sequence[int]) -> list[int]:
    """x + y mod 2^n (MSB-first wires), ripple carry: 31 AND, AND-depth 31 for n = 32."""
    _check(x, y)
    return msb_first(b, ripple_bits(b, lsb_first(x), lsb_first(y)))


def sklansky_add(b: GateBuilder, x: Sequence[int], y: Sequence[int]) -> list[int]:
    """x + y mod 2^n (MSB-first wires), Sklansky prefix adder: AND-depth 6 for n = 32."""
    _check(x, y)
    return msb_first(b, sklansky_bits(b, lsb_first(x), lsb_first(y)))


def prefix_add(b: GateBuilder, x: Sequence[int], y: Sequence[int]) -> list[int]:
    """x + y mod 2^n (MSB-first wires), prefix adder fitted to the inputs' arrival times
    (:func:`prefix_bits`): AND-depth 5 for n = 32 inputs that arrive together."""
    _check(x, y)
    return msb_first(b, prefix_bits(b, lsb_first(x), lsb_first(y)))


def csa_sum(b: GateBuilder, operands: Sequence[Sequence[int]]) -> list[int]:
    """Sum of many operands mod 2^n: carry-save tree, then one Sklansky adder."""
    _check(*operands)
    s, c = csa_tree_bits(b, [lsb_first(op) for op in operands])
    return msb_first(b, sklansky_bits(b, s, c))
