"""Three real ``mpc.node`` processes over real TLS: deal -> evaluate -> reveal.

Every value is checked against the published vectors (aes_block, aes_block_kat, hmac_sha1,
sha_digest) or a plain computation; no timing is asserted.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import ssl
import threading

import numpy as np
import pytest

from mpc import framing, jobs, tls
from mpc.circuits.hmac import block_count, padded_blocks
from mpc.circuits.sha1 import reference_compress
from mpc.client import (
    Handle,
    Handles,
    MpcClient,
    MpcJobError,
    MpcUnavailable,
    deal,
)
from mpc.cluster import generate_cluster, load_client_config, load_node_config
from tests.mpc_cluster import MpcCluster, free_ports, mpc_cluster, wait_until  # noqa: F401
from tests.vectors import load

SHA1_IV = bytes.fromhex("67452301efcdab8998badcfe10325476c3d2e1f0")


# -- plain helpers (oracles) -------------------------------------------------------------------

def _sbox() -> list[int]:
    def mul(a: int, b: int) -> int:
        r = 0
        while b:
            if b & 1:
                r ^= a
            a = ((a << 1) ^ (0x11B if a & 0x80 else 0)) & 0xFF
            b >>= 1
        return r

    inv = [0] * 256
    for x in range(1, 256):
        for y in range(1, 256):
            if mul(x, y) == 1:
                inv[x] = y
                break
    out = []
    for x in range(256):
        b = inv[x]
        s = b
        for k in range(1, 5):
            s ^= ((b << k) | (b >> (8 - k))) & 0xFF
        out.append(s ^ 0x63)
    return out


SBOX = _sbox()


def round_keys(key: bytes) -> bytes:
    """FIPS-197 §5.2 key expansion: all round keys concatenated (encryption order)."""
    nk = len(key) // 4
    nr = nk + 6
    w = [list(key[4 * i:4 * i + 4]) for i in range(nk)]
    rcon = 1
    for i in range(nk, 4 * (nr + 1)):
        t = list(w[i - 1])
        if i % nk == 0:
            t = [SBOX[b] for b in t[1:] + t[:1]]
            t[0] ^= rcon
            rcon = ((rcon << 1) ^ (0x11B if rcon & 0x80 else 0)) & 0xFF
        elif nk > 6 and i % nk == 4:
            t = [SBOX[b] for b in t]
        w.append([a ^ b for a, b in zip(w[i - nk], t, strict=True)])
    return bytes(b for word in w for b in word)


def hmac_states(key: bytes) -> tuple[bytes, bytes]:
    """SHA-1 chaining values after the ipad and opad key blocks (RFC 2104)."""
    if len(key) > 64:
        key = hashlib.sha1(key).digest()
    key = key.ljust(64, b"\0")
    inner = reference_compress(SHA1_IV, bytes(b ^ 0x36 for b in key))
    outer = reference_compress(SHA1_IV, bytes(b ^ 0x5C for b in key))
    return inner, outer


@pytest.fixture(scope="module")
def client(mpc_cluster):  # noqa: F811
    c = MpcClient(mpc_cluster.client_config, timeout=60.0)
    c.wait_ready(timeout=60)
    yield c
    c.close()


# -- wire formats (raw frames, no nodes) -----------------------------------------------------

def test_bundle_frames_roundtrip_over_a_socket():
    a, b = socket.socketpair()
    b.settimeout(10)
    try:
        rng = np.random.default_rng(3)
        small = rng.integers(0, 2**64, size=(5, 3), dtype=np.uint64)
        large = rng.integers(0, 2**64, size=(300, 100), dtype=np.uint64)  # > receive buffer
        frames = [[(7, 0, small)], [(7, 1, large), (9, 0, small), (11, 4, small[:0])]]
        sender = threading.Thread(target=lambda: [a.sendall(b"".join(
            bytes(x) for x in framing.bundle_buffers(r, f))) for r, f in enumerate(frames)])
        sender.start()
        reader = framing.BufferedReader(b, size=4096)
        for r, f in enumerate(frames):
            h = reader.header(framing.MAX_PEER_FRAME)
            assert (h.kind, h.round) == (framing.KIND_BUNDLE, r)
            got = reader.bundle(h)
            assert [(bid, rnd) for bid, rnd, _ in got] == [(bid, rnd) for bid, rnd, _ in f]
            for (_, _, z), (_, _, want) in zip(got, f, strict=True):
                assert np.array_equal(z, want.ravel())
        sender.join()
        a.sendall(b"XX" + bytes(22))
        with pytest.raises(framing.FrameError):
            reader.header(framing.MAX_PEER_FRAME)
        a.close()
        with pytest.raises(framing.LinkClosed):
            reader.header(framing.MAX_PEER_FRAME)
    finally:
        a.close()
        b.close()


def test_next_bundle_reads_a_whole_bundle_and_refuses_other_frames():
    a, b = socket.socketpair()
    b.settimeout(10)
    try:
        z = np.arange(12, dtype=np.uint64)
        a.sendall(b"".join(bytes(x) for x in framing.bundle_buffers(5, [(3, 2, z), (4, 0, z[:4])])))
        reader = framing.BufferedReader(b, size=4096)
        got = reader.next_bundle()
        assert [(bid, rnd, zz.tolist()) for bid, rnd, zz in got] == \
            [(3, 2, z.tolist()), (4, 0, z[:4].tolist())]
        a.sendall(framing.pack_header(framing.KIND_JOB, 0))
        with pytest.raises(framing.FrameError, match="unexpected frame kind"):
            reader.next_bundle()
        a.sendall(b"XX" + bytes(22))
        with pytest.raises(framing.FrameError, match="magic"):
            reader.next_bundle()
    finally:
        a.close()
        b.close()


class _Engine:
    """The engine side a link reader talks to: no timers, ``in_flight`` batches."""

    def __init__(self, in_flight: int) -> None:
        self.in_flight = in_flight

    def adopt_timers(self) -> None: ...
    def next_timer(self) -> None: ...
    def run_timers(self) -> None: ...
    def wake_sweeper(self) -> None: ...


@pytest.mark.parametrize("in_flight", [0, 2])
def test_link_reader_polls_only_while_batches_are_in_flight(monkeypatch, in_flight):
    from mpc import links
    from mpc.cluster import NodeAddress

    yields = []
    monkeypatch.setattr(links.os, "sched_yield", lambda: yields.append(1))
    peers = [NodeAddress(i, "127.0.0.1", 1, 2) for i in range(3)]
    link = links.PeerLinks(0, peers, None, lambda s: None, lambda n: None,
                           timers=_Engine(in_flight), spin=0.05)
    a, b = socket.socketpair()  # blocking, no timeout: as a link's socket after the handshake
    try:
        sender = threading.Timer(0.2, a.sendall, args=(b"frame",))
        sender.start()
        buf = bytearray(64)
        k = link._read_raw(b, memoryview(buf))
        sender.join()
        assert bytes(buf[:k]) == b"frame"
        # Polled (and yielded the CPU) for the whole spin, then blocked until the data came.
        assert (len(yields) > 0) == bool(in_flight)
        a.sendall(b"next")
        assert link._read_raw(b, memoryview(buf)) == 4 and bytes(buf[:4]) == b"next"
    finally:
        a.close()
        b.close()


def _read_bundle(frame: bytes):
    a, b = socket.socketpair()
    try:
        a.sendall(frame)
        a.close()
        reader = framing.BufferedReader(b, size=4096)
        return reader.bundle(reader.header(framing.MAX_PEER_FRAME))
    finally:
        b.close()


def test_bundle_frame_layout_and_malformed_bodies():
    z = np.arange(6, dtype=np.uint64).reshape(2, 3)
    frame = b"".join(bytes(x) for x in framing.bundle_buffers(5, [(9, 2, z), (4, 7, z[:1])]))
    table = framing.COUNT.pack(2, 0) + framing.SECTION.pack(9, 2, 0, 48) \
        + framing.SECTION.pack(4, 7, 0, 24)
    assert frame == framing.pack_header(framing.KIND_BUNDLE, len(table) + 72, round=5) \
        + table + z.tobytes() + z[:1].tobytes()
    got = _read_bundle(frame)
    assert [(bid, rnd, v.tolist()) for bid, rnd, v in got] == [
        (9, 2, list(range(6))), (4, 7, [0, 1, 2])]

    def body_frame(body: bytes) -> bytes:
        return framing.pack_header(framing.KIND_BUNDLE, len(body), round=1) + body

    bad = [
        body_frame(table + z.tobytes() + z[:1].tobytes() + bytes(4)),  # not a multiple of 8
        body_frame(table + z.tobytes() + z[:1].tobytes() + bytes(8)),  # trailing words
        body_frame(table + z.tobytes()),  # sections longer than the body
        body_frame(framing.COUNT.pack(3, 0) + table[8:] + z.tobytes()),  # table past the body
        body_frame(framing.COUNT.pack(1, 0) + framing.SECTION.pack(1, 1, 0, 12) + bytes(16)),
    ]
    for frame in bad:
        with pytest.raises(framing.FrameError):
            _read_bundle(frame)


def test_header_layout_and_limits():
    raw = framing.pack_header(framing.KIND_JOB, 5, batch_id=0x0102030405060708, round=9)
    assert raw.hex() == "4d4b0a0009000000" "0807060504030201" "0500000000000000"
    with pytest.raises(framing.FrameError):
        framing.unpack_header(raw, max_length=4)


def test_job_body_and_bitslicing_roundtrip():
    meta = {"circuit": "aes128-enc", "inputs": [{"public": 0}]}
    arr = np.arange(6, dtype=np.uint64).reshape(3, 2)
    body = b"".join(bytes(x) for x in jobs.encode_body(meta, [arr, b"xyz"]))
    got_meta, blobs = jobs.decode_body(body)
    assert got_meta == meta and bytes(blobs[1]) == b"xyz"
    assert np.array_equal(np.frombuffer(blobs[0], dtype="<u8").reshape(3, 2), arr)
    for bad in (body[:-1], body + b"\0", b"\xff\xff\xff\xff"):
        with pytest.raises(jobs.BadMessage):
            jobs.decode_body(bad)
    values = [bytes([k, 255 - k, k ^ 0x5A]) for k in range(70)]
    sliced = jobs.pack_bytes_instances(values, 2)
    assert sliced.shape == (24, 2)
    assert jobs.unpack_bytes_instances(sliced, 70) == values
    # wire 0 carries the MSB of byte 0; instance t sits in bit t % 64 of word t // 64
    assert int(sliced[0, 1]) >> 0 & 1 == 0 and int(sliced[0, 0]) >> 1 & 1 == 0
    assert int(sliced[8, 0]) & 1 == 1  # instance 0, byte 1 = 0xff


# -- correctness ---------------------------------------------------------------------------

def test_and_layer_reveal_modes(client):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2**64, size=(64, 2), dtype=np.uint64)
    y = rng.integers(0, 2**64, size=(64, 2), dtype=np.uint64)
    out = client.run("and-layer:64x3", [x, y], words=2)
    assert np.array_equal(out[0], x & y)
    out = client.run("and-layer:64x3", [x, y], words=2, mode="reveal-all")
    assert np.array_equal(out[0], x & y)


async def test_concurrent_batches_share_frames(mpc_cluster):  # noqa: F811
    """Many jobs in flight at once (different depths, async client): each gets its own
    correct result, and the nodes merged their layers into shared frames."""
    import asyncio

    from mpc.client import AsyncMpcClient

    client = AsyncMpcClient(mpc_cluster.client_config, timeout=60.0, max_in_flight=16)
    try:
        await client.wait_ready(timeout=60)
        before = await client.ping()
        rng = np.random.default_rng(11)
        xs = [rng.integers(0, 2**64, size=(64, 4), dtype=np.uint64) for _ in range(12)]
        y = rng.integers(0, 2**64, size=(64, 4), dtype=np.uint64)
        names = [f"and-layer:64x{d}" for d in (40, 41, 42, 43) * 3]
        outs = await asyncio.gather(*(client.run(n, [x, y], words=4)
                                      for n, x in zip(names, xs, strict=True)))
        for x, out in zip(xs, outs, strict=True):
            assert np.array_equal(out[0], x & y)
        after = await client.ping()
        frames = [a["rounds"] - b["rounds"] for a, b in zip(after, before, strict=True)]
        sections = [a["sections"] - b["sections"] for a, b in zip(after, before, strict=True)]
        assert sections == [sum(int(n.split("x")[1]) for n in names)] * 3
        assert all(f < s for f, s in zip(frames, sections, strict=True))
    finally:
        await client.close()


def _aes_vectors(key_bits: int) -> list[dict]:
    base = load("aes_block", key_bits=key_bits)
    kat = load("aes_block_kat", key_bits=key_bits)
    return base + kat[::13]


@pytest.mark.parametrize("key_bits", [128, 256])
def test_aes_encrypt_decrypt_vectors(client, key_bits):
    vecs = _aes_vectors(key_bits)
    assert len(vecs) >= 10
    handles = [f"aes{key_bits}-kat-{k}" for k in range(len(vecs))]
    client.store_secrets({h: round_keys(v["key"]) for h, v in zip(handles, vecs, strict=True)})
    words = (len(vecs) + 63) // 64
    name = f"aes{key_bits}"
    out = client.run(f"{name}-enc", [Handles(tuple(handles)), [v["plaintext"] for v in vecs]],
                     words=words)
    got = jobs.unpack_bytes_instances(out[0], len(vecs))
    assert got == [v["ciphertext"] for v in vecs]
    out = client.run(f"{name}-dec", [Handles(tuple(handles)), [v["ciphertext"] for v in vecs]],
                     words=words)
    assert jobs.unpack_bytes_instances(out[0], len(vecs)) == [v["plaintext"] for v in vecs]


def test_aes_one_key_many_blocks(client):
    v = load("aes_block", key_bits=128)[0]
    client.store_secret("aes128-fips", round_keys(v["key"]))
    out = client.run("aes128-enc", [Handle("aes128-fips"), v["plaintext"]], words=2)
    assert jobs.unpack_bytes_instances(out[0], 128) == [v["ciphertext"]] * 128


def test_hmac_sha1_96_vectors(client):
    vecs = load("hmac_sha1")
    by_blocks: dict[int, list[dict]] = {}
    for v in vecs:
        by_blocks.setdefault(block_count(len(v["data"])), []).append(v)
    assert sum(len(g) for g in by_blocks.values()) == len(vecs)
    for blocks, group in sorted(by_blocks.items()):
        inner, outer = [], []
        for k, v in enumerate(group):
            i_state, o_state = hmac_states(v["key"])
            client.store_secrets({f"hmac-i-{blocks}-{k}": i_state,
                                  f"hmac-o-{blocks}-{k}": o_state})
            inner.append(f"hmac-i-{blocks}-{k}")
            outer.append(f"hmac-o-{blocks}-{k}")
        msgs = [b"".join(padded_blocks(v["data"])) for v in group]
        out = client.run(f"hmac-sha1-96:{blocks}",
                         [Handles(tuple(inner)), Handles(tuple(outer)), msgs], words=1)
        got = jobs.unpack_bytes_instances(out[0], len(group))
        assert got == [v["digest"][:12] for v in group]


def test_sha1_compress_chained_as_shares(client):
    """SHA-1 of the FIPS 180 examples: one compression per block; intermediate chaining
    values stay shared (keep mode) and are only revealed at the end."""
    vecs = [v for v in load("sha_digest", hash="sha1") if "input" in v and len(v["input"]) < 200]
    assert vecs
    for k, v in enumerate(vecs):
        msg = v["input"]
        pad = b"\x80" + bytes((55 - len(msg)) % 64) + (8 * len(msg)).to_bytes(8, "big")
        data = msg + pad
        blocks = [data[i:i + 64] for i in range(0, len(data), 64)]
        state: object = SHA1_IV
        for j, block in enumerate(blocks):
            last = j == len(blocks) - 1
            if last:
                out = client.run("sha1-compress", [state, block], words=1)
                assert jobs.unpack_bytes_instances(out[0], 1)[0] == v["digest"]
            else:
                h = f"sha1-{k}-{j}"
                client.run("sha1-compress", [state, block], words=1, mode="keep",
                           out_handles=[[h]])
                state = Handle(h)


def test_no_node_holds_the_third_share(client):
    secret = bytes(range(32))
    shares = deal(jobs.bytes_to_bits(secret))
    client.store_shares([("third-share-check", shares)])
    digests = client.debug_digests()
    share_digest = [hashlib.sha256(np.packbits(s).tobytes()).hexdigest() for s in shares]
    assert len({*share_digest}) == 3
    for node in digests:
        i = node["party"]
        held = node["handles"]["third-share-check"]["shares"]
        assert held == {str(i): share_digest[i], str((i + 1) % 3): share_digest[(i + 1) % 3]}
        assert share_digest[(i + 2) % 3] not in held.values()
        assert node["received_share_indices"] == sorted({i, (i + 1) % 3})
    # and the value is what was dealt: reveal through the identity of an AND with all-ones
    out = client.run("and-layer:256x1", [Handle("third-share-check"), b"\xff" * 32], words=1)
    assert jobs.unpack_bytes_instances(out[0], 1)[0] == secret


def test_prf_key_files_hold_two_keys(mpc_cluster):  # noqa: F811
    keys = []
    for i in range(3):
        cfg = load_node_config(mpc_cluster.config(i))
        keys.append((cfg.prf_own, cfg.prf_next))
        assert (mpc_cluster.dir / f"node-{i}.prf").stat().st_mode & 0o777 == 0o600
        assert len((mpc_cluster.dir / f"node-{i}.prf").read_text().splitlines()) == 2
    material = [p for p in mpc_cluster.dir.iterdir() if p.suffix in (".pem", ".key", ".prf",
                                                                      ".toml")]
    assert len(material) == 2 + 3 * 4 + 2 * 2 + 1
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in material)
    for i in range(3):
        assert keys[i][1] == keys[(i + 1) % 3][0]  # k_{i+1} shared with party i+1
        assert keys[(i + 2) % 3][0] not in keys[i]  # k_{i+2} never at party i


def test_unknown_handle_and_circuit_are_clear_errors(client):
    with pytest.raises(MpcJobError) as e:
        client.run("aes128-enc", [Handle("no-such-key"), bytes(16)], words=1)
    assert e.value.code == "UNKNOWN_HANDLE"
    with pytest.raises(MpcJobError) as e:
        client.run("no-such-circuit", [], words=1)
    assert e.value.code == "UNKNOWN_CIRCUIT"
    # the cluster still works afterwards
    x = np.full((64, 1), 0xFF, dtype=np.uint64)
    assert np.array_equal(client.run("and-layer", [x, x], words=1)[0], x)


def test_stale_or_repeated_job_ids_are_refused(client):
    """A batch id labels PRF streams: a node never evaluates two batches under one id."""
    x = np.full((64, 1), 0x3, dtype=np.uint64)
    aio = client.aio
    fixed = aio._next_job_id()
    real = aio._next_job_id
    try:
        aio._next_job_id = lambda: fixed
        assert np.array_equal(client.run("and-layer", [x, x], words=1)[0], x)
        with pytest.raises(MpcJobError) as e:
            client.run("and-layer", [x, x], words=1)
        assert e.value.code == "DUPLICATE"
        aio._next_job_id = lambda: (1_000_000 << 21) | 5  # 1970: not fresh
        with pytest.raises(MpcJobError) as e:
            client.run("and-layer", [x, x], words=1)
        assert e.value.code == "BAD_JOB_ID"
    finally:
        aio._next_job_id = real
    assert np.array_equal(client.run("and-layer", [x, x], words=1)[0], x)


# -- authentication ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """Material of another cluster (another CA) with the same identities."""
    d = tmp_path_factory.mktemp("foreign")
    generate_cluster(d, free_ports(3), free_ports(3))
    return d


def _assert_ping_refused(config, **client_options) -> None:
    """A client built with ``client_options`` cannot even PING the cluster."""
    bad = MpcClient(config, timeout=2.0, **client_options)
    try:
        with pytest.raises(MpcUnavailable):
            bad.ping()
    finally:
        bad.close()


def test_client_with_foreign_ca_cert_is_refused(mpc_cluster, client, foreign):  # noqa: F811
    real = load_client_config(mpc_cluster.client_config)
    _assert_ping_refused(real, ssl_context=tls.client_context(
        real.ca, foreign / "client-frontend.pem", foreign / "client-frontend.key"))


def test_client_without_cert_is_refused(mpc_cluster, client):  # noqa: F811
    real = load_client_config(mpc_cluster.client_config)
    _assert_ping_refused(real, ssl_context=tls.client_context(real.ca, None, None))


def test_node_cert_is_not_a_client(mpc_cluster, client):  # noqa: F811
    real = load_client_config(mpc_cluster.client_config)
    _assert_ping_refused(real, ssl_context=tls.client_context(
        real.ca, mpc_cluster.dir / "node-0.pem", mpc_cluster.dir / "node-0.key"))


def test_client_checks_node_identity(mpc_cluster, client):  # noqa: F811
    real = load_client_config(mpc_cluster.client_config)
    swapped = type(real)(ca=real.ca, identities=real.identities,
                         nodes=(real.nodes[1], real.nodes[0], real.nodes[2]))
    _assert_ping_refused(swapped)


def _peer_link_attempt(host: str, port: int, ctx: ssl.SSLContext, name: str) -> bytes | None:
    """Dial a node's peer port, send a BUNDLE, return what comes back (None = refused)."""
    raw = socket.create_connection((host, port), timeout=3)
    try:
        sock = ctx.wrap_socket(raw, server_hostname=name)
        sock.sendall(b"".join(bytes(b) for b in framing.bundle_buffers(1, [])))
        data = sock.recv(1)
        return data or None
    except (OSError, ssl.SSLError):
        return None
    finally:
        raw.close()


