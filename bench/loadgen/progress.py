"""Live one-line progress of a run on standard error.

Workers send cumulative snapshots (see ``Engine._send_progress``) every half second; this
merges them and shows, on one line rewritten in place when stderr is a terminal (a new line
every few seconds otherwise, so logs stay readable)::

    [mit] 12.5s sent 18,204 ok 18,190 err 6 (TIMEOUT 4, KDC_ERR_PREAUTH_FAILED 2) 1,512 op/s p50 2.1 ms p99 9.8 ms
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import TextIO

from .stats import LatencyHistogram

WINDOW_SECONDS = 2.0  # current QPS and percentiles over the last ~2 s


class Progress:
    """Callable receiving worker snapshots; prints at most every ``period`` seconds."""

    def __init__(self, label: str = "", stream: TextIO | None = None, *,
                 period: float = 0.5, plain_period: float = 5.0, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.period = period if self.tty else plain_period
        self.latest: dict[int, dict] = {}
        self.windows: deque[tuple[float, int, LatencyHistogram]] = deque()
        self._last_print = 0.0
        self._width = 0

    def __call__(self, snapshot: dict) -> None:
        self.latest[snapshot["worker"]] = snapshot
        now = time.monotonic()
        self.windows.append((now, snapshot["ok"], LatencyHistogram.from_json(snapshot["window"])))
        while self.windows and self.windows[0][0] < now - WINDOW_SECONDS:
            self.windows.popleft()
        if self.enabled and now - self._last_print >= self.period:
            self._last_print = now
            self.show(self.line())

    def totals(self) -> dict:
        started = sum(s["started"] for s in self.latest.values())
        ok = sum(s["ok"] for s in self.latest.values())
        errors: dict[str, int] = {}
        for s in self.latest.values():
            for name, n in s["errors"].items():
                errors[name] = errors.get(name, 0) + n
        elapsed = max((s["elapsed"] for s in self.latest.values()), default=0.0)
        return {"started": started, "ok": ok, "errors": errors, "elapsed": elapsed}

    def line(self) -> str:
        t = self.totals()
        window = LatencyHistogram()
        for _, _, h in self.windows:
            window.merge(h)
        # each snapshot's window covers the period before it: leave the oldest out of the rate
        span = (self.windows[-1][0] - self.windows[0][0]) if len(self.windows) > 1 else 0.0
        recent = sum(h.total for _, _, h in list(self.windows)[1:])
        qps = recent / span if span > 0 else 0.0
        err_total = sum(t["errors"].values())
        parts = [f"[{self.label}] " if self.label else "",
                 f"{t['elapsed']:.1f}s sent {t['started']:,} ok {t['ok']:,} err {err_total:,}"]
        if err_total:
            top = sorted(t["errors"].items(), key=lambda kv: -kv[1])[:3]
            parts.append(" (" + ", ".join(f"{k} {v:,}" for k, v in top) + ")")
        parts.append(f" {qps:,.0f} op/s")
        if window.total:
            parts.append(f" p50 {window.percentile(50) * 1e3:.1f} ms"
                         f" p99 {window.percentile(99) * 1e3:.1f} ms")
        return "".join(parts)

    def show(self, text: str) -> None:
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Finish the line (call once the run is over)."""
        if self.enabled and self.latest:
            self.show(self.line())
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
