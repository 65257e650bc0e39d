"""The MPC key service: every long-term key exists only as shares on three MPC nodes.

The front-end holds no key, no derived key and no share. It asks the nodes for

* principal records (public metadata) with the nodes' LOOKUP, cached for ``cache_ttl``
  seconds (a key change shows up within that time; an unknown-handle error drops the entry
  at once);
* RFC 3961 §5.3 encryption and decryption under a referenced key, evaluated by the three
  nodes on their shares of the per-usage material precomputed at registration (Ke round keys,
  Ki HMAC states; :mod:`mpc.handles`). Only the ciphertext, or the accept bit and the
  ok-masked plaintext, are revealed to us (SPEC "Threat model": the KDC is no oracle).

Batching (SPEC "The MPC engine": batch width is throughput): calls that arrive while a job
of the same lane (decryptions: etype and size class; encryptions: etype and
``mpc.circuits.kerberos.encrypt_family``) is in flight wait and go out together as the next
job, one bit-sliced instance each, so concurrency becomes width instead of more
rounds. At most ``jobs`` (default 2) jobs of a lane run at once: a second job cuts the time
a request waits for the next one, but every job in flight adds a batch layer per frame and
round on every node, and node CPU per batch layer, mostly fixed, is what limits throughput
under load (``bench_mpc_realm`` at 256 clients). Decryptions of one SHA-1 block (a login's
PA-ENC-TIMESTAMP) run beside the reply's encryption, which is more than twice as deep, so
their lanes keep ``short_decrypt_jobs`` (default 1) in flight and form wider batches at no
cost in latency; a TGT's decryption is on its TGS request's critical path and keeps two.
While no job at all is in flight (one login at a time), a decryption and encryptions
issued together go out as one ``krb-pair`` job (:meth:`MpcKeyService._partner`).

Failure (SPEC "Reliability"): a node that is down, an error frame, inconsistent output
shares or no answer within ``timeout`` seconds raise :class:`KeyServiceUnavailable`, which
the core turns into KDC_ERR_SVC_UNAVAILABLE, so clients fail over instead of hanging.

Two deadlines: ``timeout`` (liveness: every node must acknowledge a job within it; a node
that dies fails its jobs at once through the lost connection or its peers' PEER_DOWN) and
``run_timeout`` (load: how long an acknowledged job may compute, and how long a request may
wait in its lane behind such jobs). Under load a login's MPC work can outlast ``timeout``
while every node is alive and busy; answering it late is better than answering
SVC_UNAVAILABLE, which MIT clients discard (they keep waiting and resend on their own back-off
schedule of 1, 2, 4, 8 s: p99 of 15 s in ``bench_mpc_realm`` at 256 clients). Retransmits of
a request in progress wait for its answer (``kdc.lookaside``), so late answers cost no
extra MPC work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kdc.keyservice.base import (
    IntegrityFailure,
    KeyRef,
    KeyServiceError,
    KeyServiceUnavailable,
    PrincipalEntry,
    UnknownKey,
)
from mpc.circuits.kerberos import encrypt_family, size_class

log = logging.getLogger("mpckdc.keyservice")

CONFOUNDER_BYTES = 16  # RFC 3962 §6: one AES block
MAC_BYTES = 12  # RFC 3962 §6: HMAC-SHA1-96
# Key usages the per-key precomputation covers (mpc/circuits/kerberos.py, "krb-pre"): every
# use of a long-term key by a KDC: PA-ENC-TIMESTAMP (1), tickets (2), AS-REP enc-part (3).
PRECOMPUTED_USAGES = frozenset({1, 2, 3})
DEFAULT_TIMEOUT = 1.8  # seconds; SPEC: requests fail with SVC_UNAVAILABLE within 2 s
DEFAULT_RUN_TIMEOUT = 10.0  # seconds an acknowledged job (or a request queued behind one) may take
DEFAULT_CACHE_TTL = 1.5  # seconds a principal record is reused
MAX_BATCH = 512  # instances per job (8 words of 64)
MAX_MESSAGE_BYTES = 4096  # as mpc.circuits.kerberos.MAX_MESSAGE_BYTES: larger is refused
MAX_LOOKUP_NAMES = 1024  # per LOOKUP frame (mpc.node.MAX_LOOKUP_NAMES)
MAX_CACHED_RECORDS = 100_000
# The last free job slot of a busy lane waits this share of the lane's job time (at most
# LAST_SLOT_GATHER_MAX seconds) for requests to gather (see MpcKeyService._flush).
LAST_SLOT_GATHER = 1 / 8
LAST_SLOT_GATHER_MAX = 0.1


@dataclass(slots=True)
class _Pending:
    """One caller's request waiting in a batch; ``data`` is public (conf|plaintext or cipher)."""

    op: str  # "enc" or "dec"
    ref: KeyRef
    usage: int
    data: bytes
    future: asyncio.Future

    def __repr__(self) -> str:
        return f"_Pending({self.ref.principal}, kvno={self.ref.kvno}, usage={self.usage})"


