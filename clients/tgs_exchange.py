"""The TGS exchange (RFC 4120 §3.3), sans-IO: service tickets and renewal.

``TgsExchange(...).request`` is the TGS-REQ to send; ``handle(reply)`` checks and decrypts
the answer. PA-TGS-REQ carries an AP-REQ with the TGT whose authenticator (key usage 7, TGT
session key) holds a fresh subkey and a checksum over the DER req-body (usage 6, RFC 4120
§7.2.2 / §5.5.1). The reply is decrypted with the subkey (usage 9), falling back to the
session key (usage 8) for a KDC that ignores subkeys (§5.4.2).
"""

from __future__ import annotations

from collections.abc import Sequence

from clients.ccache import Credential
from clients.errors import ClientError, KdcError, ReplyMismatch, kdc_error
from clients.kdc_reply import check_reply, credential_from_reply, decrypt_reply_part
from kdc.crypto import Key, encrypt, make_checksum
from kdc.messages import DecodeError, decode, encode
from kdc.messages import constants as c
from kdc.messages.model import (
    ApReq,
    Authenticator,
    Checksum,
    EncryptedData,
    EncryptionKey,
    KdcRep,
    KdcReq,
    KdcReqBody,
    KrbError,
    PAData,
    PrincipalName,
    Ticket,
)
from kdc.principal import parse_principal, unparse_principal

#: Ticket flags that are also KDC options with the same bit (forwardable, proxiable,
#: allow-postdate, renewable); a renewal asks for them again, as MIT does
#: (KDC_TKT_COMMON_MASK), since the KDC sets the new ticket's flags from the options.
TICKET_COMMON_OPTIONS = c.FORWARDABLE | c.PROXIABLE | c.ALLOW_POSTDATE | c.RENEWABLE


class TgsExchange:
    """One TGS-REQ with ``tgt`` for ``sname@srealm``."""

    def __init__(
        self,
        tgt: Credential,
        sname: PrincipalName,
        srealm: str,
        *,
        options: int,
        till: int,
        nonce: int,
        etypes: Sequence[int],
        now: tuple[int, int],
        subkey: Key,
        seq_number: int,
        tgs_realm: str | None = None,
    ) -> None:
        self.tgt = tgt
        self.sname, self.srealm = sname, srealm
        self.cname, self.crealm = parse_principal(tgt.client, "")
        self.subkey = subkey
        try:
            ticket = decode(Ticket, tgt.ticket)
        except DecodeError:
            raise ClientError("the ticket-granting ticket in the cache is malformed") from None
        self.body = KdcReqBody(
            kdc_options=options,
            cname=None,
            realm=tgs_realm or srealm,
            sname=sname,
            from_=None,
            till=till,
            rtime=None,
            nonce=nonce,
            etype=tuple(etypes),
        )
        session = tgt.key
        cksumtype, cksum = make_checksum(session, c.KU_TGS_REQ_AUTH_CKSUM, encode(self.body))
        sec, usec = now
        authenticator = Authenticator(
            crealm=self.crealm,
            cname=self.cname,
            cksum=Checksum(cksumtype, cksum),
            cusec=usec,
            ctime=sec,
            subkey=EncryptionKey(subkey.etype, subkey.contents),
            seq_number=seq_number,
        )
        enc_auth = encrypt(session, c.KU_TGS_REQ_AUTH, encode(authenticator))
        ap_req = ApReq(0, ticket, EncryptedData(session.etype, None, enc_auth))
        self.request = KdcReq(c.KRB_TGS_REQ, (PAData(c.PA_TGS_REQ, encode(ap_req)),), self.body)

    def handle(self, reply: KdcRep | KrbError) -> Credential:
        if isinstance(reply, KrbError):
            raise kdc_error(reply, server=unparse_principal(self.sname, self.srealm))
        if reply.msg_type != c.KRB_TGS_REP:
            raise ReplyMismatch("KDC reply has the wrong message type")
        try:
            part = decrypt_reply_part(self.subkey, c.KU_TGS_REP_ENC_PART_SUBKEY, reply)
        except KdcError:
            part = decrypt_reply_part(self.tgt.key, c.KU_TGS_REP_ENC_PART_SESSION_KEY, reply)
        check_reply(reply, part, self.body, self.cname, self.crealm, self.sname, self.srealm)
        return credential_from_reply(reply, part)
