"""Principal administration on the three MPC nodes: the library under ``mpckdc admin``.

Every change is one two-phase transaction across the nodes (SPEC "Reliability"; the node
side is mpc/store.py): PREPARE the new public record on all three (this reserves the
principal), deal the new key's shares (each node receives only its two shares), run the
per-key precomputation inside MPC (Ke round keys and Ki HMAC states for usages 1, 2, 3), then
COMMIT on all three. Any failure before the commit ABORTs everywhere, which also removes the
shares of the failed attempt. Key versions live in the handle names (mpc.handles), so a KDC
never combines shares of two versions.

Key custody (SPEC "Threat model"):

* password keys: string-to-key runs here, on the admin's machine; the key is split into
  shares, each node gets only its own, and our copy is overwritten;
* krbtgt and other keys nobody needs: generated INSIDE MPC (``generate_random_key``), they
  never exist anywhere in the clear;
* keytab keys (``ktadd``): generated here, written to the keytab, shared out, overwritten.

Python cannot promise that no copy of a ``bytes`` object survives in freed memory; we keep
keys in ``bytearray``s we overwrite, hand the dealer the bytearray itself, and drop every
other reference at once.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kdc import crypto
from kdc.keyservice.base import REQUIRES_PREAUTH, KeyInfo, PrincipalEntry
from kdc.principal import parse_principal, unparse_principal

DEFAULT_ETYPES = (18, 17)
BULK_BATCH = 256  # principals per precompute job (4 machine words of 64 instances)
BULK_JOB_TIMEOUT = 300.0  # seconds for one batched precompute job
MATERIAL_RETRIES = 2  # extra attempts of a dealing/precompute step the nodes did not finish


class AdminError(Exception):
    """An administration request that failed; ``code`` is MIT's error text."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class PrincipalExists(AdminError):
    def __init__(self, name: str) -> None:
        super().__init__("Principal or policy already exists", name)


class PrincipalMissing(AdminError):
    def __init__(self, name: str) -> None:
        super().__init__("Principal does not exist", name)


def wipe(buf: bytearray) -> None:
    """Overwrite a key buffer in place (best effort; see the module docstring)."""
    for i in range(len(buf)):
        buf[i] = 0


def canonical_name(name: str, realm: str) -> str:
    """kadmin's habit: a name without a realm gets the default realm; MIT quoting rules."""
    pname, prealm = parse_principal(name, realm)
    return unparse_principal(pname, prealm)


def default_salt(name: str, realm: str) -> bytes:
    """RFC 4120 §4 / MIT "normal" salt: the realm followed by every name component."""
    pname, prealm = parse_principal(name, realm)
    return (prealm + "".join(pname.components)).encode("utf-8")


@dataclass(frozen=True)
class PrincipalSpec:
    """Public settings of a principal (what addprinc/modprinc set)."""

    attributes: frozenset[str] = frozenset()
    max_life: int | None = None
    max_renewable_life: int | None = None
    expiration: int | None = None
    pw_expiration: int | None = None


def make_record(name: str, kvno: int, etypes: Iterable[int], salt: bytes, spec: PrincipalSpec,
                *, created: int, modified: int, extra: dict | None = None) -> dict:
    """The store record of a principal (mpc.store.canonical_record shape; no key bytes)."""
    return {
        "name": name,
        "kvno": kvno,
        "keys": [{"etype": e, "kvno": kvno, "salt": salt.hex(), "s2kparams": None}
                 for e in etypes],
        "attributes": sorted(spec.attributes),
        "max_life": spec.max_life,
        "max_renewable_life": spec.max_renewable_life,
        "expiration": spec.expiration,
        "pw_expiration": spec.pw_expiration,
        "created": created,
        "modified": modified,
        "extra": dict(extra or {}),
    }


def entry_of(record: dict) -> PrincipalEntry:
    from mpc.store import entry_from_record

    return entry_from_record(record)


