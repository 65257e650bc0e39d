"""Test helper for the sans-IO KDC core: a realm over the reference key service, a small
request builder and reply decryptors (the client side of RFC 4120, just enough for tests).

The realm holds the principals of the MIT 1.20 captures with the captures' keys (all kvno 1),
so captured requests and built ones are answered by the same realm:

    alice@EXAMPLE.COM           alice-password (the keys are its password keys), no preauth
    bob@EXAMPLE.COM             bob-password, +requires_preauth
    HTTP/localhost@EXAMPLE.COM  random key of the captures
    krbtgt/EXAMPLE.COM          random key of the captures

``CountingKeyService`` is the reference key service with call counters (a real subclass, not
a mock), used to prove what touched a long-term key.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from kdc import crypto
from kdc.core import Kdc
from kdc.keyservice.base import REQUIRES_PREAUTH, KeyRef
from kdc.keyservice.reference import ReferenceKeyService
from kdc.messages import constants as C
from kdc.messages import decode, decode_method_data, encode
from kdc.messages.model import (
    ApReq,
    Authenticator,
    Checksum,
    EncKdcRepPart,
    EncryptedData,
    EncryptionKey,
    EncTicketPart,
    KdcRep,
    KdcReq,
    KdcReqBody,
    KrbError,
    PAData,
    PaEncTsEnc,
    PrincipalName,
    Ticket,
)
from kdc.principal import parse_principal
from kdc.realm import RealmPolicy

REALM = "EXAMPLE.COM"
PEER = ("127.0.0.1", 40000)
# The captures were made at 2026-11-27 07:51:16Z (alice's AS exchange) by the capturing
# machine's clock; bob's PA-ENC-TIMESTAMP says 07:51:18.471374Z.
CAPTURE_NOW = 1795765876.0
BOB_PATIMESTAMP = 1795765878

# Keys from ../shared/captures/mit-krb5-1.20/README.md (published on purpose: test realm).
CAPTURE_KEYS: dict[str, dict[int, str]] = {
    "alice": {
        18: "6f4656b4249379e3f71f4da93b5cc6c25dff516351d6e1d93b4bf712a705ff3b",
        17: "8af91a0c0e809c442cfba9512ca37c6a",
    },
    "bob": {
        18: "941f98d5fd9cf929c93678bcd0624790d03ce1ff14c65c37d80526b01737267b",
        17: "824ce39a25eb4bdd684b8c708244455b",
    },
    "HTTP/localhost": {
        18: "6757b3a582d4591e7f13069378b9a255d88afd1f0363e0bc1126dd936a52cfcf",
        17: "6d92ce460e07d1a1cc832ba6b190ee44",
    },
    "krbtgt/EXAMPLE.COM": {
        18: "dc0ee3e3d66984f908440b845cc41c77fa483bea9021b4a07bf248e0ba22623a",
        17: "adf11d817162ac2ab53d6b4709dc3c44",
    },
}
# Session key of alice's TGT in alice-as-rep.bin (the TGT inside alice-tgs-req-*.bin).
ALICE_TGT_SESSION_KEY = "6a92a6cac45ad8170abf2848172aaded29dd0d758be38395cf7f16fb583ac71c"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}


class CountingKeyService(ReferenceKeyService):
    """The reference key service, counting every KeyService call by method and principal."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: Counter = Counter()
        self.log: list[tuple[str, str, int | None]] = []

    def reset(self) -> None:
        self.calls.clear()
        self.log.clear()

    @property
    def key_operations(self) -> int:
        """Operations under a long-term key (what would cost an MPC evaluation)."""
        return self.calls["encrypt"] + self.calls["decrypt"]

    async def lookup(self, principal):
        self.calls["lookup"] += 1
        self.log.append(("lookup", principal, None))
        return await super().lookup(principal)

    async def encrypt(self, ref: KeyRef, usage, plaintext, confounder=None):
        self.calls["encrypt"] += 1
        self.log.append(("encrypt", ref.principal, usage))
        return await super().encrypt(ref, usage, plaintext, confounder)

    async def decrypt(self, ref: KeyRef, usage, ciphertext):
        self.calls["decrypt"] += 1
        self.log.append(("decrypt", ref.principal, usage))
        return await super().decrypt(ref, usage, ciphertext)


