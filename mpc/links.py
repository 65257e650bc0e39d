"""Persistent TLS links between the three nodes.

Topology (Araki et al. 2016 §2.2: party i sends its z_i to party i-1 and receives z_{i+1}
from party i+1): every node DIALS its predecessor i-1 and ACCEPTS its successor i+1, so each
TCP connection carries MPC data in one direction only (dialer -> acceptor):

    node 1 --> node 0,   node 2 --> node 1,   node 0 --> node 2

Why this shape:

* No handshake deadlock: accepting happens on the node's listener thread (``mpc.node``) and
  never waits for this node's own dial, so the ring of dials always completes (a ring where
  every party connects before it accepts deadlocks in the blocking handshake, limits.md §3).
* No concurrent use of one TLS object (OpenSSL forbids it): the outgoing link is encrypted
  only under the send lock, the incoming link is read only by its reader thread. Hang-up of
  the outgoing link is seen by polling the raw file descriptor for POLLRDHUP, which never
  touches the TLS state.
* TLS through memory BIOs (:class:`mpc.tls.TlsChannel`) on blocking TCP sockets driven by
  dedicated threads, not asyncio (3-8x faster for bulk data here, limits.md §3) and not
  ``SSLSocket`` (one syscall pair per 16 KiB record). Measured on this machine: rounds of
  ~100 us instead of ~140 us, and 2-4x the bandwidth per link on 64-512 KiB frames.
* The reader processes each frame itself (no hand-off to another thread, which would cost a
  wake-up per round), and runs the engine's short merge timers itself while it waits for
  the next frame (``timers``: a bounded wait on the socket instead of waking the sweeper);
  while batches are in flight it polls for that frame instead of sleeping (``spin``).
  Sends are non-blocking: a frame is encrypted and handed to the kernel at once, and
  whatever the socket does not take is finished by the writer thread, so no node ever
  waits on its own send and the ring cannot deadlock.

Reconnect: the dialer retries every ``RETRY_INTERVAL`` while the link is down; an acceptor
takes a new connection from the same peer identity as a replacement. Every drop is reported
through ``on_down`` so the engine can abort the batches in flight.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Protocol

from mpc import framing, tls

log = logging.getLogger("mpckdc.mpc.links")

SOCKET_BUFFER = 4 * 1024 * 1024
RETRY_INTERVAL = 0.05
CONNECT_TIMEOUT = 1.0
POLL_INTERVAL_MS = 200
TIMER_SPINS = 64  # timer runs per blocking read before the sweeper thread takes over


def tune_socket(sock: socket.socket) -> None:
    """TCP_NODELAY (one frame per round: never wait for Nagle) and 4 MiB buffers."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)


class EngineTimers(Protocol):
    """What the reader needs from the engine to run its short timers (RoundScheduler)."""

    def adopt_timers(self) -> None: ...
    def next_timer(self) -> float | None: ...
    def run_timers(self) -> None: ...
    def wake_sweeper(self) -> None: ...
    @property
    def in_flight(self) -> int: ...


class LinkDown(ConnectionError):
    """A peer link is not connected."""


