"""The KDC core's TGS exchange: the MIT 1.20 kvno capture and requests the harness builds."""

from __future__ import annotations

import logging

from kdc import crypto
from kdc.messages import constants as C
from kdc.messages import decode
from kdc.messages.model import (
    ApReq,
    Authenticator,
    EncryptedData,
    KdcRep,
    KdcReq,
    PAData,
    Ticket,
)
from tests.kdc_harness import (
    ALICE_TGT_SESSION_KEY,
    CAPTURE_NOW,
    REALM,
    Creds,
    as_rep_creds,
    capture_key,
    decrypt_ticket,
    error_of,
    get_tgt,
    make_harness,
    make_key_service,
    principal,
    tgs_rep_creds,
    tgs_req,
)
from tests.vectors import capture

H = 3600
D = 86400
NOW = 1_800_000_000.0
HTTP_KEY = capture_key("HTTP/localhost")
KRBTGT_KEY = capture_key("krbtgt/EXAMPLE.COM")


def _with_ticket(creds: Creds, ticket: Ticket) -> Creds:
    r = creds.rep
    return Creds(KdcRep(r.msg_type, r.padata, r.crealm, r.cname, ticket, r.enc_part),
                 creds.part, creds.session_key)


# --- the captured kvno request ---------------------------------------------------------------


async def test_capture_tgs_req_issues_service_ticket():
    """MIT kvno's request (FAST-armored, with subkey) answered unarmored under the subkey."""
    h = make_harness()
    data = capture("alice-tgs-req-http-localhost")
    req = decode(KdcReq, data)
    assert {pa.padata_type for pa in req.padata} == {C.PA_TGS_REQ, C.PA_FX_FAST}
    ap = decode(ApReq, req.find_padata(C.PA_TGS_REQ).padata_value)
    session = crypto.Key(18, bytes.fromhex(ALICE_TGT_SESSION_KEY))
    auth = decode(Authenticator, crypto.decrypt(session, 7, ap.authenticator.cipher))
    subkey = crypto.Key(auth.subkey.keytype, auth.subkey.keyvalue)
    tgt = as_rep_creds(capture("alice-as-rep"), capture_key("alice")).part

    now = CAPTURE_NOW + 20
    reply = await h.send(data, now)
    creds = tgs_rep_creds(reply, subkey, C.KU_TGS_REP_ENC_PART_SUBKEY)
    rep, part = creds.rep, creds.part
    assert rep.padata is None  # no FAST in the reply
    assert (rep.crealm, rep.cname.components) == (REALM, ("alice",))
    assert rep.ticket.sname.components == ("HTTP", "localhost")
    assert (rep.ticket.enc_part.etype, rep.ticket.enc_part.kvno) == (18, 1)
    assert rep.enc_part.kvno is None
    assert part.tag == C.TAG_ENC_TGS_REP_PART
    assert part.nonce == req.req_body.nonce
    assert (part.srealm, part.sname.components) == (REALM, ("HTTP", "localhost"))
    # MIT's reply had 0x00890000: renewable, transited-policy-checked, enc-pa-rep (no FAST here).
    assert part.flags == C.RENEWABLE | C.TRANSITED_POLICY_CHECKED
    assert part.authtime == tgt.authtime == int(CAPTURE_NOW)
    assert part.starttime == int(now)
    assert part.endtime == tgt.endtime  # bounded by the TGT
    assert part.renew_till == tgt.renew_till
    # Not decryptable as a session-key reply: the subkey was honoured.
    try:
        crypto.decrypt(session, C.KU_TGS_REP_ENC_PART_SESSION_KEY, rep.enc_part.cipher)
        raise AssertionError("reply must be under the subkey")
    except crypto.IntegrityError:
        pass
    tkt = decrypt_ticket(rep.ticket, HTTP_KEY)
    assert tkt.key == part.key and tkt.cname.components == ("alice",)
    assert tkt.authorization_data is None  # no PAC (and MIT's TGT PAC is not copied)
    # One krbtgt decryption, one service-key encryption.
    assert h.keys.calls == {"lookup": 1, "decrypt": 1, "encrypt": 1}
    assert ("decrypt", "krbtgt/EXAMPLE.COM@EXAMPLE.COM", 2) in h.keys.log
    assert ("encrypt", "HTTP/localhost@EXAMPLE.COM", 2) in h.keys.log


