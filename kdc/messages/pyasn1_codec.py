"""Reference codec: model objects <-> pyasn1 objects of ``asn1.py`` <-> DER.

Slow (about a millisecond per message) and kept simple on purpose: it is the oracle that the
fast codec in ``der.py`` is tested against. pyasn1 accepts BER leniently, so ``decode`` re-encodes
the decoded pyasn1 object and refuses input that is not exactly that DER (X.690 §10 canonical
form); value rules (Int32/UInt32/Microseconds ranges, KerberosTime form, UTF-8 strings, flags)
are checked by the same helpers the fast codec uses.
"""

from __future__ import annotations

from collections.abc import Callable

from pyasn1.codec.ber import encoder as ber_encoder
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import univ

from . import asn1
from .der import (
    INT32_MAX,
    INT32_MIN,
    UINT32_MAX,
    USEC_MAX,
    DecodeError,
    EncodeError,
    format_kerberos_time,
    parse_kerberos_time,
)
from .model import (
    ApRep,
    ApReq,
    Authenticator,
    AuthorizationDataEntry,
    Checksum,
    EncApRepPart,
    EncKdcRepPart,
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
)


class _MinimalIntegerEncoder(ber_encoder.IntegerEncoder):
    """pyasn1 0.6 encodes -128, -32768, ... with a redundant 0xFF octet; X.690 §8.3.2 forbids it."""

    def encodeValue(self, value, asn1Spec, encodeFun, **options):
        v = int(value)
        n = (v.bit_length() + 8) // 8 if v >= 0 else ((~v).bit_length() + 8) // 8
        return v.to_bytes(n, "big", signed=True), False, True


class _SingleItemEncoder(der_encoder.SingleItemEncoder):
    TAG_MAP = {**der_encoder.TAG_MAP, univ.Integer.tagSet: _MinimalIntegerEncoder()}
    TYPE_MAP = {**der_encoder.TYPE_MAP, univ.Integer.typeId: _MinimalIntegerEncoder()}


class _Encoder(der_encoder.Encoder):
    SINGLE_ITEM_ENCODER = _SingleItemEncoder


_encoder = _Encoder()


def _der_encode(value) -> bytes:
    # pyasn1's CER/DER encoder drops OPTIONAL fields holding an empty SEQUENCE OF; X.690 does
    # not, and the model keeps "absent" (None) apart from "empty" (())
    return _encoder(value, omitEmptyOptionals=False)


# --- model -> pyasn1 ----------------------------------------------------------------------------


def _check_int(v: int, lo: int, hi: int) -> int:
    if type(v) is not int:
        raise EncodeError("INTEGER field is not an int")
    if not lo <= v <= hi:
        raise EncodeError("INTEGER out of range")
    return v


def _i32(v: int) -> int:
    return _check_int(v, INT32_MIN, INT32_MAX)


def _u32(v: int) -> int:
    return _check_int(v, 0, UINT32_MAX)


def _usec(v: int) -> int:
    return _check_int(v, 0, USEC_MAX)


def _time(v: int) -> str:
    return format_kerberos_time(v).decode("ascii")


def _str(v: str) -> str:
    if not isinstance(v, str):
        raise EncodeError("KerberosString field is not str")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise EncodeError("KerberosString is not encodable as UTF-8") from None
    return v


def _bytes(v: bytes) -> bytes:
    if not isinstance(v, bytes | bytearray | memoryview):
        raise EncodeError("OCTET STRING field is not bytes")
    return bytes(v)


def _flags(v: int) -> tuple[int, ...]:
    _u32(v)
    return tuple((v >> (31 - i)) & 1 for i in range(32))  # RFC 4120 §5.2.8: 32 bits


def _fill_principal(t, p: PrincipalName) -> None:
    t["name-type"] = _i32(p.name_type)
    names = t["name-string"]
    names.clear()
    for c in p.components:
        names.append(_str(c))


