"""``mpckdc``: the one command line of the project.

    mpckdc up [--dir DIR] [--realm REALM] [--port PORT]   embedded realm on 127.0.0.1: three MPC
                                                          nodes + one front-end
    mpckdc init [--dir DIR] [--realm R] [--hosts H0,H1,H2]  cluster material (+ krbtgt in MPC)
    mpckdc node --config F                                one MPC node
    mpckdc kdc --config F [--workers N]                   one front-end
    mpckdc admin [-c F] VERB ...                          MIT kadmin verbs (clients/admin.py)
    mpckdc kinit | klist | kvno ...                       the project's MIT-compatible clients
    mpckdc bench load ... | bench mpc ...                 load generator, MPC benchmarks

Every principal key lives as replicated secret shares on the three nodes; the front-end holds
none. The reference key service (clear keys, tests only) is not reachable from here: a
front-end config naming it is refused outside the test harness (kdc/config.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

DEFAULT_REALM = "EXAMPLE.COM"
DEFAULT_DIR = "./mpckdc-data"
DEFAULT_PORT = 60088
DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"
DEMO_SERVICE = "HTTP/localhost"
FIRST_LOGIN_TIMEOUT = 300.0  # seconds `mpckdc up` keeps trying its first demo login
CLIENT_COMMANDS = ("kinit", "klist", "kvno")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
NODE_START_TIMEOUT = 90.0  # seconds; a cold numba cache on a busy 2-core machine is slow


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpckdc",
        description="A Kerberos 5 KDC whose keys live as MPC secret shares.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser("up", help="run the embedded realm (3 MPC nodes + front-end) on 127.0.0.1")
    up.add_argument("--dir", default=DEFAULT_DIR, help=f"state directory (default {DEFAULT_DIR})")
    up.add_argument("--realm", default=None, help=f"realm name (default {DEFAULT_REALM})")
    up.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"UDP and TCP port (default {DEFAULT_PORT})"
    )
    up.add_argument("--workers", type=int, default=1, help="front-end processes (SO_REUSEPORT)")

    init = sub.add_parser("init", help="create cluster material (CA, certificates, PRF keys, "
                                       "configs) and the krbtgt key inside MPC")
    init.add_argument("--dir", default=DEFAULT_DIR, help=f"output directory (default {DEFAULT_DIR})")
    init.add_argument("--realm", default=DEFAULT_REALM, help=f"realm (default {DEFAULT_REALM})")
    init.add_argument("--port", type=int, default=DEFAULT_PORT,
                      help=f"front-end UDP/TCP port (default {DEFAULT_PORT})")
    init.add_argument("--hosts", default="127.0.0.1,127.0.0.1,127.0.0.1",
                      help="the three node hosts, comma separated (default all 127.0.0.1)")
    init.add_argument("--node-port", type=int, default=None,
                      help="first of 12 node ports: peers base+0..2, jobs +3..5, admin API "
                           "+6..8, metrics +9..11 "
                           "(default: free ports)")
    init.add_argument("--no-krbtgt", action="store_true",
                      help="do not start the nodes to create krbtgt (do it later with "
                           "`mpckdc admin addprinc -randkey krbtgt/REALM@REALM`)")

    node = sub.add_parser("node", help="run one MPC node")
    node.add_argument("--config", "-c", required=True, help="node TOML (node-<i>.toml)")

    kdc = sub.add_parser("kdc", help="run one KDC front-end")
    kdc.add_argument("--config", "-c", required=True, help="front-end TOML configuration")
    kdc.add_argument("--workers", type=int, default=None, help="override [server] workers")
    kdc.add_argument(
        "--ready-file", default=None, help="write the bound addresses as JSON here once listening"
    )

    sub.add_parser("admin", help="MIT kadmin verbs on the MPC nodes", add_help=False)
    sub.add_parser("bench", help="bench load ... | bench mpc ...", add_help=False)
    for name in CLIENT_COMMANDS:
        sub.add_parser(name, help=f"the project's {name}, with MIT's options", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in CLIENT_COMMANDS:
        return _run_client(argv[0], argv[1:])
    if argv and argv[0] == "admin":
        from clients.admin import main as admin_main

        return admin_main(argv[1:])
    if argv and argv[0] == "bench":
        return cmd_bench(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "up":
        return cmd_up(args)
    if args.command == "init":
        return cmd_init(args)
    if args.command == "node":
        from mpc.node import main as node_main

        return node_main(["--config", args.config])
    if args.command == "kdc":
        return cmd_kdc(args)
    _parser().print_help(sys.stderr)
    return 2


def _run_client(name: str, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(f"clients.{name}")
    return int(module.main(argv) or 0)


def cmd_bench(argv: list[str]) -> int:
    if argv and argv[0] == "load":
        from bench.loadgen.cli import main as load_main

        return load_main(argv[1:])
    if argv and argv[0] == "mpc":
        from bench.bench_mpc import main as mpc_main

        return mpc_main(argv[1:])
    print("usage: mpckdc bench load [OPTIONS] | mpckdc bench mpc [OPTIONS]", file=sys.stderr)
    return 2


# -- mpckdc kdc -------------------------------------------------------------------------------


def cmd_kdc(args: argparse.Namespace) -> int:
    from kdc.config import ConfigError, load_config
    from kdc.server import run_frontend

    try:
        config = load_config(args.config)
        if args.workers is not None and not 1 <= args.workers <= 64:
            raise ConfigError("--workers must be from 1 to 64")
        return run_frontend(
            config,
            workers=args.workers,
            ready_file=Path(args.ready_file) if args.ready_file else None,
        )
    except (ConfigError, ValueError, OSError) as exc:
        print(f"mpckdc kdc: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0



# -- local processes (mpckdc up / init; tests/mpc_realm.py uses these too) ---------------------


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """n distinct free TCP ports on ``host`` (bound to port 0 together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def child_env() -> dict[str, str]:
    """Environment of our node and admin subprocesses: the checkout importable, numba cached."""
    env = {k: v for k, v in os.environ.items() if k != "MPCKDC_TESTING_REFERENCE"}
    env["PYTHONPATH"] = str(PROJECT_ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".numba_cache"))
    env.setdefault("NUMBA_NUM_THREADS", "1")
    return env


