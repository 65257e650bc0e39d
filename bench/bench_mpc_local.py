"""Compute-only ceiling of the MPC engine: three parties in one process, no network.

Measures (best of several repeats, after a warm-up run):
  * pure AND layers: AND gates/s, with the PRF zero-shares (AES-CTR) included and the kernel
    alone;
  * Bristol AES-128 (and AES-256, SHA-256 compression): blocks/s and bit-gates/s at several
    batch sizes (64 instances per uint64 word).
All three parties run one after another on ONE core, so "per core" figures are aggregates of
the three parties and "per party" figures are 3x that. Not a test: prints a table and writes
bench/out/bench_mpc_local.json.

    NUMBA_NUM_THREADS=1 python -m bench.bench_mpc_local [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from mpc.bristol import load_bristol  # noqa: E402
from mpc.builder import CircuitBuilder  # noqa: E402
from mpc.circuit import Circuit  # noqa: E402
from mpc.evaluator import PartyEvaluation  # noqa: E402
from mpc.kernels import empty_layer, party_round  # noqa: E402
from mpc.local import run_parties  # noqa: E402
from mpc.prf import party_randomness  # noqa: E402
from mpc.sharing import share_bits  # noqa: E402

BRISTOL = ROOT.parent / "shared" / "circuits" / "bristol"


def and_layers_circuit(width: int, depth: int) -> Circuit:
    """``depth`` layers of ``width`` independent ANDs and nothing else."""
    b = CircuitBuilder()
    x, y = b.input(width), b.input(width)
    z = x
    for d in range(depth):
        z = [b.and_(z[k], y[(k + d) % width]) for k in range(width)]
    b.output(z)
    return b.build()


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> float:
    """CPU seconds since ``start`` (the box is shared, so wall time mostly measures the
    neighbours; the work is single-threaded, so CPU time is the compute cost)."""
    return time.process_time() - start[1]


def time_three_parties(circuit: Circuit, words: int, repeats: int) -> float:
    """Best CPU time of run_parties (rounds only; sharing and reveal excluded)."""
    rng = np.random.default_rng(1)
    rands = party_randomness()
    shares = [
        share_bits(rng.integers(0, 1 << 64, size=(n, words), dtype=np.uint64), rng)
        for n in circuit.input_sizes
    ]
    best = float("inf")
    for rep in range(repeats + 1):
        parties = [
            PartyEvaluation(circuit, i, rands[i], rep, words, reuse_send_buffers=True)
            for i in range(3)
        ]
        for k, s in enumerate(shares):
            for i in range(3):
                parties[i].set_input(k, s[i])
        t0 = clock()
        run_parties(parties)
        elapsed = since(t0)
        if rep:  # the first run warms caches and page tables
            best = min(best, elapsed)
    return best


def time_kernel_only(circuit: Circuit, words: int, repeats: int) -> float:
    """One party's rounds with zero alpha (no PRF, no Python bookkeeping besides the loop)."""
    wires = np.zeros((circuit.n_wires, 2 * words), dtype=np.uint64)
    widest = max(circuit.layer_sizes, default=0)
    alpha = np.zeros((widest, words), dtype=np.uint64)
    send = np.zeros((widest, words), dtype=np.uint64)
    empty, none = empty_layer(), np.zeros((0, words), dtype=np.uint64)
    ones, zero = np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64(0)
    best = float("inf")
    for rep in range(repeats + 1):
        t0 = clock()
        prev, recv = empty, none
        for d in range(circuit.and_depth + 1):
            if d < circuit.and_depth:
                layer = circuit.and_layers[d]
                n = len(layer)
                a, s = alpha[:n], send[:n]
            else:
                layer, a, s = empty, none, none
            party_round(wires, prev, recv, circuit.segments[d], layer, a, a, s, ones, zero)
            prev, recv = layer, s
        elapsed = since(t0)
        if rep:
            best = min(best, elapsed)
    return best


def bench_and_layers(quick: bool) -> list[dict]:
    rows = []
    width, depth = 1024, 8
    circuit = and_layers_circuit(width, depth)
    for words in [16, 64, 256] if quick else [16, 64, 256, 1024]:
        t3 = time_three_parties(circuit, words, 2 if quick else 4)
        t1 = time_kernel_only(circuit, words, 2 if quick else 4)
        ands = circuit.and_count * 64 * words
        rows.append(
            {
                "circuit": f"and_layers_{width}x{depth}",
                "words": words,
                "instances": 64 * words,
                "three_parties_s": t3,
                "and_per_s_per_core_3_parties": ands / t3,
                "and_per_s_per_party": 3 * ands / t3,
                "kernel_only_s_one_party": t1,
                "and_per_s_kernel_only": ands / t1,
            }
        )
    return rows


def bench_bristol(name: str, word_list: list[int], repeats: int) -> list[dict]:
    circuit = load_bristol(BRISTOL / f"{name}.txt")
    rows = []
    for words in word_list:
        t3 = time_three_parties(circuit, words, repeats)
        t1 = time_kernel_only(circuit, words, repeats)
        instances = 64 * words
        rows.append(
            {
                "circuit": name,
                "and_depth": circuit.and_depth,
                "gates": circuit.gate_count,
                "registers": circuit.n_wires,
                "words": words,
                "instances": instances,
                "three_parties_s": t3,
                "instances_per_s": instances / t3,
                "bit_gates_per_s_per_core": 3 * circuit.gate_count * instances / t3,
                "kernel_only_s_one_party": t1,
                "bit_gates_per_s_kernel_only": circuit.gate_count * instances / t1,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = parser.parse_args()
    reps = 2 if args.quick else 4
    results = {
        "bench": "mpc_local_compute_only",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "cpus": os.cpu_count(),
            "numba_threads": os.environ.get("NUMBA_NUM_THREADS"),
        },
        "note": "3 parties sequentially in one process on one core; times are best-of CPU "
        "seconds (process_time); PRF (AES) included unless a field says kernel_only",
        "and_layers": bench_and_layers(args.quick),
        "aes_128": bench_bristol(
            "aes_128", [1, 4, 16, 64, 256] if args.quick else [1, 4, 16, 64, 256, 1024], reps
        ),
        "aes_256": bench_bristol("aes_256", [16, 64, 256], reps),
        "sha256": bench_bristol("sha256", [1, 16] if args.quick else [1, 16, 64], 1),
    }

    print("pure AND layers (1024 AND x 8 layers)")
    print(f"{'words':>6} {'AND/s/core (3 parties)':>24} {'AND/s/party':>14} {'kernel-only':>14}")
    for r in results["and_layers"]:
        print(
            f"{r['words']:>6} {r['and_per_s_per_core_3_parties'] / 1e9:>22.1f} G "
            f"{r['and_per_s_per_party'] / 1e9:>12.1f} G {r['and_per_s_kernel_only'] / 1e9:>12.1f} G"
        )
    for name in ("aes_128", "aes_256", "sha256"):
        print(f"\nBristol {name}")
        print(
            f"{'blocks':>8} {'ms/batch':>10} {'blocks/s':>12} {'bit-gates/s/core':>17} {'kernel':>10}"
        )
        for r in results[name]:
            print(
                f"{r['instances']:>8} {r['three_parties_s'] * 1e3:>10.2f} "
                f"{r['instances_per_s']:>12,.0f} {r['bit_gates_per_s_per_core'] / 1e9:>15.1f} G "
                f"{r['bit_gates_per_s_kernel_only'] / 1e9:>8.1f} G"
            )
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench_mpc_local.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
