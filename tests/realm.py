"""A throwaway realm served by OUR KDC, for end-to-end tests (after MIT's ``k5test.py`` K5Realm).

``start_realm(workdir)`` creates realm EXAMPLE.COM under ``workdir`` on the reference key
service, with the principals of the MIT captures and ``tests/mit_kdc.py``:

    alice@EXAMPLE.COM           password alice-password (no preauth required)
    bob@EXAMPLE.COM             password bob-password, +requires_preauth
    HTTP/localhost@EXAMPLE.COM  random key, keytab ``http.keytab``
    krbtgt/EXAMPLE.COM          random key

then starts ``python -m kdc.cli kdc --config ...`` as a SUBPROCESS on a free 127.0.0.1 port
(UDP and TCP on the same port, chosen by the server: port 0 plus a ready file), waits until
it answers a real request, and stops it by PID at teardown. ``krb5.conf`` prefers UDP,
``krb5-tcp.conf`` forces TCP (``udp_preference_limit = 1``). Every program run through
``realm.run`` gets KRB5_CONFIG and KRB5CCNAME explicitly; /etc/krb5.conf is never read.

Edge paths are forced by configuration, as MIT's tests do (``t_bigreply.py``): pass
``udp_max_reply=`` to make every reply too big for UDP.

Fixture ``realm`` (module scope) for a conftest's ``pytest_plugins``; a test module can define
its own in two lines with ``running_realm`` (as tests/test_interop_mit.py does).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.mit_kdc import find_program
from tests.vectors import PROJECT_ROOT

# The reference key service (clear keys) is refused outside tests; this realm is a test realm.
os.environ.setdefault("MPCKDC_TESTING_REFERENCE", "1")

REALM = "EXAMPLE.COM"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}
SERVICE = "HTTP/localhost"
MIT_CLIENTS = ("kinit", "klist", "kvno")
START_TIMEOUT = 60.0  # seconds; a cold numba/pyc cache on a busy 2-core machine is slow


def require_mit_clients() -> None:
    """Skip (with the reason) when the Debian krb5-user programs are not installed."""
    missing = [p for p in MIT_CLIENTS if find_program(p) is None]
    if missing:
        pytest.skip(f"MIT client programs not installed: {', '.join(missing)} (apt krb5-user)")


def child_env() -> dict[str, str]:
    """Environment for our own Python processes: no KRB5* leaks, the checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
    env["PYTHONPATH"] = str(PROJECT_ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.setdefault("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".numba_cache"))
    env["LC_ALL"] = "C"
    return env


@dataclass
class KdcRealm:
    """A running realm; ``run`` executes MIT (or our) programs against it."""

    work: Path
    realm: str = REALM
    port: int = 0
    proc: subprocess.Popen | None = None
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))

    # -- files ------------------------------------------------------------------------------

    @property
    def krb5_conf(self) -> Path:
        return self.work / "krb5.conf"

    @property
    def krb5_tcp_conf(self) -> Path:
        return self.work / "krb5-tcp.conf"

    @property
    def config(self) -> Path:
        return self.work / "kdc.toml"

    @property
    def database(self) -> Path:
        return self.work / "reference-db.json"

    @property
    def log_file(self) -> Path:
        return self.work / "kdc.log"

    @property
    def ccache(self) -> Path:
        return self.work / "ccache"

    def keytab(self, name: str = "http") -> Path:
        """``http``, ``alice`` or ``bob``."""
        return self.work / f"{name}.keytab"

    def principal(self, name: str) -> str:
        return f"{name}@{self.realm}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- running programs ---------------------------------------------------------------------

    def env(
        self,
        ccache: str | os.PathLike | None = None,
        *,
        tcp: bool = False,
        config: str | os.PathLike | None = None,
    ) -> dict:
        """KRB5_CONFIG (``config``, else krb5-tcp.conf or krb5.conf) and KRB5CCNAME set."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
        env["KRB5_CONFIG"] = str(config or (self.krb5_tcp_conf if tcp else self.krb5_conf))
        env["KRB5CCNAME"] = f"FILE:{ccache or self.ccache}"
        env["KRB5_KTNAME"] = f"FILE:{self.work}/no-default.keytab"
        env["KRB5_CLIENT_KTNAME"] = f"FILE:{self.work}/no-default-client.keytab"
        env["LC_ALL"] = "C"
        env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        return env

    def run(
        self,
        args: list[str],
        *,
        ccache: str | os.PathLike | None = None,
        tcp: bool = False,
        input: str | None = None,
        check: bool = True,
        timeout: float = 30,
        faketime: str | None = None,
        config: str | os.PathLike | None = None,
    ) -> subprocess.CompletedProcess:
        """Run a program with this realm's environment (text mode, output captured).

        ``faketime="+600"`` runs it under libfaketime (Debian ``faketime``) that many seconds
        ahead, to test clock skew with the real MIT client.
        """
        program = find_program(args[0]) or args[0]
        command = [program, *args[1:]]
        if faketime is not None:
            wrapper = find_program("faketime")
            if wrapper is None:
                pytest.skip("libfaketime (Debian package faketime) is not installed")
            command = [wrapper, "-f", faketime, *command]
        proc = subprocess.run(
            command,
            env=self.env(ccache, tcp=tcp, config=config),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}\n"
                f"KDC log tail:\n{self.log_text()[-2000:]}"
            )
        return proc

    def kinit(
        self,
        principal: str,
        password: str | None = None,
        *,
        flags: list[str] | tuple[str, ...] = (),
        ccache: str | os.PathLike | None = None,
        **kw,
    ) -> subprocess.CompletedProcess:
        """MIT kinit with the password on stdin (default: the principal's known password)."""
        if password is None:
            password = self.passwords[principal.split("@")[0]]
        return self.run(
            ["kinit", *flags, principal], ccache=ccache, input=password + "\n", **kw
        )

    # -- life cycle ---------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM our KDC by PID, then SIGKILL if it does not stop within 10 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def create_database(work: Path, realm: str = REALM) -> None:
    """Reference database and keytabs (keys exported like kadmin ``ktadd -norandkey``)."""
    from clients.keytab import KeytabEntry, write_keytab
    from kdc.keyservice.base import REQUIRES_PREAUTH
    from kdc.keyservice.reference import ReferenceKeyService

    db = ReferenceKeyService(realm)
    db.add_principal(f"krbtgt/{realm}@{realm}", randkey=True)
    db.add_principal(f"alice@{realm}", password=PASSWORDS["alice"])
    db.add_principal(f"bob@{realm}", password=PASSWORDS["bob"], attributes=(REQUIRES_PREAUTH,))
    db.add_principal(f"{SERVICE}@{realm}", randkey=True)
    for file_name, name in (("http", SERVICE), ("alice", "alice"), ("bob", "bob")):
        principal = f"{name}@{realm}"
        entry = db.get(principal)
        write_keytab(
            str(work / f"{file_name}.keytab"),
            [KeytabEntry(principal, entry.kvno, key) for key in db.keys_of(principal)],
        )
    db.save(work / "reference-db.json")


def write_kdc_config(work: Path, realm: str = REALM, *, audit: bool = True,
                     **realm_options) -> Path:
    """The front-end TOML: port 0 (the server picks one free port for UDP and TCP)."""
    from kdc.config import render_toml

    realm_table = {
        "name": realm,
        "max_life": "10h",
        "max_renewable_life": "7d",
        "supported_enctypes": "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96",
        "clockskew": 300,
        **realm_options,
    }
    path = work / "kdc.toml"
    path.write_text(
        render_toml(
            {
                "realm": realm_table,
                "listen": {"udp": ["127.0.0.1:0"], "tcp": ["127.0.0.1:0"]},
                "keyservice": {"kind": "reference", "database": "reference-db.json"},
                "log": {"file": "kdc.log", "level": "info",
                        **({"audit": "audit.jsonl"} if audit else {})},
            }
        )
    )
    return path


def _probe(address: tuple[str, int], request: bytes, deadline: float) -> bool:
    """True once the KDC answers ``request`` over UDP (any reply) and accepts a TCP connect."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        while time.monotonic() < deadline:
            s.sendto(request, address)
            try:
                s.recvfrom(65536)
                break
            except TimeoutError:
                continue
        else:
            return False
    with socket.create_connection(address, timeout=5):
        return True


def child_pids(pid: int) -> set[int]:
    """The PIDs of ``pid``'s children (Linux /proc; every thread's list). A thread that ends
    while the lists are read has no children left to report, so it is skipped."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def start_kdc(kdc_realm: KdcRealm, *, workers: int | None = None) -> None:
    """Start the front-end subprocess, wait until it answers, fill in ``port``."""
    from tests.vectors import capture

    ready = kdc_realm.work / "ready.json"
    ready.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "kdc.cli", "kdc",
        "--config", str(kdc_realm.config), "--ready-file", str(ready),
    ]
    if workers:
        command += ["--workers", str(workers)]
    out = open(kdc_realm.work / "kdc.stderr", "ab")  # noqa: SIM115 - owned by the child
    try:
        kdc_realm.proc = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=child_env(), stdout=out, stderr=subprocess.STDOUT
        )
    finally:
        out.close()
    deadline = time.monotonic() + START_TIMEOUT
    while not ready.exists():
        if kdc_realm.proc.poll() is not None or time.monotonic() > deadline:
            stderr = (kdc_realm.work / "kdc.stderr").read_text(errors="replace")
            kdc_realm.stop()
            raise RuntimeError(f"KDC did not start:\n{stderr[-3000:]}")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    kdc_realm.port = int(info["udp"][0].rsplit(":", 1)[1])
    if not _probe(kdc_realm.address, capture("alice-as-req"), deadline):
        kdc_realm.stop()
        raise RuntimeError("KDC does not answer over UDP")


