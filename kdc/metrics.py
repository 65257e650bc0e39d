"""A small Prometheus metrics registry (text exposition format 0.0.4) and its HTTP handler.

Counters, gauges and histograms with labels, rendered by ``Registry.render()`` as::

    # HELP mpckdc_requests_total KDC requests by type and outcome.
    # TYPE mpckdc_requests_total counter
    mpckdc_requests_total{type="AS_REQ",outcome="ISSUE"} 1027
    # TYPE mpckdc_request_seconds histogram
    mpckdc_request_seconds_bucket{type="AS_REQ",le="0.001"} 412
    ...
    mpckdc_request_seconds_bucket{type="AS_REQ",le="+Inf"} 1027
    mpckdc_request_seconds_sum{type="AS_REQ"} 1.52
    mpckdc_request_seconds_count{type="AS_REQ"} 1027

Label values are escaped (backslash, double quote, newline), HELP text too (backslash,
newline). Histogram buckets are cumulative, end with ``le="+Inf"`` equal to ``_count``.

Never put key material, passwords or principal secrets in a label: labels are public. Label
values here should come from small closed sets (message type, outcome name, node id); a
principal name is not a good label either (unbounded cardinality).

``make_handler(registry)`` gives an aiohttp handler for ``GET /metrics``; ``parse_text`` reads
the format back (used by the load generator to scrape a KDC, and by the tests).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        if not NAME_RE.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labels:
            if not LABEL_RE.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r}")
        if len(set(labels)) != len(labels):
            raise ValueError("duplicate label names")
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], object] = {}

    def _key(self, args: tuple, kwargs: dict) -> tuple[str, ...]:
        if args and kwargs:
            raise TypeError("give label values by position or by name, not both")
        if kwargs:
            if set(kwargs) != set(self.label_names):
                raise ValueError(f"{self.name} takes labels {self.label_names}")
            args = tuple(kwargs[n] for n in self.label_names)
        if len(args) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}")
        return tuple(str(a) for a in args)

    def labels(self, *args, **kwargs):
        """The child for these label values (created on first use)."""
        key = self._key(args, kwargs)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._new_child()
        return child

    def _default(self):
        if self.label_names:
            raise ValueError(f"{self.name} has labels; use .labels(...)")
        return self.labels()

    def _new_child(self):
        raise NotImplementedError

    def header(self) -> list[str]:
        lines = []
        if self.help:
            lines.append(f"# HELP {self.name} {escape_help(self.help)}")
        lines.append(f"# TYPE {self.name} {self.kind}")
        return lines

    def render(self) -> list[str]:
        raise NotImplementedError


class _Value:
    __slots__ = ("value", "_lock")

    def __init__(self) -> None:
        self.value = 0.0
        self._lock = threading.Lock()


class _CounterChild(_Value):
    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            self.value += amount


class _GaugeChild(_Value):
    def set(self, value: float) -> None:
        with self._lock:
            self.value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value -= amount


class _ScalarMetric(_Metric):
    """A metric with one number per label set; with ``callback`` (no labels) the value is read
    at render time, e.g. from counters another object already keeps."""

    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 callback: Callable[[], float] | None = None) -> None:
        super().__init__(name, help, labels)
        if callback is not None and labels:
            raise ValueError(f"a callback {self.kind} has no labels")
        self.callback = callback

    def inc(self, amount: float = 1.0) -> None:
        self._default().inc(amount)

    def render(self) -> list[str]:
        lines = self.header()
        if self.callback is not None:
            lines.append(f"{self.name} {format_value(float(self.callback()))}")
            return lines
        for key, child in sorted(self._children.items()):
            lines.append(f"{self.name}{_labels_text(self.label_names, key)} "
                         f"{format_value(child.value)}")
        return lines


class Counter(_ScalarMetric):
    """Monotonic count (name should end in ``_total``)."""

    kind = "counter"

    def _new_child(self):
        return _CounterChild()


class Gauge(_ScalarMetric):
    """A value that goes up and down (queue depth, batches in flight)."""

    kind = "gauge"

    def _new_child(self):
        return _GaugeChild()

    def set(self, value: float) -> None:
        self._default().set(value)

    def dec(self, amount: float = 1.0) -> None:
        self._default().dec(amount)


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum", "count", "_lock")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative (rendered cumulative)
        self.sum = 0.0
        self.count = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self.sum += value
            self.count += 1
            for i, bound in enumerate(self.bounds):
                if value <= bound:
                    self.counts[i] += 1
                    break


class Histogram(_Metric):
    """Observations in buckets ``le`` (upper bounds, inclusive); +Inf is added."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 buckets: Iterable[float] = DEFAULT_BUCKETS) -> None:
        if "le" in labels:
            raise ValueError("'le' is reserved for histogram buckets")
        super().__init__(name, help, labels)
        bounds = sorted(float(b) for b in buckets)
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError("histogram buckets must be distinct")
        if not math.isinf(bounds[-1]):
            bounds.append(math.inf)
        self.bounds = tuple(bounds)

    def _new_child(self):
        return _HistogramChild(self.bounds)

    def observe(self, value: float) -> None:
        self._default().observe(value)

    def render(self) -> list[str]:
        lines = self.header()
        for key, child in sorted(self._children.items()):
            with child._lock:
                counts, total, count = list(child.counts), child.sum, child.count
            running = 0
            for bound, n in zip(self.bounds, counts, strict=True):
                running += n
                le = f'le="{format_value(bound)}"'
                lines.append(f"{self.name}_bucket{_labels_text(self.label_names, key, le)} "
                             f"{running}")
            labels = _labels_text(self.label_names, key)
            lines.append(f"{self.name}_sum{labels} {format_value(total)}")
            lines.append(f"{self.name}_count{labels} {count}")
        return lines


