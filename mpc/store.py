"""The persistent share store of one MPC node: SQLite in WAL mode, plus principal records.

What one node's database holds (file mode 0600, directory 0700 when we create it):

* ``shares``: this node's two shares of every secret, by handle (:mod:`mpc.handles`). This is
  the :class:`mpc.node.ShareStore` protocol; ``put`` is visible at once (the node's STORE
  frames and "keep" jobs such as the per-key precomputation write here).
* ``principals``: one row per principal: public metadata as JSON (never key bytes; see
  :func:`canonical_record`) and a ``version`` that grows by one on every committed change.
  A deleted principal keeps a tombstone row (record NULL) so versions never go back.
* ``txs`` and ``staged``: two-phase changes. ``prepare`` stages a record (or a deletion) and
  optional share rows; ``commit`` applies them in one SQLite transaction; ``abort`` drops
  them. Both are idempotent, so a coordinator can retry after a lost reply or a node restart
  (presumed abort: ``abort`` of an unknown txid records it as aborted, so a late ``prepare``
  of it is refused).

Atomic across the three nodes (SPEC "Reliability"): the admin coordinator ``prepare``s the
same txid on all three nodes, then ``commit``s on all three, retrying until each answers;
any prepare failure means ``abort`` everywhere. A prepared transaction reserves its principal
(a second prepare for it is a :class:`Conflict`), so the recommended order for a key change
is: prepare (reserve) -> STORE frames / keep jobs write the new kvno's handles -> commit.
``abort`` also removes shares of kvnos the committed record does not list (the failed
attempt's material). Handles embed the kvno and the KDC forms handles only from the record it
read, so while the nodes disagree (one has committed, another not yet) a request fails with
an unknown handle: it can never combine shares of two key versions. ``commit`` checks that
every key the record lists has its base share on this node and deletes, in the same
transaction, every share of the principal whose kvno the record no longer lists.

Durability: ``synchronous=FULL`` for prepare/commit/abort: a change a node acknowledged
survives kill -9 *and* power loss, which 2PC needs (a node that forgot an acknowledged
commit would disagree with the other two). WAL alone (any synchronous level) already keeps
the database consistent across kill -9, because a transaction counts only once its commit
frame is in the WAL. Plain ``put``/``delete`` run at ``synchronous=NORMAL`` by default
(``sync_puts=True`` makes them FULL): they survive kill -9, and the fsync of the WAL at the
next prepare/commit makes every earlier frame durable too, so keep-job outputs written
before a commit are on disk when the commit is acknowledged; the node's engine thread does
not pay an fsync per output handle.

Hygiene: ``secure_delete`` zeroes deleted shares in the file, a TRUNCATE checkpoint after
every commit that deleted shares (and at close) drops their old WAL frames, and
``temp_store=MEMORY`` keeps SQLite from spilling rows into temp files. No exception message,
log line or repr carries share bytes (SQLite's own messages never include bound values).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdc.keyservice.base import KeyInfo, PrincipalEntry
from mpc import handles as hnames

if TYPE_CHECKING:
    from mpc.node import ShareStore, StoredShare

SCHEMA_VERSION = 1
MAX_TXID_LEN = 128
MAX_RECORD_BYTES = 64 * 1024
MAX_SHARE_BITS = 1 << 16  # as mpc.node's STORE frame

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    handle TEXT PRIMARY KEY,
    n_bits INTEGER NOT NULL,
    own BLOB NOT NULL,
    next BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS principals (
    name TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    record TEXT                       -- NULL: deleted (tombstone keeps the version)
);
CREATE TABLE IF NOT EXISTS txs (
    txid TEXT PRIMARY KEY,
    name TEXT NOT NULL,               -- '' for a txid aborted before any prepare was seen
    state TEXT NOT NULL CHECK (state IN ('prepared', 'committed', 'aborted')),
    record TEXT,                      -- NULL: the change deletes the principal
    digest TEXT NOT NULL,             -- of the prepared content, for idempotent retries
    version INTEGER,                  -- set by commit
    created REAL NOT NULL,
    finished REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS txs_one_pending_per_principal
    ON txs(name) WHERE state = 'prepared';
CREATE TABLE IF NOT EXISTS staged (
    txid TEXT NOT NULL,
    handle TEXT NOT NULL,
    n_bits INTEGER NOT NULL,
    own BLOB NOT NULL,
    next BLOB NOT NULL,
    PRIMARY KEY (txid, handle)
) WITHOUT ROWID;
"""

