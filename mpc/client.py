"""Job client for the front-end and the admin tool: talks to all three nodes over mTLS.

``AsyncMpcClient`` is asyncio-native (the KDC front-end is asyncio); ``MpcClient`` is the
blocking variant (its own event loop in a background thread), with the same methods.

* ``store_secret(handle, value)``: the client is the dealer: it splits the value into three
  random XOR shares and sends node i ONLY (x_i, x_{i+1}) (Araki et al. 2016 §2.1); no node
  ever receives the third share.
* ``run(circuit, inputs, words=..., mode="reveal")``: one job (= one bit-sliced batch) on all
  three nodes; each output share x_j comes from two nodes (j and j-1) and a mismatch raises
  :class:`InconsistentOutput` (SPEC "Threat model": a node returning inconsistent shares is
  detected).
* Failures are fast and bounded: a node that is down, or any job error, raises
  :class:`MpcUnavailable` within ``timeout`` seconds, and the other nodes are told to abort
  the batch. A down node is redialled on the next call, so service resumes by itself.
  Exception: once all three nodes have acknowledged a job (ACCEPTED: alive, job admitted,
  maybe still building its circuit), it may take up to ``build_timeout`` in all, for the
  compute and any first-use circuit build; a node that dies meanwhile still fails the job at
  once (its connection closes, or its peers report PEER_DOWN), and a hung node fails it
  within the other nodes' ``job_timeout``.
* ``random_secret(handle, n_bits)``: MPC key generation (RANDOM frames): the nodes make a
  shared random secret from their PRF keys; nobody, the client included, ever sees it.
* ``lookup(names)``: committed public principal records, from all three nodes.

The role (``admin`` by default, ``frontend`` for the KDC) picks the client certificate from
``client.toml``; the nodes allow the frontend role only krb-enc/krb-dec/krb-pair reveal
jobs, LOOKUP and PING.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpc import framing, jobs, tls
from mpc.blocking import BlockingProxy
from mpc.cluster import ClientConfig, load_client_config

CONNECT_TIMEOUT = 1.0
BUILD_TIMEOUT = 120.0  # a job whose circuit a node is still building (first use on that node)
JOB_COUNTER_BITS = 21
JOB_COUNTER_MASK = (1 << JOB_COUNTER_BITS) - 1


class MpcError(Exception):
    """Base of the client's errors. Messages never contain share bytes."""


class MpcUnavailable(MpcError):
    """The MPC cluster cannot answer now (node down, peer link down, busy, timeout)."""