def _fill_encrypted_data(t, x: EncryptedData) -> None:
    t["etype"] = _i32(x.etype)
    if x.kvno is not None:
        t["kvno"] = _u32(x.kvno)
    t["cipher"] = _bytes(x.cipher)


def _fill_key(t, x: EncryptionKey) -> None:
    t["keytype"] = _i32(x.keytype)
    t["keyvalue"] = _bytes(x.keyvalue)


def _fill_checksum(t, x: Checksum) -> None:
    t["cksumtype"] = _i32(x.cksumtype)
    t["checksum"] = _bytes(x.checksum)


def _fill_padata(t, x: PAData) -> None:
    t["padata-type"] = _i32(x.padata_type)
    t["padata-value"] = _bytes(x.padata_value)


def _fill_host_address(t, x: HostAddress) -> None:
    t["addr-type"] = _i32(x.addr_type)
    t["address"] = _bytes(x.address)


def _fill_ad_entry(t, x: AuthorizationDataEntry) -> None:
    t["ad-type"] = _i32(x.ad_type)
    t["ad-data"] = _bytes(x.ad_data)


def _fill_transited(t, x: TransitedEncoding) -> None:
    t["tr-type"] = _i32(x.tr_type)
    t["contents"] = _bytes(x.contents)


def _fill_last_req_entry(t, x: LastReqEntry) -> None:
    t["lr-type"] = _i32(x.lr_type)
    t["lr-value"] = _time(x.lr_value)


def _fill_pa_enc_ts(t, x: PaEncTsEnc) -> None:
    t["patimestamp"] = _time(x.patimestamp)
    if x.pausec is not None:
        t["pausec"] = _usec(x.pausec)


def _fill_etype_info2_entry(t, x: EtypeInfo2Entry) -> None:
    t["etype"] = _i32(x.etype)
    if x.salt is not None:
        t["salt"] = _str(x.salt)
    if x.s2kparams is not None:
        t["s2kparams"] = _bytes(x.s2kparams)


def _fill_list(t, items, fill: Callable) -> None:
    t.clear()
    for item in items:
        element = t.componentType.clone()
        fill(element, item)
        t.append(element)


def _fill_ticket(t, x: Ticket) -> None:
    t["tkt-vno"] = 5
    t["realm"] = _str(x.realm)
    _fill_principal(t["sname"], x.sname)
    _fill_encrypted_data(t["enc-part"], x.enc_part)


def _fill_enc_ticket_part(t, x: EncTicketPart) -> None:
    t["flags"] = _flags(x.flags)
    _fill_key(t["key"], x.key)
    t["crealm"] = _str(x.crealm)
    _fill_principal(t["cname"], x.cname)
    _fill_transited(t["transited"], x.transited)
    t["authtime"] = _time(x.authtime)
    if x.starttime is not None:
        t["starttime"] = _time(x.starttime)
    t["endtime"] = _time(x.endtime)
    if x.renew_till is not None:
        t["renew-till"] = _time(x.renew_till)
    if x.caddr is not None:
        _fill_list(t["caddr"], x.caddr, _fill_host_address)
    if x.authorization_data is not None:
        _fill_list(t["authorization-data"], x.authorization_data, _fill_ad_entry)


def _fill_kdc_req_body(t, x: KdcReqBody) -> None:
    t["kdc-options"] = _flags(x.kdc_options)
    if x.cname is not None:
        _fill_principal(t["cname"], x.cname)
    t["realm"] = _str(x.realm)
    if x.sname is not None:
        _fill_principal(t["sname"], x.sname)
    if x.from_ is not None:
        t["from"] = _time(x.from_)
    if x.till is not None:
        t["till"] = _time(x.till)
    if x.rtime is not None:
        t["rtime"] = _time(x.rtime)
    t["nonce"] = _u32(x.nonce)
    etypes = t["etype"]
    etypes.clear()
    for e in x.etype:
        etypes.append(_i32(e))
    if x.addresses is not None:
        _fill_list(t["addresses"], x.addresses, _fill_host_address)
    if x.enc_authorization_data is not None:
        _fill_encrypted_data(t["enc-authorization-data"], x.enc_authorization_data)
    if x.additional_tickets is not None:
        _fill_list(t["additional-tickets"], x.additional_tickets, _fill_ticket)