def write_client_configs(kdc_realm: KdcRealm) -> None:
    from kdc.config import client_krb5_conf

    kdcs = [f"127.0.0.1:{kdc_realm.port}"]
    kdc_realm.krb5_conf.write_text(client_krb5_conf(kdc_realm.realm, kdcs))
    kdc_realm.krb5_tcp_conf.write_text(
        client_krb5_conf(kdc_realm.realm, kdcs, udp_preference_limit=1)
    )


def start_realm(work: Path, *, workers: int | None = None, **realm_options) -> KdcRealm:
    """Create and start a realm in ``work``; ``realm_options`` go to the [realm] table
    (e.g. ``udp_max_reply=10``)."""
    work.mkdir(parents=True, exist_ok=True)
    create_database(work)
    write_kdc_config(work, **realm_options)
    kdc_realm = KdcRealm(work=work)
    start_kdc(kdc_realm, workers=workers)
    write_client_configs(kdc_realm)
    return kdc_realm


def running_realm(tmp_path_factory, **options) -> Iterator[KdcRealm]:
    """Body of a ``realm`` fixture: start in a fresh temporary directory, stop at teardown."""
    kdc_realm = start_realm(tmp_path_factory.mktemp("realm"), **options)
    try:
        yield kdc_realm
    finally:
        kdc_realm.stop()


@pytest.fixture(scope="module")
def realm(tmp_path_factory) -> Iterator[KdcRealm]:
    """A running realm shared by one test module."""
    yield from running_realm(tmp_path_factory)
