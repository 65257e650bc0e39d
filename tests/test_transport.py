"""The asyncio UDP/TCP adapters (kdc/transport.py) and the front-end plumbing around them.

Most tests run the real KDC core on the reference key service in this process, behind real
sockets on 127.0.0.1, and talk to it with raw sockets. The overload and failure tests swap the
core for a small handler they control (a gate that holds requests, one that raises): that is the
only way to hold requests in flight on purpose; everything on the wire is still real.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from kdc.config import ConfigError, load_config, parse_config, render_toml
from kdc.messages import decode_message
from kdc.messages.constants import KRB_ERR_FIELD_TOOLONG
from kdc.messages.model import KdcRep, KrbError
from kdc.server import bind_sockets, serve_sockets
from kdc.transport import TransportStats, frame
from tests.realm import PROJECT_ROOT, child_env, create_database, write_kdc_config
from tests.vectors import capture

AS_REQ = capture("alice-as-req")
WAIT = 10.0  # upper bound for any single wait; never an assertion on speed


@pytest.fixture
def realm_dir(tmp_path: Path) -> Path:
    create_database(tmp_path)
    write_kdc_config(tmp_path)
    return tmp_path


def _config(realm_dir: Path, **limits):
    config = load_config(realm_dir / "kdc.toml")
    if limits:
        from dataclasses import replace

        config = replace(config, limits=replace(config.limits, **limits))
    return config


@contextlib.asynccontextmanager
async def running(config, handler=None):
    """Serve ``config`` in this event loop; yields (stats, udp address, tcp address)."""
    sockets = bind_sockets(config)
    stats = TransportStats()
    stop = asyncio.Event()
    task = asyncio.create_task(serve_sockets(config, sockets, stop, handler=handler, stats=stats))
    udp = next(b.address for b in sockets if b.kind == "udp")
    tcp = next(b.address for b in sockets if b.kind == "tcp")
    try:
        await asyncio.sleep(0)
        yield stats, (udp.host, udp.port), (tcp.host, tcp.port)
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)
        for b in sockets:
            b.sock.close()


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await asyncio.wait_for(reader.readexactly(4), WAIT)
    (length,) = struct.unpack(">I", header)
    return await asyncio.wait_for(reader.readexactly(length), WAIT)


async def expect_closed(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(1), WAIT) == b""


def assert_alice_as_rep(reply: bytes) -> None:
    msg = decode_message(reply)
    assert isinstance(msg, KdcRep), msg
    assert msg.msg_type == 11
    assert msg.cname.components == ("alice",)
    assert msg.crealm == "EXAMPLE.COM"


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:
        self.replies.put_nowait(data)


async def udp_client(address):
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(UdpClient, remote_addr=address)
    return transport, client


# -- TCP framing -------------------------------------------------------------------------------


async def test_tcp_partial_reads_and_two_requests_on_one_connection(realm_dir):
    async with running(_config(realm_dir)) as (stats, _udp, tcp):
        reader, writer = await asyncio.open_connection(*tcp)
        stream = frame(AS_REQ) + frame(AS_REQ)
        # The length prefix split in two, the first message split, the second glued to it.
        for chunk in (stream[:2], stream[2:50], stream[50:200], stream[200:]):
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.01)
        assert_alice_as_rep(await read_frame(reader))
        assert_alice_as_rep(await read_frame(reader))
        # A third request later on the same connection still gets an answer.
        writer.write(frame(AS_REQ))
        assert_alice_as_rep(await read_frame(reader))
        writer.close()
        assert stats.tcp_requests == 3 and stats.tcp_replies == 3


async def test_tcp_half_close_after_request_is_answered_then_closed(realm_dir):
    async with running(_config(realm_dir)) as (_stats, _udp, tcp):
        reader, writer = await asyncio.open_connection(*tcp)
        writer.write(frame(AS_REQ))
        writer.write_eof()
        assert_alice_as_rep(await read_frame(reader))
        await expect_closed(reader)
        writer.close()


@pytest.mark.parametrize(
    "prefix",
    [b"\x80\x00\x00\xb7", b"\xff\xff\xff\xff", struct.pack(">I", 64 * 1024 + 1)],
    ids=["high-bit", "all-ones", "above-cap"],
)
async def test_tcp_oversized_length_gets_field_toolong_and_close(realm_dir, prefix):
    # RFC 4120 §7.2.2: high bit set (or longer than we accept) -> KRB_ERR_FIELD_TOOLONG, close.
    async with running(_config(realm_dir)) as (stats, _udp, tcp):
        reader, writer = await asyncio.open_connection(*tcp)
        writer.write(prefix + AS_REQ)
        error = decode_message(await read_frame(reader))
        assert isinstance(error, KrbError)
        assert error.error_code == KRB_ERR_FIELD_TOOLONG == 61
        assert error.realm == "EXAMPLE.COM"
        assert error.sname.components == ("krbtgt", "EXAMPLE.COM")
        await expect_closed(reader)
        writer.close()
        assert stats.tcp_toolong == 1


async def test_tcp_toolong_after_a_good_request_keeps_order(realm_dir):
    async with running(_config(realm_dir)) as (_stats, _udp, tcp):
        reader, writer = await asyncio.open_connection(*tcp)
        writer.write(frame(AS_REQ) + b"\x80\x00\x00\x01\x00")
        assert_alice_as_rep(await read_frame(reader))
        error = decode_message(await read_frame(reader))
        assert isinstance(error, KrbError) and error.error_code == KRB_ERR_FIELD_TOOLONG
        await expect_closed(reader)
        writer.close()


async def test_tcp_idle_connection_is_closed(realm_dir):
    async with running(_config(realm_dir, tcp_idle_timeout=0.2)) as (stats, _udp, tcp):
        reader, writer = await asyncio.open_connection(*tcp)
        writer.write(b"\x00\x00")  # half a length prefix, then silence
        await expect_closed(reader)
        writer.close()
        assert stats.tcp_idle_closed == 1


async def test_tcp_connection_limit_refuses_extra_connections(realm_dir):
    async with running(_config(realm_dir, max_tcp_connections=2)) as (stats, _udp, tcp):
        first = await asyncio.open_connection(*tcp)
        second = await asyncio.open_connection(*tcp)
        # Make sure both are accepted before the third arrives.
        for reader, writer in (first, second):
            writer.write(frame(AS_REQ))
            assert_alice_as_rep(await read_frame(reader))
        reader3, writer3 = await asyncio.open_connection(*tcp)
        writer3.write(frame(AS_REQ))
        await expect_closed(reader3)
        writer3.close()
        assert stats.tcp_refused_overload == 1
        # The admitted connections still work.
        first[1].write(frame(AS_REQ))
        assert_alice_as_rep(await read_frame(first[0]))
        for _reader, writer in (first, second):
            writer.close()


async def test_tcp_pipelined_requests_are_bounded_but_all_answered(realm_dir):
    async with running(_config(realm_dir, max_pending_per_connection=2)) as (_s, _u, tcp):
        reader, writer = await asyncio.open_connection(*tcp)
        writer.write(frame(AS_REQ) * 10)
        for _ in range(10):
            assert_alice_as_rep(await read_frame(reader))
        writer.close()


# -- UDP ---------------------------------------------------------------------------------------


async def test_udp_request_gets_reply(realm_dir):
    async with running(_config(realm_dir)) as (stats, udp, _tcp):
        transport, client = await udp_client(udp)
        transport.sendto(AS_REQ)
        assert_alice_as_rep(await asyncio.wait_for(client.replies.get(), WAIT))
        transport.close()
        assert stats.udp_requests == 1 and stats.udp_replies == 1


class Gate:
    """A request handler that holds every request until released, then echoes a marker."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, data, peer, now, *, transport="udp"):
        self.entered += 1
        await self.release.wait()
        return b"reply:" + data