def _fill_kdc_req(t, x: KdcReq) -> None:
    t["pvno"] = 5
    t["msg-type"] = x.msg_type
    if x.padata:
        _fill_list(t["padata"], x.padata, _fill_padata)
    _fill_kdc_req_body(t["req-body"], x.req_body)


def _fill_kdc_rep(t, x: KdcRep) -> None:
    t["pvno"] = 5
    t["msg-type"] = x.msg_type
    if x.padata is not None:
        _fill_list(t["padata"], x.padata, _fill_padata)
    t["crealm"] = _str(x.crealm)
    _fill_principal(t["cname"], x.cname)
    _fill_ticket(t["ticket"], x.ticket)
    _fill_encrypted_data(t["enc-part"], x.enc_part)


def _fill_enc_kdc_rep_part(t, x: EncKdcRepPart) -> None:
    _fill_key(t["key"], x.key)
    _fill_list(t["last-req"], x.last_req, _fill_last_req_entry)
    t["nonce"] = _u32(x.nonce)
    if x.key_expiration is not None:
        t["key-expiration"] = _time(x.key_expiration)
    t["flags"] = _flags(x.flags)
    t["authtime"] = _time(x.authtime)
    if x.starttime is not None:
        t["starttime"] = _time(x.starttime)
    t["endtime"] = _time(x.endtime)
    if x.renew_till is not None:
        t["renew-till"] = _time(x.renew_till)
    t["srealm"] = _str(x.srealm)
    _fill_principal(t["sname"], x.sname)
    if x.caddr is not None:
        _fill_list(t["caddr"], x.caddr, _fill_host_address)
    if x.encrypted_pa_data is not None:
        _fill_list(t["encrypted-pa-data"], x.encrypted_pa_data, _fill_padata)


def _fill_ap_req(t, x: ApReq) -> None:
    t["pvno"] = 5
    t["msg-type"] = 14
    t["ap-options"] = _flags(x.ap_options)
    _fill_ticket(t["ticket"], x.ticket)
    _fill_encrypted_data(t["authenticator"], x.authenticator)


def _fill_authenticator(t, x: Authenticator) -> None:
    t["authenticator-vno"] = 5
    t["crealm"] = _str(x.crealm)
    _fill_principal(t["cname"], x.cname)
    if x.cksum is not None:
        _fill_checksum(t["cksum"], x.cksum)
    t["cusec"] = _usec(x.cusec)
    t["ctime"] = _time(x.ctime)
    if x.subkey is not None:
        _fill_key(t["subkey"], x.subkey)
    if x.seq_number is not None:
        t["seq-number"] = _u32(x.seq_number)
    if x.authorization_data is not None:
        _fill_list(t["authorization-data"], x.authorization_data, _fill_ad_entry)


def _fill_ap_rep(t, x: ApRep) -> None:
    t["pvno"] = 5
    t["msg-type"] = 15
    _fill_encrypted_data(t["enc-part"], x.enc_part)


def _fill_enc_ap_rep_part(t, x: EncApRepPart) -> None:
    t["ctime"] = _time(x.ctime)
    t["cusec"] = _usec(x.cusec)
    if x.subkey is not None:
        _fill_key(t["subkey"], x.subkey)
    if x.seq_number is not None:
        t["seq-number"] = _u32(x.seq_number)


