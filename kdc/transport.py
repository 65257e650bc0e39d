"""Thin asyncio adapters that carry Kerberos messages between sockets and the sans-IO KDC core.

The core is ``handle(data, peer, now, *, transport) -> bytes | None`` (``Kdc.handle``); this
module only frames, bounds and schedules. Nothing here parses Kerberos, except the one reply
RFC 4120 makes the transport itself send (KRB_ERR_FIELD_TOOLONG).

UDP (RFC 4120 §7.2.1): one request per datagram, the reply goes back to the sender's address.
The number of requests being handled at once is bounded; datagrams arriving above the bound are
dropped (the client retransmits), so memory never grows with the offered load.

TCP (RFC 4120 §7.2.2): every message in both directions is framed as

    +----------------------------+------------------------+
    | length: 4 bytes big-endian | DER message (length)   |
    +----------------------------+------------------------+

A connection may carry several requests; they are answered one after another in order.
A length with the high bit set ("reserved for future expansion") or above our cap gets a
KRB-ERROR KRB_ERR_FIELD_TOOLONG and the connection is closed, as RFC 4120 requires. MIT
krb5kdc 1.20 does the same for lengths above its 1 MiB buffer (checked: same error fields,
sname krbtgt/REALM, then close); our default cap is 64 KiB, far above any real request. Connections are
bounded in number, in queued requests, in unsent reply bytes and in idle time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from kdc.messages.constants import KRB_ERR_FIELD_TOOLONG, NT_SRV_INST

log = logging.getLogger("mpckdc.transport")

# RFC 4120 §7.2.2: "the high bit of the length is reserved for future expansion".
LENGTH_RESERVED_BIT = 0x8000_0000


class RequestHandler(Protocol):
    """What the adapters call: ``Kdc.handle`` has this shape."""

    def __call__(
        self, data: bytes, peer: tuple[str, int], now: float, *, transport: str = "udp"
    ) -> Awaitable[bytes | None]: ...


@dataclass(frozen=True)
class TransportLimits:
    """Bounds that keep a flood of requests from growing memory or tasks without limit."""

    # Largest TCP request accepted (MIT caps at its buffer size; ours is far above any real
    # AS-REQ or TGS-REQ, which are 0.2-2 KiB, and far below what could hurt the process).
    max_request_bytes: int = 64 * 1024
    max_tcp_connections: int = 512
    # A connection with no request in progress and no bytes received for this long is closed.
    tcp_idle_timeout: float = 30.0
    # Requests being handled at once over UDP (per socket); datagrams above this are dropped.
    max_pending_udp: int = 1024
    # Requests read from one TCP connection but not answered yet; above it we stop reading.
    max_pending_per_connection: int = 4
    # Reply bytes waiting for a slow reader before we stop answering that connection.
    max_write_buffer: int = 256 * 1024
    # listen(2) backlog: MIT's 5 overflows with 16 concurrent clients (see research/mit-baseline).
    tcp_backlog: int = 1024


@dataclass
class TransportStats:
    """Counters the adapters keep (exported as metrics later)."""

    udp_requests: int = 0
    udp_dropped_overload: int = 0
    udp_replies: int = 0
    tcp_connections: int = 0
    tcp_open: int = 0
    tcp_refused_overload: int = 0
    tcp_requests: int = 0
    tcp_replies: int = 0
    tcp_toolong: int = 0
    tcp_idle_closed: int = 0
    handler_failures: int = 0
    extra: dict = field(default_factory=dict)


def field_toolong_error(realm: str, now: float) -> bytes:
    """DER KRB-ERROR KRB_ERR_FIELD_TOOLONG from krbtgt/REALM (the fields MIT fills in)."""
    from kdc.messages import encode
    from kdc.messages.model import KrbError, PrincipalName

    seconds = int(now)
    return encode(
        KrbError(
            ctime=None,
            cusec=None,
            stime=seconds,
            susec=int((now - seconds) * 1_000_000),
            error_code=KRB_ERR_FIELD_TOOLONG,
            crealm=None,
            cname=None,
            realm=realm,
            sname=PrincipalName(NT_SRV_INST, ("krbtgt", realm)),
        )
    )


# -- eager start ----------------------------------------------------------------------------
# A request usually runs to completion without ever waiting (the reference key service, a
# lookaside hit, any error found while parsing); only a real wait (an MPC round trip) needs a
# Task of its own. Starting coroutines eagerly, as Python 3.12's eager task factory does, saves
# the Task, its scheduling and one event-loop pass per request; a coroutine that does wait
# continues as a Task exactly where it stopped.


class _Continue:
    """Awaitable that drives a coroutine which has already yielded ``first`` to the event loop.

    It re-yields every future the coroutine waits on to the Task that awaits it (the
    ``yield from`` protocol written out, because the first step has already been taken), and
    passes results, exceptions and cancellation back into the coroutine.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro, first) -> None:
        self._coro = coro
        self._first = first

    def __await__(self):
        coro = self._coro
        value = self._first
        self._first = None
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by the Task (cancellation)
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _finish(coro, first):
    return await _Continue(coro, first)


