"""The admin side of the MPC realm: principal records, two-phase changes, key material.

``AdminClient(client_config_path)`` (asyncio) and ``SyncAdminClient`` (blocking) talk to

* every node's admin API (:mod:`mpc.admin_api`, HTTPS with the ``client-admin``
  certificate) for records and the two-phase protocol, and
* the job protocol (:class:`mpc.client.AsyncMpcClient`, role ``admin``) for shares: dealt
  keys (STORE: node i gets only x_i and x_{i+1}), keys generated inside MPC (RANDOM) and
  the per-key precomputation (a keep-mode job of ``krb-pre/<etype>``).

A change is: ``prepare`` on all three (reserves the principal) -> ``store_key`` /
``generate_random_key`` -> ``precompute`` -> ``commit`` on all three; on any failure
``abort`` everywhere (SPEC "Reliability": atomic across the nodes). Every call is safe to
retry: prepare/commit/abort are idempotent on the nodes, and storing, generating or
precomputing again overwrites the same handles on all three nodes.

Errors: :class:`AdminError` (a node refused: ``code`` as the admin API's), its subclass
:class:`InconsistentNodes` (nodes disagree, e.g. on a record's version), and
:class:`AdminUnavailable` (a node could not be reached after the retries). No message ever
carries key or share bytes.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np

from mpc import handles as hnames
from mpc import registry, tls
from mpc.blocking import BlockingProxy
from mpc.client import AsyncMpcClient, Handle, MpcUnavailable, deal
from mpc.cluster import ClientConfig, NodeAddress, load_client_config

log = logging.getLogger("mpckdc.mpc.admin_client")

HTTP_TIMEOUT = 10.0
RETRIES = 4
RETRY_DELAY = 0.25
JOB_TIMEOUT = 60.0  # the precompute circuit is deep (key schedules, DK, SHA-1 states)


class AdminError(Exception):
    """A node refused an admin request; ``code`` is the API's error code."""

    def __init__(self, code: str, message: str, party: int | None = None) -> None:
        where = "" if party is None else f"node {party}: "
        super().__init__(f"{where}{code}: {message}")
        self.code = code
        self.party = party


class InconsistentNodes(AdminError):
    """The three nodes gave different answers (e.g. different record versions)."""

    def __init__(self, message: str) -> None:
        super().__init__("INCONSISTENT", message)


class AdminUnavailable(AdminError, MpcUnavailable):
    """A node could not be reached (after the retries)."""

    def __init__(self, message: str, party: int | None = None) -> None:
        AdminError.__init__(self, "UNAVAILABLE", message, party)