class Registry:
    """A set of metrics rendered together; names are unique."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def register(self, metric: _Metric) -> _Metric:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} already registered")
            self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labels: Sequence[str] = (),
                callback: Callable[[], float] | None = None) -> Counter:
        return self.register(Counter(name, help, labels, callback))

    def gauge(self, name: str, help: str, labels: Sequence[str] = (),
              callback: Callable[[], float] | None = None) -> Gauge:
        return self.register(Gauge(name, help, labels, callback))

    def histogram(self, name: str, help: str, labels: Sequence[str] = (),
                  buckets: Iterable[float] = DEFAULT_BUCKETS) -> Histogram:
        return self.register(Histogram(name, help, labels, buckets))

    def get(self, name: str) -> _Metric | None:
        return self._metrics.get(name)

    def render(self) -> str:
        with self._lock:
            metrics = list(self._metrics.values())
        lines: list[str] = []
        for metric in metrics:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n" if lines else ""


def make_handler(registry: Registry):
    """An aiohttp request handler serving ``registry.render()`` (mount it at GET /metrics)."""
    from aiohttp import web

    async def metrics_handler(_request) -> web.Response:
        return web.Response(body=registry.render().encode("utf-8"),
                            headers={"Content-Type": CONTENT_TYPE})

    return metrics_handler


def make_app(registry: Registry):
    """A minimal aiohttp application with GET /metrics."""
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/metrics", make_handler(registry))
    return app


# -- the standard metric sets (the server and the nodes call these) ------------------------------


def tee(*sinks: Callable[[dict], None] | None) -> Callable[[dict], None]:
    """One audit sink feeding several (None entries are skipped)."""
    live = [s for s in sinks if s is not None]

    def sink(event: dict) -> None:
        for s in live:
            s(event)

    return sink


class KdcMetrics:
    """Front-end metrics, fed by the core's audit events and the transport counters.

    Wiring: pass ``tee(audit_log, metrics.audit)`` as the Kdc's audit sink; call
    ``bind_transport(stats)`` with the adapters' TransportStats; serve ``registry`` at /metrics.
    Labels are closed sets only: request type, MIT status name, outcome; never principals.
    """

    def __init__(self, registry: Registry | None = None, *,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self.registry = registry if registry is not None else Registry()
        self.clock = clock or time.time
        r = self.registry
        self.requests = r.counter("mpckdc_kdc_requests_total",
                                  "KDC requests by message type, MIT status and outcome.",
                                  ("type", "status", "outcome"))
        self.seconds = r.histogram("mpckdc_kdc_request_seconds",
                                   "Time from receiving a request to its reply, by type.",
                                   ("type",))
        self.lookaside = r.counter("mpckdc_kdc_lookaside_hits_total",
                                   "Retransmits answered from the lookaside cache.")
        self.lookaside.labels()  # render 0 before the first hit

    def audit(self, event: dict) -> None:
        """An AuditSink: count and time one request from its audit event."""
        kind = str(event.get("type") or "UNKNOWN")
        status = str(event.get("status") or "NONE")
        outcome = str(event.get("outcome") or "unknown")
        self.requests.labels(kind, status, outcome).inc()
        if event.get("lookaside"):
            self.lookaside.inc()
        started = event.get("time")
        if isinstance(started, int | float):
            self.seconds.labels(kind).observe(max(0.0, self.clock() - started))

    def bind_transport(self, stats) -> None:
        """Expose a kdc.transport.TransportStats (read at scrape time)."""
        for field_name, help_text in (
            ("udp_requests", "UDP datagrams received."),
            ("udp_replies", "UDP replies sent."),
            ("udp_dropped_overload", "UDP requests dropped under load."),
            ("tcp_connections", "TCP connections accepted."),
            ("tcp_requests", "TCP requests received."),
            ("tcp_replies", "TCP replies sent."),
            ("tcp_refused_overload", "TCP connections refused under load."),
            ("tcp_toolong", "TCP requests refused as too long."),
            ("handler_failures", "Requests whose handler failed."),
        ):
            if hasattr(stats, field_name):
                self.registry.counter(f"mpckdc_kdc_{field_name}_total", help_text,
                                      callback=lambda f=field_name: getattr(stats, f))
        if hasattr(stats, "tcp_open"):
            self.registry.gauge("mpckdc_kdc_tcp_open", "Open TCP connections.",
                                callback=lambda: stats.tcp_open)


class MpcNodeMetrics:
    """MPC node metrics. Rates (rounds/s, AND gates/s) are ``rate()`` of the counters.

    Calls: ``batch_started(size)`` / ``batch_finished(seconds)`` around a batch,
    ``round_done(and_gates, seconds)`` per communication round, ``queue_depth.set(n)``.
    """

    def __init__(self, registry: Registry | None = None, node: int | None = None) -> None:
        self.registry = registry if registry is not None else Registry()
        r = self.registry
        self.node = node
        self.batches_in_flight = r.gauge("mpckdc_mpc_batches_in_flight",
                                         "Batches being evaluated now.")
        self.batches_in_flight.set(0)
        self.batch_size = r.histogram("mpckdc_mpc_batch_size", "Instances per batch.",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self.batch_seconds = r.histogram("mpckdc_mpc_batch_seconds",
                                         "Time to evaluate one batch.")
        self.rounds = r.counter("mpckdc_mpc_rounds_total", "Communication rounds completed.")
        self.rounds.labels()
        self.and_gates = r.counter("mpckdc_mpc_and_gates_total",
                                   "AND gates evaluated (instances x gates).")
        self.and_gates.labels()
        self.round_seconds = r.histogram("mpckdc_mpc_round_seconds", "Time of one round.",
                                         buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                                  0.0025, 0.005, 0.01, 0.05, 0.1, 1.0))
        self.queue_depth = r.gauge("mpckdc_mpc_queue_depth", "Jobs waiting for a batch.")
        self.queue_depth.set(0)

    def batch_started(self, size: int) -> None:
        self.batches_in_flight.inc()
        self.batch_size.observe(size)

    def batch_finished(self, seconds: float) -> None:
        self.batches_in_flight.dec()
        self.batch_seconds.observe(seconds)

    def round_done(self, and_gates: int, seconds: float) -> None:
        self.rounds.inc()
        self.and_gates.inc(and_gates)
        self.round_seconds.observe(seconds)


# -- reading the format back ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, name: str) -> str | None:
        for k, v in self.labels:
            if k == name:
                return v
        return None


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?$")


def _parse_labels(text: str, line_no: int) -> tuple[tuple[str, str], ...]:
    out = []
    i, n = 1, len(text) - 1  # inside the braces
    while i < n:
        m = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*\"").match(text, i)
        if not m:
            raise ValueError(f"line {line_no}: bad label set")
        name = m.group(1)
        i = m.end()
        value = []
        while True:
            if i >= n:
                raise ValueError(f"line {line_no}: unterminated label value")
            ch = text[i]
            if ch == "\\":
                nxt = text[i + 1] if i + 1 < n else ""
                if nxt == "n":
                    value.append("\n")
                elif nxt in ('"', "\\"):
                    value.append(nxt)
                else:
                    raise ValueError(f"line {line_no}: bad escape in label value")
                i += 2
            elif ch == '"':
                i += 1
                break
            elif ch == "\n":
                raise ValueError(f"line {line_no}: newline in label value")
            else:
                value.append(ch)
                i += 1
        out.append((name, "".join(value)))
        while i < n and text[i] == " ":
            i += 1
        if i < n:
            if text[i] != ",":
                raise ValueError(f"line {line_no}: expected ',' between labels")
            i += 1
    return tuple(out)


def parse_text(text: str) -> list[Sample]:
    """Samples of a text exposition; ValueError on a malformed line."""
    samples = []
    for line_no, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise ValueError(f"line {line_no}: not a sample")
        name, labels, value = m.group(1), m.group(2), m.group(3)
        try:
            number = float(value)  # accepts +Inf, -Inf, NaN
        except ValueError:
            raise ValueError(f"line {line_no}: bad value {value!r}") from None
        samples.append(Sample(name, _parse_labels(labels, line_no) if labels else (), number))
    return samples
