"""The MPC realm's node side: records and shares persisted per node, MPC key generation,
per-key precomputation, Kerberos encryption/decryption jobs, roles, metrics.

Three real ``mpc.node`` processes over real TLS (tests/mpc_cluster.py), each with its own
SQLite share store. Results are compared byte for byte with ``kdc.crypto`` given the same
confounder; no timing is asserted.
"""

from __future__ import annotations

import asyncio
import sqlite3
import urllib.request

import pytest

from kdc import crypto
from kdc.metrics import parse_text
from mpc import handles as hnames
from mpc import jobs, krbjobs, registry
from mpc.admin_client import AdminClient, AdminError, SyncAdminClient
from mpc.circuits.kerberos import encrypt_class
from mpc.client import AsyncMpcClient, Handle, Handles, MpcClient, MpcJobError
from tests.mpc_cluster import MpcCluster, wait_until

REALM = "EXAMPLE.COM"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = MpcCluster(tmp_path_factory.mktemp("mpc-admin")).start()
    try:
        with MpcClient(c.client_config, timeout=10.0) as probe:
            probe.wait_ready(timeout=60)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def admin(cluster):
    with SyncAdminClient(cluster.client_config) as a:
        yield a


def record(name: str, kvno: int, etypes: tuple[int, ...] = (18,)) -> dict:
    return {"name": name, "kvno": kvno,
            "keys": [{"etype": e, "kvno": kvno, "salt": (REALM + name.split("@")[0]).encode()
                      .hex(), "s2kparams": None} for e in etypes],
            "attributes": ["requires_preauth"], "max_life": 36000,
            "max_renewable_life": 604800, "expiration": None, "pw_expiration": None,
            "created": 1_700_000_000, "modified": 1_700_000_000, "extra": {}}


def register(admin, name: str, keys: dict[int, bytes | None], kvno: int = 1) -> int:
    """prepare -> deal (or generate in MPC) -> precompute -> commit, as the admin tool does."""
    txid = f"tx-{name}-{kvno}"
    admin.prepare(txid, name, record(name, kvno, tuple(keys)))
    try:
        for etype, key in keys.items():
            handle = hnames.base_key(name, kvno, etype)
            if key is None:
                admin.generate_random_key(handle, 8 * crypto.profile(etype).key_bytes)
            else:
                admin.store_key(handle, bytearray(key))
            admin.precompute(name, kvno, etype)
        return admin.commit(txid)
    except BaseException:
        admin.abort(txid)
        raise


def node_shares(cluster, party: int, handle: str) -> tuple[bytes, bytes]:
    """(own, next) as node ``party`` stores them in its SQLite file."""
    con = sqlite3.connect(f"file:{cluster.store_path(party)}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT own, next FROM shares WHERE handle = ?", (handle,)).fetchone()
    finally:
        con.close()
    assert row is not None, f"node {party} has no {handle}"
    return bytes(row[0]), bytes(row[1])


def xor(*parts: bytes) -> bytes:
    out = bytearray(len(parts[0]))
    for p in parts:
        for i, b in enumerate(p):
            out[i] ^= b
    return bytes(out)


# -- records, two-phase, persistence ------------------------------------------------------------

def test_two_phase_registration_survives_restart(cluster, admin):
    name = f"alice@{REALM}"
    key = crypto.string_to_key(18, "alice-password", REALM + "alice")
    assert admin.lookup(name) is None
    admin.prepare("tx-a1", name, record(name, 1))
    assert "tx-a1" in admin.pending()
    assert admin.lookup(name) is None  # prepared is not visible
    admin.store_key(hnames.base_key(name, 1, 18), bytearray(key.contents))
    admin.precompute(name, 1, 18)
    admin.precompute(name, 1, 18)  # a retry recomputes the same material
    assert admin.commit("tx-a1") == 1
    assert admin.commit("tx-a1") == 1  # idempotent retry
    got = admin.lookup(name)
    assert got["version"] == 1 and got["kvno"] == 1 and got["keys"][0]["etype"] == 18
    assert name in admin.list("alice*")
    assert "tx-a1" not in admin.pending()
    # A second prepare against a stale base version is refused by every node.
    with pytest.raises(AdminError) as e:
        admin.prepare("tx-a2", name, record(name, 2), base_version=0)
    assert e.value.code == "CONFLICT"
    admin.abort("tx-a2")

    before = node_shares(cluster, 1, hnames.base_key(name, 1, 18))
    cluster.kill_node(1)  # kill -9: SQLite WAL keeps what the node acknowledged
    cluster.start_node(1)
    with MpcClient(cluster.client_config, timeout=10.0) as probe:
        probe.wait_ready(timeout=60)
    assert admin.lookup(name) == got
    assert node_shares(cluster, 1, hnames.base_key(name, 1, 18)) == before

    async def encrypt_after_restart() -> list[bytes]:
        front = AsyncMpcClient(cluster.client_config, "frontend", timeout=2.0)
        try:
            return await krbjobs.encrypt_many(
                front, [(hnames.usage_material(name, 1, 18, 3), 3, 18, b"as-rep", b"k" * 16)])
        finally:
            await front.close()

    assert asyncio.run(encrypt_after_restart()) == [crypto.encrypt(key, 3, b"as-rep", b"k" * 16)]


