"""Round scheduler: many batches in flight, ONE frame per link per round.

Each batch is a sans-IO :class:`mpc.evaluator.PartyEvaluation`. Whenever some batches have
their next AND layer's z shares ready, the engine sends all of them to party i-1 in one
BUNDLE frame (:mod:`mpc.framing`), each section labelled (batch_id, round). The label is
computed identically on all nodes (batch_id comes with the job, round counts the batch's AND
layers), so the receiver routes z_{i+1} to the right evaluation without any coordination
message (SPEC "The MPC engine"; the MPyC program-counter idea). Sections that arrive before
the local batch reached that layer, or before the job itself arrived here, wait in an inbox.

Batches at different depths share the same frames, so the per-round latency is paid once for
all of them and a new batch never waits for older ones to finish. Batches that went out in
different frames (admitted at different moments on the three nodes) would otherwise keep
travelling in separate chains of frames, one frame per batch and round: under load (at
least ``MERGE_MIN_BATCHES`` in flight) a ready layer waits briefly for another batch's layer
that is due (``_merge_wait``), and early layers wait for the next frame (``_after_send``),
so the chains merge. Measured at 256 concurrent kdcload logins: 4 layers per frame instead
of 1.3, a third of the node CPU per login. With few batches, separate frames pipeline
across the three nodes and are kept (lower latency).

Backpressure: at most ``max_in_flight`` batches are admitted; beyond that a job is refused
with ``BUSY`` at once (queueing could admit batches in different orders on different nodes).
Clients bound their own in-flight jobs (``mpc.client``). A batch that does not finish within
its deadline is aborted, and every batch is aborted when a peer link drops: the surviving
nodes keep running and accept new jobs as soon as the links are back.

Reveal-to-all adds one round: party i sends its copy of x_{i+1} to party i-1, which then
holds all three shares (Araki et al. 2016 §2: each share is held by two parties).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("mpckdc.mpc.scheduler")

INBOX_TTL = 30.0
SWEEP_INTERVAL = 0.1
FLUSH_BYTES = 256 * 1024
DEAD_TTL = 120.0  # finished/aborted batch ids are refused this long (> node JOB_ID_WINDOW)
HOLD_MAX = 0.002  # a new batch waits at most this long to join the next frame
MERGE_FACTOR = 1.5  # a ready layer waits for another batch's layer due within 1.5 round times
MERGE_MAX = 0.001  # ... but never longer than this
# Merging pays when the nodes are CPU-bound (many batches: every frame costs TLS, syscalls and
# a wake-up). With few batches, separate frames per batch pipeline across the three nodes
# (one node computes batch A while another computes B) and give lower latency (measured at
# one login at a time: ~600 ms merged-off vs ~1 s merged).
MERGE_MIN_BATCHES = 4
RTT_INITIAL = 0.0003


GC_GEN0_THRESHOLD = 20_000


def quiet_garbage_collector() -> None:
    """Keep CPython's cyclic GC off the round path of a long-running node.

    A node holds ~10^5 long-lived objects (numba, asyncio, ssl, cached circuits); every full
    collection walks all of them (~70 ms here), and the per-round allocations of the engine
    triggered one every second or so: 10 % of a node's CPU under load, measured with perf.
    Freezing what exists once the node is up moves it out of the collector's view, and a
    larger generation-0 threshold makes young collections rarer; cycles created later are
    still collected. (This is process-wide state: ``mpc.node`` is the natural owner; it sits
    here so that every node gets it at engine start.)
    """
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, g1, g2)


class JobFailed(Exception):
    """A batch could not complete; ``code`` is one of BUSY, PEER_DOWN, TIMEOUT, ABORTED, ..."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(eq=False)
class Batch:
    """One admitted job: its evaluation and where its results go."""

    batch_id: int
    evaluation: object
    layer_sizes: list[int]
    words: int
    reveal_all: bool
    n_outputs: int
    on_done: Callable[[list[np.ndarray] | None, JobFailed | None], None]
    deadline: float
    round: int = 0
    send: np.ndarray | None = None
    waiting_for: int | None = None
    phase: str = "and"  # "and" -> AND layers; "reveal" -> the reveal-to-all round
    sent_at: float = 0.0  # when the outstanding layer went out (time.monotonic)
    outputs: list[np.ndarray] = field(default_factory=list)