def start_node(config: Path, log: Path) -> subprocess.Popen:
    """``python -m mpc.node --config F`` with its output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mpc.node", "--config", str(config)],
            cwd=PROJECT_ROOT, env=child_env(), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> int | None:
    """SIGTERM one process we started (by PID), SIGKILL if it outlives ``timeout``."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=timeout)


def wait_nodes_ready(client_config: Path, procs: list[subprocess.Popen],
                     timeout: float = NODE_START_TIMEOUT) -> None:
    """Until all three nodes answer PING with their peer links up (bounded)."""
    from mpc.client import MpcClient, MpcError

    deadline = time.monotonic() + timeout
    with MpcClient(client_config, "admin", timeout=2.0) as client:
        while True:
            dead = [i for i, p in enumerate(procs) if p.poll() is not None]
            if dead:
                raise RuntimeError(f"MPC node {dead[0]} exited during start-up "
                                   f"(status {procs[dead[0]].returncode})")
            try:
                if all(m.get("links_up") for m in client.ping()):
                    return
            except MpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("MPC nodes not ready in time")
            time.sleep(0.2)


def run_admin_init(client_config: Path, realm: str, demo_keytab: Path | None,
                   log: Path | None = None) -> None:
    """Bootstrap principals in a separate short-lived process (no long-running process ever
    holds a key): clients.admin_init."""
    cmd = [sys.executable, "-m", "clients.admin_init", "-c", str(client_config), "-r", realm]
    if demo_keytab is not None:
        cmd += ["--demo", str(demo_keytab)]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=child_env(), capture_output=True,
                            text=True, timeout=600, stdin=subprocess.DEVNULL)
    if log is not None:
        with open(log, "a") as f:
            f.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"realm initialisation failed: {result.stderr.strip()[-800:]}")


class _Stop(Exception):
    """SIGTERM while starting up."""


def _raise_stop(*_args) -> None:
    raise _Stop()


