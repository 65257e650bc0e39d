"""A throwaway realm served through MPC: three real node processes + our front-end process.

``start_mpc_realm(workdir)`` (after MIT's ``k5test.py`` K5Realm) creates cluster material on
free loopback ports (CA, certificates, PRF keys, SQLite share stores), starts three
``python -m mpc.node`` processes, bootstraps the realm with the admin tool in short-lived
subprocesses (``clients.admin_init``: krbtgt generated INSIDE MPC, demo user,
HTTP/localhost with ``http.keytab``; ``clients.admin``: the users below), then starts
``python -m kdc.cli kdc`` with the MPC key service on a free port, and warms the nodes'
circuit caches with real logins. Everything is stopped by PID at teardown.

    alice@EXAMPLE.COM           password alice-password
    bob@EXAMPLE.COM             password bob-password, +requires_preauth
    demo@EXAMPLE.COM            password demo-password, +requires_preauth
    HTTP/localhost@EXAMPLE.COM  random key made by the admin tool, keytab http.keytab
    krbtgt/EXAMPLE.COM          random key made inside MPC

Every program run through ``realm.run`` gets KRB5_CONFIG and KRB5CCNAME explicitly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.vectors import PROJECT_ROOT

REALM = "EXAMPLE.COM"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "demo": "demo-password"}
SERVICE = "HTTP/localhost"
START_TIMEOUT = 120.0
# One directory of built circuits for every realm of a test run (inside the checkout, like the
# numba cache): circuits are public and depend only on the code (mpc.registry names each file
# by the digest of the circuit code), so each is built once instead of once per realm.
CIRCUIT_CACHE = PROJECT_ROOT / ".circuit_cache"
WARM_TIMEOUT = 180.0


def child_env() -> dict[str, str]:
    from kdc.cli import child_env as cli_env

    env = {k: v for k, v in cli_env().items() if not k.startswith("KRB5")}
    env["LC_ALL"] = "C"
    return env


@dataclass
class MpcRealm:
    work: Path
    realm: str = REALM
    port: int = 0
    nodes: list = field(default_factory=lambda: [None, None, None])
    kdc: subprocess.Popen | None = None
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))

    # -- files ------------------------------------------------------------------------------
    @property
    def cluster(self) -> Path:
        return self.work / "cluster"

    @property
    def client_config(self) -> Path:
        return self.cluster / "client.toml"

    @property
    def krb5_conf(self) -> Path:
        return self.work / "krb5.conf"

    @property
    def ccache(self) -> Path:
        return self.work / "ccache"

    @property
    def keytab(self) -> Path:
        return self.work / "http.keytab"

    def node_db(self, party: int) -> Path:
        return self.cluster / f"node-{party}" / "shares.db"

    def principal(self, name: str) -> str:
        return name if "@" in name else f"{name}@{self.realm}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    # -- processes --------------------------------------------------------------------------
    def start_node(self, party: int) -> None:
        from kdc.cli import start_node

        self.nodes[party] = start_node(self.cluster / f"node-{party}.toml",
                                       self.work / f"node-{party}.log")

    def kill_node(self, party: int) -> None:
        """kill -9 one node process (by PID)."""
        p = self.nodes[party]
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(timeout=10)

    def wait_nodes(self) -> None:
        from kdc.cli import wait_nodes_ready

        wait_nodes_ready(self.client_config, self.nodes, timeout=START_TIMEOUT)

    def pids(self) -> dict[str, int]:
        out = {f"node-{i}": p.pid for i, p in enumerate(self.nodes) if p is not None}
        if self.kdc is not None:
            out["frontend"] = self.kdc.pid
        return out

    def stop(self) -> None:
        from kdc.cli import stop_process

        stop_process(self.kdc)
        self.kdc = None
        for i, p in enumerate(self.nodes):
            stop_process(p)
            self.nodes[i] = None

    def logs(self) -> str:
        parts = []
        for name in ("node-0.log", "node-1.log", "node-2.log", "kdc.stderr", "kdc.log"):
            path = self.work / name
            if path.exists():
                parts.append(f"== {name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    # -- running programs -------------------------------------------------------------------
    def env(self, ccache: Path | None = None) -> dict[str, str]:
        env = child_env()
        env["KRB5_CONFIG"] = str(self.krb5_conf)
        env["KRB5CCNAME"] = f"FILE:{ccache or self.ccache}"
        return env

    def run(self, args: list[str], *, input: str | None = None, ccache: Path | None = None,
            env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(args, input=input, env=env or self.env(ccache), cwd=self.work,
                              capture_output=True, text=True, timeout=timeout)

    def admin(self, *args: str, input: str | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess:
        """``python -m clients.admin -c client.toml VERB ...`` in a short-lived process."""
        return subprocess.run(
            [sys.executable, "-m", "clients.admin", "-c", str(self.client_config), *args],
            input=input, env=child_env(), cwd=PROJECT_ROOT, capture_output=True, text=True,
            timeout=timeout)

    def admin_ok(self, *args: str, input: str | None = None) -> str:
        r = self.admin(*args, input=input)
        assert r.returncode == 0, f"admin {args[0]} failed: {r.stdout}{r.stderr}"
        return r.stdout

    def kinit(self, name: str, password: str | None = None, *, ccache: Path | None = None
              ) -> subprocess.CompletedProcess:
        """MIT kinit with the password on standard input."""
        from tests.realm import find_program

        password = self.passwords[name.split("@")[0]] if password is None else password
        return self.run([find_program("kinit"), self.principal(name)], input=password + "\n",
                        ccache=ccache)

    def client(self, timeout: float = 5.0):
        from clients.client import KdcClient

        return KdcClient(self.realm, [self.address], transport="tcp", timeout=timeout)


def start_frontend(r: MpcRealm) -> None:
    from kdc.cli import write_frontend_config
    from kdc.config import client_krb5_conf

    config = write_frontend_config(r.work, r.realm, 0, audit=True)
    ready = r.work / "ready.json"
    ready.unlink(missing_ok=True)
    with open(r.work / "kdc.stderr", "ab") as out:
        r.kdc = subprocess.Popen(
            [sys.executable, "-m", "kdc.cli", "kdc", "--config", str(config),
             "--ready-file", str(ready)],
            cwd=PROJECT_ROOT, env=child_env(), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT
    while not ready.exists():
        if r.kdc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("front-end did not start:\n" + r.logs())
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    r.port = int(info["udp"][0].rsplit(":", 1)[1])
    r.krb5_conf.write_text(client_krb5_conf(r.realm, [f"127.0.0.1:{r.port}"]))


def warm_up(r: MpcRealm, names: list[str], timeout: float = WARM_TIMEOUT) -> None:
    """Log in (AS with pre-auth + TGS) until it works: the first request of each message size
    class makes every node build that circuit, which can outlast the 2 s key-service timeout.
    One login at a time runs a login's decryption and encryptions as one pair job
    (kdc.keyservice.mpc); a few at once, as separate jobs: both kinds get built. Bounded by
    ``timeout``."""
    from concurrent.futures import ThreadPoolExecutor

    from kdc.cli import wait_for_login

    deadline = time.monotonic() + timeout

    def login(name: str) -> None:
        left = max(deadline - time.monotonic(), 1.0)
        if not wait_for_login(r.realm, r.port, name, r.passwords[name], SERVICE, timeout=left):
            raise RuntimeError(f"realm does not serve {name}\n{r.logs()}")

    for name in names:
        login(name)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(login, names * 4))


def start_mpc_realm(work: Path, *, users: bool = True, warm: bool = True) -> MpcRealm:
    from clients.admin_init import write_cluster
    from kdc.cli import free_ports, run_admin_init

    work.mkdir(parents=True, exist_ok=True)
    r = MpcRealm(work=work)
    ports = free_ports(12)
    write_cluster(r.cluster, r.realm, ports=ports, circuit_cache=CIRCUIT_CACHE)
    try:
        for i in range(3):
            r.start_node(i)
        r.wait_nodes()
        run_admin_init(r.client_config, r.realm, r.keytab, work / "admin.log")
        if users:
            r.admin_ok("addprinc", "-pw", PASSWORDS["alice"], "alice")
            r.admin_ok("addprinc", "-pw", PASSWORDS["bob"], "+requires_preauth", "bob")
        start_frontend(r)
        if warm:
            warm_up(r, ["bob"] if users else ["demo"])
    except BaseException:
        r.stop()
        raise
    return r


def running_mpc_realm(tmp_path_factory, **options) -> Iterator[MpcRealm]:
    r = start_mpc_realm(tmp_path_factory.mktemp("mpc-realm"), **options)
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def mpc_realm(tmp_path_factory) -> Iterator[MpcRealm]:
    yield from running_mpc_realm(tmp_path_factory)


def require_programs(*names: str) -> None:
    from tests.realm import find_program

    missing = [n for n in names if find_program(n) is None]
    if missing:
        pytest.skip(f"programs not installed: {', '.join(missing)}")
