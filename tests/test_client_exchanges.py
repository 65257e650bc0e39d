"""The sans-IO AS and TGS steps of the client, driven with MIT 1.20's captured messages."""

from __future__ import annotations

import pytest

from clients.as_exchange import AsExchange, default_salt, keytab_keys, password_keys
from clients.ccache import Credential
from clients.errors import ClientError, KdcError, ReplyMismatch
from clients.keytab import read_keytab
from clients.tgs_exchange import TgsExchange
from kdc.crypto import Key, decrypt, random_key, verify_checksum
from kdc.messages import constants as c
from kdc.messages import decode, decode_message, encode
from kdc.messages.model import (
    ApReq,
    Authenticator,
    EncryptedData,
    EncTicketPart,
    KdcReq,
    KrbError,
    PaEncTsEnc,
    PrincipalName,
    Ticket,
)
from tests.vectors import capture, captures_dir

TGS_NAME = PrincipalName(c.NT_SRV_INST, ("krbtgt", "EXAMPLE.COM"))
BOB_KEY = "941f98d5fd9cf929c93678bcd0624790d03ce1ff14c65c37d80526b01737267b"
BOB_TGT_SESSION_KEY = "ebbca6adaf9be91a843cf77678605287570b54e5e6d0d010928c2d06bd1e4c79"
ALICE_TGT_SESSION_KEY = "6a92a6cac45ad8170abf2848172aaded29dd0d758be38395cf7f16fb583ac71c"


@pytest.fixture(autouse=True)
def krb5_env(tmp_path, monkeypatch):
    monkeypatch.setenv("KRB5_CONFIG", str(captures_dir() / "config" / "krb5.conf"))
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path}/ccache")


def exchange_for(user: str, keys, nonce: int, now: int = 1795679476) -> AsExchange:
    return AsExchange(
        PrincipalName(c.NT_PRINCIPAL, (user,)), "EXAMPLE.COM", keys,
        sname=TGS_NAME, srealm="EXAMPLE.COM", now=now, nonce=nonce, lifetime=86400,
        clock=lambda: (now, 471374),
    )


def test_alice_as_rep_from_capture_gives_mit_session_key():
    request = decode_message(capture("alice-as-req"))
    step = exchange_for("alice", password_keys("alice-password"), request.req_body.nonce)
    first = step.first_request()
    assert first.padata == () and first.req_body.etype == (18, 17)
    assert first.req_body.kdc_options == c.RENEWABLE_OK  # as MIT kinit sends it
    cred = step.handle(decode_message(capture("alice-as-rep")))
    assert isinstance(cred, Credential)
    assert cred.client == "alice@EXAMPLE.COM" and cred.server == "krbtgt/EXAMPLE.COM@EXAMPLE.COM"
    assert cred.key.contents.hex() == ALICE_TGT_SESSION_KEY
    assert cred.flags & c.INITIAL and not cred.flags & c.PRE_AUTHENT
    # the ticket is the captured one, unchanged
    assert decode(Ticket, cred.ticket) == decode_message(capture("alice-as-rep")).ticket


def test_alice_as_rep_with_keytab_and_wrong_nonce():
    request = decode_message(capture("kdcload-alice-as-req"))
    keys = keytab_keys("alice@EXAMPLE.COM", read_keytab(str(captures_dir() / "keytabs" /
                                                               "alice.keytab")))
    cred = exchange_for("alice", keys, request.req_body.nonce).handle(
        decode_message(capture("kdcload-alice-as-rep")))
    assert cred.client == "alice@EXAMPLE.COM"
    with pytest.raises(ReplyMismatch, match="nonce"):
        exchange_for("alice", keys, request.req_body.nonce ^ 1).handle(
            decode_message(capture("kdcload-alice-as-rep")))
    with pytest.raises(KdcError) as wrong:
        exchange_for("alice", password_keys("wrong"), request.req_body.nonce).handle(
            decode_message(capture("kdcload-alice-as-rep")))
    assert wrong.value.code == c.KRB_AP_ERR_BAD_INTEGRITY
    with pytest.raises(ClientError, match="no suitable keys"):
        keytab_keys("bob@EXAMPLE.COM", read_keytab(str(captures_dir() / "keytabs" /
                                                       "alice.keytab")))