class KeyMaterial:
    """New keys of one principal, one bytearray per etype (``None``: generate inside MPC)."""

    def __init__(self) -> None:
        self.keys: dict[int, bytearray | None] = {}

    def __repr__(self) -> str:
        return f"KeyMaterial(etypes={sorted(self.keys)}, <redacted>)"

    @classmethod
    def from_password(cls, password: str | bytes, salt: bytes, etypes: Iterable[int]
                      ) -> KeyMaterial:
        m = cls()
        for e in etypes:
            m.keys[e] = bytearray(crypto.string_to_key(e, password, salt).contents)
        return m

    @classmethod
    def random_local(cls, etypes: Iterable[int], rng: Callable[[int], bytes] = os.urandom
                     ) -> KeyMaterial:
        m = cls()
        for e in etypes:
            m.keys[e] = bytearray(rng(crypto.profile(e).key_bytes))
        return m

    @classmethod
    def random_in_mpc(cls, etypes: Iterable[int]) -> KeyMaterial:
        m = cls()
        for e in etypes:
            m.keys[e] = None
        return m

    def etypes(self) -> list[int]:
        return list(self.keys)

    def wipe(self) -> None:
        for buf in self.keys.values():
            if buf is not None:
                wipe(buf)
        self.keys = {e: None for e in self.keys}


