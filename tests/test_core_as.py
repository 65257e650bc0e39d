"""The KDC core's AS exchange and dispatch, driven by MIT 1.20 captures and built requests.

Every reply is decoded and decrypted with the client's key; assertions are on names, flags,
times, nonces, keys, error codes, e-data and the key-service calls that were made.
"""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from kdc import crypto
from kdc.kdc_log import ktypes_text, printable
from kdc.keyservice.base import DISALLOW_FORWARDABLE, KeyServiceUnavailable
from kdc.messages import constants as C
from kdc.messages import decode, decode_etype_info2, decode_message
from kdc.messages.model import KdcReq, KrbError
from tests.kdc_harness import (
    BOB_PATIMESTAMP,
    CAPTURE_NOW,
    REALM,
    CountingKeyService,
    as_rep_creds,
    as_req,
    capture_key,
    decrypt_ticket,
    enc_timestamp,
    error_of,
    make_harness,
    make_key_service,
    make_policy,
    method_data_of,
)
from tests.vectors import capture

H = 3600
D = 86400
NOW = 1_800_000_000.25
TGS = f"krbtgt/{REALM}@{REALM}"


# --- captured MIT requests ---------------------------------------------------------------------


async def test_alice_capture_issues_tgt():
    h = make_harness()
    data = capture("alice-as-req")
    req = decode(KdcReq, data)
    reply = await h.send(data, CAPTURE_NOW)
    creds = as_rep_creds(reply, capture_key("alice"))
    rep, part = creds.rep, creds.part
    assert (rep.crealm, rep.cname.components) == (REALM, ("alice",))
    assert rep.ticket.sname.components == ("krbtgt", REALM)
    assert (rep.enc_part.etype, rep.enc_part.kvno) == (18, 1)
    assert (rep.ticket.enc_part.etype, rep.ticket.enc_part.kvno) == (18, 1)
    assert part.tag == C.TAG_ENC_AS_REP_PART
    assert part.nonce == req.req_body.nonce == 1204441883
    assert part.flags == C.INITIAL | C.RENEWABLE  # renewable-ok, no pre-authentication
    assert part.authtime == int(CAPTURE_NOW) and part.starttime is None
    assert part.endtime == int(CAPTURE_NOW) + 10 * H
    assert part.renew_till == req.req_body.till == int(CAPTURE_NOW) + D
    assert (part.srealm, part.sname.components) == (REALM, ("krbtgt", REALM))
    assert part.key.keytype == 18 and len(part.key.keyvalue) == 32
    # PA-ETYPE-INFO2 for the reply key, as MIT sends it.
    (pa,) = rep.padata
    assert pa.padata_type == C.PA_ETYPE_INFO2
    (entry,) = decode_etype_info2(pa.padata_value)
    assert (entry.etype, entry.salt, entry.s2kparams) == (18, "EXAMPLE.COMalice", None)
    # The ticket is under the krbtgt key and carries the same session key, no PAC.
    tkt = decrypt_ticket(rep.ticket, capture_key("krbtgt/EXAMPLE.COM"))
    assert tkt.key == part.key and tkt.cname.components == ("alice",) and tkt.crealm == REALM
    assert (tkt.flags, tkt.endtime, tkt.renew_till) == (part.flags, part.endtime, part.renew_till)
    assert tkt.authorization_data is None and tkt.transited.contents == b""
    # Two metadata lookups and exactly the two long-term-key encryptions.
    assert h.keys.calls == {"lookup": 2, "encrypt": 2}
    enc = sorted((p, u) for op, p, u in h.keys.log if op == "encrypt")
    assert enc == [("alice@EXAMPLE.COM", 3), (TGS, 2)]