def _fill_krb_error(t, x: KrbError) -> None:
    t["pvno"] = 5
    t["msg-type"] = 30
    if x.ctime is not None:
        t["ctime"] = _time(x.ctime)
    if x.cusec is not None:
        t["cusec"] = _usec(x.cusec)
    t["stime"] = _time(x.stime)
    t["susec"] = _usec(x.susec)
    t["error-code"] = _i32(x.error_code)
    if x.crealm is not None:
        t["crealm"] = _str(x.crealm)
    if x.cname is not None:
        _fill_principal(t["cname"], x.cname)
    t["realm"] = _str(x.realm)
    _fill_principal(t["sname"], x.sname)
    if x.e_text is not None:
        t["e-text"] = _str(x.e_text)
    if x.e_data is not None:
        t["e-data"] = _bytes(x.e_data)


def _spec_for(obj) -> object:
    """The pyasn1 spec instance for a model object (application tag from msg_type/tag)."""
    cls = type(obj)
    if cls is KdcReq:
        if obj.msg_type not in (10, 12):
            raise EncodeError("msg_type must be 10 or 12")
        return asn1.AsReq() if obj.msg_type == 10 else asn1.TgsReq()
    if cls is KdcRep:
        if obj.msg_type not in (11, 13):
            raise EncodeError("msg_type must be 11 or 13")
        return asn1.AsRep() if obj.msg_type == 11 else asn1.TgsRep()
    if cls is EncKdcRepPart:
        if obj.tag not in (25, 26):
            raise EncodeError("EncKdcRepPart.tag must be 25 or 26")
        return asn1.EncAsRepPart() if obj.tag == 25 else asn1.EncTgsRepPart()
    return _SPECS[cls][0]()


_SPECS: dict[type, tuple[type, Callable]] = {
    PrincipalName: (asn1.PrincipalName, _fill_principal),
    EncryptedData: (asn1.EncryptedData, _fill_encrypted_data),
    EncryptionKey: (asn1.EncryptionKey, _fill_key),
    Checksum: (asn1.Checksum, _fill_checksum),
    PAData: (asn1.PAData, _fill_padata),
    HostAddress: (asn1.HostAddress, _fill_host_address),
    AuthorizationDataEntry: (asn1.AuthorizationDataEntry, _fill_ad_entry),
    TransitedEncoding: (asn1.TransitedEncoding, _fill_transited),
    LastReqEntry: (asn1.LastReqEntry, _fill_last_req_entry),
    PaEncTsEnc: (asn1.PaEncTsEnc, _fill_pa_enc_ts),
    EtypeInfo2Entry: (asn1.EtypeInfo2Entry, _fill_etype_info2_entry),
    Ticket: (asn1.Ticket, _fill_ticket),
    EncTicketPart: (asn1.EncTicketPart, _fill_enc_ticket_part),
    KdcReqBody: (asn1.KdcReqBody, _fill_kdc_req_body),
    KdcReq: (asn1.AsReq, _fill_kdc_req),
    KdcRep: (asn1.AsRep, _fill_kdc_rep),
    EncKdcRepPart: (asn1.EncAsRepPart, _fill_enc_kdc_rep_part),
    ApReq: (asn1.ApReq, _fill_ap_req),
    Authenticator: (asn1.Authenticator, _fill_authenticator),
    ApRep: (asn1.ApRep, _fill_ap_rep),
    EncApRepPart: (asn1.EncApRepPart, _fill_enc_ap_rep_part),
    KrbError: (asn1.KrbError, _fill_krb_error),
}

_LIST_SPECS: dict[str, tuple[type, Callable]] = {
    "method_data": (asn1.MethodData, _fill_padata),
    "etype_info2": (asn1.EtypeInfo2, _fill_etype_info2_entry),
    "authorization_data": (asn1.AuthorizationData, _fill_ad_entry),
    "host_addresses": (asn1.HostAddresses, _fill_host_address),
}


def to_pyasn1(obj) -> object:
    """The pyasn1 object for a model object."""
    entry = _SPECS.get(type(obj))
    if entry is None:
        raise TypeError(f"no pyasn1 spec for {type(obj).__name__}")
    target = _spec_for(obj)
    try:
        entry[1](target, obj)
    except EncodeError:
        raise
    except (AttributeError, TypeError) as exc:
        raise EncodeError(f"cannot encode ({type(exc).__name__})") from None
    return target


