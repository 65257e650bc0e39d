"""Cluster material: CA, node and client certificates, pairwise PRF keys, TOML configs.

``generate_cluster(directory, ...)`` writes, all with mode 0600:

* ``ca.pem`` (cluster CA certificate) and ``ca.key`` (its key; keep it offline after init),
* ``node-<i>.pem`` / ``node-<i>.key`` for parties 0, 1, 2,
* ``client-<role>.pem`` / ``client-<role>.key`` for each client role (frontend, admin),
* ``node-<i>.prf``: the PRF keys of party i, i.e. ONLY k_i and k_{i+1 mod 3} (Araki et al.
  2016 §2.1: k_j is shared by parties j-1 and j; each party lacks exactly one key),
* ``node-<i>.toml``: the node's config; ``client.toml``: the config of every job client.
* ``node-<i>/``: the node's own directory (0700): ``shares.db`` (its SQLite share store,
  ``store = "sqlite:node-<i>/shares.db"``) and ``circuits/`` (its built-circuit cache).

Each node may also serve an admin API (``admin_port``, mutual TLS, :mod:`mpc.admin_api`) and
Prometheus metrics (``metrics_port``, plain HTTP on the node's host); 0 turns either off.

Paths inside a TOML file are relative to the file's directory.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mpc import tls

PARTIES = 3
PRF_KEY_BYTES = 16
CLIENT_ROLES = ("frontend", "admin")


@dataclass(frozen=True)
class NodeAddress:
    party: int
    host: str
    port: int  # peer links (node certificates only)
    client_port: int  # job clients (client certificates only)
    admin_port: int = 0  # admin API (client-admin certificate only); 0 = none


@dataclass(frozen=True)
class NodeConfig:
    """One node's settings. ``prf_own``/``prf_next`` are k_i and k_{i+1} (redacted repr)."""

    party: int
    host: str
    port: int
    client_port: int
    ca: Path
    cert: Path
    key: Path
    nodes: tuple[NodeAddress, ...]
    prf_own: bytes = field(repr=False)
    prf_next: bytes = field(repr=False)
    debug: bool = False
    job_timeout: float = 30.0
    max_in_flight: int = 64
    store: str = "memory"
    client_roles: tuple[str, ...] = CLIENT_ROLES
    admin_port: int = 0
    metrics_port: int = 0
    circuit_cache: Path | None = None  # directory of built circuits (None: memory only)
    spin_us: int = 500  # how long a link reader polls for the next frame (mpc.links)

    def __repr__(self) -> str:
        return f"NodeConfig(party={self.party}, {self.host}:{self.port}, <prf keys redacted>)"


@dataclass(frozen=True)
class ClientConfig:
    ca: Path
    nodes: tuple[NodeAddress, ...]
    identities: dict[str, tuple[Path, Path]]  # role -> (cert, key)


def _write(path: Path, data: bytes | str) -> None:
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _nodes_toml(addrs: list[NodeAddress]) -> str:
    out = []
    for a in addrs:
        out.append(f"[[nodes]]\nparty = {a.party}\nhost = {_toml_str(a.host)}\nport = {a.port}\n"
                   f"client_port = {a.client_port}\nadmin_port = {a.admin_port}\n")
    return "\n".join(out)


