"""Latency histograms, per-interval time series and error counts of a load run.

``LatencyHistogram`` is an HDR-style log-linear histogram of microsecond values: exact below
128 µs, then 64 linear sub-buckets per power of two (relative error < 1.6 %), up to 2^36 µs
(19 hours). Recording is a couple of integer operations; histograms of different worker
processes (and of different seconds) merge by adding counts, which sorted samples cannot do
cheaply.

``RunStats`` is what one worker accumulates and the parent merges: totals, errors by name
(KRB error names such as ``KDC_ERR_PREAUTH_FAILED``, or client-side ones such as ``TIMEOUT``),
messages sent by kind, and one ``IntervalStats`` per time bin (completions binned by the
time they completed, relative to the run start).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

SUB_BUCKETS = 64  # linear buckets per power of two above the exact range
EXACT = 2 * SUB_BUCKETS  # values below this are counted exactly
MAX_SHIFT = 30  # values up to 2**(7+30) µs
N_BUCKETS = EXACT + MAX_SHIFT * SUB_BUCKETS


def bucket_of(value_us: int) -> int:
    """Bucket index of a non-negative microsecond value (values beyond the range clamp)."""
    if value_us < EXACT:
        return value_us if value_us > 0 else 0
    shift = value_us.bit_length() - 7
    if shift > MAX_SHIFT:
        return N_BUCKETS - 1
    return EXACT + (shift - 1) * SUB_BUCKETS + ((value_us >> shift) - SUB_BUCKETS)


def bucket_bounds(index: int) -> tuple[int, int]:
    """[low, high) microseconds covered by bucket ``index``."""
    if index < EXACT:
        return index, index + 1
    shift, sub = divmod(index - EXACT, SUB_BUCKETS)
    shift += 1
    low = (SUB_BUCKETS + sub) << shift
    return low, low + (1 << shift)


def bucket_value(index: int) -> float:
    """Representative value (middle of the bucket) in microseconds."""
    low, high = bucket_bounds(index)
    return low if high - low == 1 else (low + high - 1) / 2


class LatencyHistogram:
    """Counts of microsecond latencies in log-linear buckets (sparse dict of index -> count)."""

    __slots__ = ("counts", "total", "sum_us", "max_us", "min_us")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.sum_us = 0
        self.max_us = 0
        self.min_us = -1

    def record(self, seconds: float) -> None:
        us = int(seconds * 1e6)
        if us < 0:
            us = 0
        i = bucket_of(us)
        counts = self.counts
        counts[i] = counts.get(i, 0) + 1
        self.total += 1
        self.sum_us += us
        if us > self.max_us:
            self.max_us = us
        if self.min_us < 0 or us < self.min_us:
            self.min_us = us

    def merge(self, other: LatencyHistogram) -> None:
        counts = self.counts
        for i, n in other.counts.items():
            counts[i] = counts.get(i, 0) + n
        self.total += other.total
        self.sum_us += other.sum_us
        self.max_us = max(self.max_us, other.max_us)
        if other.min_us >= 0 and (self.min_us < 0 or other.min_us < self.min_us):
            self.min_us = other.min_us

    def percentile(self, p: float) -> float:
        """Latency in seconds below which ``p`` percent of the values fall (NaN when empty)."""
        if self.total == 0:
            return float("nan")
        if p >= 100:
            return self.max_us / 1e6
        rank = max(1, int(round(p / 100.0 * self.total + 0.5 - 1e-9)))
        rank = min(rank, self.total)
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                return min(bucket_value(i), self.max_us) / 1e6
        return self.max_us / 1e6

    def mean(self) -> float:
        return self.sum_us / self.total / 1e6 if self.total else float("nan")

    def cdf(self) -> list[tuple[float, float]]:
        """(latency seconds, fraction <= it) at each bucket's upper edge, for a CDF plot."""
        out = []
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            out.append((min(bucket_bounds(i)[1], self.max_us + 1) / 1e6, seen / self.total))
        return out

    def summary(self) -> dict:
        """Percentiles in milliseconds (rounded to µs) for the JSON report."""
        if self.total == 0:
            return {"count": 0}
        ms = {
            f"p{str(p).replace('.', '_')}_ms": round(self.percentile(p) * 1e3, 3)
            for p in (50, 90, 99, 99.9)
        }
        return {
            "count": self.total,
            "min_ms": round(self.min_us / 1e3, 3),
            "mean_ms": round(self.mean() * 1e3, 3),
            **ms,
            "max_ms": round(self.max_us / 1e3, 3),
        }

    def to_json(self) -> dict:
        return {
            "counts": {str(i): n for i, n in sorted(self.counts.items())},
            "sum_us": self.sum_us,
            "max_us": self.max_us,
            "min_us": self.min_us,
        }

    @classmethod
    def from_json(cls, data: dict) -> LatencyHistogram:
        h = cls()
        h.counts = {int(i): int(n) for i, n in data.get("counts", {}).items()}
        h.total = sum(h.counts.values())
        h.sum_us = int(data.get("sum_us", 0))
        h.max_us = int(data.get("max_us", 0))
        h.min_us = int(data.get("min_us", -1))
        return h

    def __getstate__(self):
        return self.to_json()

    def __setstate__(self, state) -> None:
        other = LatencyHistogram.from_json(state)
        for name in self.__slots__:
            setattr(self, name, getattr(other, name))