def capture_key(principal: str, etype: int = 18) -> crypto.Key:
    return crypto.Key(etype, bytes.fromhex(CAPTURE_KEYS[principal][etype]))


def make_key_service(cls=CountingKeyService, **kwargs) -> ReferenceKeyService:
    """The captures' realm: alice, bob (+requires_preauth), HTTP/localhost, krbtgt at kvno 1."""
    ks = cls(REALM, **kwargs)
    for name, keys in CAPTURE_KEYS.items():
        attrs = (REQUIRES_PREAUTH,) if name == "bob" else ()
        ks.add_principal(
            name,
            keys=[crypto.Key(e, bytes.fromhex(h)) for e, h in keys.items()],
            attributes=attrs,
        )
    return ks


def make_policy(**changes) -> RealmPolicy:
    """The captures' kdc.conf: max_life 10h, max_renewable_life 7d, aes256 + aes128."""
    return RealmPolicy.from_dict(
        {"max_life": "10h 0m 0s", "max_renewable_life": "7d 0h 0m 0s",
         "supported_enctypes": "aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal"},
        realm=REALM,
    ).with_changes(**changes)


@dataclass
class Harness:
    kdc: Kdc
    keys: CountingKeyService
    audit: list[dict] = field(default_factory=list)

    async def send(self, data: bytes, now: float, *, peer=PEER, transport: str = "udp"):
        return await self.kdc.handle(data, peer, now, transport=transport)


def make_harness(*, policy: RealmPolicy | None = None, keys=None, **kdc_kwargs) -> Harness:
    keys = keys if keys is not None else make_key_service()
    audit: list[dict] = []
    kdc = Kdc(policy or make_policy(), keys, audit=audit.append, **kdc_kwargs)
    return Harness(kdc, keys, audit)


def run(coro):
    return asyncio.run(coro)


# --- request builder -------------------------------------------------------------------------


def principal(text: str) -> PrincipalName:
    return parse_principal(text, REALM)[0]


def as_req(
    client: str = "alice",
    server: str = f"krbtgt/{REALM}",
    *,
    now: float,
    etypes: tuple[int, ...] = (18, 17),
    nonce: int = 12345,
    lifetime: int | None = 86400,
    till: int | None = None,
    rtime: int | None = None,
    options: int = C.RENEWABLE_OK,
    padata: tuple[PAData, ...] = (),
    realm: str = REALM,
) -> bytes:
    """A DER AS-REQ as MIT kinit shapes it (till = now + lifetime unless ``till`` is given)."""
    if till is None and lifetime is not None:
        till = int(now) + lifetime
    body = KdcReqBody(
        kdc_options=options,
        cname=principal(client),
        realm=realm,
        sname=principal(server),
        from_=None,
        till=till if till is not None else 0,
        rtime=rtime,
        nonce=nonce,
        etype=etypes,
    )
    return encode(KdcReq(C.KRB_AS_REQ, padata, body))


def enc_timestamp(key: crypto.Key, when: float, *, usage: int = C.KU_PA_ENC_TIMESTAMP) -> PAData:
    """PA-ENC-TIMESTAMP for ``when`` under ``key`` (RFC 4120 §5.2.7.2)."""
    seconds = int(when)
    ts = encode(PaEncTsEnc(seconds, int((when - seconds) * 1e6)))
    enc = EncryptedData(key.etype, None, crypto.encrypt(key, usage, ts))
    return PAData(C.PA_ENC_TIMESTAMP, encode(enc))


@dataclass
class Creds:
    """A ticket and what its owner knows about it."""

    rep: KdcRep
    part: EncKdcRepPart
    session_key: crypto.Key

    @property
    def ticket(self) -> Ticket:
        return self.rep.ticket


def decode_reply(data: bytes):
    from kdc.messages import decode_message

    return decode_message(data)


def as_rep_creds(data: bytes, key: crypto.Key) -> Creds:
    """Decode an AS-REP and decrypt its enc-part with the client's key (usage 3)."""
    rep = decode(KdcRep, data)
    assert rep.msg_type == C.KRB_AS_REP, rep
    part = decode(EncKdcRepPart, crypto.decrypt(key, C.KU_AS_REP_ENC_PART, rep.enc_part.cipher))
    return Creds(rep, part, crypto.Key(part.key.keytype, part.key.keyvalue))