async def test_bob_capture_preauth_required_carries_method_data():
    h = make_harness()
    reply = await h.send(capture("bob-as-req"), CAPTURE_NOW + 0.471372)
    err = error_of(reply)
    assert err.error_code == C.KDC_ERR_PREAUTH_REQUIRED
    assert err.e_text == "NEEDED_PREAUTH"
    assert (err.crealm, err.cname.components) == (REALM, ("bob",))
    assert (err.realm, err.sname.components) == (REALM, ("krbtgt", REALM))
    assert (err.stime, err.susec) == (int(CAPTURE_NOW), 471372)
    assert err.ctime is None and err.cusec is None
    md = method_data_of(err)
    assert list(md) == [C.PA_ETYPE_INFO2, C.PA_ENC_TIMESTAMP]  # no PA-FX-FAST, no cookie
    (entry,) = decode_etype_info2(md[C.PA_ETYPE_INFO2])
    assert (entry.etype, entry.salt) == (18, "EXAMPLE.COMbob")
    assert md[C.PA_ENC_TIMESTAMP] == b""
    assert h.keys.key_operations == 0


async def test_bob_capture_pa_enc_timestamp_verifies():
    h = make_harness()
    reply = await h.send(capture("bob-as-req-pa-enc-timestamp"), BOB_PATIMESTAMP + 0.5)
    creds = as_rep_creds(reply, capture_key("bob"))
    assert creds.rep.cname.components == ("bob",)
    assert creds.part.flags == C.INITIAL | C.RENEWABLE | C.PRE_AUTHENT
    assert h.keys.calls["decrypt"] == 1
    assert ("decrypt", "bob@EXAMPLE.COM", C.KU_PA_ENC_TIMESTAMP) in h.keys.log
    tkt = decrypt_ticket(creds.ticket, capture_key("krbtgt/EXAMPLE.COM"))
    assert tkt.flags & C.PRE_AUTHENT


async def test_bob_capture_timestamp_outside_skew():
    h = make_harness()
    now = BOB_PATIMESTAMP + 301.5
    err = error_of(await h.send(capture("bob-as-req-pa-enc-timestamp"), now))
    assert err.error_code == C.KRB_AP_ERR_SKEW
    assert err.e_text == "PREAUTH_FAILED"
    assert (err.stime, err.susec) == (int(now), 500000)  # the client corrects its clock from it
    assert err.e_data is None  # MIT sends no hints with SKEW
    # Just inside the skew is accepted.
    h2 = make_harness()
    ok = await h2.send(capture("bob-as-req-pa-enc-timestamp"), BOB_PATIMESTAMP - 299)
    assert as_rep_creds(ok, capture_key("bob")).part.flags & C.PRE_AUTHENT


# --- pre-authentication --------------------------------------------------------------------------


async def test_wrong_password_is_preauth_failed_with_hints(caplog):
    h = make_harness()
    wrong = crypto.string_to_key(18, "not-bobs-password", "EXAMPLE.COMbob")
    caplog.set_level(logging.INFO, logger="mpckdc.kdc")
    err = error_of(await h.send(as_req("bob", now=NOW, padata=(enc_timestamp(wrong, NOW),)), NOW))
    assert err.error_code == C.KDC_ERR_PREAUTH_FAILED
    assert err.e_text == "PREAUTH_FAILED"
    md = method_data_of(err)
    assert list(md) == [C.PA_ETYPE_INFO2, C.PA_ENC_TIMESTAMP]
    # The reply's two encryptions ran side by side with the verification (as_req) and were
    # discarded: the client got only the error.
    assert h.keys.calls["decrypt"] == 1 and h.keys.calls["encrypt"] == 2
    assert "preauth (encrypted_timestamp) verify failure: Preauthentication failed" in caplog.text
    assert (
        "127.0.0.1: PREAUTH_FAILED: bob@EXAMPLE.COM for krbtgt/EXAMPLE.COM@EXAMPLE.COM, "
        "Preauthentication failed" in caplog.text
    )


async def test_timestamp_with_a_million_microseconds_logs_in():
    """MIT 1.20 clients sometimes send pausec 1000000 (seen under kdcload, about one login in
    500k); MIT's KDC accepts it, so must we (it was answered PREAUTH_FAILED)."""
    from kdc.messages import der, encode
    from kdc.messages.model import EncryptedData, PAData

    h = make_harness()
    key = capture_key("bob")
    ts = der._tlv(0x30, b"\xa0\x11\x18\x0f" + der.format_kerberos_time(int(NOW))
                  + b"\xa1\x05\x02\x03\x0f\x42\x40")
    enc = EncryptedData(key.etype, None, crypto.encrypt(key, C.KU_PA_ENC_TIMESTAMP, ts))
    pa = PAData(C.PA_ENC_TIMESTAMP, encode(enc))
    creds = as_rep_creds(await h.send(as_req("bob", now=NOW, padata=(pa,)), NOW), key)
    assert creds.part.flags & C.PRE_AUTHENT
    assert not h.kdc.preauth_failures.suspicious("bob@EXAMPLE.COM", NOW)


