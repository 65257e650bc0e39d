"""Import Bristol Fashion circuit files (nigelsmart.github.io/MPC-Circuits/).

Format: header ``<ngates> <nwires>``, ``<niv> <n_1> ...``, ``<nov> <m_1> ...``, then one gate
per line in topological order: ``2 1 a b c XOR|AND``, ``1 1 a c INV|EQW``, ``1 1 v c EQ``.
Input value k occupies the next n_k wires; the outputs are the last sum(m) wires.

Bit order at the boundary (../shared/circuits/bristol/README.md): within a value, Bristol wire
``offset + i`` carries bit i of the value read as a big-endian integer (wire 0 = LSB of the last
byte). Our order (CONTRACTS §6) is the MSB-first bit string, so our position p is Bristol wire
``offset + n - 1 - p``. The imported Circuit's inputs and outputs are in our order, so
``mpc.sharing.pack_bytes`` applies unchanged.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from mpc.builder import CircuitBuilder
from mpc.circuit import Circuit


class BristolFormatError(ValueError):
    """The file is not a well-formed Bristol Fashion circuit."""


def parse_bristol(text: str) -> Circuit:
    """Build a Circuit from Bristol Fashion text (inputs/outputs in our MSB-first order)."""
    lines = text.splitlines()
    pos = 0

    def next_line() -> list[str]:
        nonlocal pos
        while pos < len(lines) and not lines[pos].strip():
            pos += 1
        if pos >= len(lines):
            raise BristolFormatError("unexpected end of file")
        pos += 1
        return lines[pos - 1].split()

    try:
        n_gates, n_wires = (int(x) for x in next_line())
        iv = [int(x) for x in next_line()]
        ov = [int(x) for x in next_line()]
    except ValueError as exc:
        raise BristolFormatError(f"bad header: {exc}") from None
    if len(iv) != iv[0] + 1 or len(ov) != ov[0] + 1:
        raise BristolFormatError("input/output value counts do not match the header")
    in_sizes, out_sizes = iv[1:], ov[1:]
    if sum(in_sizes) > n_wires or sum(out_sizes) > n_wires:
        raise BristolFormatError("more input/output bits than wires")

    b = CircuitBuilder()
    ours: list[int | None] = [None] * n_wires  # Bristol wire -> builder wire
    offset = 0
    for size in in_sizes:
        wires = b.input(size)
        for p, w in enumerate(wires):
            ours[offset + size - 1 - p] = w
        offset += size

    def wire(text_id: str) -> int:
        w = int(text_id)
        if not 0 <= w < n_wires:
            raise BristolFormatError(f"wire {w} out of range")
        mine = ours[w]
        if mine is None:
            raise BristolFormatError(f"wire {w} used before it is assigned")
        return mine

    def assign(text_id: str, value: int) -> None:
        w = int(text_id)
        if not 0 <= w < n_wires:
            raise BristolFormatError(f"wire {w} out of range")
        ours[w] = value

    for _ in range(n_gates):
        parts = next_line()
        try:
            n_in, n_out = int(parts[0]), int(parts[1])
            op = parts[-1]
            if n_out != 1 or len(parts) != 3 + n_in + n_out:
                raise BristolFormatError(f"unsupported gate line: {' '.join(parts)}")
            if op == "XOR" and n_in == 2:
                assign(parts[4], b.xor(wire(parts[2]), wire(parts[3])))
            elif op == "AND" and n_in == 2:
                assign(parts[4], b.and_(wire(parts[2]), wire(parts[3])))
            elif op == "INV" and n_in == 1:
                assign(parts[3], b.not_(wire(parts[2])))
            elif op == "EQW" and n_in == 1:
                assign(parts[3], wire(parts[2]))
            elif op == "EQ" and n_in == 1:
                assign(parts[3], b.const(int(parts[2])))
            else:
                raise BristolFormatError(f"unsupported gate line: {' '.join(parts)}")
        except (IndexError, ValueError) as exc:
            if isinstance(exc, BristolFormatError):
                raise
            raise BristolFormatError(f"bad gate line: {' '.join(parts)}") from None

    offset = n_wires - sum(out_sizes)
    for size in out_sizes:
        b.output([wire(str(offset + size - 1 - p)) for p in range(size)])
        offset += size
    return b.build()


def load_bristol(path: str | Path) -> Circuit:
    """Parse a Bristol Fashion file (cached per resolved path)."""
    return _load_cached(str(Path(path).resolve()))


@lru_cache(maxsize=8)
def _load_cached(path: str) -> Circuit:
    return parse_bristol(Path(path).read_text())
