"""The load engine: many outstanding Kerberos operations over UDP or TCP, in one or more processes.

Two ways to offer load:

- **closed loop** (``concurrency=C``): C operations are always in flight; each completion starts
  the next one. Throughput is what the server gives; latency is per operation.
- **open loop** (``rate=R``): operation i is *due* at t0 + i/R whatever happened before
  (arrivals evenly spaced; with W workers, worker w takes i = w, w+W, ...; or ``arrivals=
  "poisson"``: exponential gaps, each worker at R/W). Latency is measured
  from the due time, not from when the request actually left, so a server (or a generator)
  that falls behind shows its queueing as latency instead of silently lowering the offered
  rate (the "coordinated omission" error). ``send_lag`` (actual - due) tells how far the
  generator itself fell behind. Past ``max_outstanding`` operations in flight per worker, a due
  operation is not sent and counts as ``GENERATOR_OVERLOAD``.

Runs end after ``duration`` seconds (no operation starts later; those in flight finish or time
out) or after ``count`` operations.

Transport: UDP uses one connected non-blocking socket per operation in flight (as separate
clients would), so replies need no matching; a socket whose operation timed out, or whose last
message had to be retransmitted, is closed, never reused, so a late or duplicate reply cannot be
taken for another request's (the next message of a two-message operation then also moves to a
fresh socket). TCP opens one connection per
request, as MIT clients do (RFC 4120 §7.2.2: 4-byte big-endian length prefix).

Timeouts and retransmits: each message waits ``timeout`` seconds; over UDP it is then sent again
(same bytes, so a KDC answers from its lookaside cache) up to ``retries`` times, each wait twice
the previous one (MIT's libkrb5 also backs off); then the operation fails with ``TIMEOUT``.
TCP does not retransmit (the kernel does). Retransmits are counted; the first sends of each
message are counted by kind (``AS_REQ``/``TGS_REQ``) so that they can be compared with the KDC's
own log, which has one line per request it processed.

Processes: ``workers`` > 1 runs that many processes (multiprocessing "spawn"), each with its own
event loop (uvloop when installed), its share of the principals (worker w takes principals
w, w+W, ...), of the concurrency and of the rate; they start together and their RunStats are
merged. Key material is never passed between processes: each worker reads the keytab or derives
its own principals' keys itself.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import resource
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from clients.transport import connect_udp

from .requests import (
    BAD_REPLY,
    FAIL,
    NETWORK,
    NEXT,
    NO_TGT,
    OK,
    OVERLOAD,
    TIMEOUT,
    RequestFactory,
    load_keys,
    parse_mix,
)
from .stats import LatencyHistogram, RunStats

# Latencies and schedules use the monotonic clock, not loop.time(): uvloop's loop.time() is
# libuv's cached millisecond clock, far too coarse for sub-millisecond round trips.
_clock = time.monotonic

MAX_REPLY = 65536
TCP_MAX_REPLY = 1 << 20
PROGRESS_PERIOD = 0.5


@dataclass
class LoadConfig:
    """One run. Exactly one of ``concurrency``/``rate``; at least one of ``duration``/``count``.

    ``principals`` are client names ("user0001", "bob@EXAMPLE.COM"); keys come from ``keytab``
    or ``password_pattern`` ("{name}-password"); never from the config itself.
    """

    target: tuple[str, int]
    realm: str
    principals: list[str]
    mode: str = "as"
    keytab: str | None = None
    password_pattern: str | None = field(default=None, repr=False)  # may be a password
    service: str = "HTTP/localhost"
    mix: str | None = None
    concurrency: int | None = None
    rate: float | None = None
    duration: float | None = None
    count: int | None = None
    tcp: bool = False
    workers: int = 1
    timeout: float = 1.0
    retries: int = 2
    interval: float = 1.0
    max_outstanding: int = 10000
    setup_concurrency: int = 16
    etypes: tuple[int, ...] = (18,)
    seed: int | None = None
    label: str = ""
    arrivals: str = "uniform"  # open loop: "uniform" spacing or "poisson" (exponential gaps)

    def validate(self) -> None:
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("give exactly one of concurrency (closed loop) or rate (open loop)")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.rate is not None and not self.rate > 0:
            raise ValueError("rate must be positive")
        if self.duration is None and self.count is None:
            raise ValueError("give a duration or a count")
        if self.duration is not None and not self.duration > 0:
            raise ValueError("duration must be positive")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if not self.principals:
            raise ValueError("no principals")
        if self.keytab is None and self.password_pattern is None:
            raise ValueError("give a keytab or a password pattern")
        if self.mix:
            parse_mix(self.mix)
        if self.arrivals not in ("uniform", "poisson"):
            raise ValueError("arrivals must be 'uniform' or 'poisson'")

    def public(self) -> dict:
        """The configuration for the report (no password pattern: it may be a password)."""
        return {
            "target": f"{self.target[0]}:{self.target[1]}",
            "realm": self.realm,
            "mode": self.mode,
            "mix": self.mix,
            "principals": len(self.principals),
            "first_principal": self.principals[0],
            "keys": "keytab" if self.keytab else "password",
            "service": self.service,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "duration": self.duration,
            "count": self.count,
            "transport": "tcp" if self.tcp else "udp",
            "workers": self.workers,
            "timeout": self.timeout,
            "retries": self.retries,
            "interval": self.interval,
            "label": self.label,
            "arrivals": self.arrivals if self.rate is not None else None,
        }


@dataclass
class RunResult:
    """Merged statistics of a run, plus the TGT setup phase (not timed, but its messages reach
    the KDC's log too)."""

    config: LoadConfig
    stats: RunStats
    setup: RunStats = field(default_factory=RunStats)
    started_at: float = 0.0  # wall clock of t0


# -- per-worker share of the load --------------------------------------------------------------


def worker_share(config: LoadConfig, worker: int) -> LoadConfig:
    """Worker ``worker``'s principals, concurrency and count (rate stays whole: the schedule
    interleaves workers, see ``OpenLoop``)."""
    w, n = worker, config.workers
    principals = config.principals[w::n] or config.principals[w % len(config.principals)::n] \
        or [config.principals[w % len(config.principals)]]
    conc = None
    if config.concurrency is not None:
        conc = config.concurrency // n + (1 if w < config.concurrency % n else 0)
    count = None
    if config.count is not None:
        count = config.count // n + (1 if w < config.count % n else 0)
    return replace(config, principals=principals, concurrency=conc, count=count)


# -- transports ----------------------------------------------------------------------------------


class UdpSlot:
    """One connected UDP socket carrying one flight at a time."""

    __slots__ = ("sock", "fd", "flight", "engine")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sock = connect_udp(engine.family, engine.address)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.flight: Flight | None = None
        engine.loop.add_reader(self.fd, self._readable)

    def send(self, message: bytes) -> None:
        try:
            self.sock.send(message)
        except (BlockingIOError, InterruptedError):
            pass  # dropped locally: the timeout will retransmit
        except OSError:
            flight = self.flight
            if flight is not None:
                flight.fail_now(NETWORK)

    def _readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(MAX_REPLY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable on a connected socket
                flight = self.flight
                if flight is not None:
                    flight.fail_now(NETWORK)
                return
            flight = self.flight
            if flight is not None:
                flight.on_data(data)
            # a datagram with no flight is a duplicate answer to a retransmit: dropped

    def close(self) -> None:
        self.engine.loop.remove_reader(self.fd)
        self.sock.close()


class TcpExchange:
    """One request over a new TCP connection (RFC 4120 §7.2.2 framing)."""

    __slots__ = ("engine", "flight", "task")

    def __init__(self, engine: Engine, flight: Flight, message: bytes) -> None:
        self.engine = engine
        self.flight = flight
        self.task = engine.loop.create_task(self._run(message))

    async def _run(self, message: bytes) -> None:
        flight = self.flight
        writer = None
        try:
            reader, writer = await asyncio.open_connection(*self.engine.address)
            writer.write(struct.pack(">I", len(message)) + message)
            head = await reader.readexactly(4)
            (length,) = struct.unpack(">I", head)
            if length > TCP_MAX_REPLY:
                flight.fail_now(BAD_REPLY)
                return
            data = await reader.readexactly(length)
        except asyncio.CancelledError:
            return
        except (OSError, asyncio.IncompleteReadError):
            flight.fail_now(NETWORK)
            return
        finally:
            if writer is not None:
                writer.close()
        flight.on_data(data)

    def cancel(self) -> None:
        self.task.cancel()


# -- one operation in flight ---------------------------------------------------------------------


class Flight:
    """An operation on the wire: its messages, timer, retransmits and final accounting."""

    __slots__ = ("engine", "op", "due", "slot", "message", "kind", "attempt", "timer", "done",
                 "tcp")

    def __init__(self, engine: Engine, op, due: float) -> None:
        self.engine = engine
        self.op = op
        self.due = due
        self.slot: UdpSlot | None = None
        self.tcp: TcpExchange | None = None
        self.message = b""
        self.kind = ""
        self.attempt = 0
        self.timer = None
        self.done = False

    def start(self) -> None:
        try:
            message, kind = self.op.first()
        except LookupError:
            self.finish(FAIL, NO_TGT, answered=False)
            return
        self.send(message, kind)

    def send(self, message: bytes, kind: str) -> None:
        engine = self.engine
        if self.attempt and self.slot is not None:
            # the previous message was retransmitted: a second answer to it may still come,
            # so the next message goes out on a fresh socket
            engine.release_slot(self.slot, reusable=False)
            self.slot = None
        self.message, self.kind, self.attempt = message, kind, 0
        engine.stats.messages[kind] += 1
        self._transmit()

    def _transmit(self) -> None:
        engine = self.engine
        wait = engine.timeout * (2 ** self.attempt)
        self.timer = engine.loop.call_later(wait, self.on_timeout)
        if engine.tcp:
            self.tcp = TcpExchange(engine, self, self.message)
        else:
            if self.slot is None:
                self.slot = engine.take_slot()
                self.slot.flight = self
            self.slot.send(self.message)

    def on_timeout(self) -> None:
        if self.done:
            return
        engine = self.engine
        if not engine.tcp and self.attempt < engine.retries:
            self.attempt += 1
            engine.stats.retransmits += 1
            self.timer = None
            wait = engine.timeout * (2 ** self.attempt)
            self.timer = engine.loop.call_later(wait, self.on_timeout)
            self.slot.send(self.message)
            return
        self.timer = None
        self.finish(FAIL, TIMEOUT, answered=False)

    def on_data(self, data: bytes) -> None:
        if self.done:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.tcp = None
        try:
            status, a, b = self.op.on_reply(data)
        except Exception:  # a reply our checks did not foresee: count it, keep running
            status, a, b = FAIL, BAD_REPLY, None
        if status == NEXT:
            self.send(a, b)
        elif status == OK:
            self.finish(OK, None, answered=True)
        else:
            self.finish(FAIL, a, answered=True)

    def fail_now(self, name: str) -> None:
        if self.done:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.finish(FAIL, name, answered=False)

    def finish(self, status: int, name: str | None, *, answered: bool) -> None:
        self.done = True
        engine = self.engine
        now = _clock()
        t = now - engine.t0
        latency = now - self.due
        stats = engine.stats
        if status == OK:
            stats.record_ok(t, latency, self.op.mode)
            engine.window.record(latency)
        else:
            stats.record_error(t, name or BAD_REPLY, latency if answered else None)
        if t > stats.elapsed:
            stats.elapsed = t
        if self.tcp is not None:
            self.tcp.cancel()
            self.tcp = None
        if self.slot is not None:
            # reuse only a socket no further datagram can arrive on
            engine.release_slot(self.slot, reusable=answered and self.attempt == 0)
            self.slot = None
        engine.flight_done(self)


# -- the engine of one worker --------------------------------------------------------------------


class Engine:
    """Runs one worker's share of a LoadConfig on the current event loop."""

    def __init__(self, config: LoadConfig, factory: RequestFactory, *, worker: int = 0,
                 progress: Callable[[dict], None] | None = None) -> None:
        self.config = config
        self.factory = factory
        self.worker = worker
        self.tcp = config.tcp
        self.timeout = config.timeout
        self.retries = config.retries
        host, port = config.target
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        self.family = info[0]
        self.address = info[4][:2]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.free: list[UdpSlot] = []
        self.outstanding = 0
        self.stats = RunStats(interval=config.interval)
        self.window = LatencyHistogram()
        self.t0 = 0.0
        self.progress = progress
        self._idle: asyncio.Event | None = None
        self._on_done: Callable[[Flight], None] | None = None

    # UDP socket pool
    def take_slot(self) -> UdpSlot:
        return self.free.pop() if self.free else UdpSlot(self)

    def release_slot(self, slot: UdpSlot, *, reusable: bool) -> None:
        slot.flight = None
        if reusable:
            self.free.append(slot)
        else:
            slot.close()  # a late reply must not reach a later operation

    def close(self) -> None:
        for slot in self.free:
            slot.close()
        self.free.clear()

    def launch(self, op, due: float) -> None:
        self.outstanding += 1
        Flight(self, op, due).start()

    def flight_done(self, flight: Flight) -> None:
        self.outstanding -= 1
        if self._on_done is not None:
            self._on_done(flight)
        if self.outstanding == 0 and self._idle is not None:
            self._idle.set()

    async def drain(self) -> None:
        """Wait until nothing is in flight (bounded by the flights' own timeouts)."""
        if self.outstanding:
            self._idle = asyncio.Event()
            await self._idle.wait()
            self._idle = None

    # -- TGT setup (tgs and mix modes) -------------------------------------------------------

    async def setup_tgts(self) -> RunStats:
        """Fetch every principal's TGT with a bounded number of logins in flight."""
        main_stats = self.stats
        self.stats = RunStats(interval=self.config.interval)
        self.t0 = _clock()
        pending = list(range(len(self.factory.clients)))
        limit = max(1, self.config.setup_concurrency)
        finished = asyncio.Event()

        def next_one(_flight=None) -> None:
            while pending and self.outstanding < limit:
                self.launch(self.factory.setup_operation(pending.pop()), _clock())
            if not pending and self.outstanding == 0:
                finished.set()

        self._on_done = next_one
        next_one()
        await finished.wait()
        self._on_done = None
        setup, self.stats = self.stats, main_stats
        return setup

    # -- the measured run ----------------------------------------------------------------------

    async def run(self, start_at: float | None = None) -> RunStats:
        """The measured phase. ``start_at`` is a _clock() time to begin at (workers in step)."""
        cfg = self.config
        loop = self.loop
        if start_at is not None:
            await asyncio.sleep(max(0.0, start_at - _clock()))
        cpu0 = time.process_time()
        self.t0 = _clock()
        deadline = self.t0 + cfg.duration if cfg.duration is not None else float("inf")
        reporter = loop.create_task(self._report_progress())
        try:
            if cfg.concurrency is not None:
                await self._closed_loop(deadline)
            else:
                await self._open_loop(deadline)
            await self.drain()
        finally:
            reporter.cancel()
        self.stats.cpu_seconds = time.process_time() - cpu0
        self._send_progress(final=True)
        return self.stats

    async def _closed_loop(self, deadline: float) -> None:
        cfg = self.config
        loop = self.loop
        remaining = [cfg.count if cfg.count is not None else -1]
        stopped = asyncio.Event()

        def start_one() -> bool:
            if remaining[0] == 0 or _clock() >= deadline:
                return False
            if remaining[0] > 0:
                remaining[0] -= 1
            now = _clock()
            self.stats.record_start(now - self.t0, 0.0)
            self.launch(self.factory.operation(), now)
            return True

        def on_done(flight: Flight) -> None:
            if stopped.is_set():
                return
            # an operation that failed without sending anything: do not spin synchronously
            if flight.kind == "":
                loop.call_soon(restart)
            elif not start_one() and self.outstanding == 0:
                stopped.set()

        def restart() -> None:
            if not start_one() and self.outstanding == 0:
                stopped.set()

        self._on_done = on_done
        for _ in range(cfg.concurrency or 0):
            if not start_one():
                break
        if self.outstanding == 0:
            stopped.set()
        try:
            while not stopped.is_set():
                # the flights' own timeouts bound this; the check also notices the deadline
                try:
                    await asyncio.wait_for(stopped.wait(), timeout=0.2)
                except TimeoutError:
                    if _clock() >= deadline and self.outstanding == 0:
                        stopped.set()
        finally:
            stopped.set()
            self._on_done = None

    async def _open_loop(self, deadline: float) -> None:
        cfg = self.config
        due_times = self._due_times()
        limit = cfg.count
        i = 0
        due = next(due_times)
        while (limit is None or i < limit) and due < deadline:
            now = _clock()
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # everything already due goes out now (a burst if we were late)
            while (limit is None or i < limit) and due <= now and due < deadline:
                self.stats.record_start(due - self.t0, now - due)
                if self.outstanding >= cfg.max_outstanding:
                    self.stats.record_error(now - self.t0, OVERLOAD, None)
                else:
                    self.launch(self.factory.operation(), due)
                i += 1
                due = next(due_times)
            await asyncio.sleep(0)

    def _due_times(self):
        """This worker's due times. Uniform: operation j of the whole run is due at
        t0 + j/rate and worker w takes j = w, w+W, ... Poisson: each worker draws exponential
        gaps at rate/W (the merge of W Poisson streams is a Poisson stream at rate)."""
        cfg = self.config
        if cfg.arrivals == "poisson":
            import random

            rng = random.Random(None if cfg.seed is None else cfg.seed * 7919 + self.worker)
            rate_w = cfg.rate / cfg.workers
            t = self.t0
            while True:
                t += rng.expovariate(rate_w)
                yield t
        period = cfg.workers / cfg.rate
        offset = self.worker / cfg.rate
        i = 0
        while True:
            yield self.t0 + offset + i * period
            i += 1

    # -- live progress -------------------------------------------------------------------------

    async def _report_progress(self) -> None:
        if self.progress is None:
            return
        while True:
            await asyncio.sleep(PROGRESS_PERIOD)
            self._send_progress()

    def _send_progress(self, final: bool = False) -> None:
        if self.progress is None:
            return
        window, self.window = self.window, LatencyHistogram()
        s = self.stats
        self.progress({
            "worker": self.worker,
            "elapsed": _clock() - self.t0,
            "started": s.started,
            "ok": s.ok,
            "errors": dict(s.errors),
            "messages": sum(s.messages.values()),
            "outstanding": self.outstanding,
            "window": window.to_json(),
            "final": final,
        })


# -- running a worker (in this process or a child) -----------------------------------------------


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def build_factory(share: LoadConfig, worker: int) -> RequestFactory:
    clients = load_keys(share.principals, share.realm, keytab=share.keytab,
                        password_pattern=share.password_pattern, etypes=share.etypes)
    seed = None if share.seed is None else share.seed * 1000 + worker
    return RequestFactory(share.realm, clients, mode=share.mode, service=share.service,
                          mix=parse_mix(share.mix) if share.mix else None, seed=seed)


async def _worker_main(config: LoadConfig, worker: int, progress, ready: Callable[[], float]
                       ) -> tuple[RunStats, RunStats]:
    share = worker_share(config, worker)
    factory = build_factory(share, worker)
    engine = Engine(share, factory, worker=worker, progress=progress)
    engine.loop = asyncio.get_running_loop()
    try:
        setup = RunStats(interval=config.interval)
        if factory.needs_tgts():
            setup = await engine.setup_tgts()
        # wait for every worker to be ready; the parent answers with a common start time
        start_wall = await engine.loop.run_in_executor(None, ready)
        start_at = _clock() + max(0.0, start_wall - time.time())
        stats = await engine.run(start_at)
        return stats, setup
    finally:
        engine.close()


def run_worker_inline(config: LoadConfig, worker: int = 0, progress=None) -> tuple[RunStats, RunStats]:
    """Run one worker in this process on a fresh event loop (uvloop when installed)."""
    _raise_fd_limit()
    loop = _new_loop()
    try:
        return loop.run_until_complete(
            _worker_main(config, worker, progress, lambda: time.time()))
    finally:
        loop.close()


def _child(config: LoadConfig, worker: int, out, start_event, start_time) -> None:
    """Entry point of a worker process: results and progress go to the queue ``out``."""
    def progress(snapshot: dict) -> None:
        out.put(("progress", worker, snapshot))

    def ready() -> float:
        out.put(("ready", worker, None))
        start_event.wait()
        return start_time.value

    try:
        _raise_fd_limit()
        loop = _new_loop()
        try:
            stats, setup = loop.run_until_complete(_worker_main(config, worker, progress, ready))
        finally:
            loop.close()
        out.put(("result", worker, (stats, setup)))
    except BaseException as exc:  # report, never hang the parent
        out.put(("error", worker, f"{type(exc).__name__}: {exc}"))


class WorkerFailed(RuntimeError):
    pass


def run_load(config: LoadConfig, progress: Callable[[dict], None] | None = None) -> RunResult:
    """Run ``config`` (in this process when workers == 1, else in worker processes) and merge."""
    config.validate()
    started_at = time.time()
    if config.workers == 1:
        stats, setup = run_worker_inline(config, 0, progress)
        return RunResult(config, stats, setup, started_at)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_event = ctx.Event()
    start_time = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_child, args=(config, w, out, start_event, start_time),
                         daemon=True) for w in range(config.workers)]
    for p in procs:
        p.start()
    merged = RunStats(interval=config.interval)
    setup_all = RunStats(interval=config.interval)
    ready: set[int] = set()
    results: set[int] = set()
    errors: list[str] = []
    limit = _parent_time_limit(config)
    deadline = time.monotonic() + limit
    try:
        while len(results) + len(errors) < config.workers:
            if time.monotonic() > deadline:
                raise WorkerFailed("worker processes did not finish in time")
            try:
                kind, worker, payload = out.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead and not errors:
                    errors.append(f"worker exited with status {dead[0].exitcode}")
                continue
            if kind == "ready":
                ready.add(worker)
                if len(ready) == config.workers:
                    start_time.value = time.time() + 0.1
                    start_event.set()
                    started_at = start_time.value
            elif kind == "progress":
                if progress is not None:
                    progress(payload)
            elif kind == "result":
                stats, setup = payload
                merged.merge(stats)
                setup_all.merge(setup)
                results.add(worker)
            elif kind == "error":
                errors.append(f"worker {worker}: {payload}")
                start_event.set()  # let the others go rather than wait forever
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():  # our own child, by its handle
                p.terminate()
                p.join(timeout=5)
    if errors:
        raise WorkerFailed("; ".join(errors))
    return RunResult(config, merged, setup_all, started_at)


def _parent_time_limit(config: LoadConfig) -> float:
    """Generous bound on a multi-process run: setup + run + drain + process start."""
    wait = config.timeout * (2 ** (config.retries + 1))
    run = config.duration if config.duration is not None else 3600.0
    return 120.0 + run + 4 * wait


__all__ = [
    "Engine",
    "LoadConfig",
    "RunResult",
    "WorkerFailed",
    "build_factory",
    "run_load",
    "run_worker_inline",
    "worker_share",
]