async def test_repeated_preauth_failures_stop_the_encryptions_ahead():
    h = make_harness()
    wrong = crypto.string_to_key(18, "not-bobs-password", "EXAMPLE.COMbob")

    async def attempt(key, now):
        h.keys.reset()
        return await h.send(as_req("bob", now=now, padata=(enc_timestamp(key, now),)), now)

    for i in range(3):  # encrypted ahead, then discarded
        err = error_of(await attempt(wrong, NOW + i))
        assert err.error_code == C.KDC_ERR_PREAUTH_FAILED
        assert (h.keys.calls["decrypt"], h.keys.calls["encrypt"]) == (1, 2)
    # From the third failure on, the timestamp is verified first: nothing is encrypted for a
    # request that fails, and the client sees the same error.
    err = error_of(await attempt(wrong, NOW + 3))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_PREAUTH_FAILED, "PREAUTH_FAILED")
    assert list(method_data_of(err)) == [C.PA_ETYPE_INFO2, C.PA_ENC_TIMESTAMP]
    assert (h.keys.calls["decrypt"], h.keys.calls["encrypt"]) == (1, 0)
    # The right password still logs in (verified, then encrypted), and forgets the failures.
    creds = as_rep_creds(await attempt(capture_key("bob"), NOW + 4), capture_key("bob"))
    assert creds.part.flags & C.PRE_AUTHENT
    assert [op for op, _, _ in h.keys.log if op != "lookup"] == ["decrypt", "encrypt", "encrypt"]
    assert not h.kdc.preauth_failures.suspicious("bob@EXAMPLE.COM", NOW + 5)
    err = error_of(await attempt(wrong, NOW + 5))
    assert (h.keys.calls["decrypt"], h.keys.calls["encrypt"]) == (1, 2)
    # Failures older than the window do not count.
    for i in range(3):
        await attempt(wrong, NOW + 6 + i)
    assert h.kdc.preauth_failures.suspicious("bob@EXAMPLE.COM", NOW + 8)
    assert not h.kdc.preauth_failures.suspicious("bob@EXAMPLE.COM", NOW + 100)
    error_of(await attempt(wrong, NOW + 100))
    assert h.keys.calls["encrypt"] == 2


@pytest.mark.parametrize(
    "padata_value",
    [b"", b"\x30\x00", b"garbage", bytes.fromhex("3011a003020112a20a04080001020304050607")],
)
async def test_malformed_timestamp_is_preauth_failed(padata_value):
    from kdc.messages.model import PAData

    h = make_harness()
    data = as_req("bob", now=NOW, padata=(PAData(C.PA_ENC_TIMESTAMP, padata_value),))
    err = error_of(await h.send(data, NOW))
    assert err.error_code == C.KDC_ERR_PREAUTH_FAILED
    assert C.PA_ETYPE_INFO2 in method_data_of(err)


async def test_timestamp_in_an_etype_without_key_is_preauth_failed():
    h = make_harness()
    aes128 = capture_key("bob", 17)
    # The reply key is aes256 (first in the request), the timestamp is in aes128: bob has that
    # key too, so it verifies.
    ok = await h.send(as_req("bob", now=NOW, etypes=(18, 17),
                             padata=(enc_timestamp(aes128, NOW),)), NOW)
    assert as_rep_creds(ok, capture_key("bob")).part.flags & C.PRE_AUTHENT
    # A timestamp in an etype bob has no key for.
    ks = make_key_service()
    ks.delete("bob")
    ks.add_principal("bob", keys=[capture_key("bob", 18)], attributes=["REQUIRES_PRE_AUTH"])
    h2 = make_harness(keys=ks)
    err = error_of(await h2.send(as_req("bob", now=NOW, padata=(enc_timestamp(aes128, NOW),)),
                                 NOW))
    assert err.error_code == C.KDC_ERR_PREAUTH_FAILED
    assert ks.calls["decrypt"] == 0


