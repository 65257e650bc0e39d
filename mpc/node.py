"""One MPC node process: ``python -m mpc.node --config node-<i>.toml``.

Threads (see :mod:`mpc.links` for why blocking sockets and one owner per TLS object):

* peer listener: accepts TLS connections on ``port``; only the certificate ``node-<i+1>``
  is taken (as the incoming link), any other identity is closed;
* link dialer/watchdog and link reader (:class:`mpc.links.PeerLinks`);
* the engine (:class:`mpc.scheduler.RoundScheduler`) is a monitor, run by the link reader
  (each received frame) and the job server (each admitted job), plus a deadline sweeper;
* job server: an asyncio loop on ``client_port`` for front-end/admin clients (client
  certificates ``client-<role>`` only), speaking :mod:`mpc.jobs` frames. The same loop serves
  the admin API (:mod:`mpc.admin_api`, ``admin_port``) and /metrics (``metrics_port``).

Roles (by client certificate): ``client-admin`` may send every frame; ``client-frontend``
may only run reveal-mode JOBs of krb-enc/krb-dec/krb-pair circuits whose leading inputs
(0..2, 0..5 for a pair) are stored per-usage key material (Ke round keys, Ki inner, Ki
outer) and whose other inputs are public, LOOKUP records, BUILD those circuits, PING and
ABORT: it never receives a share and never writes one.

Shares and principal records live in a :class:`ShareStore` (``store`` in the config:
``sqlite:<path>`` for :class:`mpc.store.SqliteShareStore`, or ``memory``). Share bytes never
go to logs, exceptions or reprs. SIGTERM/SIGINT stop the node cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import signal
import socket
import sqlite3
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mpc import framing, jobs, registry, tls
from mpc import handles as hnames
from mpc.cluster import NodeConfig, load_node_config
from mpc.links import PeerLinks, tune_socket
from mpc.links import accept as accept_link
from mpc.scheduler import Batch, JobFailed, RoundScheduler

log = logging.getLogger("mpckdc.mpc.node")

HANDSHAKE_TIMEOUT = 3.0
JOB_ID_WINDOW_MS = 60_000  # < the scheduler's memory of finished batch ids (120 s)
JOB_COUNTER_BITS = 21  # job id = unix milliseconds << 21 | counter (see mpc.client)
MAX_WORDS = 1 << 16
MAX_BATCH_BYTES = 1 << 30  # wire shares of one batch (n_wires x 2 shares x words x 8 B)
MAX_HANDLE_LEN = 256
MAX_RANDOM_ITEMS = 1024
MAX_LOOKUP_NAMES = 1024
RANDOM_ID_TTL = 120.0  # > 2 x JOB_ID_WINDOW_MS: an id outside the window is refused anyway
FRONTEND_KINDS = frozenset({framing.KIND_JOB, framing.KIND_PING, framing.KIND_ABORT,
                            jobs.KIND_LOOKUP, jobs.KIND_BUILD})
MAX_BUILD_NAMES = 64


# -- share store ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredShare:
    """This node's two shares (x_i, x_{i+1}) of one secret, as packed bits (MSB first)."""

    n_bits: int
    own: bytes
    next: bytes

    def __repr__(self) -> str:
        return f"StoredShare(n_bits={self.n_bits}, <shares redacted>)"

    def bits(self) -> tuple[np.ndarray, np.ndarray]:
        own = np.unpackbits(np.frombuffer(self.own, np.uint8))[: self.n_bits]
        nxt = np.unpackbits(np.frombuffer(self.next, np.uint8))[: self.n_bits]
        return own, nxt


class ShareStore(Protocol):
    """Where a node keeps its shares, by handle."""

    def put(self, handle: str, share: StoredShare) -> None: ...
    def get(self, handle: str) -> StoredShare | None: ...
    def delete(self, handle: str) -> bool: ...
    def handles(self) -> list[str]: ...


class MemoryShareStore:
    """Thread-safe in-memory :class:`ShareStore`."""

    def __init__(self) -> None:
        self._data: dict[str, StoredShare] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryShareStore({len(self._data)} handles)"

    def put(self, handle: str, share: StoredShare) -> None:
        with self._lock:
            self._data[handle] = share

    def get(self, handle: str) -> StoredShare | None:
        with self._lock:
            return self._data.get(handle)

    def delete(self, handle: str) -> bool:
        with self._lock:
            return self._data.pop(handle, None) is not None

    def handles(self) -> list[str]:
        with self._lock:
            return sorted(self._data)


