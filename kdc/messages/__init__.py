"""RFC 4120 messages: the object model and its DER codec.

``encode``/``decode``/``decode_message`` use the fast hand-written codec (``der.py``, compiled
by mypyc when installed with it: ``codec.py``); the pyasn1 reference codec
(``pyasn1_codec.py``, spec classes in ``asn1.py``) has the same functions and is what the
tests hold the fast one to. Any malformed input raises :class:`DecodeError` (a
``ValueError``) and nothing else.
"""

from __future__ import annotations

from . import constants
from .codec import active as _der
from .errors import DecodeError, EncodeError
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

encode = _der.encode
decode = _der.decode
decode_message = _der.decode_message
_encode_list = _der.encode_list
_decode_list = _der.decode_list


def encode_method_data(padata_list) -> bytes:
    """METHOD-DATA (SEQUENCE OF PA-DATA), e.g. the e-data of KDC_ERR_PREAUTH_REQUIRED."""
    return _encode_list("method_data", padata_list)


def decode_method_data(data: bytes) -> tuple[PAData, ...]:
    return _decode_list("method_data", data)


def encode_etype_info2(entries) -> bytes:
    """ETYPE-INFO2 (RFC 4120 §5.2.7.5), the padata-value of PA-ETYPE-INFO2; at least one entry."""
    return _encode_list("etype_info2", entries)


def decode_etype_info2(data: bytes) -> tuple[EtypeInfo2Entry, ...]:
    return _decode_list("etype_info2", data)


def encode_authorization_data(entries) -> bytes:
    """AuthorizationData (SEQUENCE OF), e.g. the ad-data of AD-IF-RELEVANT."""
    return _encode_list("authorization_data", entries)


def decode_authorization_data(data: bytes) -> tuple[AuthorizationDataEntry, ...]:
    return _decode_list("authorization_data", data)


def encode_host_addresses(addresses) -> bytes:
    return _encode_list("host_addresses", addresses)


def decode_host_addresses(data: bytes) -> tuple[HostAddress, ...]:
    return _decode_list("host_addresses", data)


def encode_enc_kdc_rep_part(part: EncKdcRepPart) -> bytes:
    """EncASRepPart [25] or EncTGSRepPart [26] as ``part.tag`` says."""
    return encode(part)


__all__ = [
    "ApRep",
    "ApReq",
    "Authenticator",
    "AuthorizationDataEntry",
    "Checksum",
    "DecodeError",
    "EncApRepPart",
    "EncKdcRepPart",
    "EncTicketPart",
    "EncodeError",
    "EncryptedData",
    "EncryptionKey",
    "EtypeInfo2Entry",
    "HostAddress",
    "KdcRep",
    "KdcReq",
    "KdcReqBody",
    "KrbError",
    "LastReqEntry",
    "PAData",
    "PaEncTsEnc",
    "PrincipalName",
    "Ticket",
    "TransitedEncoding",
    "constants",
    "decode",
    "decode_authorization_data",
    "decode_etype_info2",
    "decode_host_addresses",
    "decode_message",
    "decode_method_data",
    "encode",
    "encode_authorization_data",
    "encode_enc_kdc_rep_part",
    "encode_etype_info2",
    "encode_host_addresses",
    "encode_method_data",
]