def generate_cluster(directory: str | Path, ports: list[int], client_ports: list[int], *,
                     host: str = "127.0.0.1", hosts: list[str] | None = None,
                     debug: bool = False, job_timeout: float = 30.0,
                     admin_ports: list[int] | None = None,
                     metrics_ports: list[int] | None = None, store: str = "sqlite",
                     circuit_cache: str | Path | None = None) -> Path:
    """Write a complete cluster's material into ``directory``; returns the directory.

    Node i listens on ``hosts[i]``: ``ports[i]`` for its peers, ``client_ports[i]`` for jobs,
    ``admin_ports[i]`` for the admin API and ``metrics_ports[i]`` for /metrics (omitted or 0:
    not served). ``store="sqlite"`` gives node i ``node-<i>/shares.db``; ``"memory"`` keeps
    shares in memory only (tests of the engine). Built circuits are kept in
    ``node-<i>/circuits``, or all in ``circuit_cache`` (an absolute path) if given.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    hosts = hosts or [host] * PARTIES
    admin_ports = admin_ports or [0] * PARTIES
    metrics_ports = metrics_ports or [0] * PARTIES
    addrs = [NodeAddress(i, hosts[i], ports[i], client_ports[i], admin_ports[i])
             for i in range(PARTIES)]
    ca = tls.make_ca()
    _write(d / "ca.pem", ca.cert_pem)
    _write(d / "ca.key", ca.key_pem)
    prf = [secrets.token_bytes(PRF_KEY_BYTES) for _ in range(PARTIES)]
    for i in range(PARTIES):
        name = tls.node_name(i)
        ck = tls.issue(ca, name)
        _write(d / f"{name}.pem", ck.cert_pem)
        _write(d / f"{name}.key", ck.key_pem)
        # Party i holds k_i and k_{i+1} only (never k_{i+2}).
        own, nxt = prf[i], prf[(i + 1) % PARTIES]
        _write(d / f"{name}.prf", f"k_{i} = {own.hex()}\nk_{(i + 1) % PARTIES} = {nxt.hex()}\n")
        (d / name).mkdir(mode=0o700, exist_ok=True)
        os.chmod(d / name, 0o700)
        store_spec = f"sqlite:{name}/shares.db" if store == "sqlite" else "memory"
        cfg = (
            "[node]\n"
            f"party = {i}\n"
            f"host = {_toml_str(addrs[i].host)}\n"
            f"port = {addrs[i].port}\n"
            f"client_port = {addrs[i].client_port}\n"
            f'ca = "ca.pem"\ncert = "{name}.pem"\nkey = "{name}.key"\nprf_keys = "{name}.prf"\n'
            f"debug = {'true' if debug else 'false'}\n"
            f"job_timeout = {float(job_timeout)}\n"
            "max_in_flight = 64\n"
            f"store = {_toml_str(store_spec)}\n"
            f"circuit_cache = {_toml_str(str(circuit_cache or f'{name}/circuits'))}\n"
            f"admin_port = {admin_ports[i]}\n"
            f"metrics_port = {metrics_ports[i]}\n\n"
            + _nodes_toml(addrs)
        )
        _write(d / f"{name}.toml", cfg)
    idents = []
    for role in CLIENT_ROLES:
        name = tls.client_name(role)
        ck = tls.issue(ca, name)
        _write(d / f"{name}.pem", ck.cert_pem)
        _write(d / f"{name}.key", ck.key_pem)
        idents.append(f'[identity.{role}]\ncert = "{name}.pem"\nkey = "{name}.key"\n')
    _write(d / "client.toml", '[cluster]\nca = "ca.pem"\n\n' + "\n".join(idents) + "\n"
           + _nodes_toml(addrs))
    return d


def _addrs(doc: dict) -> tuple[NodeAddress, ...]:
    nodes = sorted((NodeAddress(int(n["party"]), str(n["host"]), int(n["port"]),
                                int(n["client_port"]), int(n.get("admin_port", 0)))
                    for n in doc.get("nodes", [])), key=lambda a: a.party)
    if [a.party for a in nodes] != list(range(PARTIES)):
        raise ValueError("config must list nodes 0, 1 and 2 exactly once")
    return tuple(nodes)


def _read_prf(path: Path, party: int) -> tuple[bytes, bytes]:
    values: dict[str, bytes] = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = bytes.fromhex(value.strip())
    own = values.get(f"k_{party}")
    nxt = values.get(f"k_{(party + 1) % PARTIES}")
    if own is None or nxt is None or len(values) != 2:
        raise ValueError(f"{path}: expected exactly k_{party} and k_{(party + 1) % PARTIES}")
    return own, nxt


def load_node_config(path: str | Path) -> NodeConfig:
    """Parse a node TOML file written by :func:`generate_cluster` (or by hand)."""
    p = Path(path)
    base = p.parent
    with open(p, "rb") as f:
        doc = tomllib.load(f)
    n = doc["node"]
    party = int(n["party"])
    if party not in range(PARTIES):
        raise ValueError("node.party must be 0, 1 or 2")
    own, nxt = _read_prf(base / n["prf_keys"], party)
    return NodeConfig(
        party=party, host=str(n.get("host", "127.0.0.1")), port=int(n["port"]),
        client_port=int(n["client_port"]),
        ca=base / n["ca"], cert=base / n["cert"], key=base / n["key"], nodes=_addrs(doc),
        prf_own=own, prf_next=nxt, debug=bool(n.get("debug", False)),
        job_timeout=float(n.get("job_timeout", 30.0)),
        max_in_flight=int(n.get("max_in_flight", 64)), store=str(n.get("store", "memory")),
        client_roles=tuple(n.get("client_roles", CLIENT_ROLES)),
        admin_port=int(n.get("admin_port", 0)), metrics_port=int(n.get("metrics_port", 0)),
        circuit_cache=base / n["circuit_cache"] if n.get("circuit_cache") else None,
        spin_us=int(n.get("spin_us", 500)),
    )


def load_client_config(path: str | Path) -> ClientConfig:
    """Parse ``client.toml``."""
    p = Path(path)
    base = p.parent
    with open(p, "rb") as f:
        doc = tomllib.load(f)
    idents = {role: (base / v["cert"], base / v["key"])
              for role, v in doc.get("identity", {}).items()}
    return ClientConfig(ca=base / doc["cluster"]["ca"], nodes=_addrs(doc), identities=idents)