class AdminClient:
    """Admin operations on the three nodes (see the module docstring)."""

    def __init__(self, config: ClientConfig | str | Path, *, role: str = "admin",
                 http_timeout: float = HTTP_TIMEOUT, job_timeout: float = JOB_TIMEOUT,
                 retries: int = RETRIES) -> None:
        self.config = config if isinstance(config, ClientConfig) else load_client_config(config)
        cert, key = self.config.identities[role]
        self._ssl = tls.client_context(self.config.ca, cert, key)
        self.mpc = AsyncMpcClient(self.config, role, timeout=job_timeout)
        self.http_timeout = http_timeout
        self.retries = max(1, retries)
        self._session = None

    def __repr__(self) -> str:
        return "AdminClient()"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.mpc.close()

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- HTTP plumbing ---------------------------------------------------------------------
    def _session_now(self):
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.http_timeout))
        return self._session

    async def _call(self, node: NodeAddress, method: str, path: str,
                    body: dict | None = None) -> tuple[int, dict]:
        """One request to one node, retried on connection failures; (status, JSON)."""
        import aiohttp
        from yarl import URL

        if not node.admin_port:
            raise AdminUnavailable("no admin_port configured for this node", node.party)
        url = URL(f"https://{_host(node.host)}:{node.admin_port}{path}", encoded=True)
        last: Exception | None = None
        for attempt in range(self.retries):
            try:
                async with self._session_now().request(
                        method, url, json=body, ssl=self._ssl,
                        server_hostname=tls.node_name(node.party)) as resp:
                    data = await resp.json(content_type=None)
                    if resp.status >= 500 and attempt + 1 < self.retries:
                        last = AdminError(str(data.get("error")), str(data.get("message")),
                                          node.party)
                    else:
                        return resp.status, data if isinstance(data, dict) else {}
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError, ValueError) as e:
                last = e
            await asyncio.sleep(RETRY_DELAY * (attempt + 1))
        if isinstance(last, AdminError):
            raise last
        raise AdminUnavailable(f"admin API unreachable ({type(last).__name__})", node.party)

    async def _all(self, method: str, path: str, body: dict | None = None,
                   ok: Sequence[int] = (200,)) -> list[tuple[int, dict]]:
        """The same request to all three nodes; AdminError for a status not in ``ok``."""
        replies = await asyncio.gather(*(self._call(n, method, path, body)
                                         for n in self.config.nodes))
        for node, (status, data) in zip(self.config.nodes, replies, strict=True):
            if status not in ok:
                raise AdminError(str(data.get("error", status)), str(data.get("message", "")),
                                 node.party)
        return replies

    # -- records ---------------------------------------------------------------------------
    async def lookup(self, name: str) -> dict | None:
        """The committed record of ``name`` (with ``version``), or None; asks all three
        nodes and raises :class:`InconsistentNodes` unless they agree on the version."""
        replies = await self._all("GET", f"/v1/principals/{quote(name, safe='@')}",
                                  ok=(200, 404))
        records = [data if status == 200 else None for status, data in replies]
        versions = {None if r is None else r.get("version") for r in records}
        if len(versions) != 1:
            raise InconsistentNodes(f"nodes disagree on the version of {name!r}: "
                                    f"{[None if r is None else r.get('version') for r in records]}")
        return records[0]

    async def list(self, glob: str = "*") -> list[str]:
        """Names of committed principals matching the shell glob (all nodes must agree)."""
        replies = await self._all("GET", f"/v1/principals?glob={quote(glob, safe='')}")
        lists = [sorted(data.get("names", [])) for _, data in replies]
        if any(x != lists[0] for x in lists[1:]):
            raise InconsistentNodes("nodes list different principals")
        return lists[0]

    async def pending(self) -> list[str]:
        """Transactions prepared (not committed or aborted) on any node."""
        replies = await self._all("GET", "/v1/tx")
        return sorted({t for _, data in replies for t in data.get("pending", [])})

    # -- two-phase changes -----------------------------------------------------------------
    async def prepare(self, txid: str, name: str, record: dict | None,
                      base_version: int | None = None) -> None:
        """Stage ``record`` (None = delete ``name``) under ``txid`` on all three nodes."""
        body: dict = {"name": name, "record": record}
        if base_version is not None:
            body["base_version"] = base_version
        await self._all("POST", f"/v1/tx/{quote(txid, safe='')}/prepare", body)

    async def commit(self, txid: str) -> int:
        """Commit ``txid`` on all three nodes; the principal's new version."""
        replies = await self._all("POST", f"/v1/tx/{quote(txid, safe='')}/commit")
        versions = {data.get("version") for _, data in replies}
        if len(versions) != 1:
            raise InconsistentNodes(f"nodes committed {txid!r} at different versions")
        return int(versions.pop())

    async def abort(self, txid: str) -> None:
        """Abort ``txid`` on all three nodes (idempotent; unknown txids are presumed aborted)."""
        await self._all("POST", f"/v1/tx/{quote(txid, safe='')}/abort")

    # -- key material (job protocol) -------------------------------------------------------
    async def store_key(self, handle: str, key_bytes: bytes | bytearray) -> None:
        """Deal ``key_bytes`` into three XOR shares; node i receives only x_i and x_{i+1}.
        The caller wipes its buffer; the bit vector made here is zeroed after dealing."""
        bits = np.unpackbits(np.frombuffer(key_bytes, dtype=np.uint8))
        try:
            shares = deal(bits)
        finally:
            bits[:] = 0
        try:
            await self.mpc.store_shares([(handle, shares)])
        finally:
            for s in shares:
                s[:] = 0

    async def generate_random_key(self, handle: str, n_bits: int) -> None:
        """A uniformly random secret of ``n_bits`` made inside MPC under ``handle``: each
        node derives its two shares from its PRF keys (RANDOM frame); it never exists in
        the clear anywhere (krbtgt keys)."""
        await self.mpc.random_secret(handle, n_bits)

    async def precompute(self, principal: str, kvno: int, etype: int) -> None:
        """Run ``krb-pre/<etype>`` on the base key, keeping the outputs as shares under
        ``mpc.handles.usage_material(principal, kvno, etype, u)`` for u = 1, 2, 3."""
        base = hnames.base_key(principal, kvno, etype)
        out: list[list[str]] = []
        for usage in registry.KRB_USAGES:
            out.extend([h] for h in hnames.usage_material(principal, kvno, etype, usage))
        await self.mpc.run(registry.krb_precompute_name(etype), [Handle(base)], words=1,
                           mode="keep", out_handles=out)

    async def delete_handles(self, handles: list[str]) -> None:
        """Remove share handles on all three nodes (repair; commits remove old kvnos)."""
        await self.mpc.delete(handles)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class SyncAdminClient(BlockingProxy):
    """Blocking :class:`AdminClient` (its own event loop in a daemon thread)."""

    def __init__(self, config: ClientConfig | str | Path, **kwargs) -> None:
        super().__init__(lambda: _make(config, kwargs), "admin-client")


async def _make(config, kwargs) -> AdminClient:
    return AdminClient(config, **kwargs)