async def test_udp_overload_drops_instead_of_queueing(realm_dir):
    gate = Gate()
    async with running(_config(realm_dir, max_pending_udp=3), handler=gate) as (stats, udp, _t):
        transport, client = await udp_client(udp)
        for i in range(10):
            transport.sendto(b"req%d" % i)
        for _ in range(200):  # bounded wait until all 10 datagrams were seen
            if stats.udp_requests == 10:
                break
            await asyncio.sleep(0.01)
        assert stats.udp_requests == 10
        assert gate.entered == 3
        assert stats.udp_dropped_overload == 7
        gate.release.set()
        replies = {await asyncio.wait_for(client.replies.get(), WAIT) for _ in range(3)}
        assert replies == {b"reply:req0", b"reply:req1", b"reply:req2"}
        transport.close()


class Failing:
    """A handler that raises for requests starting with b"boom" (a bug in the core)."""

    async def __call__(self, data, peer, now, *, transport="udp"):
        if data.startswith(b"boom"):
            raise RuntimeError("bug")
        if data.startswith(b"quiet"):
            return None
        return b"ok"


async def test_handler_failure_and_silence_do_not_break_the_server(realm_dir):
    async with running(_config(realm_dir), handler=Failing()) as (stats, udp, tcp):
        transport, client = await udp_client(udp)
        transport.sendto(b"boom")
        transport.sendto(b"fine")
        assert await asyncio.wait_for(client.replies.get(), WAIT) == b"ok"
        transport.close()
        # TCP: a failure or a deliberate silence closes that connection only.
        for first in (b"boom", b"quiet"):
            reader, writer = await asyncio.open_connection(*tcp)
            writer.write(frame(first))
            await expect_closed(reader)
            writer.close()
        reader, writer = await asyncio.open_connection(*tcp)
        writer.write(frame(b"fine"))
        assert await read_frame(reader) == b"ok"
        writer.close()
        assert stats.handler_failures == 2


