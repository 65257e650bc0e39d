"""Run the three parties of one evaluation in one process (tests; compute-only bench ceiling).

The z buffers go straight from one PartyEvaluation to the next: party i's send buffer is what
party i-1 receives. Same code path as the networked nodes minus the transport.
"""

from __future__ import annotations

import numpy as np

from mpc.circuit import Circuit
from mpc.evaluator import PartyEvaluation
from mpc.prf import PartyRandomness, party_randomness
from mpc.sharing import Rng, reveal, share_bits


def run_parties(parties: list[PartyEvaluation]) -> None:
    """Drive three PartyEvaluations (index = party) to the end, exchanging z in memory."""
    sends = [p.start() for p in parties]
    rounds = 0
    while sends[0] is not None:
        if any(s is None for s in sends):  # pragma: no cover - same circuit, same depth
            raise RuntimeError("parties disagree on the number of rounds")
        sends = [parties[i].receive(sends[(i + 1) % 3]) for i in range(3)]
        rounds += 1
        if rounds > parties[0].rounds:  # pragma: no cover - bounded loop guard
            raise RuntimeError("more rounds than the circuit's AND depth")


def run_three(
    circuit: Circuit,
    inputs_bits: list[np.ndarray],
    words: int | None = None,
    *,
    batch_id: int = 0,
    rng: Rng = None,
    randomness: list[PartyRandomness] | None = None,
    reuse_send_buffers: bool = True,
) -> list[np.ndarray]:
    """Share ``inputs_bits`` (each (n_bits, words) uint64), evaluate with three parties,
    reveal (with the two-copy check) and return the outputs as (n_bits, words) uint64."""
    arrays = [np.asarray(x) for x in inputs_bits]
    if words is None:
        words = arrays[0].shape[1] if arrays else 1
    for a in arrays:
        if a.ndim != 2 or a.shape[1] != words or a.dtype != np.uint64:
            raise ValueError(f"inputs must be uint64 arrays of shape (n_bits, {words})")
    rands = randomness if randomness is not None else party_randomness()
    parties = [
        PartyEvaluation(
            circuit, i, rands[i], batch_id, words, reuse_send_buffers=reuse_send_buffers
        )
        for i in range(3)
    ]
    for index, value in enumerate(arrays):
        shares = share_bits(value, rng)
        for i in range(3):
            parties[i].set_input(index, shares[i])
    run_parties(parties)
    return [
        reveal([parties[i].output(k) for i in range(3)]) for k in range(len(circuit.output_wires))
    ]