@dataclass(slots=True)
class _Lane:
    """Requests of one class (op, etype, size): the queue and the number of jobs in flight."""

    queue: list[_Pending] = field(default_factory=list)
    in_flight: int = 0
    flush: asyncio.Handle | None = None  # the pending _flush call (soon, or after a gather)
    gathered: bool = False


class MpcKeyService:
    """KeyService over three MPC nodes (``client_config``: the cluster's ``client.toml``)."""

    def __init__(
        self,
        client_config: str | os.PathLike | None,
        realm: str,
        *,
        client=None,
        timeout: float = DEFAULT_TIMEOUT,
        run_timeout: float = DEFAULT_RUN_TIMEOUT,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        jobs: int = 2,
        short_decrypt_jobs: int = 1,
        max_batch: int = MAX_BATCH,
        rng: Callable[[int], bytes] = os.urandom,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if client is None:
            if client_config is None:
                raise ValueError("MpcKeyService needs a client config path or a client")
            from mpc.client import AsyncMpcClient

            client = AsyncMpcClient(Path(client_config), "frontend", timeout=timeout,
                                    max_in_flight=64,
                                    build_timeout=max(timeout, run_timeout))
        self._client = client
        self.realm = realm
        self.timeout = timeout
        self.run_timeout = max(timeout, run_timeout)
        self.cache_ttl = cache_ttl
        self.jobs = max(1, jobs)
        self.short_decrypt_jobs = max(1, short_decrypt_jobs)
        self.max_batch = max(1, max_batch)
        self._rng = rng
        self._clock = clock
        self._records: dict[str, tuple[float, PrincipalEntry | None]] = {}
        self._lookup_waiting: dict[str, asyncio.Future] = {}
        self._lookup_busy = False
        self._lanes: dict[tuple, _Lane] = {}  # (op, etype, size class or family)
        self._job_seconds: dict[tuple, float] = {}  # lane -> moving average of its job times
        self.stats = {"jobs": 0, "instances": 0, "unavailable": 0, "max_width": 0,
                      "integrity_failures": 0}

    def __repr__(self) -> str:
        return f"MpcKeyService(realm={self.realm!r})"

    async def close(self) -> None:
        await self._client.close()

    # -- lookup --------------------------------------------------------------------------------

    async def lookup(self, principal: str) -> PrincipalEntry | None:
        now = self._clock()
        hit = self._records.get(principal)
        if hit is not None and hit[0] > now:
            return hit[1]
        # Names asked for while a LOOKUP is in flight go out together in the next one.
        fut = self._lookup_waiting.get(principal)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._lookup_waiting[principal] = fut
            if not self._lookup_busy:
                self._start_lookup()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout + 0.1)
        except TimeoutError:
            self.stats["unavailable"] += 1
            raise KeyServiceUnavailable("principal lookup timed out") from None

    def _start_lookup(self) -> None:
        names = list(self._lookup_waiting)[:MAX_LOOKUP_NAMES]
        futures = {n: self._lookup_waiting.pop(n) for n in names}
        self._lookup_busy = True
        task = asyncio.get_running_loop().create_task(self._lookup_job(futures))

        def done(_task: asyncio.Task) -> None:
            self._lookup_busy = False
            if self._lookup_waiting:
                self._start_lookup()

        task.add_done_callback(done)

    async def _lookup_job(self, futures: dict[str, asyncio.Future]) -> None:
        from mpc.client import MpcError
        from mpc.store import entry_from_record

        try:
            per_node = await asyncio.wait_for(self._client.lookup_all(list(futures)),
                                              self.timeout)
        except (TimeoutError, MpcError, OSError) as exc:
            self.stats["unavailable"] += 1
            err = KeyServiceUnavailable(f"principal lookup failed: {type(exc).__name__}")
            for f in futures.values():
                _settle(f, exc=err)
            return
        except BaseException as exc:
            for f in futures.values():
                _settle(f, exc=KeyServiceUnavailable(f"lookup failed: {type(exc).__name__}"))
            raise
        expiry = self._clock() + self.cache_ttl
        if len(self._records) > MAX_CACHED_RECORDS:
            self._records.clear()
        for name, f in futures.items():
            records = [node.get(name) for node in per_node]
            versions = {None if r is None else r.get("version") for r in records}
            if len(versions) != 1:
                # A change is being committed right now (two-phase): not cached, retried by
                # the client (RFC 4120 §7.2.1: SVC_UNAVAILABLE -> try again / next KDC).
                _settle(f, exc=KeyServiceUnavailable(f"nodes disagree on {name} (change in "
                                                     "progress)"))
                continue
            try:
                entry = None if records[0] is None else entry_from_record(records[0])
            except (KeyError, TypeError, ValueError):
                _settle(f, exc=KeyServiceUnavailable("malformed principal record"))
                continue
            self._records[name] = (expiry, entry)
            _settle(f, result=entry)

    def forget(self, principal: str) -> None:
        """Drop the cached record of ``principal`` (its keys changed under us)."""
        self._records.pop(principal, None)

    async def _check_ref(self, ref: KeyRef, usage: int) -> None:
        """UnknownKey unless the committed record lists (kvno, etype) for this principal."""
        if usage not in PRECOMPUTED_USAGES:
            raise UnknownKey(f"no precomputed material for key usage {usage}")
        entry = await self.lookup(ref.principal)
        if entry is not None:
            if entry.kvno == ref.kvno and any(k.etype == ref.etype for k in entry.keys):
                return
            for k in entry.extra.get("old_keys", ()):
                if k.kvno == ref.kvno and k.etype == ref.etype:
                    return
        raise UnknownKey(f"no key for {ref.principal} kvno {ref.kvno} etype {ref.etype}")

    # -- encrypt / decrypt -------------------------------------------------------------------

    async def encrypt(
        self, ref: KeyRef, usage: int, plaintext: bytes, confounder: bytes | None = None
    ) -> bytes:
        if confounder is None:
            confounder = self._rng(CONFOUNDER_BYTES)
        if len(confounder) != CONFOUNDER_BYTES:
            raise ValueError("the confounder is one 16-byte block (RFC 3962 §6)")
        data = bytes(confounder) + bytes(plaintext)
        if len(data) > MAX_MESSAGE_BYTES:
            raise KeyServiceError(f"message of {len(plaintext)} bytes is too long to encrypt")
        await self._check_ref(ref, usage)
        return await self._submit("enc", ref, usage, data)

    async def decrypt(self, ref: KeyRef, usage: int, ciphertext: bytes) -> bytes:
        n = len(ciphertext)
        if not CONFOUNDER_BYTES + MAC_BYTES <= n <= MAX_MESSAGE_BYTES + MAC_BYTES:
            # Too short cannot verify (RFC 3961 §5.3); too long is refused before any MPC work.
            raise IntegrityFailure(f"ciphertext of {n} bytes cannot verify")
        await self._check_ref(ref, usage)
        ok, plain = await self._submit("dec", ref, usage, bytes(ciphertext))
        if not ok:
            self.stats["integrity_failures"] += 1
            raise IntegrityFailure(
                f"integrity check failed for {ref.principal} kvno {ref.kvno} "
                f"etype {ref.etype} usage {usage}"
            )
        return plain  # krbjobs already dropped the confounder

    async def _submit(self, op: str, ref: KeyRef, usage: int, data: bytes):
        loop = asyncio.get_running_loop()
        item = _Pending(op, ref, usage, data, loop.create_future())
        # One lane per job krbjobs can form: decryptions of one size class (AES blocks, SHA-1
        # blocks); encryptions of one family (tickets and enc-parts together).
        if op == "enc":
            key = (op, ref.etype, encrypt_family(len(data)))
        else:
            key = (op, ref.etype, *size_class(len(data) - MAC_BYTES))
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.queue.append(item)
        if lane.in_flight < self._lane_limit(key) and lane.flush is None:
            # Send at the end of this loop iteration, not now: requests that the same burst
            # of datagrams (or one finished job) released all join this job.
            lane.flush = loop.call_soon(self._flush, key, lane)
        try:
            # The job itself fails within ``timeout`` unless all three nodes acknowledged
            # it (alive, computing): then it, and a request queued behind it, may take up to
            # ``run_timeout`` (see the module docstring).
            return await asyncio.wait_for(asyncio.shield(item.future), self.run_timeout + 0.1)
        except TimeoutError:
            item.future.cancel()  # still queued: it will not be sent
            self.stats["unavailable"] += 1
            raise KeyServiceUnavailable("MPC nodes did not answer in time") from None

    def _flush(self, key: tuple, lane: _Lane) -> None:
        lane.flush = None
        limit = self._lane_limit(key)
        while lane.queue and lane.in_flight < limit:
            if 0 < lane.in_flight == limit - 1 and not lane.gathered:
                # The lane's last free slot under load: starting it on the first request or
                # two would leave the burst right behind them (e.g. the clients the other
                # job's answers just released) waiting a whole job time for a slot. Waiting
                # an eighth of a job time for them makes fewer, wider jobs: less node CPU
                # per login (one batch layer per round whatever its width) and shorter
                # waits (bench_mpc_realm at 256 clients: 299 -> 396 logins/s, p50 794 ->
                # 594 ms). An idle lane starts at once (one login at a time).
                lane.gathered = True
                took = self._job_seconds.get(key)
                wait = LAST_SLOT_GATHER_MAX if took is None else \
                    min(LAST_SLOT_GATHER * took, LAST_SLOT_GATHER_MAX)
                lane.flush = asyncio.get_running_loop().call_later(
                    wait, self._flush, key, lane)
                return
            lane.gathered = False
            partner = self._partner(key, lane)
            if partner is None:
                self._launch((key, lane))
            else:
                self._launch((key, lane), partner)
        if not lane.queue and not lane.in_flight and self._lanes.get(key) is lane:
            del self._lanes[key]

    def _lane_limit(self, key: tuple) -> int:
        """Jobs a lane may have in flight (see the module docstring)."""
        if key[0] == "dec" and key[-1] == 1:  # (op, etype, AES blocks, SHA-1 blocks)
            return self.short_decrypt_jobs
        return self.jobs

    def _partner(self, key: tuple, lane: _Lane) -> tuple[tuple, _Lane] | None:
        """When no job is in flight: a lane of the other operation that is about to start a
        job too; the two go out as one ``krb-pair`` job (mpc.krbjobs.pair_many).

        A login's PA-ENC-TIMESTAMP decryption and its reply's encryptions are issued in the
        same loop iteration; as two jobs they would travel as two chains of frames, and with
        one login at a time the second chain costs almost as much per round as the first
        (bench/bench_login_jobs.py: 227 ms for the two jobs, 202 ms as a pair, 187 ms for
        the encryptions alone). Under load every job already carries many
        requests, and tying the short decryption lane to the long encryption would hold its
        slot for the longer job, so pairs are only made while nothing else runs.
        """
        if any(other.in_flight for other in self._lanes.values()):
            return None
        want = "enc" if key[0] == "dec" else "dec"
        for other_key, other in self._lanes.items():
            if (other_key[0] == want and other.queue and other.flush is not None
                    and not other.gathered):
                return other_key, other
        return None

    def _launch(self, *lanes: tuple[tuple, _Lane]) -> None:
        """Start one job for the head of each lane's queue (two lanes: a pair job)."""
        batches = []
        for key, lane in lanes:
            if lane.flush is not None:  # a partner's own start: this job takes its queue
                lane.flush.cancel()
                lane.flush = None
            live = [p for p in lane.queue if not p.future.done()]
            batch, lane.queue = live[: self.max_batch], live[self.max_batch :]
            if batch:
                batches.append((key, lane, batch))
        if not batches:
            return
        for _, lane, _ in batches:
            lane.in_flight += 1
        started = self._clock()
        items = [p for _, _, batch in batches for p in batch]
        op = "pair" if len(batches) == 2 else batches[0][0][0]
        task = asyncio.get_running_loop().create_task(self._run(op, items))

        def done(_task: asyncio.Task) -> None:
            took = self._clock() - started
            for key, lane, _ in batches:
                lane.in_flight -= 1
                avg = self._job_seconds.get(key, took)
                self._job_seconds[key] = avg + 0.25 * (took - avg)
                # Everything that queued up meanwhile goes out as the next job (a slot is
                # free now: no gather wait still pending).
                if lane.queue:
                    if lane.flush is not None:
                        lane.flush.cancel()
                    lane.flush = asyncio.get_running_loop().call_soon(self._flush, key, lane)
                elif not lane.in_flight and lane.flush is None:
                    if self._lanes.get(key) is lane:
                        del self._lanes[key]

        task.add_done_callback(done)

    async def _run(self, op: str, batch: list[_Pending]) -> None:
        """One job for ``batch`` (op "enc", "dec", or "pair": both); on a job error with
        several instances, each runs alone (so one stale reference cannot fail the others)."""
        try:
            results = await self._job(op, batch)
        except _JobRefused as refused:
            if len(batch) == 1:
                log.warning("MPC nodes refused a %s job for %s kvno %d: %s", batch[0].op,
                            batch[0].ref.principal, batch[0].ref.kvno, refused.code)
                self.forget(batch[0].ref.principal)
                _fail(batch[0], refused.as_key_service_error())
                return
            await asyncio.gather(*(self._run(p.op, [p]) for p in batch))
            return
        except KeyServiceError as exc:
            for p in batch:
                _fail(p, exc)
            return
        except BaseException as exc:  # never leave a caller waiting
            for p in batch:
                _fail(p, KeyServiceUnavailable(f"MPC job failed: {type(exc).__name__}"))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for p, r in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(r)

    async def _job(self, op: str, batch: list[_Pending]) -> list:
        from mpc import krbjobs
        from mpc.client import MpcError, MpcJobError

        self.stats["jobs"] += 1
        self.stats["instances"] += len(batch)
        self.stats["max_width"] = max(self.stats["max_width"], len(batch))
        # krbjobs takes (key, usage, etype, plaintext, confounder); data = conf|plain.
        encs = [(p.ref, p.usage, p.ref.etype, p.data[CONFOUNDER_BYTES:],
                 p.data[:CONFOUNDER_BYTES]) for p in batch if p.op == "enc"]
        decs = [(p.ref, p.usage, p.ref.etype, p.data) for p in batch if p.op == "dec"]
        try:
            if op == "pair":
                coro = krbjobs.pair_many(self._client, decs, encs, timeout=self.timeout)
            elif op == "enc":
                coro = krbjobs.encrypt_many(self._client, encs, timeout=self.timeout)
            else:
                coro = krbjobs.decrypt_many(self._client, decs, timeout=self.timeout)
            out = await asyncio.wait_for(coro, self.run_timeout + 0.05)
        except MpcJobError as exc:
            raise _JobRefused(exc.code) from None
        except (TimeoutError, MpcError, OSError, ValueError) as exc:
            self.stats["unavailable"] += 1
            raise KeyServiceUnavailable(f"MPC nodes unavailable ({type(exc).__name__})") from None
        if op == "pair":
            dec_out, enc_out = out
        elif op == "dec":
            dec_out, enc_out = out, ()
        else:
            dec_out, enc_out = (), out
        results = {"enc": iter(enc_out),
                   "dec": iter([(False, b"") if r is None else (True, r) for r in dec_out])}
        return [next(results[p.op]) for p in batch]


class _JobRefused(Exception):
    """The nodes refused a job (e.g. UNKNOWN_HANDLE: a key changed after our lookup)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code

    def as_key_service_error(self) -> KeyServiceError:
        if self.code == "UNKNOWN_HANDLE":
            return UnknownKey("key material not on the nodes (key changed)")
        return KeyServiceUnavailable(f"MPC nodes refused the job: {self.code}")


def _settle(f: asyncio.Future, *, result=None, exc: BaseException | None = None) -> None:
    if f.done():
        return
    if exc is None:
        f.set_result(result)
    else:
        f.set_exception(exc)
        f.exception()  # retrieved: callers that timed out leave no warning behind


def _fail(p: _Pending, exc: BaseException) -> None:
    if not p.future.done():
        p.future.set_exception(exc)
        p.future.exception()
