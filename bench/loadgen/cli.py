"""Command line of the load generator: ``mpckdc bench load ...`` / ``python -m bench.loadgen ...``.

Examples::

    # 30 s of pre-authenticated logins at 8 in flight, 1000 users from a keytab
    python -m bench.loadgen --target 127.0.0.1:60088 --realm EXAMPLE.COM --mode as-preauth \\
        --principals 1000 --keytab users.keytab --concurrency 8 --duration 30 --out bench/out/run1
    # open loop at 500 logins/s, two targets measured back to back, plots side by side
    python -m bench.loadgen --target 127.0.0.1:60088 --label mpckdc --target 127.0.0.1:18088 \\
        --label mit --keytab a.keytab --keytab b.keytab --mode tgs --rate 500 --duration 10
    # sweep of offered load (open loop), QPS and p99 against offered load
    python -m bench.loadgen ... --sweep 100,200,400,800 --duration 10
    # re-plot saved results side by side
    python -m bench.loadgen plot out/a/result.json out/b/result.json --out out/both

Exit status: 0 when operations succeeded, 1 when every operation failed, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request
from pathlib import Path

from kdc.crypto import parse_enctype_list

from .engine import LoadConfig, WorkerFailed, run_load
from .progress import Progress
from .report import (
    document,
    knee,
    merge_documents,
    plot,
    read_json,
    run_to_json,
    text_table,
    write_json,
)
from .requests import MODES, principal_names

DEFAULT_OUT = "bench/out/loadgen"


class UsageError(Exception):
    pass


def parse_target(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"bad target {text!r} (want host:port)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def parse_values(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UsageError(f"bad sweep list {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError("sweep values must be positive numbers")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mpckdc bench load",
        description="Load generator for Kerberos KDCs (AS, pre-authenticated AS, TGS, login, mix).",
    )
    p.add_argument("--target", action="append", required=True, metavar="HOST:PORT",
                   help="KDC to load; repeat to measure several back to back")
    p.add_argument("--label", action="append", default=[], help="name of each target, in order")
    p.add_argument("--realm", default="EXAMPLE.COM")
    p.add_argument("--mode", choices=MODES, default="as-preauth")
    p.add_argument("--mix", default=None, help='weights for mode mix, e.g. "as-preauth:60,tgs:40"')
    p.add_argument("--principals", type=int, default=1, metavar="N",
                   help="use N principals named by --principal-format (default 1)")
    p.add_argument("--principal-format", default="user{i:04d}",
                   help="name pattern with {i} (default user{i:04d}: user0000, user0001, ...)")
    p.add_argument("--principal", action="append", default=[], metavar="NAME",
                   help="explicit client principal (repeatable; replaces --principals)")
    p.add_argument("--keytab", action="append", default=[],
                   help="keytab with the clients' keys (once, or once per target)")
    p.add_argument("--password-pattern", action="append", default=[], metavar="PATTERN",
                   help='passwords as a pattern, e.g. "{name}-password" ({i} = index)')
    p.add_argument("--enctypes", default="aes256-cts-hmac-sha1-96",
                   help="enctypes of password-derived keys (default aes256-cts-hmac-sha1-96)")
    p.add_argument("--service", default="HTTP/localhost", help="service of TGS requests")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=int, help="closed loop: operations in flight")
    load.add_argument("--rate", type=float, help="open loop: operations started per second")
    p.add_argument("--poisson", action="store_true",
                   help="open loop: Poisson arrivals instead of evenly spaced ones")
    p.add_argument("--sweep", default=None, metavar="V1,V2,...",
                   help="run once per value (rates, or concurrencies with --concurrency)")
    bound = p.add_argument_group("bounds")
    bound.add_argument("--duration", type=float, help="seconds of load per run")
    bound.add_argument("--count", type=int, help="operations per run")
    p.add_argument("--tcp", action="store_true", help="TCP (one connection per request)")
    p.add_argument("--workers", type=int, default=1, help="generator processes (default 1)")
    p.add_argument("--timeout", type=float, default=1.0,
                   help="seconds before a UDP retransmit / TCP failure (default 1; doubles)")
    p.add_argument("--retries", type=int, default=2, help="UDP retransmits (default 2)")
    p.add_argument("--interval", type=float, default=1.0, help="time-series bin (s)")
    p.add_argument("--max-outstanding", type=int, default=10000,
                   help="open loop: operations in flight per worker before GENERATOR_OVERLOAD")
    p.add_argument("--metrics", action="append", default=[], metavar="URL",
                   help="Prometheus endpoint to scrape before and after each run")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    p.add_argument("--seed", type=int, default=None)
    return p


def _per_target(values: list[str], n: int, what: str) -> list[str | None]:
    if not values:
        return [None] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise UsageError(f"give {what} once or once per target ({n})")
    return values


def configs_from_args(args) -> list[list[LoadConfig]]:
    """[[config per target] per sweep step]."""
    targets = [parse_target(t) for t in args.target]
    n = len(targets)
    labels = args.label or []
    if labels and len(labels) != n:
        raise UsageError("give one --label per --target")
    keytabs = _per_target(args.keytab, n, "--keytab")
    patterns = _per_target(args.password_pattern, n, "--password-pattern")
    for k, pw in zip(keytabs, patterns, strict=True):
        if k is None and pw is None:
            raise UsageError("give --keytab or --password-pattern")
        if k is not None and pw is not None:
            raise UsageError("give --keytab or --password-pattern, not both for one target")
        if k is not None and not Path(k).is_file():
            raise UsageError(f"keytab {k} not found")
    if args.duration is None and args.count is None:
        args.duration = 10.0
    if args.concurrency is None and args.rate is None and args.sweep is None:
        args.concurrency = 4
    if args.principals < 1:
        raise UsageError("--principals must be at least 1")
    try:
        etypes = tuple(parse_enctype_list(args.enctypes))
    except Exception:
        raise UsageError(f"bad --enctypes {args.enctypes!r}") from None
    try:
        names = principal_names(args.principals, args.principal_format, args.principal)
    except (KeyError, IndexError, ValueError):
        raise UsageError(f"bad --principal-format {args.principal_format!r}") from None
    steps: list[tuple[int | None, float | None]]
    if args.sweep:
        values = parse_values(args.sweep)
        if args.concurrency is not None:
            steps = [(int(v), None) for v in values]
        else:
            steps = [(None, v) for v in values]
    else:
        steps = [(args.concurrency, args.rate)]
    out: list[list[LoadConfig]] = []
    for conc, rate in steps:
        row = []
        for i, target in enumerate(targets):
            cfg = LoadConfig(
                target=target, realm=args.realm, principals=names, mode=args.mode,
                keytab=keytabs[i], password_pattern=patterns[i], service=args.service,
                mix=args.mix, concurrency=conc, rate=rate, duration=args.duration,
                count=args.count, tcp=args.tcp, workers=args.workers, timeout=args.timeout,
                retries=args.retries, interval=args.interval,
                max_outstanding=args.max_outstanding, etypes=etypes, seed=args.seed,
                arrivals="poisson" if args.poisson else "uniform",
                label=labels[i] if labels else f"{target[0]}:{target[1]}",
            )
            try:
                cfg.validate()
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            row.append(cfg)
        out.append(row)
    return out


def scrape(urls: list[str]) -> dict[str, str]:
    """Text of each Prometheus endpoint (errors recorded, never raised)."""
    texts = {}
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - operator's URL
                texts[url] = resp.read().decode("utf-8", "replace")
        except OSError as exc:
            texts[url] = f"# scrape failed: {exc}"
    return texts


def metrics_delta(before: dict[str, str], after: dict[str, str]) -> dict:
    """Per endpoint: every sample after the run and its change over the run."""
    from kdc.metrics import parse_text

    out = {}
    for url, text in after.items():
        try:
            old = {(s.name, s.labels): s.value for s in parse_text(before.get(url, ""))}
            new = parse_text(text)
        except ValueError as exc:
            out[url] = {"error": str(exc)}
            continue
        out[url] = {
            _sample_key(s.name, s.labels): {"value": s.value,
                                           "delta": s.value - old.get((s.name, s.labels), 0.0)}
            for s in new
        }
    return out


def _sample_key(name: str, labels: tuple) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


def run_command(args) -> int:
    plan = configs_from_args(args)
    runs = []
    any_ok = False
    for row in plan:
        for cfg in row:
            progress = Progress(cfg.label, enabled=not args.quiet)
            before = scrape(args.metrics) if args.metrics else {}
            try:
                result = run_load(cfg, progress)
            except (WorkerFailed, OSError, ValueError) as exc:
                progress.close()
                print(f"error: {cfg.label}: {exc}", file=sys.stderr)
                return 1
            progress.close()
            metrics = metrics_delta(before, scrape(args.metrics)) if args.metrics else None
            runs.append(run_to_json(result, metrics))
            any_ok = any_ok or result.stats.ok > 0
    doc = document(runs, sweep=bool(args.sweep))
    out = Path(args.out)
    path = write_json(out / "result.json", doc)
    print(text_table(doc))
    if args.sweep and args.rate is None and args.concurrency is None:
        for label in dict.fromkeys(r["label"] for r in runs):
            k = knee(doc, label)
            print(f"knee {label}: " + (f"{k:g}/s (highest offered rate with p99 < 1 s, "
                                        "no errors)" if k else "none (p99 >= 1 s or errors)"))
    print(f"result: {path}")
    if not args.no_plots:
        for png in plot(doc, out):
            print(f"plot: {png}")
    return 0 if any_ok else 1


def plot_command(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="mpckdc bench load plot",
                                description="Plot saved result files side by side.")
    p.add_argument("results", nargs="+")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        doc = merge_documents([read_json(r) for r in args.results])
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_json(Path(args.out) / "result.json", doc)
    print(text_table(doc))
    for png in plot(doc, args.out):
        print(f"plot: {png}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "plot":
        return plot_command(argv[1:])
    if argv and argv[0] == "run":
        argv = argv[1:]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else 2
    try:
        return run_command(args)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