# -- mpckdc init ------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from clients.admin_init import write_cluster

    directory = Path(args.dir).expanduser().resolve()
    cluster = directory / "cluster"
    realm = args.realm.upper()
    hosts = [h.strip() for h in args.hosts.split(",")]
    if len(hosts) != 3 or not all(hosts):
        print("mpckdc init: --hosts needs three hosts", file=sys.stderr)
        return 2
    if (cluster / "client.toml").exists():
        print(f"mpckdc init: {cluster} already holds a cluster; use another --dir",
              file=sys.stderr)
        return 1
    ports = (list(range(args.node_port, args.node_port + 12)) if args.node_port
             else free_ports(12))
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    client_config = write_cluster(cluster, realm, ports=ports, hosts=hosts)
    write_frontend_config(directory, realm, args.port)
    print(f"Cluster material for realm {realm} in {cluster}:")
    print("  ca.pem, ca.key (keep the CA key offline), node-<i>.{pem,key,prf,toml} for each "
          "node's host ONLY,")
    print("  client-frontend.*, client-admin.*, client.toml for the front-ends and the admin.")
    print(f"Front-end config: {directory / 'kdc.toml'}")
    if args.no_krbtgt or any(h not in ("127.0.0.1", "localhost", "::1") for h in hosts):
        print("Start each node with `mpckdc node --config node-<i>.toml` on its host, then "
              f"create the ticket-granting key inside MPC:\n  mpckdc admin -c {client_config} "
              f"addprinc -randkey krbtgt/{realm}@{realm}")
        return 0
    procs = []
    try:
        for i in range(3):
            procs.append(start_node(cluster / f"node-{i}.toml", directory / f"node-{i}.log"))
        wait_nodes_ready(client_config, procs)
        run_admin_init(client_config, realm, None)
    except (RuntimeError, OSError) as exc:
        print(f"mpckdc init: {exc}", file=sys.stderr)
        return 1
    finally:
        for p in procs:
            stop_process(p)
    print(f"krbtgt/{realm}@{realm} created inside MPC (its key never existed in the clear).")
    return 0


# -- mpckdc up --------------------------------------------------------------------------------


def demo_paths(directory: Path) -> dict[str, Path]:
    return {
        "cluster": directory / "cluster",
        "client_config": directory / "cluster" / "client.toml",
        "config": directory / "kdc.toml",
        "krb5_conf": directory / "krb5.conf",
        "keytab": directory / "http.keytab",
        "log": directory / "kdc.log",
        "ccache": directory / "ccache",
        "initialised": directory / "cluster" / "realm-initialised",
    }


def write_frontend_config(directory: Path, realm: str, port: int, *,
                          host: str = "127.0.0.1", audit: bool = False) -> Path:
    """``DIR/kdc.toml`` (MPC key service on ``DIR/cluster/client.toml``) and ``DIR/krb5.conf``."""
    from kdc.config import client_krb5_conf, render_toml

    paths = demo_paths(directory)
    address = f"{host}:{port}"
    log = {"file": paths["log"].name, "level": "info"}
    if audit:
        log["audit"] = "audit.jsonl"
    paths["config"].write_text(
        "# Written by `mpckdc up`/`mpckdc init`; see config/one-machine.toml for every key.\n"
        + render_toml(
            {
                "realm": {
                    "name": realm,
                    "max_life": "10h",
                    "max_renewable_life": "7d",
                    "supported_enctypes": "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96",
                    "clockskew": 300,
                },
                "listen": {"udp": [address], "tcp": [address]},
                "keyservice": {"kind": "mpc", "client_config": "cluster/client.toml",
                               "timeout": 1.8},
                "log": log,
            }
        )
    )
    if port:
        paths["krb5_conf"].write_text(client_krb5_conf(realm, [address]))
    return paths["config"]


def wait_for_login(realm: str, port: int, principal: str = DEMO_USER,
                   password: str = DEMO_PASSWORD, service: str = DEMO_SERVICE,
                   timeout: float = FIRST_LOGIN_TIMEOUT) -> bool:
    """Log ``principal`` in (AS with pre-auth, then a ticket for ``service``) through our
    own client over TCP to 127.0.0.1:``port``, retrying while the nodes build circuits
    (KDC_ERR_SVC_UNAVAILABLE meanwhile) or nothing answers yet; any other answer (the user
    deleted or its password changed) ends it at once. True once it worked; bounded by
    ``timeout``. ``mpckdc up`` runs it for the demo user so that the first kinit a user
    types is answered at once; the test realms warm up with it."""
    from clients.client import KdcClient
    from clients.errors import ClientError, KdcError
    from clients.transport import KdcUnreachable
    from kdc.messages.constants import KDC_ERR_SVC_UNAVAILABLE

    deadline = time.monotonic() + timeout
    while True:
        try:
            client = KdcClient(realm, [("127.0.0.1", port)], transport="tcp", timeout=10)
            tgt = client.get_tgt_password(f"{principal}@{realm}", password)
            client.get_service_ticket(tgt, f"{service}@{realm}")
            return True
        except (ClientError, KdcUnreachable, OSError, TimeoutError) as exc:
            if isinstance(exc, KdcError) and exc.code != KDC_ERR_SVC_UNAVAILABLE:
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)


