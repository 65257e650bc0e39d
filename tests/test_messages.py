"""RFC 4120 message codecs: the fast DER codec against the pyasn1 reference and MIT captures.

Every check runs with both codecs: ``der`` (the hot path, also behind ``kdc.messages.encode``)
and ``pyasn1_codec`` (the reference). Keys come from the captures README (a throwaway realm).
"""

from __future__ import annotations

import calendar
import dataclasses
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kdc.messages as messages
from kdc.messages import (
    ApRep,
    ApReq,
    Authenticator,
    AuthorizationDataEntry,
    Checksum,
    DecodeError,
    EncApRepPart,
    EncKdcRepPart,
    EncodeError,
    EncryptedData,
    EncryptionKey,
    EncTicketPart,
    EtypeInfo2Entry,
    HostAddress,
    KdcRep,
    KdcReq,
    KdcReqBody,
    KrbError,
    LastReqEntry,
    PAData,
    PaEncTsEnc,
    PrincipalName,
    Ticket,
    TransitedEncoding,
    der,
    pyasn1_codec,
)
from kdc.messages import codec as codec_choice
from kdc.messages import constants as c
from tests.vectors import capture, capture_names

# der.py, the pyasn1 reference, and der.py compiled by mypyc when the install built it.
CODECS = [der, pyasn1_codec, *([codec_choice.compiled] if codec_choice.compiled else [])]
CODEC_IDS = ["der", "pyasn1", "der-compiled"][: len(CODECS)]

KEYS = {  # captures README table (etype 18)
    "alice": "6f4656b4249379e3f71f4da93b5cc6c25dff516351d6e1d93b4bf712a705ff3b",
    "bob": "941f98d5fd9cf929c93678bcd0624790d03ce1ff14c65c37d80526b01737267b",
    "krbtgt": "dc0ee3e3d66984f908440b845cc41c77fa483bea9021b4a07bf248e0ba22623a",
    "alice_tgt_session": "6a92a6cac45ad8170abf2848172aaded29dd0d758be38395cf7f16fb583ac71c",
}

MESSAGE_CAPTURES = [n for n in capture_names() if not n.endswith(".tcp-stream")]
STREAM_CAPTURES = [n for n in capture_names() if n.endswith(".tcp-stream")]


def key(name: str):
    from kdc.crypto import Key

    return Key(18, bytes.fromhex(KEYS[name]))


def decrypt(name: str, usage: int, cipher: bytes) -> bytes:
    from kdc.crypto import decrypt as crypto_decrypt

    return crypto_decrypt(key(name), usage, cipher)


def message_bytes(name: str) -> bytes:
    data = capture(name)
    if name.endswith(".tcp-stream"):
        (length,) = struct.unpack(">I", data[:4])  # RFC 4120 §7.2.2 record mark
        assert length == len(data) - 4
        data = data[4:]
    return data


def both_decode(cls, data: bytes):
    """Decode with both codecs, assert equal objects, return the object."""
    a = der.decode(cls, data)
    b = pyasn1_codec.decode(cls, data)
    assert a == b
    return a


def assert_round_trip(cls, data: bytes):
    obj = both_decode(cls, data)
    assert der.encode(obj) == data
    assert pyasn1_codec.encode(obj) == data
    return obj


# --- captures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MESSAGE_CAPTURES + STREAM_CAPTURES)
@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_capture_decodes_and_reencodes_exactly(name, codec):
    data = message_bytes(name)
    obj = codec.decode_message(data)
    assert obj == (der if codec is pyasn1_codec else pyasn1_codec).decode_message(data)
    assert codec.encode(obj) == data
    expected_type = {0x6A: KdcReq, 0x6B: KdcRep, 0x6C: KdcReq, 0x6D: KdcRep, 0x7E: KrbError}
    assert type(obj) is expected_type[data[0]]


def test_public_api_is_the_fast_codec():
    data = capture("alice-as-req")
    assert messages.decode is codec_choice.active.decode
    assert messages.decode_message(data) == der.decode_message(data)
    assert messages.decode(KdcReq, bytearray(data)) == messages.decode(KdcReq, memoryview(data))
    assert messages.encode(messages.decode(KdcReq, data)) == data
    assert issubclass(DecodeError, ValueError)
    with pytest.raises(DecodeError):
        messages.decode(KdcReq, data[:-1])


@pytest.mark.skipif(os.environ.get("MPCKDC_NO_NATIVE") == "1" or
                    os.environ.get("MPCKDC_PURE_DER") == "1", reason="pure codec asked for")
def test_install_compiled_the_codec():
    # setup.py compiles der.py with mypyc at install time (.ci/run installs with it).
    assert codec_choice.compiled is not None
    assert codec_choice.active is codec_choice.compiled
    assert codec_choice.compiled.__file__.endswith(".so")


def test_compiled_codec_of_another_der_py_is_not_used(monkeypatch):
    native = pytest.importorskip("kdc.messages._der_native")
    monkeypatch.setenv("MPCKDC_PURE_DER", "1")
    assert codec_choice._compiled() is None
    monkeypatch.delenv("MPCKDC_PURE_DER")
    monkeypatch.setattr(native, "SOURCE_DIGEST", "0" * 64)
    with pytest.warns(RuntimeWarning, match="not built from this der.py"):
        assert codec_choice._compiled() is None