class RealmAdmin:
    """kadmin operations over ``mpc.admin_client.AdminClient`` (async).

    ``client_config`` is the cluster's client.toml (with the admin identity).
    """

    def __init__(self, client_config: str | os.PathLike, realm: str, *, client=None,
                 clock: Callable[[], float] = time.time, who: str | None = None) -> None:
        if client is None:
            from mpc.admin_client import AdminClient

            client = AdminClient(Path(client_config))
        self.client = client
        self.realm = realm
        self._clock = clock
        self.who = who or f"admin@{realm}"

    def __repr__(self) -> str:
        return f"RealmAdmin(realm={self.realm!r})"

    async def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result

    def canonical(self, name: str) -> str:
        return canonical_name(name, self.realm)

    def _now(self) -> int:
        return int(self._clock())

    # -- reads --------------------------------------------------------------------------------

    async def get(self, name: str) -> PrincipalEntry | None:
        record = await self.client.lookup(self.canonical(name))
        return None if record is None else entry_of(record)

    async def list(self, glob: str = "*") -> list[str]:
        if "@" not in glob:
            glob = f"{glob}@{self.realm}"
        names = await self.client.list(glob)
        return sorted(n for n in names if fnmatch.fnmatchcase(n, glob))

    # -- the two-phase change -----------------------------------------------------------------

    async def _apply(self, name: str, record: dict | None, base_version: int | None,
                     material: KeyMaterial | None) -> int:
        """prepare -> shares -> precompute -> commit; abort everywhere on any failure."""
        txid = f"admin-{uuid.uuid4().hex}"
        try:
            await self.client.prepare(txid, name, record, base_version=base_version)
            if material is not None and record is not None:
                await self._material(name, record["kvno"], material)
            version = await self.client.commit(txid)
        except BaseException:
            try:
                await self.client.abort(txid)
            except Exception:  # the nodes presume abort for a txid never committed
                pass
            raise
        finally:
            if material is not None:
                material.wipe()
        return version

    async def _material(self, name: str, kvno: int, material: KeyMaterial) -> None:
        """Deal or generate each key, then precompute its per-usage material, retrying a step
        the nodes could not finish (every step overwrites the same handles: idempotent)."""
        from mpc import handles
        from mpc.client import MpcUnavailable

        async def attempt(step, *args) -> None:
            for tries_left in range(MATERIAL_RETRIES, -1, -1):
                try:
                    await step(*args)
                    return
                except MpcUnavailable:
                    if not tries_left:
                        raise
                    await asyncio.sleep(0.5)

        for etype, buf in material.keys.items():
            handle = handles.base_key(name, kvno, etype)
            if buf is None:
                await attempt(self.client.generate_random_key, handle,
                              8 * crypto.profile(etype).key_bytes)
            else:
                await attempt(self.client.store_key, handle, buf)
                wipe(buf)
        for etype in material.keys:
            await attempt(self.client.precompute, name, kvno, etype)

    async def _current(self, name: str) -> dict:
        record = await self.client.lookup(name)
        if record is None:
            raise PrincipalMissing(name)
        return record

    # -- verbs ----------------------------------------------------------------------------------

    async def add_principal(self, name: str, *, password: str | bytes | None = None,
                            randkey: bool = False, mpc_random: bool = False,
                            etypes: Iterable[int] = DEFAULT_ETYPES,
                            spec: PrincipalSpec = PrincipalSpec(),
                            keytab: str | None = None) -> PrincipalEntry:
        """addprinc: keys from ``password`` (string-to-key here), random (``randkey``: made
        inside MPC, nobody ever holds it), or random here and written to ``keytab``."""
        name = self.canonical(name)
        etypes = list(dict.fromkeys(etypes))
        if sum((password is not None, bool(randkey), keytab is not None, mpc_random)) != 1:
            raise AdminError("Invalid argument", "give one of a password, -randkey or a keytab")
        existing = await self.client.lookup(name)
        if existing is not None:
            raise PrincipalExists(name)
        salt = default_salt(name, self.realm)
        now = self._now()
        record = make_record(name, 1, etypes, salt, spec, created=now, modified=now)
        if password is not None:
            material = KeyMaterial.from_password(password, salt, etypes)
        elif keytab is not None:
            material = KeyMaterial.random_local(etypes)
        else:
            material = KeyMaterial.random_in_mpc(etypes)
        entries = _keytab_entries(name, 1, material, now) if keytab is not None else []
        try:
            await self._apply(name, record, None, material)
            if keytab is not None:
                _write_keytab(keytab, entries)
        finally:
            entries.clear()
        return entry_of(record)

    async def change_key(self, name: str, *, password: str | bytes | None = None,
                         randkey: bool = False, keytab: str | None = None,
                         etypes: Iterable[int] | None = None) -> tuple[PrincipalEntry, list]:
        """cpw / cpw -randkey / ktadd: new keys at kvno + 1, old keys and their shares gone.

        With ``keytab``, the new keys are made here and appended to the keytab (MIT ktadd
        appends); the returned list names (kvno, etype) of the entries written.
        """
        name = self.canonical(name)
        if sum((password is not None, bool(randkey), keytab is not None)) != 1:
            raise AdminError("Invalid argument", "give one of a password, -randkey or a keytab")
        current = await self._current(name)
        entry = entry_of(current)
        etypes = list(dict.fromkeys(etypes or [k.etype for k in entry.keys] or DEFAULT_ETYPES))
        salt = entry.keys[0].salt if entry.keys else default_salt(name, self.realm)
        kvno = entry.kvno + 1
        now = self._now()
        spec = PrincipalSpec(entry.attributes, entry.max_life, entry.max_renewable_life,
                             entry.expiration, entry.pw_expiration)
        record = make_record(name, kvno, etypes, salt, spec, created=entry.created or now,
                             modified=now, extra=_public_extra(entry))
        if password is not None:
            material = KeyMaterial.from_password(password, salt, etypes)
        elif keytab is not None:
            material = KeyMaterial.random_local(etypes)
        else:
            material = KeyMaterial.random_in_mpc(etypes)
        entries = _keytab_entries(name, kvno, material, now) if keytab is not None else []
        written = [(e.kvno, e.key.etype) for e in entries]
        try:
            await self._apply(name, record, current.get("version"), material)
            if keytab is not None:
                _write_keytab(keytab, entries)
        finally:
            entries.clear()
        return entry_of(record), written

    async def delete(self, name: str) -> None:
        name = self.canonical(name)
        current = await self._current(name)
        await self._apply(name, None, current.get("version"), None)

    async def modify(self, name: str, *, add: Iterable[str] = (), remove: Iterable[str] = (),
                     **fields) -> PrincipalEntry:
        """modprinc: attributes (+/-), max_life, max_renewable_life, expiration, pw_expiration."""
        name = self.canonical(name)
        current = await self._current(name)
        record = dict(current)
        record.pop("version", None)
        attrs = (set(record.get("attributes") or ()) | set(add)) - set(remove)
        record["attributes"] = sorted(attrs)
        for key, value in fields.items():
            if key not in ("max_life", "max_renewable_life", "expiration", "pw_expiration"):
                raise AdminError("Invalid argument", f"cannot modify {key}")
            record[key] = value
        record["modified"] = self._now()
        await self._apply(name, record, current.get("version"), None)
        return entry_of(record)

    async def bulk_add(self, names: list[str], *, password: str | None = None,
                       keytab: str | None = None, etypes: Iterable[int] = DEFAULT_ETYPES,
                       spec: PrincipalSpec = PrincipalSpec(), concurrency: int = 32,
                       batch: int = BULK_BATCH,
                       progress: Callable[[int], None] | None = None) -> int:
        """Add many principals, ``batch`` at a time: one PREPARE per principal, ONE store
        frame (or RANDOM frame) for the batch's keys, ONE bit-sliced precompute job per
        etype for the whole batch (64 instances per machine word), one COMMIT per principal.
        Up to ``concurrency // 8`` batches are in flight. Keytab entries are appended at the
        end. A failed batch is aborted everywhere; the error is raised after the others."""
        etypes = list(dict.fromkeys(etypes))
        names = [self.canonical(n) for n in names]
        sem = asyncio.Semaphore(max(1, concurrency // 8))
        entries: list = []
        done = 0

        async def one_batch(chunk: list[str]) -> None:
            nonlocal done
            async with sem:
                now = self._now()
                records, materials = {}, {}
                for name in chunk:
                    salt = default_salt(name, self.realm)
                    records[name] = make_record(name, 1, etypes, salt, spec, created=now,
                                                modified=now)
                    if password is not None:
                        materials[name] = KeyMaterial.from_password(password, salt, etypes)
                    elif keytab is not None:
                        materials[name] = KeyMaterial.random_local(etypes)
                    else:
                        materials[name] = KeyMaterial.random_in_mpc(etypes)
                mine = [e for name in chunk
                        for e in (_keytab_entries(name, 1, materials[name], now)
                                  if keytab is not None else [])]
                txids = {name: f"admin-{uuid.uuid4().hex}" for name in chunk}
                try:
                    await asyncio.gather(*(self.client.prepare(txids[n], n, records[n])
                                           for n in chunk))
                    await self._batch_material(chunk, materials, etypes)
                    await asyncio.gather(*(self.client.commit(txids[n]) for n in chunk))
                except BaseException:
                    await asyncio.gather(*(self.client.abort(t) for t in txids.values()),
                                         return_exceptions=True)
                    raise
                finally:
                    for m in materials.values():
                        m.wipe()
                entries.extend(mine)
                done += len(chunk)
                if progress is not None:
                    progress(done)

        chunks = [names[i:i + batch] for i in range(0, len(names), batch)]
        try:
            results = await asyncio.gather(*(one_batch(c) for c in chunks),
                                           return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if keytab is not None and entries:
                _write_keytab(keytab, entries)
            if errors:
                raise errors[0]
        finally:
            entries.clear()
        return done

    async def _batch_material(self, chunk: list[str], materials: dict[str, KeyMaterial],
                              etypes: list[int]) -> None:
        """Keys of a batch of new principals (kvno 1) in one frame, then one precompute job
        per etype over all of them (mpc.registry "krb-pre/<etype>", keep mode)."""
        import numpy as np

        from mpc import handles, registry
        from mpc.client import Handles, deal

        mpc = self.client.mpc
        dealt, random = [], []
        try:
            for name in chunk:
                for etype, buf in materials[name].keys.items():
                    handle = handles.base_key(name, 1, etype)
                    if buf is None:
                        random.append((handle, 8 * crypto.profile(etype).key_bytes))
                        continue
                    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8))
                    dealt.append((handle, deal(bits)))
                    bits[:] = 0
                    wipe(buf)
            if dealt:
                await mpc.store_shares(dealt)
            if random:
                await mpc.random_secrets(random)
        finally:
            for _, shares in dealt:
                for x in shares:
                    x[:] = 0
        for etype in etypes:
            out: list[list[str]] = []
            for usage in registry.KRB_USAGES:
                for k in range(3):
                    out.append([handles.usage_material(n, 1, etype, usage)[k] for n in chunk])
            bases = Handles(tuple(handles.base_key(n, 1, etype) for n in chunk))
            await mpc.run(registry.krb_precompute_name(etype), [bases],
                          words=(len(chunk) + 63) // 64, mode="keep", out_handles=out,
                          timeout=BULK_JOB_TIMEOUT)


def _public_extra(entry: PrincipalEntry) -> dict:
    return {k: v for k, v in entry.extra.items() if k not in ("version", "old_keys")}


def _keytab_entries(name: str, kvno: int, material: KeyMaterial, now: int) -> list:
    from clients.keytab import KeytabEntry

    return [KeytabEntry(name, kvno, crypto.Key(e, bytes(buf)), now)
            for e, buf in material.keys.items() if buf is not None]


def _write_keytab(path: str, entries: list) -> None:
    from clients.keytab import write_keytab

    write_keytab(path, entries, append=True)


def key_info_text(k: KeyInfo) -> str:
    """``vno 2, aes256-cts-hmac-sha1-96`` (kadmin getprinc; never key bytes)."""
    return f"vno {k.kvno}, {crypto.enctype_name(k.etype)}"


PREAUTH = REQUIRES_PREAUTH