async def test_timestamp_with_wrong_key_usage_fails():
    h = make_harness()
    pa = enc_timestamp(capture_key("bob"), NOW, usage=C.KU_AS_REP_ENC_PART)
    err = error_of(await h.send(as_req("bob", now=NOW, padata=(pa,)), NOW))
    assert err.error_code == C.KDC_ERR_PREAUTH_FAILED


async def test_optional_preauth_is_verified_and_flagged():
    h = make_harness()
    pa = enc_timestamp(capture_key("alice"), NOW)
    creds = as_rep_creds(await h.send(as_req("alice", now=NOW, padata=(pa,)), NOW),
                         capture_key("alice"))
    assert creds.part.flags & C.PRE_AUTHENT
    # A bad optional timestamp still fails, as in MIT.
    wrong = crypto.string_to_key(18, "nope", "EXAMPLE.COMalice")
    err = error_of(await h.send(as_req("alice", now=NOW, nonce=2,
                                       padata=(enc_timestamp(wrong, NOW),)), NOW))
    assert err.error_code == C.KDC_ERR_PREAUTH_FAILED


async def test_unknown_padata_is_ignored():
    from kdc.messages.model import PAData

    h = make_harness()
    pads = (PAData(C.PA_AS_FRESHNESS, b""), PAData(C.PA_REQ_ENC_PA_REP, b""),
            PAData(C.PA_FX_FAST, b"\x01\x02"))
    creds = as_rep_creds(await h.send(as_req("alice", now=NOW, padata=pads), NOW),
                         capture_key("alice"))
    assert not creds.part.flags & C.PRE_AUTHENT
    err = error_of(await h.send(as_req("bob", now=NOW, padata=pads), NOW))
    assert err.error_code == C.KDC_ERR_PREAUTH_REQUIRED


# --- principals, etypes, options ----------------------------------------------------------------


async def test_unknown_client(caplog):
    h = make_harness()
    caplog.set_level(logging.INFO, logger="mpckdc.kdc")
    err = error_of(await h.send(as_req("nobody", now=NOW), NOW))
    assert err.error_code == C.KDC_ERR_C_PRINCIPAL_UNKNOWN
    assert err.e_text == "CLIENT_NOT_FOUND"
    assert err.cname.components == ("nobody",)
    assert h.keys.key_operations == 0
    line = (
        "AS_REQ (2 etypes {aes256-cts-hmac-sha1-96(18), aes128-cts-hmac-sha1-96(17)}) 127.0.0.1: "
        "CLIENT_NOT_FOUND: nobody@EXAMPLE.COM for krbtgt/EXAMPLE.COM@EXAMPLE.COM, "
        "Client not found in Kerberos database"
    )
    assert line in caplog.messages
    assert h.audit[-1]["status"] == "CLIENT_NOT_FOUND" and h.audit[-1]["error_code"] == 6


async def test_unknown_server_and_foreign_realm():
    h = make_harness()
    err = error_of(await h.send(as_req("alice", "nosuch/host", now=NOW), NOW))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_S_PRINCIPAL_UNKNOWN, "SERVER_NOT_FOUND")
    assert err.sname.components == ("nosuch", "host")
    # Another realm's names are not in our database (MIT answers the same way).
    err = error_of(await h.send(as_req("alice", now=NOW, realm="OTHER.ORG"), NOW))
    assert err.error_code == C.KDC_ERR_C_PRINCIPAL_UNKNOWN
    assert (err.realm, err.crealm) == ("OTHER.ORG", "OTHER.ORG")
    assert h.keys.key_operations == 0


