"""Is our load generator fast enough? Measure it against MIT's own client library.

Starts a throwaway MIT krb5kdc realm (tests/mit_kdc.py: bob@EXAMPLE.COM requires
pre-authentication), then alternates, back to back, ``../shared/tools/kdcload -m as -p bob`` (MIT
libkrb5: AS-REQ, PREAUTH_REQUIRED, AS-REQ with PA-ENC-TIMESTAMP) and our generator in mode
``as-preauth`` with the same principal, keytab, concurrency and duration. Prints each run, the
medians and the ratio ours/kdcload (the issue's target: at least 80 %), and writes JSON to
bench/out/loadgen_vs_kdcload.json. Not a test: figures vary with the machine's other load.

    python bench/loadgen_vs_kdcload.py [--rounds 3] [--seconds 5] [--concurrency 4] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.compare_mit import kdcload_binary  # noqa: E402
from bench.loadgen.engine import LoadConfig, run_load  # noqa: E402
from bench.loadgen.report import run_to_json  # noqa: E402
from tests.mit_kdc import MitRealm, missing_programs  # noqa: E402


def run_kdcload(binary: Path, realm: MitRealm, conc: int, seconds: float) -> dict:
    proc = subprocess.run(
        [str(binary), "-m", "as", "-p", "bob@EXAMPLE.COM", "-k", str(realm.keytab("bob")),
         "-K", f"127.0.0.1:{realm.port}", "-c", str(conc), "-d", str(seconds)],
        capture_output=True, text=True, timeout=seconds + 60, env=realm.env(),
    )
    last = proc.stdout.strip().splitlines()[-1]
    fields = dict(re.findall(r"(\w+)=([\d.]+)", last))
    return {k: float(v) for k, v in fields.items()} | {"raw": last}


def run_ours(realm: MitRealm, conc: int, seconds: float, workers: int) -> dict:
    cfg = LoadConfig(("127.0.0.1", realm.port), realm.realm, ["bob"], mode="as-preauth",
                     keytab=str(realm.keytab("bob")), concurrency=conc, duration=seconds,
                     workers=workers, label="loadgen")
    doc = run_to_json(run_load(cfg))
    s = doc["summary"]
    return {"qps": s["qps"], "ok": s["ok"], "errors": s["errors"],
            "p50_ms": s["latency_ok"].get("p50_ms"), "p99_ms": s["latency_ok"].get("p99_ms"),
            "cli_cpu": s["cpu_cores"], "messages": s["messages"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "loadgen_vs_kdcload.json"))
    args = p.parse_args(argv)
    missing = missing_programs()
    if missing:
        print(f"MIT programs missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    binary = kdcload_binary()
    with tempfile.TemporaryDirectory(prefix="loadgen-vs-kdcload-") as tmp:
        realm = MitRealm.start(Path(tmp))
        try:
            rows = []
            for i in range(args.rounds):
                # alternate who goes first, so drift in the machine's load hits both alike
                order = ("kdcload", "ours") if i % 2 == 0 else ("ours", "kdcload")
                for who in order:
                    if who == "kdcload":
                        r = run_kdcload(binary, realm, args.concurrency, args.seconds)
                    else:
                        r = run_ours(realm, args.concurrency, args.seconds, args.workers)
                    r["who"], r["round"] = who, i
                    rows.append(r)
                    print(f"round {i} {who:8s} {r['qps']:8.1f} logins/s  "
                          f"p50 {r.get('p50_ms')} ms  p99 {r.get('p99_ms')} ms  "
                          f"cpu {r.get('cli_cpu')} cores", flush=True)
        finally:
            realm.stop_kdc()
    kd = statistics.median(r["qps"] for r in rows if r["who"] == "kdcload")
    ours = statistics.median(r["qps"] for r in rows if r["who"] == "ours")
    ratio = ours / kd if kd else float("nan")
    print(f"median kdcload {kd:.1f}/s, ours {ours:.1f}/s: ratio {ratio:.2f} (target >= 0.80)")
    result = {
        "bench": "loadgen_vs_kdcload", "time": time.time(), "mode": "as-preauth (bob, keytab)",
        "concurrency": args.concurrency, "seconds": args.seconds, "workers": args.workers,
        "rounds": rows, "kdcload_median_qps": kd, "ours_median_qps": ours, "ratio": ratio,
        "load_average": os.getloadavg(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"json: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