async def test_capture_tgs_req_with_expired_tgt():
    h = make_harness()
    tgt = as_rep_creds(capture("alice-as-rep"), capture_key("alice")).part
    err = error_of(await h.send(capture("alice-tgs-req-http-localhost"), tgt.endtime + 301))
    assert (err.error_code, err.e_text) == (C.KRB_AP_ERR_TKT_EXPIRED, "PROCESS_TGS")
    assert err.cname.components == ("alice",)


async def test_capture_tgs_req_with_wrong_krbtgt_key():
    ks = make_key_service()
    ks.delete("krbtgt/EXAMPLE.COM")
    ks.add_principal("krbtgt/EXAMPLE.COM", randkey=True)
    h = make_harness(keys=ks)
    err = error_of(await h.send(capture("alice-tgs-req-http-localhost"), CAPTURE_NOW + 20))
    assert (err.error_code, err.e_text) == (C.KRB_AP_ERR_BAD_INTEGRITY, "PROCESS_TGS")
    assert err.cname is None  # the client is unknown until the TGT decrypts


# --- built requests --------------------------------------------------------------------------


async def test_service_ticket_with_session_key_reply():
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    h.keys.reset()
    reply = await h.send(tgs_req(tgt, now=NOW + 60), NOW + 60)
    creds = tgs_rep_creds(reply, tgt.session_key, C.KU_TGS_REP_ENC_PART_SESSION_KEY)
    assert creds.part.nonce == 54321
    assert creds.part.authtime == int(NOW) and creds.part.starttime == int(NOW) + 60
    assert creds.part.endtime == tgt.part.endtime == int(NOW) + 10 * H
    assert creds.part.key != tgt.part.key
    assert h.keys.key_operations == 2
    # The service accepts its ticket: it decrypts with the service key, same session key.
    tkt = decrypt_ticket(creds.ticket, HTTP_KEY)
    assert tkt.key == creds.part.key and tkt.crealm == REALM
    assert not tkt.flags & C.INITIAL
    assert tkt.flags == creds.part.flags == C.TRANSITED_POLICY_CHECKED | C.RENEWABLE
    # Asked not to check the transited path, we do not claim to have checked it (MIT).
    unchecked = tgs_rep_creds(
        await h.send(tgs_req(tgt, now=NOW, nonce=5, options=C.DISABLE_TRANSITED_CHECK), NOW),
        tgt.session_key, 8)
    assert unchecked.part.flags == 0


async def test_subkey_reply_and_bob_preauth_flag_propagates():
    h = make_harness()
    tgt = await get_tgt(h, "bob", now=NOW)
    assert tgt.part.flags & C.PRE_AUTHENT
    subkey = crypto.Key(17, bytes(range(16)))
    reply = await h.send(tgs_req(tgt, now=NOW, subkey=subkey), NOW)
    creds = tgs_rep_creds(reply, subkey, C.KU_TGS_REP_ENC_PART_SUBKEY)
    assert creds.rep.enc_part.etype == 17
    assert creds.part.flags & C.PRE_AUTHENT  # copied from the TGT
    assert creds.rep.cname.components == ("bob",)


async def test_session_etype_follows_client_list():
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    reply = await h.send(tgs_req(tgt, now=NOW, etypes=(17, 18)), NOW)
    creds = tgs_rep_creds(reply, tgt.session_key, 8)
    assert creds.part.key.keytype == 17
    assert creds.ticket.enc_part.etype == 18
    err = error_of(await h.send(tgs_req(tgt, now=NOW, etypes=(23,), nonce=9), NOW))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE")


async def test_unknown_service(caplog):
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    h.keys.reset()
    caplog.set_level(logging.INFO, logger="mpckdc.kdc")
    err = error_of(await h.send(tgs_req(tgt, "nosuch/host", now=NOW), NOW))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_S_PRINCIPAL_UNKNOWN, "LOOKING_UP_SERVER")
    assert err.cname.components == ("alice",) and err.sname.components == ("nosuch", "host")
    assert h.keys.calls["encrypt"] == 0
    assert caplog.messages[-1] == (
        "TGS_REQ (2 etypes {aes256-cts-hmac-sha1-96(18), aes128-cts-hmac-sha1-96(17)}) "
        "127.0.0.1: LOOKING_UP_SERVER: authtime 0, etypes {rep=UNSUPPORTED:(0)} "
        "alice@EXAMPLE.COM for nosuch/host@EXAMPLE.COM, Server not found in Kerberos database"
    )


