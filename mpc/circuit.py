"""Layered boolean circuits for 3-party replicated sharing.

A :class:`Circuit` is what :class:`mpc.builder.CircuitBuilder` (or :mod:`mpc.bristol`) produces
and what :class:`mpc.evaluator.PartyEvaluation` runs. In RSS only AND gates communicate, so the
circuit is cut into rounds by AND depth (Araki et al. 2016 §2): local segment 0, AND layer 1,
local segment 1, ..., AND layer D, local segment D. AND layer d holds the products of depth d
and the XOR/NOT work that feeds a wire reshared in round d (:mod:`mpc.fusion`); local segment d
holds every other XOR/NOT/constant gate whose AND depth is d, in topological order, so it can
run right after AND layer d is complete. Each segment and layer is one int32 array of rows
``(opcode, in0, in1, out)``, and one numba call evaluates it (see :mod:`mpc.kernels`).

Wire ids inside a Circuit are *registers*: after dead-gate elimination the scheduled gates are
register-allocated (a wire's slot is reused once its last reader has run), so the working set
of a batch is the peak number of live wires rather than the gate count. That keeps wide batches
in the cache, which is where the kernels are fast (research/limits.md §2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

# Opcodes of the gate arrays. in1 is unused (0) for NOT, CONST and SEND; for CONST, in0 is the
# bit. Inside an AND layer (mpc.fusion): AND is a product that is reshared (sent), PROD one
# that stays an additive share, XOR/NOT act on additive shares, SEND reshares its wire.
XOR = 0
AND = 1
NOT = 2
CONST = 3
PROD = 5
SEND = 6
OPCODE_NAMES = {XOR: "XOR", AND: "AND", NOT: "NOT", CONST: "CONST", PROD: "PROD", SEND: "SEND"}

# Builder-only pseudo opcode for input wires.
INPUT = 4


@dataclass(eq=False)
class Circuit:
    """A scheduled, register-allocated boolean circuit.

    ``gates`` is every gate in schedule order; ``bounds`` cuts it into the
    ``2 * and_depth + 1`` pieces segment 0, AND layer 1, segment 1, ..., segment D.
    ``segments[d]`` and ``and_layers[d - 1]`` are views into ``gates``.
    """

    n_wires: int
    input_wires: list[np.ndarray]
    output_wires: list[np.ndarray]
    gates: np.ndarray
    bounds: np.ndarray
    segments: list[np.ndarray] = field(init=False)
    and_layers: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        b = [int(x) for x in self.bounds]
        pieces = [self.gates[b[i] : b[i + 1]] for i in range(len(b) - 1)]
        self.segments = pieces[0::2]
        self.and_layers = pieces[1::2]
        ops = self.gates[:, 0]
        self._counts = {op: int(np.count_nonzero(ops == op)) for op in OPCODE_NAMES}

    # -- sizes --------------------------------------------------------------------------------
    @property
    def and_depth(self) -> int:
        """Number of AND layers = number of communication rounds."""
        return len(self.and_layers)

    @property
    def and_count(self) -> int:
        """AND gates (products), whether reshared on their own or folded into a sum."""
        return self._counts[AND] + self._counts[PROD]

    @property
    def sent_count(self) -> int:
        """Words each party sends per instance word over the whole circuit (sum of
        ``layer_sizes``): at most ``and_count``, less where sums of products are reshared."""
        return self._counts[AND] + self._counts[SEND]

    @property
    def xor_count(self) -> int:
        return self._counts[XOR]

    @property
    def not_count(self) -> int:
        return self._counts[NOT]

    @property
    def gate_count(self) -> int:
        return int(self.gates.shape[0])

    @property
    def input_sizes(self) -> list[int]:
        return [len(w) for w in self.input_wires]

    @property
    def output_sizes(self) -> list[int]:
        return [len(w) for w in self.output_wires]

    @cached_property
    def layer_sizes(self) -> list[int]:
        """Reshared wires per layer (its AND and SEND rows: the z words each party sends per
        round, per instance word); computed once (every job of the circuit asks). Do not
        modify the list."""
        return [int(np.count_nonzero((layer[:, 0] == AND) | (layer[:, 0] == SEND)))
                for layer in self.and_layers]

    def digest(self) -> str:
        """SHA-256 (hex) of the schedule: gates, cuts, input and output wires. Parties that
        compute the same digest run the same rounds with the same message sizes."""
        h = hashlib.sha256()
        h.update(np.int64(self.n_wires).tobytes())
        h.update(np.ascontiguousarray(self.gates, dtype="<i4").tobytes())
        h.update(np.ascontiguousarray(self.bounds, dtype="<i8").tobytes())
        for group in (self.input_wires, self.output_wires):
            h.update(np.int64(len(group)).tobytes())
            for ids in group:
                h.update(np.int64(len(ids)).tobytes())
                h.update(np.ascontiguousarray(ids, dtype="<i8").tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (
            f"Circuit(inputs={self.input_sizes}, outputs={self.output_sizes}, "
            f"and={self.and_count}, sent={self.sent_count}, xor={self.xor_count}, "
            f"not={self.not_count}, and_depth={self.and_depth}, registers={self.n_wires})"
        )

    # -- plain evaluation ---------------------------------------------------------------------
    def evaluate_plain(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Evaluate in the clear (tests, reference).

        Each input is either bit-sliced, shape ``(n_bits, words)`` uint64 (instance t in bit
        t % 64 of word t // 64), or one instance as plain bits, shape ``(n_bits,)`` of 0/1.
        All inputs must use the same form; outputs come back in that form (plain bits as uint8).
        """
        from mpc.kernels import plain_circuit

        words, plain = _input_form(self, inputs)
        wires = np.zeros((self.n_wires, words), dtype=np.uint64)
        for ids, value in zip(self.input_wires, inputs, strict=True):
            wires[ids] = _as_words(value, plain)
        plain_circuit(wires, self.gates)
        outs = [wires[ids] for ids in self.output_wires]
        if plain:
            return [(o[:, 0] & np.uint64(1)).astype(np.uint8) for o in outs]
        return [np.ascontiguousarray(o) for o in outs]