class BadJob(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _store_errors() -> tuple[type[BaseException], ...]:
    from mpc.store import StoreError

    return (StoreError, sqlite3.Error)


# -- the node --------------------------------------------------------------------------------

class Node:
    def __init__(self, config: NodeConfig, store: ShareStore | None = None) -> None:
        from mpc.prf import PartyRandomness

        self.config = config
        self.party = config.party
        self.store: ShareStore = store or MemoryShareStore()
        self._rand = PartyRandomness(config.prf_own, config.prf_next)
        self._server_ctx = tls.server_context(config.ca, config.cert, config.key)
        self._client_ctx = tls.client_context(config.ca, config.cert, config.key)
        self.scheduler = RoundScheduler(self.party, self._send_bundle, lambda: self.links.up,
                                        config.max_in_flight)
        self.links = PeerLinks(self.party, config.nodes, self._client_ctx,
                               self.scheduler.deliver, self.scheduler.link_down,
                               timers=self.scheduler, spin=config.spin_us * 1e-6)
        self._stop = threading.Event()
        self._peer_sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._job_thread: threading.Thread | None = None
        self._job_server_ready = threading.Event()
        self.received_share_indices: set[int] = set()
        self._started_ms = int(time.time() * 1000) - 1000  # 1 s grace for clock granularity
        self._random_ids: dict[int, float] = {}
        self._random_lock = threading.Lock()
        self._pending_builds = 0
        self._web_runners: list = []
        from kdc.metrics import MpcNodeMetrics

        self.metrics = MpcNodeMetrics(node=self.party)
        self.jobs_total = self.metrics.registry.counter(
            "mpckdc_mpc_jobs_total", "Client frames handled, by kind and outcome.",
            labels=("kind", "outcome"))
        self._rounds_seen = 0

    def __repr__(self) -> str:
        return f"Node(party={self.party})"

    def _send_bundle(self, sections: list) -> int:
        return self.links.send_bundle(sections)

    # -- lifecycle -------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the compiled kernels once before taking jobs, so the first job does not pay
        for it (it could otherwise run into a client's short timeout)."""
        from mpc.evaluator import PartyEvaluation

        circuit = registry.get("and-layer:64x1")
        ev = PartyEvaluation(circuit, self.party, self._rand, 0, 1)
        for k, ids in enumerate(circuit.input_wires):
            ev.set_input(k, np.zeros((len(ids), 2, 1), dtype=np.uint64))
        ev.start()  # batch id 0 is never accepted from clients (its time part is 0)

    def start(self) -> None:
        cfg = self.config
        registry.set_cache_dir(cfg.circuit_cache)
        self.warm_up()
        threading.Thread(target=self._load_cached_circuits, name="circuit-cache",
                         daemon=True).start()
        ps = socket.create_server((cfg.host, cfg.port), reuse_port=False, backlog=16)
        tune_socket(ps)
        self._peer_sock = ps
        threading.Thread(target=self._peer_accept_loop, name="peer-accept", daemon=True).start()
        self._job_thread = threading.Thread(target=self._job_server_main, name="jobs",
                                            daemon=True)
        self._job_thread.start()
        self._job_server_ready.wait(10)
        self.scheduler.start()
        self.links.start()
        log.info("node-%d: peers on %s:%d, jobs on %s:%d", self.party, cfg.host, cfg.port,
                 cfg.host, cfg.client_port)

    def stop(self) -> None:
        self._stop.set()
        self.links.stop()
        self.scheduler.stop()
        if self._peer_sock is not None:
            try:
                self._peer_sock.close()
            except OSError:
                pass
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._job_thread is not None:
            self._job_thread.join(timeout=3)
        close = getattr(self.store, "close", None)
        if close is not None:
            try:
                close()
            except _store_errors() as e:
                log.warning("closing the share store failed: %s", type(e).__name__)

    def _load_cached_circuits(self) -> None:
        """Load every circuit this node built before (same code digest) into memory, in the
        background, so a restarted node answers its first krb job without a build."""
        for name in registry.cached_names():
            if self._stop.is_set():
                return
            try:
                registry.get(name)
            except (registry.UnknownCircuit, OSError, ValueError) as e:
                log.warning("cached circuit %s not loaded: %s", name, type(e).__name__)

    # -- peer listener -----------------------------------------------------------------------
    def _peer_accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._peer_sock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            threading.Thread(target=self._peer_handshake, args=(raw,), daemon=True).start()

    def _peer_handshake(self, raw: socket.socket) -> None:
        expected = tls.node_name((self.party + 1) % 3)
        try:
            sock = accept_link(raw, self._server_ctx, HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError) as e:
            log.warning("peer handshake refused: %s", type(e).__name__)
            raw.close()
            return
        who = tls.peer_identity(sock)
        if who != expected:
            log.warning("peer connection from %r refused (expected %s)", who, expected)
            sock.close()
            return
        self.links.attach_incoming(sock)

    # -- job server ------------------------------------------------------------------------
    def _job_server_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(
            self._serve_client, self.config.host, self.config.client_port,
            ssl=self._server_ctx, ssl_handshake_timeout=HANDSHAKE_TIMEOUT, limit=1 << 20))
        try:
            loop.run_until_complete(self._start_web())
        except OSError as e:
            log.error("node-%d: cannot serve admin API / metrics: %s", self.party, e)
        self._job_server_ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            for runner in self._web_runners:
                try:
                    loop.run_until_complete(asyncio.wait_for(runner.cleanup(), 2))
                except (TimeoutError, OSError, RuntimeError):
                    pass
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _start_web(self) -> None:
        """The admin API (mutual TLS, ``client-admin`` only) and /metrics, if configured."""
        from aiohttp import web

        from kdc.metrics import make_handler
        from mpc.admin_api import make_admin_app

        cfg = self.config
        apps = []
        if cfg.admin_port:
            ctx = tls.server_context(cfg.ca, cfg.cert, cfg.key)
            apps.append((make_admin_app(self), cfg.admin_port, ctx))
        if cfg.metrics_port:
            render = make_handler(self.metrics.registry)

            async def metrics(request):
                self.refresh_metrics()
                return await render(request)

            app = web.Application()
            app.router.add_get("/metrics", metrics)
            apps.append((app, cfg.metrics_port, None))
        for app, port, ctx in apps:
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, cfg.host, port, ssl_context=ctx, backlog=16)
            await site.start()
            self._web_runners.append(runner)

    def refresh_metrics(self) -> None:
        """Bring the gauges and the rounds counter up to date from the engine (at scrape)."""
        m = self.metrics
        rounds = self.scheduler.rounds
        if rounds > self._rounds_seen:
            m.rounds.inc(rounds - self._rounds_seen)
            self._rounds_seen = rounds
        m.batches_in_flight.set(self.scheduler.in_flight)
        m.queue_depth.set(self._pending_builds)

    def role_of(self, who: str | None) -> str | None:
        """``frontend`` / ``admin`` (or another configured role) from a certificate name."""
        prefix = tls.client_name("")
        if who is None or not who.startswith(prefix):
            return None
        role = who[len(prefix):]
        return role if role in self.config.client_roles else None

    async def _serve_client(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        sslobj = writer.get_extra_info("ssl_object")
        who = tls.peer_identity(sslobj) if sslobj is not None else None
        allowed = {tls.client_name(r) for r in self.config.client_roles}
        if who not in allowed:
            log.warning("job connection from %r refused", who)
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _ClientConn(writer, who, self.role_of(who))
        tasks: set[asyncio.Task] = set()
        try:
            while not self._stop.is_set():
                head = await reader.readexactly(framing.HEADER.size)
                header = framing.unpack_header(head, framing.MAX_CLIENT_FRAME)
                body = await reader.readexactly(header.length)
                if header.kind in (framing.KIND_JOB, jobs.KIND_BUILD):
                    # A job may wait for a circuit build; the next frames must not wait for
                    # it (batches are labelled by id, so admission order does not matter).
                    task = asyncio.get_running_loop().create_task(
                        self._dispatch(conn, header, body))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    await self._dispatch(conn, header, body)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        except framing.FrameError as e:
            log.warning("bad frame from %s: %s", who, e)
        finally:
            conn.closed = True
            writer.close()

    async def _dispatch(self, conn: _ClientConn, header: framing.Header, body: bytes) -> None:
        kind, job_id = header.kind, header.batch_id
        outcome = "ok"
        try:
            if conn.role != "admin" and kind not in FRONTEND_KINDS:
                raise BadJob("FORBIDDEN", f"role {conn.role} may not send frame kind {kind}")
            if kind == framing.KIND_JOB:
                await self._start_job(conn, job_id, body)
                outcome = "accepted"
            elif kind == framing.KIND_STORE:
                count = await self._in_thread(self._store, body)
                conn.send(framing.KIND_STORED, job_id, {"count": count})
            elif kind == framing.KIND_DELETE:
                meta, _ = jobs.decode_body(body)
                names = meta.get("handles", [])
                if not isinstance(names, list) or not all(isinstance(h, str) for h in names):
                    raise BadJob("BAD_REQUEST", "DELETE needs a list of handles")
                count = await self._in_thread(lambda: sum(self.store.delete(h) for h in names))
                conn.send(framing.KIND_STORED, job_id, {"count": count})
            elif kind == jobs.KIND_RANDOM:
                count = await self._in_thread(self._random, job_id, body)
                conn.send(framing.KIND_STORED, job_id, {"count": count})
            elif kind == jobs.KIND_BUILD:
                count = await self._build_circuits(conn, body)
                conn.send(framing.KIND_STORED, job_id, {"count": count})
            elif kind == jobs.KIND_LOOKUP:
                records = await self._in_thread(self._lookup_records, body)
                conn.send(jobs.KIND_RECORDS, job_id, {"party": self.party, "records": records})
            elif kind == framing.KIND_ABORT:
                self.scheduler.abort(job_id, "ABORTED", "aborted by client")
            elif kind == framing.KIND_PING:
                conn.send(framing.KIND_PONG, job_id, {"party": self.party,
                                                      "links_up": self.links.up,
                                                      "in_flight": self.scheduler.in_flight,
                                                      "rounds": self.scheduler.rounds,
                                                      "sections": self.scheduler.sections_sent,
                                                      "compute_s":
                                                          self.scheduler.compute_seconds,
                                                      "busy_s": self.scheduler.busy_seconds,
                                                      "merge_waits":
                                                          self.scheduler.merge_waits,
                                                      "rtt_us": round(
                                                          self.scheduler.rtt * 1e6, 1),
                                                      "deferred_writes":
                                                          self.links.deferred_writes})
            elif kind == framing.KIND_DEBUG and self.config.debug:
                conn.send(framing.KIND_DIGESTS, job_id, self._digests())
            else:
                raise BadJob("BAD_REQUEST", f"unsupported frame kind {kind}")
        except BadJob as e:
            outcome = e.code.lower()
            conn.send(framing.KIND_ERROR, job_id, {"code": e.code, "message": str(e)})
        except jobs.BadMessage as e:
            outcome = "bad_request"
            conn.send(framing.KIND_ERROR, job_id, {"code": "BAD_REQUEST", "message": str(e)})
        except _store_errors() as e:
            outcome = "store_failed"
            log.error("node-%d: share store failed: %s: %s", self.party, type(e).__name__, e)
            conn.send(framing.KIND_ERROR, job_id, {"code": "STORE_FAILED",
                                                   "message": type(e).__name__})
        except Exception:  # never a traceback to the client, never a dead connection
            outcome = "internal"
            log.exception("node-%d: internal error on frame kind %d", self.party, kind)
            conn.send(framing.KIND_ERROR, job_id, {"code": "INTERNAL",
                                                   "message": "internal error"})
        if kind != framing.KIND_JOB or outcome != "accepted":
            self.jobs_total.labels(_KIND_NAMES.get(kind, "other"), outcome).inc()

    async def _in_thread(self, fn, *args):
        """Blocking store work (SQLite, fsync) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # -- store -----------------------------------------------------------------------------
    def _store(self, body: bytes) -> int:
        meta, blobs = jobs.decode_body(body)
        if meta.get("party") != self.party:
            raise BadJob("WRONG_PARTY", "shares were dealt for another node")
        items = meta.get("items")
        if not isinstance(items, list) or len(blobs) != 2 * len(items):
            raise BadJob("BAD_REQUEST", "STORE needs two share blobs per item")
        batch: dict[str, StoredShare] = {}
        for k, item in enumerate(items):
            if not isinstance(item, dict):
                raise BadJob("BAD_REQUEST", "bad STORE item")
            handle, n_bits = item.get("handle"), item.get("n_bits")
            if not isinstance(handle, str) or not 0 < len(handle) <= MAX_HANDLE_LEN:
                raise BadJob("BAD_REQUEST", "bad handle")
            if not isinstance(n_bits, int) or not 0 < n_bits <= 1 << 16:
                raise BadJob("BAD_REQUEST", "bad n_bits")
            nbytes = (n_bits + 7) // 8
            own, nxt = bytes(blobs[2 * k]), bytes(blobs[2 * k + 1])
            if len(own) != nbytes or len(nxt) != nbytes:
                raise BadJob("BAD_REQUEST", "share length does not match n_bits")
            batch[handle] = StoredShare(n_bits, own, nxt)
        self._put_many(batch)
        self.received_share_indices.update({self.party, (self.party + 1) % 3})
        return len(items)

    def _put_many(self, shares: dict[str, StoredShare]) -> None:
        put_many = getattr(self.store, "put_many", None)
        if put_many is not None:
            put_many(shares)
        else:
            for h, s in shares.items():
                self.store.put(h, s)

    # -- MPC key generation ----------------------------------------------------------------
    def _random(self, job_id: int, body: bytes) -> int:
        """RANDOM: store a fresh shared random secret under each handle, with no message.

        Araki et al. 2016 §2.1: share x_j = F(k_j, label) for the label (job id, item index,
        PURPOSE_RANDOM); this node holds k_i and k_{i+1}, so it gets (x_i, x_{i+1}) and the
        value x_0 ^ x_1 ^ x_2 exists nowhere. The job id must be fresh (as for JOBs) and is
        remembered, so a label never yields a second secret.
        """
        meta, _ = jobs.decode_body(body)
        items = meta.get("items")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_RANDOM_ITEMS:
            raise BadJob("BAD_REQUEST", f"RANDOM needs 1..{MAX_RANDOM_ITEMS} items")
        checked = []
        for item in items:
            handle = item.get("handle") if isinstance(item, dict) else None
            n_bits = item.get("n_bits") if isinstance(item, dict) else None
            if not isinstance(handle, str) or not 0 < len(handle) <= MAX_HANDLE_LEN:
                raise BadJob("BAD_REQUEST", "bad handle")
            if isinstance(n_bits, bool) or not isinstance(n_bits, int) or \
                    not 0 < n_bits <= 1 << 16:
                raise BadJob("BAD_REQUEST", "bad n_bits")
            checked.append((handle, n_bits))
        self._check_job_id(job_id)
        now = time.monotonic()
        with self._random_lock:
            for bid in [b for b, t in self._random_ids.items() if now - t > RANDOM_ID_TTL]:
                del self._random_ids[bid]
            if job_id in self._random_ids:
                raise BadJob("DUPLICATE", "RANDOM id already used")
            self._random_ids[job_id] = now
        shares = {}
        for k, (handle, n_bits) in enumerate(checked):
            words = self._rand.random_shares(job_id, k, n_bits, 1)[:, :, 0] & np.uint64(1)
            bits = words.astype(np.uint8)
            shares[handle] = StoredShare(n_bits, np.packbits(bits[:, 0]).tobytes(),
                                         np.packbits(bits[:, 1]).tobytes())
        self._put_many(shares)
        return len(shares)

    async def _build_circuits(self, conn: _ClientConn, body: bytes) -> int:
        """BUILD: have the named circuits in memory (built or loaded from the disk cache)."""
        meta, _ = jobs.decode_body(body)
        names = meta.get("circuits")
        if not isinstance(names, list) or not 1 <= len(names) <= MAX_BUILD_NAMES or \
                not all(isinstance(n, str) for n in names):
            raise BadJob("BAD_REQUEST", f"BUILD needs 1..{MAX_BUILD_NAMES} circuit names")
        for name in names:
            try:
                registry.canonical(name)
            except registry.UnknownCircuit as e:
                raise BadJob("UNKNOWN_CIRCUIT", f"no circuit named {name!r}") from e
            if conn.role != "admin" and not registry.is_krb_crypto(name):
                raise BadJob("FORBIDDEN",
                             "the frontend role may only build krb-enc/krb-dec/krb-pair")
        loop = asyncio.get_running_loop()
        for name in names:
            if not registry.in_memory(name):
                self._pending_builds += 1
                try:
                    await loop.run_in_executor(None, registry.get, name)
                finally:
                    self._pending_builds -= 1
        return len(names)

    # -- records ---------------------------------------------------------------------------
    def _lookup_records(self, body: bytes) -> dict:
        """LOOKUP: the committed public records (with ``version``) of the named principals;
        null for an unknown name. Records hold no key bytes (mpc.store.canonical_record)."""
        meta, _ = jobs.decode_body(body)
        names = meta.get("names")
        if not isinstance(names, list) or not 1 <= len(names) <= MAX_LOOKUP_NAMES or \
                not all(isinstance(n, str) for n in names):
            raise BadJob("BAD_REQUEST", f"LOOKUP needs 1..{MAX_LOOKUP_NAMES} names")
        principal = getattr(self.store, "principal", None)
        if principal is None:
            raise BadJob("NO_RECORDS", "this node's store keeps no principal records")
        return {n: principal(n) for n in names}

    def _digests(self) -> dict:
        out = {}
        i, j = self.party, (self.party + 1) % 3
        for h in self.store.handles():
            s = self.store.get(h)
            if s is None:
                continue
            out[h] = {"n_bits": s.n_bits, "shares": {
                str(i): hashlib.sha256(s.own).hexdigest(),
                str(j): hashlib.sha256(s.next).hexdigest()}}
        return {"party": self.party, "handles": out,
                "received_share_indices": sorted(self.received_share_indices)}

    # -- jobs ------------------------------------------------------------------------------
    async def _start_job(self, conn: _ClientConn, job_id: int, body: bytes) -> None:
        from mpc.evaluator import PartyEvaluation

        self._check_job_id(job_id)
        meta, blobs = jobs.decode_body(body)
        name = meta.get("circuit")
        words = meta.get("words")
        mode = meta.get("mode", "reveal")
        if not isinstance(name, str) or not isinstance(words, int) or not 1 <= words <= MAX_WORDS:
            raise BadJob("BAD_JOB", "job needs a circuit name and 1 <= words <= 65536")
        if mode not in jobs.MODES:
            raise BadJob("BAD_JOB", f"unknown output mode {mode!r}")
        try:
            registry.canonical(name)
        except registry.UnknownCircuit as e:
            raise BadJob("UNKNOWN_CIRCUIT", f"no circuit named {name!r}") from e
        specs = meta.get("inputs")
        if conn.role != "admin":
            self._check_frontend_job(name, mode, specs)
        # Built once per name and cached (memory, and disk: mpc.registry); off the event loop
        # so other clients keep going. Every job is acknowledged first (ACCEPTED, with
        # "building" when it must wait for a build): once all three nodes accepted it, the
        # client waits for compute (and builds) instead of failing the job at its short
        # deadline; a node that dies is still seen at once (connection loss, PEER_DOWN), a
        # hung one by the other nodes' job_timeout.
        building = not registry.in_memory(name)
        conn.send(jobs.KIND_ACCEPTED, job_id, {"party": self.party, "building": building})
        if not building:
            circuit = registry.get(name)
        else:
            self._pending_builds += 1
            try:
                circuit = await asyncio.get_running_loop().run_in_executor(None, registry.get,
                                                                           name)
            finally:
                self._pending_builds -= 1
        if circuit.n_wires * 16 * words > MAX_BATCH_BYTES:
            raise BadJob("TOO_BIG", f"{name} with {words} words exceeds the per-batch memory cap")
        if not isinstance(specs, list) or len(specs) != len(circuit.input_wires):
            raise BadJob("BAD_JOB", f"{name} takes {len(circuit.input_wires)} inputs")
        out_handles = meta.get("out_handles")
        if mode == "keep":
            if (not isinstance(out_handles, list)
                    or len(out_handles) != len(circuit.output_wires)
                    or not all(isinstance(x, list) and 1 <= len(x) <= 64 * words
                               and all(isinstance(h, str) and 0 < len(h) <= MAX_HANDLE_LEN
                                       for h in x) for x in out_handles)):
                raise BadJob("BAD_JOB", "keep mode needs out_handles per output")
        # Send buffers may be reused: PeerLinks.send_bundle encrypts them before returning.
        ev = PartyEvaluation(circuit, self.party, self._rand, job_id, words,
                             reuse_send_buffers=True)
        for k, spec in enumerate(specs):
            ev.set_input(k, self._input_shares(spec, blobs, len(circuit.input_wires[k]), words))

        started = time.monotonic()
        self.metrics.batch_size.observe(64 * words)

        def on_done(outputs, err: JobFailed | None) -> None:
            self.metrics.batch_seconds.observe(time.monotonic() - started)
            if err is not None:
                self.jobs_total.labels("job", err.code.lower()).inc()
                self._reply(conn, framing.KIND_ERROR, job_id,
                            {"code": err.code, "message": str(err)})
                return
            self.metrics.and_gates.inc(circuit.and_count * 64 * words)
            if mode == "keep":
                try:
                    self._keep(outputs, out_handles)
                except _store_errors() as e:
                    log.error("node-%d: storing job outputs failed: %s", self.party,
                              type(e).__name__)
                    self.jobs_total.labels("job", "store_failed").inc()
                    self._reply(conn, framing.KIND_ERROR, job_id,
                                {"code": "STORE_FAILED", "message": type(e).__name__})
                    return
                self.jobs_total.labels("job", "ok").inc()
                self._reply(conn, framing.KIND_RESULT, job_id,
                            {"party": self.party, "mode": mode,
                             "stored": sum(len(x) for x in out_handles)})
                return
            self.jobs_total.labels("job", "ok").inc()
            self._reply(conn, framing.KIND_RESULT, job_id,
                        {"party": self.party, "mode": mode,
                         "shapes": [list(o.shape) for o in outputs]}, outputs)

        self.scheduler.submit(Batch(
            batch_id=job_id, evaluation=ev, layer_sizes=circuit.layer_sizes, words=words,
            reveal_all=(mode == "reveal-all"), n_outputs=len(circuit.output_wires),
            on_done=on_done, deadline=time.monotonic() + self.config.job_timeout))

    @staticmethod
    def _check_frontend_job(name: str, mode: str, specs) -> None:
        """What the "frontend" role may run: reveal-mode krb-enc/krb-dec/krb-pair jobs whose
        inputs 0, 1, 2 (and 3, 4, 5 for a pair) are stored per-usage material of the
        matching kind (never a base key or any other secret) and whose other inputs are
        public."""
        if mode != "reveal" or not registry.is_krb_crypto(name):
            raise BadJob("FORBIDDEN", "the frontend role may only run reveal-mode krb-enc / "
                                      "krb-dec / krb-pair jobs")
        if not isinstance(specs, list):
            raise BadJob("BAD_JOB", "bad input specs")
        n_material = registry.krb_material_inputs(name)
        for k, spec in enumerate(specs):
            if not isinstance(spec, dict):
                raise BadJob("BAD_JOB", "bad input spec")
            if k >= n_material:
                if set(spec) != {"public"}:
                    raise BadJob("FORBIDDEN", f"input {k} must be public")
                continue
            names = [spec["handle"]] if set(spec) == {"handle"} else \
                spec.get("handles") if set(spec) == {"handles"} else None
            if not isinstance(names, list):
                raise BadJob("FORBIDDEN", f"input {k} must be stored key material")
            want = hnames.USAGE_KINDS[k % len(hnames.USAGE_KINDS)]
            # One check per distinct name (a batch names krbtgt's material once per instance).
            for h in {h if isinstance(h, str) else None for h in names}:
                if h is None or _handle_kind(h) != want:
                    raise BadJob("FORBIDDEN", f"input {k} must be {want} key material")

    def _check_job_id(self, job_id: int) -> None:
        """Refuse batch ids that could repeat a PRF label (Araki et al. 2016 §2.1: each
        zero-sharing must be fresh). The id's time part must be recent and not older than
        this process; recent ids are remembered by the scheduler (DUPLICATE)."""
        ms = job_id >> JOB_COUNTER_BITS
        now = int(time.time() * 1000)
        if not (max(self._started_ms, now - JOB_ID_WINDOW_MS) <= ms <= now + JOB_ID_WINDOW_MS):
            raise BadJob("BAD_JOB_ID", "job id is not a fresh timestamped id")

    def _input_shares(self, spec, blobs, n_bits: int, words: int) -> np.ndarray:
        if not isinstance(spec, dict):
            raise BadJob("BAD_JOB", "bad input spec")
        if "public" in spec:
            k = spec["public"]
            if not isinstance(k, int) or not 0 <= k < len(blobs):
                raise BadJob("BAD_JOB", "bad public blob index")
            raw = blobs[k]
            if raw.nbytes != n_bits * words * 8:
                raise BadJob("BAD_JOB", "public input has the wrong size")
            value = np.frombuffer(raw, dtype="<u8").astype(np.uint64, copy=False)
            return jobs.public_shares(value.reshape(n_bits, words), self.party)
        if "handle" in spec:
            s = self._lookup(spec["handle"], n_bits)
            own, nxt = s.bits()
            out = np.empty((n_bits, 2, words), dtype=np.uint64)
            out[:, 0, :] = jobs.broadcast_bits(own, words)
            out[:, 1, :] = jobs.broadcast_bits(nxt, words)
            return out
        if "handles" in spec:
            names = spec["handles"]
            if not isinstance(names, list) or not 1 <= len(names) <= 64 * words:
                raise BadJob("BAD_JOB", "bad handle list")
            own_m = np.empty((len(names), n_bits), np.uint8)
            nxt_m = np.empty((len(names), n_bits), np.uint8)
            seen: dict[str, int] = {}  # one store read per distinct handle (e.g. krbtgt)
            for t, h in enumerate(names):
                first = seen.get(h) if isinstance(h, str) else None
                if first is None:
                    own_m[t], nxt_m[t] = self._lookup(h, n_bits).bits()
                    if isinstance(h, str):
                        seen[h] = t
                else:
                    own_m[t], nxt_m[t] = own_m[first], nxt_m[first]
            out = np.empty((n_bits, 2, words), dtype=np.uint64)
            out[:, 0, :] = jobs.bitslice(own_m, words)
            out[:, 1, :] = jobs.bitslice(nxt_m, words)
            return out
        raise BadJob("BAD_JOB", "input spec needs public, handle or handles")

    def _lookup(self, handle, n_bits: int) -> StoredShare:
        s = self.store.get(handle) if isinstance(handle, str) else None
        if s is None:
            raise BadJob("UNKNOWN_HANDLE", "no shares stored under that handle")
        if s.n_bits != n_bits:
            raise BadJob("BAD_JOB", f"stored value has {s.n_bits} bits, circuit wants {n_bits}")
        return s

    def _keep(self, outputs: list[np.ndarray], out_handles: list[list[str]]) -> None:
        """Store keep-mode outputs, all in one store transaction."""
        batch: dict[str, StoredShare] = {}
        for o, names in zip(outputs, out_handles, strict=True):
            own = jobs.unbitslice(np.ascontiguousarray(o[:, 0, :]), len(names))
            nxt = jobs.unbitslice(np.ascontiguousarray(o[:, 1, :]), len(names))
            for t, h in enumerate(names):
                batch[h] = StoredShare(o.shape[0], np.packbits(own[t]).tobytes(),
                                       np.packbits(nxt[t]).tobytes())
        self._put_many(batch)

    def _reply(self, conn: _ClientConn, kind: int, job_id: int, meta: dict,
               blobs: list | tuple = ()) -> None:
        """Engine (any thread) -> job server loop (thread-safe)."""
        if self._loop is None or conn.closed:
            return
        bufs = jobs.encode_body(meta, blobs)
        try:
            self._loop.call_soon_threadsafe(conn.send_buffers, kind, job_id, bufs)
        except RuntimeError:  # loop closed during shutdown
            pass


_HANDLE_KINDS: dict[str, str | None] = {}
MAX_HANDLE_KINDS = 100_000


def _handle_kind(handle: str) -> str | None:
    """The kind of a key handle (``mpc.handles``), or None; memoised, since parsing and
    re-spelling a handle costs ~10 us and every frontend job names up to 3 x 512 of them
    (measured: 10 % of a node's samples under load, on the thread that feeds the engine).
    Handles are public names."""
    kind = _HANDLE_KINDS.get(handle, False)
    if kind is False:
        key = hnames.try_parse(handle)
        kind = None if key is None else key.kind
        if len(_HANDLE_KINDS) >= MAX_HANDLE_KINDS:
            _HANDLE_KINDS.clear()
        _HANDLE_KINDS[handle] = kind
    return kind


_KIND_NAMES = {framing.KIND_JOB: "job", framing.KIND_STORE: "store", framing.KIND_DELETE: "delete",
               framing.KIND_ABORT: "abort", framing.KIND_PING: "ping",
               framing.KIND_DEBUG: "debug", jobs.KIND_RANDOM: "random",
               jobs.KIND_LOOKUP: "lookup", jobs.KIND_BUILD: "build"}


class _ClientConn:
    def __init__(self, writer: asyncio.StreamWriter, who: str, role: str | None) -> None:
        self.writer = writer
        self.who = who
        self.role = role
        self.closed = False

    def send(self, kind: int, job_id: int, meta: dict, blobs: list | tuple = ()) -> None:
        self.send_buffers(kind, job_id, jobs.encode_body(meta, blobs))

    def send_buffers(self, kind: int, job_id: int, bufs: list) -> None:
        if self.closed:
            return
        self.writer.write(framing.pack_header(kind, jobs.body_length(bufs), batch_id=job_id))
        self.writer.writelines(bufs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mpc.node", description="Run one MPC node.")
    ap.add_argument("--config", required=True, help="node TOML file")
    ap.add_argument("--log-level", default=os.environ.get("MPCKDC_LOG", "INFO"))
    args = ap.parse_args(argv)
    # Before numba is imported: one thread per node (three parties share the cores; OpenMP
    # workers only oversubscribe, limits.md §1) and a persistent compile cache.
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_CACHE_DIR",
                          str(Path(__file__).resolve().parent.parent / ".numba_cache"))
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_node_config(args.config)
    except (OSError, ValueError, KeyError) as e:
        print(f"mpc.node: cannot load config {args.config}: {e}", file=sys.stderr)
        return 2
    sys.setswitchinterval(0.0005)
    from mpc.store import StoreError, open_store

    try:
        store = open_store(config.store, base=Path(args.config).parent)
    except (OSError, ValueError, StoreError, sqlite3.Error) as e:
        print(f"mpc.node: cannot open share store: {e}", file=sys.stderr)
        return 2
    node = Node(config, store=store)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        node.start()
    except OSError as e:
        print(f"mpc.node: cannot start: {e}", file=sys.stderr)
        return 1
    print(f"node-{config.party} ready", file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    log.info("node-%d stopping", config.party)
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