async def test_no_common_etype():
    h = make_harness()
    err = error_of(await h.send(as_req("alice", now=NOW, etypes=(23, 16, 1)), NOW))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_ETYPE_NOSUPP, "BAD_ENCRYPTION_TYPE")
    err = error_of(await h.send(as_req("bob", now=NOW, etypes=()), NOW))
    assert err.error_code == C.KDC_ERR_ETYPE_NOSUPP  # before PREAUTH_REQUIRED, as MIT
    # A realm that only permits aes128 does not answer an aes256-only request.
    h2 = make_harness(policy=make_policy(supported_enctypes=(17,)))
    err = error_of(await h2.send(as_req("alice", now=NOW, etypes=(18,)), NOW))
    assert err.error_code == C.KDC_ERR_ETYPE_NOSUPP
    assert h.keys.key_operations == 0 and h2.keys.key_operations == 0


async def test_aes128_client_gets_aes128_reply_and_session_key():
    h = make_harness()
    reply = await h.send(as_req("alice", now=NOW, etypes=(17,)), NOW)
    creds = as_rep_creds(reply, capture_key("alice", 17))
    assert creds.rep.enc_part.etype == 17
    assert creds.part.key.keytype == 17 and len(creds.part.key.keyvalue) == 16
    assert creds.ticket.enc_part.etype == 18  # the ticket uses the server's strongest key
    assert h.audit[-1]["rep_etype"] == 17 and h.audit[-1]["tkt_etype"] == 18


async def test_session_key_is_usable_and_fresh():
    h = make_harness()
    a = as_rep_creds(await h.send(as_req(now=NOW, nonce=1), NOW), capture_key("alice"))
    b = as_rep_creds(await h.send(as_req(now=NOW, nonce=2), NOW), capture_key("alice"))
    assert a.session_key.contents != b.session_key.contents
    ct = crypto.encrypt(a.session_key, 7, b"hello")
    assert crypto.decrypt(a.session_key, 7, ct) == b"hello"
    assert b.part.nonce == 2


async def test_deterministic_rng_gives_deterministic_session_key():
    h = make_harness(rng=lambda n: bytes(range(n)))
    creds = as_rep_creds(await h.send(as_req(now=NOW), NOW), capture_key("alice"))
    assert creds.part.key.keyvalue == bytes(range(32))


async def test_lifetimes_and_renewable_options():
    h = make_harness()
    key = capture_key("alice")
    # Too long a till without renewable-ok: clamped to the realm's 10h, not renewable.
    p = as_rep_creds(await h.send(as_req(now=NOW, options=0, lifetime=20 * H), NOW), key).part
    assert (p.endtime, p.renew_till, p.flags & C.RENEWABLE) == (int(NOW) + 10 * H, None, 0)
    # RENEWABLE with a far rtime: renew-till clamped to the realm's 7 days.
    p = as_rep_creds(await h.send(as_req(now=NOW, options=C.RENEWABLE, nonce=3,
                                         rtime=int(NOW) + 30 * D), NOW), key).part
    assert p.renew_till == int(NOW) + 7 * D and p.flags & C.RENEWABLE
    # renewable-ok with a grantable till: a plain ticket of exactly that life.
    p = as_rep_creds(await h.send(as_req(now=NOW, nonce=4, lifetime=2 * H), NOW), key).part
    assert (p.endtime, p.renew_till) == (int(NOW) + 2 * H, None)


async def test_principal_limits_clamp_ticket():
    ks = make_key_service()
    ks.add_principal("carol", password="carol-password", max_life=H, max_renewable_life=2 * D)
    h = make_harness(keys=ks)
    key = crypto.string_to_key(18, "carol-password", "EXAMPLE.COMcarol")
    p = as_rep_creds(await h.send(as_req("carol", now=NOW, options=C.RENEWABLE,
                                         rtime=int(NOW) + 6 * D), NOW), key).part
    assert (p.endtime, p.renew_till) == (int(NOW) + H, int(NOW) + 2 * D)


async def test_forwardable_when_requested_and_allowed():
    ks = make_key_service()
    ks.add_principal("dave", password="dave-password", attributes=[DISALLOW_FORWARDABLE])
    h = make_harness(keys=ks)
    p = as_rep_creds(await h.send(as_req(now=NOW, options=C.FORWARDABLE), NOW),
                     capture_key("alice")).part
    assert p.flags == C.INITIAL | C.FORWARDABLE
    key = crypto.string_to_key(18, "dave-password", "EXAMPLE.COMdave")
    p = as_rep_creds(await h.send(as_req("dave", now=NOW, options=C.FORWARDABLE), NOW), key).part
    assert p.flags == C.INITIAL


