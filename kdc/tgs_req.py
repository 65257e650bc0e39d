"""The TGS exchange (RFC 4120 §3.3): service tickets and renewals, authenticated by a TGT.

Steps (RFC 4120 §3.3.2, in MIT ``process_tgs_req`` order):
1. PA-TGS-REQ carries an AP-REQ whose ticket must be this realm's TGT.
2. The TGT's enc-part is decrypted by the key service under the krbtgt key named by the
   ticket's kvno and etype (usage 2): the only long-term-key operation on the way in, done
   once per TGT (``kdc.tgt_cache``). The lookup of the requested service runs at the same
   time.
3. The authenticator is decrypted with the TGT session key (usage 7, plain crypto), must name
   the TGT's client, be within the clock skew, and carry a keyed checksum over the req-body as
   received (usage 6).
4. The new ticket is encrypted under the service key (usage 2, key service); the reply under
   the authenticator subkey (usage 9) or else the TGT session key (usage 8), plain crypto.

PA-FX-FAST is ignored: MIT 1.20 armors every TGS-REQ (implicit TGS armor, RFC 6113 §5.4.1.1)
and the outer req-body is a copy of the armored one; a KDC that does not offer FAST answers the
outer request unarmored, which MIT accepts. No PAC is added to tickets.

Not in the first version: cross-realm TGTs, user-to-user (ENC-TKT-IN-SKEY), S4U, VALIDATE
and postdating (answered KDC_ERR_BADOPTION as MIT words it), enc-authorization-data (ignored),
and MIT's re-check of the client's database entry on every TGS request (the TGT is trusted
until it expires).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kdc import crypto, failure_budget
from kdc.as_req import select_session_etype
from kdc.errors import KdcError
from kdc.kdc_log import RequestRecord
from kdc.keyservice.base import (
    DISALLOW_ALL_TIX,
    DISALLOW_SVR,
    IntegrityFailure,
    KeyRef,
    PrincipalEntry,
    UnknownKey,
)
from kdc.messages import DecodeError, decode, encode
from kdc.messages import constants as C
from kdc.messages.model import (
    ApReq,
    Authenticator,
    EncKdcRepPart,
    EncryptedData,
    EncryptionKey,
    EncTicketPart,
    KdcRep,
    KdcReq,
    LastReqEntry,
    PrincipalName,
    Ticket,
)
from kdc.policy import (
    TicketTimes,
    forwardable_allowed,
    renewable_allowed,
    renewed_times,
    ticket_times,
)
from kdc.principal import unparse_principal
from kdc.transport import start_eagerly

if TYPE_CHECKING:
    from kdc.core import Kdc

STATUS_PROCESS_TGS = "PROCESS_TGS"  # MIT's status for every failure of the AP-REQ checks
# Options this KDC cannot honour in the first version, with MIT's status for each: VALIDATE
# (we never issue invalid, i.e. postdated, tickets, so every TGT is already valid), user-to-user
# and S4U2Proxy (both need a second ticket), and postdating.
UNSUPPORTED_OPTIONS: tuple[tuple[int, str], ...] = (
    (C.VALIDATE, "VALIDATE VALID TICKET"),
    (C.ENC_TKT_IN_SKEY, "NO_2ND_TKT"),
    (C.CNAME_IN_ADDL_TKT, "NO_2ND_TKT"),
    (C.POSTDATED, "POSTDATE NOT ALLOWED"),
)
# Ticket flags that carry over from the TGT to tickets issued with it (MIT copies these).
COPIED_FLAGS = C.PRE_AUTHENT | C.HW_AUTHENT

LAST_REQ_NONE = (LastReqEntry(C.LR_NONE, 0),)


def same_principal(a: PrincipalName, a_realm: str, b: PrincipalName, b_realm: str) -> bool:
    """krb5_principal_compare: realm and components equal; the name type does not count."""
    return a_realm == b_realm and a.components == b.components


def _to_key(ek: EncryptionKey) -> crypto.Key:
    try:
        crypto.profile(ek.keytype)
    except crypto.UnsupportedEnctype:
        raise KdcError(C.KDC_ERR_ETYPE_NOSUPP, STATUS_PROCESS_TGS) from None
    return crypto.Key(ek.keytype, ek.keyvalue)


async def _decrypt_tgt(kdc: Kdc, ticket: Ticket, address: str | None,
                       now: float) -> EncTicketPart:
    """The TGT's EncTicketPart, decrypted and checked by the key service (usage 2), or the
    same TGT's from ``kdc.tgt_cache`` while its key version is still the krbtgt's. A forged
    TGT spends one of ``address``'s failures (kdc/failure_budget.py); an address with none
    left gets no decryption."""
    enc = ticket.enc_part
    kvno, etype = enc.kvno, enc.etype
    entry = None
    if kvno is None:
        entry = await kdc.keys.lookup(kdc.policy.tgs_name)
        if entry is None:
            raise KdcError(C.KRB_AP_ERR_NOKEY, STATUS_PROCESS_TGS)
        kvno = entry.kvno
    cached = kdc.tgt_cache.get(kvno, etype, enc.cipher)
    if cached is not None:
        if entry is None:
            entry = await kdc.keys.lookup(kdc.policy.tgs_name)
        if entry is not None and any(k.kvno == kvno and k.etype == etype for k in entry.keys):
            return cached
    if kdc.failure_budget.exhausted(address, now):
        raise KdcError(C.KDC_ERR_POLICY, failure_budget.STATUS)
    ref = KeyRef(kdc.policy.tgs_name, kvno, etype)
    try:
        plain = await kdc.keys.decrypt(ref, C.KU_TICKET, enc.cipher)
    except IntegrityFailure:
        kdc.failure_budget.failed(address, now)
        raise KdcError(C.KRB_AP_ERR_BAD_INTEGRITY, STATUS_PROCESS_TGS) from None
    except UnknownKey:
        # RFC 4120 §3.2.3 / MIT: a ticket under a key version we do not hold.
        raise KdcError(C.KRB_AP_ERR_BADKEYVER, STATUS_PROCESS_TGS) from None
    try:
        part = decode(EncTicketPart, plain)
    except DecodeError:
        raise KdcError(C.KRB_ERR_GENERIC, STATUS_PROCESS_TGS) from None
    kdc.tgt_cache.put(kvno, etype, enc.cipher, part)
    return part


def _check_authenticator(kdc: Kdc, req: KdcReq, ap_req: ApReq, tgt: EncTicketPart,
                         now: float) -> Authenticator:
    """RFC 4120 §3.2.3 and §3.3.2 checks of the TGS-REQ authenticator (plain crypto)."""
    session = _to_key(tgt.key)
    if ap_req.authenticator.etype != session.etype:
        raise KdcError(C.KRB_AP_ERR_BAD_INTEGRITY, STATUS_PROCESS_TGS)
    try:
        plain = crypto.decrypt(session, C.KU_TGS_REQ_AUTH, ap_req.authenticator.cipher)
    except crypto.IntegrityError:
        raise KdcError(C.KRB_AP_ERR_BAD_INTEGRITY, STATUS_PROCESS_TGS) from None
    try:
        auth = decode(Authenticator, plain)
    except DecodeError:
        raise KdcError(C.KRB_ERR_GENERIC, STATUS_PROCESS_TGS) from None
    if not same_principal(auth.cname, auth.crealm, tgt.cname, tgt.crealm):
        raise KdcError(C.KRB_AP_ERR_BADMATCH, STATUS_PROCESS_TGS)
    if abs(auth.ctime - int(now)) > kdc.policy.clockskew:
        raise KdcError(C.KRB_AP_ERR_SKEW, STATUS_PROCESS_TGS)
    # RFC 4120 §3.3.2: the authenticator's checksum must cover the req-body as sent, and it must
    # be a keyed one (MIT: KRB_AP_ERR_INAPP_CKSUM when absent or unkeyed).
    if auth.cksum is None or auth.cksum.cksumtype not in crypto.CKSUMTYPES:
        raise KdcError(C.KRB_AP_ERR_INAPP_CKSUM, STATUS_PROCESS_TGS)
    if not crypto.verify_checksum(
        session, C.KU_TGS_REQ_AUTH_CKSUM, req.req_body_bytes,
        auth.cksum.cksumtype, auth.cksum.checksum,
    ):
        raise KdcError(C.KRB_AP_ERR_MODIFIED, STATUS_PROCESS_TGS)
    return auth


async def process_tgs_req(kdc: Kdc, req: KdcReq, rec: RequestRecord, now: float) -> bytes:
    """Handle one decoded TGS-REQ; returns the DER TGS-REP or raises KdcError."""
    body = req.req_body
    policy = kdc.policy
    itime = int(now)
    rec.req_etypes = body.etype
    if body.sname is not None:
        rec.server = unparse_principal(body.sname, body.realm)

    rec.step = "PROCESS_TGS"
    pa = req.find_padata(C.PA_TGS_REQ)
    if pa is None:
        raise KdcError(C.KDC_ERR_PADATA_TYPE_NOSUPP, STATUS_PROCESS_TGS)
    try:
        ap_req = decode(ApReq, pa.padata_value)
    except DecodeError:
        # MIT answers an undecodable AP-REQ inside a decodable TGS-REQ with KRB_ERR_GENERIC.
        raise KdcError(C.KRB_ERR_GENERIC, STATUS_PROCESS_TGS) from None
    ticket = ap_req.ticket
    tgs_name = kdc.tgs_name
    if unparse_principal(ticket.sname, ticket.realm) != tgs_name:
        # Only our own TGT may authenticate a TGS-REQ (no cross-realm, no user-to-user).
        raise KdcError(C.KRB_AP_ERR_NOT_US, STATUS_PROCESS_TGS)

    # The TGT decryption (MPC) and the service lookup (metadata) are independent.
    sname_text = rec.server
    lookup = kdc.keys.lookup(sname_text) if sname_text is not None else _none()
    tgt_result, server_result = await _both(_decrypt_tgt(kdc, ticket, rec.address, now), lookup)
    if isinstance(tgt_result, BaseException):
        raise tgt_result
    tgt: EncTicketPart = tgt_result
    rec.client = unparse_principal(tgt.cname, tgt.crealm)
    rec.cname, rec.crealm = tgt.cname, tgt.crealm  # KRB-ERRORs from here on name the client

    # RFC 4120 §3.2.3 ticket times (MIT krb5_rd_req_decoded with the KDC's clock skew).
    start = tgt.starttime if tgt.starttime is not None else tgt.authtime
    if start - itime > policy.clockskew or tgt.flags & C.INVALID:
        raise KdcError(C.KRB_AP_ERR_TKT_NYV, STATUS_PROCESS_TGS)
    if itime - tgt.endtime > policy.clockskew:
        raise KdcError(C.KRB_AP_ERR_TKT_EXPIRED, STATUS_PROCESS_TGS)

    auth = _check_authenticator(kdc, req, ap_req, tgt, now)

    rec.step = "LOOKING_UP_SERVER"
    if isinstance(server_result, BaseException):
        raise server_result
    if body.sname is None:
        raise KdcError(C.KDC_ERR_S_PRINCIPAL_UNKNOWN, "LOOKING_UP_SERVER")
    server: PrincipalEntry | None = server_result
    if server is None:
        raise KdcError(C.KDC_ERR_S_PRINCIPAL_UNKNOWN, "LOOKING_UP_SERVER")
    if DISALLOW_ALL_TIX in server.attributes or DISALLOW_SVR in server.attributes:
        raise KdcError(C.KDC_ERR_S_PRINCIPAL_UNKNOWN, "SERVER NOT ALLOWED")

    rec.step = "VALIDATE_TGS_REQUEST"
    opts = body.kdc_options
    _check_options(opts)
    renew = bool(opts & C.RENEW)
    rec.renew = renew
    if opts & C.FORWARDED and not tgt.flags & C.FORWARDABLE:
        # RFC 4120 §2.6: only a forwardable TGT may be forwarded.
        raise KdcError(C.KDC_ERR_BADOPTION, "TGT NOT FORWARDABLE")

    ses_etype = select_session_etype(kdc, body.etype, server, rec.server == tgs_name)
    if ses_etype is None:
        raise KdcError(C.KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE")
    server_key = next((k for k in server.keys if k.etype in kdc.session_etypes), None)
    if server_key is None:
        raise KdcError(C.KDC_ERR_ETYPE_NOSUPP, "FINDING_SERVER_KEY")

    rec.step = "ISSUE_TICKET"
    if renew:
        times, flags = _renewal(tgt, body.sname, body.realm, ticket, itime)
    else:
        flags = tgt.flags & COPIED_FLAGS
        if opts & C.FORWARDABLE and tgt.flags & C.FORWARDABLE and forwardable_allowed(server):
            flags |= C.FORWARDABLE
        if opts & C.FORWARDED:
            flags |= C.FORWARDED  # RFC 4120 §2.6: addresses come from the request
        elif tgt.flags & C.FORWARDED:
            flags |= C.FORWARDED  # §2.6: a ticket from a forwarded TGT stays marked forwarded
        times = ticket_times(
            policy, itime, kdc_options=opts, till=body.till, rtime=body.rtime,
            client=None, server=server, tgt_endtime=tgt.endtime,
            tgt_renew_till=tgt.renew_till,
            may_renew=bool(tgt.flags & C.RENEWABLE) and renewable_allowed(server),
        )
        if times.endtime <= itime:
            raise KdcError(C.KDC_ERR_NEVER_VALID, "NEVER_VALID")
        if times.renew_till is not None:
            flags |= C.RENEWABLE

    # RFC 4120 §2.7: our TGTs never cross a realm, so the transited path is empty and trivially
    # acceptable; like MIT we say so unless the client asked us not to check.
    if not opts & C.DISABLE_TRANSITED_CHECK and not tgt.transited.contents:
        flags |= C.TRANSITED_POLICY_CHECKED
    caddr = (body.addresses or None) if opts & C.FORWARDED else tgt.caddr
    session_key = kdc.new_session_key(ses_etype)
    enc_ticket = EncTicketPart(
        flags=flags,
        key=session_key,
        crealm=tgt.crealm,
        cname=tgt.cname,
        transited=tgt.transited,
        authtime=tgt.authtime,
        starttime=None if times.starttime == tgt.authtime else times.starttime,
        endtime=times.endtime,
        renew_till=times.renew_till,
        caddr=caddr,
    )
    enc_rep = EncKdcRepPart(
        key=session_key,
        last_req=LAST_REQ_NONE,
        nonce=body.nonce,
        key_expiration=None,
        flags=flags,
        authtime=tgt.authtime,
        starttime=enc_ticket.starttime,
        endtime=times.endtime,
        renew_till=times.renew_till,
        srealm=body.realm,
        sname=body.sname,  # canonicalize: the name as requested (no aliases in our database)
        caddr=caddr,
        tag=C.TAG_ENC_TGS_REP_PART,
    )
    # RFC 4120 §3.3.3: the reply key is the authenticator's subkey when present (usage 9),
    # else the TGT session key (usage 8).
    subkey = auth.subkey
    reply_key = _to_key(subkey if subkey is not None else tgt.key)

    rec.step = "ENCRYPT_TICKET"
    server_ref = KeyRef(server.name, server_key.kvno, server_key.etype)
    ticket_cipher = await kdc.keys.encrypt(server_ref, C.KU_TICKET, encode(enc_ticket))
    if subkey is not None:
        # MIT clients draw a new subkey for every request: one-shot crypto, nothing cached.
        rep_cipher = crypto.encrypt_once(
            reply_key, C.KU_TGS_REP_ENC_PART_SUBKEY, encode(enc_rep), kdc.rng(16))
    else:
        rep_cipher = crypto.encrypt(
            reply_key, C.KU_TGS_REP_ENC_PART_SESSION_KEY, encode(enc_rep), kdc.rng(16))
    rec.step = "ENCODE_KDC_REP"
    reply = KdcRep(
        msg_type=C.KRB_TGS_REP,
        padata=None,
        crealm=tgt.crealm,
        cname=tgt.cname,
        ticket=Ticket(
            realm=body.realm,
            sname=body.sname,
            enc_part=EncryptedData(server_key.etype, server_key.kvno, ticket_cipher),
        ),
        enc_part=EncryptedData(reply_key.etype, None, rep_cipher),
    )
    rec.authtime = tgt.authtime
    rec.rep_etype = reply_key.etype
    rec.tkt_etype = server_key.etype
    rec.ses_etype = ses_etype
    rec.flags = flags
    return encode(reply)


def _check_options(opts: int) -> None:
    for option, status in UNSUPPORTED_OPTIONS:
        if opts & option:
            raise KdcError(C.KDC_ERR_BADOPTION, status)


def _renewal(tgt: EncTicketPart, sname: PrincipalName, realm: str, ticket: Ticket,
             now: int) -> tuple[TicketTimes, int]:
    """RFC 4120 §3.3.3.1 RENEW: same flags and authtime, fresh start, same lifetime."""
    if not same_principal(sname, realm, ticket.sname, ticket.realm):
        raise KdcError(C.KDC_ERR_SERVER_NOMATCH, "SERVER DIDN'T MATCH TICKET FOR RENEW/FORWARD/ETC")
    if not tgt.flags & C.RENEWABLE or tgt.renew_till is None:
        raise KdcError(C.KDC_ERR_BADOPTION, "TICKET NOT RENEWABLE")
    if tgt.renew_till < now:
        raise KdcError(C.KRB_AP_ERR_TKT_EXPIRED, "TKT_EXPIRED")
    start = tgt.starttime if tgt.starttime is not None else tgt.authtime
    times = renewed_times(now, starttime=start, endtime=tgt.endtime, renew_till=tgt.renew_till)
    return times, tgt.flags


async def _none() -> None:
    return None


def _start(coro) -> tuple[bool, object]:
    try:
        return start_eagerly(coro)
    except Exception as exc:  # noqa: BLE001 - handed back as a result, as gather does
        return True, exc


async def _both(first, second) -> tuple[object, object]:
    """``gather(first, second, return_exceptions=True)`` with both started eagerly.

    Both coroutines are started before either outcome is looked at, so an MPC backend sees the
    two requests together; when neither has to wait (the reference key service) no Task is
    made at all.
    """
    done_a, a = _start(first)
    done_b, b = _start(second)
    if done_a and done_b:
        return a, b
    waiting = [x for done, x in ((done_a, a), (done_b, b)) if not done]
    outcomes = iter(await asyncio.gather(*waiting, return_exceptions=True))
    return (a if done_a else next(outcomes)), (b if done_b else next(outcomes))