async def test_issue_log_line(caplog):
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    caplog.set_level(logging.INFO, logger="mpckdc.kdc")
    await h.send(tgs_req(tgt, now=NOW), NOW)
    assert caplog.messages[-1] == (
        "TGS_REQ (2 etypes {aes256-cts-hmac-sha1-96(18), aes128-cts-hmac-sha1-96(17)}) "
        f"127.0.0.1: ISSUE: authtime {int(NOW)}, etypes {{rep=aes256-cts-hmac-sha1-96(18), "
        "tkt=aes256-cts-hmac-sha1-96(18), ses=aes256-cts-hmac-sha1-96(18)}, "
        "alice@EXAMPLE.COM for HTTP/localhost@EXAMPLE.COM"
    )
    assert h.audit[-1]["type"] == "TGS_REQ" and h.audit[-1]["status"] == "ISSUE"


async def test_tampered_tgt_is_bad_integrity():
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    t = tgt.ticket
    cipher = bytearray(t.enc_part.cipher)
    cipher[-1] ^= 1
    bad = _with_ticket(tgt, Ticket(t.realm, t.sname, EncryptedData(18, 1, bytes(cipher))))
    err = error_of(await h.send(tgs_req(bad, now=NOW), NOW))
    assert (err.error_code, err.e_text) == (C.KRB_AP_ERR_BAD_INTEGRITY, "PROCESS_TGS")
    assert err.cname is None


async def test_tgt_is_decrypted_once_while_its_key_is_current():
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    h.keys.reset()
    first = tgs_rep_creds(await h.send(tgs_req(tgt, now=NOW, nonce=1), NOW), tgt.session_key, 8)
    assert h.keys.calls["decrypt"] == 1 and len(h.kdc.tgt_cache) == 1
    second = tgs_rep_creds(await h.send(tgs_req(tgt, now=NOW, nonce=2), NOW), tgt.session_key, 8)
    assert h.keys.calls["decrypt"] == 1  # the same TGT again: from the cache
    assert (first.part.nonce, second.part.nonce) == (1, 2)
    for creds in (first, second):
        tkt = decrypt_ticket(creds.ticket, HTTP_KEY)
        assert tkt.cname == tgt.rep.cname and tkt.authtime == tgt.part.authtime
        assert tkt.key == creds.part.key
    # A changed ciphertext is not the cached TGT: it goes to the key service and fails.
    t = tgt.ticket
    cipher = bytearray(t.enc_part.cipher)
    cipher[20] ^= 1
    bad = _with_ticket(tgt, Ticket(t.realm, t.sname, EncryptedData(18, 1, bytes(cipher))))
    err = error_of(await h.send(tgs_req(bad, now=NOW), NOW))
    assert err.error_code == C.KRB_AP_ERR_BAD_INTEGRITY
    assert h.keys.calls["decrypt"] == 2
    # A new krbtgt key: the cached TGT under the old kvno is no longer served from the cache.
    h.keys.randomize_key("krbtgt/EXAMPLE.COM")
    err = error_of(await h.send(tgs_req(tgt, now=NOW, nonce=3), NOW))
    assert err.error_code == C.KRB_AP_ERR_BADKEYVER
    assert h.keys.calls["decrypt"] == 3
    assert repr(h.kdc.tgt_cache) == "TgtCache(1/8192 entries)"  # counts, never tickets


async def test_unknown_kvno_and_etype_of_tgt():
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    t = tgt.ticket
    for enc in (EncryptedData(18, 7, t.enc_part.cipher), EncryptedData(23, 1, t.enc_part.cipher)):
        err = error_of(await h.send(tgs_req(_with_ticket(tgt, Ticket(t.realm, t.sname, enc)),
                                            now=NOW), NOW))
        assert err.error_code == C.KRB_AP_ERR_BADKEYVER
    # A missing kvno means the current one.
    ok = _with_ticket(tgt, Ticket(t.realm, t.sname, EncryptedData(18, None, t.enc_part.cipher)))
    tgs_rep_creds(await h.send(tgs_req(ok, now=NOW), NOW), tgt.session_key, 8)