async def test_invalid_as_options_and_never_valid():
    h = make_harness()
    for opt in (C.RENEW, C.VALIDATE, C.ENC_TKT_IN_SKEY):
        err = error_of(await h.send(as_req(now=NOW, options=opt, nonce=opt & 0xFFFF), NOW))
        assert (err.error_code, err.e_text) == (C.KDC_ERR_BADOPTION, "INVALID AS OPTIONS")
    err = error_of(await h.send(as_req(now=NOW, options=C.POSTDATED), NOW))
    assert err.error_code == C.KDC_ERR_BADOPTION
    err = error_of(await h.send(as_req(now=NOW, till=int(NOW) - 100), NOW))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_NEVER_VALID, "NEVER_VALID")
    assert h.keys.key_operations == 0


async def test_locked_out_and_expired_client():
    ks = make_key_service()
    ks.modify("alice", add_attributes=["DISALLOW_ALL_TIX"])
    ks.add_principal("old", password="x", expiration=int(NOW) - 1)
    h = make_harness(keys=ks)
    err = error_of(await h.send(as_req("alice", now=NOW), NOW))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_CLIENT_REVOKED, "CLIENT LOCKED OUT")
    err = error_of(await h.send(as_req("old", now=NOW), NOW))
    assert err.error_code == C.KDC_ERR_NAME_EXP


async def test_issue_log_line_and_audit_event(caplog):
    h = make_harness()
    caplog.set_level(logging.INFO, logger="mpckdc.kdc")
    await h.send(as_req(now=NOW), NOW)
    assert caplog.messages[-1] == (
        "AS_REQ (2 etypes {aes256-cts-hmac-sha1-96(18), aes128-cts-hmac-sha1-96(17)}) "
        f"127.0.0.1: ISSUE: authtime {int(NOW)}, etypes {{rep=aes256-cts-hmac-sha1-96(18), "
        "tkt=aes256-cts-hmac-sha1-96(18), ses=aes256-cts-hmac-sha1-96(18)}, "
        "alice@EXAMPLE.COM for krbtgt/EXAMPLE.COM@EXAMPLE.COM"
    )
    ev = h.audit[-1]
    assert ev["type"] == "AS_REQ" and ev["status"] == "ISSUE" and ev["outcome"] == "issue"
    assert (ev["client"], ev["server"], ev["peer"], ev["port"]) == (
        "alice@EXAMPLE.COM", TGS, "127.0.0.1", 40000)
    assert ev["req_etypes"] == [18, 17] and ev["authtime"] == int(NOW)
    assert ev["flags"] == C.INITIAL | C.RENEWABLE
    # No key material anywhere in the event.
    assert "keyvalue" not in repr(ev)


async def test_log_names_are_made_printable(caplog):
    h = make_harness()
    caplog.set_level(logging.INFO, logger="mpckdc.kdc")
    await h.send(as_req("evil\nAS_REQ forged\x1b[2J", now=NOW), NOW)
    assert "\n" not in caplog.messages[-1] and "\x1b" not in caplog.messages[-1]
    # MIT quoting for the newline (krb5_unparse_name), escapes for other control characters.
    assert "evil\\nAS_REQ forged\\x1b[2J@EXAMPLE.COM" in caplog.messages[-1]


class _ConcurrencyProbe(CountingKeyService):
    """Records how many encryptions are in flight at once (a real key service underneath)."""

    in_flight = 0
    max_in_flight = 0

    async def encrypt(self, ref, usage, plaintext, confounder=None):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        try:
            return await super().encrypt(ref, usage, plaintext, confounder)
        finally:
            self.in_flight -= 1


async def test_ticket_and_reply_encryptions_are_concurrent():
    ks = make_key_service(cls=_ConcurrencyProbe)
    h = make_harness(keys=ks)
    as_rep_creds(await h.send(as_req(now=NOW), NOW), capture_key("alice"))
    assert ks.max_in_flight == 2