def test_alice_as_req_fields():
    req = both_decode(KdcReq, capture("alice-as-req"))
    assert req.msg_type == c.KRB_AS_REQ
    assert [p.padata_type for p in req.padata] == [c.PA_AS_FRESHNESS, c.PA_REQ_ENC_PA_REP]
    assert all(p.padata_value == b"" for p in req.padata)
    body = req.req_body
    assert body.kdc_options == c.RENEWABLE_OK
    assert body.cname == PrincipalName(c.NT_PRINCIPAL, ("alice",))
    assert body.sname == PrincipalName(c.NT_SRV_INST, ("krbtgt", "EXAMPLE.COM"))
    assert body.realm == "EXAMPLE.COM"
    assert body.etype == (18, 17, 20, 19, 16, 23, 25, 26)
    assert body.rtime is None and body.addresses is None and body.from_ is None
    assert body.till is not None and 1795700000 < body.till < 1795900000  # 2026-11-28


@pytest.mark.parametrize("name", ["alice-as-req", "alice-tgs-req-http-localhost", "bob-as-req"])
@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_req_body_bytes_is_the_received_der(name, codec):
    data = capture(name)
    req = codec.decode(KdcReq, data)
    assert req.req_body_bytes[0] == 0x30
    assert data.endswith(req.req_body_bytes)  # req-body is the last field of KDC-REQ
    assert codec.encode(req.req_body) == req.req_body_bytes
    assert codec.decode(KdcReqBody, req.req_body_bytes) == req.req_body


def test_krb_error_preauth_required():
    err = assert_round_trip(KrbError, capture("bob-krb-error-preauth-required"))
    assert err.error_code == c.KDC_ERR_PREAUTH_REQUIRED == 25
    assert c.ERROR_TEXT[err.error_code] == "Additional pre-authentication required"
    assert err.e_text == "NEEDED_PREAUTH"
    assert err.sname == PrincipalName(c.NT_SRV_INST, ("krbtgt", "EXAMPLE.COM"))
    for codec in CODECS:
        method_data = codec.decode_list("method_data", err.e_data)
        assert [p.padata_type for p in method_data] == [
            c.PA_FX_FAST,
            c.PA_ETYPE_INFO2,
            c.PA_ENC_TIMESTAMP,
            c.PA_FX_COOKIE,
        ]
        assert method_data[3].padata_value == b"MIT"
        info = codec.decode_list("etype_info2", method_data[1].padata_value)
        assert info == (EtypeInfo2Entry(18, "EXAMPLE.COMbob", None),)
        assert codec.encode_list("etype_info2", info) == method_data[1].padata_value
        assert codec.encode_list("method_data", method_data) == err.e_data
    assert messages.decode_method_data(err.e_data)[1].padata_type == c.PA_ETYPE_INFO2
    assert messages.encode_method_data(messages.decode_method_data(err.e_data)) == err.e_data


def test_as_rep_padata_etype_info2():
    rep = assert_round_trip(KdcRep, capture("alice-as-rep"))
    assert rep.msg_type == c.KRB_AS_REP
    (pa,) = rep.padata
    assert pa.padata_type == c.PA_ETYPE_INFO2
    entries = messages.decode_etype_info2(pa.padata_value)
    assert entries == (EtypeInfo2Entry(18, "EXAMPLE.COMalice"),)
    assert messages.encode_etype_info2(entries) == pa.padata_value
    assert rep.ticket.sname == PrincipalName(c.NT_SRV_INST, ("krbtgt", "EXAMPLE.COM"))
    assert rep.ticket.enc_part.etype == 18 and rep.ticket.enc_part.kvno == 1
    assert rep.enc_part.etype == 18


# --- decrypted inner parts ----------------------------------------------------------------------


def test_as_rep_enc_part_tag_26():
    rep = both_decode(KdcRep, capture("alice-as-rep"))
    plain = decrypt("alice", c.KU_AS_REP_ENC_PART, rep.enc_part.cipher)
    assert plain[0] == 0x7A  # [APPLICATION 26] EncTGSRepPart, even in an AS-REP (MIT)
    part = assert_round_trip(EncKdcRepPart, plain)
    assert part.tag == 26
    assert part.key.keytype == 18
    assert part.key.keyvalue == bytes.fromhex(KEYS["alice_tgt_session"])
    assert part.flags == c.RENEWABLE | c.INITIAL | c.ENC_PA_REP
    assert part.flags & c.PRE_AUTHENT == 0
    assert part.srealm == "EXAMPLE.COM"
    assert part.last_req == (LastReqEntry(0, 0),)
    assert part.endtime - part.authtime == 10 * 3600
    assert [p.padata_type for p in part.encrypted_pa_data] == [c.PA_REQ_ENC_PA_REP, c.PA_FX_FAST]
    cksum = both_decode(Checksum, part.encrypted_pa_data[0].padata_value)
    assert cksum.cksumtype == 16 and len(cksum.checksum) == 12
    # the same part as [APPLICATION 25] (EncASRepPart, RFC 4120 §5.4.2)
    as25 = dataclasses.replace(part, tag=25)
    for codec in CODECS:
        out = codec.encode(as25)
        assert out[0] == 0x79 and out[1:] == plain[1:]
        assert codec.decode(EncKdcRepPart, out) == as25
    assert messages.encode_enc_kdc_rep_part(as25)[0] == 0x79
    with pytest.raises(EncodeError):
        der.encode(dataclasses.replace(part, tag=24))
    with pytest.raises(EncodeError):
        pyasn1_codec.encode(dataclasses.replace(part, tag=27))