def start_eagerly(coro) -> tuple[bool, object]:
    """Run ``coro`` now until it finishes or first waits.

    Returns ``(True, result)`` when it finished (an exception it raised propagates), or
    ``(False, task)``: a Task that continues the coroutine from where it waits.
    """
    try:
        first = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, asyncio.ensure_future(_finish(coro, first))


async def gather_eagerly(*coros, return_exceptions: bool = False) -> list:
    """``asyncio.gather`` of coroutines, each started eagerly (see ``start_eagerly``).

    All coroutines are started before any outcome is looked at, as with gather. Results come
    in argument order; with ``return_exceptions`` exceptions are returned in place, otherwise
    the first one (in argument order) is raised once every coroutine has been started.
    """
    results: list = [None] * len(coros)
    failures: list[tuple[int, BaseException]] = []
    waiting: dict[int, asyncio.Future] = {}
    for index, coro in enumerate(coros):
        try:
            done, value = start_eagerly(coro)
        except Exception as exc:  # noqa: BLE001 - reported below, as gather does
            failures.append((index, exc))
            continue
        if done:
            results[index] = value
        else:
            waiting[index] = value
    if waiting:
        outcomes = await asyncio.gather(*waiting.values(), return_exceptions=True)
        for index, outcome in zip(waiting, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not return_exceptions:
                failures.append((index, outcome))
            results[index] = outcome
    if failures:
        if not return_exceptions:
            raise min(failures, key=lambda f: f[0])[1]
        for index, exc in failures:
            results[index] = exc
    return results


def frame(message: bytes) -> bytes:
    """RFC 4120 §7.2.2 record: 4-byte big-endian length, then the message."""
    return len(message).to_bytes(4, "big") + message


async def _call_handler(
    handler: RequestHandler,
    stats: TransportStats,
    data: bytes,
    peer: tuple[str, int],
    transport: str,
) -> bytes | None:
    """Run the core; it never raises by contract, but a bug must not kill the adapter."""
    try:
        return await handler(data, peer, time.time(), transport=transport)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the adapter outlives any bug in the core
        stats.handler_failures += 1
        # Type only: an exception message could quote request bytes.
        log.error("request from %s over %s failed: %s", peer[0], transport, type(exc).__name__)
        return None


class UdpKdcProtocol(asyncio.DatagramProtocol):
    """One Kerberos request per datagram (RFC 4120 §7.2.1)."""

    def __init__(
        self,
        handler: RequestHandler,
        limits: TransportLimits | None = None,
        stats: TransportStats | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits or TransportLimits()
        self.stats = stats or TransportStats()
        self.transport: asyncio.DatagramTransport | None = None
        self._pending = 0
        self._tasks: set[asyncio.Task] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.stats.udp_requests += 1
        if self._pending >= self.limits.max_pending_udp:
            # Overload: drop, the client retransmits (RFC 4120 §7.2.1) or tries another KDC.
            self.stats.udp_dropped_overload += 1
            return
        self._pending += 1
        done, task = start_eagerly(self._answer(data, addr))
        if not done:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, data: bytes, addr: tuple) -> None:
        # _call_handler written out: one coroutine less on every datagram.
        peer = (addr[0], addr[1])
        try:
            reply = await self.handler(data, peer, time.time(), transport="udp")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the adapter outlives any bug in the core
            self.stats.handler_failures += 1
            log.error("request from %s over udp failed: %s", peer[0], type(exc).__name__)
            reply = None
        finally:
            self._pending -= 1
        if reply is None or self.transport is None or self.transport.is_closing():
            return
        try:
            self.transport.sendto(reply, addr)
            self.stats.udp_replies += 1
        except OSError as exc:
            log.debug("UDP reply to %s not sent: %s", addr[0], exc)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier replies (port unreachable...): nothing to do.
        log.debug("UDP socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


@dataclass(frozen=True)
class _TooLong:
    """Queue marker: answer KRB_ERR_FIELD_TOOLONG here, then close."""

    length: int


class TcpConnections:
    """State shared by the connections of one listening socket (count, limits, stats)."""

    def __init__(
        self,
        handler: RequestHandler,
        realm: str,
        limits: TransportLimits | None = None,
        stats: TransportStats | None = None,
    ) -> None:
        self.handler = handler
        self.realm = realm
        self.limits = limits or TransportLimits()
        self.stats = stats or TransportStats()
        self.open: set[TcpKdcProtocol] = set()

    def protocol(self) -> TcpKdcProtocol:
        return TcpKdcProtocol(self)

    def close_all(self) -> None:
        """Server shutdown: abort every connection (a stuck reader must not delay the stop)."""
        for conn in list(self.open):
            conn.abort()


_WORKING = object()  # TcpKdcProtocol._worker while _work runs inside the callback that started it


class TcpKdcProtocol(asyncio.Protocol):
    """One TCP connection: length-prefixed requests in, replies out in the same order."""

    def __init__(self, shared: TcpConnections) -> None:
        self.shared = shared
        self.limits = shared.limits
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("?", 0)
        self._buffer = bytearray()
        self._queue: deque[bytes | _TooLong] = deque()
        self._worker: object = None  # _WORKING or the Task of _work while it answers
        self._reading_paused = False
        self._stop_parsing = False
        self._eof = False
        self._closed = False
        self._writable: asyncio.Future | None = None
        self._last_activity = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    # -- asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        stats = self.shared.stats
        if len(self.shared.open) >= self.limits.max_tcp_connections:
            # Overload: refuse at once rather than queue without bound.
            stats.tcp_refused_overload += 1
            self._closed = True
            transport.abort()
            return
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer = (peer[0], peer[1])
        self.shared.open.add(self)
        stats.tcp_connections += 1
        stats.tcp_open = len(self.shared.open)
        high = self.limits.max_write_buffer
        self.transport.set_write_buffer_limits(high=high, low=high // 4)
        loop = asyncio.get_running_loop()
        self._last_activity = loop.time()
        self._idle_timer = loop.call_later(self.limits.tcp_idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self._closed or self._stop_parsing:
            return
        self._last_activity = asyncio.get_running_loop().time()
        self._buffer += data
        self._parse()

    def eof_received(self) -> bool:
        self._eof = True
        if self._worker is None and not self._queue:
            self._closed = True
            return False  # asyncio closes the transport
        return True  # keep the write half open until queued requests are answered

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.shared.open.discard(self)
        self.shared.stats.tcp_open = len(self.shared.open)
        self._idle_timer_cancel()
        self._queue.clear()
        self._buffer.clear()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _idle_timer_cancel(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _write_blocked(self) -> bool:
        return self._writable is not None and not self._writable.done()

    # -- framing -------------------------------------------------------------------------

    def _parse(self) -> None:
        """Move complete records from the buffer to the queue, at most as many as the queue
        may hold; the rest waits in the buffer (reading is paused meanwhile), so the buffer is
        bounded by one socket read plus one record."""
        limit = self.limits.max_pending_per_connection
        while len(self._buffer) >= 4 and len(self._queue) < limit and not self._stop_parsing:
            length = int.from_bytes(self._buffer[:4], "big")
            if length & LENGTH_RESERVED_BIT or length > self.limits.max_request_bytes:
                # RFC 4120 §7.2.2: KRB_ERR_FIELD_TOOLONG, then close the stream.
                self._stop_parsing = True
                self._buffer.clear()
                self._enqueue(_TooLong(length))
                break
            if len(self._buffer) < 4 + length:
                break  # partial read: wait for the rest
            message = bytes(self._buffer[4 : 4 + length])
            del self._buffer[: 4 + length]
            self.shared.stats.tcp_requests += 1
            self._enqueue(message)
        self._flow_control()

    def _flow_control(self) -> None:
        """Read from the socket only while the queue has room."""
        if self._closed or self.transport is None:
            return
        # After FIELD_TOOLONG we keep reading (and discard) so that closing does not reset
        # the connection over unread bytes before the error reaches the client.
        full = len(self._queue) >= self.limits.max_pending_per_connection
        if full and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        elif not full and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()

    def _enqueue(self, item: bytes | _TooLong) -> None:
        self._queue.append(item)
        if self._worker is None:
            # Started here, as UDP datagrams are: a request the core answers without waiting
            # is answered within this callback (no Task, no extra loop iteration).
            self._worker = _WORKING
            done, task = start_eagerly(self._work())
            if not done:
                self._worker = task

    # -- answering -------------------------------------------------------------------------

    async def _work(self) -> None:
        try:
            while self._queue and not self._closed:
                item = self._queue.popleft()
                self._parse()  # records left in the buffer move up; reading resumes if room
                if isinstance(item, _TooLong):
                    self.shared.stats.tcp_toolong += 1
                    # MIT: "TCP client 127.0.0.1.46082 wants 2147483904 bytes, cap is 1048572"
                    log.error(
                        "TCP client %s.%d wants %d bytes, cap is %d",
                        self.peer[0], self.peer[1], item.length, self.limits.max_request_bytes,
                    )
                    self._send(field_toolong_error(self.shared.realm, time.time()))
                    self.close()
                    return
                reply = await _call_handler(
                    self.shared.handler, self.shared.stats, item, self.peer, "tcp"
                )
                if self._closed:
                    return
                if reply is None:
                    # The core chose silence; over TCP the client would wait for nothing.
                    self.close()
                    return
                self._send(reply)
                self.shared.stats.tcp_replies += 1
                if self._writable is not None and not self._writable.done():
                    await self._writable  # a reader that does not read stops our answering
        finally:
            self._worker = None
        if self._eof and not self._closed:
            self.close()
        elif not self._closed:
            self._last_activity = asyncio.get_running_loop().time()

    def _send(self, message: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(message))

    def _check_idle(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        idle_for = loop.time() - self._last_activity
        # A request in progress keeps the connection; a reply stuck behind a peer that does
        # not read does not.
        busy = self._worker is not None and not self._write_blocked()
        if not busy and idle_for >= self.limits.tcp_idle_timeout:
            self.shared.stats.tcp_idle_closed += 1
            if self._write_blocked():
                self.abort()  # flushing to a peer that does not read would never end
            else:
                self.close()
            return
        wait = max(self.limits.tcp_idle_timeout - idle_for, 0.05)
        self._idle_timer = loop.call_later(wait, self._check_idle)

    def close(self) -> None:
        """Close after flushing what was written (transport.close flushes its buffer); a peer
        that does not read the rest within the idle timeout gets the connection aborted."""
        self._closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
            self._idle_timer_cancel()
            self._idle_timer = asyncio.get_running_loop().call_later(
                self.limits.tcp_idle_timeout, self.abort
            )

    def abort(self) -> None:
        """Drop the connection at once, unsent bytes included."""
        self._closed = True
        if self.transport is not None and self in self.shared.open:
            self.transport.abort()