def test_abort_leaves_nothing(cluster, admin):
    name = f"bob@{REALM}"
    admin.prepare("tx-b1", name, record(name, 1))
    admin.store_key(hnames.base_key(name, 1, 18), bytearray(32))
    admin.abort("tx-b1")
    admin.abort("tx-b1")  # idempotent
    assert admin.lookup(name) is None
    with pytest.raises(AdminError) as e:
        admin.commit("tx-b1")
    assert e.value.code == "CONFLICT"
    digests = MpcClient(cluster.client_config, timeout=10.0)
    try:
        for d in digests.debug_digests():
            assert not any(h.startswith(hnames.principal_prefix(name)) for h in d["handles"])
    finally:
        digests.close()


# -- storage: each node holds only its two shares -----------------------------------------------

def test_each_node_stores_only_its_two_shares(cluster, admin):
    name = f"carol@{REALM}"
    key = crypto.random_key(18).contents
    register(admin, name, {18: key})
    handle = hnames.base_key(name, 1, 18)
    stored = [node_shares(cluster, i, handle) for i in range(3)]
    x = [stored[i][0] for i in range(3)]  # node i's first share is x_i
    for i in range(3):
        assert stored[i][1] == x[(i + 1) % 3]  # its second is x_{i+1}
        assert key not in (stored[i][0], stored[i][1], xor(*stored[i]))
        raw = cluster.store_path(i).read_bytes()
        assert key not in raw
    assert xor(*x) == key


# -- Kerberos jobs through the front-end role ---------------------------------------------------

async def test_encrypt_decrypt_equal_reference_for_dealt_key(cluster, admin):
    name = f"HTTP/svc.example.com@{REALM}"
    keys = {18: crypto.random_key(18), 17: crypto.random_key(17)}
    await asyncio.to_thread(register, admin, name, {e: k.contents for e, k in keys.items()})
    front = AsyncMpcClient(cluster.client_config, "frontend", timeout=2.0)
    try:
        cases = []
        for etype, usage, size in [(18, 2, 0), (18, 2, 1), (18, 2, 100), (18, 3, 100),
                                   (17, 1, 21), (18, 2, 101), (18, 2, 95)]:
            conf = bytes([etype, usage, size % 256]) * 5 + b"!"
            plain = bytes((7 * i + size) % 256 for i in range(size))
            key = hnames.usage_material(name, 1, etype, usage)
            cases.append((key, usage, etype, plain, conf))
        got = await krbjobs.encrypt_many(front, cases)
        for (_, usage, etype, plain, conf), ct in zip(cases, got, strict=True):
            assert ct == crypto.encrypt(keys[etype], usage, plain, conf)
        ref = [crypto.encrypt(keys[etype], usage, plain) for _, usage, etype, plain, _ in cases]
        dec_items = [(k, u, e, c) for (k, u, e, _, _), c in zip(cases, ref, strict=True)]
        tampered = bytearray(ref[2])
        tampered[5] ^= 0x10
        dec_items.append((cases[2][0], 2, 18, bytes(tampered)))
        dec_items.append((cases[2][0], 2, 18, ref[2][:20]))  # too short for conf + tag
        dec_items.append((hnames.usage_material(name, 1, 18, 3), 3, 18, ref[2]))  # wrong usage
        out = await krbjobs.decrypt_many(front, dec_items)
        assert out[: len(cases)] == [plain for _, _, _, plain, _ in cases]
        assert out[len(cases):] == [None, None, None]
        # A KeyRef-like object instead of the handle triple works the same way.
        ref_like = type("Ref", (), {"principal": name, "kvno": 1, "etype": 18})()
        again = await krbjobs.encrypt_many(front, [(ref_like, 2, 18, b"x" * 10, b"c" * 16)])
        assert again == [crypto.encrypt(keys[18], 2, b"x" * 10, b"c" * 16)]
        # LOOKUP over the job protocol, as the KDC's key service does.
        entry = await krbjobs.lookup(front, name)
        assert entry.kvno == 1 and sorted(k.etype for k in entry.keys) == [17, 18]
        assert await krbjobs.lookup(front, f"nobody@{REALM}") is None
    finally:
        await front.close()