_RECORD_INTS = ("max_life", "max_renewable_life", "expiration", "pw_expiration", "created",
                "modified")
_RECORD_FIELDS = frozenset({"name", "kvno", "keys", "attributes", "extra", "version",
                            *_RECORD_INTS})
_KEY_FIELDS = frozenset({"etype", "kvno", "salt", "s2kparams"})


class StoreError(Exception):
    """Base of share-store failures. Messages name handles, txids and principals only."""


class StoreClosed(StoreError):
    """The store was closed."""


class Conflict(StoreError):
    """The change clashes with another one (pending prepare, reused txid, stale version)."""


class UnknownTransaction(StoreError, KeyError):
    """commit() of a txid this node never prepared."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown transaction"


class Incomplete(StoreError):
    """commit() of a record listing a key whose base share this node does not hold."""


class BadInput(StoreError, ValueError):
    """A handle, share, txid or record that does not have the required shape."""


class BadRecord(BadInput):
    """A principal record (or the shares staged with it) that does not fit the rules."""


def _stored_share(n_bits: int, own: bytes, nxt: bytes) -> StoredShare:
    # Imported here so mpc.node may import this module at top level without a cycle.
    from mpc.node import StoredShare

    return StoredShare(n_bits, bytes(own), bytes(nxt))


class SqliteShareStore:
    """A node's :class:`mpc.node.ShareStore` and principal records in one SQLite file.

    Thread-safe (the node calls it from its asyncio job thread and its engine thread): writes
    go through one connection under a lock; reads use one connection per thread, so in WAL
    mode a read never waits for a writer's fsync (SQLite WAL: readers see the last commit).
    """

    def __init__(self, path: str | os.PathLike, *, sync_puts: bool = False,
                 busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._put_sync = "FULL" if sync_puts else "NORMAL"
        self._lock = threading.RLock()
        self._sync: str | None = None
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()  # not self._lock: a reader never waits a writer
        self._closing = False
        _make_private_dirs(self.path.parent)
        _create_private_file(self.path)
        conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot put {self.path} in WAL mode (got {mode})")
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA temp_store=MEMORY")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema {version}, this code knows "
                                 f"{SCHEMA_VERSION}")
            conn.execute("BEGIN IMMEDIATE")  # executescript() would commit on its own
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn
        for suffix in ("-wal", "-shm"):  # SQLite copies the db file's mode; make sure
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                os.chmod(side, 0o600)

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"SqliteShareStore({str(self.path)!r}, {state})"

    def __enter__(self) -> SqliteShareStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Checkpoint the WAL into the database file and close. Idempotent."""
        with self._lock:
            if self._conn is None:
                return
            try:
                with self._readers_lock:
                    self._closing = True
                    readers, self._readers = self._readers, []
                for reader in readers:
                    reader.close()
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()
                self._conn = None

    # -- ShareStore protocol -----------------------------------------------------------------

    def put(self, handle: str, share: StoredShare) -> None:
        """Store (or replace) this node's shares under ``handle``; visible at once."""
        self.put_many({handle: share})

    def put_many(self, shares: Mapping[str, StoredShare]) -> None:
        """Several :meth:`put` in one transaction (all or none)."""
        rows = [_share_row(h, s) for h, s in shares.items()]
        with self._transaction(self._put_sync) as c:
            c.executemany("INSERT OR REPLACE INTO shares VALUES (?, ?, ?, ?)", rows)

    def get(self, handle: str) -> StoredShare | None:
        rows = self._read("SELECT n_bits, own, next FROM shares WHERE handle = ?", (handle,))
        return _stored_share(*rows[0]) if rows else None

    def delete(self, handle: str) -> bool:
        with self._transaction(self._put_sync) as c:
            return c.execute("DELETE FROM shares WHERE handle = ?", (handle,)).rowcount > 0

    def handles(self) -> list[str]:
        """Every visible handle, sorted (staged shares are not visible)."""
        return [h for (h,) in self._read("SELECT handle FROM shares ORDER BY handle")]

    # -- two-phase principal changes -----------------------------------------------------------

    def prepare(self, txid: str, name: str, record: Mapping[str, Any] | None,
                shares: Mapping[str, StoredShare] | None = None, *,
                base_version: int | None = None) -> None:
        """Stage a change of principal ``name``: ``record`` (None = delete) and share rows.

        Staged shares must be key handles of ``name`` for a kvno the record lists; they stay
        invisible until :meth:`commit`. Preparing the same txid again with the same content is
        a no-op (also after it committed). :class:`Conflict` if the txid was aborted or used
        with other content, if another change of ``name`` is pending, or if ``base_version``
        is given and differs from :meth:`record_version` (0 = "must not exist").
        """
        _check_txid(txid)
        try:
            hnames.check_principal(name)
        except hnames.BadHandle as e:
            raise BadRecord(f"principal name unusable: {e}") from e
        rec_json = None if record is None else canonical_record(name, record)
        listed = set() if rec_json is None else {k["kvno"] for k in json.loads(rec_json)["keys"]}
        rows = []
        for handle, share in sorted((shares or {}).items()):
            key = hnames.try_parse(handle)
            if key is None or key.principal != name:
                raise BadRecord(f"staged handle {handle!r} is not a key handle of {name!r}")
            if key.kvno not in listed:
                raise BadRecord(f"staged handle {handle!r}: kvno {key.kvno} is not listed in "
                                "the record")
            rows.append((txid, *_share_row(handle, share)))
        if rec_json is not None:
            _refuse_share_bytes_in_record(rec_json, rows)
        digest = _digest(name, rec_json, rows)
        with self._transaction("FULL") as c:
            row = c.execute("SELECT state, digest FROM txs WHERE txid = ?", (txid,)).fetchone()
            if row is not None:
                state, old_digest = row
                if state == "aborted":
                    raise Conflict(f"transaction {txid!r} was aborted")
                if not hmac.compare_digest(old_digest, digest):
                    raise Conflict(f"transaction {txid!r} was prepared with other content")
                return
            other = c.execute("SELECT txid FROM txs WHERE name = ? AND state = 'prepared'",
                              (name,)).fetchone()
            if other is not None:
                raise Conflict(f"principal {name!r} has a pending change {other[0]!r}")
            if base_version is not None:
                current = self._live_version(c, name) or 0
                if current != base_version:
                    raise Conflict(f"principal {name!r} is at version {current}, not "
                                   f"{base_version}")
            c.execute("INSERT INTO txs (txid, name, state, record, digest, created) "
                      "VALUES (?, ?, 'prepared', ?, ?, ?)",
                      (txid, name, rec_json, digest, time.time()))
            c.executemany("INSERT INTO staged VALUES (?, ?, ?, ?, ?)", rows)

    def commit(self, txid: str) -> int:
        """Apply a prepared change atomically; returns the principal's new version.

        Committing a committed txid returns the same version (idempotent retry).
        :class:`UnknownTransaction` if never prepared here, :class:`Conflict` if aborted,
        :class:`Incomplete` (nothing applied, still pending) if a listed key has no base share.
        """
        _check_txid(txid)
        with self._transaction("FULL") as c:
            row = c.execute("SELECT name, state, record, version FROM txs WHERE txid = ?",
                            (txid,)).fetchone()
            if row is None:
                raise UnknownTransaction(f"transaction {txid!r} was never prepared here")
            name, state, rec_json, version = row
            if state == "committed":
                return version
            if state == "aborted":
                raise Conflict(f"transaction {txid!r} was aborted")
            keep: set[int] = set()
            if rec_json is not None:
                for key in json.loads(rec_json)["keys"]:
                    keep.add(key["kvno"])
                    base = hnames.base_key(name, key["kvno"], key["etype"])
                    if not (_exists(c, "staged", base, txid) or _exists(c, "shares", base)):
                        raise Incomplete(f"transaction {txid!r}: no share for {base!r}")
            c.execute("INSERT OR REPLACE INTO shares (handle, n_bits, own, next) "
                      "SELECT handle, n_bits, own, next FROM staged WHERE txid = ?", (txid,))
            c.execute("DELETE FROM staged WHERE txid = ?", (txid,))
            # Shares of kvnos the record no longer lists go in the same transaction.
            removed = self._delete_unlisted(c, name, keep)
            prev = c.execute("SELECT version FROM principals WHERE name = ?",
                             (name,)).fetchone()
            version = (prev[0] if prev else 0) + 1
            c.execute("INSERT OR REPLACE INTO principals (name, version, record) "
                      "VALUES (?, ?, ?)", (name, version, rec_json))
            c.execute("UPDATE txs SET state = 'committed', version = ?, finished = ? "
                      "WHERE txid = ?", (version, time.time(), txid))
        if removed:
            self._scrub()
        return version

    def abort(self, txid: str) -> None:
        """Drop a prepared change and the shares of kvnos the committed record does not list.

        Idempotent; an unknown txid is remembered as aborted (a late prepare is refused).
        :class:`Conflict` if it already committed.
        """
        _check_txid(txid)
        removed = 0
        with self._transaction("FULL") as c:
            row = c.execute("SELECT name, state FROM txs WHERE txid = ?", (txid,)).fetchone()
            now = time.time()
            if row is None:
                c.execute("INSERT INTO txs (txid, name, state, digest, created, finished) "
                          "VALUES (?, '', 'aborted', '', ?, ?)", (txid, now, now))
                return
            name, state = row
            if state == "aborted":
                return
            if state == "committed":
                raise Conflict(f"transaction {txid!r} already committed")
            c.execute("DELETE FROM staged WHERE txid = ?", (txid,))
            live = self._live_record(c, name)
            keep = set() if live is None else {k["kvno"] for k in live["keys"]}
            removed = self._delete_unlisted(c, name, keep)
            c.execute("UPDATE txs SET state = 'aborted', finished = ? WHERE txid = ?",
                      (now, txid))
        if removed:
            self._scrub()

    def pending(self) -> list[str]:
        """Prepared, not yet committed or aborted txids, oldest first."""
        return [t for (t,) in self._read(
            "SELECT txid FROM txs WHERE state = 'prepared' ORDER BY created, txid")]

    def transaction(self, txid: str) -> dict | None:
        """Public facts of one txid: name, state, version (after commit), staged record."""
        rows = self._read("SELECT name, state, record, version FROM txs WHERE txid = ?",
                          (txid,))
        if not rows:
            return None
        name, state, rec_json, version = rows[0]
        return {"txid": txid, "name": name, "state": state, "version": version,
                "record": None if rec_json is None else json.loads(rec_json)}

    # -- queries ---------------------------------------------------------------------------

    def principal(self, name: str) -> dict | None:
        """The committed record of ``name`` plus its ``version``, or None."""
        rows = self._read("SELECT version, record FROM principals "
                          "WHERE name = ? AND record IS NOT NULL", (name,))
        if not rows:
            return None
        record = json.loads(rows[0][1])
        record["version"] = rows[0][0]
        return record

    def entry(self, name: str) -> PrincipalEntry | None:
        """The committed record of ``name`` as the KDC's :class:`PrincipalEntry`, or None."""
        record = self.principal(name)
        return None if record is None else entry_from_record(record)

    def principals(self, glob: str = "*") -> list[str]:
        """Sorted names of live principals matching a shell glob (kadmin listprincs)."""
        names = [n for (n,) in self._read(
            "SELECT name FROM principals WHERE record IS NOT NULL ORDER BY name")]
        return [n for n in names if fnmatch.fnmatchcase(n, glob)]

    def record_version(self, name: str) -> int | None:
        """Version of the live record of ``name``; None if it does not exist (or was deleted)."""
        return self._live_version(self._reader(), name)

    def orphans(self) -> list[str]:
        """Key handles no committed record lists and no pending change covers (left by an
        attempt that wrote shares but never prepared). For repair tools; nothing uses them."""
        with self._snapshot() as c:
            pending = {n for (n,) in c.execute("SELECT name FROM txs WHERE state='prepared'")}
            listed: dict[str, set[int]] = {}
            for name, rec_json in c.execute(
                    "SELECT name, record FROM principals WHERE record IS NOT NULL"):
                listed[name] = {k["kvno"] for k in json.loads(rec_json)["keys"]}
            out = []
            for (handle,) in c.execute("SELECT handle FROM shares WHERE handle >= ? AND "
                                       "handle < ? ORDER BY handle", _range(hnames.PREFIX)):
                key = hnames.try_parse(handle)
                if key is None or key.principal in pending:
                    continue
                if key.kvno not in listed.get(key.principal, ()):
                    out.append(handle)
            return out

    # -- internals -------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosed(f"share store {self.path} is closed")
        return self._conn

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (opened on first use)."""
        self._db()
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                check_same_thread=False)  # closed by close() in any thread
            c.execute("PRAGMA query_only=ON")
            c.execute("PRAGMA temp_store=MEMORY")
            with self._readers_lock:
                if self._closing:
                    c.close()
                    raise StoreClosed(f"share store {self.path} is closed")
                self._readers.append(c)
            self._local.conn = c
        return c

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._reader().execute(sql, args).fetchall()  # fetchall: no open statement

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads from one consistent snapshot (a deferred read transaction)."""
        c = self._reader()
        c.execute("BEGIN")
        try:
            yield c
        finally:
            c.execute("COMMIT")

    @contextmanager
    def _transaction(self, sync: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            c = self._db()
            if self._sync != sync:  # cannot change inside a transaction
                c.execute(f"PRAGMA synchronous={sync}")
                self._sync = sync
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:  # also when COMMIT itself failed (disk full, I/O error)
                    c.execute("ROLLBACK")
                raise

    @staticmethod
    def _live_record(c: sqlite3.Connection, name: str) -> dict | None:
        rows = c.execute("SELECT record FROM principals WHERE name = ? AND record IS NOT NULL",
                         (name,)).fetchall()
        return json.loads(rows[0][0]) if rows else None

    @staticmethod
    def _live_version(c: sqlite3.Connection, name: str) -> int | None:
        rows = c.execute("SELECT version FROM principals WHERE name = ? AND record IS NOT NULL",
                         (name,)).fetchall()
        return rows[0][0] if rows else None

    @staticmethod
    def _delete_unlisted(c: sqlite3.Connection, name: str, keep: set[int]) -> int:
        """Delete key handles of ``name`` whose kvno is not in ``keep``; returns the count."""
        doomed = []
        for (handle,) in c.execute("SELECT handle FROM shares WHERE handle >= ? AND handle < ?",
                                   _range(hnames.principal_prefix(name))):
            key = hnames.try_parse(handle)
            if key is not None and key.kvno not in keep:
                doomed.append((handle,))
        c.executemany("DELETE FROM shares WHERE handle = ?", doomed)
        return len(doomed)

    def _scrub(self) -> None:
        """Drop old WAL frames (they may hold deleted shares) once they are checkpointed."""
        with self._lock:
            self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")


def open_store(spec: str, base: str | os.PathLike | None = None) -> ShareStore:
    """The store a node config names: ``"memory"`` or ``"sqlite:<path>"`` (a relative path is
    taken from ``base``, the config file's directory). For ``mpc.node``'s ``store`` key."""
    from mpc.node import MemoryShareStore

    if spec == "memory":
        return MemoryShareStore()
    kind, sep, where = spec.partition(":")
    if kind != "sqlite" or not sep or not where:
        raise ValueError(f"unsupported share store {spec!r} (use \"memory\" or "
                         "\"sqlite:<path>\")")
    path = Path(where)
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return SqliteShareStore(path)


# -- records -----------------------------------------------------------------------------------

def canonical_record(name: str, record: Mapping[str, Any]) -> str:
    """Check a principal record and return its canonical JSON (sorted keys, no spaces).

    Fields: ``name`` (must equal ``name``), ``kvno``, ``keys`` (list of ``{etype, kvno, salt
    (hex), s2kparams (hex or null)}``; the record's kvno among them unless empty; older kvnos
    may be kept), ``attributes`` (MIT flag names), ``max_life``, ``max_renewable_life``,
    ``expiration``, ``pw_expiration``, ``created``, ``modified`` (int seconds or null),
    ``extra`` (JSON object). ``version`` is ignored (the store assigns it). Anything else is
    refused: a strict shape is what keeps key bytes out of the metadata.
    """
    if not isinstance(record, Mapping):
        raise BadRecord("record must be a JSON object")
    unknown = set(record) - _RECORD_FIELDS
    if unknown:
        raise BadRecord(f"unknown record fields {sorted(unknown)}")
    if record.get("name") != name:
        raise BadRecord(f"record name does not match {name!r}")
    kvno = _uint32(record.get("kvno"), "kvno")
    keys_in = record.get("keys")
    if not isinstance(keys_in, list):
        raise BadRecord("keys must be a list")
    keys, seen = [], set()
    for k in keys_in:
        if not isinstance(k, Mapping) or not {"etype", "kvno", "salt"} <= set(k) <= _KEY_FIELDS:
            raise BadRecord("each key needs exactly etype, kvno, salt and optional s2kparams")
        entry = {"etype": _uint32(k["etype"], "etype"), "kvno": _uint32(k["kvno"], "key kvno"),
                 "salt": _hex(k["salt"], "salt"),
                 "s2kparams": None if k.get("s2kparams") is None
                 else _hex(k["s2kparams"], "s2kparams")}
        if entry["etype"] > hnames.MAX_ETYPE:
            raise BadRecord("etype out of range")
        if entry["kvno"] > kvno:
            raise BadRecord("a key's kvno is above the record's kvno")
        if (entry["kvno"], entry["etype"]) in seen:
            raise BadRecord("duplicate (kvno, etype) in keys")
        seen.add((entry["kvno"], entry["etype"]))
        keys.append(entry)
    if keys and kvno not in {k["kvno"] for k in keys}:
        raise BadRecord("no key has the record's kvno")
    attributes = record.get("attributes", [])
    if not isinstance(attributes, list | tuple | set | frozenset) or not all(
            isinstance(a, str) for a in attributes):
        raise BadRecord("attributes must be a list of strings")
    out: dict[str, Any] = {"name": name, "kvno": kvno, "keys": keys,
                           "attributes": sorted(set(attributes))}
    for f in _RECORD_INTS:
        v = record.get(f)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise BadRecord(f"{f} must be an integer or null")
        out[f] = v
    extra = record.get("extra", {})
    if not isinstance(extra, Mapping):
        raise BadRecord("extra must be a JSON object")
    out["extra"] = dict(extra)
    try:
        text = json.dumps(out, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BadRecord("record is not plain JSON") from e
    if len(text.encode("utf-8")) > MAX_RECORD_BYTES:
        raise BadRecord(f"record larger than {MAX_RECORD_BYTES} bytes")
    return text


def record_from_entry(entry: PrincipalEntry, old_keys: tuple[KeyInfo, ...] | None = None
                      ) -> dict:
    """The store's record for a :class:`PrincipalEntry`.

    ``old_keys`` are keys of earlier kvnos to keep; by default those in
    ``entry.extra["old_keys"]`` (as :func:`entry_from_record` puts them), so a read-modify-
    write keeps them; pass ``()`` to drop them (their shares go at commit).
    """
    if old_keys is None:
        old_keys = tuple(entry.extra.get("old_keys", ()))
    return {
        "name": entry.name,
        "kvno": entry.kvno,
        "keys": [{"etype": k.etype, "kvno": k.kvno, "salt": k.salt.hex(),
                  "s2kparams": None if k.s2kparams is None else k.s2kparams.hex()}
                 for k in (*entry.keys, *old_keys)],
        "attributes": sorted(entry.attributes),
        **{f: getattr(entry, f) for f in _RECORD_INTS},
        "extra": {k: v for k, v in entry.extra.items() if k not in ("version", "old_keys")},
    }


def entry_from_record(record: Mapping[str, Any]) -> PrincipalEntry:
    """A record (as :meth:`SqliteShareStore.principal` returns it) as a PrincipalEntry.

    ``keys`` holds the current kvno's keys in record order; keys of older kvnos go to
    ``extra["old_keys"]``, the store version to ``extra["version"]``.
    """
    def info(k: Mapping[str, Any]) -> KeyInfo:
        s2k = k.get("s2kparams")
        return KeyInfo(k["etype"], k["kvno"], bytes.fromhex(k["salt"]),
                       None if s2k is None else bytes.fromhex(s2k))

    kvno = record["kvno"]
    extra = dict(record.get("extra") or {})
    old = tuple(info(k) for k in record["keys"] if k["kvno"] != kvno)
    if old:
        extra["old_keys"] = old
    if "version" in record:
        extra["version"] = record["version"]
    return PrincipalEntry(
        name=record["name"], kvno=kvno,
        keys=tuple(info(k) for k in record["keys"] if k["kvno"] == kvno),
        attributes=frozenset(record.get("attributes") or ()),
        **{f: record.get(f) for f in _RECORD_INTS}, extra=extra)


# -- helpers ---------------------------------------------------------------------------------

def _make_private_dirs(directory: Path) -> None:
    """Create missing directories 0700 (explicit chmod: the umask may be wider)."""
    missing = []
    d = directory.absolute()
    while not d.exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)


def _create_private_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _range(prefix: str) -> tuple[str, str]:
    """(lo, hi) such that lo <= h < hi iff h starts with ``prefix`` (which ends in '/')."""
    assert prefix.endswith("/")
    return prefix, prefix[:-1] + chr(ord("/") + 1)


def _exists(c: sqlite3.Connection, table: str, handle: str, txid: str | None = None) -> bool:
    if table == "staged":
        q, args = "SELECT 1 FROM staged WHERE txid = ? AND handle = ?", (txid, handle)
    else:
        q, args = "SELECT 1 FROM shares WHERE handle = ?", (handle,)
    return c.execute(q, args).fetchone() is not None


def _share_row(handle: str, share: StoredShare) -> tuple[str, int, bytes, bytes]:
    if not isinstance(handle, str) or not 0 < len(handle.encode("utf-8")) <= hnames.MAX_HANDLE_LEN:
        raise BadInput(f"handle must be 1..{hnames.MAX_HANDLE_LEN} bytes")
    n_bits = getattr(share, "n_bits", None)
    own, nxt = getattr(share, "own", None), getattr(share, "next", None)
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or not 0 < n_bits <= MAX_SHARE_BITS:
        raise BadInput(f"share for {handle!r}: bad n_bits")
    nbytes = (n_bits + 7) // 8
    if not isinstance(own, bytes | bytearray) or not isinstance(nxt, bytes | bytearray) or \
            len(own) != nbytes or len(nxt) != nbytes:
        raise BadInput(f"share for {handle!r}: length does not match n_bits")
    return handle, n_bits, bytes(own), bytes(nxt)


def _check_txid(txid: str) -> None:
    if not isinstance(txid, str) or not 0 < len(txid) <= MAX_TXID_LEN or \
            not txid.isprintable():
        raise BadInput(f"txid must be 1..{MAX_TXID_LEN} printable characters")


def _uint32(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**32 - 1:
        raise BadRecord(f"{what} must be an integer in 0..2^32-1")
    return value


def _hex(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRecord(f"{what} must be a hex string")
    try:
        return bytes.fromhex(value).hex()
    except ValueError as e:
        raise BadRecord(f"{what} must be a hex string") from e


def _refuse_share_bytes_in_record(rec_json: str, rows: list[tuple]) -> None:
    """Defence in depth: a record that quotes a staged share (in hex) is refused."""
    text = rec_json.lower()
    for *_, own, nxt in rows:
        for blob in (own, nxt):
            if len(blob) >= 8 and blob.hex() in text:
                raise BadRecord("record contains share bytes")


def _digest(name: str, rec_json: str | None, rows: list[tuple]) -> str:
    """Fingerprint of a prepared change, to recognise a retry with the same content."""
    h = hashlib.sha256()

    def field(b: bytes) -> None:
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)

    field(name.encode("utf-8"))
    field(b"\x00" if rec_json is None else b"\x01" + rec_json.encode("utf-8"))
    for _, handle, n_bits, own, nxt in rows:
        field(handle.encode("utf-8"))
        field(n_bits.to_bytes(4, "big"))
        field(own)
        field(nxt)
    return h.hexdigest()