def dial(host: str, port: int, ctx: ssl.SSLContext, server_name: str,
         timeout: float = CONNECT_TIMEOUT) -> tls.TlsChannel:
    """Connect and complete a TLS handshake with the peer that must prove ``server_name``."""
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        tune_socket(raw)
        chan = tls.TlsChannel(raw, ctx, server_side=False, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise
    raw.settimeout(None)
    return chan


def accept(raw: socket.socket, ctx: ssl.SSLContext,
           timeout: float = CONNECT_TIMEOUT) -> tls.TlsChannel:
    """Server side of :func:`dial` on an accepted socket (bounded handshake time)."""
    tune_socket(raw)
    raw.settimeout(timeout)
    chan = tls.TlsChannel(raw, ctx, server_side=True)
    raw.settimeout(None)
    return chan


class PeerLinks:
    """The two links of party ``party``: ``out`` to party i-1, ``inc`` from party i+1."""

    def __init__(self, party: int, nodes, client_ctx: ssl.SSLContext,
                 on_bundle: Callable[[list], None], on_down: Callable[[str], None],
                 timers: EngineTimers | None = None, spin: float = 0.0) -> None:
        self.party = party
        self.prev = (party - 1) % 3
        self.next = (party + 1) % 3
        self._prev_addr = nodes[self.prev]
        self._ctx = client_ctx
        self._on_bundle = on_bundle
        self._on_down = on_down
        self._timers = timers
        self._spin = spin
        self._stop = threading.Event()
        self._state = threading.Condition()
        self._out: tls.TlsChannel | None = None
        self._inc: tls.TlsChannel | None = None
        self._inc_gen = 0
        self._send_lock = threading.Lock()
        self._send_wakeup = threading.Condition(self._send_lock)
        self._backlog: collections.deque = collections.deque()
        self._round = 0
        self.deferred_writes = 0
        self._dialer = threading.Thread(target=self._dial_loop, name="link-dial", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="link-write", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._dialer.start()
        self._writer.start()

    def stop(self) -> None:
        self._stop.set()
        with self._state:
            socks = [s for s in (self._out, self._inc) if s is not None]
            self._state.notify_all()
        for s in socks:
            _shutdown(s)

    @property
    def up(self) -> bool:
        return self._out is not None and self._inc is not None

    def wait_up(self, timeout: float) -> bool:
        with self._state:
            return self._state.wait_for(lambda: self.up or self._stop.is_set(), timeout) and self.up

    # -- outgoing --------------------------------------------------------------------------
    def _dial_loop(self) -> None:
        name = tls.node_name(self.prev)
        addr = self._prev_addr
        while not self._stop.is_set():
            try:
                sock = dial(addr.host, addr.port, self._ctx, name)
                # Announce ourselves is implicit: the acceptor reads our certificate name.
            except (OSError, ssl.SSLError):
                self._stop.wait(RETRY_INTERVAL)
                continue
            sock.setblocking(False)  # written only through _send_nonblocking
            with self._send_lock:
                self._backlog.clear()
            with self._state:
                self._out = sock
                self._state.notify_all()
            log.info("link to %s up", name)
            self._watch_hangup(sock)
            _shutdown(sock)
            with self._send_lock:
                self._backlog.clear()
                with self._state:
                    self._out = None
                    self._state.notify_all()
                sock.close()
            if not self._stop.is_set():
                log.warning("link to %s down", name)
                self._on_down(name)

    def _watch_hangup(self, sock: tls.TlsChannel) -> None:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        while not self._stop.is_set():
            if poller.poll(POLL_INTERVAL_MS):
                return
            if self._out is not sock:
                return

    def send_bundle(self, sections: list) -> int:
        """Queue one BUNDLE frame (all ready AND layers) for party i-1; never blocks.

        The frame is encrypted at once (so the caller may reuse its arrays on return) and
        handed to the kernel as far as the socket takes it; the rest is finished by the
        writer thread, in order. So a node processing a received frame never waits on its
        own send, and the ring cannot deadlock however big the frames are. Raises LinkDown
        if the link is down.
        """
        buffers = framing.bundle_buffers((self._round + 1) & 0xFFFFFFFF, sections)
        with self._send_lock:
            sock = self._out
            if sock is None:
                raise LinkDown(f"no link to {tls.node_name(self.prev)}")
            self._round += 1
            try:
                wire = memoryview(sock.seal(buffers))
                if not self._backlog:
                    wire = _send_nonblocking(sock.raw, wire)
            except (OSError, ssl.SSLError) as e:
                _shutdown(sock)
                raise LinkDown(f"link to {tls.node_name(self.prev)} failed") from e
            if wire.nbytes:
                self.deferred_writes += 1
                self._backlog.append(wire)
                self._send_wakeup.notify()
            return self._round

    def _write_loop(self) -> None:
        """Finish writes the engine could not complete without blocking."""
        while not self._stop.is_set():
            with self._send_lock:
                while not self._backlog and not self._stop.is_set():
                    self._send_wakeup.wait(0.5)
                sock = self._out
                if sock is None or self._stop.is_set():
                    self._backlog.clear()
                    continue
                try:
                    rest = _send_nonblocking(sock.raw, self._backlog[0])
                except OSError:
                    _shutdown(sock)
                    self._backlog.clear()
                    continue
                if not rest.nbytes:
                    self._backlog.popleft()
                    continue
                self._backlog[0] = rest
            # Wait for room outside the lock so the engine can queue more meanwhile.
            try:
                select.select([], [sock], [], 0.2)
            except (OSError, ValueError):
                pass

    # -- incoming --------------------------------------------------------------------------
    def attach_incoming(self, sock: tls.TlsChannel) -> None:
        """Take an authenticated connection from party i+1 (called by the listener)."""
        with self._state:
            old = self._inc
            self._inc = sock
            self._inc_gen += 1
            gen = self._inc_gen
            self._state.notify_all()
        if old is not None:
            _shutdown(old)
        threading.Thread(target=self._read_loop, args=(sock, gen), name="link-read",
                         daemon=True).start()
        log.info("link from %s up", tls.node_name(self.next))

    def _read_loop(self, sock: tls.TlsChannel, gen: int) -> None:
        name = tls.node_name(self.next)
        reader = framing.BufferedReader(sock)
        if self._timers is not None:
            self._timers.adopt_timers()
            sock.read_raw = self._read_raw
        try:
            stop, on_bundle, next_bundle = self._stop, self._on_bundle, reader.next_bundle
            while not stop.is_set():
                on_bundle(next_bundle())
        except (OSError, ssl.SSLError, framing.FrameError, ValueError) as e:
            if not self._stop.is_set():
                log.warning("link from %s down: %s", name, type(e).__name__)
        finally:
            _shutdown(sock)
            sock.close()
            replaced = False
            with self._state:
                if self._inc_gen == gen:
                    self._inc = None
                else:
                    replaced = True
                self._state.notify_all()
            if not self._stop.is_set():
                self._on_down(name if not replaced else name + " (replaced)")


    def _read_raw(self, raw: socket.socket, view: memoryview) -> int:
        """The reader's socket read: run the engine's timers until the socket is readable;
        then, while batches are in flight, poll it for up to ``spin`` seconds; then block.

        Why poll: a reader that sleeps in ``recv`` leaves its vCPU idle, and an idle vCPU
        halts; the peer's next frame must then wake it through the hypervisor, tens of µs
        per round on this kind of machine (limits.md §3), paid on every round of a job's
        critical path. Polling keeps the vCPU awake, and ``sched_yield`` between polls
        hands it to any node that has work (three nodes on two cores), so polling costs
        only CPU nobody else wanted. Measured at one login at a time (1,917 rounds): 102 ->
        71-74 µs per round. Idle nodes (no batch in flight) never poll.
        """
        timers = self._timers
        for _ in range(TIMER_SPINS):
            t = timers.next_timer()
            if t is None:
                break
            if t > 0 and _readable(raw.fileno(), t):
                return raw.recv_into(view)
            timers.run_timers()
        else:
            timers.wake_sweeper()  # timers keep coming due: let the sweeper thread take over
        if self._spin and timers.in_flight:
            end = time.perf_counter() + self._spin
            while True:
                try:
                    return raw.recv_into(view, 0, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    if time.perf_counter() >= end:
                        break
                    os.sched_yield()
        return raw.recv_into(view)


def _readable(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds (microsecond precision) for ``fd`` to be readable."""
    if fd < 1024:  # select(2): FD_SETSIZE
        return bool(select.select((fd,), (), (), timeout)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(max(1, int(timeout * 1000 + 0.999))))


def _shutdown(sock: tls.TlsChannel | socket.socket) -> None:
    """Shut the TCP connection down without touching the TLS object (thread-safe)."""
    raw = getattr(sock, "raw", sock)
    try:
        socket.socket.shutdown(raw, socket.SHUT_RDWR)
    except OSError:
        pass


def _send_nonblocking(raw: socket.socket, data: memoryview) -> memoryview:
    """Send what the kernel takes now on a non-blocking socket; return the rest."""
    sent = 0
    n = data.nbytes
    while sent < n:
        try:
            k = raw.send(data[sent:])
        except (BlockingIOError, InterruptedError):
            break
        sent += k
    return data[sent:]