async def test_pair_job_equals_reference_and_separate_jobs(cluster, admin):
    """krb-pair: a login's PA-ENC-TIMESTAMP decryption and its reply's encryptions in ONE
    job; each side padded with copies of its first item when the counts differ."""
    name = f"pat@{REALM}"
    key = crypto.random_key(18)
    await asyncio.to_thread(register, admin, name, {18: key.contents})
    front = AsyncMpcClient(cluster.client_config, "frontend", timeout=2.0)
    try:
        pa_key, rep_key = (hnames.usage_material(name, 1, 18, u) for u in (1, 3))
        stamps = [b"stamp-%d" % i + bytes(13) for i in range(3)]
        cts = [crypto.encrypt(key, 1, s) for s in stamps]
        forged = bytearray(cts[1])
        forged[-1] ^= 1
        encs = [(rep_key, 3, 18, bytes(range(i, 185 + i)), bytes([i]) * 16) for i in range(2)]
        decs = [(pa_key, 1, 18, cts[0]), (pa_key, 1, 18, bytes(forged)), (pa_key, 1, 18, cts[2])]
        for d, e in ((decs[:1], encs), (decs, encs[:1])):  # more encryptions, then more decryptions
            dec_out, enc_out = await krbjobs.pair_many(front, d, e)
            assert enc_out == [crypto.encrypt(key, 3, p, c) for _, _, _, p, c in e]
            assert dec_out == [stamps[0], None, stamps[2]][: len(d)]
            assert dec_out == await krbjobs.decrypt_many(front, d)
        with pytest.raises(ValueError):  # two decryption size classes cannot share a pair
            await krbjobs.pair_many(front, [decs[0], (pa_key, 1, 18, cts[0] + bytes(40))], encs)
    finally:
        await front.close()


async def test_mpc_generated_krbtgt_key_round_trip(cluster, admin):
    name = f"krbtgt/{REALM}@{REALM}"
    await asyncio.to_thread(register, admin, name, {18: None})
    front = AsyncMpcClient(cluster.client_config, "frontend", timeout=2.0)
    try:
        key = hnames.usage_material(name, 1, 18, 2)
        # 70 > 64 instances: two words; three lengths, so three size classes (jobs).
        plains = [b"ticket-%02d" % i + b"x" * (20 * (i % 3)) for i in range(70)]
        cts = await krbjobs.encrypt_many(front, [(key, 2, 18, p, None) for p in plains])
        assert len({len(c) for c in cts}) > 1
        assert all(len(c) == 16 + len(p) + 12 for c, p in zip(cts, plains, strict=True))
        out = await krbjobs.decrypt_many(front, [(key, 2, 18, c) for c in cts])
        assert out == plains
        bad = bytearray(cts[3])
        bad[-1] ^= 1
        assert await krbjobs.decrypt_many(front, [(key, 2, 18, bytes(bad))]) == [None]
    finally:
        await front.close()
    # Each node's two shares of the generated key are consistent replicated shares, and
    # none of them alone is the key (which nobody knows, so only consistency is checked).
    handle = hnames.base_key(name, 1, 18)
    stored = [node_shares(cluster, i, handle) for i in range(3)]
    for i in range(3):
        assert stored[i][1] == stored[(i + 1) % 3][0]
    assert len({s[0] for s in stored}) == 3


# -- roles ----------------------------------------------------------------------------------------