def test_tgt_enc_ticket_part_with_pac():
    rep = both_decode(KdcRep, capture("alice-as-rep"))
    plain = decrypt("krbtgt", c.KU_TICKET, rep.ticket.enc_part.cipher)
    part = assert_round_trip(EncTicketPart, plain)
    assert part.cname == PrincipalName(c.NT_PRINCIPAL, ("alice",))
    assert part.crealm == "EXAMPLE.COM"
    assert part.key.keyvalue == bytes.fromhex(KEYS["alice_tgt_session"])
    assert part.flags == c.RENEWABLE | c.INITIAL | c.ENC_PA_REP
    assert part.transited == TransitedEncoding(c.DOMAIN_X500_COMPRESS, b"")
    (if_relevant,) = part.authorization_data
    assert if_relevant.ad_type == c.AD_IF_RELEVANT
    for codec in CODECS:
        inner = codec.decode_list("authorization_data", if_relevant.ad_data)
        assert [e.ad_type for e in inner] == [c.AD_WIN2K_PAC]
        assert codec.encode_list("authorization_data", inner) == if_relevant.ad_data
    pac = messages.decode_authorization_data(if_relevant.ad_data)[0].ad_data
    # PACTYPE (MS-PAC §2.3): cBuffers = 3 (logon name, server and KDC checksums), Version 0
    assert pac[:8] == b"\x03\x00\x00\x00\x00\x00\x00\x00"


def test_pa_enc_timestamp():
    req = both_decode(KdcReq, capture("bob-as-req-pa-enc-timestamp"))
    assert [p.padata_type for p in req.padata] == [
        c.PA_FX_COOKIE,
        c.PA_ENC_TIMESTAMP,
        c.PA_AS_FRESHNESS,
        c.PA_REQ_ENC_PA_REP,
    ]
    assert req.find_padata(c.PA_FX_COOKIE).padata_value == b"MIT"
    enc = assert_round_trip(EncryptedData, req.find_padata(c.PA_ENC_TIMESTAMP).padata_value)
    assert enc.etype == 18 and enc.kvno is None
    plain = decrypt("bob", c.KU_PA_ENC_TIMESTAMP, enc.cipher)
    ts = assert_round_trip(PaEncTsEnc, plain)
    assert ts == PaEncTsEnc(calendar.timegm((2026, 11, 27, 7, 51, 18, 0, 0, 0)), 471374)


def test_tgs_req_authenticator_and_checksum():
    from kdc.crypto import verify_checksum

    req = both_decode(KdcReq, capture("alice-tgs-req-http-localhost"))
    assert req.msg_type == c.KRB_TGS_REQ
    assert req.req_body.kdc_options == 0x00810000 == c.RENEWABLE | c.CANONICALIZE
    assert req.req_body.sname == PrincipalName(c.NT_PRINCIPAL, ("HTTP", "localhost"))
    assert req.find_padata(c.PA_FX_FAST) is not None
    ap_req = assert_round_trip(ApReq, req.find_padata(c.PA_TGS_REQ).padata_value)
    assert ap_req.ap_options == 0
    tgt = both_decode(KdcRep, capture("alice-as-rep")).ticket
    assert ap_req.ticket == tgt
    plain = decrypt("alice_tgt_session", c.KU_TGS_REQ_AUTH, ap_req.authenticator.cipher)
    auth = assert_round_trip(Authenticator, plain)
    assert auth.crealm == "EXAMPLE.COM"
    assert auth.cname == PrincipalName(c.NT_PRINCIPAL, ("alice",))
    assert auth.subkey is not None and auth.subkey.keytype == 18 and len(auth.subkey.keyvalue) == 32
    assert 0 <= auth.cusec <= 999_999
    # RFC 4120 §7.2.2: the checksum covers req-body exactly as received
    assert verify_checksum(
        key("alice_tgt_session"),
        c.KU_TGS_REQ_AUTH_CKSUM,
        req.req_body_bytes,
        auth.cksum.cksumtype,
        auth.cksum.checksum,
    )


# --- KerberosTime and KerberosFlags -------------------------------------------------------------


@given(st.integers(der.TIME_MIN, der.TIME_MAX))
def test_kerberos_time_matches_calendar(t):
    import datetime

    text = der.format_kerberos_time(t)
    assert der.parse_kerberos_time(text) == t
    when = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=t)
    expected = f"{when.year:04d}{when.month:02d}{when.day:02d}{when:%H%M%S}Z"
    assert text == expected.encode()


