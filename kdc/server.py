"""A running front-end: realm policy + key service + KDC core + UDP/TCP listeners.

``run_frontend(config)`` binds the listen addresses, then serves them in this process or, with
``workers > 1``, in that many forked worker processes. Worker 0 serves the sockets the parent
bound; the others bind their own sockets to the same addresses with SO_REUSEPORT, so the kernel
spreads datagrams and connections over the workers (MIT's ``krb5kdc -w N`` shares one socket
instead). SIGTERM or SIGINT stops everything cleanly.

With ``[metrics] listen = "host:port"`` each worker serves Prometheus text at
``http://host:port/metrics`` (``kdc.metrics.KdcMetrics``: requests by type/status/outcome,
latency histograms, lookaside hits, transport counters). Every worker process has its own
registry, so worker i listens on port + i (port 0: each its own free port); the parent binds
these sockets up front and lists them, in worker order, under "metrics" in the ready file.
A scraper sums the workers.

Logging follows MIT krb5kdc's file format, one line per event::

    Nov 27 07:51:16 host mpckdc[1234](info): AS_REQ (2 etypes {18 17}) 127.0.0.1: ISSUE: ...
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kdc.config import FrontEndConfig, ListenAddress
from kdc.transport import TcpConnections, TransportStats, UdpKdcProtocol

log = logging.getLogger("mpckdc.server")

_MIT_LEVELS = {
    "DEBUG": "debug",
    "INFO": "info",
    "WARNING": "warning",
    "ERROR": "err",
    "CRITICAL": "crit",
}


class MitLogFormatter(logging.Formatter):
    """``Mon DD HH:MM:SS host program[pid](level): message`` as krb5kdc writes its log file."""

    def __init__(self, program: str = "mpckdc") -> None:
        super().__init__()
        self.program = program
        self.host = socket.gethostname()
        self._stamp_second = -1  # the time stamp only changes once a second: reuse it
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._stamp_second:
            self._stamp = time.strftime("%b %d %H:%M:%S", time.localtime(second))
            self._stamp_second = second
        level = _MIT_LEVELS.get(record.levelname, record.levelname.lower())
        line = (f"{self._stamp} {self.host} {self.program}[{record.process}]({level}): "
                f"{record.getMessage()}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class AppendFileHandler(logging.Handler):
    """Writes each formatted record to a file with one unbuffered ``write(2)`` (O_APPEND).

    What ``logging.FileHandler`` does per record (a text-layer write, then a flush under a
    second lock acquisition) in one system call; the line is on disk before the handler
    returns, as MIT krb5kdc flushes every log line.
    """

    terminator = "\n"

    def __init__(self, path: Path, encoding: str = "utf-8") -> None:
        super().__init__()
        self.baseFilename = os.fspath(path)
        self.encoding = encoding
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fd = self._fd
            if fd is None:
                raise ValueError("log file closed")
            os.write(fd, (self.format(record) + self.terminator).encode(self.encoding, "replace"))
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        finally:
            self.release()
        super().close()


def setup_logging(log_file: Path | None, level: str = "info") -> None:
    """Send the ``mpckdc`` loggers to ``log_file`` (or standard error) in MIT's line format."""
    root = logging.getLogger("mpckdc")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = AppendFileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MitLogFormatter())
    # The MIT line format shows the process id but no thread or process names: do not collect
    # them for every record (the logging HOWTO's "Optimization" settings).
    logging.logThreads = False
    logging.logMultiprocessing = False
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