def encode(obj) -> bytes:
    """DER of a model object, through pyasn1."""
    return _der_encode(to_pyasn1(obj))


def encode_list(kind: str, items) -> bytes:
    """DER of a SEQUENCE OF type by name ("method_data", "etype_info2", ...)."""
    spec, fill = _LIST_SPECS[kind]
    items = tuple(items)
    if kind == "etype_info2" and not items:
        raise EncodeError("ETYPE-INFO2 needs at least one entry")
    target = spec()
    _fill_list(target, items, fill)
    return _der_encode(target)


# --- pyasn1 -> model ----------------------------------------------------------------------------


def _present(t, name: str) -> bool:
    v = t.getComponentByName(name, default=None, instantiate=False)
    return v is not None and v.isValue


def _g_int(v, lo: int, hi: int) -> int:
    i = int(v)
    if not lo <= i <= hi:
        raise DecodeError("INTEGER out of range")
    return i


def _g_i32(v) -> int:
    return _g_int(v, INT32_MIN, INT32_MAX)


def _g_u32(v) -> int:
    return _g_int(v, 0, UINT32_MAX)


def _g_usec(v) -> int:
    return _g_int(v, INT32_MIN, INT32_MAX)  # as MIT, like der._usec: any Int32 decodes


def _g_time(v) -> int:
    return parse_kerberos_time(v.asOctets())


def _g_str(v) -> str:
    try:
        return v.asOctets().decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("KerberosString is not UTF-8") from None


def _g_bytes(v) -> bytes:
    return v.asOctets()


def _g_flags(v) -> int:
    bits = tuple(v)[:32]  # RFC 4120 §5.2.8: bits past 31 ignored, shorter strings padded
    out = 0
    for i, b in enumerate(bits):
        out |= b << (31 - i)
    return out


def _g_opt(t, name: str, fn: Callable):
    return fn(t[name]) if _present(t, name) else None


def _g_const(v, want: int) -> None:
    if int(v) != want:
        raise DecodeError("unexpected protocol version or message type")


def _g_principal(t) -> PrincipalName:
    return PrincipalName(_g_i32(t["name-type"]), tuple(_g_str(c) for c in t["name-string"]))


def _g_encrypted_data(t) -> EncryptedData:
    return EncryptedData(_g_i32(t["etype"]), _g_opt(t, "kvno", _g_u32), _g_bytes(t["cipher"]))


def _g_key(t) -> EncryptionKey:
    return EncryptionKey(_g_i32(t["keytype"]), _g_bytes(t["keyvalue"]))


def _g_checksum(t) -> Checksum:
    return Checksum(_g_i32(t["cksumtype"]), _g_bytes(t["checksum"]))


def _g_padata(t) -> PAData:
    return PAData(_g_i32(t["padata-type"]), _g_bytes(t["padata-value"]))


def _g_host_address(t) -> HostAddress:
    return HostAddress(_g_i32(t["addr-type"]), _g_bytes(t["address"]))


def _g_ad_entry(t) -> AuthorizationDataEntry:
    return AuthorizationDataEntry(_g_i32(t["ad-type"]), _g_bytes(t["ad-data"]))


def _g_transited(t) -> TransitedEncoding:
    return TransitedEncoding(_g_i32(t["tr-type"]), _g_bytes(t["contents"]))


def _g_last_req_entry(t) -> LastReqEntry:
    return LastReqEntry(_g_i32(t["lr-type"]), _g_time(t["lr-value"]))


def _g_pa_enc_ts(t) -> PaEncTsEnc:
    return PaEncTsEnc(_g_time(t["patimestamp"]), _g_opt(t, "pausec", _g_usec))