async def test_service_ticket_is_not_a_tgt():
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    svc = tgs_rep_creds(await h.send(tgs_req(tgt, now=NOW), NOW), tgt.session_key, 8)
    h.keys.reset()
    err = error_of(await h.send(tgs_req(svc, now=NOW), NOW))
    assert (err.error_code, err.e_text) == (C.KRB_AP_ERR_NOT_US, "PROCESS_TGS")
    assert h.keys.key_operations == 0


async def test_expired_and_not_yet_valid_tgt():
    h = make_harness()
    tgt = await get_tgt(h, now=NOW, lifetime=H)
    later = tgt.part.endtime + 301
    err = error_of(await h.send(tgs_req(tgt, now=later), later))
    assert err.error_code == C.KRB_AP_ERR_TKT_EXPIRED
    # Within the skew the TGT is still accepted, but a ticket ending in the past is never valid.
    within_skew = tgt.part.endtime + 299
    err = error_of(await h.send(tgs_req(tgt, now=within_skew), within_skew))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_NEVER_VALID, "NEVER_VALID")
    almost = tgt.part.endtime - 10
    creds = tgs_rep_creds(await h.send(tgs_req(tgt, now=almost), almost), tgt.session_key, 8)
    assert creds.part.endtime == tgt.part.endtime
    early = NOW - 400
    err = error_of(await h.send(tgs_req(tgt, now=early), early))
    assert err.error_code == C.KRB_AP_ERR_TKT_NYV


async def test_authenticator_checks():
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    cases = [
        (dict(authenticator_client="bob"), C.KRB_AP_ERR_BADMATCH),
        (dict(ctime=NOW - 301), C.KRB_AP_ERR_SKEW),
        (dict(ctime=NOW + 301), C.KRB_AP_ERR_SKEW),
        (dict(checksum_body=b"another body"), C.KRB_AP_ERR_MODIFIED),
        (dict(no_checksum=True), C.KRB_AP_ERR_INAPP_CKSUM),
        (dict(session_key=crypto.Key(18, bytes(32))), C.KRB_AP_ERR_BAD_INTEGRITY),
        (dict(session_key=crypto.Key(17, bytes(16))), C.KRB_AP_ERR_BAD_INTEGRITY),
    ]
    for i, (kwargs, code) in enumerate(cases):
        err = error_of(await h.send(tgs_req(tgt, now=NOW, nonce=100 + i, **kwargs), NOW))
        assert (err.error_code, err.e_text) == (code, "PROCESS_TGS"), kwargs
        assert err.cname.components == ("alice",)


async def test_fast_armor_is_ignored():
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    fast = (PAData(C.PA_FX_FAST, b"\xa0\x03\x02\x01\x00"), PAData(C.PA_REQ_ENC_PA_REP, b""))
    reply = await h.send(tgs_req(tgt, now=NOW, extra_padata=fast), NOW)
    assert tgs_rep_creds(reply, tgt.session_key, 8).rep.padata is None


async def test_missing_or_malformed_pa_tgs_req():
    from kdc.messages import encode

    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    req = decode(KdcReq, tgs_req(tgt, now=NOW))
    no_pa = encode(KdcReq(C.KRB_TGS_REQ, (), req.req_body))
    err = error_of(await h.send(no_pa, NOW))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_PADATA_TYPE_NOSUPP, "PROCESS_TGS")
    bad_ap = encode(KdcReq(C.KRB_TGS_REQ, (PAData(C.PA_TGS_REQ, b"\x30\x00"),), req.req_body))
    err = error_of(await h.send(bad_ap, NOW))
    assert (err.error_code, err.e_text) == (C.KRB_ERR_GENERIC, "PROCESS_TGS")