@pytest.mark.parametrize(
    "text,value",
    [
        (b"19700101000000Z", 0),
        (b"20261127075118Z", 1795765878),
        (b"20000229235959Z", 951868799),
        (b"99991231235959Z", der.TIME_MAX),
        (b"00010101000000Z", der.TIME_MIN),
    ],
)
def test_kerberos_time_known_values(text, value):
    assert der.parse_kerberos_time(text) == value
    assert der.format_kerberos_time(value) == text


BAD_TIMES = [
    b"20261127075118",  # no Z
    b"2026112707511Z",
    b"20261127075118.5Z",  # fractions are not KerberosTime (RFC 4120 §5.2.3)
    b"202611270751180Z",
    b"20261127075118z",
    b"20261327075118Z",  # month 13
    b"20261100075118Z",
    b"20260230075118Z",  # Feb 30
    b"21000229000000Z",  # 2100 is not a leap year
    b"20261127245118Z",
    b"20261127076018Z",
    b"20261127075160Z",  # no leap seconds
    b"00000101000000Z",
    b"2026112707511+Z",
    b"+0261127075118Z",
    b"2026-1-27075118Z",
    b"20261127075118+0100",
]


@pytest.mark.parametrize("text", BAD_TIMES)
@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_bad_kerberos_time_is_decode_error(text, codec):
    # PA-ENC-TS-ENC with the bad patimestamp
    gt = bytes((0x18, len(text))) + text
    data = bytes((0x30, len(gt) + 2, 0xA0, len(gt))) + gt
    with pytest.raises(DecodeError):
        codec.decode(PaEncTsEnc, data)


def _flags_message(bitstring: bytes) -> bytes:
    """AP-REQ from the TGS-REQ capture with ap-options replaced by ``bitstring`` (a TLV)."""
    ap = der.decode(
        ApReq, der.decode(KdcReq, capture("alice-tgs-req-http-localhost")).padata[0].padata_value
    )
    body = b"".join(
        [
            b"\xa0\x03\x02\x01\x05\xa1\x03\x02\x01\x0e",
            der._tlv(0xA2, bitstring),
            der._tlv(0xA3, der.encode(ap.ticket)),
            der._tlv(0xA4, der.encode(ap.authenticator)),
        ]
    )
    return der._tlv(0x6E, der._tlv(0x30, body))


@pytest.mark.parametrize(
    "bitstring,value",
    [
        (b"\x03\x05\x00\x40\x00\x00\x01", 0x40000001),  # 32 bits, MIT's form
        (b"\x03\x01\x00", 0),  # empty
        (b"\x03\x02\x07\x80", 0x80000000),  # 1 bit
        (b"\x03\x03\x00\x12\x34", 0x12340000),  # 16 bits
        (b"\x03\x06\x00\x01\x02\x03\x04\xff", 0x01020304),  # 40 bits: the rest ignored
        (b"\x03\x05\x01\x00\x00\x00\x02", 0x00000002),  # 31 bits
    ],
)
@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_kerberos_flags_other_lengths(bitstring, value, codec):
    ap = codec.decode(ApReq, _flags_message(bitstring))
    assert ap.ap_options == value
    out = codec.encode(ap)
    assert b"\xa2\x07\x03\x05\x00" + value.to_bytes(4, "big") in out  # always 32 bits out


@pytest.mark.parametrize(
    "bitstring",
    [
        b"\x03\x00",  # no padding-count octet
        b"\x03\x01\x01",  # padding count without bits
        b"\x03\x05\x08\x00\x00\x00\x00",  # padding count > 7
        b"\x03\x02\x07\x81",  # padding bits not zero (X.690 §11.2.1)
        b"\x04\x05\x00\x00\x00\x00\x00",  # OCTET STRING instead of BIT STRING
        b"\x23\x07\x03\x05\x00\x00\x00\x00\x00",  # constructed BIT STRING (BER only)
    ],
)
@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_bad_kerberos_flags(bitstring, codec):
    with pytest.raises(DecodeError):
        codec.decode(ApReq, _flags_message(bitstring))


# --- hand-made malformed input ------------------------------------------------------------------


def _pa_enc_ts(pausec_int: bytes) -> bytes:
    gt = b"\x18\x0f20261127075118Z"
    inner = b"\xa0\x11" + gt + der._tlv(0xA1, pausec_int)
    return der._tlv(0x30, inner)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_microseconds_decode_as_mit_does(codec):
    # MIT 1.20 clients sometimes send pausec 1000000 (these bytes came from kdcload's
    # PA-ENC-TIMESTAMP), and MIT's KDC takes any Int32 there; RFC 4120's 0..999999 holds for
    # what we encode.
    ts = codec.decode(PaEncTsEnc, _pa_enc_ts(b"\x02\x03\x0f\x42\x40"))
    assert ts == PaEncTsEnc(calendar.timegm((2026, 11, 27, 7, 51, 18, 0, 0, 0)), 1_000_000)
    assert codec.decode(PaEncTsEnc, _pa_enc_ts(b"\x02\x01\xff")).pausec == -1
    with pytest.raises(EncodeError):
        codec.encode(ts)


