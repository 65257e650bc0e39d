"""Result files and plots of load runs.

JSON document (``write_json``)::

    {"tool": "mpckdc-loadgen", "format": 1, "created": <unix time>,
     "runs": [ {"label", "config", "started_at", "summary", "errors", "messages",
                "setup", "series", "histogram", "metrics"?}, ... ],
     "sweep": [ {"label", "offered_rate", "qps", "p50_ms", "p99_ms", "errors"}, ... ]?}

``summary`` has ok/started/error counts, ``qps`` (ok operations per second of the run),
``offered_rate``, latency percentiles of successful operations (``latency_ok``) and of every
answered one (``latency_all``), the generator's send lag and CPU. ``series`` has one row per
interval (see ``RunStats.series``); ``histogram`` the bucket counts of ``latency_ok`` so runs can
be merged or re-plotted later (``plot`` subcommand).

Plots (matplotlib, Agg backend, PNG): throughput over time, latency percentiles over time (one
panel per target, side by side), latency CDF (targets overlaid) and, for a sweep, achieved QPS
and p99 against offered load.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

from .engine import RunResult
from .stats import LatencyHistogram, RunStats

FORMAT = 1


def _round(x: float, digits: int = 3) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, digits)


def summarize(stats: RunStats, config_rate: float | None = None,
              duration: float | None = None) -> dict:
    elapsed = stats.elapsed if stats.elapsed > 0 else (duration or 0.0)
    return {
        "started": stats.started,
        "ok": stats.ok,
        "errors": stats.error_total,
        "elapsed_s": _round(elapsed),
        "qps": _round(stats.ok / elapsed if elapsed > 0 else 0.0, 1),
        "offered_rate": config_rate,
        "messages": sum(stats.messages.values()),
        "retransmits": stats.retransmits,
        "latency_ok": stats.latency_ok.summary(),
        "latency_all": stats.latency_all.summary(),
        "send_lag": stats.send_lag.summary(),
        "cpu_s": _round(stats.cpu_seconds),
        "cpu_cores": _round(stats.cpu_seconds / elapsed if elapsed > 0 else 0.0),
        "by_mode": dict(stats.by_mode),
    }


def run_to_json(result: RunResult, metrics: dict | None = None) -> dict:
    cfg = result.config
    s = result.stats
    doc = {
        "label": cfg.label or f"{cfg.target[0]}:{cfg.target[1]}",
        "config": cfg.public(),
        "started_at": result.started_at,
        "summary": summarize(s, cfg.rate, cfg.duration),
        "errors": dict(sorted(s.errors.items(), key=lambda kv: -kv[1])),
        "messages": dict(s.messages),
        "setup": {"messages": dict(result.setup.messages), "ok": result.setup.ok,
                  "errors": dict(result.setup.errors)},
        "series": s.series(),
        "histogram": s.latency_ok.to_json(),
        "histogram_all": s.latency_all.to_json(),
    }
    if metrics:
        doc["metrics"] = metrics
    return doc


def document(runs: Sequence[dict], *, sweep: bool = False) -> dict:
    doc = {"tool": "mpckdc-loadgen", "format": FORMAT, "created": time.time(), "runs": list(runs)}
    if sweep:
        doc["sweep"] = [
            {
                "label": r["label"],
                "offered_rate": r["config"]["rate"] or r["config"]["concurrency"],
                "offered_kind": "rate" if r["config"]["rate"] else "concurrency",
                "qps": r["summary"]["qps"],
                "p50_ms": r["summary"]["latency_ok"].get("p50_ms"),
                "p99_ms": r["summary"]["latency_ok"].get("p99_ms"),
                "errors": r["summary"]["errors"],
            }
            for r in runs
        ]
    return doc


def write_json(path: str | os.PathLike, doc: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def read_json(path: str | os.PathLike) -> dict:
    doc = json.loads(Path(path).read_text())
    if doc.get("tool") != "mpckdc-loadgen":
        raise ValueError(f"{path} is not a load generator result file")
    return doc


def merge_documents(docs: Sequence[dict]) -> dict:
    """Several result files into one (for side-by-side plots of separately measured targets)."""
    runs = [r for d in docs for r in d["runs"]]
    return document(runs, sweep=any("sweep" in d for d in docs))


def knee(doc: dict, label: str, p99_limit_ms: float = 1000.0) -> float | None:
    """Highest offered rate of a sweep whose p99 stayed under ``p99_limit_ms`` (None if none)."""
    best = None
    for row in doc.get("sweep", []):
        if row["label"] == label and row["p99_ms"] is not None and row["p99_ms"] < p99_limit_ms \
                and row["errors"] == 0:
            best = max(best or 0, row["offered_rate"])
    return best


# -- plots ----------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _labels(doc: dict) -> list[str]:
    seen: list[str] = []
    for r in doc["runs"]:
        if r["label"] not in seen:
            seen.append(r["label"])
    return seen


def _series_by_label(doc: dict) -> dict[str, list[dict]]:
    """Series rows per label; successive runs of one label (a sweep) follow each other in time."""
    out: dict[str, list[dict]] = {}
    for r in doc["runs"]:
        rows = out.setdefault(r["label"], [])
        offset = (rows[-1]["t"] + r["config"]["interval"]) if rows else 0.0
        for row in r["series"]:
            rows.append({**row, "t": row["t"] + offset})
    return out


def plot(doc: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Write the PNG plots of ``doc`` into ``out_dir``; returns their paths."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = _labels(doc)
    series = _series_by_label(doc)
    paths: list[Path] = []
    n = len(labels)

    # throughput over time, one panel per target
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4), sharey=True, squeeze=False)
    for ax, label in zip(axes[0], labels, strict=True):
        rows = series[label]
        t = [r["t"] for r in rows]
        ax.plot(t, [r["ok_per_s"] for r in rows], label="ok/s")
        ax.plot(t, [r["offered_per_s"] for r in rows], label="started/s", linestyle="--")
        if any(r["errors_per_s"] for r in rows):
            ax.plot(t, [r["errors_per_s"] for r in rows], label="errors/s", color="red")
        ax.set_title(f"{label}: throughput")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("operations per second")
        ax.grid(True, alpha=0.3)
        ax.legend()
    paths.append(_save(fig, out / "throughput.png", plt))

    # latency percentiles over time, one panel per target
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4), sharey=True, squeeze=False)
    for ax, label in zip(axes[0], labels, strict=True):
        rows = series[label]
        t = [r["t"] for r in rows]
        for key, name in (("all_p50_ms", "p50"), ("all_p90_ms", "p90"), ("all_p99_ms", "p99"),
                          ("all_max_ms", "max")):
            ys = [r[key] if r[key] is not None else float("nan") for r in rows]
            ax.plot(t, ys, label=name)
        ax.set_yscale("log")
        ax.set_title(f"{label}: latency (answered operations)")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("ms")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    paths.append(_save(fig, out / "latency.png", plt))

    # latency CDF, targets overlaid
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label in labels:
        h = LatencyHistogram()
        for r in doc["runs"]:
            if r["label"] == label:
                h.merge(LatencyHistogram.from_json(r["histogram"]))
        if h.total:
            points = h.cdf()
            ax.plot([x * 1e3 for x, _ in points], [y for _, y in points], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of successful operations")
    ax.set_title("latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no successful operations", ha="center", transform=ax.transAxes)
    paths.append(_save(fig, out / "cdf.png", plt))

    if doc.get("sweep"):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        for label in labels:
            rows = sorted((r for r in doc["sweep"] if r["label"] == label),
                          key=lambda r: r["offered_rate"])
            x = [r["offered_rate"] for r in rows]
            ax1.plot(x, [r["qps"] for r in rows], marker="o", label=label)
            ax2.plot(x, [r["p99_ms"] if r["p99_ms"] is not None else float("nan") for r in rows],
                     marker="o", label=label)
        kind = doc["sweep"][0].get("offered_kind", "rate")
        xlabel = "offered load (operations/s)" if kind == "rate" else "concurrency"
        if kind == "rate":
            top = max(r["offered_rate"] for r in doc["sweep"])
            ax1.plot([0, top], [0, top], color="grey", linestyle=":", label="offered")
        ax1.set_xlabel(xlabel)
        ax1.set_ylabel("achieved ok/s")
        ax1.set_title("throughput against offered load")
        ax2.set_xlabel(xlabel)
        ax2.set_ylabel("p99 latency (ms)")
        ax2.set_yscale("log")
        ax2.set_title("p99 against offered load")
        for ax in (ax1, ax2):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        paths.append(_save(fig, out / "sweep.png", plt))
    return paths


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def text_table(doc: dict) -> str:
    """A short human summary, one line per run."""
    lines = [f"{'label':<16} {'mode':<11} {'offered':>9} {'ok':>8} {'err':>6} {'ok/s':>9} "
             f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu':>5}"]
    for r in doc["runs"]:
        s = r["summary"]
        cfg = r["config"]
        offered = f"{cfg['rate']:g}/s" if cfg["rate"] else f"c={cfg['concurrency']}"
        lat = s["latency_ok"]
        lines.append(
            f"{r['label'][:16]:<16} {cfg['mode']:<11} {offered:>9} {s['ok']:>8} {s['errors']:>6} "
            f"{s['qps']:>9.1f} {_fmt(lat.get('p50_ms'))} {_fmt(lat.get('p99_ms'))} "
            f"{_fmt(lat.get('max_ms'))} {s['cpu_cores'] or 0:>5.2f}")
        if r["errors"]:
            lines.append("    errors: " + ", ".join(f"{k} {v}" for k, v in r["errors"].items()))
    return "\n".join(lines)


def _fmt(x) -> str:
    return f"{x:>8.2f}" if x is not None else f"{'-':>8}"
