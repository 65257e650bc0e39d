"""AES S-box and inverse S-box as gates: the Boyar–Peralta depth-16 circuit (ePrint 2011/332).

Both directions share one non-linear middle part (34 AND, AND-depth 4); the top and bottom
layers are linear and so free in 3-party replicated sharing. The gate list is published data
kept in ``data/aes_sbox_bp_depth16.txt`` (format and provenance in its header) and parsed once.

Bit order (the file's, verified on all 256 inputs): U0 is the most significant bit of the byte,
which matches the project's MSB-first wire order, so a byte's 8 wires go in unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

DATA_FILE = Path(__file__).resolve().parent / "data" / "aes_sbox_bp_depth16.txt"


class GateBuilder(Protocol):
    """The gate API shared by ``mpc.builder.CircuitBuilder`` and ``PlainBuilder``."""

    def xor(self, a: int, b: int) -> int: ...
    def and_(self, a: int, b: int) -> int: ...
    def not_(self, a: int) -> int: ...
    def const(self, bit: int) -> int: ...


@dataclass(frozen=True)
class Section:
    """One SECTION of the gate-list file: named interface wires and gates in order."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    gates: tuple[tuple[str, str, str, str], ...]  # (dest, op, a, b); op "ALIAS" has b == ""


def parse_sections(text: str) -> dict[str, Section]:
    """Parse the SECTION/INPUT/OUTPUT/gate lines of a Boyar–Peralta style gate list."""
    sections: dict[str, Section] = {}
    name: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    gates: list[tuple[str, str, str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "SECTION":
            name, inputs, outputs, gates = words[1], (), (), []
        elif words[0] == "END":
            if name is None:
                raise ValueError("END without SECTION")
            sections[name] = Section(inputs, outputs, tuple(gates))
            name = None
        elif words[0] == "INPUT":
            inputs = tuple(words[1:])
        elif words[0] == "OUTPUT":
            outputs = tuple(words[1:])
        elif len(words) == 3 and words[1] == "=":
            gates.append((words[0], "ALIAS", words[2], ""))
        elif len(words) == 5 and words[1] == "=" and words[3] in ("XOR", "XNOR", "AND"):
            gates.append((words[0], words[3], words[2], words[4]))
        else:
            raise ValueError(f"unparsable gate line: {raw!r}")
    return sections


@cache
def _sections() -> dict[str, Section]:
    return parse_sections(DATA_FILE.read_text())


@cache
def _program(direction: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple]:
    secs = _sections()
    parts = [secs[f"{direction}_top"], secs["middle"], secs[f"{direction}_bottom"]]
    gates = tuple(g for part in parts for g in part.gates)
    return parts[0].inputs, parts[2].outputs, gates


def _run(b: GateBuilder, direction: str, byte: Sequence[int]) -> list[int]:
    inputs, outputs, gates = _program(direction)
    if len(byte) != 8:
        raise ValueError("an S-box takes 8 wires")
    env = dict(zip(inputs, byte, strict=True))
    for dest, op, x, y in gates:
        if op == "XOR":
            env[dest] = b.xor(env[x], env[y])
        elif op == "XNOR":
            env[dest] = b.not_(b.xor(env[x], env[y]))
        elif op == "AND":
            env[dest] = b.and_(env[x], env[y])
        else:
            env[dest] = env[x]
    return [env[o] for o in outputs]


def sub_byte(b: GateBuilder, byte: Sequence[int]) -> list[int]:
    """FIPS-197 SubBytes on one byte (8 wires, MSB first): 34 AND, AND-depth 4."""
    return _run(b, "forward", byte)


def inv_sub_byte(b: GateBuilder, byte: Sequence[int]) -> list[int]:
    """FIPS-197 InvSubBytes on one byte (8 wires, MSB first): 34 AND, AND-depth 4."""
    return _run(b, "inverse", byte)
