"""The node's admin API: principal records and two-phase changes, JSON over mutual TLS.

Served by every node on ``admin_port`` (aiohttp, in the node's asyncio thread), for the
cluster CA's ``client-admin`` certificate only (any other identity: 403). Shares never
travel here: they go over the binary STORE / RANDOM / keep-job frames of :mod:`mpc.jobs`.

Endpoints (CONTRACTS §8); errors are ``{"error": CODE, "message": text}``:

``GET  /v1/principals?glob=*``        200 ``{"names": [...]}``
``GET  /v1/principals/{name}``        200 record (with ``version``) | 404 NOT_FOUND
                                       (``name`` percent-encoded: '/' as %2F)
``POST /v1/tx/{txid}/prepare``        body ``{"name", "record": {...}|null, "base_version"?}``
                                       200 ``{"txid", "state": "prepared"}``
``POST /v1/tx/{txid}/commit``         200 ``{"txid", "version"}``
``POST /v1/tx/{txid}/abort``          200 ``{"txid", "state": "aborted"}``
``GET  /v1/tx``                       200 ``{"pending": [...]}``
``GET  /v1/tx/{txid}``                200 public facts of one txid | 404

Status codes: 400 BAD_REQUEST / BAD_RECORD, 404 UNKNOWN_TRANSACTION, 409 CONFLICT,
422 INCOMPLETE (a listed key has no base share here), 500 STORE_FAILED, 501 NO_RECORDS
(a node running with the memory store). Prepare, commit and abort are idempotent in the
store (:class:`mpc.store.SqliteShareStore`), so a coordinator simply retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from typing import TYPE_CHECKING

from aiohttp import web

from mpc import store as st
from mpc import tls

if TYPE_CHECKING:
    from mpc.node import Node

log = logging.getLogger("mpckdc.mpc.admin_api")

MAX_BODY = 256 * 1024
ADMIN_ROLE = "admin"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def make_admin_app(node: Node) -> web.Application:
    """The aiohttp application for ``node`` (its store, its configured roles)."""
    store = node.store
    allowed = tls.client_name(ADMIN_ROLE)

    @web.middleware
    async def guard(request: web.Request, handler):
        ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
        who = tls.peer_identity(ssl_obj) if ssl_obj is not None else None
        if who != allowed or ADMIN_ROLE not in node.config.client_roles:
            log.warning("admin API request from %r refused", who)
            return _error(403, "FORBIDDEN", "the admin API needs the admin certificate")
        if not hasattr(store, "prepare"):
            return _error(501, "NO_RECORDS", "this node's store keeps no principal records")
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except st.BadInput as e:
            code = "BAD_RECORD" if isinstance(e, st.BadRecord) else "BAD_REQUEST"
            return _error(400, code, str(e))
        except st.UnknownTransaction as e:
            return _error(404, "UNKNOWN_TRANSACTION", str(e))
        except st.Conflict as e:
            return _error(409, "CONFLICT", str(e))
        except st.Incomplete as e:
            return _error(422, "INCOMPLETE", str(e))
        except (st.StoreError, sqlite3.Error) as e:
            log.error("node-%d admin API: store failed: %s", node.party, type(e).__name__)
            return _error(500, "STORE_FAILED", type(e).__name__)
        except Exception:  # never a traceback to the client; the log has it
            log.exception("node-%d admin API: internal error", node.party)
            return _error(500, "INTERNAL", "internal error")

    async def in_thread(fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: fn(*args, **kwargs))

    async def body_of(request: web.Request) -> dict:
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise st.BadInput("request body too large")
        try:
            body = json.loads(raw or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise st.BadInput("body is not JSON") from e
        if not isinstance(body, dict):
            raise st.BadInput("body must be a JSON object")
        return body

    async def list_principals(request: web.Request) -> web.Response:
        glob = request.query.get("glob", "*")
        return web.json_response({"names": await in_thread(store.principals, glob)})

    async def get_principal(request: web.Request) -> web.Response:
        name = request.match_info["name"]  # aiohttp has percent-decoded it (%2F -> /)
        record = await in_thread(store.principal, name)
        if record is None:
            return _error(404, "NOT_FOUND", "no such principal")
        return web.json_response(record)

    async def prepare(request: web.Request) -> web.Response:
        txid = request.match_info["txid"]
        body = await body_of(request)
        name, record, base = body.get("name"), body.get("record"), body.get("base_version")
        if not isinstance(name, str) or (record is not None and not isinstance(record, dict)):
            raise st.BadInput("prepare needs a name and a record object or null")
        if base is not None and (isinstance(base, bool) or not isinstance(base, int)):
            raise st.BadInput("base_version must be an integer")
        await in_thread(store.prepare, txid, name, record, base_version=base)
        return web.json_response({"txid": txid, "state": "prepared"})

    async def commit(request: web.Request) -> web.Response:
        txid = request.match_info["txid"]
        version = await in_thread(store.commit, txid)
        return web.json_response({"txid": txid, "version": version})

    async def abort(request: web.Request) -> web.Response:
        txid = request.match_info["txid"]
        await in_thread(store.abort, txid)
        return web.json_response({"txid": txid, "state": "aborted"})

    async def pending(_request: web.Request) -> web.Response:
        return web.json_response({"pending": await in_thread(store.pending)})

    async def transaction(request: web.Request) -> web.Response:
        facts = await in_thread(store.transaction, request.match_info["txid"])
        if facts is None:
            return _error(404, "UNKNOWN_TRANSACTION", "no such transaction")
        return web.json_response(facts)

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app.router.add_get("/v1/principals", list_principals)
    app.router.add_get("/v1/principals/{name:.+}", get_principal)
    app.router.add_post("/v1/tx/{txid}/prepare", prepare)
    app.router.add_post("/v1/tx/{txid}/commit", commit)
    app.router.add_post("/v1/tx/{txid}/abort", abort)
    app.router.add_get("/v1/tx", pending)
    app.router.add_get("/v1/tx/{txid}", transaction)
    return app