def tgs_rep_creds(data: bytes, key: crypto.Key, usage: int) -> Creds:
    rep = decode(KdcRep, data)
    assert rep.msg_type == C.KRB_TGS_REP, rep
    part = decode(EncKdcRepPart, crypto.decrypt(key, usage, rep.enc_part.cipher))
    return Creds(rep, part, crypto.Key(part.key.keytype, part.key.keyvalue))


def error_of(data: bytes) -> KrbError:
    err = decode(KrbError, data)
    return err


def method_data_of(err: KrbError) -> dict[int, bytes]:
    return {pa.padata_type: pa.padata_value for pa in decode_method_data(err.e_data)}


def decrypt_ticket(ticket: Ticket, key: crypto.Key) -> EncTicketPart:
    return decode(EncTicketPart, crypto.decrypt(key, C.KU_TICKET, ticket.enc_part.cipher))


def tgs_req(
    tgt: Creds,
    server: str = "HTTP/localhost",
    *,
    now: float,
    etypes: tuple[int, ...] = (18, 17),
    nonce: int = 54321,
    lifetime: int | None = 86400,
    till: int | None = None,
    rtime: int | None = None,
    options: int = C.RENEWABLE_OK,
    subkey: crypto.Key | None = None,
    authenticator_client: str | None = None,
    ctime: float | None = None,
    checksum_body: bytes | None = None,
    no_checksum: bool = False,
    session_key: crypto.Key | None = None,
    extra_padata: tuple[PAData, ...] = (),
    realm: str = REALM,
) -> bytes:
    """A DER TGS-REQ: PA-TGS-REQ AP-REQ with ``tgt``, authenticator checksum over the body.

    The keyword arguments that break things (``authenticator_client``, ``ctime``,
    ``checksum_body``, ``no_checksum``, ``session_key``) exist for negative tests.
    """
    if till is None and lifetime is not None:
        till = int(now) + lifetime
    body = KdcReqBody(
        kdc_options=options,
        cname=None,
        realm=realm,
        sname=principal(server),
        from_=None,
        till=till if till is not None else 0,
        rtime=rtime,
        nonce=nonce,
        etype=etypes,
    )
    body_der = encode(body)
    key = session_key or tgt.session_key
    cksum = None
    if not no_checksum:
        cksumtype, value = crypto.make_checksum(
            key, C.KU_TGS_REQ_AUTH_CKSUM, checksum_body if checksum_body is not None else body_der
        )
        cksum = Checksum(cksumtype, value)
    when = now if ctime is None else ctime
    seconds = int(when)
    cname = tgt.rep.cname if authenticator_client is None else principal(authenticator_client)
    auth = Authenticator(
        crealm=tgt.rep.crealm,
        cname=cname,
        cksum=cksum,
        cusec=int((when - seconds) * 1e6),
        ctime=seconds,
        subkey=None if subkey is None else EncryptionKey(subkey.etype, subkey.contents),
        seq_number=None,
    )
    enc_auth = EncryptedData(key.etype, None, crypto.encrypt(key, C.KU_TGS_REQ_AUTH, encode(auth)))
    ap_req = ApReq(ap_options=0, ticket=tgt.ticket, authenticator=enc_auth)
    padata = (PAData(C.PA_TGS_REQ, encode(ap_req)), *extra_padata)
    data = encode(KdcReq(C.KRB_TGS_REQ, padata, body))
    assert decode(KdcReq, data).req_body_bytes == body_der
    return data


async def get_tgt(h: Harness, client: str = "alice", *, now: float, **kwargs) -> Creds:
    """Run an AS exchange (with PA-ENC-TIMESTAMP for bob) and return the decrypted TGT."""
    key = capture_key(client)
    padata = kwargs.pop("padata", ())
    if client == "bob" and not padata:
        padata = (enc_timestamp(key, now),)
    reply = await h.send(as_req(client, now=now, padata=padata, **kwargs), now)
    return as_rep_creds(reply, key)