async def test_frontend_role_is_refused_everything_but_krb_jobs(cluster, admin):
    name = f"dave@{REALM}"
    await asyncio.to_thread(register, admin, name, {17: crypto.random_key(17).contents})
    front = AsyncMpcClient(cluster.client_config, "frontend", timeout=5.0)
    base = hnames.base_key(name, 1, 17)
    ke, ki_in, ki_out = hnames.usage_material(name, 1, 17, 1)
    enc = registry.krb_encrypt_name(17, 40)
    publics = krbjobs._encrypt_public_inputs(bytes(40), *encrypt_class(1))
    try:
        attempts = {
            "store": front.store_secret("evil", b"\x01" * 16),
            "random": front.random_secret("evil", 128),
            "delete": front.delete([base]),
            "debug": front.debug_digests(),
            "keep": front.run(enc, [Handle(ke), Handle(ki_in), Handle(ki_out), *publics],
                              mode="keep", out_handles=[["evil-1"], ["evil-2"]]),
            "reveal-all": front.run(enc, [Handle(ke), Handle(ki_in), Handle(ki_out),
                                          *publics], mode="reveal-all"),
            "precompute": front.run(registry.krb_precompute_name(17), [Handle(base)]),
            "build": front.build_circuits(["aes128-enc"]),
            "aes": front.run("aes128-enc", [Handle(ke), bytes(16)]),
            "base key as input": front.run(enc, [Handle(base), Handle(ki_in), Handle(ki_out),
                                                 *publics]),
            "swapped material": front.run(enc, [Handles((ki_in,)), Handle(ke), Handle(ki_out),
                                                *publics]),
            "pair, public second material": front.run(
                registry.krb_pair_name(registry.krb_decrypt_name(17, 60), enc),
                [Handle(ke), Handle(ki_in), Handle(ki_out), bytes(176), bytes(20), bytes(20)]),
        }
        for what, coro in attempts.items():
            with pytest.raises(MpcJobError) as e:
                await coro
            assert e.value.code == "FORBIDDEN", what
        assert [p["party"] for p in await front.ping()] == [0, 1, 2]
        (chain, tag), = [await front.run(enc, [Handle(ke), Handle(ki_in), Handle(ki_out),
                                                *publics])]
        assert chain.shape == (128 * encrypt_class(1)[0], 1) and tag.shape == (96, 1)
    finally:
        await front.close()
    # The admin API refuses the frontend certificate (and takes the admin one).
    async with AdminClient(cluster.client_config, role="frontend") as wrong:
        with pytest.raises(AdminError) as e:
            await wrong.list("*")
        assert e.value.code == "FORBIDDEN"
    async with AdminClient(cluster.client_config) as right:
        assert name in await right.list("*")


# -- MPC key generation: fresh labels -----------------------------------------------------------

def test_random_secrets_differ_and_are_consistent(cluster):
    with MpcClient(cluster.client_config, timeout=10.0) as c:
        c.random_secrets([("rnd-a", 128), ("rnd-b", 128)])
        c.random_secret("rnd-c", 128)
        # Reveal through a circuit that outputs its input XOR 0 (and-layer with y = ~0).
        vals = []
        for hnd in ("rnd-a", "rnd-b", "rnd-c"):
            (out,) = c.run("and-layer:128x1", [Handle(hnd), b"\xff" * 16])
            vals.append(jobs.unpack_bytes_instances(out, 1)[0])
    assert len(set(vals)) == 3 and all(v != bytes(16) for v in vals)


# -- circuit cache --------------------------------------------------------------------------------

def test_circuit_cache_files_round_trip(tmp_path):
    registry.set_cache_dir(tmp_path)
    try:
        name = registry.krb_decrypt_name(17, 16 + 12 + 5)
        built = registry.get(name)
        path = registry.cache_path(name)
        assert path.exists() and registry.code_digest() in path.name
        assert registry.load_circuit(path).digest() == built.digest()
        assert name in registry.cached_names()
    finally:
        registry.set_cache_dir(None)


def test_nodes_cache_built_circuits_on_disk(cluster, admin):
    register(admin, f"erin@{REALM}", {17: crypto.random_key(17).contents})
    for i in range(3):
        files = sorted(p.name for p in (cluster.dir / f"node-{i}" / "circuits").glob("*.npz"))
        assert f"krb-pre_17-{registry.code_digest()}.npz" in files


async def test_frontend_warm_up_builds_size_classes_on_every_node(cluster):
    front = AsyncMpcClient(cluster.client_config, "frontend", timeout=2.0)
    try:
        names = await krbjobs.warm_up(front, [("enc", 17, 300), ("dec", 17, 312),
                                              ("enc", 17, 301)])
    finally:
        await front.close()
    assert names == ["krb-enc/17/20x5", "krb-dec/17/19x5"]
    for i in range(3):
        files = {p.name for p in (cluster.dir / f"node-{i}" / "circuits").glob("*.npz")}
        for name in names:
            assert f"{name.replace('/', '_')}-{registry.code_digest()}.npz" in files


