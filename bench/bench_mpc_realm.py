"""The MPC realm against MIT krb5kdc: pre-authenticated AS logins/s and TGS/s, same sitting.

* MPC realm: ``tests/mpc_realm.py`` (three ``mpc.node`` processes with SQLite stores, our
  front-end with the MPC key service, principals made by the admin tool); bob
  (+requires_preauth) and alice get fresh keytabs with ``mpckdc admin ktadd``.
* MIT: ``SETUP_ONLY=1 ../shared/tools/kdcload/mit-baseline.sh`` and ``krb5kdc -n``
  (``bench.compare_mit.MitKdc``).

``kdcload`` (``<root>/.build/kdcload``, built from ../shared/tools/kdcload when missing) runs

    as-preauth  kdcload -m as -p bob -k bob.keytab      (PREAUTH_REQUIRED + AS-REQ with
                                                         PA-ENC-TIMESTAMP: 2 KDC messages)
    tgs         kdcload -m tgs -p alice -k alice.keytab -s HTTP/localhost

at each concurrency (default 1, 16, 256) against both KDCs back to back. CPU is read from
/proc for the front-end and for the three nodes. Around every MPC run the nodes' engine
counters (PING: frames = rounds sent, sections = batch layers carried, merge waits) give
where the time goes: MPC rounds per op (on every node: the critical path of one op at
concurrency 1), batch layers per round, wall time per round, node CPU per op. The nodes'
Prometheus /metrics are scraped at the end. Prints a markdown table and writes
``bench/out/bench_mpc_realm.json``.

    python -m bench.bench_mpc_realm [--seconds 10] [--conc 1 16 256] [--modes as-preauth tgs]
                                    [--transport udp|tcp] [--no-mit]

Not a test: the figures depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.compare_mit import (  # noqa: E402
    HZ,
    MitKdc,
    Target,
    kdcload_binary,
    process_ticks,
    quiet_wait,
    run_kdcload,
)
from tests.mpc_realm import MpcRealm, start_mpc_realm  # noqa: E402

REALM = "EXAMPLE.COM"


def prepare_mpc(work: Path) -> MpcRealm:
    realm = start_mpc_realm(work)
    for user in ("alice", "bob"):
        realm.admin_ok("ktadd", "-k", str(work / f"{user}.keytab"), user)
    time.sleep(2.0)  # the front-end's principal cache (1.5 s) sees the new kvno
    return realm


def warm(binary: Path, target: Target, modes: list[str], transport: str) -> None:
    """A few ops of each mode so every circuit size class is built (bounded)."""
    for mode in modes:
        for _ in range(10):
            try:
                r = run_kdcload(binary, target, mode, 1, 3, transport)
            except RuntimeError:
                continue
            if r["ok"] and not r["err"]:
                break


def node_ticks(realm: MpcRealm) -> int:
    return sum(process_ticks(p.pid) for p in realm.nodes if p is not None)


def engine_counters(realm: MpcRealm) -> dict | None:
    """Node 0's engine counters (PING over the admin client; all nodes run in lockstep)."""
    import asyncio

    from mpc.client import AsyncMpcClient, MpcError

    async def ping() -> list[dict]:
        client = AsyncMpcClient(realm.client_config, "admin", timeout=5)
        try:
            return await client.ping()
        finally:
            await client.close()

    try:
        replies = asyncio.run(ping())
    except (MpcError, OSError, TimeoutError):
        return None
    return next((m for m in replies if m.get("party") == 0), None)


def engine_delta(before: dict | None, after: dict | None, row: dict) -> dict:
    """Rounds per op, layers per round and wall time per round of one run."""
    if not before or not after or not row.get("ok"):
        return {}
    rounds = after["rounds"] - before["rounds"]
    sections = after["sections"] - before["sections"]
    secs = row["secs"] or 1.0
    return {"rounds": rounds, "rounds_per_op": round(rounds / row["ok"], 1),
            "sections_per_round": round(sections / rounds, 2) if rounds else None,
            "round_us": round(secs * 1e6 / rounds, 1) if rounds else None,
            "merge_waits": after.get("merge_waits", 0) - before.get("merge_waits", 0),
            "rtt_us": after.get("rtt_us")}


