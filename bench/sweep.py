"""Offered-load sweep of the embedded MPC realm and MIT ``krb5kdc`` in one run (issue 5).

What one run does, everything on 127.0.0.1 and on free ports, every process stopped by PID:

1. starts the targets: MIT ``krb5kdc`` on a throwaway realm (``tests.mit_kdc``) and the
   embedded MPC realm (three ``mpc.node`` processes + the front-end with its ``[metrics]``
   endpoint; the nodes serve theirs on ``metrics_port``);
2. bulk-registers ``--users`` N load-test principals ``user0000`` ... with random keys and
   ``+requires_preauth`` on each, keys exported to a keytab: MPC with ONE
   ``mpckdc admin bulk-addprinc`` call, MIT with one ``kadmin.local`` session reading
   ``addprinc`` lines from standard input plus one ``ktadd -glob``; both timed (users/s);
3. per mode (``as-preauth``, ``tgs``) and target: an open-loop sweep of offered load
   (``bench.loadgen``; latency from the intended send time). A step that misses the bar
   (p99 >= 1 s or any error) where a miss may be noise (first step, or just above a step that
   met it) is measured again (``--retry-missed``) and the better attempt kept: the machine may
   be shared. A target's sweep stops after ``--past-knee`` saturated steps in a row (missed
   the bar AND under 90 % of the offered rate). Before every step the MPC nodes must have no
   work left from the previous one (bounded wait); before and after it the front-end's and
   the nodes' ``/metrics`` are scraped, and MPC rounds/s, AND gates/s, batches/s, batch size
   (slots: the node observes 64 x words), rounds and seconds per batch go into the report
   (per second of the whole step, which in tgs mode includes its TGT logins); each step also
   records the machine's load average;
4. writes ``OUT/sweep.json`` (registration, knee table, every step with its MPC figures) and
   per mode ``OUT/<mode>/result.json`` with the loadgen plots (``sweep.png``: QPS and p99
   against offered load, both targets on one axis; ``sweep-by-target.png``: one column per
   target with its own scales; throughput and latency over time, latency CDF).

The knee is the highest offered rate whose p99 stayed under 1 s with no errors
(``bench.loadgen.report.knee``).

    python -m bench.sweep --users 1000 --duration 5 --mpc-duration 10 --out bench/out/sweep
    python -m bench.sweep --targets mit --users 20 --mit-rates 50,100 --duration 1   # tiny
    python -m bench.sweep --bulk-only 10000       # only time bulk-addprinc of 10,000 on MPC
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadgen.cli import metrics_delta, scrape  # noqa: E402
from bench.loadgen.engine import LoadConfig, WorkerFailed, run_load  # noqa: E402
from bench.loadgen.report import document, knee, plot, run_to_json, text_table, write_json  # noqa: E402
from bench.loadgen.requests import principal_names  # noqa: E402

DEFAULT_OUT = "bench/out/sweep"
USER_FORMAT = "user{i:04d}"
MODES = ("as-preauth", "tgs")
MPC_RATES = "0.5,1,2,4,8,16,24,32,48,64"
MIT_RATES = "250,500,1000,1500,2000,2500,3000,4000"
P99_LIMIT_MS = 1000.0
DRAIN_TIMEOUT = 60.0  # seconds to wait for the MPC nodes' queues to empty between steps


def log(msg: str) -> None:
    print(f"[sweep {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- targets ------------------------------------------------------------------------------------


class MitTarget:
    """MIT krb5kdc on a throwaway realm with N extra users (keys in ``users.keytab``)."""

    label = "mit-krb5kdc"

    def __init__(self, work: Path) -> None:
        from tests.mit_kdc import MitRealm

        self.work = work
        self.realm = MitRealm.create(work)
        self.keytab = work / "users.keytab"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.realm.port)

    def register(self, n: int) -> dict:
        """One kadmin.local session fed ``addprinc`` lines on stdin, then one ``ktadd -glob``."""
        from tests.mit_kdc import ENCTYPES, find_program

        kadmin = find_program("kadmin.local") or "kadmin.local"
        names = principal_names(n, USER_FORMAT, [])
        script = "".join(f"addprinc +requires_preauth -randkey -e {ENCTYPES} {u}\n"
                         for u in names)
        began = time.monotonic()
        p = subprocess.run([kadmin, "-r", self.realm.realm], input=script, env=self.realm.env(),
                           capture_output=True, text=True, timeout=60 + n * 0.1)
        created = p.stdout.count(" created.")
        add_s = time.monotonic() - began
        prefix = USER_FORMAT.split("{", 1)[0]
        k = subprocess.run([kadmin, "-r", self.realm.realm, "-q",
                            f"ktadd -norandkey -k {self.keytab} -glob {prefix}*"],
                           env=self.realm.env(), capture_output=True, text=True,
                           timeout=60 + n * 0.1)
        total = time.monotonic() - began
        if created != n or not self.keytab.exists():
            raise RuntimeError(f"MIT registration created {created}/{n} principals: "
                               f"{p.stderr[-500:]}{k.stderr[-500:]}")
        return {"users": n, "method": "kadmin.local (stdin addprinc lines) + ktadd -glob",
                "seconds": round(total, 3), "users_per_s": round(n / total, 1),
                "addprinc_seconds": round(add_s, 3), "keytab_seconds": round(total - add_s, 3)}

    def start(self) -> None:
        self.realm.start_kdc()

    def metrics_urls(self) -> list[str]:
        return []

    def pids(self) -> dict[str, int]:
        return {"krb5kdc": self.realm.kdc_pid} if self.realm.kdc_pid else {}

    def stop(self) -> None:
        self.realm.stop_kdc()


class MpcTarget:
    """The embedded MPC realm: three node processes + one front-end, on free ports."""

    label = "mpckdc"
    setup_concurrency = 4  # TGT logins for tgs steps; more only queue behind each other

    def __init__(self, work: Path) -> None:
        from clients.admin_init import metrics_ports, write_cluster
        from kdc.cli import free_ports, run_admin_init
        from tests.mpc_realm import MpcRealm

        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.keytab = work / "users.keytab"
        self.r = MpcRealm(work=work)
        self.metrics_port = 0
        write_cluster(self.r.cluster, self.r.realm, ports=free_ports(12))
        try:
            for i in range(3):
                self.r.start_node(i)
            self.r.wait_nodes()
            run_admin_init(self.r.client_config, self.r.realm, self.r.keytab, work / "admin.log")
        except BaseException:
            self.r.stop()
            raise
        self.node_metrics = [f"http://127.0.0.1:{p}/metrics"
                             for p in metrics_ports(self.r.cluster) if p]

    @property
    def address(self) -> tuple[str, int]:
        return self.r.address

    def register(self, n: int, batch: int | None = None) -> dict:
        """ONE ``bulk-addprinc`` admin call (a short-lived process, as an operator runs it)."""
        began = time.monotonic()
        extra = ["--batch", str(batch)] if batch else []
        p = self.r.admin("bulk-addprinc", "--count", str(n), "--format", USER_FORMAT,
                         "+requires_preauth", "-randkey", "-k", str(self.keytab), *extra,
                         timeout=120 + n * 0.5)
        secs = time.monotonic() - began
        if p.returncode != 0:
            raise RuntimeError(f"bulk-addprinc failed ({p.returncode}): "
                               f"{p.stdout[-500:]}{p.stderr[-1000:]}")
        summary = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        return {"users": n, "method": "mpckdc admin bulk-addprinc (one call, one process)",
                "seconds": round(secs, 3), "users_per_s": round(n / secs, 1),
                "tool_says": summary}

    def start(self) -> None:
        """Front-end with a ``[metrics]`` endpoint; then real logins until it serves."""
        from kdc.cli import free_ports, write_frontend_config
        from kdc.config import client_krb5_conf
        from tests.mpc_realm import child_env, warm_up

        r = self.r
        config = write_frontend_config(r.work, r.realm, 0)
        self.metrics_port = free_ports(1)[0]
        with open(config, "a") as f:
            f.write(f'\n[metrics]\nlisten = "127.0.0.1:{self.metrics_port}"\n')
        ready = r.work / "ready.json"
        ready.unlink(missing_ok=True)
        with open(r.work / "kdc.stderr", "ab") as out:
            r.kdc = subprocess.Popen(
                [sys.executable, "-m", "kdc.cli", "kdc", "--config", str(config),
                 "--ready-file", str(ready)],
                cwd=ROOT, env=child_env(), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not ready.exists():
            if r.kdc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("front-end did not start:\n" + r.logs())
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        r.port = int(info["udp"][0].rsplit(":", 1)[1])
        r.krb5_conf.write_text(client_krb5_conf(r.realm, [f"127.0.0.1:{r.port}"]))
        r.passwords["demo"] = "demo-password"
        warm_up(r, ["demo"])

    def metrics_urls(self) -> list[str]:
        front = [f"http://127.0.0.1:{self.metrics_port}/metrics"] if self.metrics_port else []
        return front + self.node_metrics

    def pids(self) -> dict[str, int]:
        return self.r.pids()

    def stop(self) -> None:
        self.r.stop()


# -- metrics -------------------------------------------------------------------------------------


def _total(samples: dict, name: str, *, field: str = "delta") -> float:
    """Sum of ``field`` over every sample called ``name`` (any labels)."""
    return sum(v[field] for k, v in samples.items() if k.split("{", 1)[0] == name)


def mpc_figures(metrics: dict | None, elapsed: float, node_urls: list[str]) -> dict | None:
    """MPC rounds/s, AND gates/s, batches and mean batch size over one step, per node and
    averaged (each node takes part in every round, so the mean is the cluster's rate)."""
    if not metrics or not node_urls:
        return None
    per_node = []
    for url in node_urls:
        s = metrics.get(url) or {}
        if "error" in s or not s:
            continue
        rounds = _total(s, "mpckdc_mpc_rounds_total")
        gates = _total(s, "mpckdc_mpc_and_gates_total")
        batches = _total(s, "mpckdc_mpc_batch_size_count")
        items = _total(s, "mpckdc_mpc_batch_size_sum")
        batch_s = _total(s, "mpckdc_mpc_batch_seconds_sum")
        jobs = sum(v["delta"] for k, v in s.items()
                   if k.startswith('mpckdc_mpc_jobs_total{kind="job"'))
        per_node.append({
            "url": url,
            "rounds": rounds, "and_gates": gates, "batches": batches, "jobs": jobs,
            "rounds_per_s": round(rounds / elapsed, 1) if elapsed > 0 else None,
            "and_gates_per_s": round(gates / elapsed, 1) if elapsed > 0 else None,
            # the node observes 64 * words per batch: instances the batch had room for
            "mean_batch_size": round(items / batches, 2) if batches else None,
            "mean_batch_seconds": round(batch_s / batches, 4) if batches else None,
            "rounds_per_batch": round(rounds / batches, 1) if batches else None,
            "queue_depth_after": _total(s, "mpckdc_mpc_queue_depth", field="value"),
        })
    if not per_node:
        return None

    def mean(key: str) -> float | None:
        vals = [n[key] for n in per_node if n[key] is not None]
        return round(sum(vals) / len(vals), 2) if vals else None

    return {"rounds_per_s": mean("rounds_per_s"), "and_gates_per_s": mean("and_gates_per_s"),
            "mean_batch_size": mean("mean_batch_size"),
            "mean_batch_seconds": mean("mean_batch_seconds"),
            "rounds_per_batch": mean("rounds_per_batch"),
            "batches_per_s": round(sum(n["batches"] for n in per_node) / len(per_node)
                                   / elapsed, 2) if elapsed > 0 else None,
            "nodes": per_node}


def wait_drained(urls: list[str], timeout: float = DRAIN_TIMEOUT) -> float:
    """Wait (bounded) until no node has MPC work queued or in flight; returns seconds waited."""
    from kdc.metrics import parse_text

    began = time.monotonic()
    while time.monotonic() - began < timeout:
        busy = 0.0
        for text in scrape(urls).values():
            try:
                for s in parse_text(text):
                    if s.name in ("mpckdc_mpc_queue_depth", "mpckdc_mpc_batches_in_flight"):
                        busy += s.value
            except ValueError:
                pass
        if busy == 0:
            break
        time.sleep(0.5)
    return time.monotonic() - began


# -- the sweep -------------------------------------------------------------------------------------


def step_row(run: dict, mode: str, mpc: dict | None) -> dict:
    s = run["summary"]
    lat = s["latency_ok"]
    row = {"target": run["label"], "mode": mode, "offered_rate": run["config"]["rate"],
           "qps": s["qps"], "ok": s["ok"], "errors": s["errors"],
           "p50_ms": lat.get("p50_ms"), "p99_ms": lat.get("p99_ms"),
           "error_codes": run["errors"], "setup_ok": run["setup"]["ok"],
           "generator_cpu_cores": s["cpu_cores"], "elapsed_s": s["elapsed_s"],
           "met": (s["errors"] == 0 and lat.get("p99_ms") is not None
                   and lat["p99_ms"] < P99_LIMIT_MS)}
    if mpc:
        row["mpc"] = mpc
    return row


def loadavg() -> float | None:
    """1-minute load average: the machine may be shared, and every step records it."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def sweep_target(target, mode: str, rates: list[float], args, principals: list[str],
                 quiet_urls: list[str]) -> tuple[list[dict], list[dict]]:
    """Open-loop steps at ``rates`` until ``args.past_knee`` saturated steps in a row.
    Before each step, wait (bounded) until the MPC nodes at ``quiet_urls`` have no work left
    from an earlier step, whichever target this step loads."""
    runs, rows = [], []
    missed = 0
    urls = target.metrics_urls()
    node_urls = getattr(target, "node_metrics", [])
    for rate in rates:
        run, row = one_step(target, mode, rate, args, principals, quiet_urls, urls, node_urls)
        # retry only where a miss may be noise: the first step, or above a step that met it
        retries = args.retry_missed if not runs or rows[-1]["met"] else 0
        for attempt in range(retries):
            if row["met"]:
                break
            # a shared machine: another process's burst can sink one step; measure it again
            # and keep the better attempt (the other is listed in the report as discarded)
            run2, row2 = one_step(target, mode, rate, args, principals, quiet_urls, urls,
                                  node_urls)
            worse = row
            if row2["met"] or (row2["qps"] or 0) > (row["qps"] or 0):
                run, row, worse = run2, row2, row
            rows.append({**worse, "discarded": True, "attempt": attempt})
        runs.append(run)
        rows.append(row)
        # saturated: missed the bar AND fell behind the offered rate (a latency-only miss at a
        # low rate, e.g. a batching delay, does not end the sweep)
        saturated = not row["met"] and (row["qps"] or 0) < 0.9 * rate
        missed = missed + 1 if saturated else 0
        if missed >= args.past_knee:
            break
    return runs, rows


def one_step(target, mode: str, rate: float, args, principals: list[str],
             quiet_urls: list[str], urls: list[str], node_urls: list[str]) -> tuple[dict, dict]:
    """One open-loop run at ``rate`` with /metrics scraped before and after."""
    cfg = LoadConfig(
        target=target.address, realm="EXAMPLE.COM", principals=principals, mode=mode,
        keytab=str(target.keytab), rate=rate,
        duration=args.mpc_duration if target.label == MpcTarget.label else args.duration,
        timeout=args.timeout, retries=args.retries,
        workers=args.mit_workers if target.label == MitTarget.label else args.workers,
        interval=min(1.0, args.duration / 2),
        setup_concurrency=getattr(target, "setup_concurrency", 16),
        label=target.label, seed=args.seed)
    if quiet_urls:
        wait_drained(quiet_urls)
    load_before = loadavg()
    before = scrape(urls) if urls else {}
    began = time.monotonic()
    result = run_load(cfg)
    wall = time.monotonic() - began
    metrics = metrics_delta(before, scrape(urls)) if urls else None
    run = run_to_json(result, metrics)
    # per second of the whole run_load call: in tgs mode that includes the TGT logins
    mpc = mpc_figures(metrics, wall, node_urls)
    if mpc:
        mpc["over_seconds"] = round(wall, 2)
        mpc["includes_tgt_setup"] = mode == "tgs"
    row = step_row(run, mode, mpc)
    row["loadavg_1m_before"] = load_before
    extra = (f"; MPC {mpc['rounds_per_s']} rounds/s, {mpc['and_gates_per_s']:.3g} AND/s, "
             f"{mpc['batches_per_s']} batches/s of {mpc['mean_batch_size']} slots, "
             f"{mpc['rounds_per_batch']} rounds and {mpc['mean_batch_seconds']} s each"
             ) if mpc else ""
    log(f"{target.label} {mode} {rate:g}/s: {row['qps']} ok/s, p99 {row['p99_ms']} ms, "
        f"{row['errors']} errors {row['error_codes'] or ''}(load {load_before}){extra}")
    return run, row


def warm(target, mode: str, principals: list[str], args) -> None:
    """A few untimed operations so that first-use costs (circuit builds) stay out of step 1."""
    cfg = LoadConfig(target=target.address, realm="EXAMPLE.COM", principals=principals[:4],
                     mode=mode, keytab=str(target.keytab), concurrency=2, count=8,
                     timeout=10.0, retries=1, label=target.label)
    try:
        run_load(cfg)
    except (WorkerFailed, OSError, ValueError) as exc:
        log(f"warm-up of {target.label} {mode} failed: {exc}")


def parse_rates(text: str) -> list[float]:
    rates = [float(v) for v in text.split(",") if v.strip()]
    if not rates or any(r <= 0 for r in rates):
        raise ValueError(f"bad rate list {text!r}")
    return sorted(rates)


def plot_by_target(doc: dict, labels: list[str], path: Path, mode: str) -> Path:
    """QPS and p99 against offered load, one column per target with its own scales (the
    targets differ by orders of magnitude, which one shared axis would flatten)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(labels), figsize=(6 * len(labels), 7), squeeze=False)
    for col, label in enumerate(labels):
        rows = sorted((r for r in doc.get("sweep", []) if r["label"] == label),
                      key=lambda r: r["offered_rate"])
        x = [r["offered_rate"] for r in rows]
        k = knee(doc, label, P99_LIMIT_MS)
        top, bottom = axes[0][col], axes[1][col]
        top.plot(x, [r["qps"] for r in rows], marker="o", label="achieved ok/s")
        if x:
            top.plot([0, max(x)], [0, max(x)], color="grey", linestyle=":", label="offered")
        top.set_title(f"{label} {mode}: knee " + (f"{k:g}/s" if k else "none"))
        top.set_ylabel("ok/s")
        bottom.plot(x, [r["p99_ms"] if r["p99_ms"] is not None else float("nan")
                        for r in rows], marker="o", color="tab:red", label="p99")
        bottom.plot(x, [r["p50_ms"] if r["p50_ms"] is not None else float("nan")
                        for r in rows], marker=".", color="tab:orange", label="p50")
        bottom.axhline(P99_LIMIT_MS, color="grey", linestyle="--", label="1 s")
        bottom.set_yscale("log")
        bottom.set_ylabel("latency (ms)")
        bottom.set_xlabel("offered load (operations/s)")
        for ax in (top, bottom):
            if k:
                ax.axvline(k, color="green", linestyle=":", alpha=0.7)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def knee_table(docs: dict[str, dict], labels: list[str]) -> list[dict]:
    out = []
    for mode, doc in docs.items():
        for label in labels:
            rows = [r for r in doc.get("sweep", []) if r["label"] == label]
            if rows:
                k = knee(doc, label, P99_LIMIT_MS)
                at = [r["qps"] for r in rows if r["offered_rate"] == k]
                out.append({"target": label, "mode": mode, "knee_rate": k,
                            "qps_at_knee": max(at) if at else None,
                            "max_qps": max(r["qps"] or 0 for r in rows),
                            "steps": len(rows)})
    return out


