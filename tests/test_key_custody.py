"""SPEC "Threat model": no single process holds a principal's key or anything derived from it.

While the MPC realm serves logins, read the memory of the front-end and of each node process
(every readable region of /proc/PID/maps, through /proc/PID/mem) and every file they wrote,
and search for every long-term and derived key of principals whose passwords this test
chose (alice, bob, demo) and of the HTTP service (key known from its keytab; the keytab file
itself is the service's by design and not searched):

    K (the long-term key), and for usages 1, 2, 3, 6, 7, 8, 9: Kc, Ke, Ki (RFC 3961 §5.3 DK),
    the AES round-key schedule of each Ke (FIPS-197 §5.2) and the HMAC-SHA1 ipad/opad
    states of each Ki (RFC 2104) - every 16-byte piece of each.

None may be found. Then the stores: two nodes' SQLite files together reconstruct a dealt key
(x_0 ^ x_1 ^ x_2 = K, Araki et al. 2016 §2.1), no single node's file does.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from clients.errors import ClientError
from clients.keytab import read_keytab
from kdc import crypto
from kdc.crypto import KC, KE, KI, derive_key, usage_constant
from mpc import handles
from tests.mpc_realm import CIRCUIT_CACHE, REALM, SERVICE, running_mpc_realm
from tests.test_circuits_kerberos import plain_expand_key, plain_hmac_states

USAGES = (1, 2, 3, 6, 7, 8, 9)
PIECE = 16  # every needle is searched as its 16-byte pieces (half a key is a leak too)
CHUNK = 1 << 24


@pytest.fixture(scope="module")
def mpc_realm(tmp_path_factory):
    yield from running_mpc_realm(tmp_path_factory)


def key_material(key: crypto.Key) -> list[bytes]:
    """K and everything derivable from it that an implementation might hold."""
    out = [key.contents]
    for usage in USAGES:
        ke = derive_key(key, usage_constant(usage, KE))
        ki = derive_key(key, usage_constant(usage, KI))
        kc = derive_key(key, usage_constant(usage, KC))
        out += [ke, ki, kc]
        out += plain_expand_key(ke)
        out += list(plain_hmac_states(ki))
    return out


def pieces(secrets: list[bytes]) -> set[bytes]:
    found = set()
    for s in secrets:
        for i in range(0, len(s) - PIECE + 1, 4):  # 4-byte steps cover SHA-1 state words too
            found.add(s[i:i + PIECE])
    return found


class Needles:
    """A set of 16-byte needles searched at every byte offset of large buffers (numpy)."""

    def __init__(self, needles: set[bytes]) -> None:
        self.needles = needles
        heads = np.array(sorted({int.from_bytes(n[:8], "little") for n in needles}),
                         dtype=np.uint64)
        self.heads = heads
        self.filter = np.zeros(1 << 16, dtype=bool)
        self.filter[(heads & np.uint64(0xFFFF)).astype(np.int64)] = True

    def search(self, data: bytes) -> list[bytes]:
        hits = []
        buf = np.frombuffer(data, dtype=np.uint8)
        for k in range(8):
            n = (len(buf) - k) // 8
            if n <= 0:
                continue
            words = buf[k:k + 8 * n].view(np.uint64)
            cand = np.nonzero(self.filter[(words & np.uint64(0xFFFF)).astype(np.int64)])[0]
            if not len(cand):
                continue
            cand = cand[np.isin(words[cand], self.heads)]
            for j in cand:
                off = k + 8 * int(j)
                piece = data[off:off + PIECE]
                if piece in self.needles:
                    hits.append(piece)
        return hits


def readable_regions(pid: int) -> list[tuple[int, int, str]]:
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)", line)
        if not m or not m.group(3).startswith("r"):
            continue
        name = m.group(4)
        if name in ("[vvar]", "[vsyscall]", "[vdso]"):
            continue
        out.append((int(m.group(1), 16), int(m.group(2), 16), name))
    return out


def search_process(pid: int, needles: Needles) -> tuple[int, list[str]]:
    """(bytes read, descriptions of hits) over every readable mapping of ``pid``."""
    total, hits = 0, []
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for start, end, name in readable_regions(pid):
            addr = start
            while addr < end:
                size = min(CHUNK + PIECE, end - addr)
                try:
                    mem.seek(addr)
                    data = mem.read(size)
                except (OSError, ValueError):
                    break
                total += len(data)
                for h in needles.search(data):
                    hits.append(f"{name or 'anon'}@{addr:#x}: {h[:4].hex()}...")
                addr += CHUNK
    return total, hits


def written_files(work: Path) -> list[Path]:
    """Every file the nodes and the front-end wrote (their directories, logs, audit, and the
    circuit cache the test realms share), except keytabs (the service's own key file by
    design)."""
    files = list(work.rglob("*")) + list(CIRCUIT_CACHE.glob("*"))
    return [p for p in files if p.is_file() and not p.name.endswith(".keytab")]


def test_no_process_or_file_holds_any_key(mpc_realm):
    secrets: list[bytes] = []
    for name, password in mpc_realm.passwords.items():
        salt = f"{REALM}{name}".encode()
        for etype in (18, 17):
            secrets += key_material(crypto.string_to_key(etype, password, salt))
    service_keys = [e.key for e in read_keytab(str(mpc_realm.keytab))]
    assert service_keys, "the HTTP keytab holds the service's keys"
    for key in service_keys:
        secrets += key_material(key)
    needles = Needles(pieces(secrets))
    assert len(needles.needles) > 1000

    # Serve logins (AS with pre-auth + TGS for HTTP) while the memory is read.
    stop = threading.Event()
    served = {"ok": 0, "err": 0}

    def logins() -> None:
        while not stop.is_set():
            try:
                client = mpc_realm.client(timeout=10)
                for name in ("bob", "alice", "demo"):
                    tgt = client.get_tgt_password(principal_of(name), mpc_realm.passwords[name])
                    client.get_service_ticket(tgt, f"{SERVICE}@{REALM}")
                    served["ok"] += 1
            except ClientError:
                served["err"] += 1

    def principal_of(name: str) -> str:
        return f"{name}@{REALM}"

    worker = threading.Thread(target=logins, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while served["ok"] < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert served["ok"] >= 3, "logins must be running during the scan"
        report = {}
        for what, pid in mpc_realm.pids().items():
            total, hits = search_process(pid, needles)
            report[what] = (total, hits)
            assert total > 10_000_000, f"{what}: read only {total} bytes of memory"
    finally:
        stop.set()
        worker.join(timeout=60)
    assert served["ok"] > 3
    for what, (total, hits) in report.items():
        print(f"{what}: {total / 1e6:.0f} MB of memory searched, {len(hits)} hits")
        assert hits == [], f"key material in the memory of {what}: {hits[:5]}"

    files = written_files(mpc_realm.work)
    assert any(p.name == "shares.db" for p in files) and any(p.name == "kdc.log" for p in files)
    for path in files:
        hits = needles.search(path.read_bytes())
        assert hits == [], f"key material in {path}"


def _shares(db: Path, handle: str) -> tuple[bytes, bytes]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT own, next FROM shares WHERE handle = ?", (handle,)).fetchone()
    finally:
        con.close()
    assert row is not None, f"{db} has no share of {handle}"
    return bytes(row[0]), bytes(row[1])


def _xor(*parts: bytes) -> bytes:
    out = bytearray(len(parts[0]))
    for p in parts:
        for i, b in enumerate(p):
            out[i] ^= b
    return bytes(out)


def test_two_node_stores_reconstruct_a_key_one_does_not(mpc_realm):
    """Node i stores (x_i, x_{i+1}); nodes i and i+1 together hold x_0, x_1, x_2 and so K;
    one node lacks x_{i+2} (uniform and independent of K): neither its shares nor their XOR
    is K."""
    name = f"bob@{REALM}"
    salt = f"{REALM}bob".encode()
    key = crypto.string_to_key(18, mpc_realm.passwords["bob"], salt).contents
    handle = handles.base_key(name, 1, 18)
    stores = [_shares(mpc_realm.node_db(i), handle) for i in range(3)]
    for i in range(3):
        own, nxt = stores[i]
        assert stores[(i + 1) % 3][0] == nxt  # replicated: x_{i+1} is on nodes i and i+1
        assert key not in (own, nxt, _xor(own, nxt))
    for i in range(3):
        j = (i + 1) % 3
        x = {i: stores[i][0], j: stores[i][1], (j + 1) % 3: stores[j][1]}
        assert _xor(x[0], x[1], x[2]) == key
