"""RFC 4120 §5 ASN.1 types as pyasn1 spec classes: the reference that the fast codec is checked
against (tests) and a fallback for anything the fast codec does not cover.

The RFC 4120 module is ``DEFINITIONS EXPLICIT TAGS``: every ``[n]`` below is an explicit
context tag. Range constraints (Int32, UInt32, Microseconds) and the KerberosTime form are
checked when converting to the model (``pyasn1_codec``), not here.
"""

from __future__ import annotations

from pyasn1.type import char, namedtype, tag, univ, useful


def _ctx(n: int):
    return tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, n)


def _app(n: int):
    return tag.Tag(tag.tagClassApplication, tag.tagFormatConstructed, n)


def _field(name: str, n: int, spec) -> namedtype.NamedType:
    return namedtype.NamedType(name, spec.subtype(explicitTag=_ctx(n)))


def _optional(name: str, n: int, spec) -> namedtype.OptionalNamedType:
    return namedtype.OptionalNamedType(name, spec.subtype(explicitTag=_ctx(n)))


class Int32(univ.Integer):
    pass


class UInt32(univ.Integer):
    pass


class Microseconds(univ.Integer):
    pass


class KerberosString(char.GeneralString):
    """RFC 4120 §5.2.1: GeneralString restricted to IA5 by the RFC; MIT sends UTF-8."""

    encoding = "utf-8"


class Realm(KerberosString):
    pass


class KerberosTime(useful.GeneralizedTime):
    """RFC 4120 §5.2.3: always "YYYYMMDDHHMMSSZ"."""


class KerberosFlags(univ.BitString):
    """RFC 4120 §5.2.8: BIT STRING (SIZE (32..MAX)); MIT sends exactly 32 bits."""


class PrincipalName(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("name-type", 0, Int32()),
        _field("name-string", 1, univ.SequenceOf(componentType=KerberosString())),
    )


class HostAddress(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("addr-type", 0, Int32()),
        _field("address", 1, univ.OctetString()),
    )


class HostAddresses(univ.SequenceOf):
    componentType = HostAddress()


class AuthorizationDataEntry(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("ad-type", 0, Int32()),
        _field("ad-data", 1, univ.OctetString()),
    )


class AuthorizationData(univ.SequenceOf):
    componentType = AuthorizationDataEntry()


class PAData(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("padata-type", 1, Int32()),
        _field("padata-value", 2, univ.OctetString()),
    )


class MethodData(univ.SequenceOf):
    componentType = PAData()


class EncryptedData(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("etype", 0, Int32()),
        _optional("kvno", 1, UInt32()),
        _field("cipher", 2, univ.OctetString()),
    )


class EncryptionKey(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("keytype", 0, Int32()),
        _field("keyvalue", 1, univ.OctetString()),
    )


class Checksum(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("cksumtype", 0, Int32()),
        _field("checksum", 1, univ.OctetString()),
    )


class TransitedEncoding(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("tr-type", 0, Int32()),
        _field("contents", 1, univ.OctetString()),
    )


class Ticket(univ.Sequence):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(1))
    componentType = namedtype.NamedTypes(
        _field("tkt-vno", 0, univ.Integer()),
        _field("realm", 1, Realm()),
        _field("sname", 2, PrincipalName()),
        _field("enc-part", 3, EncryptedData()),
    )


class EncTicketPartBody(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("flags", 0, KerberosFlags()),
        _field("key", 1, EncryptionKey()),
        _field("crealm", 2, Realm()),
        _field("cname", 3, PrincipalName()),
        _field("transited", 4, TransitedEncoding()),
        _field("authtime", 5, KerberosTime()),
        _optional("starttime", 6, KerberosTime()),
        _field("endtime", 7, KerberosTime()),
        _optional("renew-till", 8, KerberosTime()),
        _optional("caddr", 9, HostAddresses()),
        _optional("authorization-data", 10, AuthorizationData()),
    )


class EncTicketPart(EncTicketPartBody):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(3))


class KdcReqBody(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("kdc-options", 0, KerberosFlags()),
        _optional("cname", 1, PrincipalName()),
        _field("realm", 2, Realm()),
        _optional("sname", 3, PrincipalName()),
        _optional("from", 4, KerberosTime()),
        _optional("till", 5, KerberosTime()),
        _optional("rtime", 6, KerberosTime()),
        _field("nonce", 7, UInt32()),
        _field("etype", 8, univ.SequenceOf(componentType=Int32())),
        _optional("addresses", 9, HostAddresses()),
        _optional("enc-authorization-data", 10, EncryptedData()),
        _optional("additional-tickets", 11, univ.SequenceOf(componentType=Ticket())),
    )


