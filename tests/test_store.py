"""The node's persistent share store (mpc/store.py) and handle names (mpc/handles.py).

Covers the ShareStore protocol (against the in-memory store too), two-phase principal
changes with idempotent retries and conflicts, superseded-kvno deletion, reopen, file modes,
and durability under SIGKILL: a real subprocess commits versioned records and shares while
the test kills it at random moments and checks the invariants after every kill.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kdc.keyservice.base import KeyInfo, PrincipalEntry
from mpc import handles as H
from mpc.node import MAX_HANDLE_LEN, MemoryShareStore, StoredShare
from mpc.store import (
    BadInput,
    BadRecord,
    Conflict,
    Incomplete,
    SqliteShareStore,
    StoreClosed,
    UnknownTransaction,
    entry_from_record,
    open_store,
    record_from_entry,
)

ROOT = Path(__file__).resolve().parent.parent
ALICE = "alice@EXAMPLE.COM"
HTTP = "HTTP/web.example.com@EXAMPLE.COM"


def share(n_bits: int = 128) -> StoredShare:
    n = (n_bits + 7) // 8
    return StoredShare(n_bits, os.urandom(n), os.urandom(n))


def record(name: str, kvno: int, *, kvnos: tuple[int, ...] | None = None,
           etypes: tuple[int, ...] = (18,), **more) -> dict:
    return {"name": name, "kvno": kvno,
            "keys": [{"etype": e, "kvno": k, "salt": name.encode().hex(), "s2kparams": None}
                     for k in (kvnos or (kvno,)) for e in etypes],
            "attributes": ["REQUIRES_PRE_AUTH"], "max_life": 36000, **more}


def key_material(name: str, kvno: int, etype: int = 18, usages=(1, 3)) -> dict:
    names = [H.base_key(name, kvno, etype)]
    for u in usages:
        names += H.usage_material(name, kvno, etype, u)
    return {h: share(1408 if h.endswith("/ke") else 160) for h in names}


def secrets_of(shares: dict) -> list[str]:
    return [b.hex() for s in shares.values() for b in (s.own, s.next)]


@pytest.fixture
def store(tmp_path):
    s = SqliteShareStore(tmp_path / "node" / "shares.db")
    yield s
    s.close()


# -- handles ---------------------------------------------------------------------------------

def test_handle_names():
    assert H.base_key(ALICE, 2, 18) == "krb/alice@EXAMPLE.COM/2/18/base"
    assert H.usage_material(ALICE, 2, 18, 3) == (
        "krb/alice@EXAMPLE.COM/2/18/u3/ke", "krb/alice@EXAMPLE.COM/2/18/u3/ki-in",
        "krb/alice@EXAMPLE.COM/2/18/u3/ki-out")
    assert H.base_key(HTTP, 1, 17) == "krb/HTTP%2Fweb.example.com@EXAMPLE.COM/1/17/base"
    assert H.principal_prefix("a%b/c@R") == "krb/a%25b%2Fc@R/"
    assert H.kvno_prefix(ALICE, 7) == "krb/alice@EXAMPLE.COM/7/"
    assert H.parse(H.usage_material(HTTP, 4, 17, 11)[2]) == H.KeyHandle(HTTP, 4, 17, "ki-out", 11)
    assert H.parse(H.base_key(HTTP, 4, 17)) == H.KeyHandle(HTTP, 4, 17, "base", None)
    assert H.MAX_HANDLE_LEN == MAX_HANDLE_LEN


@pytest.mark.parametrize("bad", [
    "node/x", "krb/alice@R/01/18/base", "krb/alice@R/1/18/bas", "krb/alice@R/1/18/u1/kx",
    "krb/alice@R/1/18/u01/ke", "krb/a%2fb@R/1/18/base", "krb/a%41@R/1/18/base",
    "krb/a b@R/1/18/base", "krb//1/18/base", "krb/a@R/-1/18/base", "krb/a@R/1/18/u/ke",
    "krb/a@R/4294967296/18/base", "krb/a%ZZ@R/1/18/base", "krb/a%FF@R/1/18/base",
])
def test_parse_refuses_non_canonical_handles(bad):
    with pytest.raises(H.BadHandle):
        H.parse(bad)
    assert H.try_parse(bad) is None


def test_handle_length_limit():
    H.check_principal("u" * 150 + "@R")
    with pytest.raises(H.BadHandle, match="256"):
        H.check_principal("u" * 300 + "@R")
    with pytest.raises(H.BadHandle):
        H.base_key("u" * 260, 1, 18)
    with pytest.raises(H.BadHandle):
        H.base_key(ALICE, -1, 18)
    with pytest.raises(H.BadHandle):
        H.base_key("", 1, 18)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40),
       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_handles_round_trip_and_prefixes_never_overlap(a, b, kvno, usage):
    try:
        H.check_principal(a)
    except H.BadHandle:
        # 40 characters of 3- and 4-byte UTF-8 escape to more than MAX_HANDLE_LEN: such a
        # name is refused whole (the admin tool asks first), never given a cut handle.
        assert len(H.principal_prefix(a).encode()) > H.MAX_HANDLE_LEN // 2
        assume(False)
    for h in (H.base_key(a, kvno, 18), *H.usage_material(a, kvno, 17, usage)):
        key = H.parse(h)
        assert key.principal == a and key.kvno == kvno and str(key) == h
        assert h.startswith(H.principal_prefix(a)) and h.isascii() and h.isprintable()
        assert (a == b) == h.startswith(H.principal_prefix(b))


# -- ShareStore protocol (the SQLite store behaves like the in-memory one) ---------------------

@pytest.fixture(params=["memory", "sqlite"])
def any_store(request, tmp_path):
    if request.param == "memory":
        yield MemoryShareStore()
        return
    s = SqliteShareStore(tmp_path / "p.db")
    yield s
    s.close()


def test_protocol_put_get_delete_handles(any_store):
    a, b = share(3), share(1408)
    assert any_store.get("x") is None and any_store.handles() == []
    any_store.put("x", a)
    any_store.put("b/y", b)
    assert any_store.get("x") == a and any_store.get("b/y") == b
    assert any_store.get("x").bits()[0].tolist() == a.bits()[0].tolist()
    assert any_store.handles() == ["b/y", "x"]
    c = share(3)
    any_store.put("x", c)  # replace
    assert any_store.get("x") == c
    assert any_store.delete("x") is True
    assert any_store.delete("x") is False
    assert any_store.get("x") is None and any_store.handles() == ["b/y"]
    assert a.own.hex() not in repr(any_store) and "redacted" in repr(any_store.get("b/y"))


def test_protocol_thread_safety(any_store):
    errors = []

    def worker(t):
        try:
            for i in range(150):
                s = StoredShare(16, bytes([t, i % 256]), bytes([i % 256, t]))
                any_store.put(f"t{t}/{i}", s)
                assert any_store.get(f"t{t}/{i}") == s
                if i % 3 == 0:
                    assert any_store.delete(f"t{t}/{i}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(any_store.handles()) == 4 * 100


def test_reads_do_not_wait_for_a_writer(store):
    a = share()
    store.put("x", a)
    holding, release, got = threading.Event(), threading.Event(), []

    def writer():
        with store._transaction("FULL") as c:  # a slow commit in progress
            c.execute("INSERT OR REPLACE INTO shares VALUES ('x', 128, ?, ?)",
                      (b"\x01" * 16, b"\x02" * 16))
            holding.set()
            release.wait(10)

    def reader():
        got.append((store.get("x"), store.handles(), store.principals()))

    w = threading.Thread(target=writer)
    w.start()
    assert holding.wait(10)
    r = threading.Thread(target=reader)
    r.start()
    r.join(10)
    finished_while_held = not r.is_alive()
    release.set()
    w.join(10)
    r.join(10)
    assert finished_while_held and got == [(a, ["x"], [])]  # the last committed snapshot
    assert store.get("x") == StoredShare(128, b"\x01" * 16, b"\x02" * 16)


def test_put_refuses_bad_shapes(store):
    with pytest.raises(BadInput):
        store.put("x" * 257, share())
    with pytest.raises(BadInput):
        store.put("x", StoredShare(9, b"\x00", b"\x00\x00"))
    with pytest.raises(BadInput):
        store.put("", share())
    with pytest.raises(BadInput):
        store.prepare("", ALICE, None)
    assert store.handles() == []


def test_put_many_is_all_or_nothing(store):
    good = {"a": share(), "b": share()}
    with pytest.raises(BadInput):
        store.put_many({**good, "c": StoredShare(8, b"", b"")})
    assert store.handles() == []
    store.put_many(good)
    assert store.handles() == ["a", "b"]


def test_open_store_from_config_spec(tmp_path):
    assert isinstance(open_store("memory"), MemoryShareStore)
    s = open_store("sqlite:node-1/shares.db", base=tmp_path)
    try:
        assert isinstance(s, SqliteShareStore) and s.path == tmp_path / "node-1" / "shares.db"
    finally:
        s.close()
    for bad in ("postgresql://x", "sqlite:", "shares.db"):
        with pytest.raises(ValueError, match="unsupported"):
            open_store(bad)


# -- files -----------------------------------------------------------------------------------

def test_file_modes_wal_and_reopen(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "deep" / "er" / "shares.db"
        s = SqliteShareStore(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "deep").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "deep" / "er").st_mode) == 0o700
    mat = key_material(ALICE, 1)
    s.prepare("t1", ALICE, record(ALICE, 1), mat)
    assert s.commit("t1") == 1
    s.prepare("t2", HTTP, record(HTTP, 1))  # left pending across the reopen
    s.put("other", share(7))
    for suffix in ("", "-wal", "-shm"):
        assert stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode) == 0o600, suffix
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreClosed):
        s.get("other")

    s2 = SqliteShareStore(path)
    assert s2.principal(ALICE)["version"] == 1 and s2.principal(HTTP) is None
    assert all(s2.get(h) == v for h, v in mat.items())
    assert s2.get("other") is not None and s2.pending() == ["t2"]
    assert s2.commit("t1") == 1  # idempotent across restarts
    s2.put(H.base_key(HTTP, 1, 18), share())
    assert s2.commit("t2") == 1 and s2.principals() == [HTTP, ALICE]
    s2.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_existing_wider_file_is_tightened(tmp_path):
    path = tmp_path / "shares.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    SqliteShareStore(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_superseded_shares_are_scrubbed_from_the_files(store, tmp_path):
    old = key_material(ALICE, 1)
    store.prepare("t1", ALICE, record(ALICE, 1), old)
    store.commit("t1")
    new = key_material(ALICE, 2)
    store.prepare("t2", ALICE, record(ALICE, 2), new)
    store.commit("t2")
    files = b"".join(p.read_bytes() for p in store.path.parent.iterdir())
    assert all(bytes.fromhex(x) not in files for x in secrets_of(old))
    store.close()
    files = store.path.read_bytes()  # everything checkpointed into the main file
    assert all(bytes.fromhex(x) in files for x in secrets_of(new))  # stored there by design
    assert all(bytes.fromhex(x) not in files for x in secrets_of(old))


# -- two-phase changes -----------------------------------------------------------------------

def test_prepare_commit_makes_record_and_shares_visible_together(store):
    mat = key_material(ALICE, 1)
    store.prepare("t1", ALICE, record(ALICE, 1), mat)
    assert store.pending() == ["t1"]
    assert store.principal(ALICE) is None and store.record_version(ALICE) is None
    assert store.handles() == [] and store.get(H.base_key(ALICE, 1, 18)) is None
    assert store.transaction("t1")["state"] == "prepared"
    assert store.commit("t1") == 1
    rec = store.principal(ALICE)
    assert rec["version"] == 1 and rec["kvno"] == 1 and rec["max_life"] == 36000
    assert rec["keys"] == [{"etype": 18, "kvno": 1, "salt": ALICE.encode().hex(),
                            "s2kparams": None}]
    assert store.handles() == sorted(mat) and store.pending() == []
    assert all(store.get(h) == s for h, s in mat.items())
    assert store.transaction("t1") == {"txid": "t1", "name": ALICE, "state": "committed",
                                       "version": 1, "record": json.loads(
                                           json.dumps({k: v for k, v in rec.items()
                                                       if k != "version"}))}
    text = json.dumps(rec)
    assert all(x not in text.lower() for x in secrets_of(mat))


def test_retries_are_idempotent(store):
    mat = key_material(ALICE, 1)
    store.prepare("t1", ALICE, record(ALICE, 1), mat)
    store.prepare("t1", ALICE, record(ALICE, 1), dict(reversed(list(mat.items()))))  # no-op
    assert store.pending() == ["t1"]
    assert store.commit("t1") == 1
    store.prepare("t1", ALICE, record(ALICE, 1), mat)  # late retry of the prepare
    assert store.pending() == [] and store.commit("t1") == 1
    store.prepare("t2", ALICE, record(ALICE, 1, max_life=60))
    assert store.commit("t2") == 2 and store.commit("t1") == 1 and store.commit("t2") == 2
    assert store.principal(ALICE)["max_life"] == 60


def test_conflicts(store):
    mat = key_material(ALICE, 1)
    store.prepare("t1", ALICE, record(ALICE, 1), mat)
    with pytest.raises(Conflict, match="pending"):
        store.prepare("t2", ALICE, record(ALICE, 1))
    with pytest.raises(Conflict, match="other content"):
        store.prepare("t1", ALICE, record(ALICE, 1, max_life=5), mat)
    with pytest.raises(Conflict, match="other content"):
        store.prepare("t1", ALICE, record(ALICE, 1), {**mat, H.base_key(ALICE, 1, 18): share()})
    store.prepare("t3", HTTP, None)  # another principal is independent
    assert store.pending() == ["t1", "t3"]
    assert store.commit("t1") == 1
    with pytest.raises(Conflict, match="version 1"):
        store.prepare("t4", ALICE, record(ALICE, 2), base_version=0)
    store.prepare("t4", ALICE, record(ALICE, 1, max_life=1), base_version=1)
    store.commit("t4")
    with pytest.raises(Conflict, match="version"):
        store.prepare("t5", HTTP + "x", record(HTTP + "x", 1), base_version=3)


def test_abort_is_idempotent_and_final(store):
    mat = key_material(ALICE, 1)
    store.prepare("t1", ALICE, record(ALICE, 1), mat)
    store.abort("t1")
    store.abort("t1")
    assert store.pending() == [] and store.handles() == [] and store.principal(ALICE) is None
    with pytest.raises(Conflict, match="aborted"):
        store.commit("t1")
    with pytest.raises(Conflict, match="aborted"):
        store.prepare("t1", ALICE, record(ALICE, 1), mat)
    store.abort("never-seen")  # presumed abort: a late prepare is refused
    with pytest.raises(Conflict, match="aborted"):
        store.prepare("never-seen", ALICE, record(ALICE, 1))
    with pytest.raises(UnknownTransaction):
        store.commit("nope")
    store.prepare("t2", ALICE, record(ALICE, 1), mat)  # the name is free again
    store.commit("t2")
    with pytest.raises(Conflict, match="committed"):
        store.abort("t2")
    assert store.principal(ALICE)["version"] == 1


def test_commit_needs_every_listed_base_share(store):
    store.prepare("t1", ALICE, record(ALICE, 1, etypes=(18, 17)),
                  {H.base_key(ALICE, 1, 18): share()})
    with pytest.raises(Incomplete, match=r"1/17/base"):
        store.commit("t1")
    assert store.pending() == ["t1"] and store.principal(ALICE) is None
    assert store.handles() == []  # nothing applied
    store.put(H.base_key(ALICE, 1, 17), share())  # e.g. a STORE frame after the prepare
    assert store.commit("t1") == 1
    assert store.handles() == [H.base_key(ALICE, 1, 17), H.base_key(ALICE, 1, 18)]


def test_key_change_deletes_superseded_kvno_atomically(store):
    old = key_material(ALICE, 1)
    store.prepare("t1", ALICE, record(ALICE, 1), old)
    store.commit("t1")
    bystanders = {**key_material(ALICE + "X", 1), **key_material("alice/admin@EXAMPLE.COM", 1),
                  "unrelated": share()}
    store.put_many(bystanders)
    new = key_material(ALICE, 2, usages=(1, 3, 7))
    store.prepare("t2", ALICE, record(ALICE, 2), new)
    assert all(store.get(h) == s for h, s in old.items())  # still the old version until commit
    assert store.principal(ALICE)["kvno"] == 1
    assert store.commit("t2") == 2
    assert store.principal(ALICE)["kvno"] == 2
    assert all(store.get(h) is None for h in old)
    assert all(store.get(h) == s for h, s in {**new, **bystanders}.items())
    assert store.handles() == sorted({**new, **bystanders})


def test_keepold_record_keeps_listed_older_kvno(store):
    k1, k2 = key_material(HTTP, 1), key_material(HTTP, 2)
    store.prepare("t1", HTTP, record(HTTP, 1), k1)
    store.commit("t1")
    store.prepare("t2", HTTP, record(HTTP, 2, kvnos=(2, 1)), k2)
    store.commit("t2")
    assert store.handles() == sorted({**k1, **k2})
    entry = store.entry(HTTP)
    assert entry.kvno == 2 and [k.kvno for k in entry.keys] == [2]
    assert [k.kvno for k in entry.extra["old_keys"]] == [1] and entry.extra["version"] == 2
    store.prepare("t3", HTTP, record(HTTP, 2))  # drop kvno 1
    store.commit("t3")
    assert store.handles() == sorted(k2)


def test_delete_and_re_add(store):
    mat = key_material(ALICE, 3)
    store.prepare("t1", ALICE, record(ALICE, 3), mat)
    store.commit("t1")
    with pytest.raises(BadRecord):
        store.prepare("t2", ALICE, None, {H.base_key(ALICE, 3, 18): share()})
    store.prepare("t2", ALICE, None)
    assert store.principal(ALICE) is not None  # deletion not visible before commit
    assert store.commit("t2") == 2
    assert store.principal(ALICE) is None and store.principals() == []
    assert store.record_version(ALICE) is None and store.handles() == []
    assert store.commit("t2") == 2
    again = key_material(ALICE, 1)
    store.prepare("t3", ALICE, record(ALICE, 1), again)
    assert store.commit("t3") == 3  # versions never go back, even across a deletion
    assert store.handles() == sorted(again)


def test_reserve_then_put_then_commit_and_abort_cleans_up(store):
    k1 = key_material(ALICE, 1)
    store.prepare("t1", ALICE, record(ALICE, 1), k1)
    store.commit("t1")
    # The recommended order: reserve the name, let STORE/keep jobs write, then commit.
    store.prepare("t2", ALICE, record(ALICE, 2))
    k2 = key_material(ALICE, 2)
    store.put_many(k2)
    assert store.orphans() == []  # covered by the pending change
    store.abort("t2")  # the attempt failed: its material goes, kvno 1 stays
    assert store.handles() == sorted(k1) and store.principal(ALICE)["kvno"] == 1
    store.put_many(k2)  # written without a prepare: orphans
    assert store.orphans() == sorted(k2)
    store.prepare("t3", ALICE, record(ALICE, 2))
    store.commit("t3")
    assert store.handles() == sorted(k2) and store.orphans() == []


def test_staged_shares_must_belong_to_the_record(store):
    with pytest.raises(BadRecord, match="not a key handle"):
        store.prepare("t1", ALICE, record(ALICE, 1), {H.base_key(HTTP, 1, 18): share()})
    with pytest.raises(BadRecord, match="kvno 2"):
        store.prepare("t1", ALICE, record(ALICE, 1), {H.base_key(ALICE, 2, 18): share()})
    with pytest.raises(BadRecord):
        store.prepare("t1", ALICE, record(ALICE, 1), {"loose": share()})
    assert store.pending() == []


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r.update(key="00" * 32), "unknown record fields"),
    (lambda r: r["keys"][0].update(contents="00" * 32), "exactly etype"),
    (lambda r: r.update(name="mallory@EXAMPLE.COM"), "name"),
    (lambda r: r.update(kvno=-1), "kvno"),
    (lambda r: r.update(kvno=True), "kvno"),
    (lambda r: r["keys"][0].update(salt="xyz"), "hex"),
    (lambda r: r["keys"][0].update(kvno=9), "above"),
    (lambda r: r.update(kvno=2), "no key has"),
    (lambda r: r["keys"].append(dict(r["keys"][0])), "duplicate"),
    (lambda r: r.update(attributes="REQUIRES_PRE_AUTH"), "attributes"),
    (lambda r: r.update(max_life="10h"), "max_life"),
    (lambda r: r.update(extra={"x": float("nan")}), "plain JSON"),
    (lambda r: r.update(extra={"x": "y" * 70000}), "larger"),
])
def test_records_have_a_strict_shape(store, mutate, match):
    r = record(ALICE, 1)
    mutate(r)
    with pytest.raises(BadRecord, match=match):
        store.prepare("t1", ALICE, r)
    assert store.pending() == []


def test_no_share_bytes_in_records_or_errors(store):
    mat = key_material(ALICE, 1)
    leaky = record(ALICE, 1, extra={"note": next(iter(mat.values())).own.hex()})
    with pytest.raises(BadRecord, match="share bytes") as e1:
        store.prepare("t1", ALICE, leaky, mat)
    store.prepare("t1", ALICE, record(ALICE, 1), mat)
    with pytest.raises(Conflict) as e2:
        store.prepare("t1", ALICE, record(ALICE, 1), key_material(ALICE, 1))
    errors = str(e1.value) + repr(e1.value) + str(e2.value) + repr(e2.value) + repr(store)
    assert all(x not in errors.lower() for x in secrets_of(mat))


def test_queries_and_entry_conversion(store):
    names = [ALICE, "bob@EXAMPLE.COM", HTTP, "HTTP/db.example.com@EXAMPLE.COM",
             "krbtgt/EXAMPLE.COM@EXAMPLE.COM", "carol@OTHER.ORG"]
    for i, n in enumerate(names):
        store.prepare(f"t{i}", n, record(n, 1), {H.base_key(n, 1, 18): share()})
        store.commit(f"t{i}")
    assert store.principals() == sorted(names)
    assert store.principals("HTTP/*") == ["HTTP/db.example.com@EXAMPLE.COM", HTTP]
    assert store.principals("*@OTHER.ORG") == ["carol@OTHER.ORG"]
    assert store.principals("[ab]*") == [ALICE, "bob@EXAMPLE.COM"]
    assert store.principals("nobody*") == []
    entry = PrincipalEntry(
        name=HTTP, kvno=3, keys=(KeyInfo(18, 3, b"salt", b"\x00\x00\x10\x00"),
                                 KeyInfo(17, 3, b"salt")),
        attributes=frozenset({"REQUIRES_PRE_AUTH", "DISALLOW_FORWARDABLE"}),
        max_life=3600, max_renewable_life=None, expiration=2_000_000_000, created=10,
        modified=20, extra={"policy": "default"})
    rec = record_from_entry(entry, old_keys=(KeyInfo(18, 2, b"salt"),))
    store.prepare("tx", HTTP, rec, {H.base_key(HTTP, 3, 18): share(),
                                    H.base_key(HTTP, 3, 17): share(),
                                    H.base_key(HTTP, 2, 18): share()})
    assert store.commit("tx") == 2
    back = store.entry(HTTP)
    assert back == entry  # extra is not compared by PrincipalEntry
    assert back.keys[0].s2kparams == b"\x00\x00\x10\x00"
    assert back.extra == {"policy": "default", "old_keys": (KeyInfo(18, 2, b"salt"),),
                          "version": 2}
    assert entry_from_record(record_from_entry(back)) == entry
    again = record_from_entry(back)  # read-modify-write keeps the old kvno
    assert [k["kvno"] for k in again["keys"]] == [3, 3, 2] and "version" not in again["extra"]
    assert [k["kvno"] for k in record_from_entry(back, old_keys=())["keys"]] == [3, 3]
    assert store.entry("nobody@EXAMPLE.COM") is None


# -- kill -9 durability --------------------------------------------------------------------

WORKER = r"""
import hashlib, random, sys
from mpc import handles as H
from mpc.node import StoredShare
from mpc.store import Incomplete, SqliteShareStore