def _krb_error_with(field: int, value_tlv: bytes) -> bytes:
    err = der.decode(KrbError, capture("bob-krb-error-preauth-required"))
    data = der.encode(err)
    # rebuild with one field's value TLV replaced
    t, s, e = der._hdr(data, 0, len(data))
    t2, s2, e2 = der._hdr(data, s, e)
    parts = []
    pos = s2
    while pos < e2:
        ft, fs, fe = der._hdr(data, pos, e2)
        parts.append(der._tlv(ft, value_tlv) if ft == 0xA0 | field else data[pos:fe])
        pos = fe
    return der._tlv(0x7E, der._tlv(0x30, b"".join(parts)))


MALFORMED = {
    "empty": (KrbError, b""),
    "one byte": (KrbError, b"\x7e"),
    "trailing byte": (KrbError, capture("bob-krb-error-preauth-required") + b"\x00"),
    "truncated": (KrbError, capture("bob-krb-error-preauth-required")[:-1]),
    "wrong app tag": (KrbError, b"\x7d" + capture("bob-krb-error-preauth-required")[1:]),
    "indefinite length": (PaEncTsEnc, b"\x30\x80\xa0\x11\x18\x0f20261127075118Z\x00\x00"),
    "non-minimal length": (PaEncTsEnc, b"\x30\x81\x13\xa0\x11\x18\x0f20261127075118Z"),
    "length overflow": (PaEncTsEnc, b"\x30\x84\xff\xff\xff\xff\xa0\x11\x18\x0f20261127075118Z"),
    "length past end": (PaEncTsEnc, b"\x30\x7f\xa0\x11\x18\x0f20261127075118Z"),
    "inner trailing": (PaEncTsEnc, b"\x30\x14\xa0\x12\x18\x0f20261127075118Z\x00"),
    "non-minimal int": (PaEncTsEnc, _pa_enc_ts(b"\x02\x02\x00\x05")),
    "non-minimal negative int": (PaEncTsEnc, _pa_enc_ts(b"\x02\x02\xff\xff")),
    "empty int": (PaEncTsEnc, _pa_enc_ts(b"\x02\x00")),
    "usec beyond Int32": (PaEncTsEnc, _pa_enc_ts(b"\x02\x05\x00\x80\x00\x00\x00")),  # 2**31
    "huge int": (PaEncTsEnc, _pa_enc_ts(b"\x02\x09\x01" + bytes(8))),
    "int as octets": (PaEncTsEnc, _pa_enc_ts(b"\x04\x01\x05")),
    "missing required": (PaEncTsEnc, b"\x30\x05\xa1\x03\x02\x01\x05"),
    "unknown field": (PaEncTsEnc, b"\x30\x18\xa0\x11\x18\x0f20261127075118Z\xa2\x03\x02\x01\x05"),
    "out of order": (PaEncTsEnc, b"\x30\x18\xa1\x03\x02\x01\x05\xa0\x11\x18\x0f20261127075118Z"),
    "duplicate": (PaEncTsEnc, b"\x30\x26" + (b"\xa0\x11\x18\x0f20261127075118Z") * 2),
    "primitive context tag": (PaEncTsEnc, b"\x30\x13\x80\x11\x18\x0f20261127075118Z"),
    "set not sequence": (PaEncTsEnc, b"\x31\x13\xa0\x11\x18\x0f20261127075118Z"),
    "high tag number": (PaEncTsEnc, b"\x30\x14\xbf\x00\x11\x18\x0f20261127075118Z"),
    "error-code > Int32": (KrbError, _krb_error_with(6, b"\x02\x05\x00\x80\x00\x00\x00")),
    "error-code < Int32": (KrbError, _krb_error_with(6, b"\x02\x05\xff\x7f\xff\xff\xff")),
    "pvno 4": (KrbError, _krb_error_with(0, b"\x02\x01\x04")),
    "msg-type 31": (KrbError, _krb_error_with(1, b"\x02\x01\x1f")),
    "realm not UTF-8": (KrbError, _krb_error_with(9, b"\x1b\x02\xc3\x28")),
    "realm as UTF8String": (KrbError, _krb_error_with(9, b"\x0c\x03ABC")),
    "e-data constructed": (KrbError, _krb_error_with(12, b"\x24\x05\x04\x03MIT")),
    "stime UTCTime": (KrbError, _krb_error_with(4, b"\x17\x0d261127075118Z")),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_malformed_is_decode_error(case, codec):
    cls, data = MALFORMED[case]
    with pytest.raises(DecodeError):
        codec.decode(cls, data)


def _nested(depth: int, tag: int) -> bytes:
    out = b"\x05\x00"
    for _ in range(depth):
        out = der._tlv(tag, out) if len(out) <= der.MAX_LENGTH - 8 else out
    return out


@pytest.mark.parametrize("tag", [0x30, 0xA0, 0x6A, 0x7A])
@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_deep_nesting_is_decode_error(codec, tag):
    data = _nested(5000, tag)
    for cls in list(der.DECODERS):
        with pytest.raises(DecodeError):
            codec.decode(cls, data)
    with pytest.raises(DecodeError):
        codec.decode_message(data)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_int32_and_uint32_limits_decode(codec):
    ok = _krb_error_with(6, b"\x02\x04\x80\x00\x00\x00")
    assert codec.decode(KrbError, ok).error_code == -(2**31)
    ok = _krb_error_with(6, b"\x02\x04\x7f\xff\xff\xff")
    assert codec.decode(KrbError, ok).error_code == 2**31 - 1
    req = der.decode(KdcReq, capture("alice-as-req"))
    for nonce in (0, 2**32 - 1):
        obj = dataclasses.replace(req, req_body=dataclasses.replace(req.req_body, nonce=nonce))
        assert codec.decode(KdcReq, codec.encode(obj)).req_body.nonce == nonce


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_nonce_out_of_range_decode(codec):
    data = capture("alice-as-req")
    req = der.decode(KdcReq, data)
    nonce_field = b"\xa7\x06\x02\x04" + req.req_body.nonce.to_bytes(4, "big")
    assert nonce_field in data
    negative = b"\xa7\x06\x02\x04\xff\xff\xff\xfe"
    with pytest.raises(DecodeError):
        codec.decode(KdcReq, data.replace(nonce_field, negative))


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_decode_message_rejects_unknown_types(codec):
    for data in (b"", b"\x30\x00", b"\x61\x00", b"\x7f\x00", b"\x00"):
        with pytest.raises(DecodeError):
            codec.decode_message(data)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_kdc_req_msg_type_must_match_tag(codec):
    data = bytearray(capture("alice-as-req"))
    data[0] = 0x6C  # TGS-REQ tag around msg-type 10
    with pytest.raises(DecodeError):
        codec.decode(KdcReq, bytes(data))
    with pytest.raises(DecodeError):
        codec.decode(KdcRep, capture("alice-as-req"))
    with pytest.raises(DecodeError):
        codec.decode(EncKdcRepPart, capture("alice-as-req"))


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_empty_etype_info2(codec):
    with pytest.raises(DecodeError):
        codec.decode_list("etype_info2", b"\x30\x00")
    with pytest.raises(EncodeError):
        codec.encode_list("etype_info2", [])


# --- encoding errors ----------------------------------------------------------------------------

_ERR = KrbError(None, None, 0, 0, 25, None, None, "R", PrincipalName(2, ("krbtgt", "R")))

BAD_OBJECTS = {
    "error-code > Int32": dataclasses.replace(_ERR, error_code=2**31),
    "susec 1e6": dataclasses.replace(_ERR, susec=1_000_000),
    "stime year 10000": dataclasses.replace(_ERR, stime=der.TIME_MAX + 1),
    "stime before year 1": dataclasses.replace(_ERR, stime=der.TIME_MIN - 1),
    "realm not str": dataclasses.replace(_ERR, realm=b"R"),
    "e-text surrogate": dataclasses.replace(_ERR, e_text="\ud800"),
    "e-data not bytes": dataclasses.replace(_ERR, e_data="x"),
    "error-code bool": dataclasses.replace(_ERR, error_code=True),
    "negative kvno": EncryptedData(18, -1, b""),
    "flags > 32 bits": EncTicketPart(
        2**32,
        EncryptionKey(18, b""),
        "R",
        PrincipalName(1, ("a",)),
        TransitedEncoding(1, b""),
        0,
        None,
        0,
        None,
    ),
    "as-req msg-type 11": KdcReq(11, (), KdcReqBody(0, None, "R", None, None, 0, None, 0, (18,))),
    "rep msg-type 10": KdcRep(
        10,
        None,
        "R",
        PrincipalName(1, ("a",)),
        Ticket("R", PrincipalName(1, ("a",)), EncryptedData(18, None, b"")),
        EncryptedData(18, None, b""),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_OBJECTS))
@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_unencodable_values_raise_encode_error(case, codec):
    with pytest.raises(EncodeError):
        codec.encode(BAD_OBJECTS[case])


# --- random model objects: fast codec == pyasn1 -------------------------------------------------

int32 = st.integers(-(2**31), 2**31 - 1)
uint32 = st.integers(0, 2**32 - 1)
usec = st.integers(0, 999_999)
ktime = st.integers(der.TIME_MIN, der.TIME_MAX)
flags = uint32
octets = st.binary(max_size=40) | st.binary(min_size=120, max_size=300)
kstring = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
small = {"max_size": 3}

principals = st.builds(PrincipalName, int32, st.lists(kstring, **small).map(tuple))
encrypted = st.builds(EncryptedData, int32, st.none() | uint32, octets)
keys = st.builds(EncryptionKey, int32, octets)
checksums = st.builds(Checksum, int32, octets)
padatas = st.builds(PAData, int32, octets)
addresses = st.builds(HostAddress, int32, octets)
ad_entries = st.builds(AuthorizationDataEntry, int32, octets)
transited = st.builds(TransitedEncoding, int32, octets)
last_reqs = st.builds(LastReqEntry, int32, ktime)
pa_enc_ts = st.builds(PaEncTsEnc, ktime, st.none() | usec)
etype_info2 = st.builds(EtypeInfo2Entry, int32, st.none() | kstring, st.none() | octets)


def opt_list(s):
    return st.none() | st.lists(s, **small).map(tuple)


tickets = st.builds(Ticket, kstring, principals, encrypted)
enc_ticket_parts = st.builds(
    EncTicketPart,
    flags,
    keys,
    kstring,
    principals,
    transited,
    ktime,
    st.none() | ktime,
    ktime,
    st.none() | ktime,
    opt_list(addresses),
    opt_list(ad_entries),
)
req_bodies = st.builds(
    KdcReqBody,
    flags,
    st.none() | principals,
    kstring,
    st.none() | principals,
    st.none() | ktime,
    st.none() | ktime,
    st.none() | ktime,
    uint32,
    st.lists(int32, max_size=8).map(tuple),
    opt_list(addresses),
    st.none() | encrypted,
    opt_list(tickets),
)
kdc_reqs = st.builds(
    KdcReq, st.sampled_from([10, 12]), st.lists(padatas, **small).map(tuple), req_bodies
)
kdc_reps = st.builds(
    KdcRep, st.sampled_from([11, 13]), opt_list(padatas), kstring, principals, tickets, encrypted
)
enc_kdc_rep_parts = st.builds(
    EncKdcRepPart,
    keys,
    st.lists(last_reqs, **small).map(tuple),
    uint32,
    st.none() | ktime,
    flags,
    ktime,
    st.none() | ktime,
    ktime,
    st.none() | ktime,
    kstring,
    principals,
    opt_list(addresses),
    opt_list(padatas),
    st.sampled_from([25, 26]),
)
ap_reqs = st.builds(ApReq, flags, tickets, encrypted)
authenticators = st.builds(
    Authenticator,
    kstring,
    principals,
    st.none() | checksums,
    usec,
    ktime,
    st.none() | keys,
    st.none() | uint32,
    opt_list(ad_entries),
)
ap_reps = st.builds(ApRep, encrypted)
enc_ap_rep_parts = st.builds(EncApRepPart, ktime, usec, st.none() | keys, st.none() | uint32)
krb_errors = st.builds(
    KrbError,
    st.none() | ktime,
    st.none() | usec,
    ktime,
    usec,
    int32,
    st.none() | kstring,
    st.none() | principals,
    kstring,
    principals,
    st.none() | kstring,
    st.none() | octets,
)

STRATEGIES = {
    PrincipalName: principals,
    EncryptedData: encrypted,
    EncryptionKey: keys,
    Checksum: checksums,
    PAData: padatas,
    HostAddress: addresses,
    AuthorizationDataEntry: ad_entries,
    TransitedEncoding: transited,
    LastReqEntry: last_reqs,
    PaEncTsEnc: pa_enc_ts,
    EtypeInfo2Entry: etype_info2,
    Ticket: tickets,
    EncTicketPart: enc_ticket_parts,
    KdcReqBody: req_bodies,
    KdcReq: kdc_reqs,
    KdcRep: kdc_reps,
    EncKdcRepPart: enc_kdc_rep_parts,
    ApReq: ap_reqs,
    Authenticator: authenticators,
    ApRep: ap_reps,
    EncApRepPart: enc_ap_rep_parts,
    KrbError: krb_errors,
}


def test_every_model_class_has_codecs_and_a_strategy():
    assert set(STRATEGIES) == set(der.ENCODERS) == set(der.DECODERS)


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda cls: cls.__name__)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_objects_both_codecs_agree(cls, data):
    obj = data.draw(STRATEGIES[cls])
    fast = der.encode(obj)
    assert pyasn1_codec.encode(obj) == fast
    expected = obj
    if cls is KdcReq:
        expected = dataclasses.replace(obj, req_body_bytes=der.encode(obj.req_body))
    assert der.decode(cls, fast) == expected
    assert pyasn1_codec.decode(cls, fast) == expected
    if cls in (KdcReq, KdcRep, KrbError, ApReq, ApRep):
        assert der.decode_message(fast) == expected