# -- configuration and command line ---------------------------------------------------------


def test_port_zero_gives_one_port_for_udp_and_tcp(realm_dir):
    config = _config(realm_dir)
    sockets = bind_sockets(config)
    try:
        ports = {b.kind: b.address.port for b in sockets}
        assert set(ports) == {"udp", "tcp"}
        assert ports["udp"] == ports["tcp"] != 0
    finally:
        for b in sockets:
            b.sock.close()


def test_example_config_files_load_and_agree():
    config = load_config(PROJECT_ROOT / "config" / "one-machine.toml")
    policy = config.policy()
    assert policy.realm == "EXAMPLE.COM"
    assert policy.supported_enctypes == (18, 17)
    assert policy.max_life == 36000 and policy.max_renewable_life == 7 * 86400
    assert [str(a) for a in config.udp] == [str(a) for a in config.tcp] == ["127.0.0.1:60088"]
    krb5_conf = (PROJECT_ROOT / "config" / "krb5.conf").read_text()
    assert "kdc = 127.0.0.1:60088" in krb5_conf
    assert "default_realm = EXAMPLE.COM" in krb5_conf


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({}, "missing [realm]"),
        ({"realm": {"name": "R"}, "listen": {"udp": ["nohost"]}}, "host:port"),
        ({"realm": {"name": "R", "colour": 1}}, "unknown key"),
        (
            {
                "realm": {"name": "R"},
                "listen": {"udp": ["127.0.0.1:1"]},
                "keyservice": {"kind": "mpc"},
            },
            "client_config",
        ),
    ],
)
def test_bad_configs_give_clear_errors(tables, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        parse_config(tables)


def test_config_policy_parses_mit_durations(tmp_path):
    (tmp_path / "c.toml").write_text(
        render_toml(
            {
                "realm": {"name": "R.TEST", "max_life": "10h 0m 0s", "udp_max_reply": 10},
                "listen": {"udp": ["[::1]:88"]},
                "keyservice": {"kind": "reference", "database": "db.json"},
            }
        )
    )
    config = load_config(tmp_path / "c.toml")
    assert config.policy().max_life == 36000
    assert config.policy().udp_max_reply == 10
    assert config.udp[0].host == "::1" and config.udp[0].port == 88
    assert config.keyservice.database == tmp_path / "db.json"


def test_kdc_with_missing_config_fails_cleanly(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "kdc.cli", "kdc", "--config", str(tmp_path / "none.toml")],
        cwd=PROJECT_ROOT, env=child_env(), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


class BigReplies:
    """A handler whose every reply is 64 KiB, to fill socket buffers quickly."""

    async def __call__(self, data, peer, now, *, transport="udp"):
        return b"x" * 65536


async def test_tcp_peer_that_never_reads_is_dropped(realm_dir):
    config = _config(realm_dir, tcp_idle_timeout=0.3, max_write_buffer=65536)
    async with running(config, handler=BigReplies()) as (stats, _udp, tcp):
        reader, writer = await asyncio.open_connection(*tcp, limit=65536)
        sock = writer.get_extra_info("socket")
        import socket as socket_module

        sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
        writer.transport.pause_reading()  # we never read: replies pile up on the server side
        for _ in range(200):
            writer.write(frame(b"request"))
        for _ in range(500):  # bounded wait for the server to give up on us
            if stats.tcp_idle_closed and not stats.tcp_open:
                break
            await asyncio.sleep(0.02)
        assert stats.tcp_idle_closed == 1
        assert stats.tcp_open == 0
        writer.close()


async def test_tcp_flood_of_tiny_records_is_parsed_lazily(realm_dir):
    """10,000 empty records in one write: the core drops an empty message, so the connection
    closes after the first; the rest are never even parsed (the queue is bounded)."""
    async with running(_config(realm_dir, max_pending_per_connection=4)) as (stats, _u, tcp):
        reader, writer = await asyncio.open_connection(*tcp)
        writer.write(b"\x00\x00\x00\x00" * 10_000)
        await expect_closed(reader)
        writer.close()
        assert 1 <= stats.tcp_requests <= 5
        # The server is fine afterwards.
        reader, writer = await asyncio.open_connection(*tcp)
        writer.write(frame(AS_REQ))
        assert_alice_as_rep(await read_frame(reader))
        writer.close()


def test_kdc_with_unreadable_database_fails_cleanly(realm_dir):
    (realm_dir / "reference-db.json").write_text("{not json")
    proc = subprocess.run(
        [sys.executable, "-m", "kdc.cli", "kdc", "--config", str(realm_dir / "kdc.toml")],
        cwd=PROJECT_ROOT, env=child_env(), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "reference key database is not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
