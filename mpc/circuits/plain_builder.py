"""An evaluating circuit builder: the fast plain-Python oracle for circuit functions.

``PlainBuilder`` has the ``mpc.builder.CircuitBuilder`` gate API (``input``/``xor``/``and_``/
``not_``/``const``/``output``) but computes every wire the moment it is created. A wire's value
is a Python int used as a bit vector: bit ``l`` is instance ``l`` of ``lanes`` independent
evaluations, so one build checks many random inputs at once.

It also records, per wire, the AND-depth (XOR/NOT free, AND +1, as the 3-party engine pays
rounds) and folds public constants (an AND or XOR with a constant wire costs nothing), so the
AND count and AND-depth of a circuit function can be measured without the real builder. Only
gates that feed a declared output are counted by :meth:`live_and_count`.
"""

from __future__ import annotations

from collections.abc import Sequence

_CONST, _INPUT, _XOR, _AND, _NOT = range(5)


class PlainBuilder:
    """Builder whose wires carry values (``lanes`` instances per wire) as they are built."""

    def __init__(self, lanes: int = 1) -> None:
        self.lanes = lanes
        self.mask = (1 << lanes) - 1
        self.values: list[int] = []
        self.depth: list[int] = []
        self.is_const: list[bool] = []
        self._gates: list[tuple[int, int, int]] = []  # (opcode, in_a, in_b)
        self.outputs: list[list[int]] = []
        self.and_count = 0  # ANDs created between two non-constant wires

    # -- wire creation -------------------------------------------------------------------
    def _new(self, value: int, depth: int, const: bool, gate: tuple[int, int, int]) -> int:
        self.values.append(value)
        self.depth.append(depth)
        self.is_const.append(const)
        self._gates.append(gate)
        return len(self.values) - 1

    def input(self, n_bits: int, values: Sequence[int] | None = None) -> list[int]:
        """``n_bits`` new input wires; ``values[i]`` is wire i's lane vector (default 0)."""
        if values is not None and len(values) != n_bits:
            raise ValueError("need one lane vector per input bit")
        vals = values if values is not None else [0] * n_bits
        return [self._new(v & self.mask, 0, False, (_INPUT, -1, -1)) for v in vals]

    def input_bytes(self, data: Sequence[bytes]) -> list[int]:
        """Input wires for one byte string per lane (all of equal length), MSB-first bits."""
        return self.input(8 * len(data[0]), bytes_to_lanes(data))

    def const(self, bit: int) -> int:
        return self._new(self.mask if bit & 1 else 0, 0, True, (_CONST, -1, -1))

    def xor(self, a: int, b: int) -> int:
        depth = max(self.depth[a], self.depth[b])
        const = self.is_const[a] and self.is_const[b]
        return self._new(self.values[a] ^ self.values[b], depth, const, (_XOR, a, b))

    def not_(self, a: int) -> int:
        return self._new(self.values[a] ^ self.mask, self.depth[a], self.is_const[a], (_NOT, a, -1))

    def and_(self, a: int, b: int) -> int:
        ca, cb = self.is_const[a], self.is_const[b]
        if ca or cb:  # AND with a public bit is local (a copy or a constant 0)
            depth = max(self.depth[a], self.depth[b])
        else:
            depth = max(self.depth[a], self.depth[b]) + 1
            self.and_count += 1
        return self._new(self.values[a] & self.values[b], depth, ca and cb, (_AND, a, b))

    def output(self, wires: Sequence[int]) -> None:
        self.outputs.append(list(wires))

    def wire_depth(self, w: int) -> int:
        return self.depth[w]

    # -- inspection ------------------------------------------------------------------------
    def value_bits(self, wires: Sequence[int], lane: int = 0) -> list[int]:
        return [(self.values[w] >> lane) & 1 for w in wires]

    def read_bytes(self, wires: Sequence[int], lane: int = 0) -> bytes:
        """The byte string carried by ``wires`` (MSB-first per byte) in one lane."""
        return bits_to_bytes(self.value_bits(wires, lane))

    def read_all(self, wires: Sequence[int]) -> list[bytes]:
        return [self.read_bytes(wires, lane) for lane in range(self.lanes)]

    def and_depth_of(self, wires: Sequence[int]) -> int:
        return max((self.depth[w] for w in wires), default=0)

    def live_and_count(self, wires: Sequence[int] | None = None) -> int:
        """ANDs (between non-constant wires) that some of ``wires`` (default: outputs) use."""
        roots = list(wires) if wires is not None else [w for o in self.outputs for w in o]
        seen = bytearray(len(self.values))
        stack = roots
        count = 0
        while stack:
            w = stack.pop()
            if seen[w]:
                continue
            seen[w] = 1
            op, a, b = self._gates[w]
            if op == _AND and not (self.is_const[a] or self.is_const[b]):
                count += 1
            if a >= 0:
                stack.append(a)
            if b >= 0:
                stack.append(b)
        return count


def bytes_to_lanes(data: Sequence[bytes]) -> list[int]:
    """Lane vectors for byte strings: wire 8*j+k = bit 7-k of byte j; lane l = data[l]."""
    n = len(data[0])
    out = [0] * (8 * n)
    for lane, item in enumerate(data):
        if len(item) != n:
            raise ValueError("all lanes need the same length")
        for j, byte in enumerate(item):
            for k in range(8):
                if (byte >> (7 - k)) & 1:
                    out[8 * j + k] |= 1 << lane
    return out


def bits_to_bytes(bits: Sequence[int]) -> bytes:
    """MSB-first bit list to bytes."""
    out = bytearray(len(bits) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 0x80 >> (i % 8)
    return bytes(out)