# --- mutated captures: only DecodeError, and both codecs agree ----------------------------------


def _inner_targets() -> list[tuple[type | None, bytes]]:
    rep = der.decode(KdcRep, capture("alice-as-rep"))
    tgs = der.decode(KdcReq, capture("alice-tgs-req-http-localhost"))
    ap = der.decode(ApReq, tgs.find_padata(c.PA_TGS_REQ).padata_value)
    bob = der.decode(KdcReq, capture("bob-as-req-pa-enc-timestamp"))
    ts = der.decode(EncryptedData, bob.find_padata(c.PA_ENC_TIMESTAMP).padata_value)
    return [
        (EncKdcRepPart, decrypt("alice", 3, rep.enc_part.cipher)),
        (EncTicketPart, decrypt("krbtgt", 2, rep.ticket.enc_part.cipher)),
        (ApReq, tgs.find_padata(c.PA_TGS_REQ).padata_value),
        (Authenticator, decrypt("alice_tgt_session", 7, ap.authenticator.cipher)),
        (PaEncTsEnc, decrypt("bob", 1, ts.cipher)),
    ]


MESSAGE_TARGETS = [(None, message_bytes(n)) for n in MESSAGE_CAPTURES]


def _mutations(target_list):
    targets = st.sampled_from(target_list)

    @st.composite
    def mutated(draw):
        cls, data = draw(targets)
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            if not data:
                break
            kind = draw(st.sampled_from(["truncate", "flip", "insert", "set", "delete", "random"]))
            i = draw(st.integers(0, len(data) - 1))
            if kind == "truncate":
                data = data[:i]
            elif kind == "flip":
                data[i] ^= 1 << draw(st.integers(0, 7))
            elif kind == "insert":
                data[i:i] = draw(st.binary(min_size=1, max_size=4))
            elif kind == "set":
                data[i] = draw(st.sampled_from([0, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0xFF, 0x30]))
            elif kind == "delete":
                del data[i]
            else:
                data = bytearray(draw(st.binary(max_size=64)))
        return cls, bytes(data)

    return mutated()


