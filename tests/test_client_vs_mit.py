"""Our Kerberos client and command lines against a real MIT krb5kdc, and against MIT's tools.

Every exchange is checked by decrypting what the KDC issued with the long-term keys from the
realm's keytabs: the ticket must name our client and carry the session key we were given.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from clients.ccache import Ccache, read_ccache, write_ccache
from clients.client import KdcClient, KdcError, ReplyMismatch
from clients.keytab import KeytabEntry, read_keytab, write_keytab
from clients.klist import format_ccache
from clients.krb5conf import load_config
from clients.transport import KdcUnreachable
from kdc.crypto import Key, decrypt
from kdc.messages import constants as c
from kdc.messages import decode
from kdc.messages.model import EncTicketPart, Ticket
from tests.mit_kdc import (
    MitRealm,
    free_port,
    mit_realm_fixture,  # noqa: F401  (registers "mit_realm")
)
from tests.vectors import PROJECT_ROOT, capture

REALM = "EXAMPLE.COM"
TGS = f"krbtgt/{REALM}@{REALM}"
TRANSPORTS = ["udp", "tcp"]


@pytest.fixture(autouse=True)
def realm_env(mit_realm: MitRealm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with the realm's krb5.conf and its own ccache name, set explicitly."""
    monkeypatch.setenv("KRB5_CONFIG", str(mit_realm.krb5_conf))
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path}/default.ccache")
    monkeypatch.setenv("KRB5_KDC_PROFILE", str(mit_realm.kdc_conf))


def client(realm: MitRealm, transport: str | None) -> KdcClient:
    return KdcClient(REALM, realm.kdcs, transport=transport, timeout=5)


def ticket_part(realm: MitRealm, cred, keytab: str) -> EncTicketPart:
    """Decrypt a credential's ticket with the service key from ``keytab`` (usage 2)."""
    ticket = decode(Ticket, cred.ticket)
    keys = {e.key.etype: e.key for e in read_keytab(str(realm.keytab(keytab)))}
    return decode(EncTicketPart, decrypt(keys[ticket.enc_part.etype], 2, ticket.enc_part.cipher))


def assert_ticket_matches(realm: MitRealm, cred, keytab: str, client_name: str) -> EncTicketPart:
    part = ticket_part(realm, cred, keytab)
    assert part.crealm == REALM
    assert "/".join(part.cname.components) + "@" + part.crealm == client_name
    assert part.key.keytype == cred.key.etype
    assert part.key.keyvalue == cred.key.contents
    assert part.endtime == cred.endtime and part.authtime == cred.authtime
    assert part.flags == cred.flags
    return part