def bulk_only(n: int, work: Path, out: Path, batch: int | None = None) -> int:
    """Time one bulk-addprinc of ``n`` users against a fresh MPC realm (no front-end)."""
    t = MpcTarget(work / "mpc")
    try:
        log(f"MPC realm up (pids {t.pids()}); bulk-addprinc --count {n} ...")
        before = scrape(t.node_metrics)
        reg = t.register(n, batch)
        reg["batch"] = batch or "default (256)"
        metrics = metrics_delta(before, scrape(t.node_metrics))
        reg["mpc"] = mpc_figures(metrics, reg["seconds"], t.node_metrics)
        lines = subprocess.run(["klist", "-k", str(t.keytab)], capture_output=True, text=True,
                               env={"PATH": os.environ.get("PATH", "") + ":/usr/sbin",
                                    "KRB5_CONFIG": str(t.r.krb5_conf)}).stdout
        reg["keytab_entries"] = sum(1 for ln in lines.splitlines() if "@" in ln)
    finally:
        t.stop()
    log(f"bulk-addprinc {n}: {reg['seconds']} s ({reg['users_per_s']} users/s)")
    path = write_json(out / (f"bulk-{n}.json" if not batch else f"bulk-{n}-batch{batch}.json"), {"tool": "mpckdc-sweep", "created": time.time(),
                                               "registration": reg})
    print(json.dumps({k: v for k, v in reg.items() if k != "mpc"}, indent=1))
    print(f"result: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n")[0])
    p.add_argument("--targets", default="mit,mpc", help="mit, mpc or both (default mit,mpc)")
    p.add_argument("--modes", default=",".join(MODES), help="as-preauth and/or tgs")
    p.add_argument("--users", type=int, default=1000, help="users registered on each target")
    p.add_argument("--tgs-principals", type=int, default=32,
                   help="distinct principals of MPC TGS steps (each step first logs them all "
                        "in for TGTs; MIT uses every user)")
    p.add_argument("--mpc-rates", default=MPC_RATES, help=f"offered rates (default {MPC_RATES})")
    p.add_argument("--mit-rates", default=MIT_RATES, help=f"offered rates (default {MIT_RATES})")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per step (default 5)")
    p.add_argument("--mpc-duration", type=float, default=None,
                   help="seconds per MPC step (default: --duration; its rates are low, so "
                        "longer steps give p99 more samples)")
    p.add_argument("--past-knee", type=int, default=2,
                   help="stop a target's sweep after this many saturated steps in a row")
    p.add_argument("--retry-missed", type=int, default=1, metavar="N",
                   help="measure a step that missed the bar up to N more times, keep the best "
                        "(default 1: the machine may be shared)")
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--retries", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="generator processes (MPC target)")
    p.add_argument("--mit-workers", type=int, default=2,
                   help="generator processes against MIT (one saturates a core near 2,000/s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    p.add_argument("--keep-work", action="store_true")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--bulk-only", type=int, default=None, metavar="N",
                   help="only time bulk-addprinc of N users on a fresh MPC realm")
    p.add_argument("--bulk-batch", type=int, default=None, metavar="B",
                   help="with --bulk-only: principals per precompute job (admin --batch)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.mpc_duration is None:
        args.mpc_duration = args.duration
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    out = Path(args.out)
    work = Path(args.work or tempfile.mkdtemp(prefix="mpckdc-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.bulk_only:
            return bulk_only(args.bulk_only, work, out, args.bulk_batch)
        return run_sweep(args, work, out)
    finally:
        if not args.keep_work and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def run_sweep(args, work: Path, out: Path) -> int:
    kinds = [t.strip() for t in args.targets.split(",") if t.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not kinds or any(k not in ("mpc", "mit") for k in kinds):
        raise SystemExit("--targets: mpc, mit or mpc,mit")
    if not modes or any(m not in MODES for m in modes):
        raise SystemExit("--modes: as-preauth and/or tgs")
    rates = {"mpc": parse_rates(args.mpc_rates), "mit": parse_rates(args.mit_rates)}
    names = principal_names(args.users, USER_FORMAT, [])
    began = time.time()
    targets: dict[str, object] = {}
    registration: dict[str, dict] = {}
    docs: dict[str, dict] = {}
    rows: list[dict] = []
    try:
        for kind in kinds:  # set up and register before any load, then start serving
            log(f"setting up {kind} ...")
            t = MitTarget(work / "mit") if kind == "mit" else MpcTarget(work / "mpc")
            targets[kind] = t
            before = scrape(getattr(t, "node_metrics", []))
            reg = t.register(args.users)
            if kind == "mpc":
                metrics = metrics_delta(before, scrape(t.node_metrics))
                reg["mpc"] = mpc_figures(metrics, reg["seconds"], t.node_metrics)
            registration[t.label] = reg
            log(f"{t.label}: registered {args.users} users in {reg['seconds']} s "
                f"({reg['users_per_s']} users/s)")
            t.start()
            log(f"{t.label} serving on {t.address[0]}:{t.address[1]} (pids {t.pids()})")
        for mode in modes:
            runs = []
            for kind, t in targets.items():
                principals = names
                if kind == "mpc" and mode == "tgs":
                    principals = names[:max(1, min(len(names), args.tgs_principals))]
                warm(t, mode, principals, args)
                quiet = [u for x in targets.values() for u in getattr(x, "node_metrics", [])]
                r, s = sweep_target(t, mode, rates[kind], args, principals, quiet)
                runs += r
                rows += s
            docs[mode] = document(runs, sweep=True)
    finally:
        for t in targets.values():
            t.stop()
    labels = [t.label for t in targets.values()]
    plots: dict[str, list[str]] = {}
    for mode, doc in docs.items():
        write_json(out / mode / "result.json", doc)
        print(f"== {mode}\n{text_table(doc)}")
        if not args.no_plots:
            plots[mode] = [str(p) for p in plot(doc, out / mode)]
            plots[mode].append(str(plot_by_target(doc, labels, out / mode / "sweep-by-target.png",
                                                  mode)))
    knees = knee_table(docs, labels)
    summary = {
        "tool": "mpckdc-sweep", "format": 1, "created": time.time(),
        "wall_s": round(time.time() - began, 1),
        "command": "python -m bench.sweep " + " ".join(args.argv),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {"users": args.users, "modes": modes, "targets": labels,
                     "rates": {targets[k].label: rates[k] for k in targets},
                     "duration_s": args.duration, "mpc_duration_s": args.mpc_duration, "tgs_principals_mpc": args.tgs_principals,
                     "p99_limit_ms": P99_LIMIT_MS, "timeout_s": args.timeout,
                     "retries": args.retries, "retry_missed": args.retry_missed,
                     "workers": {"mpckdc": args.workers, "mit-krb5kdc": args.mit_workers}},
        "registration": registration,
        "knees": knees,
        "steps": rows,
        "results": {m: str(out / m / "result.json") for m in docs},
        "plots": plots,
    }
    path = write_json(out / "sweep.json", summary)
    print("\nknee (highest offered rate with p99 < 1 s and no errors):")
    print(f"{'target':<14} {'mode':<11} {'knee/s':>8} {'ok/s there':>10} {'max ok/s':>9}")
    for k in knees:
        kr = f"{k['knee_rate']:g}" if k["knee_rate"] else "none"
        at = f"{k['qps_at_knee']:.1f}" if k["qps_at_knee"] is not None else "-"
        print(f"{k['target']:<14} {k['mode']:<11} {kr:>8} {at:>10} {k['max_qps']:>9.1f}")
    for label, reg in registration.items():
        print(f"registration {label}: {reg['users']} users in {reg['seconds']} s "
              f"({reg['users_per_s']} users/s)")
    print(f"summary: {path}")
    for mode, ps in plots.items():
        for p in ps:
            print(f"plot {mode}: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