class AuditLog:
    """Appends one JSON object per request (the core's structured audit event) to a file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One unbuffered append per event: each line reaches the file before the reply is
        # sent, with one write(2) and no text-layer buffering in between.
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        # One encoder for every event (json.dumps with options builds a new one per call).
        # Events are flat dicts of names, numbers and lists of numbers: no cycle check needed.
        self._encode = json.JSONEncoder(default=str, sort_keys=True, ensure_ascii=True,
                                        check_circular=False).encode

    def __call__(self, event: dict) -> None:
        try:
            if self._fd is None:
                raise ValueError("audit log closed")
            os.write(self._fd, (self._encode(event) + "\n").encode("ascii"))
        except (OSError, ValueError):
            log.warning("audit event not written")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def build_key_service(config: FrontEndConfig):
    """The key service named in [keyservice]: the MPC one (the product), or the reference
    one only when the test harness allows it (kdc.config.reference_allowed)."""
    from kdc.config import ConfigError, reference_allowed

    ks = config.keyservice
    if ks.kind == "mpc":
        from kdc.keyservice.mpc import MpcKeyService

        try:
            return MpcKeyService(ks.client_config, config.realm_name, timeout=ks.timeout)
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"[keyservice] client_config {ks.client_config}: unusable ({exc})"
            ) from None
    if ks.kind == "reference" and reference_allowed():
        from kdc.keyservice.reference import ReferenceKeyService

        return ReferenceKeyService.load(ks.database)
    raise ConfigError(f"key service {ks.kind!r} is not available")


def build_kdc(config: FrontEndConfig, audit: Callable[[dict], None] | None = None):
    """The sans-IO core for this configuration."""
    from kdc.core import Kdc

    kwargs = {}
    if audit is not None:
        kwargs["audit"] = audit
    return Kdc(config.policy(), build_key_service(config), **kwargs)


# -- sockets -----------------------------------------------------------------------------


@dataclass
class BoundSocket:
    kind: str  # "udp" or "tcp"
    address: ListenAddress  # as bound (port 0 resolved)
    sock: socket.socket

    def rebind(self, reuse_port: bool, backlog: int) -> BoundSocket:
        """A new socket on the same address (for another SO_REUSEPORT worker)."""
        return BoundSocket(self.kind, self.address, _bind(self.kind, self.address, reuse_port, backlog))


UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


def _family(host: str) -> socket.AddressFamily:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    return infos[0][0]


def _bind(kind: str, address: ListenAddress, reuse_port: bool, backlog: int) -> socket.socket:
    family = _family(address.host)
    sock = socket.socket(family, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    try:
        if kind == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            # One finished MPC job answers hundreds of clients at once, and their next
            # requests arrive as one burst: the default buffer (~208 KiB, a few hundred
            # datagrams) overflowed at 256 clients, and every dropped request cost its
            # client a 1 s retransmit timeout (the p99). The kernel caps this at rmem_max.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address.host, address.port))
        if kind == "tcp":
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bound(kind: str, sock: socket.socket) -> BoundSocket:
    host, port = sock.getsockname()[:2]
    return BoundSocket(kind, ListenAddress(host, port), sock)


def bind_sockets(config: FrontEndConfig, *, reuse_port: bool = False) -> list[BoundSocket]:
    """Bind every listen address. A host given with port 0 for both UDP and TCP gets one free
    port for both (clients name one ``kdc = host:port`` for the two transports)."""
    backlog = config.limits.tcp_backlog
    bound: list[BoundSocket] = []
    try:
        udp_pending = list(config.udp)
        for tcp_addr in config.tcp:
            twin = next(
                (u for u in udp_pending if u.port == 0 and u.host == tcp_addr.host), None
            ) if tcp_addr.port == 0 else None
            if twin is None:
                bound.append(_bound("tcp", _bind("tcp", tcp_addr, reuse_port, backlog)))
                continue
            udp_pending.remove(twin)
            for _attempt in range(64):  # bounded: a free pair is found at once in practice
                tcp_sock = _bind("tcp", tcp_addr, reuse_port, backlog)
                port = tcp_sock.getsockname()[1]
                try:
                    udp_sock = _bind("udp", ListenAddress(twin.host, port), reuse_port, backlog)
                except OSError as exc:
                    tcp_sock.close()
                    if exc.errno == errno.EADDRINUSE:
                        continue
                    raise
                bound.append(_bound("tcp", tcp_sock))
                bound.append(_bound("udp", udp_sock))
                break
            else:
                raise OSError(errno.EADDRINUSE, f"no free UDP+TCP port pair on {tcp_addr.host}")
        for udp_addr in udp_pending:
            bound.append(_bound("udp", _bind("udp", udp_addr, reuse_port, backlog)))
    except BaseException:
        for b in bound:
            b.sock.close()
        raise
    return bound


# -- serving -----------------------------------------------------------------------------


async def serve_sockets(
    config: FrontEndConfig,
    sockets: list[BoundSocket],
    stop: asyncio.Event,
    *,
    handler=None,
    stats: TransportStats | None = None,
    metrics_sock: socket.socket | None = None,
) -> None:
    """Serve already-bound sockets until ``stop`` is set (and /metrics on ``metrics_sock``)."""
    loop = asyncio.get_running_loop()
    audit = AuditLog(config.audit_file) if config.audit_file else None
    metrics = None
    if metrics_sock is not None:
        from kdc.metrics import KdcMetrics, Registry, tee

        registry = Registry()
        metrics = KdcMetrics(registry)
    if handler is None:
        sink = tee(audit, metrics.audit) if metrics is not None else audit
        handler = build_kdc(config, sink).handle
    stats = stats or TransportStats()
    if metrics is not None:
        metrics.bind_transport(stats)
    metrics_runner = None
    log.info("worker serving %s on the %s event loop", describe(sockets), type(loop).__module__)
    tcp_shared = TcpConnections(handler, config.realm_name, config.limits, stats)
    servers: list[asyncio.AbstractServer] = []
    datagram_transports: list[asyncio.BaseTransport] = []
    try:
        if metrics is not None:
            metrics_runner = await serve_metrics(registry, metrics_sock)
        for b in sockets:
            if b.kind == "udp":
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: UdpKdcProtocol(handler, config.limits, stats), sock=b.sock
                )
                datagram_transports.append(transport)
            else:
                server = await loop.create_server(
                    tcp_shared.protocol, sock=b.sock, backlog=config.limits.tcp_backlog
                )
                servers.append(server)
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        tcp_shared.close_all()
        for transport in datagram_transports:
            transport.close()
        for server in servers:
            await server.wait_closed()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        if audit is not None:
            audit.close()
        log.info(
            "stopped: %d UDP and %d TCP requests, %d UDP dropped under load, %d TCP refused",
            stats.udp_requests,
            stats.tcp_requests,
            stats.udp_dropped_overload,
            stats.tcp_refused_overload,
        )


async def serve_metrics(registry, sock: socket.socket):
    """Serve ``registry`` at GET /metrics on a bound listening socket; returns the aiohttp
    AppRunner (``await runner.cleanup()`` stops it)."""
    from aiohttp import web

    from kdc.metrics import make_app

    runner = web.AppRunner(make_app(registry), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def bind_metrics_sockets(config: FrontEndConfig, workers: int) -> list[socket.socket]:
    """One listening socket per worker for ``[metrics] listen`` (worker i: port + i, or any
    free port when the port is 0); none when metrics are not configured."""
    address = config.metrics_listen
    if address is None:
        return []
    bound: list[socket.socket] = []
    try:
        for index in range(workers):
            port = address.port + index if address.port else 0
            if port > 65535:
                raise OSError(errno.EINVAL, f"metrics port {port} out of range")
            bound.append(_bind("tcp", ListenAddress(address.host, port), False, 64))
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    return bound


def _event_loop_factory():
    if os.environ.get("MPCKDC_NO_UVLOOP") != "1":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_sockets_blocking(
    config: FrontEndConfig,
    sockets: list[BoundSocket],
    metrics_sock: socket.socket | None = None,
) -> None:
    """Serve in this process until SIGTERM/SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_sockets(config, sockets, stop, metrics_sock=metrics_sock)

    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        runner.run(main())