# -- library against MIT krb5kdc ------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tgt_with_password_preauth(mit_realm, transport):
    cred = client(mit_realm, transport).get_tgt_password("bob", "bob-password")
    assert cred.client == "bob@EXAMPLE.COM" and cred.server == TGS
    assert cred.flags & c.PRE_AUTHENT and cred.flags & c.INITIAL
    assert_ticket_matches(mit_realm, cred, "krbtgt", "bob@EXAMPLE.COM")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tgt_with_password_no_preauth(mit_realm, transport):
    cred = client(mit_realm, transport).get_tgt_password(
        "alice@EXAMPLE.COM", "alice-password", lifetime=3600, forwardable=True)
    assert cred.client == "alice@EXAMPLE.COM" and cred.server == TGS
    assert not cred.flags & c.PRE_AUTHENT
    assert cred.flags & c.FORWARDABLE
    assert cred.endtime - cred.authtime <= 3600
    assert_ticket_matches(mit_realm, cred, "krbtgt", "alice@EXAMPLE.COM")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tgt_from_keytab(mit_realm, transport):
    entries = read_keytab(str(mit_realm.keytab("bob")))
    cred = client(mit_realm, transport).get_tgt_keytab("bob@EXAMPLE.COM", entries)
    assert cred.flags & c.PRE_AUTHENT
    assert_ticket_matches(mit_realm, cred, "krbtgt", "bob@EXAMPLE.COM")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_service_ticket(mit_realm, transport):
    kdc = client(mit_realm, transport)
    tgt = kdc.get_tgt_password("alice", "alice-password")
    cred = kdc.get_service_ticket(tgt, "HTTP/localhost")
    assert cred.server == "HTTP/localhost@EXAMPLE.COM"
    assert cred.client == "alice@EXAMPLE.COM"
    assert cred.key != tgt.key
    assert_ticket_matches(mit_realm, cred, "http", "alice@EXAMPLE.COM")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_renew(mit_realm, transport):
    kdc = client(mit_realm, transport)
    tgt = kdc.get_tgt_password("bob", "bob-password", lifetime=600, renewable=2 * 86400)
    assert tgt.flags & c.RENEWABLE and tgt.renew_till >= tgt.authtime + 86400
    renewed = kdc.renew(tgt)
    assert renewed.server == TGS and renewed.client == "bob@EXAMPLE.COM"
    assert renewed.key != tgt.key
    assert renewed.renew_till == tgt.renew_till
    assert renewed.authtime == tgt.authtime  # RFC 4120 §3.3.3: renewal keeps authtime
    assert renewed.flags & c.RENEWABLE
    assert renewed.endtime >= tgt.endtime
    assert_ticket_matches(mit_realm, renewed, "krbtgt", "bob@EXAMPLE.COM")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_errors(mit_realm, transport):
    kdc = client(mit_realm, transport)
    with pytest.raises(KdcError) as wrong:
        kdc.get_tgt_password("bob", "not-bobs-password")
    assert wrong.value.code == 24 and wrong.value.text == "Preauthentication failed"
    with pytest.raises(KdcError) as unknown:
        kdc.get_tgt_password("nobody", "x")
    assert unknown.value.code == 6
    assert str(unknown.value) == "Client 'nobody@EXAMPLE.COM' not found in Kerberos database"
    # alice needs no preauth: the KDC answers, and the wrong key fails the reply's integrity
    with pytest.raises(KdcError) as bad_reply:
        kdc.get_tgt_password("alice", "not-alices-password")
    assert bad_reply.value.code == 31
    tgt = kdc.get_tgt_password("alice", "alice-password")
    with pytest.raises(KdcError) as no_service:
        kdc.get_service_ticket(tgt, "HTTP/nowhere")
    assert no_service.value.code == 7


def test_response_too_big_falls_back_to_tcp(mit_realm, tmp_path):
    """A second krb5kdc on the same database whose UDP replies are capped at 200 bytes."""
    extra = mit_realm.spawn_kdc("kdc_max_dgram_reply_size = 200", tmp_path / "small-udp")
    try:
        kdcs = [("127.0.0.1", extra.port)]
        with pytest.raises(KdcError) as too_big:
            KdcClient(REALM, kdcs, transport="udp").get_tgt_password("alice", "alice-password")
        assert too_big.value.code == 52
        cred = KdcClient(REALM, kdcs).get_tgt_password("alice", "alice-password")
        assert_ticket_matches(mit_realm, cred, "krbtgt", "alice@EXAMPLE.COM")
    finally:
        extra.stop()