# --- dispatch, transport limits and failures ---------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x30\x03\x02\x01\x05", b"\x7e\x00", b"\x6e\x00"],
)
async def test_non_requests_are_dropped(data):
    h = make_harness()
    assert await h.send(data, NOW) is None
    assert h.audit[-1]["outcome"] == "dropped"


async def test_replies_sent_to_the_kdc_are_dropped():
    h = make_harness()
    for name in ("alice-as-rep", "bob-krb-error-preauth-required", "alice-tgs-rep-http-localhost"):
        assert await h.send(capture(name), NOW) is None


@pytest.mark.parametrize("data", [b"\x6a\x03\x02\x01\x05", b"\x6c\x00", b"\x6a\x84\xff\xff\xff\xff"])
async def test_undecodable_requests_get_msg_type_error(data):
    h = make_harness()
    err = error_of(await h.send(data, NOW))
    assert (err.error_code, err.e_text) == (C.KRB_AP_ERR_MSG_TYPE, "DECODE_REQUEST")
    assert err.sname.components == ("krbtgt", REALM) and err.realm == REALM
    assert h.keys.calls == {}


async def test_tag_and_msg_type_must_agree():
    data = bytearray(capture("alice-as-req"))
    # msg-type [2] INTEGER 10 -> 12 inside an [APPLICATION 10] wrapper
    i = data.index(bytes.fromhex("a20302010a"))
    data[i + 4] = 12
    h = make_harness()
    err = error_of(await h.send(bytes(data), CAPTURE_NOW))
    assert err.error_code == C.KRB_AP_ERR_MSG_TYPE


async def test_oversized_request_is_field_toolong():
    h = make_harness(policy=make_policy(max_request_bytes=100))
    err = error_of(await h.send(capture("alice-as-req"), CAPTURE_NOW, transport="tcp"))
    assert err.error_code == C.KRB_ERR_FIELD_TOOLONG
    assert h.keys.calls == {}


async def test_udp_reply_too_big_but_tcp_fine():
    h = make_harness(policy=make_policy(udp_max_reply=100))
    err = error_of(await h.send(as_req(now=NOW), NOW, transport="udp"))
    assert err.error_code == C.KRB_ERR_RESPONSE_TOO_BIG
    assert err.cname is None and err.e_text is None and err.e_data is None
    assert err.sname.components == ("krbtgt", REALM)
    reply = await h.send(as_req(now=NOW), NOW, transport="tcp")
    assert as_rep_creds(reply, capture_key("alice")).part.nonce == 12345


class _Unavailable(CountingKeyService):
    down = True

    async def encrypt(self, ref, usage, plaintext, confounder=None):
        if self.down:
            raise KeyServiceUnavailable("node 2 unreachable")
        return await super().encrypt(ref, usage, plaintext, confounder)


async def test_key_service_unavailable_is_svc_unavailable_and_not_cached(caplog):
    ks = make_key_service(cls=_Unavailable)
    h = make_harness(keys=ks)
    caplog.set_level(logging.INFO, logger="mpckdc.kdc")
    data = as_req(now=NOW)
    err = error_of(await h.send(data, NOW))
    assert (err.error_code, err.e_text) == (C.KDC_ERR_SVC_UNAVAILABLE, "ENCRYPT_TICKET")
    assert "A service is not available" in caplog.messages[-1]
    ks.down = False  # the node is back: the same bytes are processed again
    assert as_rep_creds(await h.send(data, NOW + 1), capture_key("alice")).part.nonce == 12345


class _Broken(CountingKeyService):
    async def lookup(self, principal):
        raise RuntimeError("secret detail 6f4656b4")


async def test_unexpected_exception_is_generic_error_without_details(caplog):
    h = make_harness(keys=make_key_service(cls=_Broken))
    caplog.set_level(logging.DEBUG, logger="mpckdc.kdc")
    err = error_of(await h.send(as_req(now=NOW), NOW))
    assert (err.error_code, err.e_text) == (C.KRB_ERR_GENERIC, "INTERNAL_ERROR")
    assert "6f4656b4" not in (err.e_text or "")
    assert "unexpected RuntimeError at LOOKING_UP_CLIENT" in caplog.text


