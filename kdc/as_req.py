"""The AS exchange (RFC 4120 §3.1): an initial ticket for a client that knows its key.

Order of checks follows MIT ``process_as_req`` (src/kdc/do_as_req.c), so clients see the same
error for the same request: client lookup, server lookup, principal and option policy, session
key enctype, client key, pre-authentication, then the ticket.

Long-term keys are touched only through the key service: the PA-ENC-TIMESTAMP decryption
(client key, usage 1), the ticket (server key, usage 2) and the reply (client key, usage 3).
The two reply encryptions are independent and are issued together so an MPC backend can
evaluate them in one batch; they start while the pre-authentication is still being verified
and are discarded if it fails (no reply is ever sent without it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdc import failure_budget, preauth
from kdc.errors import KdcError, method_data
from kdc.kdc_log import RequestRecord
from kdc.keyservice.base import DISALLOW_ALL_TIX, DISALLOW_SVR, KeyInfo, KeyRef, PrincipalEntry
from kdc.messages import constants as C
from kdc.messages import encode
from kdc.messages.model import (
    EncKdcRepPart,
    EncryptedData,
    EncTicketPart,
    KdcRep,
    KdcReq,
    LastReqEntry,
    Ticket,
    TransitedEncoding,
)
from kdc.policy import forwardable_allowed, renewable_allowed, ticket_times
from kdc.principal import unparse_principal
from kdc.transport import gather_eagerly, start_eagerly

if TYPE_CHECKING:
    from kdc.core import Kdc

# MIT AS_INVALID_OPTIONS (kdc_util.h): options that only make sense in a TGS-REQ.
AS_INVALID_OPTIONS = C.VALIDATE | C.RENEW | C.ENC_TKT_IN_SKEY | C.CNAME_IN_ADDL_TKT
# Postdated tickets are not implemented in the first version; PROXIABLE and ALLOW-POSTDATE
# are accepted but their ticket flags are not granted (RFC 4120 §2: policy may decline them).

LAST_REQ_NONE = (LastReqEntry(C.LR_NONE, 0),)  # what MIT sends without last-success tracking
EMPTY_TRANSITED = TransitedEncoding(C.DOMAIN_X500_COMPRESS, b"")


def is_tgs_name(name: str, realm: str) -> bool:
    return name == f"krbtgt/{realm}@{realm}"


def select_session_etype(kdc: Kdc, req_etypes: tuple[int, ...], server: PrincipalEntry,
                         server_is_tgs: bool) -> int | None:
    """MIT ``select_session_keytype``: the client's first etype that the realm permits and
    the server can use (a TGS can use any permitted one)."""
    server_etypes = {k.etype for k in server.keys}
    for etype in req_etypes:
        if etype in kdc.session_etypes and (server_is_tgs or etype in server_etypes):
            return etype
    return None


def select_client_key(entry: PrincipalEntry, req_etypes: tuple[int, ...],
                      permitted: frozenset[int]) -> KeyInfo | None:
    """MIT ``select_client_key``: the client's key for its most preferred etype."""
    by_etype = {k.etype: k for k in entry.keys if k.etype in permitted}
    for etype in req_etypes:
        key = by_etype.get(etype)
        if key is not None:
            return key
    return None


def key_expiration(entry: PrincipalEntry) -> int | None:
    """RFC 4120 §5.4.2 key-expiration: the earlier of account and password expiry (MIT)."""
    times = [t for t in (entry.expiration, entry.pw_expiration) if t]
    return min(times) if times else None