# -- metrics ------------------------------------------------------------------------------------

def test_metrics_endpoint(cluster, admin):
    register(admin, f"frank@{REALM}", {17: crypto.random_key(17).contents})
    port = cluster.metrics_ports[0]

    def scrape() -> dict:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        return {(s.name, s.labels): s.value for s in parse_text(text.decode())}

    samples = scrape()
    names = {n for n, _ in samples}
    for metric in ("mpckdc_mpc_batches_in_flight", "mpckdc_mpc_queue_depth",
                   "mpckdc_mpc_rounds_total", "mpckdc_mpc_and_gates_total",
                   "mpckdc_mpc_batch_size_count", "mpckdc_mpc_jobs_total"):
        assert metric in names, metric
    assert samples[("mpckdc_mpc_rounds_total", ())] > 0
    assert samples[("mpckdc_mpc_and_gates_total", ())] > 0
    assert samples[("mpckdc_mpc_jobs_total", (("kind", "job"), ("outcome", "ok")))] >= 1
    assert wait_until(lambda: scrape()[("mpckdc_mpc_batches_in_flight", ())] == 0, 10)


async def test_lookup_of_principal_with_slash_and_percent(cluster, admin):
    name = f"host/a%2Fb.example.com@{REALM}"
    await asyncio.to_thread(register, admin, name, {17: crypto.random_key(17).contents})
    async with AdminClient(cluster.client_config) as a:
        rec = await a.lookup(name)
        assert rec["name"] == name and rec["version"] == 1
        assert await a.lookup(f"host/a/b.example.com@{REALM}") is None


# -- the size-class circuits in the clear (kdc.crypto is the oracle) ------------------------------

def _bits(data: bytes):
    import numpy as np

    return np.unpackbits(np.frombuffer(data, np.uint8))


def _bytes(bits) -> bytes:
    import numpy as np

    return np.packbits(bits).tobytes()


@pytest.mark.parametrize("etype", [17, 18])
def test_size_class_circuits_equal_reference(etype):
    """krb-enc/krb-dec size classes, with krbjobs' public inputs and CTS post-processing,
    give kdc.crypto.encrypt's bytes; decryption opens them, rejects a flipped bit with ok=0
    and all-zero output. Sizes cover one block, a partial and a full last block, and the
    SHA-1 block boundary (55/56 bytes of conf|plaintext)."""
    from mpc.circuits.kerberos import size_class

    key = crypto.random_key(etype)
    outs = registry.get(registry.krb_precompute_name(etype)).evaluate_plain(
        [_bits(key.contents)])
    material = {u: outs[3 * k: 3 * k + 3] for k, u in enumerate(registry.KRB_USAGES)}
    sizes = [16, 17, 32, 33, 55, 56, 64, 65] if etype == 17 else [16, 40, 56, 100]
    for n in sizes:
        usage = 1 + n % 3
        conf, plain = bytes([n]) * 16, bytes((3 * i + n) % 256 for i in range(n - 16))
        data = conf + plain
        m, h = size_class(n)
        # Its own class, and the 4-block class it shares with longer messages (the selector
        # picks its inner digest; the chain's extra blocks are ignored).
        for cm, ch in {encrypt_class(h), encrypt_class(max(h, 4))}:
            enc = registry.get(registry.krb_encrypt_class_name(etype, ch))
            publics = krbjobs._encrypt_public_inputs(data, cm, ch)
            chain, tag = enc.evaluate_plain([*material[usage], *map(_bits, publics)])
            ct = krbjobs._cts_from_chain(_bytes(chain), n) + _bytes(tag)
            assert ct == crypto.encrypt(key, usage, plain, conf), (n, ch)
        dec = registry.get(registry.krb_decrypt_name(etype, len(ct)))
        for cipher, good in ((ct, True), (ct[:-13] + bytes([ct[-13] ^ 4]) + ct[-12:], False)):
            publics = krbjobs._decrypt_public_inputs(cipher, m, h)
            ok, opened = dec.evaluate_plain([*material[usage], *map(_bits, publics)])
            assert int(ok[0]) == int(good), n
            assert _bytes(opened)[:n] == (data if good else bytes(n)), n