def write_ready_file(
    path: Path, sockets: list[BoundSocket], metrics: list[socket.socket] = ()
) -> None:
    """Tell whoever started us where we listen (port 0 resolved): JSON, written atomically.
    "metrics" lists the /metrics addresses, one per worker in worker order."""
    info = {
        "pid": os.getpid(),
        "udp": [str(b.address) for b in sockets if b.kind == "udp"],
        "tcp": [str(b.address) for b in sockets if b.kind == "tcp"],
        "metrics": [str(_bound("tcp", m).address) for m in metrics],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def describe(sockets: list[BoundSocket]) -> str:
    return ", ".join(f"{b.kind} {b.address}" for b in sockets)


def run_frontend(
    config: FrontEndConfig,
    *,
    workers: int | None = None,
    ready_file: Path | None = None,
    on_ready: Callable[[list[BoundSocket]], None] | None = None,
) -> int:
    """Bind, then serve until SIGTERM/SIGINT. Returns a process exit status."""
    workers = workers or config.workers
    setup_logging(config.log_file, config.log_level)
    # Build once up front so that a bad database or policy fails before we listen.
    build_kdc(config)
    try:
        sockets = bind_sockets(config, reuse_port=workers > 1)
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        print(f"mpckdc: cannot listen: {exc}", file=sys.stderr)
        return 1
    try:
        metrics_socks = bind_metrics_sockets(config, workers)
    except OSError as exc:
        for b in sockets:
            b.sock.close()
        log.error("cannot listen for metrics: %s", exc)
        print(f"mpckdc: cannot listen for metrics: {exc}", file=sys.stderr)
        return 1
    if metrics_socks:
        log.info("metrics at %s", ", ".join(
            f"http://{_bound('tcp', m).address}/metrics" for m in metrics_socks))
    log.info(
        "starting KDC for realm %s on %s (%d worker%s, key service %s)",
        config.realm_name,
        describe(sockets),
        workers,
        "" if workers == 1 else "s",
        config.keyservice.kind,
    )
    if ready_file is not None:
        write_ready_file(ready_file, sockets, metrics_socks)
    if on_ready is not None:
        on_ready(sockets)
    if workers == 1:
        try:
            run_sockets_blocking(config, sockets, metrics_socks[0] if metrics_socks else None)
        finally:
            for b in sockets:
                b.sock.close()
            for m in metrics_socks:
                m.close()
        return 0
    return _run_workers(config, sockets, workers, metrics_socks)


def _run_workers(
    config: FrontEndConfig,
    sockets: list[BoundSocket],
    workers: int,
    metrics_socks: list[socket.socket] = (),
) -> int:
    """Fork ``workers`` processes; the parent only supervises and forwards SIGTERM/SIGINT."""
    children: list[int] = []
    stopping = False

    def forward(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(workers):
            if stopping:
                break
            pid = os.fork()
            if pid == 0:
                status = 0
                try:
                    for s, handler in old.items():
                        signal.signal(s, handler)
                    mine = sockets if index == 0 else [
                        b.rebind(True, config.limits.tcp_backlog) for b in sockets
                    ]
                    if index != 0:
                        for b in sockets:
                            b.sock.close()
                    for other, m in enumerate(metrics_socks):
                        if other != index:
                            m.close()
                    setup_logging(config.log_file, config.log_level)
                    run_sockets_blocking(
                        config, mine, metrics_socks[index] if metrics_socks else None
                    )
                except BaseException:  # noqa: BLE001 - a worker reports and exits
                    log.exception("worker %d failed", index)
                    status = 1
                finally:
                    os._exit(status)
            children.append(pid)
        for b in sockets:
            b.sock.close()
        for m in metrics_socks:
            m.close()
        status = 0
        while children:
            pid, wstatus = os.wait()
            if pid in children:
                children.remove(pid)
                code = os.waitstatus_to_exitcode(wstatus)
                if not stopping:
                    log.error("worker %d exited with status %d; stopping the others", pid, code)
                    status = 1
                    forward(signal.SIGTERM, None)
        return status
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