@pytest.mark.parametrize("who", ["foreign-node", "no-cert", "wrong-identity"])
def test_peer_link_refuses_bad_certificates(mpc_cluster, client, foreign, who):  # noqa: F811
    real = load_node_config(mpc_cluster.config(0))
    if who == "foreign-node":  # node-1's name, but signed by another CA
        ctx = tls.client_context(real.ca, foreign / "node-1.pem", foreign / "node-1.key")
    elif who == "no-cert":
        ctx = tls.client_context(real.ca, None, None)
    else:  # a genuine cluster certificate, but node-2 is not node-0's successor
        ctx = tls.client_context(real.ca, mpc_cluster.dir / "node-2.pem",
                                 mpc_cluster.dir / "node-2.key")
    assert _peer_link_attempt(real.host, real.port, ctx, "node-0") is None
    # The real link survived: jobs still run.
    x = np.full((64, 1), 0x0F0F, dtype=np.uint64)
    assert np.array_equal(client.run("and-layer", [x, x], words=1)[0], x)


# -- failure and recovery --------------------------------------------------------------------

def test_killed_node_fails_fast_and_recovers(tmp_path):
    cluster = MpcCluster(tmp_path).start()
    c = MpcClient(cluster.client_config, timeout=2.0)
    try:
        c.wait_ready(timeout=60)
        x = np.full((64, 1), 0xFFFF, dtype=np.uint64)
        c.run("and-layer", [x, x], words=1)  # warm up (circuit build, numba cache)
        result: dict = {}

        def long_job() -> None:
            try:
                result["value"] = c.run("and-layer:64x8000", [x, x], words=1, timeout=20.0)
            except Exception as e:  # noqa: BLE001 - recorded for the assertion below
                result["error"] = e

        t = threading.Thread(target=long_job)
        t.start()
        assert wait_until(lambda: any(m["in_flight"] for m in _pings(c)), 5)
        cluster.kill_node(1)
        t.join(timeout=10)
        assert not t.is_alive()
        assert isinstance(result.get("error"), MpcUnavailable), result
        assert "timed out" not in str(result["error"])  # failed on the node loss, not a timeout
        assert cluster.alive(0) and cluster.alive(2)
        with pytest.raises(MpcUnavailable):
            c.run("and-layer", [x, x], words=1)
        cluster.start_node(1)
        c.wait_ready(timeout=60)
        out = c.run("and-layer:64x5", [x, x], words=1)
        assert np.array_equal(out[0], x)
        assert cluster.alive(0) and cluster.alive(2)
    finally:
        c.close()
        codes = cluster.stop()
    assert codes == [0, 0, 0]