def _g_etype_info2_entry(t) -> EtypeInfo2Entry:
    return EtypeInfo2Entry(
        _g_i32(t["etype"]), _g_opt(t, "salt", _g_str), _g_opt(t, "s2kparams", _g_bytes)
    )


def _g_list(fn: Callable) -> Callable:
    def convert(t) -> tuple:
        return tuple(fn(x) for x in t)

    return convert


def _g_ticket(t) -> Ticket:
    _g_const(t["tkt-vno"], 5)
    return Ticket(_g_str(t["realm"]), _g_principal(t["sname"]), _g_encrypted_data(t["enc-part"]))


def _g_enc_ticket_part(t) -> EncTicketPart:
    return EncTicketPart(
        flags=_g_flags(t["flags"]),
        key=_g_key(t["key"]),
        crealm=_g_str(t["crealm"]),
        cname=_g_principal(t["cname"]),
        transited=_g_transited(t["transited"]),
        authtime=_g_time(t["authtime"]),
        starttime=_g_opt(t, "starttime", _g_time),
        endtime=_g_time(t["endtime"]),
        renew_till=_g_opt(t, "renew-till", _g_time),
        caddr=_g_opt(t, "caddr", _g_list(_g_host_address)),
        authorization_data=_g_opt(t, "authorization-data", _g_list(_g_ad_entry)),
    )


def _g_kdc_req_body(t) -> KdcReqBody:
    return KdcReqBody(
        kdc_options=_g_flags(t["kdc-options"]),
        cname=_g_opt(t, "cname", _g_principal),
        realm=_g_str(t["realm"]),
        sname=_g_opt(t, "sname", _g_principal),
        from_=_g_opt(t, "from", _g_time),
        till=_g_opt(t, "till", _g_time),
        rtime=_g_opt(t, "rtime", _g_time),
        nonce=_g_u32(t["nonce"]),
        etype=tuple(_g_i32(e) for e in t["etype"]),
        addresses=_g_opt(t, "addresses", _g_list(_g_host_address)),
        enc_authorization_data=_g_opt(t, "enc-authorization-data", _g_encrypted_data),
        additional_tickets=_g_opt(t, "additional-tickets", _g_list(_g_ticket)),
    )


def _g_kdc_req(t, msg_type: int) -> KdcReq:
    _g_const(t["pvno"], 5)
    _g_const(t["msg-type"], msg_type)
    padata = _g_opt(t, "padata", _g_list(_g_padata)) or ()
    body = t["req-body"]
    # the DER of req-body as received: the input is canonical DER (checked by the caller), so
    # re-encoding gives the same bytes; strip the explicit [4] wrapper's header
    wrapped = _der_encode(body)
    return KdcReq(msg_type, padata, _g_kdc_req_body(body), _strip_header(wrapped))


def _strip_header(tlv: bytes) -> bytes:
    n = tlv[1]
    return tlv[2 + (n & 0x7F if n & 0x80 else 0) :]


def _g_kdc_rep(t, msg_type: int) -> KdcRep:
    _g_const(t["pvno"], 5)
    _g_const(t["msg-type"], msg_type)
    return KdcRep(
        msg_type=msg_type,
        padata=_g_opt(t, "padata", _g_list(_g_padata)),
        crealm=_g_str(t["crealm"]),
        cname=_g_principal(t["cname"]),
        ticket=_g_ticket(t["ticket"]),
        enc_part=_g_encrypted_data(t["enc-part"]),
    )


def _g_enc_kdc_rep_part(t, tag: int) -> EncKdcRepPart:
    return EncKdcRepPart(
        key=_g_key(t["key"]),
        last_req=tuple(_g_last_req_entry(x) for x in t["last-req"]),
        nonce=_g_u32(t["nonce"]),
        key_expiration=_g_opt(t, "key-expiration", _g_time),
        flags=_g_flags(t["flags"]),
        authtime=_g_time(t["authtime"]),
        starttime=_g_opt(t, "starttime", _g_time),
        endtime=_g_time(t["endtime"]),
        renew_till=_g_opt(t, "renew-till", _g_time),
        srealm=_g_str(t["srealm"]),
        sname=_g_principal(t["sname"]),
        caddr=_g_opt(t, "caddr", _g_list(_g_host_address)),
        encrypted_pa_data=_g_opt(t, "encrypted-pa-data", _g_list(_g_padata)),
        tag=tag,
    )