class KdcReq(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("pvno", 1, univ.Integer()),
        _field("msg-type", 2, univ.Integer()),
        _optional("padata", 3, MethodData()),
        _field("req-body", 4, KdcReqBody()),
    )


class AsReq(KdcReq):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(10))


class TgsReq(KdcReq):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(12))


class KdcRep(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("pvno", 0, univ.Integer()),
        _field("msg-type", 1, univ.Integer()),
        _optional("padata", 2, MethodData()),
        _field("crealm", 3, Realm()),
        _field("cname", 4, PrincipalName()),
        _field("ticket", 5, Ticket()),
        _field("enc-part", 6, EncryptedData()),
    )


class AsRep(KdcRep):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(11))


class TgsRep(KdcRep):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(13))


class LastReqEntry(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("lr-type", 0, Int32()),
        _field("lr-value", 1, KerberosTime()),
    )


class LastReq(univ.SequenceOf):
    componentType = LastReqEntry()


class EncKdcRepPart(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("key", 0, EncryptionKey()),
        _field("last-req", 1, LastReq()),
        _field("nonce", 2, UInt32()),
        _optional("key-expiration", 3, KerberosTime()),
        _field("flags", 4, KerberosFlags()),
        _field("authtime", 5, KerberosTime()),
        _optional("starttime", 6, KerberosTime()),
        _field("endtime", 7, KerberosTime()),
        _optional("renew-till", 8, KerberosTime()),
        _field("srealm", 9, Realm()),
        _field("sname", 10, PrincipalName()),
        _optional("caddr", 11, HostAddresses()),
        _optional("encrypted-pa-data", 12, MethodData()),  # RFC 6806 §11
    )


class EncAsRepPart(EncKdcRepPart):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(25))


class EncTgsRepPart(EncKdcRepPart):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(26))


class ApReq(univ.Sequence):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(14))
    componentType = namedtype.NamedTypes(
        _field("pvno", 0, univ.Integer()),
        _field("msg-type", 1, univ.Integer()),
        _field("ap-options", 2, KerberosFlags()),
        _field("ticket", 3, Ticket()),
        _field("authenticator", 4, EncryptedData()),
    )


class Authenticator(univ.Sequence):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(2))
    componentType = namedtype.NamedTypes(
        _field("authenticator-vno", 0, univ.Integer()),
        _field("crealm", 1, Realm()),
        _field("cname", 2, PrincipalName()),
        _optional("cksum", 3, Checksum()),
        _field("cusec", 4, Microseconds()),
        _field("ctime", 5, KerberosTime()),
        _optional("subkey", 6, EncryptionKey()),
        _optional("seq-number", 7, UInt32()),
        _optional("authorization-data", 8, AuthorizationData()),
    )


class ApRep(univ.Sequence):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(15))
    componentType = namedtype.NamedTypes(
        _field("pvno", 0, univ.Integer()),
        _field("msg-type", 1, univ.Integer()),
        _field("enc-part", 2, EncryptedData()),
    )


class EncApRepPart(univ.Sequence):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(27))
    componentType = namedtype.NamedTypes(
        _field("ctime", 0, KerberosTime()),
        _field("cusec", 1, Microseconds()),
        _optional("subkey", 2, EncryptionKey()),
        _optional("seq-number", 3, UInt32()),
    )


class KrbError(univ.Sequence):
    tagSet = univ.Sequence.tagSet.tagExplicitly(_app(30))
    componentType = namedtype.NamedTypes(
        _field("pvno", 0, univ.Integer()),
        _field("msg-type", 1, univ.Integer()),
        _optional("ctime", 2, KerberosTime()),
        _optional("cusec", 3, Microseconds()),
        _field("stime", 4, KerberosTime()),
        _field("susec", 5, Microseconds()),
        _field("error-code", 6, Int32()),
        _optional("crealm", 7, Realm()),
        _optional("cname", 8, PrincipalName()),
        _field("realm", 9, Realm()),
        _field("sname", 10, PrincipalName()),
        _optional("e-text", 11, KerberosString()),
        _optional("e-data", 12, univ.OctetString()),
    )


class PaEncTsEnc(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("patimestamp", 0, KerberosTime()),
        _optional("pausec", 1, Microseconds()),
    )


class EtypeInfo2Entry(univ.Sequence):
    componentType = namedtype.NamedTypes(
        _field("etype", 0, Int32()),
        _optional("salt", 1, KerberosString()),
        _optional("s2kparams", 2, univ.OctetString()),
    )


class EtypeInfo2(univ.SequenceOf):
    """RFC 4120 §5.2.7.5: SEQUENCE SIZE (1..MAX) OF ETYPE-INFO2-ENTRY."""

    componentType = EtypeInfo2Entry()
