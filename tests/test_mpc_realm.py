"""The realm served through MPC, end to end: three node processes, our front-end, MIT tools.

Nothing is mocked: ``tests/mpc_realm.py`` starts ``python -m mpc.node`` x3 and
``python -m kdc.cli kdc`` (MPC key service) on free loopback ports; principals are made with
the admin tool (``python -m clients.admin``) in short-lived processes; logins are MIT kinit,
kvno and the GSSAPI sample programs.

Admin changes reach the front-end once its principal cache (1.5 s) has expired: the tests
wait for that (``settle``) rather than race it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clients.ccache import read_ccache
from clients.errors import KdcError
from clients.keytab import read_keytab
from kdc import crypto
from kdc.messages import decode
from kdc.messages.model import EncTicketPart, Ticket
from tests.mpc_realm import REALM, SERVICE, require_programs, running_mpc_realm
from tests.realm import child_pids, find_program
from tests.vectors import PROJECT_ROOT

HTTP = f"{SERVICE}@{REALM}"
CACHE_TTL = 1.5  # kdc.keyservice.mpc.DEFAULT_CACHE_TTL


def settle() -> None:
    """Wait out the front-end's principal cache after an admin change."""
    time.sleep(CACHE_TTL + 0.5)


def decrypt_ticket(ticket_der: bytes, keytab_entries) -> EncTicketPart:
    """The EncTicketPart of a service ticket, decrypted with the keytab entry of its kvno and
    etype (RFC 4120 §5.3, key usage 2)."""
    ticket = decode(Ticket, ticket_der)
    for e in keytab_entries:
        if e.kvno == ticket.enc_part.kvno and e.key.etype == ticket.enc_part.etype:
            return decode(EncTicketPart, crypto.decrypt(e.key, 2, ticket.enc_part.cipher))
    raise LookupError(f"no keytab entry for kvno {ticket.enc_part.kvno}")


def service_credential(ccache_path, service: str):
    cc = read_ccache(str(ccache_path))
    found = [c for c in cc.credentials if c.server == service]
    assert found, [c.server for c in cc.credentials]
    return found[-1]


@pytest.fixture(scope="module")
def mpc_realm(tmp_path_factory):
    yield from running_mpc_realm(tmp_path_factory)


@pytest.fixture(autouse=True)
def _mit_programs():
    require_programs("kinit", "kvno", "klist")


def test_mit_kinit_preauth_then_kvno_through_mpc(mpc_realm, tmp_path):
    """MIT kinit (password, +requires_preauth) and MIT kvno; the service ticket decrypts with
    the keytab the admin tool wrote, and names bob with the session key MIT cached."""
    cc = tmp_path / "bob.cc"
    r = mpc_realm.kinit("bob", ccache=cc)
    assert r.returncode == 0, r.stderr + mpc_realm.logs()
    r = mpc_realm.run([find_program("kvno"), HTTP], ccache=cc)
    assert r.returncode == 0, r.stderr
    assert f"{HTTP}: kvno = 1" in r.stdout
    cred = service_credential(cc, HTTP)
    part = decrypt_ticket(cred.ticket, read_keytab(str(mpc_realm.keytab)))
    assert part.crealm == REALM and part.cname.components == ("bob",)
    assert part.key.keytype == cred.key.etype and part.key.keyvalue == cred.key.contents
    # The TGT is under krbtgt's key, which exists only inside MPC: nobody can decrypt it here.
    tgt = service_credential(cc, f"krbtgt/{REALM}@{REALM}")
    assert decode(Ticket, tgt.ticket).enc_part.etype == 18


def test_mit_kinit_without_preauth_and_wrong_password(mpc_realm, tmp_path):
    r = mpc_realm.kinit("alice", ccache=tmp_path / "a.cc")
    assert r.returncode == 0, r.stderr
    r = mpc_realm.kinit("bob", "not-bobs-password", ccache=tmp_path / "b.cc")
    assert r.returncode != 0
    assert "Password incorrect" in r.stderr or "Preauthentication failed" in r.stderr, r.stderr