path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
NAMES = ["alice@R", "HTTP/web.r@R", "krbtgt/R@R", "bob@R"]
store = SqliteShareStore(path)

def material(name, kvno, attempt):
    out = {}
    for etype in (17, 18):
        hs = [H.base_key(name, kvno, etype)]
        for usage in (1, 3, 7):
            hs += H.usage_material(name, kvno, etype, usage)
        for h in hs:
            d = hashlib.sha256(f"{h}|{attempt}".encode()).digest()
            out[h] = StoredShare(128, d[:16], d[16:])
    return out

for txid in store.pending():  # recover like a coordinator: finish or abort
    if rng.random() < 0.5:
        try:
            store.commit(txid)
        except Incomplete:
            store.abort(txid)
    else:
        store.abort(txid)
kvno = 1 + max([H.parse(h).kvno for h in store.handles()]
               + [store.principal(n)["kvno"] for n in store.principals()] + [0])
print("ready", flush=True)
for i in range(2000):
    name, txid, attempt = rng.choice(NAMES), f"{seed}-{i}", f"{seed}-{i}"
    cur = store.principal(name)
    if cur is not None and rng.random() < 0.1:
        store.prepare(txid, name, None)
        store.commit(txid)
        print(i, flush=True)
        continue
    keys = [{"etype": e, "kvno": kvno, "salt": name.encode().hex()} for e in (17, 18)]
    attempts = {str(kvno): attempt}
    if cur is not None and rng.random() < 0.3:  # keep the previous kvno too
        keys += [k for k in cur["keys"] if k["kvno"] == cur["kvno"]]
        attempts[str(cur["kvno"])] = cur["extra"]["attempts"][str(cur["kvno"])]
    rec = {"name": name, "kvno": kvno, "keys": keys, "attributes": [], "modified": i,
           "extra": {"attempts": attempts}}
    mat = material(name, kvno, attempt)
    staged = mat if rng.random() < 0.5 else {}
    store.prepare(txid, name, rec, staged)
    if not staged:  # reserved the name; now the shares one by one, like keep jobs
        for h, s in mat.items():
            store.put(h, s)
    if rng.random() < 0.2:
        store.prepare(txid, name, rec, staged)  # a retried prepare
    if rng.random() < 0.05:
        store.abort(txid)
    else:
        store.commit(txid)
        if rng.random() < 0.2:
            store.commit(txid)  # retried
    kvno += 1
    print(i, flush=True)
