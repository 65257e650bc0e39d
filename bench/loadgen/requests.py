"""Pre-built Kerberos requests for the load generator, and the check of every reply.

One *operation* is what the generator counts and times: ``as`` (one AS-REQ without
pre-authentication), ``as-preauth`` (the two-message login of RFC 4120 §3.1 / §5.2.7.2:
AS-REQ, KDC_ERR_PREAUTH_REQUIRED, AS-REQ with PA-ENC-TIMESTAMP), ``tgs`` (one TGS-REQ with a
TGT obtained once per principal before the run), ``login`` (AS, with pre-authentication when
the KDC asks for it, then one TGS-REQ with the fresh TGT) and ``mix`` (a weighted choice).

Operations are sans-IO state machines (``first()`` then ``on_reply(bytes)`` until done); the
engine moves the bytes. "ok" means a real success: the reply decodes, its enc-part decrypts
under the expected key and usage (RFC 4120 §5.4.2: 3 for AS-REP, 8 for TGS-REP with the TGT
session key) and carries the request's nonce and client name (§3.1.5, §3.3.4).

Speed: the generator shares two cores with the KDC it measures, so the hot path does no ASN.1
encoding at all. Every request is a *template*: the DER of the message encoded once (fast
codec) with marker values, cut at the markers; a request is the pieces joined with the new
nonce, timestamp, checksum and ciphertext. All variable fields have a fixed encoded length
(nonces in [2^24, 2^31), microseconds in [100000, 900000), KerberosTime always 15 octets, and
ciphertexts of fixed-length plaintexts), so no enclosing length changes. Per-usage keys (Ke,
Ki, Kc) are derived once per principal and kept in one ``UsageKeyCache``.

Keys never leave this module's objects; every key-holding class has a redacting ``repr``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from clients.client import default_salt
from clients.keytab import read_keytab
from kdc.crypto import IntegrityError, Key, UsageKeyCache, profile, string_to_key
from kdc.messages import (
    DecodeError,
    decode,
    decode_etype_info2,
    decode_message,
    decode_method_data,
    encode,
)
from kdc.messages import constants as c
from kdc.messages.der import format_kerberos_time
from kdc.messages.model import (
    ApReq,
    Authenticator,
    Checksum,
    EncKdcRepPart,
    EncryptedData,
    KdcRep,
    KdcReq,
    KdcReqBody,
    KrbError,
    PAData,
    PaEncTsEnc,
    PrincipalName,
    Ticket,
)
from kdc.principal import parse_principal, unparse_principal

MODES = ("as", "as-preauth", "tgs", "login", "mix")
DEFAULT_MIX = "as-preauth:60,tgs:30,login:10"
PREFERRED_ETYPES = (18, 17)
TICKET_LIFETIME = 10 * 3600  # requested ``till`` (the KDC clamps it to its max_life)

# Client-side failure names (KDC errors use kdc.messages.constants.ERROR_NAME).
TIMEOUT = "TIMEOUT"
BAD_REPLY = "BAD_REPLY"  # undecodable, wrong message type, wrong enctype
BAD_INTEGRITY = "KRB_AP_ERR_BAD_INTEGRITY"  # enc-part does not decrypt under our key
NONCE_MISMATCH = "NONCE_MISMATCH"
WRONG_CLIENT = "WRONG_CLIENT"
NETWORK = "NETWORK"  # connection refused/reset, ICMP unreachable
OVERLOAD = "GENERATOR_OVERLOAD"  # open loop: too many operations outstanding, not sent
NO_TGT = "NO_TGT"  # tgs mode: the principal's TGT could not be obtained before the run


def error_name(code: int) -> str:
    """``KDC_ERR_PREAUTH_FAILED`` for 24; ``KRB_ERROR_<n>`` for codes without a name."""
    return c.ERROR_NAME.get(code, f"KRB_ERROR_{code}")


# -- templates -----------------------------------------------------------------------------------


class Template:
    """DER bytes cut into constant pieces around named holes of fixed length.

    ``render(a=..., b=...)`` joins the pieces with the given bytes (each exactly the hole's
    length), which is the DER of the same message with those fields replaced.
    """

    __slots__ = ("pieces", "names", "lengths")

    def __init__(self, der: bytes, holes: dict[str, bytes | tuple[bytes, int]]) -> None:
        """``holes`` maps a name to the marker bytes that were encoded in its place, or to
        (marker, k) when the marker's first k octets (e.g. an INTEGER's tag and length)
        are constant and stay in the pieces."""
        found = []
        for name, spec in holes.items():
            marker, keep = spec if isinstance(spec, tuple) else (spec, 0)
            at = der.find(marker)
            if at < 0 or der.find(marker, at + 1) >= 0:
                raise ValueError(f"template marker for {name} not found exactly once")
            found.append((at + keep, name, len(marker) - keep))
        found.sort()
        pieces, names, lengths = [], [], []
        pos = 0
        for at, name, n in found:
            if at < pos:
                raise ValueError("template markers overlap")
            pieces.append(der[pos:at])
            names.append(name)
            lengths.append(n)
            pos = at + n
        pieces.append(der[pos:])
        self.pieces = tuple(pieces)
        self.names = tuple(names)
        self.lengths = tuple(lengths)

    def render(self, **values: bytes) -> bytes:
        pieces = self.pieces
        out = [pieces[0]]
        for i, name in enumerate(self.names):
            value = values[name]
            if len(value) != self.lengths[i]:
                raise ValueError(f"template value {name} has the wrong length")
            out.append(value)
            out.append(pieces[i + 1])
        return b"".join(out)

    def __repr__(self) -> str:
        return f"Template(holes={self.names!r}, size={sum(map(len, self.pieces)) + sum(self.lengths)})"


def _marker_int(low: int, high: int, rng: random.Random) -> int:
    return rng.randrange(low, high)


NONCE_LOW, NONCE_HIGH = 1 << 24, 1 << 31  # 4 DER content octets for every value
USEC_LOW, USEC_HIGH = 100_000, 900_000  # 3 DER content octets for every value
TIME_MARKER = 253402300799  # 99991231235959Z, a valid KerberosTime no real field uses


def _int4(value: int) -> bytes:
    return value.to_bytes(4, "big")


def _int3(value: int) -> bytes:
    return value.to_bytes(3, "big")


class Clock:
    """Wall clock for ctime/patimestamp; caches the KerberosTime text per second."""

    __slots__ = ("_sec", "_text", "_counter")

    def __init__(self) -> None:
        self._sec = -1
        self._text = b""
        self._counter = 0

    def now(self) -> tuple[bytes, int, int]:
        """(KerberosTime text, seconds, microseconds-field value).

        The microseconds field is a per-process counter in [100000, 900000) rather than the
        clock's microseconds, so that it always has the same DER length and successive
        authenticators of one principal differ (replay caches key on ctime + cusec).
        """
        sec = int(time.time())
        if sec != self._sec:
            self._sec = sec
            self._text = format_kerberos_time(sec)
        self._counter = (self._counter + 1) % (USEC_HIGH - USEC_LOW)
        return self._text, sec, USEC_LOW + self._counter


# -- a minimal DER walk for the replies we expect --------------------------------------------------
#
# The hot path only needs a few fields of a reply: the message type, crealm/cname, the enc-part
# and, inside the decrypted part, the nonce; of a KRB-ERROR the code and e-data. Walking the
# TLVs to those fields is several times cheaper than decoding the whole message. The walk only
# ever *accepts*: whenever it sees anything unexpected it returns None and the caller falls back
# to the project's full codec, which gives the definitive answer (and the error name).


def _tlv(d: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag octet, content start, content end) of the TLV at ``pos``; ValueError if malformed."""
    if pos + 2 > end:
        raise ValueError("truncated")
    tag = d[pos]
    n = d[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 3 or pos + k > end:
            raise ValueError("bad length")
        n = int.from_bytes(d[pos:pos + k], "big")
        pos += k
    if pos + n > end:
        raise ValueError("truncated")
    return tag, pos, pos + n


def _fields(d: bytes, pos: int, end: int) -> dict[int, tuple[int, int, int]]:
    """Context tags of a SEQUENCE body -> (TLV start, content start, content end)."""
    out = {}
    while pos < end:
        tag, cs, ce = _tlv(d, pos, end)
        out[tag] = (pos, cs, ce)
        pos = ce
    return out


def _small_int(d: bytes, field: tuple[int, int, int]) -> int:
    tag, s, e = _tlv(d, field[1], field[2])
    if tag != 0x02 or not 0 < e - s <= 5:
        raise ValueError("not an INTEGER")
    return int.from_bytes(d[s:e], "big", signed=True)


def fast_kdc_rep(d: bytes) -> tuple[int, bytes, int, bytes] | None:
    """(msg-type, crealm+cname TLVs, enc-part etype, cipher) of an AS-REP/TGS-REP, or None."""
    try:
        tag, s, e = _tlv(d, 0, len(d))
        if tag not in (0x6B, 0x6D) or e != len(d):  # [APPLICATION 11] / [APPLICATION 13]
            return None
        tag, s, e = _tlv(d, s, e)
        if tag != 0x30:
            return None
        f = _fields(d, s, e)
        msg_type = _small_int(d, f[0xA1])
        names = d[f[0xA3][0]:f[0xA4][2]]
        tag, s, e = _tlv(d, f[0xA6][1], f[0xA6][2])
        if tag != 0x30:
            return None
        g = _fields(d, s, e)
        etype = _small_int(d, g[0xA0])
        tag, s, e = _tlv(d, g[0xA2][1], g[0xA2][2])
        if tag != 0x04:
            return None
        return msg_type, names, etype, d[s:e]
    except (ValueError, KeyError):
        return None


def fast_nonce(plain: bytes) -> int | None:
    """The nonce of an EncASRepPart/EncTGSRepPart plaintext, or None."""
    try:
        tag, s, e = _tlv(plain, 0, len(plain))
        if tag not in (0x79, 0x7A):  # [APPLICATION 25] / [APPLICATION 26]
            return None
        tag, s, e = _tlv(plain, s, e)
        if tag != 0x30:
            return None
        pos = s
        for expected in (0xA0, 0xA1, 0xA2):
            tag, cs, ce = _tlv(plain, pos, e)
            if tag != expected:
                return None
            if tag == 0xA2:
                return _small_int(plain, (pos, cs, ce))
            pos = ce
    except ValueError:
        return None
    return None


def fast_krb_error(d: bytes) -> tuple[int, bytes | None] | None:
    """(error-code, e-data) of a KRB-ERROR, or None."""
    try:
        tag, s, e = _tlv(d, 0, len(d))
        if tag != 0x7E or e != len(d):  # [APPLICATION 30]
            return None
        tag, s, e = _tlv(d, s, e)
        if tag != 0x30:
            return None
        f = _fields(d, s, e)
        code = _small_int(d, f[0xA6])
        edata = None
        if 0xAC in f:
            tag, s, e = _tlv(d, f[0xAC][1], f[0xAC][2])
            if tag != 0x04:
                return None
            edata = d[s:e]
        return code, edata
    except (ValueError, KeyError):
        return None


def wire_names(realm: str, name: PrincipalName) -> bytes:
    """The DER of ``crealm [3] Realm, cname [4] PrincipalName`` as a KDC-REP carries them."""
    return _ctx(3, _der(0x1B, realm.encode("utf-8"))) + _ctx(4, encode(name))


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _ctx(number: int, body: bytes) -> bytes:
    return _der(0xA0 | number, body)


# -- principals and keys -------------------------------------------------------------------------


class ClientKeys:
    """Long-term keys of one client principal by enctype (redacted repr)."""

    __slots__ = ("principal", "name", "realm", "keys", "password", "_derived", "wire")

    def __init__(self, principal: str, name: PrincipalName, realm: str,
                 keys: dict[int, Key], password: str | None = None) -> None:
        self.principal = principal
        self.name = name
        self.realm = realm
        self.keys = keys
        self.password = password
        self._derived: dict[tuple[int, str, bytes | None], Key] = {}
        self.wire = wire_names(realm, name)

    @property
    def etypes(self) -> tuple[int, ...]:
        return tuple(e for e in PREFERRED_ETYPES if e in self.keys)

    def key_for(self, etype: int, salt: str | None = None, s2kparams: bytes | None = None) -> Key | None:
        """The key for ``etype``; with a password, a salt other than the default is honoured
        (PA-ETYPE-INFO2, RFC 4120 §5.2.7.5) by deriving once more and caching."""
        if self.password is None or salt is None or (
            salt == default_salt(self.name, self.realm) and s2kparams is None
        ):
            return self.keys.get(etype)
        index = (etype, salt, s2kparams)
        if index not in self._derived:
            self._derived[index] = string_to_key(etype, self.password, salt, s2kparams)
        return self._derived[index]

    def __repr__(self) -> str:
        return f"ClientKeys({self.principal!r}, etypes={self.etypes}, <redacted>)"


def principal_names(count: int, pattern: str = "user{i:04d}", explicit: Sequence[str] = ()) -> list[str]:
    """``explicit`` names if given, else ``pattern`` formatted with i = 0 .. count-1."""
    if explicit:
        return list(explicit)
    return [pattern.format(i=i) for i in range(count)]


def load_keys(
    names: Sequence[str],
    realm: str,
    *,
    keytab: str | os.PathLike | None = None,
    password_pattern: str | None = None,
    etypes: Sequence[int] = (18,),
) -> list[ClientKeys]:
    """Keys for ``names`` from a keytab (newest kvno per enctype) or a password pattern
    (``"{name}-password"``; ``{i}`` is the principal's index), one string-to-key per principal
    and enctype with the default salt (RFC 4120 §4). Raises ValueError naming what is missing."""
    out: list[ClientKeys] = []
    by_principal: dict[str, dict[int, tuple[int, Key]]] = {}
    if keytab is not None:
        for entry in read_keytab(str(keytab)):
            if entry.key.etype not in PREFERRED_ETYPES:
                continue
            mine = by_principal.setdefault(entry.principal, {})
            have = mine.get(entry.key.etype)
            if have is None or entry.kvno > have[0]:
                mine[entry.key.etype] = (entry.kvno, entry.key)
    elif password_pattern is None:
        raise ValueError("give a keytab or a password pattern")
    missing = []
    for i, text in enumerate(names):
        pname, prealm = parse_principal(text, realm)
        prealm = prealm or realm
        canonical = unparse_principal(pname, prealm)
        if keytab is not None:
            found = by_principal.get(canonical)
            if not found:
                missing.append(canonical)
                continue
            keys = {e: k for e, (_, k) in found.items()}
            out.append(ClientKeys(canonical, pname, prealm, keys))
        else:
            password = password_pattern.format(name=pname.components[0], i=i,
                                               principal=str(pname))
            salt = default_salt(pname, prealm)
            keys = {e: string_to_key(e, password, salt) for e in etypes}
            out.append(ClientKeys(canonical, pname, prealm, keys, password))
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise ValueError(f"keytab {keytab} has no aes keys for {len(missing)} principal(s): {shown}")
    return out


# -- operation results ---------------------------------------------------------------------------

# ``on_reply`` returns one of these tuples:
#   (NEXT, message_bytes, kind)   send this next (kind "AS_REQ" | "TGS_REQ")
#   (OK, None, None)              the operation succeeded
#   (FAIL, error_name, None)      the operation failed with an answer from the KDC
NEXT, OK, FAIL = 0, 1, 2


@dataclass
class Tgt:
    """A TGT kept for tgs mode (session key redacted)."""

    ticket: bytes
    session_key: Key
    endtime: int

    def __repr__(self) -> str:
        return f"Tgt(etype={self.session_key.etype}, endtime={self.endtime}, <redacted>)"


# -- the factory ---------------------------------------------------------------------------------


class RequestFactory:
    """Builds operations for one worker: principals, keys, templates and TGTs.

    ``service`` is the TGS target ("HTTP/localhost"); ``mix`` a weight table for mode "mix".
    """

    def __init__(
        self,
        realm: str,
        clients: Sequence[ClientKeys],
        *,
        mode: str = "as",
        service: str = "HTTP/localhost",
        mix: dict[str, float] | None = None,
        seed: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
        if not clients:
            raise ValueError("no client principals")
        self.realm = realm
        self.mode = mode
        self.clients = list(clients)
        self.rng = random.Random(seed)
        self.cache = UsageKeyCache(max(1024, 8 * len(self.clients)))
        self.clock = Clock()
        sname, srealm = parse_principal(service, realm)
        self.service = sname
        self.service_realm = srealm or realm
        self.tgts: dict[int, Tgt] = {}
        self.preauth_cache: dict[tuple[int, bytes | None], tuple[Key, bytes | None]] = {}
        self._as_templates: dict[tuple[int, bytes], Template] = {}
        self._tgs_templates: dict[int, tuple[Tgt, Template, Template]] = {}
        self._auth_templates: dict[tuple[int, int], Template] = {}
        self._next_client = 0
        self.mix = None
        if mode == "mix":
            table = mix or parse_mix(DEFAULT_MIX)
            self.mix = (list(table), list(table.values()))
        self.till = int(time.time()) + TICKET_LIFETIME

    def __repr__(self) -> str:
        return f"RequestFactory(mode={self.mode!r}, clients={len(self.clients)}, <redacted>)"

    def needs_tgts(self) -> bool:
        return self.mode == "tgs" or (self.mix is not None and "tgs" in self.mix[0])

    # nonce in [2^24, 2^31): positive, as MIT sends, and always 4 DER content octets
    def nonce(self) -> int:
        return self.rng.randrange(NONCE_LOW, NONCE_HIGH)

    def next_client(self) -> int:
        i = self._next_client
        self._next_client = (i + 1) % len(self.clients)
        return i

    def operation(self, client: int | None = None) -> Operation:
        """A new operation of this factory's mode (the next principal in turn by default)."""
        if client is None:
            client = self.next_client()
        mode = self.mode
        if self.mix is not None:
            mode = self.rng.choices(self.mix[0], self.mix[1])[0]
        if mode == "as":
            return AsOperation(self, client, preauth=False)
        if mode == "as-preauth":
            return AsOperation(self, client, preauth=True)
        if mode == "tgs":
            return TgsOperation(self, client)
        if mode == "login":
            return LoginOperation(self, client)
        raise ValueError(f"mode {mode!r} cannot be an operation")

    def setup_operation(self, client: int) -> AsOperation:
        """The AS login that fetches ``client``'s TGT for tgs mode (kept on success)."""
        return AsOperation(self, client, preauth=True, keep_tgt=True)

    # -- AS-REQ ----------------------------------------------------------------------------------

    def as_body(self, client: ClientKeys, nonce: int) -> KdcReqBody:
        return KdcReqBody(
            kdc_options=c.RENEWABLE_OK,  # as MIT kinit sends by default
            cname=client.name,
            realm=client.realm,
            sname=PrincipalName(c.NT_SRV_INST, ("krbtgt", client.realm)),
            from_=None,
            till=self.till,
            rtime=None,
            nonce=nonce,
            etype=client.etypes,
        )

    def as_request(self, index: int, nonce: int, padata: Sequence[PAData] = (),
                   stamp: bytes | None = None, cookie: bytes | None = None) -> bytes:
        """AS-REQ DER for client ``index`` (optionally with PA-FX-COOKIE and PA-ENC-TIMESTAMP
        ciphertext ``stamp``), from a template keyed by (client, cookie)."""
        key = (index, b"" if stamp is None else (cookie if cookie is not None else b"\0nocookie"))
        tpl = self._as_templates.get(key)
        if tpl is None:
            if len(self._as_templates) > 4 * len(self.clients) + 64:
                self._as_templates.clear()  # a KDC that changes cookies every time
            tpl = self._as_templates[key] = self._build_as_template(index, stamp, cookie)
        values = {"nonce": _int4(nonce)}
        if stamp is not None:
            values["stamp"] = stamp
        return tpl.render(**values)

    def _build_as_template(self, index: int, stamp: bytes | None, cookie: bytes | None) -> Template:
        client = self.clients[index]
        marker_rng = random.Random(os.urandom(8))
        for _attempt in range(16):
            nonce = _marker_int(NONCE_LOW, NONCE_HIGH, marker_rng)
            holes = {"nonce": (b"\x02\x04" + _int4(nonce), 2)}
            padata: tuple[PAData, ...] = ()
            if stamp is not None:
                fake = os.urandom(len(stamp))
                etype = self._stamp_etype(client, len(stamp))
                if cookie is not None:
                    padata += (PAData(c.PA_FX_COOKIE, cookie),)
                padata += (PAData(c.PA_ENC_TIMESTAMP,
                                  encode(EncryptedData(etype, None, fake))),)
                holes["stamp"] = fake
            der = encode(KdcReq(c.KRB_AS_REQ, padata, self.as_body(client, nonce)))
            try:
                tpl = Template(der, holes)
            except ValueError:
                continue
            return tpl
        raise RuntimeError("could not build a request template")

    @staticmethod
    def _stamp_etype(client: ClientKeys, length: int) -> int:
        return client.etypes[0]

    # -- TGS-REQ ---------------------------------------------------------------------------------

    def tgs_templates(self, index: int, tgt: Tgt) -> tuple[Template, Template]:
        """(whole TGS-REQ, req-body alone) templates for this client and TGT."""
        have = self._tgs_templates.get(index)
        if have is None or have[0] is not tgt:
            have = (tgt, self.build_tgs_template(index, tgt), self.body_template(index, tgt))
            self._tgs_templates[index] = have
        return have[1], have[2]

    def build_tgs_template(self, index: int, tgt: Tgt) -> Template:
        """TGS-REQ with holes: the authenticator ciphertext and the nonce (RFC 4120 §5.4.1:
        PA-TGS-REQ carries an AP-REQ whose authenticator checksums the req-body)."""
        client = self.clients[index]
        ticket = decode(Ticket, tgt.ticket)
        marker_rng = random.Random(os.urandom(8))
        cksumtype = profile(tgt.session_key.etype).cksumtype
        auth_len = len(self.authenticator_template(index, cksumtype).render(
            cksum=bytes(12), cusec=_int3(USEC_LOW), ctime=format_kerberos_time(0)))
        cipher_len = 16 + auth_len + 12  # confounder + plaintext + HMAC-SHA1-96 (RFC 3962)
        for _attempt in range(16):
            nonce = _marker_int(NONCE_LOW, NONCE_HIGH, marker_rng)
            fake = os.urandom(cipher_len)
            ap_req = ApReq(0, ticket, EncryptedData(tgt.session_key.etype, None, fake))
            body = self.tgs_body(client, nonce, tgt)
            der = encode(KdcReq(c.KRB_TGS_REQ, (PAData(c.PA_TGS_REQ, encode(ap_req)),), body))
            try:
                return Template(der, {"nonce": (b"\x02\x04" + _int4(nonce), 2), "auth": fake})
            except ValueError:
                continue
        raise RuntimeError("could not build a request template")

    def tgs_body(self, client: ClientKeys, nonce: int, tgt: Tgt) -> KdcReqBody:
        return KdcReqBody(
            kdc_options=0,
            cname=None,
            realm=self.service_realm,
            sname=self.service,
            from_=None,
            till=tgt.endtime,
            rtime=None,
            nonce=nonce,
            etype=PREFERRED_ETYPES,
        )

    def body_template(self, index: int, tgt: Tgt) -> Template:
        """The req-body alone, for the authenticator checksum (same bytes as in the request)."""
        rng = random.Random(os.urandom(8))
        for _attempt in range(16):
            nonce = _marker_int(NONCE_LOW, NONCE_HIGH, rng)
            der = encode(self.tgs_body(self.clients[index], nonce, tgt))
            try:
                return Template(der, {"nonce": (b"\x02\x04" + _int4(nonce), 2)})
            except ValueError:
                continue
        raise RuntimeError("could not build a request template")

    def authenticator_template(self, index: int, cksumtype: int) -> Template:
        """Authenticator plaintext (RFC 4120 §5.5.1) with holes for the req-body checksum,
        cusec and ctime; no subkey, so the reply comes under the session key (usage 8)."""
        key = (index, cksumtype)
        tpl = self._auth_templates.get(key)
        if tpl is None:
            client = self.clients[index]
            rng = random.Random(os.urandom(8))
            for _attempt in range(16):
                cksum = os.urandom(12)
                cusec = _marker_int(USEC_LOW, USEC_HIGH, rng)
                der = encode(Authenticator(
                    crealm=client.realm, cname=client.name, cksum=Checksum(cksumtype, cksum),
                    cusec=cusec, ctime=TIME_MARKER))
                try:
                    tpl = Template(der, {
                        "cksum": cksum,
                        "cusec": (b"\x02\x03" + _int3(cusec), 2),
                        "ctime": format_kerberos_time(TIME_MARKER),
                    })
                    break
                except ValueError:
                    continue
            else:
                raise RuntimeError("could not build a request template")
            self._auth_templates[key] = tpl
        return tpl

    def tgs_request(self, index: int, tgt: Tgt, nonce: int) -> bytes:
        """One TGS-REQ: body checksum (usage 6), authenticator encrypted (usage 7), patched in."""
        session = tgt.session_key
        whole, body_tpl = self.tgs_templates(index, tgt)
        body = body_tpl.render(nonce=_int4(nonce))
        kc = self.cache.get(session, c.KU_TGS_REQ_AUTH_CKSUM)
        mac = kc.kc_mac.copy()
        mac.update(body)
        text, _sec, usec = self.clock.now()
        plain = self.authenticator_template(index, kc.cksumtype).render(
            cksum=mac.digest()[:12], cusec=_int3(usec), ctime=text)
        enc = self.encrypt(session, c.KU_TGS_REQ_AUTH, plain)
        return whole.render(nonce=_int4(nonce), auth=enc)

    # -- crypto through the per-worker cache -----------------------------------------------------

    def encrypt(self, key: Key, usage: int, plaintext: bytes) -> bytes:
        prep = self.cache.get(key, usage)
        data = os.urandom(16) + plaintext
        mac = prep.ki_mac.copy()
        mac.update(data)
        return prep.cipher.encrypt(data) + mac.digest()[: prep.mac_bytes]

    def decrypt(self, key: Key, usage: int, ciphertext: bytes) -> bytes:
        from kdc.crypto import decrypt

        return decrypt(key, usage, ciphertext, cache=self.cache)

    def enc_timestamp(self, key: Key) -> bytes:
        """PA-ENC-TIMESTAMP ciphertext (RFC 4120 §5.2.7.2, key usage 1), fixed length."""
        _text, sec, usec = self.clock.now()
        return self.encrypt(key, c.KU_PA_ENC_TIMESTAMP, encode(PaEncTsEnc(sec, usec)))

    # -- reply checks ----------------------------------------------------------------------------

    def check_rep(self, data: bytes, msg_type: int, key: Key, usage: int, nonce: int,
                  client: ClientKeys | None) -> tuple[int, str | None, object]:
        """(OK, None, (rep, part)) or (FAIL, name, None) for a reply to our request.

        The fast walk confirms the common case (result None); anything else is decided by the
        full decode."""
        fast = fast_kdc_rep(data)
        if (fast is not None and fast[0] == msg_type and fast[2] == key.etype
                and (client is None or fast[1] == client.wire)
                and self.fast_check(key, usage, fast[3], nonce)):
            return OK, None, None
        if data[:1] == b"\x7e":
            err = fast_krb_error(data)
            if err is not None:
                return FAIL, error_name(err[0]), None
        try:
            msg = decode_message(data)
        except DecodeError:
            return FAIL, BAD_REPLY, None
        if isinstance(msg, KrbError):
            return FAIL, error_name(msg.error_code), msg
        if not isinstance(msg, KdcRep) or msg.msg_type != msg_type:
            return FAIL, BAD_REPLY, None
        return self.check_kdc_rep(msg, key, usage, nonce, client)

    def fast_check(self, key: Key, usage: int, cipher: bytes, nonce: int) -> bool:
        """True when ``cipher`` decrypts under (key, usage) to a part with ``nonce``."""
        try:
            plain = self.decrypt(key, usage, cipher)
        except IntegrityError:
            return False
        return fast_nonce(plain) == nonce

    def check_kdc_rep(self, rep: KdcRep, key: Key, usage: int, nonce: int,
                      client: ClientKeys | None) -> tuple[int, str | None, object]:
        if rep.enc_part.etype != key.etype:
            return FAIL, BAD_REPLY, None
        try:
            part = decode(EncKdcRepPart, self.decrypt(key, usage, rep.enc_part.cipher))
        except IntegrityError:
            return FAIL, BAD_INTEGRITY, None
        except DecodeError:
            return FAIL, BAD_REPLY, None
        if part.nonce != nonce:  # RFC 4120 §3.1.5
            return FAIL, NONCE_MISMATCH, None
        if client is not None and (
            rep.crealm != client.realm or rep.cname.components != client.name.components
        ):
            return FAIL, WRONG_CLIENT, None
        return OK, None, (rep, part)


def parse_mix(text: str) -> dict[str, float]:
    """``"as-preauth:60,tgs:30,login:10"`` -> weights by mode (modes other than mix)."""
    table: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        mode, _, weight = part.partition(":")
        mode = mode.strip()
        if mode not in MODES or mode == "mix":
            raise ValueError(f"mix: unknown mode {mode!r}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"mix: bad weight {weight!r} for {mode}") from None
        if value < 0:
            raise ValueError(f"mix: negative weight for {mode}")
        table[mode] = value
    if not table or sum(table.values()) <= 0:
        raise ValueError("mix: no mode with a positive weight")
    return table


# -- operations ----------------------------------------------------------------------------------


class Operation:
    """Base: ``first()`` gives (message, kind); ``on_reply`` the next step."""

    __slots__ = ("factory", "client", "mode")

    def first(self) -> tuple[bytes, str]:
        raise NotImplementedError

    def on_reply(self, data: bytes) -> tuple[int, object, object]:
        raise NotImplementedError


class AsOperation(Operation):
    """AS exchange: ``preauth`` answers KDC_ERR_PREAUTH_REQUIRED with PA-ENC-TIMESTAMP
    (RFC 4120 §5.2.7.2), echoing PA-FX-COOKIE (RFC 6113 §5.2); without it that error is a
    failure (mode ``as`` measures the one-message exchange)."""

    __slots__ = ("preauth", "keep_tgt", "nonce", "preauth_sent", "then")

    def __init__(self, factory: RequestFactory, client: int, *, preauth: bool,
                 keep_tgt: bool = False, then: LoginOperation | None = None) -> None:
        self.factory = factory
        self.client = client
        self.mode = "as-preauth" if preauth else "as"
        self.preauth = preauth
        self.keep_tgt = keep_tgt
        self.preauth_sent = False
        self.then = then
        self.nonce = 0

    def first(self) -> tuple[bytes, str]:
        self.nonce = self.factory.nonce()
        return self.factory.as_request(self.client, self.nonce), "AS_REQ"

    def on_reply(self, data: bytes) -> tuple[int, object, object]:
        f = self.factory
        client = f.clients[self.client]
        if data[:1] == b"\x7e":
            err = fast_krb_error(data)
            if err is not None:
                return self._on_error(err[0], err[1], client)
        elif self.then is None and not self.keep_tgt:
            fast = fast_kdc_rep(data)
            if fast is not None and fast[0] == c.KRB_AS_REP and fast[1] == client.wire:
                key = client.keys.get(fast[2])
                if key is not None and f.fast_check(key, c.KU_AS_REP_ENC_PART, fast[3],
                                                    self.nonce):
                    return OK, None, None
        try:
            msg = decode_message(data)
        except DecodeError:
            return FAIL, BAD_REPLY, None
        if isinstance(msg, KrbError):
            return self._on_error(msg.error_code, msg.e_data, client)
        if not isinstance(msg, KdcRep) or msg.msg_type != c.KRB_AS_REP:
            return FAIL, BAD_REPLY, None
        key = client.key_for(msg.enc_part.etype, *self._salt(msg.padata, msg.enc_part.etype))
        if key is None:
            return FAIL, BAD_REPLY, None
        status, name, result = f.check_kdc_rep(msg, key, c.KU_AS_REP_ENC_PART, self.nonce, client)
        if status != OK:
            return status, name, None
        rep, part = result
        if self.keep_tgt or self.then is not None:
            tgt = Tgt(encode(rep.ticket), Key(part.key.keytype, part.key.keyvalue), part.endtime)
            if self.keep_tgt:
                f.tgts[self.client] = tgt
            if self.then is not None:
                return self.then.after_as(tgt)
        return OK, None, None

    def _on_error(self, code: int, e_data: bytes | None, client: ClientKeys
                  ) -> tuple[int, object, object]:
        if code == c.KDC_ERR_PREAUTH_REQUIRED and self.preauth and not self.preauth_sent:
            return self._preauth(e_data, client)
        return FAIL, error_name(code), None

    @staticmethod
    def _salt(padata, etype: int) -> tuple[str | None, bytes | None]:
        for pa in padata or ():
            if pa.padata_type == c.PA_ETYPE_INFO2:
                try:
                    for entry in decode_etype_info2(pa.padata_value):
                        if entry.etype == etype:
                            return entry.salt, entry.s2kparams
                except DecodeError:
                    pass
        return None, None

    def _preauth(self, e_data: bytes | None, client: ClientKeys) -> tuple[int, object, object]:
        """Answer KDC_ERR_PREAUTH_REQUIRED: PA-ENC-TIMESTAMP under the key PA-ETYPE-INFO2
        names. The parsed METHOD-DATA is cached per (client, e-data): a KDC sends the same
        e-data to the same client every time (MIT's cookie is constant)."""
        f = self.factory
        index = (self.client, e_data)
        choice = f.preauth_cache.get(index)
        if choice is None:
            choice = self._parse_method_data(e_data, client)
            if isinstance(choice, str):
                return FAIL, choice, None
            if len(f.preauth_cache) > 4 * len(f.clients) + 64:
                f.preauth_cache.clear()
            f.preauth_cache[index] = choice
        key, cookie = choice
        stamp = f.enc_timestamp(key)
        self.nonce = f.nonce()
        self.preauth_sent = True
        return NEXT, f.as_request(self.client, self.nonce, stamp=stamp, cookie=cookie), "AS_REQ"

    @staticmethod
    def _parse_method_data(e_data: bytes | None, client: ClientKeys
                           ) -> tuple[Key, bytes | None] | str:
        """(key, cookie) to answer with, or the failure name."""
        try:
            methods = decode_method_data(e_data or b"")
        except DecodeError:
            return BAD_REPLY
        if not any(pa.padata_type == c.PA_ENC_TIMESTAMP for pa in methods):
            return error_name(c.KDC_ERR_PREAUTH_REQUIRED)
        cookie = None
        etype, salt, params = client.etypes[0], None, None
        for pa in methods:
            if pa.padata_type == c.PA_FX_COOKIE:
                cookie = pa.padata_value
            elif pa.padata_type == c.PA_ETYPE_INFO2:
                try:
                    entries = decode_etype_info2(pa.padata_value)
                except DecodeError:
                    return BAD_REPLY
                for entry in entries:  # the KDC lists its preference first
                    if entry.etype in client.keys:
                        etype, salt, params = entry.etype, entry.salt, entry.s2kparams
                        break
        key = client.key_for(etype, salt, params)
        if key is None:
            return "KDC_ERR_ETYPE_NOSUPP"
        return key, cookie


class TgsOperation(Operation):
    """One TGS-REQ with the principal's TGT (fetched before the run); reply under the TGT
    session key, usage 8 (no subkey sent, RFC 4120 §5.4.2)."""

    __slots__ = ("nonce", "tgt")

    def __init__(self, factory: RequestFactory, client: int, tgt: Tgt | None = None) -> None:
        self.factory = factory
        self.client = client
        self.mode = "tgs"
        self.tgt = tgt
        self.nonce = 0

    def request(self) -> bytes | None:
        tgt = self.tgt or self.factory.tgts.get(self.client)
        if tgt is None:
            return None
        self.tgt = tgt
        self.nonce = self.factory.nonce()
        return self.factory.tgs_request(self.client, tgt, self.nonce)

    def first(self) -> tuple[bytes, str]:
        message = self.request()
        if message is None:
            raise LookupError(NO_TGT)
        return message, "TGS_REQ"

    def on_reply(self, data: bytes) -> tuple[int, object, object]:
        f = self.factory
        status, name, _ = f.check_rep(data, c.KRB_TGS_REP, self.tgt.session_key,
                                      c.KU_TGS_REP_ENC_PART_SESSION_KEY, self.nonce,
                                      f.clients[self.client])
        return status, name, None


class LoginOperation(Operation):
    """AS (pre-authenticated when the KDC asks) then one TGS-REQ with the new TGT.

    The TGS step encodes with the fast codec (the TGT is new each time, so no template)."""

    __slots__ = ("step", "nonce", "tgt")

    def __init__(self, factory: RequestFactory, client: int) -> None:
        self.factory = factory
        self.client = client
        self.mode = "login"
        self.step: Operation = AsOperation(factory, client, preauth=True, then=self)
        self.nonce = 0
        self.tgt: Tgt | None = None

    def first(self) -> tuple[bytes, str]:
        return self.step.first()

    def on_reply(self, data: bytes) -> tuple[int, object, object]:
        if self.tgt is None:
            return self.step.on_reply(data)
        f = self.factory
        status, name, _ = f.check_rep(data, c.KRB_TGS_REP, self.tgt.session_key,
                                      c.KU_TGS_REP_ENC_PART_SESSION_KEY, self.nonce,
                                      f.clients[self.client])
        return status, name, None

    def after_as(self, tgt: Tgt) -> tuple[int, object, object]:
        f = self.factory
        self.tgt = tgt
        self.nonce = f.nonce()
        client = f.clients[self.client]
        body = f.tgs_body(client, self.nonce, tgt)
        body_der = encode(body)
        kc = f.cache.get(tgt.session_key, c.KU_TGS_REQ_AUTH_CKSUM)
        mac = kc.kc_mac.copy()
        mac.update(body_der)
        _text, sec, usec = f.clock.now()
        auth = Authenticator(crealm=client.realm, cname=client.name,
                             cksum=Checksum(kc.cksumtype, mac.digest()[:12]),
                             cusec=usec, ctime=sec)
        enc = f.encrypt(tgt.session_key, c.KU_TGS_REQ_AUTH, encode(auth))
        ap_req = ApReq(0, decode(Ticket, tgt.ticket),
                       EncryptedData(tgt.session_key.etype, None, enc))
        message = encode(KdcReq(c.KRB_TGS_REQ, (PAData(c.PA_TGS_REQ, encode(ap_req)),), body))
        return NEXT, message, "TGS_REQ"


def check_principals(clients: Iterable[ClientKeys]) -> list[str]:
    """Canonical names, for reports (never keys)."""
    return [cl.principal for cl in clients]
