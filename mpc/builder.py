"""CircuitBuilder: write a boolean circuit gate by gate, then build() a layered Circuit.

Wire ids are plain ints. Constants are folded as gates are added (x^0 = x, x&1 = x, x&0 = 0,
NOT of a constant, double negation, x^x = 0, x&x = x, x & NOT x = 0), and structurally equal
gates are shared (commutative hashing), so circuit code may use ``const`` freely: a folded
constant costs nothing at run time. AND gates are never added by folding, so the AND count of
a built circuit is at most the number of non-trivial ``and_`` calls.

Bit order convention (CONTRACTS §6): a byte string of n bytes is 8n wires, wire 8*j + k carries
bit (7 - k) of byte j (MSB first).
"""

from __future__ import annotations

from collections.abc import Iterable

from mpc.circuit import AND, CONST, INPUT, NOT, XOR, Circuit, build_circuit


class CircuitBuilder:
    """Accumulates gates in topological order; ``build()`` schedules them (mpc.circuit)."""

    def __init__(self) -> None:
        self._ops: list[int] = []
        self._in0: list[int] = []
        self._in1: list[int] = []
        self._inputs: list[list[int]] = []
        self._outputs: list[list[int]] = []
        self._const_wire: dict[int, int] = {}
        self._const_value: dict[int, int] = {}
        self._negation: dict[int, int] = {}
        self._shared: dict[tuple[int, int, int], int] = {}
        self._depth: list[int] = []  # AND-depth per wire, filled up lazily by wire_depth

    # -- wires ------------------------------------------------------------------------------
    def _new(self, op: int, a: int, b: int) -> int:
        w = len(self._ops)
        self._ops.append(op)
        self._in0.append(a)
        self._in1.append(b)
        return w

    def _check(self, w: int) -> int:
        # Accept numpy integers; reject anything that is not an existing wire.
        try:
            i = int(w)
        except (TypeError, ValueError):
            raise TypeError(f"wire id must be an int, got {type(w).__name__}") from None
        if i != w or not 0 <= i < len(self._ops):
            raise ValueError(f"unknown wire {w!r}")
        return i

    def input(self, n_bits: int) -> list[int]:
        """Declare one input value of n_bits wires; returns its wire ids in order."""
        if n_bits < 0:
            raise ValueError("n_bits must be >= 0")
        wires = [self._new(INPUT, 0, 0) for _ in range(n_bits)]
        self._inputs.append(wires)
        return list(wires)  # a copy: callers may extend their list

    def const(self, bit: int) -> int:
        """The public constant 0 or 1 (one wire per value, shared)."""
        bit = int(bit)
        if bit not in (0, 1):
            raise ValueError("constant must be 0 or 1")
        w = self._const_wire.get(bit)
        if w is None:
            w = self._new(CONST, bit, 0)
            self._const_wire[bit] = w
            self._const_value[w] = bit
        return w

    def wire_depth(self, w: int) -> int:
        """AND-depth of wire ``w`` (the rounds before it is known; XOR and NOT are free).

        Computed on demand for the wires added since the last call, so gate creation stays
        as cheap as before; arrival-time-driven constructions (``mpc.circuits.adders``) ask.
        """
        depth, ops, in0, in1 = self._depth, self._ops, self._in0, self._in1
        for i in range(len(depth), len(ops)):
            op = ops[i]
            if op == AND:
                depth.append(max(depth[in0[i]], depth[in1[i]]) + 1)
            elif op == XOR:
                depth.append(max(depth[in0[i]], depth[in1[i]]))
            elif op == NOT:
                depth.append(depth[in0[i]])
            else:  # INPUT, CONST
                depth.append(0)
        return depth[self._check(w)]

    # -- gates -------------------------------------------------------------------------------
    # The three gate methods are the hot path of circuit construction (millions of calls for
    # the Kerberos circuits), so the common case (two plain int wires, no constants) is inline.
    def xor(self, a: int, b: int) -> int:
        n = len(self._ops)
        if not (type(a) is int and type(b) is int and 0 <= a < n and 0 <= b < n):
            a, b = self._check(a), self._check(b)
        if a == b:
            return self.const(0)
        consts = self._const_value
        if consts and (a in consts or b in consts):
            ca, cb = consts.get(a), consts.get(b)
            if ca is not None and cb is not None:
                return self.const(ca ^ cb)
            if ca is not None:
                return b if ca == 0 else self.not_(b)
            return a if cb == 0 else self.not_(a)
        if self._negation.get(a) == b:
            return self.const(1)
        return self._shared_gate(XOR, a, b)

    def and_(self, a: int, b: int) -> int:
        n = len(self._ops)
        if not (type(a) is int and type(b) is int and 0 <= a < n and 0 <= b < n):
            a, b = self._check(a), self._check(b)
        if a == b:
            return a
        consts = self._const_value
        if consts and (a in consts or b in consts):
            ca = consts.get(a)
            if ca is not None:
                return b if ca == 1 else self.const(0)
            return a if consts[b] == 1 else self.const(0)
        if self._negation.get(a) == b:
            return self.const(0)
        return self._shared_gate(AND, a, b)

    def not_(self, a: int) -> int:
        if not (type(a) is int and 0 <= a < len(self._ops)):
            a = self._check(a)
        neg = self._negation.get(a)
        if neg is not None:
            return neg
        c = self._const_value.get(a)
        if c is not None:
            return self.const(1 - c)
        w = self._new(NOT, a, 0)
        self._negation[a] = w
        self._negation[w] = a
        return w

    def _shared_gate(self, op: int, a: int, b: int) -> int:
        key = (op, a, b) if a < b else (op, b, a)
        w = self._shared.get(key)
        if w is None:
            w = len(self._ops)
            self._ops.append(op)
            self._in0.append(key[1])
            self._in1.append(key[2])
            self._shared[key] = w
        return w

    # -- conveniences (all built from the three gates above) ---------------------------------
    def or_(self, a: int, b: int) -> int:
        """a OR b = a ^ b ^ (a & b): one AND."""
        return self.xor(self.xor(a, b), self.and_(a, b))

    def xnor(self, a: int, b: int) -> int:
        return self.not_(self.xor(a, b))

    def mux(self, sel: int, if0: int, if1: int) -> int:
        """sel ? if1 : if0 = if0 ^ (sel & (if0 ^ if1)): one AND."""
        return self.xor(if0, self.and_(sel, self.xor(if0, if1)))

    def xor_words(self, x: Iterable[int], y: Iterable[int]) -> list[int]:
        x, y = list(x), list(y)
        if len(x) != len(y):
            raise ValueError("xor_words needs equal lengths")
        return [self.xor(a, b) for a, b in zip(x, y, strict=True)]

    def const_bits(self, value: int, n_bits: int) -> list[int]:
        """An n-bit public constant, MSB first (wire 0 = bit n-1)."""
        return [self.const((value >> (n_bits - 1 - k)) & 1) for k in range(n_bits)]

    def const_bytes(self, data: bytes) -> list[int]:
        """A public byte string in our MSB-first bit order."""
        return [self.const((byte >> (7 - k)) & 1) for byte in data for k in range(8)]

    # -- outputs and build -------------------------------------------------------------------
    def output(self, wires: Iterable[int]) -> None:
        """Declare one output value (its wires, in order)."""
        self._outputs.append([self._check(w) for w in wires])

    @property
    def n_wires(self) -> int:
        """Wires created so far (inputs, constants and gates, before dead-gate elimination)."""
        return len(self._ops)

    @property
    def and_count(self) -> int:
        """AND gates created so far (shared duplicates counted once, dead ones included)."""
        return sum(1 for op in self._ops if op == AND)

    def build(self, *, local_placement: str = "late", reference: bool = False,
              fuse: bool = True) -> Circuit:
        """Layer by AND depth, fold XOR/NOT work between AND layers, drop dead gates
        (``local_placement``, ``reference``, ``fuse``: see :func:`mpc.circuit.build_circuit`)."""
        return build_circuit(
            self._ops,
            self._in0,
            self._in1,
            self._inputs,
            self._outputs,
            local_placement,
            reference=reference,
            fuse=fuse,
        )