class RoundScheduler:
    """The MPC engine of one node: a monitor, driven by whichever thread has work.

    There is no engine thread: the link reader thread processes each BUNDLE as soon as it
    has read it (and sends the next frame itself), the job server thread admits jobs, and a
    small sweeper thread enforces deadlines. One lock serialises them. Not handing received
    data to another thread saves a cross-thread wake-up per round, which is most of a
    round's latency on this machine (limits.md §3). Sends never block (see
    :meth:`mpc.links.PeerLinks.send_bundle`), so processing inside the reader cannot
    deadlock the ring.
    """

    def __init__(self, party: int, send_bundle: Callable[[list], int],
                 links_up: Callable[[], bool], max_in_flight: int = 64) -> None:
        self.party = party
        self._send_bundle = send_bundle
        self._links_up = links_up
        self.max_in_flight = max_in_flight
        self._lock = threading.RLock()
        self._batches: dict[int, Batch] = {}
        self._inbox: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
        self._dead: dict[int, float] = {}  # batch ids aborted or finished -> time
        self._ready: list[Batch] = []
        self._ready_bytes = 0  # sum of send.nbytes over _ready
        self._held: list[Batch] = []  # new batches waiting to share the next frame
        self._hold_until = 0.0
        self._stale_armed = False  # some batch waits on a layer already in the inbox
        self._stale_until = 0.0
        self._merge_until = 0.0  # ready layers wait (at most) until then for a due layer
        self._merge_started = 0.0
        self.rtt = RTT_INITIAL  # moving average: layer sent -> peer's layer received
        self.merge_waits = 0
        self._wake = threading.Event()
        self._timer_thread: int | None = None  # runs due timers itself (see adopt_timers)
        self._sweeper = threading.Thread(target=self._sweep_loop, name="sweeper", daemon=True)
        self._stop = threading.Event()
        self.rounds = 0
        self.sections_sent = 0
        self.compute_seconds = 0.0
        self.busy_seconds = 0.0

    # -- API (any thread) ------------------------------------------------------------------
    def start(self) -> None:
        quiet_garbage_collector()
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            self._abort_all("SHUTDOWN", "node shutting down")

    def submit(self, batch: Batch) -> None:
        self._event(self._admit, batch)

    def deliver(self, sections: list) -> None:
        """Called by the link reader thread with a decoded BUNDLE."""
        self._event(self._on_bundle, sections)

    def abort(self, batch_id: int, code: str = "ABORTED", message: str = "aborted") -> None:
        self._event(self._on_abort, batch_id, code, message)

    def link_down(self, name: str) -> None:
        self._event(self._on_link_down, name)

    @property
    def in_flight(self) -> int:
        return len(self._batches)

    def _event(self, handler: Callable, *args) -> None:
        """Run ``handler(*args)`` and send what it made ready, under the engine lock."""
        t0 = time.perf_counter()
        with self._lock:
            try:
                handler(*args)
                self._pump()
            except Exception:  # never let a bug wedge the node; fail every batch instead
                log.exception("engine error; aborting batches in flight")
                self._abort_all("INTERNAL", "internal engine error")
            self.busy_seconds += time.perf_counter() - t0

    # -- timers --------------------------------------------------------------------------
    # Three short timers (hold, stale, merge; each at most a few ms) end waits that merge
    # batches into shared frames. They are nearly always armed by the link reader thread
    # while it processes a frame, and that thread runs them itself before it next blocks
    # on its socket (``next_timer``/``run_timers``, called by :mod:`mpc.links`): waking the
    # sweeper thread for each one cost a futex wake-up and a context switch, 17 % of a
    # node's CPU under load (py-spy). Timers armed by any other thread wake the sweeper,
    # which also serves every timer at its periodic sweep (the liveness backstop).

    def adopt_timers(self) -> None:
        """Make the calling thread (the link reader) the one that runs due timers itself."""
        self._timer_thread = threading.get_ident()

    def next_timer(self) -> float | None:
        """Seconds until the earliest armed timer (<= 0: due), or None if none is armed."""
        t = self._next_due()
        return None if t is None else t - time.monotonic()

    def _next_due(self) -> float | None:
        """When the earliest armed timer is due (time.monotonic), or None. (Asked before
        every blocking read of the link reader: plain comparisons, no allocation.)"""
        t = None
        if self._held:
            t = self._hold_until
        if self._stale_armed and (t is None or self._stale_until < t):
            t = self._stale_until
        if self._merge_until and (t is None or self._merge_until < t):
            t = self._merge_until
        return t

    def run_timers(self) -> None:
        """Run the timers that are due (any thread; takes the engine lock)."""
        with self._lock:
            try:
                self._timers(time.monotonic())
            except Exception:
                log.exception("engine error; aborting batches in flight")
                self._abort_all("INTERNAL", "internal engine error")

    def wake_sweeper(self) -> None:
        self._wake.set()

    def _timers(self, now: float) -> None:
        if self._held and now >= self._hold_until:
            self._release_held()
            self._pump()
        if self._stale_armed and now >= self._stale_until:
            self._advance_from_inbox()
            self._pump()
        if self._merge_until and now >= self._merge_until:
            self._pump(force=True)

    def _sweep_loop(self) -> None:
        next_sweep = time.monotonic() + SWEEP_INTERVAL
        while not self._stop.is_set():
            with self._lock:
                now = time.monotonic()
                self._timers(now)
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + SWEEP_INTERVAL
                due = self._next_due()
                wait = (next_sweep if due is None else min(next_sweep, due)) - now
                self._wake.clear()
            self._wake.wait(max(wait, 0.0))

    def _on_bundle(self, sections: list) -> None:
        batches = self._batches
        now = time.monotonic()
        for batch_id, rnd, z in sections:
            b = batches.get(batch_id)
            if b is not None and b.waiting_for == rnd:
                self._advance(b, z, now)
                # Big layers go out at once, so the peer computes on them while we
                # compute the next section; small ones share one frame (fewer rounds).
                if self._ready_bytes >= FLUSH_BYTES:
                    self._pump()
            elif batch_id not in self._dead:  # early: the batch or its round comes later
                self._inbox[(batch_id, rnd)] = (now, z)
        # Batches whose layer came early (in an earlier frame) advance now, one round
        # per received frame, so they ride the same frame as everything else.
        self._advance_from_inbox()

    def _on_abort(self, batch_id: int, code: str, message: str) -> None:
        b = self._batches.get(batch_id)
        if b is not None:
            self._fail(b, JobFailed(code, message))
        else:
            self._dead[batch_id] = time.monotonic()

    def _on_link_down(self, name: str) -> None:
        self._abort_all("PEER_DOWN", f"MPC peer {name} unavailable")
        self._inbox.clear()

    def _admit(self, b: Batch) -> None:
        if b.batch_id in self._batches or b.batch_id in self._dead:
            b.on_done(None, JobFailed("DUPLICATE", "batch id already used"))
            return
        if len(self._batches) >= self.max_in_flight:
            b.on_done(None, JobFailed("BUSY", "too many batches in flight"))
            return
        if not self._links_up():
            b.on_done(None, JobFailed("PEER_DOWN", "MPC peer links are down"))
            return
        self._batches[b.batch_id] = b
        send = b.evaluation.start()
        if send is not None and any(o.waiting_for is not None for o in self._batches.values()):
            # Other batches are mid-flight: let this one ride in their next frame (one frame
            # per link per round), but never wait longer than HOLD_MAX.
            b.send = send
            if not self._held:
                self._hold_until = time.monotonic() + HOLD_MAX
                self._kick()
            self._held.append(b)
            return
        self._step(b, send)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for h in held:
            if h.batch_id in self._batches:
                self._ready.append(h)
                self._ready_bytes += h.send.nbytes

    def _step(self, b: Batch, send: np.ndarray | None) -> None:
        """Record the batch's next send buffer (or finish it)."""
        if send is None and b.phase == "and":
            b.outputs = [b.evaluation.output(k) for k in range(b.n_outputs)]
            if b.reveal_all:
                b.phase = "reveal"
                send = np.concatenate([o[:, 1, :] for o in b.outputs]) if b.outputs else \
                    np.zeros((0, b.words), np.uint64)
        if send is None:
            self._finish(b)
            return
        b.send = send
        self._ready.append(b)
        self._ready_bytes += send.nbytes

    def _advance(self, b: Batch, z: np.ndarray | None = None, now: float = 0.0) -> None:
        """Feed the batch the z (or reveal) shares it waits for (given, or from the inbox)."""
        if z is None:
            _, z = self._inbox.pop((b.batch_id, b.waiting_for))
        b.waiting_for = None
        if b.sent_at:
            if not now:
                now = time.monotonic()
            self.rtt += 0.1 * (min(now - b.sent_at, 0.01) - self.rtt)
        if b.phase == "reveal":
            total = sum(o.shape[0] for o in b.outputs)
            z = z.reshape(total, b.words)
            values, pos = [], 0
            for o in b.outputs:
                n = o.shape[0]
                values.append(o[:, 0, :] ^ o[:, 1, :] ^ z[pos:pos + n])
                pos += n
            b.outputs = values
            self._finish(b)
            return
        expect = b.layer_sizes[b.round - 1]
        if z.size != expect * b.words:
            self._fail(b, JobFailed("PROTOCOL", "peer sent a layer of the wrong size"))
            return
        t = time.perf_counter()
        send = b.evaluation.receive(z)
        self.compute_seconds += time.perf_counter() - t
        self._step(b, send)

    def _pump(self, force: bool = False) -> None:
        """Send one frame with every ready layer; repeat while data already waits."""
        if self._held and (self._ready or not any(
                o.waiting_for is not None for o in self._batches.values())):
            self._release_held()
        if self._ready and not force and self._merge_wait():
            return
        self._merge_until = 0.0
        while self._ready:
            ready, self._ready = self._ready, []
            self._ready_bytes = 0
            sections = [(b.batch_id, b.round, b.send) for b in ready]
            try:
                self._send_bundle(sections)
            except ConnectionError as e:
                for b in ready:
                    self._fail(b, JobFailed("PEER_DOWN", str(e)))
                return
            self.rounds += 1
            self.sections_sent += len(sections)
            now = time.monotonic()
            for b in ready:
                b.send = None
                b.waiting_for = b.round
                b.round += 1
                b.sent_at = now
            for b in ready:
                # While the peers compute and the frame travels: the next layer's PRF
                # streams (small layers only), off the next round's critical path.
                if b.phase == "and":
                    b.evaluation.prepare_next()
            if self._inbox:
                self._after_send()

    def _after_send(self) -> None:
        """Layers that came early (the successor is a round ahead).

        If every waiting batch already has its next layer, they all advance now and go out
        together in the next frame (a node that lags catches up at once; deferring would
        make it lag forever and stretch every round of the ring by half). If only some have
        it, they wait for the next received frame, which the others are waiting for anyway
        (``_advance_from_inbox``), so they share that frame instead of starting a chain of
        frames of their own (every extra frame costs TLS, syscalls and a wake-up per node and
        round). If no frame comes within HOLD_MAX, the sweeper advances them (liveness).
        """
        inbox = self._inbox
        waiting = [b for b in self._batches.values() if b.waiting_for is not None]
        early = [b for b in waiting if (b.batch_id, b.waiting_for) in inbox]
        if not early:
            return
        if len(early) == len(waiting) or len(self._batches) < MERGE_MIN_BATCHES:
            for b in early:
                self._advance(b)
        elif not self._stale_armed:
            self._stale_armed = True
            self._stale_until = time.monotonic() + HOLD_MAX
            self._kick()

    def _merge_wait(self) -> bool:
        """Whether the ready layers should wait a moment for another batch's layer.

        Batches that went out in different frames (admitted at different moments on the
        three nodes, or a first layer that waited for a slow peer) would otherwise keep
        travelling in frames of their own, round after round: every extra frame costs TLS,
        syscalls and a wake-up per node and round. When a layer of another batch is due
        within about one round time (it went out after ours did), the ready ones wait for it
        - once - and from then on the batches share one frame per round. Large frames never
        wait (throughput); the wait is at most ``MERGE_MAX``; the sweeper ends it.
        """
        if len(self._batches) < MERGE_MIN_BATCHES:
            return False
        now = time.monotonic()
        horizon = MERGE_FACTOR * self.rtt
        due = 0.0
        for o in self._batches.values():
            if o.waiting_for is not None and now - o.sent_at < horizon:
                due = max(due, o.sent_at + horizon)
        if not due or self._ready_bytes >= FLUSH_BYTES:
            return False
        if not self._merge_until:
            self._merge_started = now
            self.merge_waits += 1
        until = min(due, self._merge_started + MERGE_MAX)
        if now >= until:
            return False
        if until != self._merge_until:
            self._merge_until = until
            self._kick()
        return True

    def _kick(self) -> None:
        """Make the sweeper see a new timer, unless the timer thread armed it (it runs it)."""
        if threading.get_ident() != self._timer_thread:
            self._wake.set()

    def _inbox_ready(self) -> list[Batch]:
        inbox = self._inbox
        return [b for b in self._batches.values()
                if b.waiting_for is not None and (b.batch_id, b.waiting_for) in inbox]

    def _advance_from_inbox(self) -> None:
        self._stale_armed = False
        if self._inbox:
            for b in self._inbox_ready():
                self._advance(b)

    def _finish(self, b: Batch) -> None:
        self._batches.pop(b.batch_id, None)
        self._dead[b.batch_id] = time.monotonic()
        b.on_done(b.outputs, None)

    def _fail(self, b: Batch, err: JobFailed) -> None:
        self._batches.pop(b.batch_id, None)
        self._dead[b.batch_id] = time.monotonic()
        if b in self._ready:
            self._ready.remove(b)
            self._ready_bytes -= b.send.nbytes
        if b in self._held:
            self._held.remove(b)
        for key in [k for k in self._inbox if k[0] == b.batch_id]:
            del self._inbox[key]
        try:
            b.on_done(None, err)
        except Exception:
            log.exception("result callback failed")

    def _abort_all(self, code: str, message: str) -> None:
        for b in list(self._batches.values()):
            self._fail(b, JobFailed(code, message))
        self._ready.clear()
        self._ready_bytes = 0
        self._held.clear()

    def _sweep(self, now: float) -> None:
        for b in [b for b in self._batches.values() if b.deadline < now]:
            self._fail(b, JobFailed("TIMEOUT", "batch did not finish in time"))
        for key in [k for k, (t, _) in self._inbox.items() if now - t > INBOX_TTL]:
            del self._inbox[key]
        for bid in [bid for bid, t in self._dead.items() if now - t > DEAD_TTL]:
            del self._dead[bid]