def _decode_outcome(codec, cls, data):
    try:
        return "ok", codec.decode_message(data) if cls is None else codec.decode(cls, data)
    except DecodeError:
        return "error", None


def _check_mutation(cls, data):
    fast = _decode_outcome(der, cls, data)
    ref = _decode_outcome(pyasn1_codec, cls, data)
    assert fast == ref  # same verdict, and equal objects when accepted
    if fast[0] == "ok":
        # accepted input re-encodes to the same object (the bytes may differ only where a
        # KerberosFlags BIT STRING was not 32 bits long or an empty padata was sent)
        obj = fast[1]
        again = der.decode(type(obj), der.encode(obj))
        if isinstance(obj, KdcReq):
            obj = dataclasses.replace(obj, req_body_bytes=b"")
            again = dataclasses.replace(again, req_body_bytes=b"")
        assert again == obj


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations(MESSAGE_TARGETS))
def test_mutated_messages_only_decode_error(case):
    _check_mutation(*case)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_inner_parts_only_decode_error(data):
    case = data.draw(_mutations(_inner_targets_cached()))
    _check_mutation(*case)


_INNER: list = []


def _inner_targets_cached():
    if not _INNER:
        _INNER.extend(_inner_targets())
    return _INNER


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.sampled_from(list(STRATEGIES)))
def test_random_bytes_only_decode_error(data, cls):
    fast = _decode_outcome(der, cls, data)
    assert fast == _decode_outcome(pyasn1_codec, cls, data)
    assert _decode_outcome(der, None, data) == _decode_outcome(pyasn1_codec, None, data)