async def test_mutated_requests_never_raise():
    """Bit flips and truncations of real requests: a reply or a drop, never an exception."""
    h = make_harness()
    rnd = random.Random(4120)
    seeds = [capture(n) for n in ("alice-as-req", "bob-as-req-pa-enc-timestamp",
                                  "alice-tgs-req-http-localhost")]
    for i in range(300):
        data = bytearray(rnd.choice(seeds))
        if i % 3 == 0:
            data = data[: rnd.randrange(len(data))]
        else:
            for _ in range(rnd.randint(1, 4)):
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        reply = await h.send(bytes(data), CAPTURE_NOW + 5, transport="tcp")
        if reply is not None:
            msg = decode_message(reply)
            assert isinstance(msg, KrbError) or msg.msg_type in (C.KRB_AS_REP, C.KRB_TGS_REP)


def test_log_etype_names_match_mit():
    # krb5kdc 1.20.1 logged exactly this for a request listing these etypes.
    etypes = (0, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, -128, -133, 65536)
    assert ktypes_text(etypes) == (
        "21 etypes {UNSUPPORTED:(0), UNSUPPORTED:des-cbc-md4(2), UNSUPPORTED:des-cbc-raw(4), "
        "UNSUPPORTED:(5), DEPRECATED:des3-cbc-raw(6), UNSUPPORTED:(7), "
        "UNSUPPORTED:des-hmac-sha1(8), UNSUPPORTED:id-dsa-with-sha1-CmsOID(9), "
        "UNSUPPORTED:md5WithRSAEncryption-CmsOID(10), "
        "UNSUPPORTED:sha-1WithRSAEncryption-CmsOID(11), UNSUPPORTED:rc2-cbc-EnvOID(12), "
        "UNSUPPORTED:rsaEncryption-EnvOID(13), UNSUPPORTED:id-RSAES-OAEP-EnvOID(14), "
        "UNSUPPORTED:des-ede3-cbc-EnvOID(15), DEPRECATED:arcfour-hmac-exp(24), "
        "camellia128-cts-cmac(25), camellia256-cts-cmac(26), UNSUPPORTED:(27), "
        "UNSUPPORTED:(-128), UNSUPPORTED:(-133), UNSUPPORTED:(65536)}"
    )
    assert ktypes_text(()) == "0 etypes {}"
    assert ktypes_text((1, 3, 16, 23)) == (
        "4 etypes {UNSUPPORTED:des-cbc-crc(1), UNSUPPORTED:des-cbc-md5(3), "
        "DEPRECATED:des3-cbc-sha1(16), DEPRECATED:arcfour-hmac(23)}"
    )
    many = ktypes_text([18] * 1000)
    assert many.startswith("1000 etypes {aes256-cts-hmac-sha1-96(18), ") and many.endswith(", ...}")
    assert many.count("(18)") == 32
    assert printable("x" * 200) == "x" * 124 + "..."
    assert printable("x" * 127) == "x" * 127


async def test_ipv6_peer_is_logged():
    h = make_harness()
    reply = await h.kdc.handle(as_req(now=NOW), ("::1", 88, 0, 0), NOW)
    assert as_rep_creds(reply, capture_key("alice")).part.nonce == 12345
    assert h.audit[-1]["peer"] == "::1" and h.audit[-1]["port"] == 88


def test_preauth_table_marks_long_term_key_mechanisms():
    from kdc import preauth
    from kdc.messages.model import PAData

    assert [m.padata_type for m in preauth.MECHANISMS] == [C.PA_ETYPE_INFO2, C.PA_ENC_TIMESTAMP]
    assert preauth.BY_TYPE[C.PA_ENC_TIMESTAMP].uses_long_term_key
    assert not preauth.BY_TYPE[C.PA_ETYPE_INFO2].uses_long_term_key
    assert preauth.costs_long_term_key((PAData(C.PA_ENC_TIMESTAMP, b"x"),))
    assert not preauth.costs_long_term_key(
        (PAData(C.PA_AS_FRESHNESS, b""), PAData(C.PA_REQ_ENC_PA_REP, b""))
    )
