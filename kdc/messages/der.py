"""Fast hand-written DER codec for the RFC 4120 model (the KDC's hot path).

Decoding is strict DER (X.690 §10): definite, minimal lengths; minimal INTEGERs; fields of a
SEQUENCE in ascending tag order, each present at most once and none unknown; no trailing bytes.
Every failure is a :class:`DecodeError` (a ``ValueError``), whatever the input. Nesting depth is
bounded by the schema itself (no recursive types; opaque OCTET STRINGs are not parsed), and
lengths above 16 MiB are refused.

Two RFC 4120 rules shape it beyond plain DER:
- KerberosFlags (§5.2.8) are encoded with 32 bits as MIT does (DER would strip trailing zero
  bits); on decode any length is accepted, bits beyond 31 are ignored, shorter strings are padded.
- KerberosTime (§5.2.3) is exactly "YYYYMMDDHHMMSSZ"; anything else is refused.
- Microseconds (§5.2.4, 0..999999) decode as any Int32, as MIT's decoder takes them: MIT 1.20
  clients sometimes send 1000000. Encoding keeps the RFC range.

``pyasn1_codec`` is the reference implementation; tests check both give equal objects and bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

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

# RFC 4120 §5.2.4 and §5.2.3 ranges
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
UINT32_MAX = 2**32 - 1
USEC_MAX = 999_999
MAX_LENGTH = 0xFFFFFF  # 16 MiB: 3 length octets at most

# --- KerberosTime <-> POSIX seconds -------------------------------------------------------------

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


TIME_MIN = _days_from_civil(1, 1, 1) * 86400  # 00010101000000Z
TIME_MAX = _days_from_civil(9999, 12, 31) * 86400 + 86399  # 99991231235959Z


def parse_kerberos_time(text: bytes) -> int:
    """POSIX seconds of a DER KerberosTime body ``b"YYYYMMDDHHMMSSZ"`` (RFC 4120 §5.2.3)."""
    if len(text) != 15 or text[14] != 0x5A or not text[:14].isdigit():
        raise DecodeError("KerberosTime is not YYYYMMDDHHMMSSZ")
    y = int(text[0:4])
    mo = int(text[4:6])
    d = int(text[6:8])
    h = int(text[8:10])
    mi = int(text[10:12])
    s = int(text[12:14])
    if y == 0 or not 1 <= mo <= 12 or h > 23 or mi > 59 or s > 59 or d == 0:
        raise DecodeError("KerberosTime out of range")
    dim = _DAYS_IN_MONTH[mo]
    if mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        dim = 29
    if d > dim:
        raise DecodeError("KerberosTime day out of range")
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s


def format_kerberos_time(value) -> bytes:
    """``b"YYYYMMDDHHMMSSZ"`` of POSIX seconds (years 1..9999)."""
    if type(value) is not int or not TIME_MIN <= value <= TIME_MAX:
        raise EncodeError("KerberosTime out of range")
    days, secs = divmod(value, 86400)
    y, m, d = _civil_from_days(days)
    h, rest = divmod(secs, 3600)
    mi, s = divmod(rest, 60)
    return b"%04d%02d%02d%02d%02d%02dZ" % (y, m, d, h, mi, s)


# --- decoding primitives ------------------------------------------------------------------------
# A "field" is the 4-tuple (tag, content_start, content_end, tlv_start) of one TLV in ``d``.


def _hdr(d: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Tag, content start and content end of the TLV at ``pos`` (which must end by ``end``)."""
    if end - pos < 2:
        raise DecodeError("truncated")
    t = d[pos]
    n = d[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 1:
            if pos >= end:
                raise DecodeError("truncated length")
            n = d[pos]
            pos += 1
            if n < 0x80:
                raise DecodeError("non-minimal length")
        elif k == 2:
            if pos + 2 > end:
                raise DecodeError("truncated length")
            n = (d[pos] << 8) | d[pos + 1]
            pos += 2
            if n < 0x100:
                raise DecodeError("non-minimal length")
        elif k == 3:
            if pos + 3 > end:
                raise DecodeError("truncated length")
            n = (d[pos] << 16) | (d[pos + 1] << 8) | d[pos + 2]
            pos += 3
            if n < 0x10000:
                raise DecodeError("non-minimal length")
        elif k == 0:
            raise DecodeError("indefinite length is not DER")
        else:
            raise DecodeError("length too large")
    stop = pos + n
    if stop > end:
        raise DecodeError("length beyond end of data")
    return t, pos, stop


def _fields(d: bytes, s: int, e: int, n: int) -> list:
    """Parse the contents ``d[s:e]`` of a SEQUENCE of EXPLICIT [0]..[n-1] fields.

    Returns ``n`` entries: ``None`` for an absent field, else the field tuple of the value
    inside the explicit tag.
    """
    out: list = [None] * n
    last = -1
    while s < e:
        k = d[s] - 0xA0
        if k <= last or k >= n:
            raise DecodeError("unexpected, repeated or out-of-order field")
        # Both lengths in short form (under 128 octets, most fields) are read inline; _hdr
        # does the rest. Both paths apply the same checks: the explicit tag's contents are
        # exactly one TLV, and it ends within the SEQUENCE.
        if e - s >= 4 and d[s + 1] < 0x80 and d[s + 3] < 0x80:
            ce = s + 2 + d[s + 1]
            if s + 4 + d[s + 3] != ce:
                raise DecodeError("trailing data in tagged field")
            if ce > e:
                raise DecodeError("length beyond end of data")
            out[k] = (d[s + 2], s + 4, ce, s + 2)
        else:
            _, cs, ce = _hdr(d, s, e)
            it, is_, ie = _hdr(d, cs, ce)
            if ie != ce:
                raise DecodeError("trailing data in tagged field")
            out[k] = (it, is_, ie, cs)
        last = k
        s = ce
    return out


def _missing() -> DecodeError:
    return DecodeError("required field missing")


def _seq(d: bytes, f, n: int) -> list:
    if f is None:
        raise _missing()
    if f[0] != 0x30:
        raise DecodeError("expected SEQUENCE")
    return _fields(d, f[1], f[2], n)


def _app_seq(d: bytes, f, app_tag: int, n: int) -> list:
    if f[0] != 0x60 | app_tag:
        raise DecodeError("wrong application tag")
    t, s, e = _hdr(d, f[1], f[2])
    if e != f[2]:
        raise DecodeError("trailing data after SEQUENCE")
    if t != 0x30:
        raise DecodeError("expected SEQUENCE")
    return _fields(d, s, e, n)


def _items(d: bytes, f) -> list:
    """Element TLVs of a SEQUENCE OF."""
    if f is None:
        raise _missing()
    if f[0] != 0x30:
        raise DecodeError("expected SEQUENCE OF")
    s, e = f[1], f[2]
    out = []
    while s < e:
        if e - s >= 2 and d[s + 1] < 0x80:  # short-form length inline, as in _fields
            cs = s + 2
            ce = cs + d[s + 1]
            if ce > e:
                raise DecodeError("length beyond end of data")
            out.append((d[s], cs, ce, s))
        else:
            t, cs, ce = _hdr(d, s, e)
            out.append((t, cs, ce, s))
        s = ce
    return out


def _int(d: bytes, f, lo: int, hi: int) -> int:
    if f is None:
        raise _missing()
    t, s, e = f[0], f[1], f[2]
    if t != 0x02:
        raise DecodeError("expected INTEGER")
    n = e - s
    if n == 1:
        v = d[s]
        if v > 127:
            v -= 256
    else:
        if n == 0:
            raise DecodeError("empty INTEGER")
        b0 = d[s]
        b1 = d[s + 1]
        if (b0 == 0 and b1 < 0x80) or (b0 == 0xFF and b1 >= 0x80):
            raise DecodeError("non-minimal INTEGER")
        if n > 5:
            raise DecodeError("INTEGER out of range")
        v = int.from_bytes(d[s:e], "big", signed=True)
    if v < lo or v > hi:
        raise DecodeError("INTEGER out of range")
    return v


def _int32(d: bytes, f) -> int:
    if f is not None and f[0] == 0x02 and f[2] - f[1] == 1:  # one octet: always in range
        v = d[f[1]]
        return v - 256 if v > 127 else v
    return _int(d, f, INT32_MIN, INT32_MAX)


def _uint32(d: bytes, f) -> int:
    return _int(d, f, 0, UINT32_MAX)


def _usec(d: bytes, f) -> int:
    # Microseconds (RFC 4120 §5.2.4: 0..999999) are decoded as MIT does, as any Int32: MIT
    # 1.20 clients sometimes send 1000000 (seen in a PA-ENC-TIMESTAMP's pausec, about one
    # login in 500k under kdcload), and MIT's KDC accepts it. We only ever encode 0..999999.
    return _int(d, f, INT32_MIN, INT32_MAX)


def _const(d: bytes, f, value: int) -> None:
    if f is not None and f[0] == 0x02 and f[2] - f[1] == 1 and d[f[1]] == value:
        return  # the one-octet encoding of a small constant (pvno 5, msg-types)
    if _int(d, f, INT32_MIN, INT32_MAX) != value:
        raise DecodeError("unexpected protocol version or message type")


def _octets(d: bytes, f) -> bytes:
    if f is None:
        raise _missing()
    if f[0] != 0x04:
        raise DecodeError("expected OCTET STRING")
    return d[f[1] : f[2]]


def _string(d: bytes, f) -> str:
    if f is None:
        raise _missing()
    if f[0] != 0x1B:
        raise DecodeError("expected GeneralString")
    try:
        return d[f[1] : f[2]].decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("KerberosString is not UTF-8") from None


# Decoded public values that recur from request to request (the current second's times,
# principal names), by their exact DER bytes. Bounded; a full dictionary is emptied.
_DECODE_CACHE_MAX = 4096
_TIME_VALUES: dict[bytes, int] = {}
_PRINCIPAL_VALUES: dict[bytes, PrincipalName] = {}


def _time(d: bytes, f) -> int:
    if f is None:
        raise _missing()
    if f[0] != 0x18:
        raise DecodeError("expected GeneralizedTime")
    text = d[f[1] : f[2]]
    value = _TIME_VALUES.get(text)
    if value is None:
        value = parse_kerberos_time(text)  # raises on anything invalid: never cached
        if len(_TIME_VALUES) >= _DECODE_CACHE_MAX:
            _TIME_VALUES.clear()
        _TIME_VALUES[text] = value
    return value


def _flags(d: bytes, f) -> int:
    if f is None:
        raise _missing()
    t, s, e = f[0], f[1], f[2]
    if t != 0x03:
        raise DecodeError("expected BIT STRING")
    if e - s == 5 and d[s] == 0:  # the usual 32 bits
        return int.from_bytes(d[s + 1 : e], "big")
    if e == s:
        raise DecodeError("empty BIT STRING")
    unused = d[s]
    if unused > 7 or (unused and e - s == 1):
        raise DecodeError("bad BIT STRING padding count")
    if unused and d[e - 1] & ((1 << unused) - 1):
        raise DecodeError("non-zero BIT STRING padding")  # X.690 §11.2.1
    body = d[s + 1 : e]
    if len(body) >= 4:
        return int.from_bytes(body[:4], "big")  # RFC 4120 §5.2.8: bits past 31 ignored
    return int.from_bytes(body, "big") << (8 * (4 - len(body)))


def _opt(fn, d, f):
    return None if f is None else fn(d, f)


# --- decoders per type --------------------------------------------------------------------------


def _dec_principal(d, f) -> PrincipalName:
    if f is None:
        raise _missing()
    der = d[f[3] : f[2]]  # the whole TLV: its decoding depends on nothing else
    name = _PRINCIPAL_VALUES.get(der)
    if name is None:
        fs = _seq(d, f, 2)
        name = PrincipalName(_int32(d, fs[0]), tuple([_string(d, x) for x in _items(d, fs[1])]))
        if len(_PRINCIPAL_VALUES) >= _DECODE_CACHE_MAX:
            _PRINCIPAL_VALUES.clear()
        _PRINCIPAL_VALUES[der] = name
    return name


# Fast paths for the nested SEQUENCEs that every Kerberos message carries. Each one reads the
# usual layout directly and, on anything else, hands over to the general field walker, which
# gives the same value or the same refusal; the fast path only ever accepts input whose every
# octet it has checked (tags, minimal short-form lengths, exact end), so both agree on all
# inputs (the codec tests run both against pyasn1 and against mutated captures).
_A0_INT1 = b"\xa0\x03\x02\x01"  # [0] INTEGER of one octet
_A1_INT1 = b"\xa1\x03\x02\x01"  # [1] INTEGER of one octet


def _int_then_short_octets(d, s: int, e: int, head: bytes, second: int):
    """(int, bytes) when ``d[s:e]`` is exactly ``head`` + one INTEGER octet, then field tag
    ``second`` holding an OCTET STRING under 126 octets, all lengths short; else None."""
    if e - s >= 9 and d[s + 5] == second and d[s + 7] == 0x04 and d[s : s + 4] == head:
        n = d[s + 8]
        if n < 0x7E and d[s + 6] == n + 2 and s + 9 + n == e:
            v = d[s + 4]
            return (v - 256 if v > 127 else v), d[s + 9 : e]
    return None


def _octets_field_to_end(d, p: int, e: int, tag: int):
    """The OCTET STRING inside explicit field ``tag`` at ``p`` when that field ends exactly at
    ``e``; else None (the caller falls back to the general walker)."""
    if e - p < 4 or d[p] != tag:
        return None
    _, cs, ce = _hdr(d, p, e)
    if ce != e:
        return None
    t, vs, ve = _hdr(d, cs, ce)
    if t != 0x04 or ve != ce:
        return None
    return d[vs:ve]


def _dec_encrypted_data(d, f) -> EncryptedData:
    if f is not None and f[0] == 0x30:
        s, e = f[1], f[2]
        # [0] etype (one octet), optional [1] kvno (one octet, 0..127), [2] cipher
        if e - s >= 9 and d[s : s + 4] == _A0_INT1:
            v = d[s + 4]
            etype = v - 256 if v > 127 else v
            p = s + 5
            kvno = None
            if d[p] == 0xA1 and e - p >= 9 and d[p : p + 4] == _A1_INT1 and d[p + 4] < 0x80:
                kvno = d[p + 4]
                p += 5
            cipher = _octets_field_to_end(d, p, e, 0xA2)
            if cipher is not None:
                return EncryptedData(etype, kvno, cipher)
    fs = _seq(d, f, 3)
    return EncryptedData(_int32(d, fs[0]), _opt(_uint32, d, fs[1]), _octets(d, fs[2]))


def _dec_encryption_key(d, f) -> EncryptionKey:
    if f is not None and f[0] == 0x30:
        fast = _int_then_short_octets(d, f[1], f[2], _A0_INT1, 0xA1)
        if fast is not None:
            return EncryptionKey(fast[0], fast[1])
    a, b = _seq(d, f, 2)
    return EncryptionKey(_int32(d, a), _octets(d, b))


def _dec_checksum(d, f) -> Checksum:
    if f is not None and f[0] == 0x30:
        fast = _int_then_short_octets(d, f[1], f[2], _A0_INT1, 0xA1)
        if fast is not None:
            return Checksum(fast[0], fast[1])
    fs = _seq(d, f, 2)
    return Checksum(_int32(d, fs[0]), _octets(d, fs[1]))


def _dec_padata(d, f) -> PAData:
    if f is not None and f[0] == 0x30:
        s, e = f[1], f[2]
        # [1] padata-type: one octet, or two octets for 128..32767 (PA-FX-FAST is 136)
        if e - s >= 9 and d[s] == 0xA1 and d[s + 2] == 0x02:
            n = d[s + 3]
            if n == 1 and d[s + 1] == 3:
                v = d[s + 4]
                value = _octets_field_to_end(d, s + 5, e, 0xA2)
                if value is not None:
                    return PAData(v - 256 if v > 127 else v, value)
            elif n == 2 and d[s + 1] == 4 and d[s + 4] == 0 and d[s + 5] >= 0x80:
                value = _octets_field_to_end(d, s + 6, e, 0xA2)
                if value is not None:
                    return PAData(d[s + 5], value)
    fs = _seq(d, f, 3)
    if fs[0] is not None:
        raise DecodeError("unexpected field [0] in PA-DATA")
    return PAData(_int32(d, fs[1]), _octets(d, fs[2]))


def _dec_host_address(d, f) -> HostAddress:
    fs = _seq(d, f, 2)
    return HostAddress(_int32(d, fs[0]), _octets(d, fs[1]))


def _dec_ad_entry(d, f) -> AuthorizationDataEntry:
    fs = _seq(d, f, 2)
    return AuthorizationDataEntry(_int32(d, fs[0]), _octets(d, fs[1]))


def _dec_transited(d, f) -> TransitedEncoding:
    fs = _seq(d, f, 2)
    return TransitedEncoding(_int32(d, fs[0]), _octets(d, fs[1]))


_TRANSITED_VALUES: dict[bytes, TransitedEncoding] = {}


def _dec_transited_cached(d, f) -> TransitedEncoding:
    # Public and nearly always the same (an empty path) in every ticket: remembered by DER.
    if f is None:
        raise _missing()
    der = d[f[3] : f[2]]
    value = _TRANSITED_VALUES.get(der)
    if value is None:
        value = _dec_transited(d, f)
        if len(_TRANSITED_VALUES) >= 256:
            _TRANSITED_VALUES.clear()
        _TRANSITED_VALUES[der] = value
    return value


def _dec_last_req_entry(d, f) -> LastReqEntry:
    fs = _seq(d, f, 2)
    return LastReqEntry(_int32(d, fs[0]), _time(d, fs[1]))


def _dec_pa_enc_ts(d, f) -> PaEncTsEnc:
    fs = _seq(d, f, 2)
    return PaEncTsEnc(_time(d, fs[0]), _opt(_usec, d, fs[1]))


def _dec_etype_info2_entry(d, f) -> EtypeInfo2Entry:
    fs = _seq(d, f, 3)
    return EtypeInfo2Entry(_int32(d, fs[0]), _opt(_string, d, fs[1]), _opt(_octets, d, fs[2]))


def _seq_of(fn):
    def decode_seq_of(d, f):
        return tuple([fn(d, x) for x in _items(d, f)])

    return decode_seq_of


_dec_method_data = _seq_of(_dec_padata)
_dec_addresses = _seq_of(_dec_host_address)
_dec_auth_data = _seq_of(_dec_ad_entry)
_dec_last_req = _seq_of(_dec_last_req_entry)


def _dec_etype_info2(d, f) -> tuple[EtypeInfo2Entry, ...]:
    entries = tuple([_dec_etype_info2_entry(d, x) for x in _items(d, f)])
    if not entries:
        raise DecodeError("empty ETYPE-INFO2")  # RFC 4120 §5.2.7.5: SIZE (1..MAX)
    return entries


_TICKET_VALUES: dict[bytes, Ticket] = {}


def _dec_ticket(d, f) -> Ticket:
    # A Ticket is public (its enc-part is ciphertext) and a client sends the same TGT with
    # every TGS-REQ, so decoded tickets are remembered by their DER bytes like names.
    if f is None:
        raise _missing()
    der = d[f[3] : f[2]]
    ticket = _TICKET_VALUES.get(der)
    if ticket is None:
        fs = _app_seq(d, f, 1, 4)
        _const(d, fs[0], 5)
        ticket = Ticket(_string(d, fs[1]), _dec_principal(d, fs[2]), _dec_encrypted_data(d, fs[3]))
        if len(_TICKET_VALUES) >= _DECODE_CACHE_MAX // 4:
            _TICKET_VALUES.clear()
        _TICKET_VALUES[der] = ticket
    return ticket


_dec_tickets = _seq_of(_dec_ticket)


def _dec_enc_ticket_part(d, f) -> EncTicketPart:
    f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10 = _app_seq(d, f, 3, 11)
    return EncTicketPart(
        _flags(d, f0),
        _dec_encryption_key(d, f1),
        _string(d, f2),
        _dec_principal(d, f3),
        _dec_transited_cached(d, f4),
        _time(d, f5),
        None if f6 is None else _time(d, f6),
        _time(d, f7),
        None if f8 is None else _time(d, f8),
        None if f9 is None else _dec_addresses(d, f9),
        None if f10 is None else _dec_auth_data(d, f10),
    )


_ETYPE_LISTS: dict[bytes, tuple[int, ...]] = {}


def _dec_etype_list(d, f) -> tuple[int, ...]:
    """SEQUENCE OF Int32 (KDC-REQ-BODY etype); clients send the same few lists every time."""
    if f is None:
        raise _missing()
    der = d[f[3] : f[2]]
    etypes = _ETYPE_LISTS.get(der)
    if etypes is None:
        etypes = tuple([_int32(d, x) for x in _items(d, f)])
        if len(_ETYPE_LISTS) >= 256:
            _ETYPE_LISTS.clear()
        _ETYPE_LISTS[der] = etypes
    return etypes


def _dec_kdc_req_body(d, f) -> KdcReqBody:
    f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11 = _seq(d, f, 12)
    return KdcReqBody(
        _flags(d, f0),
        None if f1 is None else _dec_principal(d, f1),
        _string(d, f2),
        None if f3 is None else _dec_principal(d, f3),
        None if f4 is None else _time(d, f4),
        None if f5 is None else _time(d, f5),
        None if f6 is None else _time(d, f6),
        _uint32(d, f7),
        _dec_etype_list(d, f8),
        None if f9 is None else _dec_addresses(d, f9),
        None if f10 is None else _dec_encrypted_data(d, f10),
        None if f11 is None else _dec_tickets(d, f11),
    )


def _dec_kdc_req(d, f) -> KdcReq:
    t = f[0]
    if t not in (0x6A, 0x6C):
        raise DecodeError("not an AS-REQ or TGS-REQ")
    msg_type = t - 0x60
    fs = _app_seq(d, f, msg_type, 5)
    if fs[0] is not None:
        raise DecodeError("unexpected field [0] in KDC-REQ")
    _const(d, fs[1], 5)
    _const(d, fs[2], msg_type)
    body_f = fs[4]
    body = _dec_kdc_req_body(d, body_f)
    padata = _dec_method_data(d, fs[3]) if fs[3] is not None else ()
    # RFC 4120 §7.2.2 / §5.5.1: the TGS authenticator checksum covers req-body as received
    return KdcReq(msg_type, padata, body, d[body_f[3] : body_f[2]])


def _dec_kdc_rep(d, f) -> KdcRep:
    t = f[0]
    if t not in (0x6B, 0x6D):
        raise DecodeError("not an AS-REP or TGS-REP")
    msg_type = t - 0x60
    fs = _app_seq(d, f, msg_type, 7)
    _const(d, fs[0], 5)
    _const(d, fs[1], msg_type)
    return KdcRep(
        msg_type=msg_type,
        padata=_opt(_dec_method_data, d, fs[2]),
        crealm=_string(d, fs[3]),
        cname=_dec_principal(d, fs[4]),
        ticket=_dec_ticket(d, fs[5]),
        enc_part=_dec_encrypted_data(d, fs[6]),
    )


def _dec_enc_kdc_rep_part(d, f) -> EncKdcRepPart:
    t = f[0]
    if t not in (0x79, 0x7A):  # RFC 4120 §5.4.2: accept 25 or 26 for either reply
        raise DecodeError("not an EncASRepPart or EncTGSRepPart")
    fs = _app_seq(d, f, t - 0x60, 13)
    return EncKdcRepPart(
        key=_dec_encryption_key(d, fs[0]),
        last_req=_dec_last_req(d, fs[1]),
        nonce=_uint32(d, fs[2]),
        key_expiration=_opt(_time, d, fs[3]),
        flags=_flags(d, fs[4]),
        authtime=_time(d, fs[5]),
        starttime=_opt(_time, d, fs[6]),
        endtime=_time(d, fs[7]),
        renew_till=_opt(_time, d, fs[8]),
        srealm=_string(d, fs[9]),
        sname=_dec_principal(d, fs[10]),
        caddr=_opt(_dec_addresses, d, fs[11]),
        encrypted_pa_data=_opt(_dec_method_data, d, fs[12]),
        tag=t - 0x60,
    )


def _dec_ap_req(d, f) -> ApReq:
    fs = _app_seq(d, f, 14, 5)
    _const(d, fs[0], 5)
    _const(d, fs[1], 14)
    return ApReq(_flags(d, fs[2]), _dec_ticket(d, fs[3]), _dec_encrypted_data(d, fs[4]))


def _dec_authenticator(d, f) -> Authenticator:
    f0, f1, f2, f3, f4, f5, f6, f7, f8 = _app_seq(d, f, 2, 9)
    _const(d, f0, 5)
    return Authenticator(
        _string(d, f1),
        _dec_principal(d, f2),
        None if f3 is None else _dec_checksum(d, f3),
        _usec(d, f4),
        _time(d, f5),
        None if f6 is None else _dec_encryption_key(d, f6),
        None if f7 is None else _uint32(d, f7),
        None if f8 is None else _dec_auth_data(d, f8),
    )


def _dec_ap_rep(d, f) -> ApRep:
    fs = _app_seq(d, f, 15, 3)
    _const(d, fs[0], 5)
    _const(d, fs[1], 15)
    return ApRep(_dec_encrypted_data(d, fs[2]))


def _dec_enc_ap_rep_part(d, f) -> EncApRepPart:
    fs = _app_seq(d, f, 27, 4)
    return EncApRepPart(
        ctime=_time(d, fs[0]),
        cusec=_usec(d, fs[1]),
        subkey=_opt(_dec_encryption_key, d, fs[2]),
        seq_number=_opt(_uint32, d, fs[3]),
    )


def _dec_krb_error(d, f) -> KrbError:
    fs = _app_seq(d, f, 30, 13)
    _const(d, fs[0], 5)
    _const(d, fs[1], 30)
    return KrbError(
        ctime=_opt(_time, d, fs[2]),
        cusec=_opt(_usec, d, fs[3]),
        stime=_time(d, fs[4]),
        susec=_usec(d, fs[5]),
        error_code=_int32(d, fs[6]),
        crealm=_opt(_string, d, fs[7]),
        cname=_opt(_dec_principal, d, fs[8]),
        realm=_string(d, fs[9]),
        sname=_dec_principal(d, fs[10]),
        e_text=_opt(_string, d, fs[11]),
        e_data=_opt(_octets, d, fs[12]),
    )


DECODERS: dict[type, Callable] = {
    PrincipalName: _dec_principal,
    EncryptedData: _dec_encrypted_data,
    EncryptionKey: _dec_encryption_key,
    Checksum: _dec_checksum,
    PAData: _dec_padata,
    HostAddress: _dec_host_address,
    AuthorizationDataEntry: _dec_ad_entry,
    TransitedEncoding: _dec_transited,
    LastReqEntry: _dec_last_req_entry,
    PaEncTsEnc: _dec_pa_enc_ts,
    EtypeInfo2Entry: _dec_etype_info2_entry,
    Ticket: _dec_ticket,
    EncTicketPart: _dec_enc_ticket_part,
    KdcReqBody: _dec_kdc_req_body,
    KdcReq: _dec_kdc_req,
    KdcRep: _dec_kdc_rep,
    EncKdcRepPart: _dec_enc_kdc_rep_part,
    ApReq: _dec_ap_req,
    Authenticator: _dec_authenticator,
    ApRep: _dec_ap_rep,
    EncApRepPart: _dec_enc_ap_rep_part,
    KrbError: _dec_krb_error,
}

# Names for SEQUENCE OF types that have no model class of their own.
LIST_DECODERS: dict[str, Callable] = {
    "method_data": _dec_method_data,
    "etype_info2": _dec_etype_info2,
    "authorization_data": _dec_auth_data,
    "host_addresses": _dec_addresses,
}

# What the decoders take (the compiled codec checks argument types: codec.py)
Buffer = bytes | bytearray | memoryview

# First byte -> model class (RFC 4120 §5.10 application tags of the top-level messages)
MESSAGE_CLASSES: dict[int, type] = {
    0x6A: KdcReq,
    0x6B: KdcRep,
    0x6C: KdcReq,
    0x6D: KdcRep,
    0x6E: ApReq,
    0x6F: ApRep,
    0x7E: KrbError,
}


def _run_decoder(fn: Callable, data: Buffer) -> Any:
    try:
        d = bytes(data)
        t, s, e = _hdr(d, 0, len(d))
        if e != len(d):
            raise DecodeError("trailing bytes after the message")
        return fn(d, (t, s, e, 0))
    except DecodeError:
        raise
    except Exception as exc:  # defence in depth: malformed input never escapes as another type
        raise DecodeError(f"malformed DER ({type(exc).__name__})") from None


def decode(cls: type, data: Buffer) -> Any:
    """Decode DER ``data`` as the model class ``cls`` (strict; DecodeError otherwise)."""
    fn = DECODERS.get(cls)
    if fn is None:
        raise TypeError(f"no DER decoder for {cls!r}")
    return _run_decoder(fn, data)


def decode_list(kind: str, data: Buffer) -> tuple:
    """Decode a SEQUENCE OF type named in ``LIST_DECODERS`` ("method_data", "etype_info2", ...)."""
    return _run_decoder(LIST_DECODERS[kind], data)


def decode_message(data: Buffer) -> KdcReq | KdcRep | KrbError | ApReq | ApRep:
    """Decode a top-level message, choosing the type by its first (application tag) byte."""
    if not data:
        raise DecodeError("empty message")
    cls = MESSAGE_CLASSES.get(data[0])
    if cls is None:
        raise DecodeError("not a Kerberos message (unknown application tag)")
    return _run_decoder(DECODERS[cls], data)


# --- encoding primitives ------------------------------------------------------------------------
# Values to encode are left unannotated: compiled (codec.py), an ``int`` parameter or attribute
# would turn True into 1 and a ``bytes`` one would refuse a bytearray, before the checks here.


# Header octets via struct: several times cheaper than bytes((...)) of a tuple.
_pack_2 = struct.Struct("BB").pack
_pack_3 = struct.Struct("BBB").pack
_pack_len2 = struct.Struct(">BBH").pack
_FLAGS_STRUCT = struct.Struct(">B4sI")  # [k] 07, then BIT STRING 03 05 00 and 32 bits


def _pack_flags(tag: int, value: int) -> bytes:
    return _FLAGS_STRUCT.pack(tag, b"\x07\x03\x05\x00", value)


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:  # the usual short form, inline: this runs for every encoded field
        return _pack_2(tag, n) + body
    return _header(tag, n) + body


def _header(tag: int, n: int) -> bytes:
    """Tag and DER length octets of a TLV whose contents are ``n`` octets."""
    if n < 0x80:
        return _pack_2(tag, n)
    if n < 0x100:
        return _pack_3(tag, 0x81, n)
    if n < 0x10000:
        return _pack_len2(tag, 0x82, n)
    if n <= MAX_LENGTH:
        return bytes((tag, 0x83, n >> 16, (n >> 8) & 0xFF, n & 0xFF))
    raise EncodeError("value too long")


def _e_int(v, lo: int, hi: int) -> bytes:
    if type(v) is not int:
        raise EncodeError("INTEGER field is not an int")
    if v < lo or v > hi:
        raise EncodeError("INTEGER out of range")
    if -128 <= v <= 127:
        return _pack_3(2, 1, v & 0xFF)
    n = (v.bit_length() + 8) >> 3 if v >= 0 else ((~v).bit_length() + 8) >> 3
    return _pack_2(2, n) + v.to_bytes(n, "big", signed=True)


_INT32_FIELD_CACHE: dict[tuple[int, int], bytes] = {}


def _f_int32(k: int, v) -> bytes:
    if type(v) is not int:  # True == 1: a bool must not find 1's cached encoding
        return _tlv(0xA0 | k, _e_int(v, INT32_MIN, INT32_MAX))
    key = (k, v)
    out = _INT32_FIELD_CACHE.get(key)
    if out is None:
        out = _tlv(0xA0 | k, _e_int(v, INT32_MIN, INT32_MAX))
        if -256 <= v <= 256:
            _INT32_FIELD_CACHE[key] = out
    return out


def _f_uint32(k: int, v) -> bytes:
    if type(v) is int and 0 <= v <= 256:  # kvnos and other small values: cached like Int32s
        return _f_int32(k, v)
    return _tlv(0xA0 | k, _e_int(v, 0, UINT32_MAX))


def _f_usec(k: int, v) -> bytes:
    return _tlv(0xA0 | k, _e_int(v, 0, USEC_MAX))


def _e_octets(v) -> bytes:
    if type(v) is bytes:
        return _tlv(0x04, v)
    if not isinstance(v, bytes | bytearray | memoryview):
        raise EncodeError("OCTET STRING field is not bytes")
    return _tlv(0x04, bytes(v))


# Octets before an OCTET STRING in field [k]: they depend only on k and the length.
_OCTETS_FIELD_HEADERS: dict[tuple[int, int], bytes] = {}


def _f_octets(k: int, v) -> bytes:
    if type(v) is bytes:
        n = len(v)
        head = _OCTETS_FIELD_HEADERS.get((k, n))
        if head is None:
            inner = _header(0x04, n)
            head = _remember(_OCTETS_FIELD_HEADERS, (k, n),
                             _header(0xA0 | k, len(inner) + n) + inner)
        return head + v
    return _tlv(0xA0 | k, _e_octets(v))


def _e_string(v) -> bytes:
    if not isinstance(v, str):
        raise EncodeError("KerberosString field is not str")
    try:
        return _tlv(0x1B, v.encode("utf-8"))
    except UnicodeEncodeError:
        raise EncodeError("KerberosString is not encodable as UTF-8") from None


# Encodings of public values that recur in every reply (realm names, principal names, the
# current second's times) are remembered in small bounded dictionaries: they are never secret,
# and a full dictionary is simply emptied. Only exact types are cached (``True == 1``).
_CACHE_MAX = 4096
_STRING_FIELDS: dict[tuple[int, str], bytes] = {}
_TIME_FIELDS: dict[tuple[int, int], bytes] = {}
_PRINCIPALS: dict[tuple[int, tuple], bytes] = {}


def _remember(cache: dict, key, value: bytes) -> bytes:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def _f_string(k: int, v) -> bytes:
    if type(v) is str:
        out = _STRING_FIELDS.get((k, v))
        if out is None:
            out = _remember(_STRING_FIELDS, (k, v), _tlv(0xA0 | k, _e_string(v)))
        return out
    return _tlv(0xA0 | k, _e_string(v))


_TIME_HDR = b"\x18\x0f"


def _f_time(k: int, v) -> bytes:
    if type(v) is int:
        out = _TIME_FIELDS.get((k, v))
        if out is None:
            out = _remember(_TIME_FIELDS, (k, v),
                            _pack_2(0xA0 | k, 17) + _TIME_HDR + format_kerberos_time(v))
        return out
    return _pack_2(0xA0 | k, 17) + _TIME_HDR + format_kerberos_time(v)


def _f_flags(k: int, v) -> bytes:
    if type(v) is not int or not 0 <= v <= UINT32_MAX:
        raise EncodeError("KerberosFlags out of range")
    # RFC 4120 §5.2.8 / MIT: always 32 bits, even where DER would drop trailing zero bits
    return _pack_flags(0xA0 | k, v)


def _seq_body(parts: list[bytes]) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _f(k: int, inner: bytes) -> bytes:
    return _tlv(0xA0 | k, inner)


# Whole explicit fields [k] of public values that recur in every ticket and reply (principal
# names, the empty transited path, the constant last-req), remembered like the values above.
_PRINCIPAL_FIELDS: dict[tuple, bytes] = {}
_TRANSITED_FIELDS: dict[tuple, bytes] = {}
_LAST_REQ_FIELDS: dict[tuple, bytes] = {}
_KEY_FIELD_HEADERS: dict[tuple[int, int, int], bytes] = {}


def _f_principal(k: int, p: PrincipalName) -> bytes:
    name_type, components = p.name_type, p.components
    if type(name_type) is int and type(components) is tuple:
        key = (k, name_type, components)
        try:
            out = _PRINCIPAL_FIELDS.get(key)
        except TypeError:  # an unhashable component: let the encoder say what is wrong
            return _f(k, _enc_principal_uncached(p))
        if out is None:
            out = _remember(_PRINCIPAL_FIELDS, key, _f(k, _enc_principal(p)))
        return out
    return _f(k, _enc_principal(p))


def _f_transited(k: int, x: TransitedEncoding) -> bytes:
    tr_type, contents = x.tr_type, x.contents
    if type(tr_type) is int and type(contents) is bytes and len(contents) <= 64:
        key = (k, tr_type, contents)
        out = _TRANSITED_FIELDS.get(key)
        if out is None:
            out = _remember(_TRANSITED_FIELDS, key, _f(k, _enc_transited(x)))
        return out
    return _f(k, _enc_transited(x))


def _f_last_req(k: int, entries) -> bytes:
    if type(entries) is tuple and len(entries) == 1:
        entry = entries[0]
        lr_type, lr_value = entry.lr_type, entry.lr_value
        if type(lr_type) is int and type(lr_value) is int:
            key = (k, lr_type, lr_value)
            out = _LAST_REQ_FIELDS.get(key)
            if out is None:
                out = _remember(_LAST_REQ_FIELDS, key, _f(k, _enc_last_req(entries)))
            return out
    return _f(k, _enc_last_req(entries))


def _f_encryption_key(k: int, x: EncryptionKey) -> bytes:
    """[k] EncryptionKey; the octets before the key value depend only on (k, keytype, length),
    so they are built once (no key bytes are remembered)."""
    keytype, value = x.keytype, x.keyvalue
    if type(keytype) is int and -128 <= keytype <= 127 and type(value) is bytes:
        n = len(value)
        if n <= 116:  # every length octet in short form
            hkey = (k, keytype, n)
            head = _KEY_FIELD_HEADERS.get(hkey)
            if head is None:
                head = _remember(_KEY_FIELD_HEADERS, hkey, bytes(
                    (0xA0 | k, n + 11, 0x30, n + 9, 0xA0, 3, 2, 1, keytype & 0xFF,
                     0xA1, n + 2, 4, n)))
            return head + value
    return _f(k, _enc_encryption_key(x))


# --- encoders per type --------------------------------------------------------------------------


def _enc_principal(p) -> bytes:
    name_type, components = p.name_type, p.components
    if type(name_type) is int and type(components) is tuple:
        key = (name_type, components)
        try:
            out = _PRINCIPALS.get(key)
        except TypeError:  # an unhashable component: not a valid name, let the encoder say so
            return _enc_principal_uncached(p)
        if out is None:
            out = _remember(_PRINCIPALS, key, _enc_principal_uncached(p))
        return out
    return _enc_principal_uncached(p)


def _enc_principal_uncached(p) -> bytes:
    names = b"".join([_e_string(c) for c in p.components])
    return _seq_body([_f_int32(0, p.name_type), _f(1, _tlv(0x30, names))])


def _enc_encrypted_data(x) -> bytes:
    parts = [_f_int32(0, x.etype)]
    if x.kvno is not None:
        parts.append(_f_uint32(1, x.kvno))
    parts.append(_f_octets(2, x.cipher))
    return _seq_body(parts)


def _enc_encryption_key(x) -> bytes:
    return _seq_body([_f_int32(0, x.keytype), _f_octets(1, x.keyvalue)])


def _enc_checksum(x) -> bytes:
    return _seq_body([_f_int32(0, x.cksumtype), _f_octets(1, x.checksum)])


def _enc_padata(x) -> bytes:
    return _seq_body([_f_int32(1, x.padata_type), _f_octets(2, x.padata_value)])


def _enc_host_address(x) -> bytes:
    return _seq_body([_f_int32(0, x.addr_type), _f_octets(1, x.address)])


def _enc_ad_entry(x) -> bytes:
    return _seq_body([_f_int32(0, x.ad_type), _f_octets(1, x.ad_data)])


def _enc_transited(x) -> bytes:
    return _seq_body([_f_int32(0, x.tr_type), _f_octets(1, x.contents)])


def _enc_last_req_entry(x) -> bytes:
    return _seq_body([_f_int32(0, x.lr_type), _f_time(1, x.lr_value)])


def _enc_pa_enc_ts(x) -> bytes:
    parts = [_f_time(0, x.patimestamp)]
    if x.pausec is not None:
        parts.append(_f_usec(1, x.pausec))
    return _seq_body(parts)


def _enc_etype_info2_entry(x) -> bytes:
    parts = [_f_int32(0, x.etype)]
    if x.salt is not None:
        parts.append(_f_string(1, x.salt))
    if x.s2kparams is not None:
        parts.append(_f_octets(2, x.s2kparams))
    return _seq_body(parts)


def _enc_seq_of(fn):
    def encode_seq_of(items) -> bytes:
        return _tlv(0x30, b"".join([fn(x) for x in items]))

    return encode_seq_of


_enc_method_data = _enc_seq_of(_enc_padata)
_enc_addresses = _enc_seq_of(_enc_host_address)
_enc_auth_data = _enc_seq_of(_enc_ad_entry)
_enc_last_req = _enc_seq_of(_enc_last_req_entry)
_enc_etype_info2_list = _enc_seq_of(_enc_etype_info2_entry)


def _enc_etype_info2(entries) -> bytes:
    if not entries:
        raise EncodeError("ETYPE-INFO2 needs at least one entry")  # RFC 4120 §5.2.7.5
    return _enc_etype_info2_list(entries)


_PVNO5 = b"\xa0\x03\x02\x01\x05"


def _enc_ticket(x) -> bytes:
    return _tlv(
        0x61,
        _seq_body(
            [
                _PVNO5,
                _f_string(1, x.realm),
                _f_principal(2, x.sname),
                _f(3, _enc_encrypted_data(x.enc_part)),
            ]
        ),
    )


def _enc_enc_ticket_part(x) -> bytes:
    parts = [
        _f_flags(0, x.flags),
        _f_encryption_key(1, x.key),
        _f_string(2, x.crealm),
        _f_principal(3, x.cname),
        _f_transited(4, x.transited),
        _f_time(5, x.authtime),
    ]
    if x.starttime is not None:
        parts.append(_f_time(6, x.starttime))
    parts.append(_f_time(7, x.endtime))
    if x.renew_till is not None:
        parts.append(_f_time(8, x.renew_till))
    if x.caddr is not None:
        parts.append(_f(9, _enc_addresses(x.caddr)))
    if x.authorization_data is not None:
        parts.append(_f(10, _enc_auth_data(x.authorization_data)))
    return _tlv(0x63, _seq_body(parts))


def _enc_kdc_req_body(x) -> bytes:
    parts = [_f_flags(0, x.kdc_options)]
    if x.cname is not None:
        parts.append(_f_principal(1, x.cname))
    parts.append(_f_string(2, x.realm))
    if x.sname is not None:
        parts.append(_f_principal(3, x.sname))
    if x.from_ is not None:
        parts.append(_f_time(4, x.from_))
    if x.till is not None:
        parts.append(_f_time(5, x.till))
    if x.rtime is not None:
        parts.append(_f_time(6, x.rtime))
    parts.append(_f_uint32(7, x.nonce))
    etypes = b"".join([_e_int(e, INT32_MIN, INT32_MAX) for e in x.etype])
    parts.append(_f(8, _tlv(0x30, etypes)))
    if x.addresses is not None:
        parts.append(_f(9, _enc_addresses(x.addresses)))
    if x.enc_authorization_data is not None:
        parts.append(_f(10, _enc_encrypted_data(x.enc_authorization_data)))
    if x.additional_tickets is not None:
        parts.append(_f(11, _tlv(0x30, b"".join([_enc_ticket(t) for t in x.additional_tickets]))))
    return _seq_body(parts)


def _check_msg_type(msg_type: int, allowed: tuple[int, ...]) -> None:
    if msg_type not in allowed:
        raise EncodeError(f"msg_type must be one of {allowed}")


def _enc_kdc_req(x) -> bytes:
    _check_msg_type(x.msg_type, (10, 12))
    parts = [b"\xa1\x03\x02\x01\x05", _f_int32(2, x.msg_type)]
    if x.padata:  # absent when empty, as MIT does
        parts.append(_f(3, _enc_method_data(x.padata)))
    parts.append(_f(4, _enc_kdc_req_body(x.req_body)))
    return _tlv(0x60 | x.msg_type, _seq_body(parts))


def _enc_kdc_rep(x) -> bytes:
    _check_msg_type(x.msg_type, (11, 13))
    parts = [_PVNO5, _f_int32(1, x.msg_type)]
    if x.padata is not None:
        parts.append(_f(2, _enc_method_data(x.padata)))
    parts.append(_f_string(3, x.crealm))
    parts.append(_f_principal(4, x.cname))
    parts.append(_f(5, _enc_ticket(x.ticket)))
    parts.append(_f(6, _enc_encrypted_data(x.enc_part)))
    return _tlv(0x60 | x.msg_type, _seq_body(parts))


def _enc_enc_kdc_rep_part(x) -> bytes:
    if x.tag not in (25, 26):
        raise EncodeError("EncKdcRepPart.tag must be 25 or 26")
    parts = [
        _f_encryption_key(0, x.key),
        _f_last_req(1, x.last_req),
        _f_uint32(2, x.nonce),
    ]
    if x.key_expiration is not None:
        parts.append(_f_time(3, x.key_expiration))
    parts.append(_f_flags(4, x.flags))
    parts.append(_f_time(5, x.authtime))
    if x.starttime is not None:
        parts.append(_f_time(6, x.starttime))
    parts.append(_f_time(7, x.endtime))
    if x.renew_till is not None:
        parts.append(_f_time(8, x.renew_till))
    parts.append(_f_string(9, x.srealm))
    parts.append(_f_principal(10, x.sname))
    if x.caddr is not None:
        parts.append(_f(11, _enc_addresses(x.caddr)))
    if x.encrypted_pa_data is not None:
        parts.append(_f(12, _enc_method_data(x.encrypted_pa_data)))
    return _tlv(0x60 | x.tag, _seq_body(parts))


def _enc_ap_req(x) -> bytes:
    return _tlv(
        0x6E,
        _seq_body(
            [
                _PVNO5,
                b"\xa1\x03\x02\x01\x0e",
                _f_flags(2, x.ap_options),
                _f(3, _enc_ticket(x.ticket)),
                _f(4, _enc_encrypted_data(x.authenticator)),
            ]
        ),
    )


def _enc_authenticator(x) -> bytes:
    parts = [_PVNO5, _f_string(1, x.crealm), _f_principal(2, x.cname)]
    if x.cksum is not None:
        parts.append(_f(3, _enc_checksum(x.cksum)))
    parts.append(_f_usec(4, x.cusec))
    parts.append(_f_time(5, x.ctime))
    if x.subkey is not None:
        parts.append(_f_encryption_key(6, x.subkey))
    if x.seq_number is not None:
        parts.append(_f_uint32(7, x.seq_number))
    if x.authorization_data is not None:
        parts.append(_f(8, _enc_auth_data(x.authorization_data)))
    return _tlv(0x62, _seq_body(parts))


def _enc_ap_rep(x) -> bytes:
    return _tlv(
        0x6F, _seq_body([_PVNO5, b"\xa1\x03\x02\x01\x0f", _f(2, _enc_encrypted_data(x.enc_part))])
    )


def _enc_enc_ap_rep_part(x) -> bytes:
    parts = [_f_time(0, x.ctime), _f_usec(1, x.cusec)]
    if x.subkey is not None:
        parts.append(_f_encryption_key(2, x.subkey))
    if x.seq_number is not None:
        parts.append(_f_uint32(3, x.seq_number))
    return _tlv(0x7B, _seq_body(parts))


def _enc_krb_error(x) -> bytes:
    parts = [_PVNO5, b"\xa1\x03\x02\x01\x1e"]
    if x.ctime is not None:
        parts.append(_f_time(2, x.ctime))
    if x.cusec is not None:
        parts.append(_f_usec(3, x.cusec))
    parts.append(_f_time(4, x.stime))
    parts.append(_f_usec(5, x.susec))
    parts.append(_f_int32(6, x.error_code))
    if x.crealm is not None:
        parts.append(_f_string(7, x.crealm))
    if x.cname is not None:
        parts.append(_f_principal(8, x.cname))
    parts.append(_f_string(9, x.realm))
    parts.append(_f_principal(10, x.sname))
    if x.e_text is not None:
        parts.append(_f_string(11, x.e_text))
    if x.e_data is not None:
        parts.append(_f_octets(12, x.e_data))
    return _tlv(0x7E, _seq_body(parts))


ENCODERS: dict[type, Callable] = {
    PrincipalName: _enc_principal,
    EncryptedData: _enc_encrypted_data,
    EncryptionKey: _enc_encryption_key,
    Checksum: _enc_checksum,
    PAData: _enc_padata,
    HostAddress: _enc_host_address,
    AuthorizationDataEntry: _enc_ad_entry,
    TransitedEncoding: _enc_transited,
    LastReqEntry: _enc_last_req_entry,
    PaEncTsEnc: _enc_pa_enc_ts,
    EtypeInfo2Entry: _enc_etype_info2_entry,
    Ticket: _enc_ticket,
    EncTicketPart: _enc_enc_ticket_part,
    KdcReqBody: _enc_kdc_req_body,
    KdcReq: _enc_kdc_req,
    KdcRep: _enc_kdc_rep,
    EncKdcRepPart: _enc_enc_kdc_rep_part,
    ApReq: _enc_ap_req,
    Authenticator: _enc_authenticator,
    ApRep: _enc_ap_rep,
    EncApRepPart: _enc_enc_ap_rep_part,
    KrbError: _enc_krb_error,
}

LIST_ENCODERS: dict[str, Callable] = {
    "method_data": _enc_method_data,
    "etype_info2": _enc_etype_info2,
    "authorization_data": _enc_auth_data,
    "host_addresses": _enc_addresses,
}


def _run_encoder(fn: Callable, obj) -> bytes:
    try:
        return fn(obj)
    except EncodeError:
        raise
    except (AttributeError, TypeError, OverflowError) as exc:
        raise EncodeError(f"cannot encode ({type(exc).__name__})") from None


def encode(obj) -> bytes:
    """DER of a model object (EncodeError if a field holds a value RFC 4120 cannot carry)."""
    fn = ENCODERS.get(type(obj))
    if fn is None:
        raise TypeError(f"no DER encoder for {type(obj).__name__}")
    return _run_encoder(fn, obj)


def encode_list(kind: str, items) -> bytes:
    """DER of a SEQUENCE OF type named in ``LIST_ENCODERS``."""
    return _run_encoder(LIST_ENCODERS[kind], tuple(items))