# --- fast paths for nested SEQUENCEs: the layouts they read and every near miss ----------------


def _tlv(tag: int, body: bytes, long_form: int = 0) -> bytes:
    """A TLV; ``long_form`` > 0 writes the length in that many octets (non-minimal when short)."""
    n = len(body)
    if long_form:
        return bytes([tag, 0x80 | long_form]) + n.to_bytes(long_form, "big") + body
    if n < 0x80:
        return bytes([tag, n]) + body
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


_INT_BODIES = [b"\x00", b"\x05", b"\x7f", b"\x80", b"\xff", b"\x00\x88", b"\x00\x05", b"\x01\x2c",
               b"\xff\x80", b"", b"\x00\x00\x00\x00\x01"]


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["key", "cksum", "padata", "enc_data"]),
    int_body=st.sampled_from(_INT_BODIES),
    kvno_body=st.one_of(st.none(), st.sampled_from(_INT_BODIES)),
    value=st.binary(max_size=300),
    first_tag=st.sampled_from([0xA0, 0xA1, 0xA2]),
    octets_tag=st.sampled_from([0x04, 0x03, 0x1B]),
    long_form=st.sampled_from([0, 0, 0, 1, 2]),
    outer_long=st.sampled_from([0, 0, 0, 2]),
    trailer=st.sampled_from([b"", b"", b"\x00", b"\xa3\x02\x05\x00"]),
)
def test_nested_fast_paths_agree_with_reference(kind, int_body, kvno_body, value, first_tag,
                                                octets_tag, long_form, outer_long, trailer):
    """EncryptionKey, Checksum, PA-DATA and EncryptedData decode the same with both codecs,
    including one-octet and two-octet integers, long and non-minimal lengths, wrong tags,
    extra fields and trailing bytes around the layout the fast paths read."""
    cls = {"key": EncryptionKey, "cksum": Checksum, "padata": PAData,
           "enc_data": EncryptedData}[kind]
    int_tag = first_tag if kind != "padata" else first_tag + 1 if first_tag < 0xA2 else 0xA0
    fields = _tlv(int_tag, _tlv(0x02, int_body))
    last_tag = 0xA2 if kind in ("padata", "enc_data") else 0xA1
    if kind == "enc_data" and kvno_body is not None:
        fields += _tlv(0xA1, _tlv(0x02, kvno_body))
    fields += _tlv(last_tag, _tlv(octets_tag, value, long_form)) + trailer
    data = _tlv(0x30, fields, outer_long)
    assert _decode_outcome(der, cls, data) == _decode_outcome(pyasn1_codec, cls, data)


@pytest.mark.parametrize("padata_type", [1, 2, 127, 128, 136, 149, 255, 256, 300, -1, -128])
@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_padata_types_round_trip(codec, padata_type):
    """One- and two-octet padata-types (PA-FX-FAST is 136: INTEGER 00 88) decode exactly."""
    pa = PAData(padata_type, b"\x01" * 200)
    assert codec.decode(PAData, der.encode(pa)) == pa
    assert der.encode(pa) == pyasn1_codec.encode(pa)
