"""One log line per request in MIT krb5kdc's shape, plus a structured audit event.

The line formats are MIT 1.20's ``log_as_req``/``log_tgs_req`` (src/kdc/kdc_log.c), checked
against a running krb5kdc 1.20.1:

    AS_REQ (8 etypes {aes256-cts-hmac-sha1-96(18), ...}) 127.0.0.1: ISSUE: authtime 1795773299,
        etypes {rep=aes256-cts-hmac-sha1-96(18), tkt=aes256-cts-hmac-sha1-96(18),
        ses=aes256-cts-hmac-sha1-96(18)}, alice@EXAMPLE.COM for krbtgt/EXAMPLE.COM@EXAMPLE.COM
    AS_REQ (...) 127.0.0.1: CLIENT_NOT_FOUND: nobody@EXAMPLE.COM for krbtgt/EXAMPLE.COM@EXAMPLE.COM,
        Client not found in Kerberos database
    TGS_REQ (...) 127.0.0.1: LOOKING_UP_SERVER: authtime 0, etypes {rep=UNSUPPORTED:(0)}
        alice@EXAMPLE.COM for nosuch/host@EXAMPLE.COM, Server not found in Kerberos database

(each on one line). Principal names and e-texts from the wire are made printable first, like
MIT's ``limit_string``, so a hostile name cannot forge log lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

LOGGER_NAME = "mpckdc.kdc"
MAX_LOGGED_NAME = 128  # MIT limit_string(): names of 128+ characters become 124 + "..."

# How MIT 1.20 names each enctype in its log (kdc_util.c enctype_name(): the long name from
# krb5_enctype_to_name, prefixed "UNSUPPORTED:" when krb5_c_valid_enctype() is false and
# "DEPRECATED:" for weak ones), read off a running krb5kdc 1.20.1. Numbers it has no name for
# log as "UNSUPPORTED:(n)".
_UNSUPPORTED = "UNSUPPORTED:"
_DEPRECATED = "DEPRECATED:"
_MIT_ENCTYPE_LABELS: dict[int, str] = {
    1: _UNSUPPORTED + "des-cbc-crc",
    2: _UNSUPPORTED + "des-cbc-md4",
    3: _UNSUPPORTED + "des-cbc-md5",
    4: _UNSUPPORTED + "des-cbc-raw",
    6: _DEPRECATED + "des3-cbc-raw",
    8: _UNSUPPORTED + "des-hmac-sha1",
    9: _UNSUPPORTED + "id-dsa-with-sha1-CmsOID",
    10: _UNSUPPORTED + "md5WithRSAEncryption-CmsOID",
    11: _UNSUPPORTED + "sha-1WithRSAEncryption-CmsOID",
    12: _UNSUPPORTED + "rc2-cbc-EnvOID",
    13: _UNSUPPORTED + "rsaEncryption-EnvOID",
    14: _UNSUPPORTED + "id-RSAES-OAEP-EnvOID",
    15: _UNSUPPORTED + "des-ede3-cbc-EnvOID",
    16: _DEPRECATED + "des3-cbc-sha1",
    17: "aes128-cts-hmac-sha1-96",
    18: "aes256-cts-hmac-sha1-96",
    19: "aes128-cts-hmac-sha256-128",
    20: "aes256-cts-hmac-sha384-192",
    23: _DEPRECATED + "arcfour-hmac",
    24: _DEPRECATED + "arcfour-hmac-exp",
    25: "camellia128-cts-cmac",
    26: "camellia256-cts-cmac",
}


def enctype_label(etype: int) -> str:
    """``aes256-cts-hmac-sha1-96(18)``, ``DEPRECATED:arcfour-hmac(23)``, ``UNSUPPORTED:(99)``."""
    return f"{_MIT_ENCTYPE_LABELS.get(etype, _UNSUPPORTED)}({etype})"


MAX_LOGGED_ETYPES = 32  # MIT lists all; a 64 KiB request could list ~20000, so we stop here


# Texts of etype lists already seen (public data: clients send a handful of distinct lists).
_KTYPES_CACHE: dict[tuple[int, ...], str] = {}
_KTYPES_CACHE_MAX = 256


def ktypes_text(etypes: Iterable[int]) -> str:
    """MIT ``ktypes2str``: ``2 etypes {aes256-cts-hmac-sha1-96(18), aes128-...(17)}``.

    Lists at most MAX_LOGGED_ETYPES (then ``, ...``) so one request cannot flood the log.
    """
    if type(etypes) is tuple and len(etypes) <= MAX_LOGGED_ETYPES:
        text = _KTYPES_CACHE.get(etypes)
        if text is None:
            text = _ktypes_text(etypes)
            if len(_KTYPES_CACHE) < _KTYPES_CACHE_MAX:
                _KTYPES_CACHE[etypes] = text
        return text
    return _ktypes_text(etypes)


def _ktypes_text(etypes: Iterable[int]) -> str:
    ets = list(etypes)
    text = ", ".join(enctype_label(e) for e in ets[:MAX_LOGGED_ETYPES])
    if len(ets) > MAX_LOGGED_ETYPES:
        text += ", ..."
    return f"{len(ets)} etypes {{{text}}}"


_REP_ETYPES_CACHE: dict[tuple, str] = {}


def rep_etypes_text(rep: int | None, tkt: int | None = None, ses: int | None = None) -> str:
    """MIT ``rep_etypes2str``: ``etypes {rep=..., tkt=..., ses=...}`` (tkt/ses when known)."""
    key = (rep, tkt, ses)
    text = _REP_ETYPES_CACHE.get(key)
    if text is None:
        text = _rep_etypes_text(rep, tkt, ses)
        if len(_REP_ETYPES_CACHE) < _KTYPES_CACHE_MAX:
            _REP_ETYPES_CACHE[key] = text
    return text


def _rep_etypes_text(rep: int | None, tkt: int | None, ses: int | None) -> str:
    parts = [f"rep={enctype_label(rep or 0)}"]
    if tkt is not None:
        parts.append(f"tkt={enctype_label(tkt)}")
        if ses is not None:
            parts.append(f"ses={enctype_label(ses)}")
    return f"etypes {{{', '.join(parts)}}}"


def printable(text: str, limit: int = MAX_LOGGED_NAME) -> str:
    """Control characters escaped and the length limited (MIT ``limit_string``)."""
    if text.isprintable():  # the usual case: nothing to escape
        out = text
    else:
        out = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    if len(out) >= limit:
        out = out[: limit - 4] + "..."
    return out


def peer_text(peer: tuple | None) -> str:
    if not peer:
        return "<unknown>"
    return printable(str(peer[0]), 70)


@dataclass(slots=True)
class RequestRecord:
    """What one request did: filled in step by step by the exchange, then logged once.

    ``status`` is MIT's UPPER_SNAKE reason ("ISSUE" on success); ``step`` names the stage the
    exchange is in, so an unexpected failure (such as the key service going away) is reported
    as e.g. "LOOKING_UP_CLIENT" just as MIT reports its database errors.
    """

    kind: str = "UNKNOWN"  # "AS_REQ" | "TGS_REQ" | "DISPATCH"
    peer: tuple | None = None
    transport: str = "udp"
    now: float = 0.0
    req_etypes: tuple[int, ...] = ()
    client: str | None = None
    server: str | None = None
    step: str = "DISPATCH"
    status: str | None = None
    error_code: int | None = None
    error_text: str | None = None
    authtime: int = 0
    rep_etype: int | None = None
    tkt_etype: int | None = None
    ses_etype: int | None = None
    flags: int | None = None
    preauth: str | None = None
    renew: bool = False
    lookaside: bool = False
    reply_bytes: int = 0
    extra: dict = field(default_factory=dict)
    # The client name a KRB-ERROR carries (requested client in AS, TGT client in TGS).
    cname: Any = None
    crealm: str | None = None

    @property
    def address(self) -> str | None:
        """The sender's host address (what kdc/failure_budget.py counts by), if known."""
        return self.peer[0] if self.peer else None

    def line(self) -> str:
        """The MIT-shaped log line for this request."""
        cname = printable(self.client) if self.client is not None else "<unknown client>"
        sname = printable(self.server) if self.server is not None else "<unknown server>"
        peer = peer_text(self.peer)
        ktypes = ktypes_text(self.req_etypes)
        if self.kind == "AS_REQ":
            if self.error_code is None:
                return (
                    f"AS_REQ ({ktypes}) {peer}: ISSUE: authtime {self.authtime}, "
                    f"{rep_etypes_text(self.rep_etype, self.tkt_etype, self.ses_etype)}, "
                    f"{cname} for {sname}"
                )
            emsg = f", {self.error_text}" if self.error_text else ""
            return f"AS_REQ ({ktypes}) {peer}: {self.status}: {cname} for {sname}{emsg}"
        if self.kind == "TGS_REQ":
            if self.error_code is None:
                return (
                    f"TGS_REQ ({ktypes}) {peer}: ISSUE: authtime {self.authtime}, "
                    f"{rep_etypes_text(self.rep_etype, self.tkt_etype, self.ses_etype)}, "
                    f"{cname} for {sname}"
                )
            if self.error_code == 26:  # KDC_ERR_SERVER_NOMATCH has its own shape in MIT
                return (
                    f"TGS_REQ {peer}: {self.status}: authtime 0, {cname} for {sname}, "
                    "2nd tkt client <unknown>"
                )
            emsg = f", {self.error_text}" if self.error_text else ""
            return (
                f"TGS_REQ ({ktypes}) {peer}: {self.status}: authtime 0, "
                f"{rep_etypes_text(None)} {cname} for {sname}{emsg}"
            )
        if self.lookaside:
            return (
                f"DISPATCH: repeated (retransmitted?) request from {peer}, "
                "resending previous response"
            )
        reason = f", {self.error_text}" if self.error_text else ""
        return f"DISPATCH: {self.status or 'DROPPED'}: request from {peer}{reason}"

    def event(self) -> dict:
        """The structured audit event (no key material: names, codes, etypes, times only)."""
        return {
            "type": self.kind,
            "time": self.now,
            "peer": None if self.peer is None else str(self.peer[0]),
            "port": None if not self.peer or len(self.peer) < 2 else self.peer[1],
            "transport": self.transport,
            "status": self.status,
            "outcome": "issue" if self.status == "ISSUE" else (
                "lookaside" if self.lookaside else "error" if self.error_code is not None
                else "dropped"
            ),
            "error_code": self.error_code,
            "client": self.client,
            "server": self.server,
            "req_etypes": list(self.req_etypes[:MAX_LOGGED_ETYPES]),
            "req_etype_count": len(self.req_etypes),
            "rep_etype": self.rep_etype,
            "tkt_etype": self.tkt_etype,
            "ses_etype": self.ses_etype,
            "authtime": self.authtime or None,
            "flags": self.flags,
            "preauth": self.preauth,
            "renew": self.renew,
            "lookaside": self.lookaside,
            "reply_bytes": self.reply_bytes,
            **self.extra,
        }


AuditSink = Callable[[dict], None]


class RequestLog:
    """Emits each finished RequestRecord as one log line and one audit event."""

    def __init__(self, logger: logging.Logger | None = None, audit: AuditSink | None = None):
        self.logger = logger if logger is not None else logging.getLogger(LOGGER_NAME)
        self.audit = audit

    def emit(self, record: RequestRecord) -> None:
        logger = self.logger
        try:
            if logger.isEnabledFor(logging.INFO):
                # Logger.info() would also walk the stack to find the caller's file and line,
                # which the MIT-shaped line does not show; build the record directly instead.
                logger.handle(logger.makeRecord(
                    logger.name, logging.INFO, __file__, 0, record.line(), (), None,
                    "emit",
                ))
        except Exception:  # a broken log handler must not break the KDC
            pass
        if self.audit is not None:
            try:
                self.audit(record.event())
            except Exception:
                self.logger.warning("audit callback failed", exc_info=False)
