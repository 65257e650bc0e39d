"""The AS exchange (RFC 4120 §3.1), sans-IO: messages in, messages out.

``AsExchange.first_request()`` gives the AS-REQ to send; ``handle(reply)`` takes the decoded
KDC answer and returns either the next AS-REQ (after KDC_ERR_PREAUTH_REQUIRED) or the final
``Credential``. The choices follow MIT's libkrb5:

- the first AS-REQ carries no pre-authentication;
- on KDC_ERR_PREAUTH_REQUIRED the salt and s2kparams come from PA-ETYPE-INFO2
  (RFC 4120 §5.2.7.5), PA-ENC-TIMESTAMP is sent (§5.2.7.2, key usage 1) and PA-FX-COOKIE is
  echoed (RFC 6113 §5.2);
- the reply key comes from the reply's PA-ETYPE-INFO2 when present, else from what the
  pre-authentication round used, else the default salt (realm + name, §4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from clients.ccache import Credential
from clients.errors import ClientError, KdcError, ReplyMismatch, kdc_error
from clients.kdc_reply import check_reply, credential_from_reply, decrypt_reply_part
from clients.keytab import KeytabEntry
from kdc.crypto import Key, encrypt, string_to_key
from kdc.messages import DecodeError, decode_etype_info2, decode_method_data, encode
from kdc.messages import constants as c
from kdc.messages.model import (
    EncryptedData,
    EtypeInfo2Entry,
    KdcRep,
    KdcReq,
    KdcReqBody,
    KrbError,
    PAData,
    PaEncTsEnc,
    PrincipalName,
)
from kdc.principal import unparse_principal

#: Enctypes we offer, in preference order (the rows of kdc.crypto's table).
DEFAULT_ETYPES: tuple[int, ...] = (18, 17)


def default_salt(name: PrincipalName, realm: str) -> str:
    """RFC 4120 §4: the realm followed by the name components, no separators."""
    return realm + "".join(name.components)


@dataclass(frozen=True)
class KeySource:
    """Where the client's long-term key comes from: ``key_for(etype, salt, s2kparams, kvno)``,
    and which enctypes it can give."""

    key_for: Callable[[int, str, bytes | None, int | None], Key]
    etypes: tuple[int, ...]

    def __repr__(self) -> str:
        return f"KeySource(etypes={self.etypes}, <keys redacted>)"


def password_keys(password: str, etypes: Sequence[int] = DEFAULT_ETYPES) -> KeySource:
    """Keys by string-to-key (RFC 3962 §4) of ``password``, computed once per salt."""
    cache: dict[tuple, Key] = {}

    def key_for(etype: int, salt: str, params: bytes | None, kvno: int | None) -> Key:
        index = (etype, salt, params)
        if index not in cache:
            cache[index] = string_to_key(etype, password, salt, params)
        return cache[index]

    return KeySource(key_for, tuple(etypes))


def keytab_keys(principal: str, entries: Iterable[KeytabEntry]) -> KeySource:
    """Keys of ``principal`` from keytab entries: the newest kvno unless the KDC names one."""
    mine = [e for e in entries if e.principal == principal]
    etypes = [e for e in DEFAULT_ETYPES if any(k.key.etype == e for k in mine)]
    if not etypes:
        raise ClientError(f"Keytab contains no suitable keys for {principal}")

    def key_for(etype: int, salt: str, params: bytes | None, kvno: int | None) -> Key:
        usable = [e for e in mine if e.key.etype == etype and (kvno is None or e.kvno == kvno)]
        if not usable:
            raise ClientError(f"No key table entry found for {principal} (etype {etype})")
        return max(usable, key=lambda e: e.kvno).key

    return KeySource(key_for, tuple(etypes))


def etype_info2(padata: Iterable[PAData] | None) -> list[EtypeInfo2Entry]:
    """The entries of a PA-ETYPE-INFO2 in ``padata`` (empty if there is none)."""
    for pa in padata or ():
        if pa.padata_type == c.PA_ETYPE_INFO2:
            try:
                return list(decode_etype_info2(pa.padata_value))
            except DecodeError:
                raise ReplyMismatch("KDC sent a malformed PA-ETYPE-INFO2") from None
    return []


class AsExchange:
    """One AS exchange for ``cname@crealm``; see the module docstring for the protocol."""

    def __init__(
        self,
        cname: PrincipalName,
        crealm: str,
        keys: KeySource,
        *,
        sname: PrincipalName,
        srealm: str,
        now: int,
        nonce: int,
        lifetime: int,
        renewable: int | None = None,
        forwardable: bool = False,
        etypes: Sequence[int] = DEFAULT_ETYPES,
        clock: Callable[[], tuple[int, int]],
    ) -> None:
        self.cname, self.crealm, self.keys = cname, crealm, keys
        self.client_text = unparse_principal(cname, crealm)
        self.clock = clock
        options = c.FORWARDABLE if forwardable else 0
        rtime = None
        if renewable:
            options |= c.RENEWABLE  # RFC 4120 §5.4.1: rtime is the requested renew-till
            rtime = now + renewable
        else:
            options |= c.RENEWABLE_OK  # as MIT kinit does by default
        offered = tuple(e for e in etypes if e in keys.etypes) or keys.etypes
        self.body = KdcReqBody(
            kdc_options=options,
            cname=cname,
            realm=crealm,
            sname=sname,
            from_=None,
            till=now + lifetime,
            rtime=rtime,
            nonce=nonce,
            etype=offered,
        )
        self.salt_info: EtypeInfo2Entry | None = None
        self.preauth_sent = False

    def first_request(self) -> KdcReq:
        return KdcReq(c.KRB_AS_REQ, (), self.body)

    def handle(self, reply: KdcRep | KrbError) -> KdcReq | Credential:
        """The next AS-REQ to send, or the credential; KdcError/ReplyMismatch on failure."""
        if isinstance(reply, KdcRep):
            if reply.msg_type != c.KRB_AS_REP:
                raise ReplyMismatch("KDC reply has the wrong message type")
            return self._finish(reply)
        if reply.error_code != c.KDC_ERR_PREAUTH_REQUIRED or self.preauth_sent:
            raise kdc_error(reply, client=self.client_text)
        return self._preauth_request(reply)

    def _preauth_request(self, error: KrbError) -> KdcReq:
        # RFC 4120 §5.2.7: METHOD-DATA lists what the KDC accepts; we do encrypted timestamp.
        methods = _method_data(error)
        if not any(pa.padata_type == c.PA_ENC_TIMESTAMP for pa in methods):
            raise kdc_error(error, client=self.client_text)
        info = self._choose_etype(etype_info2(methods))
        self.salt_info = info
        key = self.keys.key_for(info.etype, info.salt or default_salt(self.cname, self.crealm),
                                info.s2kparams, None)
        sec, usec = self.clock()
        stamp = encrypt(key, c.KU_PA_ENC_TIMESTAMP, encode(PaEncTsEnc(sec, usec)))
        padata = tuple(pa for pa in methods if pa.padata_type == c.PA_FX_COOKIE)
        padata += (PAData(c.PA_ENC_TIMESTAMP, encode(EncryptedData(key.etype, None, stamp))),)
        self.preauth_sent = True
        return KdcReq(c.KRB_AS_REQ, padata, self.body)

    def _choose_etype(self, info: list[EtypeInfo2Entry]) -> EtypeInfo2Entry:
        """The first PA-ETYPE-INFO2 entry we can use (the KDC lists its preference first)."""
        for entry in info:
            if entry.etype in self.body.etype:
                return entry
        if info:
            raise KdcError(c.KDC_ERR_ETYPE_NOSUPP)
        # No ETYPE-INFO2: RFC 4120 §5.2.7.5, default salt and our first enctype.
        return EtypeInfo2Entry(self.body.etype[0], default_salt(self.cname, self.crealm), None)

    def _finish(self, rep: KdcRep) -> Credential:
        etype = rep.enc_part.etype
        if etype not in self.keys.etypes:
            raise KdcError(c.KDC_ERR_ETYPE_NOSUPP)
        info = [e for e in etype_info2(rep.padata) if e.etype == etype]
        if not info and self.salt_info is not None and self.salt_info.etype == etype:
            info = [self.salt_info]
        salt = (info[0].salt if info else None) or default_salt(self.cname, self.crealm)
        params = info[0].s2kparams if info else None
        key = self.keys.key_for(etype, salt, params, rep.enc_part.kvno)
        part = decrypt_reply_part(key, c.KU_AS_REP_ENC_PART, rep)
        check_reply(rep, part, self.body, self.cname, self.crealm, self.body.sname,
                    self.body.realm)
        return credential_from_reply(rep, part)


def _method_data(error: KrbError) -> list[PAData]:
    if not error.e_data:
        return []
    try:
        return list(decode_method_data(error.e_data))
    except DecodeError:
        return []
