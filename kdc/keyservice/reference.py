"""Reference key service: clear keys in memory. FOR TESTS AND REFERENCE ONLY.

This is the oracle that the MPC key service must equal byte for byte (same confounder in,
same ciphertext out), and the key database of test realms. It holds every principal's
long-term key in the clear, in this process, and ``save`` writes them to a JSON file (mode
0600): never deploy it as a product KDC's key store.

The KDC front-end uses only the KeyService Protocol methods (``lookup``/``encrypt``/
``decrypt``); the admin side (``add_principal`` ... ``keys_of``) serves tests, fixtures and
keytab export.
"""

from __future__ import annotations

import builtins
import fnmatch
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kdc import crypto
from kdc.crypto import IntegrityError, Key, UsageKeyCache

from .base import (
    IntegrityFailure,
    KeyInfo,
    KeyRef,
    KeyServiceError,
    PrincipalEntry,
    UnknownKey,
)

FILE_FORMAT = "mpckdc-reference-keys"
FILE_VERSION = 1
_UNSET = object()


class PrincipalExists(KeyServiceError):
    """add_principal for a name that is already in the database."""


class PrincipalNotFound(KeyServiceError, KeyError):
    """An admin operation named a principal that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "principal not found"


def split_principal(name: str) -> tuple[list[str], str | None]:
    """Components and realm of a principal string (MIT krb5_parse_name quoting rules).

    ``/`` separates components, the first unescaped ``@`` starts the realm, and a backslash
    escapes the next character (``\\n``, ``\\t``, ``\\b``, ``\\0`` name control characters).
    """
    escapes = {"n": "\n", "t": "\t", "b": "\b", "0": "\0"}
    comps: list[str] = []
    cur: list[str] = []
    realm: str | None = None
    i = 0
    in_realm = False
    while i < len(name):
        ch = name[i]
        if ch == "\\":
            if i + 1 >= len(name):
                raise ValueError("principal name ends with a backslash")
            nxt = name[i + 1]
            cur.append(escapes.get(nxt, nxt))
            i += 2
            continue
        if ch == "/" and not in_realm:
            comps.append("".join(cur))
            cur = []
        elif ch == "@" and not in_realm:
            comps.append("".join(cur))
            cur = []
            in_realm = True
        elif ch == "@":
            raise ValueError("principal name has more than one realm separator")
        else:
            cur.append(ch)
        i += 1
    if in_realm:
        realm = "".join(cur)
        if not realm:
            raise ValueError("principal name has an empty realm")
    else:
        comps.append("".join(cur))
    if not comps or any(c == "" for c in comps):
        raise ValueError("principal name has an empty component")
    return comps, realm


def default_salt(name: str) -> bytes:
    """RFC 4120 §4 / MIT default ("normal") salt: realm followed by every name component."""
    comps, realm = split_principal(name)
    if realm is None:
        raise ValueError("principal name has no realm")
    return (realm + "".join(comps)).encode("utf-8")


@dataclass
class _Record:
    name: str
    kvno: int
    salt: bytes
    keys: dict[int, builtins.list[Key]]  # kvno -> keys in preference order
    attributes: frozenset[str] = frozenset()
    max_life: int | None = None
    max_renewable_life: int | None = None
    expiration: int | None = None
    pw_expiration: int | None = None
    created: int | None = None
    modified: int | None = None
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"_Record(name={self.name!r}, kvno={self.kvno}, <keys redacted>)"

    def __setattr__(self, name: str, value) -> None:
        # Any change (kadmin modprinc, cpw, ...) invalidates the remembered public entry.
        object.__setattr__(self, name, value)
        if name != "_entry":
            object.__setattr__(self, "_entry", None)

    def lookup_entry(self) -> PrincipalEntry:
        """The public entry, built once per version of the record (KeyService.lookup is on
        every request's path). Records whose ``extra`` is in use get a fresh copy each time."""
        entry = self.__dict__.get("_entry")
        if entry is None:
            entry = self.entry()
            if not self.extra:
                object.__setattr__(self, "_entry", entry)
        return entry

    def entry(self) -> PrincipalEntry:
        return PrincipalEntry(
            name=self.name,
            kvno=self.kvno,
            keys=tuple(KeyInfo(k.etype, self.kvno, self.salt) for k in self.keys[self.kvno]),
            attributes=self.attributes,
            max_life=self.max_life,
            max_renewable_life=self.max_renewable_life,
            expiration=self.expiration,
            pw_expiration=self.pw_expiration,
            created=self.created,
            modified=self.modified,
            extra=dict(self.extra),
        )


def _record_from_json(p: dict) -> _Record:
    keys: dict[int, builtins.list[Key]] = {}
    for k in p["keys"]:
        keys.setdefault(int(k["kvno"]), []).append(
            Key(int(k["etype"]), bytes.fromhex(k["key_hex"]))
        )
    kvno = int(p["kvno"])
    if kvno not in keys:
        raise ValueError("no keys at the principal's kvno")
    return _Record(
        name=str(p["name"]),
        kvno=kvno,
        salt=bytes.fromhex(p["salt_hex"]),
        keys=keys,
        attributes=frozenset(p.get("attributes", ())),
        max_life=p.get("max_life"),
        max_renewable_life=p.get("max_renewable_life"),
        expiration=p.get("expiration"),
        pw_expiration=p.get("pw_expiration"),
        created=p.get("created"),
        modified=p.get("modified"),
    )


class ReferenceKeyService:
    """Clear-key KeyService plus a kadmin-like admin side. Tests and reference only.

    Derived per-usage keys are kept in a bounded LRU (``cache_size`` entries). Use one
    instance from one thread (an asyncio loop): the cached cipher contexts carry state.
    """

    def __init__(
        self,
        realm: str,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[int], bytes] = os.urandom,
        cache_size: int = 1024,
    ) -> None:
        if not realm:
            raise ValueError("realm must not be empty")
        self.realm = realm
        self._clock = clock
        self._rng = rng
        self._cache = UsageKeyCache(cache_size)
        self._db: dict[str, _Record] = {}

    def __repr__(self) -> str:
        return f"ReferenceKeyService(realm={self.realm!r}, principals={len(self._db)})"

    # --- KeyService Protocol (the only methods the KDC front-end may call) -----------------

    async def lookup(self, principal: str) -> PrincipalEntry | None:
        rec = self._db.get(principal)
        return None if rec is None else rec.lookup_entry()

    async def encrypt(
        self, ref: KeyRef, usage: int, plaintext: bytes, confounder: bytes | None = None
    ) -> bytes:
        key = self._key(ref)
        if confounder is None:
            confounder = self._rng(16)
        return crypto.encrypt(key, usage, plaintext, confounder, cache=self._cache)

    async def decrypt(self, ref: KeyRef, usage: int, ciphertext: bytes) -> bytes:
        key = self._key(ref)
        try:
            return crypto.decrypt(key, usage, ciphertext, cache=self._cache)
        except IntegrityError:
            # RFC 4120 §7.5.1 usage in the message helps debugging; never any bytes.
            raise IntegrityFailure(
                f"integrity check failed for {ref.principal} kvno {ref.kvno} "
                f"etype {ref.etype} usage {usage}"
            ) from None

    # Keyed checksums by reference (RFC 3962 §7), for PAC signatures and the like.
    async def make_checksum(self, ref: KeyRef, usage: int, data: bytes) -> tuple[int, bytes]:
        return crypto.make_checksum(self._key(ref), usage, data, cache=self._cache)

    async def verify_checksum(
        self, ref: KeyRef, usage: int, data: bytes, cksumtype: int, value: bytes
    ) -> bool:
        return crypto.verify_checksum(
            self._key(ref), usage, data, cksumtype, value, cache=self._cache
        )

    def _key(self, ref: KeyRef) -> Key:
        rec = self._db.get(ref.principal)
        if rec is not None:
            for key in rec.keys.get(ref.kvno, ()):
                if key.etype == ref.etype:
                    return key
        raise UnknownKey(f"no key for {ref.principal} kvno {ref.kvno} etype {ref.etype}")

    # --- admin side (tests, fixtures, keytab export) ---------------------------------------

    def canonical(self, name: str) -> str:
        """``name`` with this realm appended when it has none (kadmin's habit)."""
        _, realm = split_principal(name)
        return name if realm is not None else f"{name}@{self.realm}"

    def _now(self) -> int:
        return int(self._clock())

    def _record(self, name: str) -> _Record:
        rec = self._db.get(self.canonical(name))
        if rec is None:
            raise PrincipalNotFound(f"principal {name} does not exist")
        return rec

    def _make_keys(
        self,
        salt: bytes,
        *,
        password: str | bytes | None,
        randkey: bool,
        keys: Iterable[Key] | None,
        etypes: Iterable[int],
    ) -> builtins.list[Key]:
        given = sum((password is not None, bool(randkey), keys is not None))
        if given != 1:
            raise ValueError("give exactly one of password, randkey=True or keys")
        if keys is not None:
            out = builtins.list(keys)
            for k in out:
                crypto.profile(k.etype)
        else:
            ets = builtins.list(dict.fromkeys(etypes))
            if password is not None:
                out = [crypto.string_to_key(e, password, salt) for e in ets]
            else:
                out = [crypto.random_key(e, self._rng) for e in ets]
        if not out:
            raise ValueError("a principal needs at least one key")
        if len({k.etype for k in out}) != len(out):
            raise ValueError("at most one key per enctype")
        return out

    def add_principal(
        self,
        name: str,
        *,
        password: str | bytes | None = None,
        randkey: bool = False,
        keys: Iterable[Key] | None = None,
        etypes: Iterable[int] = (18, 17),
        attributes: Iterable[str] = (),
        max_life: int | None = None,
        max_renewable_life: int | None = None,
        expiration: int | None = None,
        kvno: int = 1,
    ) -> PrincipalEntry:
        """kadmin addprinc: keys from a password (default salt), random, or given explicitly."""
        canon = self.canonical(name)
        if canon in self._db:
            raise PrincipalExists(f"principal {canon} already exists")
        if kvno < 1:
            raise ValueError("kvno must be positive")
        salt = default_salt(canon)
        new_keys = self._make_keys(
            salt, password=password, randkey=randkey, keys=keys, etypes=etypes
        )
        now = self._now()
        rec = _Record(
            name=canon,
            kvno=kvno,
            salt=salt,
            keys={kvno: new_keys},
            attributes=frozenset(attributes),
            max_life=max_life,
            max_renewable_life=max_renewable_life,
            expiration=expiration,
            created=now,
            modified=now,
        )
        self._db[canon] = rec
        return rec.entry()

    def _rekey(
        self,
        name: str,
        *,
        password: str | bytes | None = None,
        randkey: bool = False,
        keys: Iterable[Key] | None = None,
        etypes: Iterable[int] | None,
        keepold: bool,
    ) -> PrincipalEntry:
        rec = self._record(name)
        if etypes is None:
            etypes = [k.etype for k in rec.keys[rec.kvno]]
        new_keys = self._make_keys(
            rec.salt, password=password, randkey=randkey, keys=keys, etypes=etypes
        )
        rec.kvno += 1
        rec.keys = {**rec.keys, rec.kvno: new_keys} if keepold else {rec.kvno: new_keys}
        rec.modified = self._now()
        self._cache.clear()  # drop derived keys of replaced keys
        return rec.entry()

    def change_password(
        self,
        name: str,
        password: str | bytes,
        *,
        etypes: Iterable[int] | None = None,
        keepold: bool = False,
    ) -> PrincipalEntry:
        """kadmin cpw: new password keys at kvno+1 (old keys dropped unless ``keepold``)."""
        return self._rekey(name, password=password, etypes=etypes, keepold=keepold)

    def randomize_key(
        self, name: str, *, etypes: Iterable[int] | None = None, keepold: bool = False
    ) -> PrincipalEntry:
        """kadmin cpw -randkey / ktadd: fresh random keys at kvno+1."""
        return self._rekey(name, randkey=True, etypes=etypes, keepold=keepold)

    def set_keys(self, name: str, keys: Iterable[Key], *, keepold: bool = False) -> PrincipalEntry:
        """Install explicit keys at kvno+1 (e.g. keys read from a keytab)."""
        return self._rekey(name, keys=keys, etypes=None, keepold=keepold)

    def modify(
        self,
        name: str,
        *,
        attributes: Iterable[str] | None = None,
        add_attributes: Iterable[str] = (),
        remove_attributes: Iterable[str] = (),
        max_life: int | None | object = _UNSET,
        max_renewable_life: int | None | object = _UNSET,
        expiration: int | None | object = _UNSET,
        pw_expiration: int | None | object = _UNSET,
    ) -> PrincipalEntry:
        """kadmin modprinc: replace or add/remove attributes, change lifetimes."""
        rec = self._record(name)
        attrs = set(rec.attributes if attributes is None else attributes)
        attrs |= set(add_attributes)
        attrs -= set(remove_attributes)
        rec.attributes = frozenset(attrs)
        for fname, value in (
            ("max_life", max_life),
            ("max_renewable_life", max_renewable_life),
            ("expiration", expiration),
            ("pw_expiration", pw_expiration),
        ):
            if value is not _UNSET:
                setattr(rec, fname, value)
        rec.modified = self._now()
        return rec.entry()

    def delete(self, name: str) -> None:
        """kadmin delprinc."""
        rec = self._record(name)
        del self._db[rec.name]
        self._cache.clear()

    def get(self, name: str) -> PrincipalEntry | None:
        """kadmin getprinc: public metadata, or None."""
        rec = self._db.get(self.canonical(name))
        return None if rec is None else rec.entry()

    def keys_of(self, name: str, kvno: int | None = None) -> builtins.list[Key]:
        """The clear keys of ``name`` (current kvno by default). Tests and keytab export only."""
        rec = self._record(name)
        want = rec.kvno if kvno is None else kvno
        if want not in rec.keys:
            raise UnknownKey(f"no keys for {rec.name} kvno {want}")
        return builtins.list(rec.keys[want])

    def list(self, glob: str = "*") -> builtins.list[str]:
        """kadmin listprincs: sorted canonical names matching a shell glob."""
        return sorted(n for n in self._db if fnmatch.fnmatchcase(n, glob))

    # --- persistence (tests-only database file) --------------------------------------------

    def to_json(self) -> dict:
        """The whole database as a JSON-able dict (contains clear keys)."""
        principals = []
        for rec in self._db.values():
            principals.append(
                {
                    "name": rec.name,
                    "kvno": rec.kvno,
                    "salt_hex": rec.salt.hex(),
                    "attributes": sorted(rec.attributes),
                    "max_life": rec.max_life,
                    "max_renewable_life": rec.max_renewable_life,
                    "expiration": rec.expiration,
                    "pw_expiration": rec.pw_expiration,
                    "created": rec.created,
                    "modified": rec.modified,
                    "keys": [
                        {"kvno": kv, "etype": k.etype, "key_hex": k.contents.hex()}
                        for kv, ks in sorted(rec.keys.items())
                        for k in ks
                    ],
                }
            )
        return {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "realm": self.realm,
            "principals": principals,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the database as JSON, atomically, readable by the owner only (0600)."""
        target = Path(path)
        data = json.dumps(self.to_json(), indent=1).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            os.fchmod(fd, 0o600)  # mkstemp already creates 0600; make it explicit
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    @classmethod
    def from_json(cls, doc: dict, **kwargs) -> ReferenceKeyService:
        if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
            raise ValueError("not a reference key database")
        if doc.get("version") != FILE_VERSION:
            raise ValueError(f"unsupported reference key database version {doc.get('version')!r}")
        svc = cls(doc.get("realm") or "", **kwargs)
        for index, p in enumerate(doc.get("principals", ())):
            try:
                rec = _record_from_json(p)
            except (KeyError, TypeError, ValueError) as exc:
                # No field values in the message: they may be key bytes.
                raise ValueError(
                    f"malformed principal #{index} in reference key database ({type(exc).__name__})"
                ) from None
            svc._db[rec.name] = rec
        return svc

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs) -> ReferenceKeyService:
        """Read a database written by ``save``; ValueError if it is malformed."""
        with open(path, encoding="utf-8") as f:
            try:
                doc = json.load(f)
            except json.JSONDecodeError:
                raise ValueError("reference key database is not valid JSON") from None
        return cls.from_json(doc, **kwargs)
