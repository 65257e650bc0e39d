"""A throwaway MIT krb5kdc realm for interop tests (after MIT's ``k5test.py`` K5Realm).

``MitRealm.start(workdir)`` creates realm EXAMPLE.COM entirely under ``workdir`` with
``kdb5_util``/``kadmin.local`` (nothing under /etc is read or written: every process gets
``KRB5_CONFIG``/``KRB5_KDC_PROFILE`` pointing into ``workdir``), starts ``krb5kdc -n`` on a
free 127.0.0.1 port (UDP and TCP) and stops it by PID. Principals, as in the captures and
``tools/kdcload/mit-baseline.sh``:

    alice@EXAMPLE.COM           password alice-password
    bob@EXAMPLE.COM             password bob-password, +requires_preauth
    HTTP/localhost@EXAMPLE.COM  random key

with keytabs ``alice.keytab``, ``bob.keytab``, ``http.keytab`` and ``krbtgt.keytab``
(exported with ``-norandkey``, so keytab and password keys agree). ``krb5.conf`` prefers
UDP, ``krb5-tcp.conf`` forces TCP (``udp_preference_limit = 1``).

Use the pytest fixture ``mit_realm`` (session scope): ``from tests.mit_kdc import
mit_realm_fixture  # noqa: F401`` in a test module registers it. It skips
with a reason only when the MIT KDC programs are not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REALM = "EXAMPLE.COM"
MASTER_PASSWORD = "master-password"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}
ENCTYPES = "aes256-cts-hmac-sha1-96:normal,aes128-cts-hmac-sha1-96:normal"
MIT_PROGRAMS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "klist", "kvno")


def find_program(name: str) -> str | None:
    """MIT programs live in /usr/sbin on Debian, which may not be on a user's PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def missing_programs() -> list[str]:
    return [p for p in MIT_PROGRAMS if find_program(p) is None]


def free_port() -> int:
    """A port that is free on 127.0.0.1 for both UDP and TCP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for UDP and TCP on 127.0.0.1")


def _kdc_conf(work: Path, port: int) -> str:
    return f"""[kdcdefaults]
    kdc_listen = 127.0.0.1:{port}
    kdc_tcp_listen = 127.0.0.1:{port}

[realms]
    {REALM} = {{
        database_name = {work}/principal
        key_stash_file = {work}/stash
        acl_file = {work}/kadm5.acl
        master_key_type = aes256-cts-hmac-sha1-96
        supported_enctypes = {ENCTYPES.replace(",", " ")}
        max_life = 10h 0m 0s
        max_renewable_life = 7d 0h 0m 0s
    }}

[logging]
    kdc = FILE:{work}/krb5kdc.log
    admin_server = FILE:{work}/kadmin.log
    default = FILE:{work}/krb5lib.log
"""


def _krb5_conf(port: int, *, tcp: bool) -> str:
    extra = "    udp_preference_limit = 1\n" if tcp else ""
    return f"""[libdefaults]
    default_realm = {REALM}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
{extra}
[realms]
    {REALM} = {{
        kdc = 127.0.0.1:{port}
    }}

[domain_realm]
    localhost = {REALM}