def cmd_up(args: argparse.Namespace) -> int:
    from clients.admin import config_realm
    from clients.admin_init import configure_cluster, write_cluster
    from kdc.config import ConfigError, load_config
    from kdc.server import run_frontend

    directory = Path(args.dir).expanduser().resolve()
    paths = demo_paths(directory)
    if not 0 < args.port < 65536:
        print("mpckdc up: --port must be from 1 to 65535", file=sys.stderr)
        return 2
    ports = free_ports(12)
    if not paths["client_config"].exists():
        realm = (args.realm or DEFAULT_REALM).upper()
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        write_cluster(paths["cluster"], realm, ports=ports)
        print(f"Created cluster material for realm {realm} in {paths['cluster']}.")
    else:
        realm = config_realm(paths["client_config"])
        if realm is None:
            print(f"mpckdc up: {paths['client_config']} is not a cluster made by mpckdc up",
                  file=sys.stderr)
            return 1
        if args.realm and args.realm.upper() != realm:
            print(f"mpckdc up: {directory} holds realm {realm}, not {args.realm.upper()}; "
                  "use another --dir for another realm", file=sys.stderr)
            return 2
        # New free ports at every start; the shares and keys stay where they are.
        configure_cluster(paths["cluster"], realm, ports=ports)
    write_frontend_config(directory, realm, args.port)

    procs: list[subprocess.Popen] = []
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    status = 1
    try:
        for i in range(3):
            procs.append(start_node(paths["cluster"] / f"node-{i}.toml",
                                    directory / f"node-{i}.log"))
        print("Starting three MPC nodes ...", flush=True)
        wait_nodes_ready(paths["client_config"], procs)
        if not paths["initialised"].exists():
            print("Creating krbtgt (key generated inside MPC), the demo user and "
                  f"{DEMO_SERVICE} ...", flush=True)
            run_admin_init(paths["client_config"], realm, paths["keytab"],
                           directory / "admin.log")
            paths["initialised"].write_text("ok\n")
            print(f"Initialised realm {realm} in {directory}.")
        signal.signal(signal.SIGTERM, previous)

        def announce(_sockets) -> None:
            print(
                f"WARNING: demo user {DEMO_USER}@{realm} has the published password "
                f'"{DEMO_PASSWORD}": for trying the realm out only.',
                file=sys.stderr,
            )
            print(f"KDC for {realm} listening on 127.0.0.1:{args.port} (UDP and TCP); keys as "
                  "shares on 3 MPC nodes (logs: node-<i>.log).")
            print(f"Service {DEMO_SERVICE}@{realm}: keytab {paths['keytab']}")
            print(f"Admin: mpckdc admin -d {directory} getprinc {DEMO_USER}")
            print(f"Log: {paths['log']}", flush=True)
            if args.workers == 1:
                # The server starts serving when this returns; the first login runs beside
                # it. (With several workers the server forks next: no thread may be running.)
                threading.Thread(target=first_login, name="first-login", daemon=True).start()
            else:
                try_it()

        def first_login() -> None:
            print("Logging in as the demo user once (the nodes build the circuits of a login "
                  "on first use; kept on disk) ...", flush=True)
            if not wait_for_login(realm, args.port):
                print("mpckdc up: the first demo login did not succeed; see the logs",
                      file=sys.stderr, flush=True)
            try_it()

        def try_it() -> None:
            env = f"KRB5_CONFIG={paths['krb5_conf']} KRB5CCNAME=FILE:{paths['ccache']}"
            print("Try it (password demo-password):")
            print(f"  {env} kinit {DEMO_USER}@{realm}")
            print(f"  {env} klist")
            print(f"  {env} kvno {DEMO_SERVICE}@{realm}")
            print("Press Ctrl-C to stop.", flush=True)

        config = load_config(paths["config"])
        status = run_frontend(config, workers=args.workers, on_ready=announce)
    except (ConfigError, ValueError, OSError, RuntimeError) as exc:
        print(f"mpckdc up: {exc}", file=sys.stderr)
        status = 1
    except (KeyboardInterrupt, _Stop):
        status = 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for p in procs:
            stop_process(p)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if status == 0:
        print("Stopped.")
    return status


if __name__ == "__main__":
    sys.exit(main())