def _pings(c: MpcClient) -> list[dict]:
    try:
        return c.ping()
    except MpcUnavailable:
        return []


def test_sigterm_stops_nodes_cleanly(tmp_path):
    cluster = MpcCluster(tmp_path).start()
    c = MpcClient(cluster.client_config, timeout=2.0)
    try:
        c.wait_ready(timeout=60)
    finally:
        c.close()
    assert cluster.stop() == [0, 0, 0]


# -- jobs longer than the client's short timeout ---------------------------------------------

def test_acknowledged_job_may_outlast_the_short_timeout_but_not_a_dead_node(tmp_path):
    """Every node acknowledges a job (ACCEPTED) before building/computing, so a job longer
    than the client's 2 s timeout completes; killing a node during that extended wait still
    fails the job on the node loss (not on a timeout)."""
    cluster = MpcCluster(tmp_path).start()
    c = MpcClient(cluster.client_config, timeout=2.0)
    try:
        c.wait_ready(timeout=60)
        # A circuit the nodes have never built (HMAC over 40 blocks, ~20,000 rounds): its
        # build and its rounds take longer than the 2 s timeout on this machine.
        data = bytes(range(256)) * 9
        i_state, o_state = hmac_states(b"long-job-key")
        c.store_secrets({"long-i": i_state, "long-o": o_state})
        msg = b"".join(padded_blocks(data))
        assert block_count(len(data)) == 37
        out = c.run("hmac-sha1-96:37", [Handle("long-i"), Handle("long-o"), msg], words=1)
        assert jobs.unpack_bytes_instances(out[0], 1) == [
            hmac.new(b"long-job-key", data, hashlib.sha1).digest()[:12]]
        result: dict = {}

        def long_job() -> None:
            try:
                result["value"] = c.run("hmac-sha1-96:37",
                                        [Handle("long-i"), Handle("long-o"), msg], words=1)
            except Exception as e:  # noqa: BLE001 - recorded for the assertion below
                result["error"] = e

        t = threading.Thread(target=long_job)
        t.start()
        assert wait_until(lambda: any(m["in_flight"] for m in _pings(c)), 30)
        cluster.kill_node(2)
        t.join(timeout=20)
        assert not t.is_alive()
        assert isinstance(result.get("error"), MpcUnavailable), result
        assert "timed out" not in str(result["error"])
    finally:
        c.close()
        cluster.stop()
