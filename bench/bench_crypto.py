"""Micro benchmark of the plain Kerberos crypto (kdc.crypto): ops/s for a 200-octet plaintext.

Warm = the (key, usage) derived keys are cached (long-term keys, reused session keys);
cold = a fresh key per operation (a new session key per reply: derivation included).
Prints a table and writes bench/out/bench_crypto.json. Not a test: nothing here asserts.

    python -m bench.bench_crypto [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from kdc import crypto

PLAINTEXT = bytes(range(200))


def _rate(fn, seconds: float) -> float:
    n = 0
    batch = 200
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def run(seconds: float) -> list[dict]:
    results = []
    for etype in (18, 17):
        key = crypto.random_key(etype)
        ct = crypto.encrypt(key, 3, PLAINTEXT)
        keys = [crypto.random_key(etype) for _ in range(4096)]
        it = iter(range(1 << 62))

        def cold_encrypt(keys=keys, it=it):
            crypto.encrypt(keys[next(it) % 4096], 3, PLAINTEXT, cache=crypto.UsageKeyCache(1))

        cases = {
            "encrypt_warm": lambda key=key: crypto.encrypt(key, 3, PLAINTEXT),
            "decrypt_warm": lambda key=key, ct=ct: crypto.decrypt(key, 3, ct),
            "encrypt_cold": cold_encrypt,
            "checksum_warm": lambda key=key: crypto.make_checksum(key, 6, PLAINTEXT),
        }
        for name, fn in cases.items():
            ops = _rate(fn, seconds)
            results.append(
                {
                    "etype": etype,
                    "op": name,
                    "plaintext_bytes": len(PLAINTEXT),
                    "ops_per_s": round(ops, 1),
                    "us_per_op": round(1e6 / ops, 2),
                }
            )
            print(f"etype {etype}  {name:14s} {ops:12,.0f} ops/s  {1e6 / ops:8.2f} us/op")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="time per case")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = ap.parse_args(argv)
    results = run(args.seconds)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "kdc.crypto plain RFC 3961/3962",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "results": results,
    }
    path = out_dir / "bench_crypto.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
