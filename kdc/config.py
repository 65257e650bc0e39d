"""The front-end's TOML configuration (``mpckdc kdc --config F``).

Example (``config/one-machine.toml`` has a commented one)::

    [realm]                      # MIT kdc.conf key names and duration syntax
    name = "EXAMPLE.COM"
    max_life = "10h"
    max_renewable_life = "7d"
    supported_enctypes = "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96"
    clockskew = 300
    # udp_max_reply = 1465       # optional: replies above this over UDP get RESPONSE_TOO_BIG
    # address_failure_burst = 20    # failed pre-auth/TGT decryptions per source address
    # address_failure_interval = 3  # seconds per regained one (kdc/failure_budget.py)

    [listen]
    udp = ["127.0.0.1:60088"]
    tcp = ["127.0.0.1:60088"]    # port 0: any free port, the same for UDP and TCP of a host

    [keyservice]
    kind = "mpc"                 # keys as shares on three MPC nodes (the product)
    client_config = "cluster/client.toml"   # relative paths are relative to this file
    timeout = 1.8                # seconds before a request gets KDC_ERR_SVC_UNAVAILABLE

    [log]
    file = "kdc.log"             # MIT-shaped lines; absent: standard error
    level = "info"
    audit = "audit.jsonl"        # optional: one JSON audit event per request

    [server]
    workers = 1                  # >1: that many processes sharing the port (SO_REUSEPORT)

    [metrics]                    # optional: Prometheus text at http://listen/metrics
    listen = "127.0.0.1:9188"    # worker i of N serves port + i (port 0: any free port)

    [limits]                     # optional, see kdc.transport.TransportLimits
    max_request_bytes = 65536
    max_tcp_connections = 512
    tcp_idle_timeout = 30
    max_pending_udp = 1024
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kdc.transport import TransportLimits

REALM_KEYS = (
    "name",
    "max_life",
    "max_renewable_life",
    "supported_enctypes",
    "clockskew",
    "udp_max_reply",
    "kdc_max_dgram_reply_size",  # MIT's name for udp_max_reply
    "max_request_bytes",
    "lookaside_ttl",
    "lookaside_entries",
    "lookaside_bytes",
    "address_failure_burst",
    "address_failure_interval",
)
KEYSERVICE_KINDS = ("mpc", "reference")
# The reference key service keeps clear keys in a JSON file: tests only. A config naming it
# is refused unless the test harness sets this variable to "1" in the KDC's environment.
TESTING_REFERENCE_ENV = "MPCKDC_TESTING_REFERENCE"


def reference_allowed() -> bool:
    """True only inside the test harness (``MPCKDC_TESTING_REFERENCE=1``)."""
    import os

    return os.environ.get(TESTING_REFERENCE_ENV) == "1"


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str) -> ListenAddress:
    """``host:port``, ``[v6]:port``; the port is required (0 = any free port)."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"listen address {text!r}: expected [address]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"listen address {text!r}: expected host:port")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"listen address {text!r}: port is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"listen address {text!r}: port out of range")
    return ListenAddress(host, port)


@dataclass(frozen=True)
class KeyServiceConfig:
    kind: str
    database: Path | None = None  # kind "reference" (tests only)
    client_config: Path | None = None  # kind "mpc": the cluster's client.toml
    timeout: float = 1.8  # kind "mpc": seconds before KeyServiceUnavailable