"""


@dataclass
class MitRealm:
    """A running MIT realm; ``env()`` gives the environment for any MIT or our client."""

    work: Path
    port: int
    realm: str = REALM
    kdc_pid: int | None = None
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))

    @property
    def krb5_conf(self) -> Path:
        return self.work / "krb5.conf"

    @property
    def krb5_tcp_conf(self) -> Path:
        return self.work / "krb5-tcp.conf"

    @property
    def kdc_conf(self) -> Path:
        return self.work / "kdc.conf"

    def keytab(self, name: str) -> Path:
        """``alice``, ``bob``, ``http`` or ``krbtgt``."""
        return self.work / f"{name}.keytab"

    @property
    def kdcs(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.port)]

    def env(self, ccache: str | os.PathLike | None = None, *, tcp: bool = False) -> dict:
        """A full environment: KRB5_CONFIG, KRB5_KDC_PROFILE and KRB5CCNAME set explicitly."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
        env["KRB5_CONFIG"] = str(self.krb5_tcp_conf if tcp else self.krb5_conf)
        env["KRB5_KDC_PROFILE"] = str(self.kdc_conf)
        env["KRB5CCNAME"] = f"FILE:{ccache}" if ccache else f"FILE:{self.work}/ccache-default"
        env["KRB5_KTNAME"] = f"FILE:{self.work}/no-default.keytab"
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
    ) -> subprocess.CompletedProcess:
        """Run a program with this realm's environment; text mode, output captured."""
        program = find_program(args[0]) or args[0]
        proc = subprocess.run(
            [program, *args[1:]],
            env=self.env(ccache, tcp=tcp),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def kadmin(self, query: str) -> None:
        self.run(["kadmin.local", "-r", self.realm, "-q", query])

    def kinit(self, principal: str, password: str, ccache: str | os.PathLike, **kw):
        """MIT kinit with the password on stdin."""
        return self.run(["kinit", principal], ccache=ccache, input=password + "\n", **kw)

    # -- life cycle ---------------------------------------------------------------------------

    @classmethod
    def create(cls, work: Path) -> MitRealm:
        """Write configs, create the database, principals and keytabs (KDC not started)."""
        work.mkdir(parents=True, exist_ok=True)
        realm = cls(work=work, port=free_port())
        realm.write_configs()
        (work / "kadm5.acl").write_text(f"*/admin@{REALM} *\n")
        realm.run(["kdb5_util", "create", "-s", "-r", REALM, "-P", MASTER_PASSWORD])
        realm.kadmin(f"addprinc -e {ENCTYPES} -pw {PASSWORDS['alice']} alice")
        realm.kadmin(f"addprinc +requires_preauth -e {ENCTYPES} -pw {PASSWORDS['bob']} bob")
        realm.kadmin(f"addprinc -randkey -e {ENCTYPES} HTTP/localhost")
        # -norandkey keeps the password keys, so keytab and password logins agree.
        for name, princ in (("alice", "alice"), ("bob", "bob"), ("http", "HTTP/localhost"),
                            ("krbtgt", f"krbtgt/{REALM}")):
            realm.kadmin(f"ktadd -norandkey -k {realm.keytab(name)} {princ}")
        return realm

    def write_configs(self) -> None:
        self.kdc_conf.write_text(_kdc_conf(self.work, self.port))
        self.krb5_conf.write_text(_krb5_conf(self.port, tcp=False))
        self.krb5_tcp_conf.write_text(_krb5_conf(self.port, tcp=True))

    def start_kdc(self) -> None:
        """Start krb5kdc in the foreground mode (-n) and wait until it answers a kinit -k."""
        for _attempt in range(3):
            self._kdc = self._launch(self.kdc_conf, self.krb5_conf, self.work / "krb5kdc")
            if self._kdc is not None:
                self.kdc_pid = self._kdc.pid
                return
            self.port = free_port()
            self.write_configs()
        raise RuntimeError(f"krb5kdc did not start; see {self.work}/krb5kdc.stderr")

    def _launch(self, kdc_conf: Path, krb5_conf: Path, stem: Path) -> subprocess.Popen | None:
        """Run ``krb5kdc -n`` with these configs; the process once it answers, else None."""
        env = self.env()
        env["KRB5_CONFIG"] = str(krb5_conf)
        env["KRB5_KDC_PROFILE"] = str(kdc_conf)
        with open(f"{stem}.stderr", "ab") as errors:
            proc = subprocess.Popen(
                [find_program("krb5kdc") or "krb5kdc", "-n", "-P", f"{stem}.pid"],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
            )
        probe_env = dict(env, KRB5CCNAME=f"FILE:{stem}.probe-ccache")
        for _ in range(100):
            if proc.poll() is not None:
                return None  # died, most likely the port was taken meanwhile
            probe = subprocess.run(
                [find_program("kinit") or "kinit", "-k", "-t", str(self.keytab("alice")),
                 "alice"], env=probe_env, capture_output=True, timeout=30,
            )
            if probe.returncode == 0:
                return proc
            time.sleep(0.1)
        _stop(proc)
        return None

    def stop_kdc(self) -> None:
        """Stop the KDC we started, by its PID."""
        proc = getattr(self, "_kdc", None)
        if proc is not None:
            _stop(proc)
        self.kdc_pid = None

    def spawn_kdc(self, kdcdefaults: str, work: Path, *, separate_tcp_port: bool = False
                  ) -> ExtraKdc:
        """A second krb5kdc on the same database, on its own port, with extra
        ``[kdcdefaults]`` lines (e.g. ``kdc_max_dgram_reply_size = 200``). With
        ``separate_tcp_port`` it listens for TCP on another port than for UDP."""
        work.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            port = free_port()
            tcp_port = free_port() if separate_tcp_port else port
            text = _kdc_conf(self.work, port).replace(
                f"kdc_tcp_listen = 127.0.0.1:{port}", f"kdc_tcp_listen = 127.0.0.1:{tcp_port}")
            kdc_conf = work / "kdc.conf"
            kdc_conf.write_text(text.replace(
                "[kdcdefaults]\n", f"[kdcdefaults]\n    {kdcdefaults}\n", 1))
            krb5_conf = work / "krb5.conf"
            krb5_conf.write_text(_krb5_conf(port, tcp=False))
            proc = self._launch(kdc_conf, krb5_conf, work / "krb5kdc")
            if proc is not None:
                return ExtraKdc(proc, port, krb5_conf, tcp_port)
        raise RuntimeError(f"extra krb5kdc did not start; see {work}/krb5kdc.stderr")

    @classmethod
    def start(cls, work: Path) -> MitRealm:
        realm = cls.create(work)
        realm.start_kdc()
        return realm


def _stop(proc: subprocess.Popen) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class ExtraKdc:
    """A second krb5kdc started by ``MitRealm.spawn_kdc``."""

    proc: subprocess.Popen
    port: int  # UDP (and TCP unless tcp_port differs)
    krb5_conf: Path
    tcp_port: int

    def stop(self) -> None:
        _stop(self.proc)


@pytest.fixture(scope="session", name="mit_realm")
def mit_realm_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MitRealm]:
    """A running MIT realm for the whole test session, stopped at the end."""
    missing = missing_programs()
    if missing:
        pytest.skip(f"MIT krb5 programs not installed: {', '.join(missing)} "
                    "(apt-get install krb5-kdc krb5-admin-server krb5-user)")
    realm = MitRealm.start(tmp_path_factory.mktemp("mit-realm"))
    try:
        yield realm
    finally:
        realm.stop_kdc()
