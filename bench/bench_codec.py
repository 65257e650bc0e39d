"""DER codec speed: the hand-written codec (kdc.messages.der, and its mypyc build when the
install made one: kdc.messages.codec) against pyasn1 (the reference).

Decodes and encodes the captured MIT 1.20 AS-REQ, TGS-REQ and AS-REP with both codecs and
prints operations per second and microseconds per operation; writes the figures as JSON to
``bench/out/codec.json`` (or ``--out``). Not a test: nothing here asserts on time.

    python -m bench.bench_codec [--seconds 0.3] [--out bench/out/codec.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from kdc.messages import KdcRep, KdcReq, der, pyasn1_codec
from kdc.messages.codec import compiled
from tests.vectors import capture

MESSAGES = [
    ("as-req", "alice-as-req", KdcReq),
    ("tgs-req", "alice-tgs-req-http-localhost", KdcReq),
    ("as-rep", "alice-as-rep", KdcRep),
]
CODECS = [("der", der), *([("der-c", compiled)] if compiled else []), ("pyasn1", pyasn1_codec)]


def rate(fn, seconds: float) -> float:
    """Operations per second of ``fn()``: best of 3 runs of at least ``seconds`` each."""
    n = 1
    while True:  # calibrate the loop count (bounded: doubles until one run takes >= seconds/4)
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= seconds / 4 or n >= 1 << 24:
            break
        n *= 2
    n = max(1, int(n * seconds / max(dt, 1e-9)))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.3, help="minimum time per measurement")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "codec.json")
    args = ap.parse_args(argv)

    results = []
    print(
        f"{'message':8} {'bytes':>5} {'codec':7} {'decode/s':>10} {'us':>7} {'encode/s':>10} {'us':>7}"
    )
    for label, name, cls in MESSAGES:
        data = capture(name)
        for codec_name, codec in CODECS:
            obj = codec.decode(cls, data)
            assert codec.encode(obj) == data  # measure the right thing
            dec = rate(
                lambda codec=codec, data=data, cls=cls: codec.decode(cls, data), args.seconds
            )
            enc = rate(lambda codec=codec, obj=obj: codec.encode(obj), args.seconds)
            results.append(
                {
                    "message": label,
                    "capture": name,
                    "bytes": len(data),
                    "codec": codec_name,
                    "decode_per_s": round(dec, 1),
                    "decode_us": round(1e6 / dec, 2),
                    "encode_per_s": round(enc, 1),
                    "encode_us": round(1e6 / enc, 2),
                }
            )
            print(
                f"{label:8} {len(data):5} {codec_name:7} {dec:10.0f} {1e6 / dec:7.1f}"
                f" {enc:10.0f} {1e6 / enc:7.1f}"
            )
    for label, _, _ in MESSAGES:
        rows = {r["codec"]: r for r in results if r["message"] == label}
        ref = rows.pop("pyasn1")
        for name, fast in rows.items():
            print(f"{label}: {name} is {fast['decode_per_s'] / ref['decode_per_s']:.0f}x faster"
                  f" to decode, {fast['encode_per_s'] / ref['encode_per_s']:.0f}x to encode")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "codec",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "results": results,
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
