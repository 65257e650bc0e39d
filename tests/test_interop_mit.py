"""End to end: the real MIT 1.20 clients (Debian krb5-user) against our KDC in a subprocess.

Nothing is mocked: ``tests.realm`` starts ``python -m kdc.cli kdc`` on a free 127.0.0.1 port
and every check here runs MIT ``kinit``/``klist``/``kvno`` with KRB5_CONFIG and KRB5CCNAME
pointing into the realm's directory. Expected texts are what MIT 1.20 prints against its own
krb5kdc for the same situation (checked side by side with ``tests/mit_kdc.py``).
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clients.ccache import read_ccache
from clients.client import KdcClient
from clients.errors import KdcError
from clients.keytab import read_keytab
from kdc.crypto import Key, decrypt
from kdc.messages import decode, decode_message
from kdc.messages.constants import FORWARDABLE, INITIAL, PRE_AUTHENT, RENEWABLE
from kdc.messages.model import EncTicketPart, KdcRep, KrbError, Ticket
from tests.realm import (
    MIT_CLIENTS,
    PROJECT_ROOT,
    child_env,
    child_pids,
    find_program,
    running_realm,
    start_realm,
)
from tests.vectors import capture


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    yield from running_realm(tmp_path_factory)


pytestmark = pytest.mark.skipif(
    any(find_program(p) is None for p in MIT_CLIENTS),
    reason="MIT client programs (Debian krb5-user) are not installed",
)

TGS = "krbtgt/EXAMPLE.COM@EXAMPLE.COM"
HTTP = "HTTP/localhost@EXAMPLE.COM"
KEY_USAGE_TICKET = 2  # RFC 4120 §7.5.1: AS-REP/TGS-REP ticket, encrypted with the service key


def tgt(realm, ccache):
    cc = read_ccache(str(ccache))
    cred = cc.find(TGS)
    assert cred is not None, [c.server for c in cc.tickets()]
    return cc, cred


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_kinit_password_with_preauth_and_klist(realm, tmp_path, tcp):
    ccache = tmp_path / "bob.ccache"
    realm.kinit("bob@EXAMPLE.COM", ccache=ccache, tcp=tcp)
    listing = realm.run(["klist"], ccache=ccache).stdout
    assert "Default principal: bob@EXAMPLE.COM" in listing
    assert TGS in listing
    cc, cred = tgt(realm, ccache)
    assert cc.default_principal == "bob@EXAMPLE.COM"
    assert cred.flags & PRE_AUTHENT and cred.flags & INITIAL
    assert cred.key.etype == 18
    # The KDC asked for pre-authentication first, then issued the ticket.
    log = realm.log_text()
    assert re.search(r"NEEDED_PREAUTH: bob@EXAMPLE.COM for krbtgt/EXAMPLE.COM@EXAMPLE.COM", log)
    assert re.search(r"ISSUE: authtime \d+, .*bob@EXAMPLE.COM for krbtgt/EXAMPLE.COM", log)


def test_kinit_without_preauth_alice(realm, tmp_path):
    ccache = tmp_path / "alice.ccache"
    realm.kinit("alice@EXAMPLE.COM", ccache=ccache)
    _cc, cred = tgt(realm, ccache)
    assert cred.client == "alice@EXAMPLE.COM"
    assert not cred.flags & PRE_AUTHENT


def test_kinit_with_service_keytab(realm, tmp_path):
    ccache = tmp_path / "http.ccache"
    realm.run(["kinit", "-k", "-t", str(realm.keytab("http")), HTTP], ccache=ccache)
    cc, _cred = tgt(realm, ccache)
    assert cc.default_principal == HTTP


def test_kvno_service_ticket_decrypts_with_the_service_key(realm, tmp_path):
    ccache = tmp_path / "alice.ccache"
    realm.kinit("alice@EXAMPLE.COM", ccache=ccache)
    out = realm.run(["kvno", HTTP], ccache=ccache).stdout
    assert f"{HTTP}: kvno = 1" in out
    cred = read_ccache(str(ccache)).find(HTTP)
    assert cred is not None
    ticket = decode(Ticket, cred.ticket)
    assert ticket.sname.components == ("HTTP", "localhost")
    keys = {e.key.etype: e.key for e in read_keytab(str(realm.keytab("http")))}
    service_key: Key = keys[ticket.enc_part.etype]
    part = decode(
        EncTicketPart, decrypt(service_key, KEY_USAGE_TICKET, ticket.enc_part.cipher)
    )
    assert part.cname.components == ("alice",)
    assert part.crealm == "EXAMPLE.COM"
    # The session key inside the ticket is the one MIT kvno holds in its cache.
    assert part.key.keytype == cred.key.etype
    assert part.key.keyvalue == cred.key.contents
    assert part.endtime == cred.endtime


def test_renew_with_kinit_R(realm, tmp_path):
    ccache = tmp_path / "renew.ccache"
    realm.kinit("alice@EXAMPLE.COM", flags=["-r", "2d"], ccache=ccache)
    _cc, first = tgt(realm, ccache)
    assert first.flags & RENEWABLE
    assert first.renew_till > first.endtime
    time.sleep(1.1)  # so that the renewed ticket's start time differs from the first one's
    realm.run(["kinit", "-R"], ccache=ccache)
    _cc, renewed = tgt(realm, ccache)
    assert renewed.authtime == first.authtime  # RFC 4120 §3.3.3.1: renewal keeps authtime
    assert renewed.starttime > first.starttime
    assert renewed.renew_till == first.renew_till
    assert renewed.key.contents != first.key.contents  # a fresh session key
    assert re.search(r"TGS_REQ .*ISSUE: .*alice@EXAMPLE.COM for krbtgt/EXAMPLE.COM", realm.log_text())


def test_forwardable_ticket_klist_f(realm, tmp_path):
    ccache = tmp_path / "fwd.ccache"
    realm.kinit("alice@EXAMPLE.COM", flags=["-f"], ccache=ccache)
    listing = realm.run(["klist", "-f"], ccache=ccache).stdout
    flags = re.search(r"Flags: (\w+)", listing)
    assert flags is not None and "F" in flags.group(1), listing
    _cc, cred = tgt(realm, ccache)
    assert cred.flags & FORWARDABLE


# -- errors ------------------------------------------------------------------------------------


def test_wrong_password_preauth_failed(realm, tmp_path):
    """MIT 1.20 kinit turns KDC_ERR_PREAUTH_FAILED (24) into "Password incorrect" (it prints
    exactly this against MIT krb5kdc too); the KDC log shows the PREAUTH_FAILED status."""
    proc = realm.kinit("bob@EXAMPLE.COM", "not-bobs-password", ccache=tmp_path / "c", check=False)
    assert proc.returncode != 0
    assert "Password incorrect while getting initial credentials" in proc.stderr
    assert re.search(r"PREAUTH_FAILED: bob@EXAMPLE.COM for krbtgt/EXAMPLE.COM", realm.log_text())
    # On the wire it is error 24, "Preauthentication failed" (seen through our client library).
    client = KdcClient("EXAMPLE.COM", [realm.address], transport="udp")
    with pytest.raises(KdcError) as failure:
        client.get_tgt_password("bob@EXAMPLE.COM", "not-bobs-password")
    assert failure.value.code == 24
    assert failure.value.text == "Preauthentication failed"


def test_address_that_keeps_failing_is_refused_by_kdc_policy(tmp_path):
    """kdc/failure_budget.py with real MIT kinit: after the address's two failed
    pre-authentications, even the right password is refused at once without a decryption
    (KDC_ERR_POLICY); the same realm still serves requests that cost no key."""
    strict = start_realm(tmp_path / "realm", address_failure_burst=2,
                         address_failure_interval=3600)
    try:
        for i in range(2):
            proc = strict.kinit("bob@EXAMPLE.COM", "not-bobs-password",
                                ccache=tmp_path / f"w{i}", check=False)
            assert "Password incorrect while getting initial credentials" in proc.stderr
        proc = strict.kinit("bob@EXAMPLE.COM", ccache=tmp_path / "c", check=False)
        assert proc.returncode != 0
        assert "KDC policy rejects request while getting initial credentials" in proc.stderr
        log = strict.log_text()
        assert log.count("PREAUTH_FAILED: bob@EXAMPLE.COM") == 2
        assert re.search(r"TOO_MANY_FAILURES: bob@EXAMPLE.COM for krbtgt/EXAMPLE.COM", log)
        strict.kinit("alice@EXAMPLE.COM", ccache=tmp_path / "a")  # no pre-auth: no key cost
        assert read_ccache(str(tmp_path / "a")).find(TGS) is not None
    finally:
        strict.stop()


def test_unknown_client(realm, tmp_path):
    proc = realm.kinit("nobody@EXAMPLE.COM", "x", ccache=tmp_path / "c", check=False)
    assert proc.returncode != 0
    assert "Client 'nobody@EXAMPLE.COM' not found in Kerberos database" in proc.stderr
    assert "CLIENT_NOT_FOUND: nobody@EXAMPLE.COM" in realm.log_text()


def test_unknown_service(realm, tmp_path):
    ccache = tmp_path / "c"
    realm.kinit("alice@EXAMPLE.COM", ccache=ccache)
    proc = realm.run(["kvno", "nosuch/host@EXAMPLE.COM"], ccache=ccache, check=False)
    assert proc.returncode != 0
    assert "Server nosuch/host@EXAMPLE.COM not found in Kerberos database" in proc.stderr


def test_clock_skew_with_real_mit_kinit(realm, tmp_path):
    """Real MIT path: kinit runs under libfaketime 10 minutes ahead. With kdc_timesync = 0 the
    client does not adopt the KDC's time, so its PA-ENC-TIMESTAMP is outside the 300 s window:
    the KDC answers KRB_AP_ERR_SKEW (37) and kinit prints "Clock skew too great" (as it does
    against MIT krb5kdc). With MIT's default kdc_timesync = 1 the client corrects itself and
    succeeds; both are checked."""
    nosync = tmp_path / "krb5-nosync.conf"
    nosync.write_text(
        realm.krb5_conf.read_text().replace("[libdefaults]\n", "[libdefaults]\n    kdc_timesync = 0\n")
    )
    proc = realm.kinit(
        "bob@EXAMPLE.COM", ccache=tmp_path / "c", faketime="+600", config=nosync, check=False
    )
    assert proc.returncode != 0
    assert "Clock skew too great while getting initial credentials" in proc.stderr
    assert re.search(r"bob@EXAMPLE.COM for krbtgt/EXAMPLE.COM.*Clock skew too great", realm.log_text())
    # Default config: MIT kinit adopts the server time from the skew error and gets a ticket.
    realm.kinit("bob@EXAMPLE.COM", ccache=tmp_path / "c2", faketime="+600")


# -- transports --------------------------------------------------------------------------------


def test_response_too_big_falls_back_to_tcp(tmp_path):
    """Like MIT's t_bigreply.py: with udp_max_reply = 10 every UDP reply is too big; MIT kinit
    gets KRB_ERR_RESPONSE_TOO_BIG (52) over UDP and retries over TCP, where it succeeds."""
    small = start_realm(tmp_path / "realm", udp_max_reply=10)
    try:
        # Raw UDP first: the error itself.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(capture("alice-as-req"), small.address)
            error = decode_message(s.recvfrom(65536)[0])
        assert isinstance(error, KrbError) and error.error_code == 52
        audit = small.work / "audit.jsonl"
        seen = len(audit.read_text().splitlines())
        ccache = tmp_path / "c"
        small.kinit("alice@EXAMPLE.COM", ccache=ccache)  # krb5.conf prefers UDP
        assert read_ccache(str(ccache)).find(TGS) is not None
        # The audit log (and the MIT-shaped log) shows both: the AS-REQ processed for UDP,
        # whose reply was too big, then the same request over TCP, answered from the
        # lookaside cache (MIT behaves the same: the reply is built once).
        events = [json.loads(line) for line in audit.read_text().splitlines()[seen:]]
        assert [e["transport"] for e in events] == ["udp", "tcp"], events
        assert events[0]["status"] == "ISSUE" and events[0]["client"] == "alice@EXAMPLE.COM"
        assert events[1]["status"] == "LOOKASIDE"
        assert "resending previous response" in small.log_text()
    finally:
        small.stop()


def test_several_requests_on_one_tcp_connection(realm):
    """Raw socket: three captured MIT AS-REQs back to back on one connection, three replies."""
    request = capture("alice-as-req")
    with socket.create_connection(realm.address, timeout=10) as s:
        s.sendall(struct.pack(">I", len(request)) + request + struct.pack(">I", len(request)))
        s.sendall(request + struct.pack(">I", len(request)) + request)
        for _ in range(3):
            reply = _read_frame(s)
            msg = decode_message(reply)
            assert isinstance(msg, KdcRep) and msg.msg_type == 11
            assert msg.cname.components == ("alice",)


def test_oversized_tcp_length_gets_error_then_close(realm):
    with socket.create_connection(realm.address, timeout=10) as s:
        s.sendall(b"\x80\x00\x01\x00" + capture("alice-as-req"))
        error = decode_message(_read_frame(s))
        assert isinstance(error, KrbError) and error.error_code == 61  # KRB_ERR_FIELD_TOOLONG
        assert s.recv(1) == b""
    assert realm.alive()
    assert re.search(r"TCP client 127\.0\.0\.1\.\d+ wants 2147483904 bytes, cap is 65536", realm.log_text())


def _read_frame(s: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise AssertionError("connection closed early")
            data += chunk
        return data

    (length,) = struct.unpack(">I", exactly(4))
    return exactly(length)


# -- the embedded realm (`mpckdc up`) ------------------------------------------------------------


def test_two_workers_share_the_port(tmp_path):
    """`--workers 2`: two processes on one port (SO_REUSEPORT); MIT clients are served over UDP
    and TCP, and stopping the parent stops both workers."""
    multi = start_realm(tmp_path / "realm", workers=2)
    try:
        workers = child_pids(multi.proc.pid)
        assert len(workers) == 2
        for i in range(4):
            multi.kinit("alice@EXAMPLE.COM", ccache=tmp_path / f"c{i}", tcp=bool(i % 2))
            assert read_ccache(str(tmp_path / f"c{i}")).find(TGS) is not None
        logged_pids = set(int(p) for p in re.findall(r"mpckdc\[(\d+)\]\(info\): AS_REQ", multi.log_text()))
        assert logged_pids <= workers and logged_pids
    finally:
        multi.stop()
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists()


def test_mpckdc_client_subcommands_interoperate_with_mit_klist(realm, tmp_path):
    """`mpckdc kinit` (our client, via the CLI) writes a ccache that MIT klist reads, and
    `mpckdc kvno` uses it to get a service ticket from our KDC."""
    ccache = tmp_path / "ours.ccache"
    env = realm.env(ccache)
    env["PYTHONPATH"] = child_env()["PYTHONPATH"]
    kinit = subprocess.run(
        [sys.executable, "-m", "kdc.cli", "kinit", "bob@EXAMPLE.COM"],
        input="bob-password\n", env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60,
    )
    assert kinit.returncode == 0, kinit.stderr
    listing = realm.run(["klist"], ccache=ccache).stdout
    assert "Default principal: bob@EXAMPLE.COM" in listing and TGS in listing
    kvno = subprocess.run(
        [sys.executable, "-m", "kdc.cli", "kvno", HTTP],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert kvno.returncode == 0, kvno.stderr
    assert HTTP in realm.run(["klist"], ccache=ccache).stdout