async def test_renew_keeps_authtime_and_lifetime():
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)  # renewable-ok, till +1 day: renewable TGT
    assert tgt.part.renew_till == int(NOW) + D
    t1 = NOW + 9 * H
    r1 = tgs_rep_creds(
        await h.send(tgs_req(tgt, f"krbtgt/{REALM}", now=t1, options=C.RENEW), t1),
        tgt.session_key, 8)
    p = r1.part
    assert (p.authtime, p.starttime, p.endtime, p.renew_till) == (
        int(NOW), int(t1), int(t1) + 10 * H, int(NOW) + D)
    assert p.flags == tgt.part.flags | C.TRANSITED_POLICY_CHECKED  # INITIAL | RENEWABLE kept
    assert p.key != tgt.part.key
    tkt = decrypt_ticket(r1.ticket, KRBTGT_KEY)
    assert tkt.authtime == int(NOW) and tkt.key == p.key
    # Renewing again near the end is bounded by renew_till.
    t2 = NOW + 18 * H
    r2 = tgs_rep_creds(
        await h.send(tgs_req(r1, f"krbtgt/{REALM}", now=t2, options=C.RENEW), t2),
        r1.session_key, 8)
    assert r2.part.endtime == int(NOW) + D
    # The renewed TGT works for service tickets.
    svc = tgs_rep_creds(await h.send(tgs_req(r2, now=t2), t2), r2.session_key, 8)
    assert svc.part.endtime == int(NOW) + D


async def test_renew_refusals():
    h = make_harness()
    plain = await get_tgt(h, now=NOW, options=0, lifetime=H)
    assert plain.part.renew_till is None
    err = error_of(await h.send(tgs_req(plain, f"krbtgt/{REALM}", now=NOW, options=C.RENEW),
                                NOW))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_BADOPTION, "TICKET NOT RENEWABLE")
    renewable = await get_tgt(h, now=NOW, nonce=7)
    err = error_of(await h.send(tgs_req(renewable, "HTTP/localhost", now=NOW, options=C.RENEW),
                                NOW))
    assert err.error_code == C.KDC_ERR_SERVER_NOMATCH
    assert err.e_text == "SERVER DIDN'T MATCH TICKET FOR RENEW/FORWARD/ETC"


async def test_renewable_service_ticket_needs_renewable_tgt():
    h = make_harness()
    plain = await get_tgt(h, now=NOW, options=0, lifetime=5 * H)
    creds = tgs_rep_creds(await h.send(tgs_req(plain, now=NOW, options=C.RENEWABLE), NOW),
                          plain.session_key, 8)
    assert creds.part.renew_till is None and not creds.part.flags & C.RENEWABLE
    assert creds.part.endtime == int(NOW) + 5 * H


async def test_forwardable_and_forwarded():
    h = make_harness()
    fwd = await get_tgt(h, now=NOW, options=C.FORWARDABLE | C.RENEWABLE_OK)
    assert fwd.part.flags & C.FORWARDABLE
    creds = tgs_rep_creds(await h.send(tgs_req(fwd, now=NOW, options=C.FORWARDABLE), NOW),
                          fwd.session_key, 8)
    assert creds.part.flags & C.FORWARDABLE
    creds = tgs_rep_creds(
        await h.send(tgs_req(fwd, f"krbtgt/{REALM}", now=NOW, nonce=2,
                             options=C.FORWARDED | C.FORWARDABLE), NOW),
        fwd.session_key, 8)
    assert creds.part.flags & C.FORWARDED and creds.part.flags & C.FORWARDABLE
    plain = await get_tgt(h, now=NOW, nonce=3)
    creds = tgs_rep_creds(await h.send(tgs_req(plain, now=NOW, options=C.FORWARDABLE), NOW),
                          plain.session_key, 8)
    assert not creds.part.flags & C.FORWARDABLE
    err = error_of(await h.send(tgs_req(plain, now=NOW, nonce=4, options=C.FORWARDED), NOW))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_BADOPTION, "TGT NOT FORWARDABLE")


async def test_unsupported_tgs_options():
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    for i, (opt, status) in enumerate([(C.VALIDATE, "VALIDATE VALID TICKET"),
                                       (C.ENC_TKT_IN_SKEY, "NO_2ND_TKT"),
                                       (C.POSTDATED, "POSTDATE NOT ALLOWED")]):
        err = error_of(await h.send(tgs_req(tgt, now=NOW, nonce=i, options=opt), NOW))
        assert (err.error_code, err.e_text) == (C.KDC_ERR_BADOPTION, status)


async def test_tgs_reply_names_as_requested():
    """canonicalize: the reply names the service exactly as the client asked."""
    h = make_harness()
    tgt = await get_tgt(h, now=NOW)
    data = tgs_req(tgt, now=NOW, options=C.CANONICALIZE | C.RENEWABLE_OK)
    creds = tgs_rep_creds(await h.send(data, NOW), tgt.session_key, 8)
    assert creds.part.sname == principal("HTTP/localhost")
    assert creds.ticket.sname == principal("HTTP/localhost")
