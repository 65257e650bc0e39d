"""A Kerberos 5 client library: initial tickets (password or keytab), service tickets, renewal.

``KdcClient`` talks to the KDCs of one realm through ``clients.transport`` and returns
``clients.ccache.Credential`` objects ready to be stored in a FILE ccache. The protocol steps
are sans-IO in ``clients.as_exchange`` (RFC 4120 §3.1) and ``clients.tgs_exchange`` (§3.3);
this module adds the network, the clock and the random numbers. Every reply is checked
(nonce, client and server names, ``clients.kdc_reply``). KDC errors raise
``KdcError(code, text)`` with MIT's texts; no key or password ever appears in an exception,
a log or a repr.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Sequence

from clients.as_exchange import (
    DEFAULT_ETYPES,
    AsExchange,
    KeySource,
    default_salt,
    keytab_keys,
    password_keys,
)
from clients.ccache import Credential
from clients.errors import ClientError, KdcError, ReplyMismatch
from clients.keytab import KeytabEntry
from clients.krb5conf import DEFAULT_TICKET_LIFETIME, DEFAULT_UDP_PREFERENCE_LIMIT, Krb5Config
from clients.tgs_exchange import TICKET_COMMON_OPTIONS, TgsExchange
from clients.transport import send_to_kdcs
from kdc.crypto import random_key
from kdc.messages import DecodeError, decode_message, encode
from kdc.messages import constants as c
from kdc.messages.model import KdcRep, KdcReq, KrbError, PrincipalName
from kdc.principal import parse_principal, unparse_principal

#: Bound on AS-REQ rounds: the plain request and the pre-authenticated one.
MAX_AS_ROUNDS = 2


class KdcClient:
    """Client of one realm's KDCs (``kdcs`` = [(host, port), ...]).

    ``transport`` None follows ``udp_preference_limit`` (UDP first for small requests, TCP
    on RESPONSE_TOO_BIG); "udp" or "tcp" forces one. ``clock`` returns POSIX seconds.
    """

    def __init__(
        self,
        realm: str,
        kdcs: Sequence[tuple[str, int]],
        *,
        transport: str | None = None,
        timeout: float = 3.0,
        udp_preference_limit: int = DEFAULT_UDP_PREFERENCE_LIMIT,
        etypes: Sequence[int] = DEFAULT_ETYPES,
        default_lifetime: int = DEFAULT_TICKET_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if transport not in (None, "udp", "tcp"):
            raise ValueError("transport must be 'udp', 'tcp' or None")
        self.realm = realm
        self.kdcs = list(kdcs)
        self.transport = transport
        self.timeout = timeout
        self.udp_preference_limit = udp_preference_limit
        self.etypes = tuple(etypes)
        self.default_lifetime = default_lifetime
        self.clock = clock

    @classmethod
    def from_config(cls, config: Krb5Config, realm: str | None = None, **kwargs) -> KdcClient:
        """A client for ``realm`` (default: the config's default_realm) with its kdc list."""
        realm = realm or config.require_default_realm()
        kwargs.setdefault("udp_preference_limit", config.udp_preference_limit)
        kwargs.setdefault("default_lifetime", config.ticket_lifetime)
        return cls(realm, config.kdcs(realm), **kwargs)

    def __repr__(self) -> str:
        return f"KdcClient(realm={self.realm!r}, kdcs={self.kdcs!r}, transport={self.transport!r})"

    # -- plumbing ----------------------------------------------------------------------------

    def send(self, message: bytes) -> bytes:
        """Send DER bytes to the realm's KDCs; the raw reply (KdcUnreachable if none)."""
        return send_to_kdcs(
            message,
            self.kdcs,
            realm=self.realm,
            transport=self.transport,
            udp_preference_limit=self.udp_preference_limit,
            timeout=self.timeout,
        )

    def exchange(self, request: KdcReq) -> KdcRep | KrbError:
        """Send one KDC-REQ, return the decoded KDC-REP or KRB-ERROR."""
        reply = self.send(encode(request))
        try:
            msg = decode_message(reply)
        except DecodeError:
            raise ReplyMismatch("KDC reply is malformed") from None
        if not isinstance(msg, KdcRep | KrbError):
            raise ReplyMismatch("KDC reply has the wrong message type")
        return msg

    def _now(self) -> tuple[int, int]:
        now = self.clock()
        return int(now), int((now - int(now)) * 1_000_000)

    @staticmethod
    def _nonce() -> int:
        return secrets.randbits(31)  # MIT keeps nonces positive 32-bit values

    def _parse(self, principal: str) -> tuple[PrincipalName, str]:
        name, realm = parse_principal(principal, self.realm)
        return name, realm or self.realm

    # -- AS exchange -------------------------------------------------------------------------

    def get_tgt_password(
        self,
        principal: str,
        password: str,
        *,
        lifetime: int | None = None,
        renewable: int | None = None,
        forwardable: bool = False,
        service: str | None = None,
    ) -> Credential:
        """Initial credentials for ``principal`` from its password (a TGT unless ``service``)."""
        return self._as(principal, password_keys(password, self.etypes), lifetime, renewable,
                        forwardable, service)

    def get_tgt_keytab(
        self,
        principal: str,
        keytab_entries: Iterable[KeytabEntry],
        *,
        lifetime: int | None = None,
        renewable: int | None = None,
        forwardable: bool = False,
        service: str | None = None,
    ) -> Credential:
        """Initial credentials for ``principal`` with its key from keytab entries."""
        name, realm = self._parse(principal)
        keys = keytab_keys(unparse_principal(name, realm), keytab_entries)
        return self._as(principal, keys, lifetime, renewable, forwardable, service)

    def _as(
        self,
        principal: str,
        keys: KeySource,
        lifetime: int | None,
        renewable: int | None,
        forwardable: bool,
        service: str | None,
    ) -> Credential:
        cname, crealm = self._parse(principal)
        if service:
            sname, srealm = parse_principal(service, crealm)
        else:
            sname, srealm = PrincipalName(c.NT_SRV_INST, ("krbtgt", crealm)), crealm
        step = AsExchange(
            cname, crealm, keys,
            sname=sname, srealm=srealm or crealm,
            now=self._now()[0], nonce=self._nonce(),
            lifetime=lifetime or self.default_lifetime, renewable=renewable,
            forwardable=forwardable, etypes=self.etypes, clock=self._now,
        )
        request = step.first_request()
        for _round in range(MAX_AS_ROUNDS):
            result = step.handle(self.exchange(request))
            if isinstance(result, Credential):
                return result
            request = result
        raise ClientError("KDC kept asking for pre-authentication")

    # -- TGS exchange ------------------------------------------------------------------------

    def get_service_ticket(self, tgt: Credential, service: str, *, options: int = 0) -> Credential:
        """A service ticket for ``service`` ("HTTP/localhost" or "HTTP/localhost@REALM")."""
        _, client_realm = parse_principal(tgt.client, self.realm)
        sname, srealm = parse_principal(service, client_realm or self.realm)
        return self._tgs(tgt, sname, srealm, options, till=tgt.endtime)

    def renew(self, tgt: Credential) -> Credential:
        """A renewed copy of ``tgt`` (KDC option RENEW, RFC 4120 §3.3.1)."""
        if not tgt.flags & c.RENEWABLE:
            raise ClientError("Ticket is not renewable")
        sname, srealm = parse_principal(tgt.server, self.realm)
        options = c.RENEW | (tgt.flags & TICKET_COMMON_OPTIONS)
        return self._tgs(tgt, sname, srealm, options, till=tgt.renew_till or None)

    def _tgs(self, tgt: Credential, sname: PrincipalName, srealm: str, options: int, *,
             till: int | None) -> Credential:
        step = TgsExchange(
            tgt, sname, srealm,
            options=options,
            till=till or self._now()[0] + self.default_lifetime,
            nonce=self._nonce(),
            etypes=self.etypes,
            now=self._now(),
            subkey=random_key(tgt.key.etype),
            seq_number=secrets.randbits(31),
        )
        return step.handle(self.exchange(step.request))


def client_for(config: Krb5Config, principal: str | None = None, **kwargs) -> KdcClient:
    """A KdcClient for the realm of ``principal`` (the default realm if it names none)."""
    realm = config.require_default_realm()
    if principal:
        _, named = parse_principal(principal, realm)
        realm = named or realm
    return KdcClient.from_config(config, realm, **kwargs)


__all__ = [
    "ClientError",
    "Credential",
    "KdcClient",
    "KdcError",
    "ReplyMismatch",
    "client_for",
    "default_salt",
    "keytab_keys",
    "password_keys",
]