async def process_as_req(kdc: Kdc, req: KdcReq, rec: RequestRecord, now: float) -> bytes:
    """Handle one decoded AS-REQ; returns the DER AS-REP or raises KdcError."""
    body = req.req_body
    policy = kdc.policy
    rec.req_etypes = body.etype
    if body.cname is None:
        raise KdcError(C.KDC_ERR_C_PRINCIPAL_UNKNOWN, "NULL_CLIENT")
    cname = unparse_principal(body.cname, body.realm)
    rec.client = cname
    if body.sname is None:
        raise KdcError(C.KDC_ERR_S_PRINCIPAL_UNKNOWN, "NULL_SERVER")
    sname = unparse_principal(body.sname, body.realm)
    rec.server = sname

    # Both lookups are metadata only; issue them together. A name in another realm is simply
    # not in our database (no cross-realm referrals in the first version).
    rec.step = "LOOKING_UP_CLIENT"
    client, server = await gather_eagerly(kdc.keys.lookup(cname), kdc.keys.lookup(sname))
    if client is None:
        raise KdcError(C.KDC_ERR_C_PRINCIPAL_UNKNOWN, "CLIENT_NOT_FOUND")
    rec.step = "LOOKING_UP_SERVER"
    if server is None:
        raise KdcError(C.KDC_ERR_S_PRINCIPAL_UNKNOWN, "SERVER_NOT_FOUND")

    itime = int(now)
    rec.step = "VALIDATE_AS_REQUEST"
    validate_as_request(body.kdc_options, client, server, itime)

    server_is_tgs = is_tgs_name(sname, policy.realm)
    ses_etype = select_session_etype(kdc, body.etype, server, server_is_tgs)
    if ses_etype is None:
        raise KdcError(C.KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE")
    client_key = select_client_key(client, body.etype, kdc.session_etypes)
    if client_key is None:
        raise KdcError(C.KDC_ERR_ETYPE_NOSUPP, "CANT_FIND_CLIENT_KEY")
    server_key = next((k for k in server.keys if k.etype in kdc.session_etypes), None)
    if server_key is None:
        raise KdcError(C.KDC_ERR_ETYPE_NOSUPP, "FINDING_SERVER_KEY")

    # --- pre-authentication (RFC 4120 §3.1.2; MIT check_padata / missing_required_preauth) --
    rec.step = "CHECK_PADATA"
    flags = C.INITIAL
    candidates = preauth.verifiable(req.padata)
    if candidates:
        flags |= C.PRE_AUTHENT  # only used if the verification below succeeds
    elif client.requires_preauth:
        raise KdcError(
            C.KDC_ERR_PREAUTH_REQUIRED,
            "NEEDED_PREAUTH",
            e_data=method_data(preauth.hint_list(client, client_key)),
        )

    # --- the ticket (RFC 4120 §3.1.3) --------------------------------------------------------
    # Built and its two encryptions started before the pre-authentication result is known:
    # under MPC each is a long chain of rounds, and the reply is sent only after the
    # verification succeeded, so running them side by side takes a login from the sum of
    # the two latencies to the larger one. A failed verification discards the encryptions.
    # A client whose pre-authentication keeps failing is verified first (kdc/preauth/
    # failures.py: requests anyone can send must not cost three MPC evaluations each).
    # Errors keep MIT's order: a pre-authentication failure wins over a ticket error.
    failures = kdc.preauth_failures
    address = rec.address
    if candidates and candidates[0][0].uses_long_term_key and \
            kdc.failure_budget.exhausted(address, now):
        # kdc/failure_budget.py: an address that keeps failing costs no more MPC work.
        raise KdcError(C.KDC_ERR_POLICY, failure_budget.STATUS)
    ahead = not (candidates and failures.suspicious(client.name, now))
    issue = (kdc, rec, body, client, server, client_key, server_key, ses_etype, itime)
    if ahead:
        flags, encryptions, issue_error, issue_step = _start_issue(*issue, flags)
    if candidates:
        rec.step = "CHECK_PADATA"
        mech, pa = candidates[0]
        rec.preauth = mech.name
        try:
            await mech.verify(kdc.keys, client, pa.padata_value, now, policy.clockskew)
        except BaseException as err:
            if ahead and issue_error is None:
                _discard(encryptions)
            if isinstance(err, KdcError):
                if err.code == C.KDC_ERR_PREAUTH_FAILED:
                    failures.failed(client.name, now)
                    kdc.failure_budget.failed(address, now)
                    err.e_data = method_data(preauth.hint_list(client, client_key))
                kdc.log.logger.info(
                    "preauth (%s) verify failure: %s", mech.name, C.error_text(err.code)
                )
            raise
        failures.succeeded(client.name)
    if not ahead:
        flags, encryptions, issue_error, issue_step = _start_issue(*issue, flags)
    if issue_error is not None:
        rec.step = issue_step
        raise issue_error
    rec.step = "ENCRYPT_TICKET"
    done, value = encryptions
    ticket_cipher, rep_cipher = value if done else await value
    rec.step = "ENCODE_KDC_REP"
    reply = KdcRep(
        msg_type=C.KRB_AS_REP,
        # RFC 4120 §5.2.7.5: PA-ETYPE-INFO2 for the reply key, so the client can derive it.
        padata=(preauth.etype_info2_padata(client_key),),
        crealm=body.realm,
        cname=body.cname,
        ticket=Ticket(
            realm=body.realm,
            sname=body.sname,
            enc_part=EncryptedData(server_key.etype, server_key.kvno, ticket_cipher),
        ),
        enc_part=EncryptedData(client_key.etype, client_key.kvno, rep_cipher),
    )
    rec.authtime = itime
    rec.rep_etype = client_key.etype
    rec.tkt_etype = server_key.etype
    rec.ses_etype = ses_etype
    rec.flags = flags
    return encode(reply)


def _start_issue(kdc: Kdc, rec: RequestRecord, body, client: PrincipalEntry,
                 server: PrincipalEntry, client_key: KeyInfo, server_key: KeyInfo,
                 ses_etype: int, itime: int, flags: int) -> tuple:
    """Build the ticket and start its two encryptions: (flags, started encryptions, None,
    None), or (flags, None, the error, its step) for the caller to raise after the
    pre-authentication."""
    rec.step = "ISSUE_TICKET"
    try:
        flags, _, ticket_job, rep_job = _issue(kdc, body, client, server, client_key,
                                               server_key, ses_etype, flags, itime)
        rec.step = "ENCRYPT_TICKET"
        return flags, start_eagerly(gather_eagerly(ticket_job, rep_job)), None, None
    except Exception as exc:  # noqa: BLE001 - raised by the caller, after the pre-auth
        return flags, None, exc, rec.step


def _issue(kdc: Kdc, body, client: PrincipalEntry, server: PrincipalEntry,
           client_key: KeyInfo, server_key: KeyInfo, ses_etype: int, flags: int,
           itime: int) -> tuple:
    """The ticket and the reply part (RFC 4120 §3.1.3): (flags, times, and the coroutines
    of their two encryptions: server key, usage 2; client key, usage 3)."""
    policy = kdc.policy
    opts = body.kdc_options
    if opts & C.FORWARDABLE and forwardable_allowed(client, server):
        flags |= C.FORWARDABLE
    times = ticket_times(
        policy, itime, kdc_options=opts, till=body.till, rtime=body.rtime,
        client=client, server=server, may_renew=renewable_allowed(client, server),
    )
    if times.endtime <= itime:
        # RFC 4120 §3.1.3: a requested end time before the start is never valid.
        raise KdcError(C.KDC_ERR_NEVER_VALID, "NEVER_VALID")
    if times.renew_till is not None:
        flags |= C.RENEWABLE

    session_key = kdc.new_session_key(ses_etype)
    enc_ticket = EncTicketPart(
        flags=flags,
        key=session_key,
        crealm=body.realm,
        cname=body.cname,
        transited=EMPTY_TRANSITED,
        authtime=itime,
        starttime=None,  # equal to authtime, so omitted (RFC 4120 §5.3, as MIT does)
        endtime=times.endtime,
        renew_till=times.renew_till,
        caddr=body.addresses or None,
    )
    enc_rep = EncKdcRepPart(
        key=session_key,
        last_req=LAST_REQ_NONE,
        nonce=body.nonce,
        key_expiration=key_expiration(client),
        flags=flags,
        authtime=itime,
        starttime=None,
        endtime=times.endtime,
        renew_till=times.renew_till,
        srealm=body.realm,
        sname=body.sname,
        caddr=body.addresses or None,
        tag=C.TAG_ENC_AS_REP_PART,
    )
    server_ref = KeyRef(server.name, server_key.kvno, server_key.etype)
    client_ref = KeyRef(client.name, client_key.kvno, client_key.etype)
    return (flags, times, kdc.keys.encrypt(server_ref, C.KU_TICKET, encode(enc_ticket)),
            kdc.keys.encrypt(client_ref, C.KU_AS_REP_ENC_PART, encode(enc_rep)))


def _discard(started: tuple[bool, object]) -> None:
    """Cancel encryptions whose reply will not be sent (and retrieve their outcome)."""
    done, value = started
    if not done:
        value.cancel()
        value.add_done_callback(lambda t: t.cancelled() or t.exception())


def validate_as_request(opts: int, client: PrincipalEntry, server: PrincipalEntry,
                        now: int) -> None:
    """MIT ``validate_as_request`` checks that apply to our principal model."""
    if opts & AS_INVALID_OPTIONS:
        raise KdcError(C.KDC_ERR_BADOPTION, "INVALID AS OPTIONS")
    if opts & C.POSTDATED:
        raise KdcError(C.KDC_ERR_BADOPTION, "POSTDATE NOT ALLOWED")
    if client.expiration and client.expiration < now:
        raise KdcError(C.KDC_ERR_NAME_EXP, "CLIENT EXPIRED")
    if client.pw_expiration and client.pw_expiration < now and not is_password_service(server):
        raise KdcError(C.KDC_ERR_KEY_EXPIRED, "CLIENT KEY EXPIRED")
    if server.expiration and server.expiration < now:
        raise KdcError(C.KDC_ERR_SERVICE_EXP, "SERVICE EXPIRED")
    if DISALLOW_ALL_TIX in client.attributes:
        raise KdcError(C.KDC_ERR_CLIENT_REVOKED, "CLIENT LOCKED OUT")
    if DISALLOW_ALL_TIX in server.attributes or DISALLOW_SVR in server.attributes:
        raise KdcError(C.KDC_ERR_S_PRINCIPAL_UNKNOWN, "SERVICE NOT ALLOWED")


def is_password_service(server: PrincipalEntry) -> bool:
    return server.name.startswith("kadmin/changepw@")