def _input_form(circuit: Circuit, inputs: list[np.ndarray]) -> tuple[int, bool]:
    """Return (words, plain) after checking the inputs against the circuit's input sizes."""
    if len(inputs) != len(circuit.input_wires):
        raise ValueError(f"circuit takes {len(circuit.input_wires)} inputs, got {len(inputs)}")
    arrays = [np.asarray(x) for x in inputs]
    plain = all(a.ndim == 1 for a in arrays)
    if not plain and not all(a.ndim == 2 for a in arrays):
        raise ValueError("inputs must all be 1-D bit vectors or all 2-D (n_bits, words) words")
    words = 1 if plain else (arrays[0].shape[1] if arrays else 1)
    for i, (a, ids) in enumerate(zip(arrays, circuit.input_wires, strict=True)):
        if a.shape[0] != len(ids):
            raise ValueError(f"input {i} has {a.shape[0]} bits, circuit expects {len(ids)}")
        if not plain and a.shape[1] != words:
            raise ValueError("all bit-sliced inputs must have the same number of words")
    return words, plain


def _as_words(value: np.ndarray, plain: bool) -> np.ndarray:
    a = np.asarray(value)
    if plain:
        return (a.astype(np.uint64) & np.uint64(1)).reshape(-1, 1)
    if a.dtype != np.uint64:
        raise TypeError("bit-sliced inputs must be uint64 arrays")
    return a


def build_circuit(
    ops: list[int] | np.ndarray,
    in0: list[int] | np.ndarray,
    in1: list[int] | np.ndarray,
    inputs: list[list[int]],
    outputs: list[list[int]],
    local_placement: str = "late",
    *,
    reference: bool = False,
    fuse: bool = True,
) -> Circuit:
    """Schedule a topologically ordered gate list (one entry per builder wire) into a Circuit.

    ``ops[w]`` is the opcode that defines wire w (INPUT for input wires); gate inputs are wire
    ids smaller than w. Steps: dead-gate elimination from the outputs, AND depth per wire,
    grouping into segments/layers, then register allocation over the schedule (numba kernel
    :func:`mpc.kernels.schedule_circuit`; ``reference=True`` runs the plain Python twin in
    :mod:`mpc.kernels_ref`, for tests).

    ``local_placement`` "late" puts each XOR/NOT/constant gate in the last segment before its
    first consumer (fewer live wires: e.g. SHA-1's XOR-only message schedule is computed when
    needed, not all up front); "early" puts it right after its inputs are ready. The AND layers,
    and so the rounds, are the same either way.

    ``fuse`` (the default) first rewrites the list so that each round reshares a basis of the
    sums of products that later rounds read, not every AND (:mod:`mpc.fusion`): same rounds,
    same outputs, fewer words per round (AES-128: 3,040 instead of 5,440 per block).
    """
    if local_placement not in ("late", "early"):
        raise ValueError("local_placement must be 'late' or 'early'")
    if reference:
        from mpc.kernels_ref import schedule_circuit
    else:
        from mpc.kernels import schedule_circuit

    input_lists = [np.asarray(v, dtype=np.int64).reshape(-1) for v in inputs]
    output_lists = [np.asarray(v, dtype=np.int64).reshape(-1) for v in outputs]
    ops = np.asarray(ops, dtype=np.int32)
    in0 = np.asarray(in0, dtype=np.int32)
    in1 = np.asarray(in1, dtype=np.int32)
    all_outputs = np.concatenate(output_lists) if output_lists else np.zeros(0, dtype=np.int64)
    reshare = np.zeros(0, dtype=np.uint8)  # empty: every AND is reshared
    if fuse:
        from mpc.fusion import fuse_layers

        ops, in0, in1, new_id, all_outputs, reshare = fuse_layers(ops, in0, in1, all_outputs)
        input_lists = [new_id[v] for v in input_lists]
        cuts = np.cumsum([len(v) for v in output_lists])[:-1]
        output_lists = np.split(all_outputs, cuts) if output_lists else []
    rows, bounds, reg, n_regs = schedule_circuit(
        ops,
        in0,
        in1,
        np.concatenate(input_lists) if input_lists else np.zeros(0, dtype=np.int64),
        all_outputs,
        local_placement == "late",
        reshare,
    )
    reg = np.asarray(reg, dtype=np.int64)
    return Circuit(
        n_wires=max(int(n_regs), 1),
        input_wires=[reg[v] for v in input_lists],
        output_wires=[reg[v] for v in output_lists],
        gates=np.ascontiguousarray(rows, dtype=np.int32).reshape(-1, 4),
        bounds=np.asarray(bounds, dtype=np.int64),
    )
