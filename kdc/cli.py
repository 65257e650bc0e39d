"""``mpckdc``: the one command line of the project.

    mpckdc up [--dir DIR] [--realm REALM] [--port PORT]   embedded demo realm on 127.0.0.1
    mpckdc kdc --config F [--workers N]                   one front-end
    mpckdc kinit | klist | kvno ...                       the project's MIT-compatible clients
    mpckdc node | init | admin | bench                    later versions

In this version ``up`` serves the demo realm from the REFERENCE key service (clear keys in one
JSON file), not from three MPC nodes, and says so loudly at start-up.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_REALM = "EXAMPLE.COM"
DEFAULT_DIR = "./mpckdc-data"
DEFAULT_PORT = 60088
DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"
DEMO_SERVICE = "HTTP/localhost"
CLIENT_COMMANDS = ("kinit", "klist", "kvno")
LATER_COMMANDS = {
    "node": "run one MPC node",
    "init": "create cluster material for real hosts",
    "admin": "administer principals with kadmin verbs",
    "bench": "load generator and MPC benchmarks",
}

REFERENCE_BANNER = """\
************************************************************************
WARNING: this realm runs on the REFERENCE key service. Every principal
key is stored IN THE CLEAR in {db}.
It is NOT the secret-shared MPC key service (not available in this
version). Use it only to try the protocol out; never for real keys.
************************************************************************"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpckdc",
        description="A Kerberos 5 KDC whose keys live as MPC secret shares.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser("up", help="run the embedded demo realm on 127.0.0.1")
    up.add_argument("--dir", default=DEFAULT_DIR, help=f"state directory (default {DEFAULT_DIR})")
    up.add_argument("--realm", default=None, help=f"realm name (default {DEFAULT_REALM})")
    up.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"UDP and TCP port (default {DEFAULT_PORT})"
    )
    up.add_argument("--workers", type=int, default=1, help="front-end processes (SO_REUSEPORT)")

    kdc = sub.add_parser("kdc", help="run one KDC front-end")
    kdc.add_argument("--config", "-c", required=True, help="front-end TOML configuration")
    kdc.add_argument("--workers", type=int, default=None, help="override [server] workers")
    kdc.add_argument(
        "--ready-file", default=None, help="write the bound addresses as JSON here once listening"
    )

    for name in CLIENT_COMMANDS:
        sub.add_parser(name, help=f"the project's {name}, with MIT's options", add_help=False)
    for name, what in LATER_COMMANDS.items():
        sub.add_parser(name, help=f"{what} (not available yet in this version)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in CLIENT_COMMANDS:
        return _run_client(argv[0], argv[1:])
    if argv and argv[0] in LATER_COMMANDS:
        print(
            f"mpckdc {argv[0]} ({LATER_COMMANDS[argv[0]]}): not available yet in this "
            "version; it comes in a later one.",
            file=sys.stderr,
        )
        return 2
    args = _parser().parse_args(argv)
    if args.command == "up":
        return cmd_up(args)
    if args.command == "kdc":
        return cmd_kdc(args)
    _parser().print_help(sys.stderr)
    return 2


def _run_client(name: str, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(f"clients.{name}")
    return int(module.main(argv) or 0)


# -- mpckdc kdc -------------------------------------------------------------------------------


def cmd_kdc(args: argparse.Namespace) -> int:
    from kdc.config import ConfigError, load_config
    from kdc.server import run_frontend

    try:
        config = load_config(args.config)
        if config.keyservice.kind == "reference":
            print(REFERENCE_BANNER.format(db=config.keyservice.database), file=sys.stderr)
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


# -- mpckdc up --------------------------------------------------------------------------------


def demo_paths(directory: Path) -> dict[str, Path]:
    return {
        "db": directory / "reference-db.json",
        "config": directory / "kdc.toml",
        "krb5_conf": directory / "krb5.conf",
        "keytab": directory / "http.keytab",
        "log": directory / "kdc.log",
        "ccache": directory / "ccache",
    }


def init_demo_realm(directory: Path, realm: str) -> None:
    """Create the reference database (krbtgt, demo user, HTTP/localhost) and the keytab."""
    from clients.keytab import KeytabEntry, write_keytab
    from kdc.keyservice.base import REQUIRES_PREAUTH
    from kdc.keyservice.reference import ReferenceKeyService

    paths = demo_paths(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    db = ReferenceKeyService(realm)
    db.add_principal(f"krbtgt/{realm}@{realm}", randkey=True)
    db.add_principal(
        f"{DEMO_USER}@{realm}", password=DEMO_PASSWORD, attributes=(REQUIRES_PREAUTH,)
    )
    service = f"{DEMO_SERVICE}@{realm}"
    entry = db.add_principal(service, randkey=True)
    write_keytab(
        str(paths["keytab"]),
        [KeytabEntry(service, entry.kvno, key) for key in db.keys_of(service)],
    )
    db.save(paths["db"])


def write_demo_config(directory: Path, realm: str, port: int) -> None:
    from kdc.config import client_krb5_conf, render_toml

    paths = demo_paths(directory)
    address = f"127.0.0.1:{port}"
    paths["config"].write_text(
        "# Written by `mpckdc up` at every start; edit config/one-machine.toml instead.\n"
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
                "keyservice": {"kind": "reference", "database": paths["db"].name},
                "log": {"file": paths["log"].name, "level": "info"},
            }
        )
    )
    paths["krb5_conf"].write_text(client_krb5_conf(realm, [address]))


def _existing_realm(db_path: Path) -> str | None:
    import json

    try:
        return json.loads(db_path.read_text())["realm"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cmd_up(args: argparse.Namespace) -> int:
    from kdc.config import ConfigError, load_config
    from kdc.server import run_frontend

    directory = Path(args.dir).expanduser().resolve()
    paths = demo_paths(directory)
    if not 0 < args.port < 65536:
        print("mpckdc up: --port must be from 1 to 65535", file=sys.stderr)
        return 2
    first_start = not paths["db"].exists()
    if first_start:
        realm = (args.realm or DEFAULT_REALM).upper()
        init_demo_realm(directory, realm)
    else:
        realm = _existing_realm(paths["db"])
        if realm is None:
            print(f"mpckdc up: {paths['db']} is not a reference database", file=sys.stderr)
            return 1
        if args.realm and args.realm.upper() != realm:
            print(
                f"mpckdc up: {directory} holds realm {realm}, not {args.realm.upper()}; "
                "use another --dir for another realm",
                file=sys.stderr,
            )
            return 2
    write_demo_config(directory, realm, args.port)
    print(REFERENCE_BANNER.format(db=paths["db"]), file=sys.stderr)
    if first_start:
        print(f"Initialised realm {realm} in {directory}.")

    def announce(_sockets) -> None:
        env = f"KRB5_CONFIG={paths['krb5_conf']} KRB5CCNAME=FILE:{paths['ccache']}"
        print(
            f"WARNING: demo user {DEMO_USER}@{realm} has the published password "
            f'"{DEMO_PASSWORD}": for trying the realm out only.',
            file=sys.stderr,
        )
        print(f"KDC for {realm} listening on 127.0.0.1:{args.port} (UDP and TCP).")
        print(f"Service {DEMO_SERVICE}@{realm}: keytab {paths['keytab']}")
        print(f"Log: {paths['log']}")
        print("Try it (password demo-password):")
        print(f"  {env} kinit {DEMO_USER}@{realm}")
        print(f"  {env} klist")
        print(f"  {env} kvno {DEMO_SERVICE}@{realm}")
        print("Press Ctrl-C to stop.", flush=True)

    try:
        config = load_config(paths["config"])
        status = run_frontend(config, workers=args.workers, on_ready=announce)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"mpckdc up: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        status = 0
    if status == 0:
        print("Stopped.")
    return status


if __name__ == "__main__":
    sys.exit(main())
