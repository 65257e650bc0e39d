"""Checks and conversions shared by the AS and TGS replies (RFC 4120 §3.1.5, §3.3.4)."""

from __future__ import annotations

from clients.ccache import Credential
from clients.errors import KdcError, ReplyMismatch
from kdc.crypto import IntegrityError, Key, decrypt
from kdc.messages import DecodeError, decode, encode
from kdc.messages import constants as c
from kdc.messages.model import EncKdcRepPart, KdcRep, KdcReqBody, PrincipalName
from kdc.principal import unparse_principal


def principal_equal(a: PrincipalName, b: PrincipalName) -> bool:
    """Same components; name types are not compared (RFC 4120 §6.2: a hint), as MIT does."""
    return tuple(a.components) == tuple(b.components)


def decrypt_reply_part(key: Key, usage: int, rep: KdcRep) -> EncKdcRepPart:
    """The reply's EncKDCRepPart (tag 25 or 26 accepted, RFC 4120 §5.4.2).

    A wrong key shows as KdcError 31 (KRB_AP_ERR_BAD_INTEGRITY), as in MIT's libkrb5.
    """
    if rep.enc_part.etype != key.etype:
        raise KdcError(c.KRB_AP_ERR_BAD_INTEGRITY)
    try:
        plaintext = decrypt(key, usage, rep.enc_part.cipher)
    except IntegrityError:
        raise KdcError(c.KRB_AP_ERR_BAD_INTEGRITY) from None
    try:
        return decode(EncKdcRepPart, plaintext)
    except DecodeError:
        raise ReplyMismatch("KDC reply's encrypted part is malformed") from None


def check_reply(
    rep: KdcRep,
    part: EncKdcRepPart,
    body: KdcReqBody,
    cname: PrincipalName,
    crealm: str,
    sname: PrincipalName | None,
    srealm: str,
) -> None:
    """The reply must answer this request: our nonce, our client, the server we asked for."""
    if part.nonce != body.nonce:  # RFC 4120 §3.1.5: replay protection
        raise ReplyMismatch("KDC reply nonce does not match the request")
    if rep.crealm != crealm or not principal_equal(rep.cname, cname):
        raise ReplyMismatch("KDC reply is for another client")
    if body.kdc_options & c.CANONICALIZE:
        return  # RFC 6806 §11: the KDC may rewrite the names
    if part.srealm != srealm or (sname is not None and not principal_equal(part.sname, sname)):
        raise ReplyMismatch("KDC reply is for another server")


def credential_from_reply(rep: KdcRep, part: EncKdcRepPart) -> Credential:
    """The ccache credential for a checked reply (times 0 when absent, as MIT stores them)."""
    return Credential(
        client=unparse_principal(rep.cname, rep.crealm),
        server=unparse_principal(part.sname, part.srealm),
        key=Key(part.key.keytype, part.key.keyvalue),
        authtime=part.authtime,
        starttime=part.starttime or 0,
        endtime=part.endtime,
        renew_till=part.renew_till or 0,
        flags=part.flags,
        ticket=encode(rep.ticket),
        client_name=rep.cname,
        server_name=part.sname,
    )