def _g_ap_req(t) -> ApReq:
    _g_const(t["pvno"], 5)
    _g_const(t["msg-type"], 14)
    return ApReq(
        _g_flags(t["ap-options"]), _g_ticket(t["ticket"]), _g_encrypted_data(t["authenticator"])
    )


def _g_authenticator(t) -> Authenticator:
    _g_const(t["authenticator-vno"], 5)
    return Authenticator(
        crealm=_g_str(t["crealm"]),
        cname=_g_principal(t["cname"]),
        cksum=_g_opt(t, "cksum", _g_checksum),
        cusec=_g_usec(t["cusec"]),
        ctime=_g_time(t["ctime"]),
        subkey=_g_opt(t, "subkey", _g_key),
        seq_number=_g_opt(t, "seq-number", _g_u32),
        authorization_data=_g_opt(t, "authorization-data", _g_list(_g_ad_entry)),
    )


def _g_ap_rep(t) -> ApRep:
    _g_const(t["pvno"], 5)
    _g_const(t["msg-type"], 15)
    return ApRep(_g_encrypted_data(t["enc-part"]))


def _g_enc_ap_rep_part(t) -> EncApRepPart:
    return EncApRepPart(
        ctime=_g_time(t["ctime"]),
        cusec=_g_usec(t["cusec"]),
        subkey=_g_opt(t, "subkey", _g_key),
        seq_number=_g_opt(t, "seq-number", _g_u32),
    )


def _g_krb_error(t) -> KrbError:
    _g_const(t["pvno"], 5)
    _g_const(t["msg-type"], 30)
    return KrbError(
        ctime=_g_opt(t, "ctime", _g_time),
        cusec=_g_opt(t, "cusec", _g_usec),
        stime=_g_time(t["stime"]),
        susec=_g_usec(t["susec"]),
        error_code=_g_i32(t["error-code"]),
        crealm=_g_opt(t, "crealm", _g_str),
        cname=_g_opt(t, "cname", _g_principal),
        realm=_g_str(t["realm"]),
        sname=_g_principal(t["sname"]),
        e_text=_g_opt(t, "e-text", _g_str),
        e_data=_g_opt(t, "e-data", _g_bytes),
    )


def _g_etype_info2(t) -> tuple[EtypeInfo2Entry, ...]:
    entries = tuple(_g_etype_info2_entry(x) for x in t)
    if not entries:
        raise DecodeError("empty ETYPE-INFO2")  # RFC 4120 §5.2.7.5
    return entries