@dataclass
class IntervalStats:
    """What completed (or was started) during one time bin of the run."""

    started: int = 0  # operations whose intended start fell in this bin
    ok: int = 0
    errors: int = 0
    latency_ok: LatencyHistogram = field(default_factory=LatencyHistogram)
    latency_all: LatencyHistogram = field(default_factory=LatencyHistogram)

    def merge(self, other: IntervalStats) -> None:
        self.started += other.started
        self.ok += other.ok
        self.errors += other.errors
        self.latency_ok.merge(other.latency_ok)
        self.latency_all.merge(other.latency_all)


@dataclass
class RunStats:
    """Everything one run (one worker, or several merged) measured.

    ``latency_ok`` covers successful operations; ``latency_all`` every operation that got a
    final answer (success or KRB-ERROR), so an overloaded server that answers with errors still
    shows its queueing. Timeouts are in neither; they are counted under ``errors["TIMEOUT"]``.
    """

    interval: float = 1.0
    started: int = 0
    ok: int = 0
    errors: Counter = field(default_factory=Counter)
    messages: Counter = field(default_factory=Counter)  # "AS_REQ"/"TGS_REQ" sent (first sends)
    retransmits: int = 0
    send_lag: LatencyHistogram = field(default_factory=LatencyHistogram)  # actual - intended
    latency_ok: LatencyHistogram = field(default_factory=LatencyHistogram)
    latency_all: LatencyHistogram = field(default_factory=LatencyHistogram)
    by_mode: Counter = field(default_factory=Counter)  # ok operations per mode (mix)
    bins: dict[int, IntervalStats] = field(default_factory=dict)
    elapsed: float = 0.0  # seconds from the first intended start to the last completion
    cpu_seconds: float = 0.0  # generator CPU (user + system) over the run

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def bin(self, t: float) -> IntervalStats:
        k = int(t / self.interval) if t > 0 else 0
        b = self.bins.get(k)
        if b is None:
            b = self.bins[k] = IntervalStats()
        return b

    def record_start(self, t_intended: float, lag: float) -> None:
        self.started += 1
        self.bin(t_intended).started += 1
        self.send_lag.record(lag)

    def record_ok(self, t_done: float, latency: float, mode: str = "") -> None:
        self.ok += 1
        self.latency_ok.record(latency)
        self.latency_all.record(latency)
        if mode:
            self.by_mode[mode] += 1
        b = self.bin(t_done)
        b.ok += 1
        b.latency_ok.record(latency)
        b.latency_all.record(latency)

    def record_error(self, t_done: float, name: str, latency: float | None) -> None:
        """An operation that failed; ``latency`` None when no answer came (timeouts)."""
        self.errors[name] += 1
        b = self.bin(t_done)
        b.errors += 1
        if latency is not None:
            self.latency_all.record(latency)
            b.latency_all.record(latency)

    def merge(self, other: RunStats) -> None:
        self.started += other.started
        self.ok += other.ok
        self.errors.update(other.errors)
        self.messages.update(other.messages)
        self.retransmits += other.retransmits
        self.send_lag.merge(other.send_lag)
        self.latency_ok.merge(other.latency_ok)
        self.latency_all.merge(other.latency_all)
        self.by_mode.update(other.by_mode)
        for k, b in other.bins.items():
            mine = self.bins.get(k)
            if mine is None:
                self.bins[k] = mine = IntervalStats()
            mine.merge(b)
        self.elapsed = max(self.elapsed, other.elapsed)
        self.cpu_seconds += other.cpu_seconds

    def series(self) -> list[dict]:
        """Per-bin rows for the report: time, started/s, ok/s, errors/s, latency percentiles."""
        rows = []
        if not self.bins:
            return rows
        for k in range(0, max(self.bins) + 1):
            b = self.bins.get(k) or IntervalStats()
            row = {
                "t": round(k * self.interval, 6),
                "offered_per_s": b.started / self.interval,
                "ok_per_s": b.ok / self.interval,
                "errors_per_s": b.errors / self.interval,
            }
            for name, h in (("ok", b.latency_ok), ("all", b.latency_all)):
                for p in (50, 90, 99):
                    value = h.percentile(p)
                    row[f"{name}_p{p}_ms"] = None if value != value else round(value * 1e3, 3)
                row[f"{name}_max_ms"] = round(h.max_us / 1e3, 3) if h.total else None
            rows.append(row)
        return rows