def test_transport_order_follows_udp_preference_limit(mit_realm, tmp_path):
    """A krb5kdc answering UDP on one port and TCP on another: which transport reached it
    shows in whether the request succeeds."""
    extra = mit_realm.spawn_kdc("", tmp_path / "split", separate_tcp_port=True)
    try:
        tcp_only = [("127.0.0.1", extra.tcp_port)]
        udp_only = [("127.0.0.1", extra.port)]
        # forced transports reach only their own listener
        with pytest.raises(KdcUnreachable, match="Cannot contact any KDC for realm 'EXAMPLE.COM'"):
            KdcClient(REALM, tcp_only, transport="udp", timeout=1).get_tgt_password(
                "alice", "alice-password")
        with pytest.raises(KdcUnreachable):
            KdcClient(REALM, udp_only, transport="tcp", timeout=1).get_tgt_password(
                "alice", "alice-password")
        # udp_preference_limit = 1: TCP first; default limit: UDP first, then TCP
        for limit, kdcs in ((1, tcp_only), (1, udp_only), (1465, tcp_only), (1465, udp_only)):
            cred = KdcClient(REALM, kdcs, udp_preference_limit=limit, timeout=1) \
                .get_tgt_password("alice", "alice-password")
            assert cred.client == "alice@EXAMPLE.COM"
        # a list of KDCs: the dead first one is skipped
        dead_first = [("127.0.0.1", free_port()), ("127.0.0.1", mit_realm.port)]
        cred = KdcClient(REALM, dead_first, timeout=1).get_tgt_password("alice", "alice-password")
        assert_ticket_matches(mit_realm, cred, "krbtgt", "alice@EXAMPLE.COM")
    finally:
        extra.stop()


def test_client_from_krb5conf(mit_realm, monkeypatch):
    monkeypatch.setenv("KRB5_CONFIG", str(mit_realm.krb5_tcp_conf))
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{mit_realm.work}/unused")
    config = load_config()
    assert config.udp_preference_limit == 1
    kdc = KdcClient.from_config(config)
    assert kdc.kdcs == mit_realm.kdcs
    cred = kdc.get_tgt_password("alice", "alice-password")
    assert cred.client == "alice@EXAMPLE.COM"


# -- command lines --------------------------------------------------------------------------------


