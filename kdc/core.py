"""The sans-IO KDC: ``handle(request bytes, peer, now) -> reply bytes | None``.

Sockets, clocks and the key backend live outside: the asyncio UDP/TCP adapters call
:meth:`Kdc.handle` with each request and send back what it returns; ``now`` is injected so tests
pin the clock; the key service is the only way to any long-term key.

Dispatch (MIT ``dispatch.c`` shape):

1. Requests longer than ``policy.max_request_bytes`` get KRB_ERR_FIELD_TOOLONG
   (RFC 4120 §7.2.2 names this error for oversized requests).
2. The lookaside cache answers retransmits without any key-service call (``kdc/lookaside.py``).
3. The first byte selects the exchange: ``0x6a`` [APPLICATION 10] AS-REQ, ``0x6c``
   [APPLICATION 12] TGS-REQ. Anything else is dropped without a reply, as MIT's krb5kdc does:
   a KDC must not answer replies or errors (two KDCs could be made to bounce packets at each
   other with a spoofed source), and RFC 4120 defines no error for bytes that are not a request.
4. A request that carries a request tag but does not decode gets KRB_AP_ERR_MSG_TYPE (40,
   "Invalid message type"). MIT drops these too; we answer so that a client fails at once
   with a clear code instead of timing out (SPEC: bad input gets a KRB-ERROR). RFC 4120 §5.10
   makes the application tag and msg-type the message's identity, so a message that does not
   parse as the type its tag announces is, for the KDC, a message of invalid type.
5. Any KdcError becomes a KRB-ERROR (kdc/errors.py); KeyServiceUnavailable becomes
   KDC_ERR_SVC_UNAVAILABLE (29), on which MIT clients try the next KDC; any other exception
   becomes KRB_ERR_GENERIC (60) with a generic e-text. ``handle`` never raises.
6. Over UDP a reply longer than ``policy.udp_max_reply`` is replaced by
   KRB_ERR_RESPONSE_TOO_BIG (RFC 4120 §7.2.1) so the client retries over TCP.

Every request produces one MIT-shaped log line and one audit event (``kdc/kdc_log.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from kdc import crypto
from kdc.as_req import process_as_req
from kdc.errors import KdcError, encode_error, too_big_error
from kdc.failure_budget import FailureBudget
from kdc.kdc_log import AuditSink, RequestLog, RequestRecord
from kdc.keyservice.base import KeyService, KeyServiceUnavailable
from kdc.lookaside import Lookaside
from kdc.messages import DecodeError, decode
from kdc.messages import constants as C
from kdc.messages.model import EncryptionKey, KdcReq
from kdc.preauth.failures import PreauthFailures
from kdc.realm import RealmPolicy
from kdc.tgs_req import process_tgs_req
from kdc.tgt_cache import TgtCache

TAG_AS_REQ = 0x6A  # [APPLICATION 10], constructed
TAG_TGS_REQ = 0x6C  # [APPLICATION 12], constructed
_KIND = {TAG_AS_REQ: ("AS_REQ", C.KRB_AS_REQ), TAG_TGS_REQ: ("TGS_REQ", C.KRB_TGS_REQ)}

GENERIC_E_TEXT = "INTERNAL_ERROR"


class Kdc:
    """One realm's KDC protocol engine over a key service."""

    def __init__(
        self,
        policy: RealmPolicy,
        keys: KeyService,
        *,
        rng: Callable[[int], bytes] = os.urandom,
        log: logging.Logger | None = None,
        audit: AuditSink | None = None,
        lookaside: Lookaside | None = None,
        tgt_cache: TgtCache | None = None,
        preauth_failures: PreauthFailures | None = None,
    ) -> None:
        self.policy = policy
        self.keys = keys
        self.rng = rng
        self.log = RequestLog(log, audit)
        self.lookaside = lookaside if lookaside is not None else Lookaside(
            ttl=policy.lookaside_ttl,
            max_entries=policy.lookaside_entries,
            max_bytes=policy.lookaside_bytes,
        )
        self.tgt_cache = tgt_cache if tgt_cache is not None else TgtCache()
        self.preauth_failures = (preauth_failures if preauth_failures is not None
                                 else PreauthFailures())
        self.failure_budget = FailureBudget(policy.address_failure_burst,
                                            policy.address_failure_interval)
        self._tgs_name = (policy, policy.tgs_name)
        # Session-key and ticket etypes: the realm's list, restricted to what we implement.
        self.session_etypes: frozenset[int] = frozenset(
            e for e in policy.supported_enctypes if e in crypto.ENCTYPES
        )

    def __repr__(self) -> str:
        return f"Kdc(realm={self.policy.realm!r})"

    @property
    def tgs_name(self) -> str:
        """The canonical ``krbtgt/REALM@REALM`` of the current policy (compared on every
        TGS-REQ, so it is built once per policy object)."""
        policy, name = self._tgs_name
        if policy is not self.policy:
            name = self.policy.tgs_name
            self._tgs_name = (self.policy, name)
        return name

    def new_session_key(self, etype: int) -> EncryptionKey:
        """A fresh random session key (RFC 3961 random-to-key is the identity for AES)."""
        return EncryptionKey(etype, self.rng(crypto.profile(etype).key_bytes))

    async def handle(
        self, data: bytes, peer: tuple[str, int], now: float, *, transport: str = "udp"
    ) -> bytes | None:
        """Answer one request. Returns the DER reply, or None when the request is dropped."""
        try:
            reply = await self._handle(bytes(data), peer, now, transport)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the last line of defence: never raise to the transport
            self.log.logger.error(
                "DISPATCH: internal error %s handling request from %s",
                type(exc).__name__, peer[0] if peer else "<unknown>",
            )
            try:
                reply = encode_error(C.KRB_ERR_GENERIC, now, realm=self.policy.realm,
                                     e_text=GENERIC_E_TEXT)
            except Exception:
                return None
        if reply is not None and transport == "udp" and len(reply) > self.policy.udp_max_reply:
            return too_big_error(now, self.policy.realm)
        return reply

    async def _handle(self, data: bytes, peer, now: float, transport: str) -> bytes | None:
        rec = RequestRecord(kind="DISPATCH", peer=peer, transport=transport, now=now)
        if len(data) > self.policy.max_request_bytes:
            rec.status = "REQUEST_TOO_LONG"
            return self._error(rec, None, C.KRB_ERR_FIELD_TOOLONG, rec.status, None, now)

        cached = self.lookaside.lookup(data, now)
        if cached is not None:
            if isinstance(cached, asyncio.Future):
                cached = await asyncio.shield(cached)
            rec.lookaside = True
            rec.status = "LOOKASIDE"
            rec.reply_bytes = len(cached) if cached else 0
            self.log.emit(rec)
            return cached

        kind = _KIND.get(data[0]) if data else None
        if kind is None:
            rec.status = "UNKNOWN_MESSAGE_TYPE"
            self.log.emit(rec)
            return None

        pending = self.lookaside.begin(data, now)
        reply: bytes | None = None
        cacheable = False
        try:
            reply, cacheable = await self._process(data, kind, rec, now)
        finally:
            self.lookaside.finish(data, pending, reply, now, cache=cacheable)
        return reply

    async def _process(self, data: bytes, kind: tuple[str, int], rec: RequestRecord,
                       now: float) -> tuple[bytes, bool]:
        """(reply, cacheable) for a request that carries an AS-REQ or TGS-REQ tag."""
        name, msg_type = kind
        try:
            req = decode(KdcReq, data)
        except DecodeError:
            req = None
        if req is None or req.msg_type != msg_type:
            rec.status = "DECODE_REQUEST"
            return self._error(rec, None, C.KRB_AP_ERR_MSG_TYPE, rec.status, None, now), False
        rec.kind = name
        rec.req_etypes = req.req_body.etype
        try:
            if msg_type == C.KRB_AS_REQ:
                reply = await process_as_req(self, req, rec, now)
            else:
                reply = await process_tgs_req(self, req, rec, now)
        except KdcError as err:
            return self._error(rec, req, err.code, err.status, err.e_data, now), True
        except KeyServiceUnavailable:
            # MIT maps an unreachable database to KDC_ERR_SVC_UNAVAILABLE; clients fail over.
            return self._error(rec, req, C.KDC_ERR_SVC_UNAVAILABLE, rec.step, None, now), False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.logger.error(
                "%s: unexpected %s at %s", name, type(exc).__name__, rec.step,
            )
            self.log.logger.debug("traceback", exc_info=True)
            return self._error(rec, req, C.KRB_ERR_GENERIC, rec.step, None, now,
                               e_text=GENERIC_E_TEXT), False
        rec.status = "ISSUE"
        rec.reply_bytes = len(reply)
        self.log.emit(rec)
        return reply, True

    def _error(self, rec: RequestRecord, req: KdcReq | None, code: int, status: str,
               e_data: bytes | None, now: float, *, e_text: str | None = None) -> bytes:
        """Encode the KRB-ERROR for a failed request and log it."""
        rec.status = status
        rec.error_code = code
        rec.error_text = C.error_text(code)
        realm = self.policy.realm
        sname = crealm = cname = None
        if req is not None:
            body = req.req_body
            realm = body.realm or realm
            sname = body.sname
            if req.msg_type == C.KRB_AS_REQ:
                cname, crealm = body.cname, body.realm  # MIT: the requested client
            else:
                cname, crealm = rec.cname, rec.crealm  # MIT: the TGT's client, once known
        try:
            reply = encode_error(code, now, realm=realm, sname=sname, crealm=crealm, cname=cname,
                                 e_text=e_text if e_text is not None else status, e_data=e_data)
        except Exception:
            # A name from the request that our encoder refuses: answer without echoing it.
            reply = encode_error(code, now, realm=self.policy.realm,
                                 e_text=e_text if e_text is not None else status)
        rec.reply_bytes = len(reply)
        self.log.emit(rec)
        return reply