def test_bob_preauth_round_from_capture():
    second = decode_message(capture("bob-as-req-pa-enc-timestamp"))
    step = exchange_for("bob", password_keys("bob-password"), second.req_body.nonce)
    error = decode_message(capture("bob-krb-error-preauth-required"))
    assert isinstance(error, KrbError) and error.error_code == c.KDC_ERR_PREAUTH_REQUIRED
    request = step.handle(error)
    assert isinstance(request, KdcReq)
    cookie = request.find_padata(c.PA_FX_COOKIE)
    assert cookie is not None and cookie.padata_value == b"MIT"  # echoed (RFC 6113 §5.2)
    stamp = decode_message(encode(request)).find_padata(c.PA_ENC_TIMESTAMP)
    enc = decode(EncryptedData, stamp.padata_value)
    assert enc.etype == 18
    plain = decrypt(Key(18, bytes.fromhex(BOB_KEY)), c.KU_PA_ENC_TIMESTAMP, enc.cipher)
    assert decode(PaEncTsEnc, plain) == PaEncTsEnc(1795679476, 471374)
    cred = step.handle(decode_message(capture("bob-as-rep")))
    assert cred.key.contents.hex() == BOB_TGT_SESSION_KEY
    assert cred.flags & c.PRE_AUTHENT
    # a second PREAUTH_REQUIRED after we sent pre-authentication is an error, not a loop
    with pytest.raises(KdcError) as again:
        step.handle(error)
    assert again.value.code == c.KDC_ERR_PREAUTH_REQUIRED


def test_default_salt():
    assert default_salt(PrincipalName(1, ("HTTP", "localhost")), "EXAMPLE.COM") == \
        "EXAMPLE.COMHTTPlocalhost"


def test_tgs_request_is_what_a_kdc_checks():
    """Build a TGS-REQ with alice's captured TGT and check it as a KDC would, with the
    krbtgt key from the capture keytab."""
    rep = decode_message(capture("alice-as-rep"))
    tgt = Credential("alice@EXAMPLE.COM", "krbtgt/EXAMPLE.COM@EXAMPLE.COM",
                     Key(18, bytes.fromhex(ALICE_TGT_SESSION_KEY)), 0, 0, 0, 0, 0,
                     encode(rep.ticket))
    subkey = random_key(18)
    step = TgsExchange(tgt, PrincipalName(1, ("HTTP", "localhost")), "EXAMPLE.COM",
                       options=0, till=2_000_000_000, nonce=12345, etypes=(18, 17),
                       now=(1795679500, 7), subkey=subkey, seq_number=99)
    wire = decode_message(encode(step.request))
    assert wire.msg_type == c.KRB_TGS_REQ and wire.req_body.nonce == 12345
    ap_req = decode(ApReq, wire.find_padata(c.PA_TGS_REQ).padata_value)
    krbtgt = {e.key.etype: e.key for e in read_keytab(str(captures_dir() / "keytabs" /
                                                               "krbtgt.keytab"))}
    ticket_part = decode(EncTicketPart, decrypt(krbtgt[18], 2, ap_req.ticket.enc_part.cipher))
    session = Key(ticket_part.key.keytype, ticket_part.key.keyvalue)
    auth = decode(Authenticator, decrypt(session, c.KU_TGS_REQ_AUTH, ap_req.authenticator.cipher))
    assert auth.cname == ticket_part.cname and auth.crealm == "EXAMPLE.COM"
    assert (auth.ctime, auth.cusec, auth.seq_number) == (1795679500, 7, 99)
    assert auth.subkey.keyvalue == subkey.contents
    # RFC 4120 §7.2.2: the checksum covers the req-body bytes exactly as sent
    assert verify_checksum(session, c.KU_TGS_REQ_AUTH_CKSUM, wire.req_body_bytes,
                           auth.cksum.cksumtype, auth.cksum.checksum)
    # a KRB-ERROR answer becomes KdcError with MIT's text naming the server
    error = KrbError(None, None, 1795679500, 0, 7, None, None, "EXAMPLE.COM",
                     PrincipalName(1, ("HTTP", "localhost")))
    with pytest.raises(KdcError, match="Server HTTP/localhost@EXAMPLE.COM not found"):
        step.handle(error)