class MpcJobError(MpcError):
    """The nodes refused the job itself (unknown handle or circuit, malformed input)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class InconsistentOutput(MpcError):
    """Two nodes returned different copies of the same output share."""


UNAVAILABLE_CODES = {"BUSY", "PEER_DOWN", "TIMEOUT", "ABORTED", "SHUTDOWN", "INTERNAL",
                     "PROTOCOL", "STORE_FAILED"}


@dataclass(frozen=True)
class Handle:
    """A stored secret, the same for every instance of the batch."""

    name: str


@dataclass(frozen=True)
class Handles:
    """One stored secret per instance."""

    names: tuple[str, ...]


def deal(bits: np.ndarray, rng=secrets.token_bytes) -> list[np.ndarray]:
    """Split a bit vector ``(n_bits,)`` into three XOR shares ``[x_0, x_1, x_2]`` (uint8 0/1)."""
    v = np.asarray(bits, dtype=np.uint8) & 1
    n = len(v)
    x0 = np.unpackbits(np.frombuffer(rng((n + 7) // 8), np.uint8))[:n]
    x1 = np.unpackbits(np.frombuffer(rng((n + 7) // 8), np.uint8))[:n]
    return [x0, x1, v ^ x0 ^ x1]


class _NodeConn:
    def __init__(self, party: int) -> None:
        self.party = party
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.pending: dict[int, asyncio.Future] = {}
        self.task: asyncio.Task | None = None
        self.lock = asyncio.Lock()

    @property
    def up(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()


class AsyncMpcClient:
    """Connections to the three nodes and the job protocol (:mod:`mpc.jobs`)."""

    def __init__(self, config: ClientConfig | str | Path, role: str = "admin", *,
                 timeout: float = 2.0, max_in_flight: int = 8,
                 ssl_context: ssl.SSLContext | None = None,
                 build_timeout: float = BUILD_TIMEOUT) -> None:
        self.config = config if isinstance(config, ClientConfig) else load_client_config(config)
        if ssl_context is None:
            cert, key = self.config.identities[role]
            ssl_context = tls.client_context(self.config.ca, cert, key)
        self._ctx = ssl_context
        self.timeout = timeout
        self.build_timeout = build_timeout
        self._accepted: dict[int, set[int]] = {}  # job id -> parties that acknowledged it
        self.max_in_flight = max_in_flight
        self._conns = [_NodeConn(i) for i in range(3)]
        self._counter = secrets.randbits(JOB_COUNTER_BITS)
        self._sem: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"AsyncMpcClient(nodes={[c.up for c in self._conns]})"

    # -- connections -----------------------------------------------------------------------
    async def _ensure(self, conn: _NodeConn) -> None:
        if conn.up:
            return
        async with conn.lock:
            if conn.up:
                return
            addr = self.config.nodes[conn.party]
            try:
                conn.reader, conn.writer = await asyncio.wait_for(asyncio.open_connection(
                    addr.host, addr.client_port, ssl=self._ctx,
                    server_hostname=tls.node_name(conn.party), limit=1 << 20),
                    CONNECT_TIMEOUT)
            except (TimeoutError, OSError, ssl.SSLError) as e:
                conn.writer = None
                raise MpcUnavailable(f"MPC node {conn.party} unreachable") from e
            conn.task = asyncio.get_running_loop().create_task(self._read_loop(conn))

    async def connect(self) -> None:
        """Connect to all three nodes now (otherwise done lazily); MpcUnavailable if not."""
        await asyncio.gather(*(self._ensure(c) for c in self._conns))

    async def _read_loop(self, conn: _NodeConn) -> None:
        reader = conn.reader
        err: Exception = MpcUnavailable(f"MPC node {conn.party} closed the connection")
        try:
            while True:
                head = await reader.readexactly(framing.HEADER.size)
                header = framing.unpack_header(head, framing.MAX_PEER_FRAME)
                body = await reader.readexactly(header.length)
                if header.kind == jobs.KIND_ACCEPTED:
                    acks = self._accepted.get(header.batch_id)
                    if acks is not None:
                        acks.add(conn.party)
                    continue
                fut = conn.pending.pop(header.batch_id, None)
                if fut is not None and not fut.done():
                    fut.set_result((header.kind, body))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            pass
        except framing.FrameError:
            err = MpcUnavailable(f"MPC node {conn.party} sent a malformed frame")
        except asyncio.CancelledError:
            err = MpcUnavailable("client closed")
        finally:
            if conn.writer is not None:
                conn.writer.close()
            conn.writer = None
            pending, conn.pending = conn.pending, {}
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(err)
                    fut.exception()  # retrieved: a job that already failed awaits no more

    async def close(self) -> None:
        for c in self._conns:
            if c.task is not None:
                c.task.cancel()
            if c.writer is not None:
                c.writer.close()
            c.writer = None

    def _send(self, conn: _NodeConn, kind: int, job_id: int, meta: dict,
              blobs: Sequence = ()) -> asyncio.Future:
        if not conn.up:
            raise MpcUnavailable(f"MPC node {conn.party} connection lost")
        bufs = jobs.encode_body(meta, blobs)
        fut = asyncio.get_running_loop().create_future()
        if kind != framing.KIND_ABORT:
            conn.pending[job_id] = fut
        conn.writer.write(framing.pack_header(kind, jobs.body_length(bufs), batch_id=job_id))
        conn.writer.writelines(bufs)
        return fut

    async def _request_all(self, kind: int, metas: list[dict], blobs: list[Sequence],
                           timeout: float | None = None) -> list[tuple[dict, list]]:
        """Send one frame to each node and wait for all three replies (or fail fast)."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_in_flight)
        timeout = self.timeout if timeout is None else timeout
        async with self._sem:
            await asyncio.wait_for(self.connect(), timeout)
            job_id = self._next_job_id()
            try:
                if kind == framing.KIND_JOB:
                    self._accepted[job_id] = set()
                futs = [self._send(c, kind, job_id, metas[c.party], blobs[c.party])
                        for c in self._conns]
                replies = await self._wait_replies(futs, job_id, timeout)
            except asyncio.CancelledError:  # the caller gave up (e.g. its own deadline)
                self._abort(job_id)
                raise
            except (TimeoutError, MpcError) as e:
                self._abort(job_id)
                if isinstance(e, asyncio.TimeoutError):
                    raise MpcUnavailable(f"MPC job timed out after {timeout:.1f} s") from None
                raise
            finally:
                self._accepted.pop(job_id, None)
            out = []
            for kind_r, body in replies:
                meta, bl = jobs.decode_body(body)
                if kind_r == framing.KIND_ERROR:
                    self._abort(job_id)
                    code = str(meta.get("code"))
                    msg = str(meta.get("message"))
                    if code in UNAVAILABLE_CODES:
                        raise MpcUnavailable(f"MPC node unavailable: {code}: {msg}")
                    raise MpcJobError(code, msg)
                out.append((meta, bl))
            return out

    async def _wait_replies(self, futs: list[asyncio.Future], job_id: int,
                            timeout: float) -> list:
        """All replies within ``timeout``; if by then all three nodes acknowledged the job,
        up to ``build_timeout`` in all. Errors and lost connections end it at once."""
        task = asyncio.ensure_future(_all_or_first_error(futs))
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done and len(self._accepted.get(job_id, ())) == 3:
                done, _ = await asyncio.wait({task},
                                             timeout=max(0.0, self.build_timeout - timeout))
            if not done:
                raise TimeoutError
            return task.result()
        finally:
            if not task.done():
                task.cancel()

    def _next_job_id(self) -> int:
        """A fresh batch id: milliseconds since the epoch << 21 | a per-client counter.

        The id labels every PRF stream of the batch, so it must never repeat (a repeated
        label would let a node cancel its neighbour's zero-sharing). Nodes refuse ids whose
        time part is not recent (mpc.node.JOB_ID_WINDOW) or older than their own start, and
        remember recent ids, so no node ever evaluates two batches under one label.
        """
        self._counter = (self._counter + 1) & JOB_COUNTER_MASK
        return (int(time.time() * 1000) << JOB_COUNTER_BITS) | self._counter

    def _abort(self, job_id: int) -> None:
        for c in self._conns:
            c.pending.pop(job_id, None)
            if c.up:
                try:
                    self._send(c, framing.KIND_ABORT, job_id, {})
                except (ConnectionError, RuntimeError):
                    pass

    # -- API -------------------------------------------------------------------------------
    async def ping(self) -> list[dict]:
        """Each node's status (``party``, ``links_up``, ``in_flight``)."""
        replies = await self._request_all(framing.KIND_PING, [{}] * 3, [()] * 3)
        return [m for m, _ in replies]

    async def wait_ready(self, timeout: float = 10.0, interval: float = 0.05) -> None:
        """Wait (bounded) until all three nodes answer and report their peer links up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                if all(m.get("links_up") for m in await self.ping()):
                    return
            except MpcError:
                pass
            if loop.time() > deadline:
                raise MpcUnavailable("MPC cluster not ready")
            await asyncio.sleep(interval)

    async def store_shares(self, items: list[tuple[str, list[np.ndarray]]]) -> None:
        """Send already dealt shares: ``[(handle, [x_0, x_1, x_2])]`` with 0/1 bit vectors.

        Node i receives x_i and x_{i+1} only.
        """
        metas, blobs = [], []
        for i in range(3):
            meta_items, node_blobs = [], []
            for handle, shares in items:
                meta_items.append({"handle": handle, "n_bits": int(len(shares[0]))})
                node_blobs.append(np.packbits(shares[i]).tobytes())
                node_blobs.append(np.packbits(shares[(i + 1) % 3]).tobytes())
            metas.append({"party": i, "items": meta_items})
            blobs.append(node_blobs)
        await self._request_all(framing.KIND_STORE, metas, blobs)

    async def store_secret(self, handle: str, value: bytes | np.ndarray) -> None:
        """Deal ``value`` (bytes, or a 0/1 bit vector) and store it under ``handle``."""
        bits = jobs.bytes_to_bits(value) if isinstance(value, bytes | bytearray) else value
        await self.store_shares([(handle, deal(bits))])

    async def store_secrets(self, values: dict[str, bytes]) -> None:
        await self.store_shares([(h, deal(jobs.bytes_to_bits(v))) for h, v in values.items()])

    async def random_secrets(self, items: list[tuple[str, int]]) -> None:
        """MPC key generation: store a fresh shared random secret of ``n_bits`` under each
        ``(handle, n_bits)``; no party, and not this client, ever learns it (RANDOM frame)."""
        meta = {"items": [{"handle": h, "n_bits": int(n)} for h, n in items]}
        await self._request_all(jobs.KIND_RANDOM, [meta] * 3, [()] * 3)

    async def random_secret(self, handle: str, n_bits: int) -> None:
        await self.random_secrets([(handle, n_bits)])

    async def build_circuits(self, names: list[str], timeout: float | None = None) -> None:
        """Have every node build (or load from its disk cache) these circuits now, so the
        first job that needs one does not wait for it (BUILD frame). ``timeout`` defaults to
        ``build_timeout``."""
        await self._request_all(jobs.KIND_BUILD, [{"circuits": list(names)}] * 3, [()] * 3,
                                self.build_timeout if timeout is None else timeout)

    async def lookup_all(self, names: list[str]) -> list[dict[str, dict | None]]:
        """Per node (0, 1, 2): ``{name: committed record with "version" or None}``."""
        replies = await self._request_all(jobs.KIND_LOOKUP, [{"names": list(names)}] * 3,
                                          [()] * 3)
        by_party = {int(m.get("party", -1)): m.get("records") for m, _ in replies}
        if sorted(by_party) != [0, 1, 2] or not all(isinstance(r, dict)
                                                    for r in by_party.values()):
            raise InconsistentOutput("LOOKUP replies do not come from nodes 0, 1 and 2")
        return [by_party[i] for i in range(3)]

    async def delete(self, handles: list[str]) -> None:
        await self._request_all(framing.KIND_DELETE, [{"handles": list(handles)}] * 3,
                                [()] * 3)

    async def debug_digests(self) -> list[dict]:
        """Per node: SHA-256 of every share it holds (nodes running with debug = true)."""
        replies = await self._request_all(framing.KIND_DEBUG, [{}] * 3, [()] * 3)
        return [m for m, _ in replies]

    async def run(self, circuit: str, inputs: Sequence, *, words: int = 1,
                  mode: str = "reveal", out_handles: list[list[str]] | None = None,
                  timeout: float | None = None) -> list[np.ndarray]:
        """Evaluate ``circuit`` on ``64*words`` instances; returns the revealed outputs.

        Each input is a :class:`Handle`, :class:`Handles`, a public bit-sliced array
        ``(n_bits, words)`` uint64, public ``bytes`` (the same for every instance) or a list
        of public ``bytes`` (one per instance). Outputs are bit-sliced ``(n_bits, words)``
        uint64 (``mpc.jobs.unpack_bytes_instances`` turns them into bytes); ``keep`` mode
        returns ``[]`` and stores the outputs under ``out_handles``.
        """
        specs, blobs = [], []
        for x in inputs:
            if isinstance(x, Handle):
                specs.append({"handle": x.name})
            elif isinstance(x, Handles):
                specs.append({"handles": list(x.names)})
            else:
                if isinstance(x, bytes | bytearray):
                    arr = jobs.broadcast_bits(jobs.bytes_to_bits(bytes(x)), words)
                elif isinstance(x, list):
                    arr = jobs.pack_bytes_instances(x, words)
                else:
                    arr = np.asarray(x)
                    if arr.ndim != 2 or arr.shape[1] != words or arr.dtype != np.uint64:
                        raise ValueError("public input arrays must be (n_bits, words) uint64")
                specs.append({"public": len(blobs)})
                blobs.append(np.ascontiguousarray(arr))
        meta = {"circuit": circuit, "words": words, "inputs": specs, "mode": mode}
        if out_handles is not None:
            meta["out_handles"] = out_handles
        replies = await self._request_all(framing.KIND_JOB, [meta] * 3, [blobs] * 3, timeout)
        if mode == "keep":
            return []
        return _combine(replies, mode, words)


async def _all_or_first_error(futs: list[asyncio.Future]) -> list:
    """Like gather, but an ERROR reply from any node ends the wait at once."""
    pending = set(futs)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for f in done:
            exc = f.exception()
            if exc is not None:
                raise exc
            if f.result()[0] == framing.KIND_ERROR:
                return [f.result()]
    return [f.result() for f in futs]


def _combine(replies: list[tuple[dict, list]], mode: str, words: int) -> list[np.ndarray]:
    by_party = {int(m["party"]): (m, bl) for m, bl in replies}
    if sorted(by_party) != [0, 1, 2]:
        raise InconsistentOutput("replies do not come from nodes 0, 1 and 2")
    n_out = len(by_party[0][1])
    outs = []
    for k in range(n_out):
        arrays = []
        for i in range(3):
            m, bl = by_party[i]
            shape = tuple(m["shapes"][k])
            arrays.append(np.frombuffer(bl[k], dtype="<u8").astype(np.uint64, copy=False)
                          .reshape(shape))
        if mode == "reveal-all":
            if not (np.array_equal(arrays[0], arrays[1]) and np.array_equal(arrays[1], arrays[2])):
                raise InconsistentOutput(f"nodes revealed different values for output {k}")
            outs.append(arrays[0])
            continue
        # Node j sends (x_j, x_{j+1}); x_{j+1} must equal node j+1's first share.
        for j in range(3):
            if not np.array_equal(arrays[j][:, 1, :], arrays[(j + 1) % 3][:, 0, :]):
                raise InconsistentOutput(f"output {k}: nodes {j} and {(j + 1) % 3} disagree "
                                         f"on share {(j + 1) % 3}")
        outs.append(arrays[0][:, 0, :] ^ arrays[1][:, 0, :] ^ arrays[2][:, 0, :])
    return outs


class MpcClient(BlockingProxy):
    """Blocking wrapper of :class:`AsyncMpcClient` (own event loop in a daemon thread)."""

    def __init__(self, config: ClientConfig | str | Path, role: str = "admin",
                 **kwargs) -> None:
        super().__init__(lambda: _make_async(config, role, kwargs), "mpc-client")


async def _make_async(config, role, kwargs) -> AsyncMpcClient:
    return AsyncMpcClient(config, role, **kwargs)