def scrape_metrics(realm: MpcRealm) -> dict[str, str]:
    from clients.admin_init import metrics_ports

    out = {}
    for i, port in enumerate(metrics_ports(realm.cluster)):
        if not port:
            continue
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                out[f"node-{i}"] = resp.read().decode("utf-8", "replace")
        except OSError as exc:
            out[f"node-{i}"] = f"# unavailable: {exc}"
    return out


def table(rows: list[dict]) -> str:
    lines = ["| mode | conc | KDC | ops/s | p50 ms | p99 ms | errors | KDC CPU | nodes CPU "
             "| kdcload CPU | node CPU ms/op | rounds/op | layers/round | us/round |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r.get("engine") or {}
        lines.append(
            f"| {r['mode']} | {r['conc']} | {r['target']} | {r['qps'] or 0:.1f} | "
            f"{r['p50_ms'] if r['p50_ms'] is not None else '-'} | "
            f"{r['p99_ms'] if r['p99_ms'] is not None else '-'} | {int(r['err'] or 0)} | "
            f"{r['kdc_cpu']:.2f} | {r.get('nodes_cpu', '-')} | {r.get('cli_cpu', '-')} | "
            f"{r.get('node_cpu_ms_per_op', '-')} | {e.get('rounds_per_op', '-')} | "
            f"{e.get('sections_per_round', '-')} | {e.get('round_us', '-')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--conc", type=int, nargs="+", default=[1, 16, 256])
    ap.add_argument("--modes", nargs="+", default=["as-preauth", "tgs"],
                    choices=["as-preauth", "tgs", "as"])
    ap.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    ap.add_argument("--no-mit", action="store_true", help="only the MPC realm")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "bench_mpc_realm.json"))
    args = ap.parse_args(argv)

    binary = kdcload_binary()
    work = Path(tempfile.mkdtemp(prefix="bench-mpc-realm-"))
    realm = mit = None
    rows: list[dict] = []
    try:
        print(f"# starting the MPC realm in {work / 'mpc'} ...", flush=True)
        realm = prepare_mpc(work / "mpc")
        ours = Target("mpc", realm.work, realm.port, realm.kdc.pid, 1)
        warm(binary, ours, args.modes, args.transport)
        targets = [ours]
        if not args.no_mit:
            mit = MitKdc(work / "mit", 1)
            targets.append(mit.start())
        for mode in args.modes:
            for conc in args.conc:
                for target in targets:
                    quiet_wait(0.5, 20)
                    n0 = node_ticks(realm) if target is ours else 0
                    e0 = engine_counters(realm) if target is ours else None
                    row = run_kdcload(binary, target, mode, conc, args.seconds, args.transport)
                    if target is ours:
                        cpu = (node_ticks(realm) - n0) / HZ
                        row["nodes_cpu"] = round(cpu / (row["secs"] or args.seconds), 2)
                        row["node_cpu_ms_per_op"] = (round(cpu * 1e3 / row["ok"], 2)
                                                     if row["ok"] else None)
                        row["engine"] = engine_delta(e0, engine_counters(realm), row)
                    rows.append(row)
                    print(f"# {target.name:4} {mode:10} c={conc:<4} {row['raw']}", flush=True)
        metrics = scrape_metrics(realm)
    finally:
        if mit is not None:
            mit.stop()
        if realm is not None:
            realm.stop()
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "bench": "bench_mpc_realm", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "transport": args.transport, "seconds": args.seconds, "rows": rows,
        "node_metrics": metrics,
    }, indent=1))
    print(f"# wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