def test_gssapi_acceptor_accepts_ap_req(mpc_realm, tmp_path):
    """Debian's gss-server with the ktadd-written keytab accepts gss-client's AP-REQ for
    HTTP@localhost; the ticket came from the MPC realm."""
    require_programs("gss-server", "gss-client")
    cc = tmp_path / "gss.cc"
    assert mpc_realm.kinit("bob", ccache=cc).returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = mpc_realm.env(cc)
    env["KRB5_KTNAME"] = f"FILE:{mpc_realm.keytab}"
    server = subprocess.Popen(
        [find_program("gss-server"), "-port", str(port), "-once", "HTTP@localhost"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = None
        for _ in range(50):  # until the server listens (bounded)
            client = subprocess.run(
                [find_program("gss-client"), "-port", str(port), "localhost", "HTTP@localhost",
                 "hello through MPC"],
                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
            if "connect" not in client.stderr.lower() or client.returncode == 0:
                break
            time.sleep(0.1)
        out, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
    assert client is not None and client.returncode == 0, client.stdout + client.stderr
    assert f'Accepted connection: "bob@{REALM}"' in out, out
    assert "hello through MPC" in out


def test_getprinc_listprincs_and_mit_messages(mpc_realm):
    out = mpc_realm.admin_ok("getprinc", "bob")
    assert f"Principal: bob@{REALM}" in out
    assert "Key: vno 1, aes256-cts-hmac-sha1-96" in out
    assert "Key: vno 1, aes128-cts-hmac-sha1-96" in out
    assert "REQUIRES_PRE_AUTH" in out
    names = mpc_realm.admin_ok("listprincs", "*").split()
    assert {f"alice@{REALM}", f"bob@{REALM}", HTTP, f"krbtgt/{REALM}@{REALM}"} <= set(names)
    assert mpc_realm.admin_ok("listprincs", "HTTP/*").split() == [HTTP]
    again = mpc_realm.admin("addprinc", "-pw", "x", "bob")
    assert again.returncode == 1
    assert (f'add_principal: Principal or policy already exists while creating "bob@{REALM}".'
            in again.stderr)
    missing = mpc_realm.admin("getprinc", "nobody")
    assert missing.returncode == 1
    assert f'get_principal: Principal does not exist while retrieving "nobody@{REALM}".' in (
        missing.stderr)
    refused = mpc_realm.admin("ktadd", "-norandkey", "-k", "/dev/null", "bob")
    assert refused.returncode == 1 and "nobody holds" in refused.stderr


def test_modprinc_and_prompted_password(mpc_realm, tmp_path):
    """addprinc without -pw reads the password twice (like MIT); modprinc +requires_preauth
    shows in getprinc and the principal then needs pre-authentication."""
    r = mpc_realm.admin("addprinc", "-maxlife", "2h", "dave", input="dave-pw\ndave-pw\n")
    assert r.returncode == 0, r.stderr
    assert f'Principal "dave@{REALM}" created.' in r.stdout
    assert "Maximum ticket life: 0 days 02:00:00" in mpc_realm.admin_ok("getprinc", "dave")
    bad = mpc_realm.admin("addprinc", "erin", input="one\ntwo\n")
    assert bad.returncode == 1 and "Password mismatch" in bad.stderr
    assert f'Principal "dave@{REALM}" modified.' in mpc_realm.admin_ok(
        "modprinc", "+requires_preauth", "dave")
    assert "Attributes: REQUIRES_PRE_AUTH" in mpc_realm.admin_ok("getprinc", "dave")
    settle()
    mpc_realm.passwords["dave"] = "dave-pw"
    assert mpc_realm.kinit("dave", ccache=tmp_path / "d.cc").returncode == 0


def test_mpc_key_service_equals_reference_byte_for_byte(mpc_realm):
    """Same key, usage, plaintext and confounder: the MPC key service's ciphertext equals
    kdc.crypto's; decryption round-trips, and a flipped bit is an integrity failure."""
    from kdc.keyservice.base import IntegrityFailure, KeyRef
    from kdc.keyservice.mpc import MpcKeyService

    password = "carol-password"
    mpc_realm.admin_ok("addprinc", "-pw", password, "carol")
    name = f"carol@{REALM}"
    salt = f"{REALM}carol".encode()

    async def check() -> None:
        ks = MpcKeyService(mpc_realm.client_config, REALM, timeout=30)
        try:
            entry = await ks.lookup(name)
            assert entry is not None and entry.kvno == 1
            for etype in (18, 17):
                key = crypto.string_to_key(etype, password, salt)
                ref = KeyRef(name, 1, etype)
                for usage, size in ((2, 0), (3, 37), (2, 200), (1, 21)):
                    plain = os.urandom(size)
                    conf = os.urandom(16)
                    want = crypto.encrypt(key, usage, plain, conf)
                    got = await ks.encrypt(ref, usage, plain, conf)
                    assert got == want, (etype, usage, size)
                    assert await ks.decrypt(ref, usage, want) == plain
                    forged = bytearray(want)
                    forged[len(forged) // 2] ^= 1
                    with pytest.raises(IntegrityFailure):
                        await ks.decrypt(ref, usage, bytes(forged))
            # Concurrent calls of one size class go out as one job.
            key = crypto.string_to_key(18, password, salt)
            plains = [os.urandom(37) for _ in range(20)]
            confs = [os.urandom(16) for _ in range(20)]
            await ks.lookup(name)  # cached: every call below is queued in this iteration
            jobs_before = ks.stats["jobs"]
            got = await asyncio.gather(*(ks.encrypt(KeyRef(name, 1, 18), 3, p, c)
                                         for p, c in zip(plains, confs, strict=True)))
            assert got == [crypto.encrypt(key, 3, p, c)
                           for p, c in zip(plains, confs, strict=True)]
            assert ks.stats["jobs"] - jobs_before < 20
            # Encryptions of one to four SHA-1 blocks (a ticket and an AS-REP enc-part) share
            # one job on the largest one's class circuit; each still equals the reference.
            items = [(2 + i % 2, os.urandom(n), os.urandom(16))
                     for i, n in enumerate((0, 37, 120, 200, 20, 180))]
            await ks.lookup(name)  # cached: every call below is queued in this iteration
            jobs_before = ks.stats["jobs"]
            got = await asyncio.gather(*(ks.encrypt(KeyRef(name, 1, 18), u, p, c)
                                         for u, p, c in items))
            assert got == [crypto.encrypt(key, u, p, c) for u, p, c in items]
            assert ks.stats["jobs"] - jobs_before == 1
            # A decryption and encryptions issued together on idle lanes (one login's
            # PA-ENC-TIMESTAMP and reply) go out as ONE krb-pair job; a forgery still fails.
            stamp = os.urandom(21)
            pa = crypto.encrypt(key, 1, stamp)
            forged = bytearray(pa)
            forged[3] ^= 1
            for cipher, want in ((pa, stamp), (bytes(forged), None)):
                await ks.lookup(name)  # cached: every call below is queued in this iteration
                jobs_before = ks.stats["jobs"]
                got = await asyncio.gather(
                    *(ks.encrypt(KeyRef(name, 1, 18), u, p, c) for u, p, c in items[2:4]),
                    ks.decrypt(KeyRef(name, 1, 18), 1, cipher), return_exceptions=True)
                assert got[:2] == [crypto.encrypt(key, u, p, c) for u, p, c in items[2:4]]
                assert got[2] == want if want else isinstance(got[2], IntegrityFailure)
                assert ks.stats["jobs"] - jobs_before == 1
        finally:
            await ks.close()

    asyncio.run(check())


def test_cpw_then_new_password_works_and_old_fails(mpc_realm, tmp_path):
    mpc_realm.admin_ok("addprinc", "-pw", "frank-old", "+requires_preauth", "frank")
    out = mpc_realm.admin_ok("cpw", "-pw", "frank-new", "frank")
    assert f'Password for "frank@{REALM}" changed.' in out
    assert "Key: vno 2, aes256-cts-hmac-sha1-96" in mpc_realm.admin_ok("getprinc", "frank")
    settle()
    assert mpc_realm.kinit("frank", "frank-new", ccache=tmp_path / "f1.cc").returncode == 0
    old = mpc_realm.kinit("frank", "frank-old", ccache=tmp_path / "f2.cc")
    assert old.returncode != 0
    assert "Password incorrect" in old.stderr or "Preauthentication failed" in old.stderr


def test_delprinc_then_client_not_found(mpc_realm, tmp_path):
    mpc_realm.admin_ok("addprinc", "-pw", "gina-pw", "gina")
    settle()
    assert mpc_realm.kinit("gina", "gina-pw", ccache=tmp_path / "g.cc").returncode == 0
    no = mpc_realm.admin("delprinc", "gina", input="no\n")
    assert no.returncode == 1 and "not deleted" in no.stdout
    out = mpc_realm.admin_ok("delprinc", "-force", "gina")
    assert f'Principal "gina@{REALM}" deleted.' in out
    settle()
    r = mpc_realm.kinit("gina", "gina-pw", ccache=tmp_path / "g2.cc")
    assert r.returncode != 0
    assert f"Client 'gina@{REALM}' not found in Kerberos database" in r.stderr, r.stderr


def test_ktadd_twice_old_keytab_stops_working(mpc_realm, tmp_path):
    svc = f"svc/ktadd@{REALM}"
    mpc_realm.admin_ok("addprinc", "-randkey", "svc/ktadd")
    first, second = tmp_path / "first.keytab", tmp_path / "second.keytab"
    out = mpc_realm.admin_ok("ktadd", "-k", str(first), "svc/ktadd")
    assert (f"Entry for principal {svc} with kvno 2, encryption type aes256-cts-hmac-sha1-96 "
            f"added to keytab WRFILE:{first}.") in out
    settle()
    cc = tmp_path / "kt.cc"
    assert mpc_realm.kinit("alice", ccache=cc).returncode == 0
    assert mpc_realm.run([find_program("kvno"), svc], ccache=cc).returncode == 0
    ticket1 = service_credential(cc, svc).ticket
    assert decrypt_ticket(ticket1, read_keytab(str(first))).cname.components == ("alice",)

    mpc_realm.admin_ok("ktadd", "-k", str(second), "svc/ktadd")
    settle()
    cc2 = tmp_path / "kt2.cc"
    assert mpc_realm.kinit("alice", ccache=cc2).returncode == 0
    r = mpc_realm.run([find_program("kvno"), svc], ccache=cc2)
    assert r.returncode == 0 and f"{svc}: kvno = 3" in r.stdout, r.stdout + r.stderr
    ticket2 = service_credential(cc2, svc).ticket
    assert decrypt_ticket(ticket2, read_keytab(str(second))).cname.components == ("alice",)
    with pytest.raises(LookupError):  # the old keytab has no kvno-3 key
        decrypt_ticket(ticket2, read_keytab(str(first)))
    stale = [e for e in read_keytab(str(first))]
    forced = [type(e)(e.principal, 3, e.key, e.timestamp) for e in stale]
    with pytest.raises(crypto.IntegrityError):  # nor do its keys decrypt the new ticket
        decrypt_ticket(ticket2, forced)
    # MIT kvno with the old keytab as the acceptor's keytab: kvno -k verifies the ticket.
    check_old = mpc_realm.run([find_program("kvno"), "-k", str(first), svc], ccache=cc2)
    assert check_old.returncode != 0
    check_new = mpc_realm.run([find_program("kvno"), "-k", str(second), svc], ccache=cc2)
    assert check_new.returncode == 0, check_new.stderr


def test_first_demo_login_retries_only_while_service_is_unavailable(mpc_realm):
    """`mpckdc up`'s first login: success through MPC; an answer other than
    SVC_UNAVAILABLE ends it at once; a KDC that never answers ends it at the deadline."""
    from kdc.cli import free_ports, wait_for_login

    assert wait_for_login(REALM, mpc_realm.port, timeout=60)
    t0 = time.monotonic()
    assert not wait_for_login("NO-SUCH.REALM", mpc_realm.port, timeout=60)  # not retried
    assert not wait_for_login(REALM, free_ports(1)[0], timeout=1.0)  # nothing listens there
    assert time.monotonic() - t0 < 10


def test_mpckdc_up_serves_demo_realm_through_mpc(tmp_path):
    """`mpckdc up`: three nodes + front-end, krbtgt made inside MPC, the demo user and
    HTTP/localhost with its keytab; MIT kinit/kvno work with the krb5.conf it wrote; `mpckdc
    admin -d DIR` finds the cluster; SIGTERM stops every process it started."""
    from kdc.cli import free_ports
    from tests.mpc_realm import child_env

    directory = tmp_path / "data"
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kdc.cli", "up", "--dir", str(directory), "--port", str(port)],
        cwd=PROJECT_ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        lines = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        out = "".join(lines)
        assert "Press Ctrl-C" in out, out
        assert f"KRB5_CONFIG={directory}/krb5.conf" in out and "kinit demo@EXAMPLE.COM" in out
        children = child_pids(proc.pid)
        assert len(children) >= 3  # the three node processes
        env = child_env() | {"KRB5_CONFIG": str(directory / "krb5.conf"),
                             "KRB5CCNAME": f"FILE:{tmp_path}/demo.cc"}
        # `up` logged the demo user in once before printing the kinit line, so the circuits
        # of a login are built: MIT kinit is answered at once (no SVC_UNAVAILABLE retry).
        assert "Logging in as the demo user once" in out
        kinit = subprocess.run([find_program("kinit"), "demo@EXAMPLE.COM"],
                               input="demo-password\n", env=env, capture_output=True,
                               text=True, timeout=60)
        assert kinit.returncode == 0, kinit.stderr
        kvno = subprocess.run([find_program("kvno"), HTTP], env=env, capture_output=True,
                              text=True, timeout=60)
        for _ in range(20):
            if kvno.returncode == 0 or "service is not available" not in kvno.stderr:
                break
            kvno = subprocess.run([find_program("kvno"), HTTP], env=env, capture_output=True,
                                  text=True, timeout=60)
        assert kvno.returncode == 0, kvno.stderr
        cred = service_credential(tmp_path / "demo.cc", HTTP)
        part = decrypt_ticket(cred.ticket, read_keytab(str(directory / "http.keytab")))
        assert part.cname.components == ("demo",)
        admin = subprocess.run([sys.executable, "-m", "kdc.cli", "admin", "-d", str(directory),
                                "getprinc", "demo"], cwd=PROJECT_ROOT, env=child_env(),
                               capture_output=True, text=True, timeout=120)
        assert admin.returncode == 0, admin.stderr
        assert "Attributes: REQUIRES_PRE_AUTH" in admin.stdout
        config = (directory / "kdc.toml").read_text()
        assert 'kind = "mpc"' in config and "reference" not in config
    finally:
        proc.terminate()
        try:
            rest, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert 'password "demo-password"' in err
    assert "Stopped." in rest and "Traceback" not in err
    assert not any(Path(f"/proc/{c}").exists() and _is_running(c) for c in children)


def _is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_bulk_addprinc_keytab_logins(mpc_realm, tmp_path):
    """bulk-addprinc: one batched precompute job for the batch; the keytab it wrote logs the
    users in (pre-authenticated AS through MPC)."""
    keytab = tmp_path / "users.keytab"
    out = mpc_realm.admin_ok("bulk-addprinc", "--count", "5", "--format", "load{i:02d}",
                             "+requires_preauth", "-randkey", "-k", str(keytab))
    assert "5 principals created" in out
    entries = read_keytab(str(keytab))
    assert sorted({e.principal for e in entries}) == [f"load{i:02d}@{REALM}" for i in range(5)]
    assert {(e.kvno, e.key.etype) for e in entries} == {(1, 18), (1, 17)}
    assert "Attributes: REQUIRES_PRE_AUTH" in mpc_realm.admin_ok("getprinc", "load03")
    settle()
    mine = [e for e in entries if e.principal == f"load03@{REALM}"]
    for _ in range(20):  # bounded: a new message size class makes the nodes build a circuit
        try:
            tgt = mpc_realm.client(timeout=30).get_tgt_keytab(f"load03@{REALM}", mine)
            break
        except KdcError as exc:
            assert exc.code == 29, exc
    assert tgt.client == f"load03@{REALM}"
