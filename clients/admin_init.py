"""Realm bootstrap on a running MPC cluster: the first principals, in one short-lived process.

    python -m clients.admin_init -c CLIENT_TOML -r REALM [--demo KEYTAB]

creates ``krbtgt/REALM@REALM`` with a key generated INSIDE MPC (nobody ever holds it) and,
with ``--demo``, the demo user ``demo@REALM`` (password "demo-password", +requires_preauth)
and the service ``HTTP/localhost@REALM`` whose new random key goes to KEYTAB (made here,
written, shared out, erased). Principals that already exist are left alone, so a rerun after
a crash completes the job. ``mpckdc up`` runs this as a subprocess so that no long-running
process ever holds a key; ``mpckdc init`` runs it for a cluster it started.

Also here: cluster material for ``mpckdc init``/``up`` (:func:`write_cluster`), which adds
to ``mpc.cluster.generate_cluster`` the SQLite share stores and the ``[admin] realm`` the
admin tool reads.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tomllib
from pathlib import Path

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"
DEMO_SERVICE = "HTTP/localhost"


# -- cluster material -----------------------------------------------------------------------------


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render(doc: dict) -> str:
    """Flat tables and arrays of flat tables (the shape of our cluster TOML files)."""
    out = []
    for name, value in doc.items():
        if isinstance(value, list):
            for item in value:
                out.append(f"[[{name}]]")
                out += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
                out.append("")
        else:
            out.append(f"[{name}]")
            out += [f"{k} = {_toml_value(v)}" for k, v in value.items()
                    if not isinstance(v, dict)]
            out.append("")
            for sub, table in value.items():
                if isinstance(table, dict):
                    out.append(f"[{name}.{sub}]")
                    out += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
                    out.append("")
    return "\n".join(out)


def _rewrite(path: Path, doc: dict) -> None:
    from mpc.cluster import _write

    _write(path, _render(doc))


PORTS_PER_CLUSTER = 12  # per node: peer links, jobs, admin API, metrics


def configure_cluster(cluster_dir: Path, realm: str, *, ports: list[int] | None = None,
                      hosts: list[str] | None = None, job_timeout: float | None = None) -> None:
    """Set node addresses and ports, and the admin realm, in existing cluster TOML files.

    ``ports``: 12 numbers: peer ports of nodes 0-2, then job ports, admin API ports and
    metrics ports. Rewrites ``node-<i>.toml`` and ``client.toml`` (mode 0600) from their
    parsed content, so ``mpckdc up`` can move the nodes to free ports at every start.
    """
    paths = [cluster_dir / f"node-{i}.toml" for i in range(3)]
    docs = []
    for p in paths:
        with open(p, "rb") as f:
            docs.append(tomllib.load(f))
    with open(cluster_dir / "client.toml", "rb") as f:
        client = tomllib.load(f)
    nodes = sorted(docs[0]["nodes"], key=lambda n: n["party"])
    for i, n in enumerate(nodes):
        if ports is not None:
            n["port"], n["client_port"], n["admin_port"] = ports[i], ports[3 + i], ports[6 + i]
        if hosts is not None:
            n["host"] = hosts[i]
    for i, doc in enumerate(docs):
        node = doc["node"]
        node["host"], node["port"] = nodes[i]["host"], nodes[i]["port"]
        node["client_port"] = nodes[i]["client_port"]
        node["admin_port"] = nodes[i].get("admin_port", 0)
        if ports is not None:
            node["metrics_port"] = ports[9 + i]
        if job_timeout is not None:
            node["job_timeout"] = float(job_timeout)
        doc["nodes"] = [dict(n) for n in nodes]
        _rewrite(paths[i], {"node": node, "nodes": doc["nodes"]})
    client["nodes"] = [dict(n) for n in nodes]
    client["admin"] = {"realm": realm}
    _rewrite(cluster_dir / "client.toml", {"cluster": client["cluster"],
                                           "identity": client.get("identity", {}),
                                           "admin": client["admin"],
                                           "nodes": client["nodes"]})


def metrics_ports(cluster_dir: Path) -> list[int]:
    """The nodes' /metrics ports (0: not served)."""
    out = []
    for i in range(3):
        with open(cluster_dir / f"node-{i}.toml", "rb") as f:
            out.append(int(tomllib.load(f)["node"].get("metrics_port", 0)))
    return out


def write_cluster(cluster_dir: Path, realm: str, *, ports: list[int],
                  hosts: list[str] | None = None, circuit_cache: Path | None = None) -> Path:
    """CA, node and client certificates, PRF keys and configs (mpc.cluster) with SQLite share
    stores, admin API and metrics ports, and ``[admin] realm``. Returns the client config.
    ``circuit_cache``: one directory of built circuits for all three nodes (default: one
    per node; circuits are public, so nodes on one machine may share it)."""
    from mpc.cluster import generate_cluster

    if len(ports) != PORTS_PER_CLUSTER:
        raise ValueError(f"a cluster needs {PORTS_PER_CLUSTER} ports")
    generate_cluster(cluster_dir, ports[:3], ports[3:6], hosts=hosts, admin_ports=ports[6:9],
                     metrics_ports=ports[9:12], circuit_cache=circuit_cache)
    configure_cluster(cluster_dir, realm)
    return cluster_dir / "client.toml"


# -- principals -----------------------------------------------------------------------------------


async def bootstrap(client_config: Path, realm: str, *, demo_keytab: str | None = None,
                    out=sys.stdout) -> None:
    from clients.admin_ops import PrincipalSpec, RealmAdmin
    from kdc.keyservice.base import REQUIRES_PREAUTH

    admin = RealmAdmin(client_config, realm)
    try:
        tgs = f"krbtgt/{realm}@{realm}"
        if await admin.get(tgs) is None:
            await admin.add_principal(tgs, mpc_random=True)
            print(f'Principal "{tgs}" created (key generated inside MPC).', file=out)
        if demo_keytab is None:
            return
        user = f"{DEMO_USER}@{realm}"
        if await admin.get(user) is None:
            await admin.add_principal(user, password=DEMO_PASSWORD,
                                      spec=PrincipalSpec(frozenset({REQUIRES_PREAUTH})))
            print(f'Principal "{user}" created.', file=out)
        service = f"{DEMO_SERVICE}@{realm}"
        if await admin.get(service) is None:
            await admin.add_principal(service, keytab=demo_keytab)
            print(f'Principal "{service}" created; keytab {demo_keytab}.', file=out)
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="clients.admin_init",
                                 description="Create krbtgt (inside MPC) and the demo principals.")
    ap.add_argument("-c", "--config", required=True, help="cluster client.toml")
    ap.add_argument("-r", "--realm", required=True)
    ap.add_argument("--demo", metavar="KEYTAB", default=None,
                    help="also create demo@REALM and HTTP/localhost@REALM (keytab KEYTAB)")
    args = ap.parse_args(argv)
    from mpc.client import MpcError

    try:
        asyncio.run(bootstrap(Path(args.config), args.realm, demo_keytab=args.demo))
    except MpcError as exc:
        print(f"admin_init: the MPC nodes could not complete the request: {exc}",
              file=sys.stderr)
        return 1
    except Exception as exc:  # a short message, never key material (none is in messages)
        print(f"admin_init: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