def ours(realm: MitRealm, module: str, args: list[str], ccache: Path, *, tcp: bool = False,
         input: str | None = None) -> subprocess.CompletedProcess:
    env = realm.env(ccache, tcp=tcp)
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    proc = subprocess.run([sys.executable, "-m", module, *args], env=env, cwd=PROJECT_ROOT,
                          input=input, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr
    return proc


@pytest.mark.parametrize("tcp", [False, True])
def test_our_kinit_cache_is_listed_by_mit_klist(mit_realm, tmp_path, tcp):
    cc = tmp_path / "bob.cc"
    done = ours(mit_realm, "clients.kinit", ["-f", "-r", "2d", "bob"], cc, tcp=tcp,
                input="bob-password\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Password for bob@EXAMPLE.COM: \n"
    mit = mit_realm.run(["klist", "-f", "-e"], ccache=cc)
    assert "Default principal: bob@EXAMPLE.COM" in mit.stdout
    assert TGS in mit.stdout
    assert "Flags: FRIA" in mit.stdout
    # our klist prints exactly what MIT's prints
    mine = ours(mit_realm, "clients.klist", ["-f", "-e"], cc)
    assert mine.stdout == mit.stdout
    # MIT's kvno accepts our ccache's TGT and stores a service ticket in it
    kvno = mit_realm.run(["kvno", "HTTP/localhost"], ccache=cc)
    assert kvno.stdout.strip() == "HTTP/localhost@EXAMPLE.COM: kvno = 1"
    servers = [cred.server for cred in read_ccache(str(cc)).tickets()]
    assert servers == [TGS, "HTTP/localhost@EXAMPLE.COM"]


def test_mit_kinit_cache_is_read_by_us(mit_realm, tmp_path):
    cc = tmp_path / "alice-mit.cc"
    mit_realm.kinit("alice", "alice-password", cc)
    cache = read_ccache(str(cc))
    assert cache.default_principal == "alice@EXAMPLE.COM"
    assert [cred.server for cred in cache.tickets()] == [TGS]
    assert any(cred.is_config for cred in cache.credentials)  # MIT's fast_avail/pa_type entries
    for flags in ([], ["-f"], ["-e", "-f"], ["-C"]):
        mit = mit_realm.run(["klist", *flags], ccache=cc)
        mine = ours(mit_realm, "clients.klist", flags, cc)
        assert mine.returncode == 0
        assert mine.stdout == mit.stdout
    # our kvno with MIT's ccache; MIT's klist then lists the ticket we added
    kvno = ours(mit_realm, "clients.kvno", ["HTTP/localhost"], cc)
    assert kvno.returncode == 0, kvno.stderr
    assert kvno.stdout == "HTTP/localhost@EXAMPLE.COM: kvno = 1\n"
    listed = mit_realm.run(["klist"], ccache=cc).stdout
    assert "HTTP/localhost@EXAMPLE.COM" in listed and TGS in listed
    [http] = [cred for cred in read_ccache(str(cc)).tickets() if cred.server.startswith("HTTP")]
    assert_ticket_matches(mit_realm, http, "http", "alice@EXAMPLE.COM")
    # -e restricts the session key enctype, and klist -s sees a current TGT
    cc2 = tmp_path / "alice-mit-2.cc"
    mit_realm.kinit("alice", "alice-password", cc2)
    kvno = ours(mit_realm, "clients.kvno", ["-e", "aes128-cts-hmac-sha1-96", "HTTP/localhost"],
                cc2)
    assert kvno.returncode == 0, kvno.stderr
    [http] = [cred for cred in read_ccache(str(cc2)).tickets() if cred.server.startswith("HTTP")]
    assert http.key.etype == 17
    assert ours(mit_realm, "clients.klist", ["-s"], cc2).returncode == 0
    assert ours(mit_realm, "clients.klist", ["-s"], tmp_path / "none.cc").returncode == 1
    # byte-identical rewrite of MIT's cache (config entries and header tags kept)
    again = tmp_path / "rewritten.cc"
    write_ccache(str(again), read_ccache(str(cc)))
    assert again.read_bytes() == cc.read_bytes()


def test_kinit_keytab_and_renew_cli(mit_realm, tmp_path):
    cc = tmp_path / "kt.cc"
    done = ours(mit_realm, "clients.kinit",
                ["-V", "-r", "1d", "-k", "-t", str(mit_realm.keytab("alice")), "alice"], cc)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"Using default cache: {cc}",
        "Using principal: alice@EXAMPLE.COM",
        f"Using keytab: {mit_realm.keytab('alice')}",
        "Authenticated to Kerberos v5",
    ]
    first = read_ccache(str(cc)).find(TGS)
    renewed = ours(mit_realm, "clients.kinit", ["-R"], cc)
    assert renewed.returncode == 0, renewed.stderr
    second = read_ccache(str(cc)).find(TGS)
    assert second.key != first.key and second.authtime == first.authtime
    assert "renew until" in mit_realm.run(["klist"], ccache=cc).stdout
    # MIT kinit -R accepts our renewed cache too
    mit_realm.run(["kinit", "-R"], ccache=cc)


@pytest.mark.parametrize("args,password,message", [
    (["bob"], "wrong", "kinit: Password incorrect while getting initial credentials\n"),
    (["alice"], "wrong", "kinit: Password incorrect while getting initial credentials\n"),
    (["nobody"], "x", "kinit: Client 'nobody@EXAMPLE.COM' not found in Kerberos database "
                      "while getting initial credentials\n"),
])
def test_kinit_errors_like_mit(mit_realm, tmp_path, args, password, message):
    cc = tmp_path / "err.cc"
    mine = ours(mit_realm, "clients.kinit", args, cc, input=password + "\n")
    mit = mit_realm.run(["kinit", *args], ccache=cc, input=password + "\n", check=False)
    assert mine.returncode == 1 and mit.returncode == 1
    assert mine.stderr == message == mit.stderr
    assert not cc.exists()


def test_cli_other_errors(mit_realm, tmp_path):
    cc = tmp_path / "x.cc"
    missing = ours(mit_realm, "clients.kvno", ["HTTP/localhost"], cc)
    assert missing.returncode == 1 and missing.stderr.startswith("kvno: No credentials cache")
    ours(mit_realm, "clients.kinit", ["alice"], cc, input="alice-password\n")
    nosuch = ours(mit_realm, "clients.kvno", ["HTTP/nowhere"], cc)
    mit = mit_realm.run(["kvno", "HTTP/nowhere"], ccache=cc, check=False)
    assert nosuch.returncode == 1 and mit.returncode == 1
    assert nosuch.stderr == mit.stderr
    bad_opt = ours(mit_realm, "clients.kinit", ["-Z"], cc)
    assert bad_opt.returncode == 1 and "Usage" in bad_opt.stderr
    # an unreachable KDC: a closed port
    closed = tmp_path / "closed.conf"
    closed.write_text(mit_realm.krb5_conf.read_text().replace(
        f"127.0.0.1:{mit_realm.port}", "127.0.0.1:9"))
    env = mit_realm.env(cc)
    env.update(KRB5_CONFIG=str(closed), PYTHONPATH=str(PROJECT_ROOT))
    proc = subprocess.run([sys.executable, "-m", "clients.kinit", "alice"], env=env,
                          cwd=PROJECT_ROOT, input="alice-password\n", capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == ("kinit: Cannot contact any KDC for realm 'EXAMPLE.COM' "
                           "while getting initial credentials\n")


def test_ccache_written_by_library_is_usable_by_mit_kvno(mit_realm, tmp_path):
    kdc = client(mit_realm, None)
    tgt = kdc.get_tgt_keytab("alice@EXAMPLE.COM", read_keytab(str(mit_realm.keytab("alice"))))
    cc = tmp_path / "lib.cc"
    write_ccache(str(cc), Ccache(tgt.client, [tgt]))
    out = mit_realm.run(["kvno", "-e", "aes128-cts-hmac-sha1-96", "HTTP/localhost"], ccache=cc)
    assert out.stdout.strip() == "HTTP/localhost@EXAMPLE.COM: kvno = 1"
    text = format_ccache(str(cc), read_ccache(str(cc)), show_flags=True, show_etype=True,
                         show_config=False)
    assert "Etype (skey, tkt): aes128-cts-hmac-sha1-96, aes256-cts-hmac-sha1-96" in text


def test_replayed_reply_is_rejected(tmp_path):
    """A KDC stand-in that answers every request with MIT's captured AS-REP for alice: the
    reply decrypts with alice's key, but its nonce is not ours, so the client refuses it."""
    replay = capture("alice-as-rep")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(10)

        def answer_once() -> None:
            try:
                _, peer = server.recvfrom(65535)
                server.sendto(replay, peer)
            except OSError:
                pass

        thread = threading.Thread(target=answer_once, daemon=True)
        thread.start()
        kdc = KdcClient(REALM, [server.getsockname()], transport="udp", timeout=5)
        with pytest.raises(ReplyMismatch, match="nonce"):
            kdc.get_tgt_password("alice", "alice-password")
        thread.join(timeout=10)


@pytest.mark.parametrize("who", ["bob", "alice"])
def test_kinit_with_wrong_keytab_like_mit(mit_realm, tmp_path, who):
    bad = tmp_path / f"bad-{who}.keytab"
    write_keytab(str(bad), [KeytabEntry(f"{who}@EXAMPLE.COM", 1, Key(18, bytes(32)))])
    cc = tmp_path / "bad.cc"
    mine = ours(mit_realm, "clients.kinit", ["-k", "-t", str(bad), who], cc)
    mit = mit_realm.run(["kinit", "-k", "-t", str(bad), who], ccache=cc, check=False)
    assert mine.returncode == mit.returncode == 1
    assert mine.stderr == mit.stderr
    assert mine.stderr.startswith("kinit: Preauthentication failed" if who == "bob"
                                  else "kinit: Password incorrect")