# model class -> list of (application tag byte or None, spec class, converter)
_DECODE: dict[type, list[tuple[int | None, type, Callable]]] = {
    PrincipalName: [(None, asn1.PrincipalName, _g_principal)],
    EncryptedData: [(None, asn1.EncryptedData, _g_encrypted_data)],
    EncryptionKey: [(None, asn1.EncryptionKey, _g_key)],
    Checksum: [(None, asn1.Checksum, _g_checksum)],
    PAData: [(None, asn1.PAData, _g_padata)],
    HostAddress: [(None, asn1.HostAddress, _g_host_address)],
    AuthorizationDataEntry: [(None, asn1.AuthorizationDataEntry, _g_ad_entry)],
    TransitedEncoding: [(None, asn1.TransitedEncoding, _g_transited)],
    LastReqEntry: [(None, asn1.LastReqEntry, _g_last_req_entry)],
    PaEncTsEnc: [(None, asn1.PaEncTsEnc, _g_pa_enc_ts)],
    EtypeInfo2Entry: [(None, asn1.EtypeInfo2Entry, _g_etype_info2_entry)],
    Ticket: [(None, asn1.Ticket, _g_ticket)],
    EncTicketPart: [(None, asn1.EncTicketPart, _g_enc_ticket_part)],
    KdcReqBody: [(None, asn1.KdcReqBody, _g_kdc_req_body)],
    KdcReq: [
        (0x6A, asn1.AsReq, lambda t: _g_kdc_req(t, 10)),
        (0x6C, asn1.TgsReq, lambda t: _g_kdc_req(t, 12)),
    ],
    KdcRep: [
        (0x6B, asn1.AsRep, lambda t: _g_kdc_rep(t, 11)),
        (0x6D, asn1.TgsRep, lambda t: _g_kdc_rep(t, 13)),
    ],
    EncKdcRepPart: [
        (0x79, asn1.EncAsRepPart, lambda t: _g_enc_kdc_rep_part(t, 25)),
        (0x7A, asn1.EncTgsRepPart, lambda t: _g_enc_kdc_rep_part(t, 26)),
    ],
    ApReq: [(None, asn1.ApReq, _g_ap_req)],
    Authenticator: [(None, asn1.Authenticator, _g_authenticator)],
    ApRep: [(None, asn1.ApRep, _g_ap_rep)],
    EncApRepPart: [(None, asn1.EncApRepPart, _g_enc_ap_rep_part)],
    KrbError: [(None, asn1.KrbError, _g_krb_error)],
}

_LIST_DECODE: dict[str, tuple[type, Callable]] = {
    "method_data": (asn1.MethodData, _g_list(_g_padata)),
    "etype_info2": (asn1.EtypeInfo2, _g_etype_info2),
    "authorization_data": (asn1.AuthorizationData, _g_list(_g_ad_entry)),
    "host_addresses": (asn1.HostAddresses, _g_list(_g_host_address)),
}


def _decode_with(spec_cls: type, convert: Callable, data: bytes):
    try:
        data = bytes(data)
        obj, rest = der_decoder.decode(data, asn1Spec=spec_cls())
        if rest:
            raise DecodeError("trailing bytes after the message")
        # pyasn1 accepts BER; only the canonical DER form is valid Kerberos input here
        if _der_encode(obj) != data:
            raise DecodeError("not DER")
        return convert(obj)
    except DecodeError:
        raise
    except Exception as exc:  # pyasn1 raises many types; malformed input only ever gives ours
        raise DecodeError(f"malformed DER ({type(exc).__name__})") from None


def decode(cls: type, data: bytes) -> object:
    """Decode DER ``data`` as the model class ``cls`` through pyasn1."""
    choices = _DECODE.get(cls)
    if choices is None:
        raise TypeError(f"no pyasn1 decoder for {cls!r}")
    if len(choices) > 1:
        first = data[0] if data else None
        for tag_byte, spec_cls, convert in choices:
            if first == tag_byte:
                return _decode_with(spec_cls, convert, data)
        raise DecodeError("wrong application tag")
    _, spec_cls, convert = choices[0]
    return _decode_with(spec_cls, convert, data)


def decode_list(kind: str, data: bytes) -> tuple:
    """Decode a SEQUENCE OF type by name ("method_data", "etype_info2", ...)."""
    spec_cls, convert = _LIST_DECODE[kind]
    return _decode_with(spec_cls, convert, data)


_MESSAGE_CLASSES = {
    0x6A: KdcReq,
    0x6B: KdcRep,
    0x6C: KdcReq,
    0x6D: KdcRep,
    0x6E: ApReq,
    0x6F: ApRep,
    0x7E: KrbError,
}


def decode_message(data: bytes) -> object:
    if not data:
        raise DecodeError("empty message")
    cls = _MESSAGE_CLASSES.get(data[0])
    if cls is None:
        raise DecodeError("not a Kerberos message (unknown application tag)")
    return decode(cls, data)