@dataclass(frozen=True)
class FrontEndConfig:
    """Everything one front-end process needs."""

    realm: dict[str, Any]  # the [realm] table as written (RealmPolicy parses it)
    udp: tuple[ListenAddress, ...]
    tcp: tuple[ListenAddress, ...]
    keyservice: KeyServiceConfig
    log_file: Path | None = None
    log_level: str = "info"
    audit_file: Path | None = None
    workers: int = 1
    limits: TransportLimits = field(default_factory=TransportLimits)
    path: Path | None = None
    metrics_listen: ListenAddress | None = None  # [metrics] listen: Prometheus /metrics over HTTP

    @property
    def realm_name(self) -> str:
        return self.realm["name"]

    def policy(self):
        """The realm policy (``kdc.realm.RealmPolicy``) described by the [realm] table."""
        from kdc.realm import RealmPolicy

        try:
            table = {k: v for k, v in self.realm.items() if k != "name"}
            return RealmPolicy.from_dict(table, realm=self.realm["name"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"[realm]: {exc}") from None


def _table(data: dict, name: str, *, required: bool = False) -> dict:
    value = data.get(name)
    if value is None:
        if required:
            raise ConfigError(f"missing [{name}] table")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _addresses(table: dict, key: str) -> tuple[ListenAddress, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[listen] {key} must be a list of \"host:port\" strings")
    return tuple(parse_address(v) for v in value)


def _path(base: Path, value: Any, key: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a path string")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def parse_config(data: dict, base_dir: Path | str = ".", path: Path | None = None) -> FrontEndConfig:
    """Check and convert a parsed TOML document; relative paths resolve against ``base_dir``."""
    base = Path(base_dir).resolve()
    realm = dict(_table(data, "realm", required=True))
    unknown = sorted(set(realm) - set(REALM_KEYS))
    if unknown:
        raise ConfigError(f"[realm]: unknown key(s) {', '.join(unknown)}")
    if not isinstance(realm.get("name"), str) or not realm["name"]:
        raise ConfigError("[realm] name is required (e.g. \"EXAMPLE.COM\")")

    listen = _table(data, "listen", required=True)
    udp, tcp = _addresses(listen, "udp"), _addresses(listen, "tcp")
    if not udp and not tcp:
        raise ConfigError("[listen] needs at least one udp or tcp address")

    ks = _table(data, "keyservice", required=True)
    keyservice = _keyservice(ks, base)

    log_table = _table(data, "log")
    level = log_table.get("level", "info")
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError("[log] level must be debug, info, warning or error")

    server = _table(data, "server")
    workers = server.get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
        raise ConfigError("[server] workers must be an integer from 1 to 64")

    limits_table = _table(data, "limits")
    known_limits = {f.name: f for f in fields(TransportLimits)}
    limit_values = {}
    for key, value in limits_table.items():
        if key not in known_limits:
            raise ConfigError(f"[limits]: unknown key {key}")
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"[limits] {key} must be a positive number")
        limit_values[key] = value
    if "max_request_bytes" in realm and "max_request_bytes" not in limit_values:
        limit_values["max_request_bytes"] = realm["max_request_bytes"]
    return FrontEndConfig(
        realm=realm,
        udp=udp,
        tcp=tcp,
        keyservice=keyservice,
        log_file=_path(base, log_table.get("file"), "[log] file"),
        log_level=level,
        audit_file=_path(base, log_table.get("audit"), "[log] audit"),
        workers=workers,
        limits=TransportLimits(**limit_values),
        path=path,
        metrics_listen=_metrics_listen(_table(data, "metrics")),
    )


def _metrics_listen(table: dict) -> ListenAddress | None:
    """``[metrics] listen = "host:port"`` (absent: no metrics endpoint). With N workers, worker
    i serves port + i (port 0: each worker its own free port; the ready file lists them)."""
    unknown = sorted(set(table) - {"listen"})
    if unknown:
        raise ConfigError(f"[metrics]: unknown key(s) {', '.join(unknown)}")
    if "listen" not in table:
        return None
    if not isinstance(table["listen"], str):
        raise ConfigError('[metrics] listen must be a "host:port" string')
    return parse_address(table["listen"])


def _keyservice(ks: dict, base: Path) -> KeyServiceConfig:
    kind = ks.get("kind")
    if kind not in KEYSERVICE_KINDS or (kind == "reference" and not reference_allowed()):
        raise ConfigError(
            f"[keyservice] kind {kind!r} is not available (use kind = \"mpc\" with "
            "client_config = the MPC cluster's client.toml)"
        )
    if kind == "reference":
        database = _path(base, ks.get("database"), "[keyservice] database")
        if database is None:
            raise ConfigError("[keyservice] database is required for kind = \"reference\"")
        return KeyServiceConfig(kind, database=database)
    client_config = _path(base, ks.get("client_config"), "[keyservice] client_config")
    if client_config is None:
        raise ConfigError("[keyservice] client_config (the MPC cluster's client.toml) is required")
    timeout = ks.get("timeout", 1.8)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 60:
        raise ConfigError("[keyservice] timeout must be a number of seconds from 0 to 60")
    unknown = sorted(set(ks) - {"kind", "client_config", "timeout"})
    if unknown:
        raise ConfigError(f"[keyservice]: unknown key(s) {', '.join(unknown)}")
    return KeyServiceConfig(kind, client_config=client_config, timeout=float(timeout))


def load_config(path: Path | str) -> FrontEndConfig:
    """Read and check a front-end TOML file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_config(data, path.resolve().parent, path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def render_toml(tables: dict[str, dict[str, Any]]) -> str:
    """Write flat tables of strings, numbers and lists (enough for our config files)."""
    lines: list[str] = []
    for name, table in tables.items():
        if lines:
            lines.append("")
        lines.append(f"[{name}]")
        for key, value in table.items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def client_krb5_conf(
    realm: str, kdcs: list[str], *, udp_preference_limit: int | None = None
) -> str:
    """A client krb5.conf for ``realm`` with ``kdc = host:port`` lines and no DNS lookups."""
    extra = (
        f"    udp_preference_limit = {udp_preference_limit}\n"
        if udp_preference_limit is not None
        else ""
    )
    kdc_lines = "".join(f"        kdc = {k}\n" for k in kdcs)
    return (
        "[libdefaults]\n"
        f"    default_realm = {realm}\n"
        "    dns_lookup_kdc = false\n"
        "    dns_lookup_realm = false\n"
        "    rdns = false\n"
        "    dns_canonicalize_hostname = false\n"
        f"{extra}"
        "\n[realms]\n"
        f"    {realm} = {{\n"
        f"{kdc_lines}"
        "    }\n"
        "\n[domain_realm]\n"
        f"    localhost = {realm}\n"
    )