print("done", flush=True)
"""


def _expected(handle: str, attempt: str) -> StoredShare:
    d = hashlib.sha256(f"{handle}|{attempt}".encode()).digest()
    return StoredShare(128, d[:16], d[16:])


def _check_invariants(path: Path, versions: dict[str, int]) -> tuple[int, int]:
    """Everything a node must guarantee after a crash; returns (principals, pending)."""
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, suffix
    s = SqliteShareStore(path)  # opens (runs WAL recovery)
    try:
        raw = sqlite3.connect(path)
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        raw.close()
        pending: dict[str, dict | None] = {}
        for txid in s.pending():
            tx = s.transaction(txid)
            pending[tx["name"]] = tx["record"]
        all_secrets = [x for h in s.handles() for x in
                       (s.get(h).own.hex(), s.get(h).next.hex())]
        for name in {H.parse(h).principal for h in s.handles()} | set(s.principals()):
            rec = s.principal(name)
            listed = set() if rec is None else {k["kvno"] for k in rec["keys"]}
            if rec is not None:
                assert rec["version"] >= versions.get(name, 0)  # committed work never lost
                versions[name] = rec["version"]
                text = json.dumps(rec).lower()
                assert not any(x in text for x in all_secrets)
                for key in rec["keys"]:  # every listed key complete and of one attempt
                    attempt = rec["extra"]["attempts"][str(key["kvno"])]
                    hs = [H.base_key(name, key["kvno"], key["etype"])]
                    for usage in (1, 3, 7):
                        hs += H.usage_material(name, key["kvno"], key["etype"], usage)
                    for h in hs:
                        assert s.get(h) == _expected(h, attempt), h
            # No superseded or foreign-version shares: only listed kvnos, plus the kvno a
            # pending (invisible) change is writing.
            staged = pending.get(name)
            extra_ok = set() if staged is None else {staged["kvno"]}
            if staged is not None:
                assert rec is None or staged["kvno"] > rec["kvno"]  # not visible yet
            for h in s.handles():
                key = H.parse(h)
                if key.principal == name:
                    assert key.kvno in listed | extra_ok, h
        return len(s.principals()), len(pending)
    finally:
        s.close()


def _read_progress(proc: subprocess.Popen, want: int, timeout: float) -> int:
    """Read progress lines until ``want`` iterations were reported (bounded by timeout)."""
    seen, deadline, buf = -1, time.monotonic() + timeout, b""
    fd = proc.stdout.fileno()
    while seen < want and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.isdigit():
                seen = int(line)
            elif line == b"done":
                return 10**9
    return seen


def test_survives_sigkill_at_random_moments(tmp_path):
    path = tmp_path / "node-0" / "shares.db"
    rng = random.Random(20261127)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    versions: dict[str, int] = {}
    progress, pending_seen = 0, 0
    for round_no in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(round_no + 1)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            seen = _read_progress(proc, rng.randint(5, 120), timeout=30)
            time.sleep(rng.uniform(0, 0.01))
        finally:
            proc.send_signal(signal.SIGKILL)  # our own child, by PID
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")[-2000:]
        assert seen >= 0, err.decode(errors="replace")[-2000:]
        progress += seen
        _, pending = _check_invariants(path, versions)
        pending_seen += pending
    assert progress >= 8 * 5 and max(versions.values()) >= 5  # the loop really ran
