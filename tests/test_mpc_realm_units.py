"""The MPC realm's front side without processes: config gating of the reference key service,
the admin tool's argument and output helpers, cluster config rewriting, the CLI's messages."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from clients.admin import _flag, format_principal, parse_etypes, parse_life, parse_time
from clients.admin_init import configure_cluster, write_cluster
from clients.admin_ops import (
    KeyMaterial,
    PrincipalSpec,
    canonical_name,
    default_salt,
    entry_of,
    make_record,
)
from kdc.config import ConfigError, parse_config
from kdc.keyservice.base import DISALLOW_ALL_TIX, REQUIRES_PREAUTH
from tests.vectors import PROJECT_ROOT

BASE = {"realm": {"name": "R.TEST"}, "listen": {"udp": ["127.0.0.1:0"]}}


def test_reference_key_service_refused_outside_the_test_harness(monkeypatch):
    monkeypatch.delenv("MPCKDC_TESTING_REFERENCE", raising=False)
    tables = BASE | {"keyservice": {"kind": "reference", "database": "db.json"}}
    with pytest.raises(ConfigError, match="not available"):
        parse_config(tables)
    monkeypatch.setenv("MPCKDC_TESTING_REFERENCE", "1")
    assert parse_config(tables).keyservice.kind == "reference"


def test_mpc_key_service_config(tmp_path):
    with pytest.raises(ConfigError, match="client_config"):
        parse_config(BASE | {"keyservice": {"kind": "mpc"}})
    with pytest.raises(ConfigError, match="timeout"):
        parse_config(BASE | {"keyservice": {"kind": "mpc", "client_config": "c.toml",
                                            "timeout": 0}})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config(BASE | {"keyservice": {"kind": "mpc", "client_config": "c.toml",
                                            "database": "x"}})
    config = parse_config(BASE | {"keyservice": {"kind": "mpc", "client_config": "c.toml"}},
                          tmp_path)
    assert config.keyservice.client_config == tmp_path / "c.toml"
    assert config.keyservice.timeout == 1.8


def test_example_config_names_the_mpc_key_service():
    with open(PROJECT_ROOT / "config" / "one-machine.toml", "rb") as f:
        doc = tomllib.load(f)
    assert doc["keyservice"]["kind"] == "mpc"
    assert doc["keyservice"]["client_config"].endswith("cluster/client.toml")


def test_admin_argument_helpers():
    assert parse_time("never") is None
    assert parse_time("2027-01-02", now=0) == 1798848000
    assert parse_time("now+1d", now=100) == 100 + 86400
    assert parse_time("+2h", now=0) == 7200
    assert parse_life("10h") == 36000 and parse_life("1d 2h") == 93600
    assert parse_etypes("aes256-cts aes128-cts-hmac-sha1-96:normal") == [18, 17]
    add: set[str] = set()
    remove: set[str] = set()
    assert _flag("+requires_preauth", add, remove) and add == {REQUIRES_PREAUTH}
    assert _flag("-allow_tix", add, remove) and DISALLOW_ALL_TIX in add
    assert _flag("-requires_preauth", add, remove) and REQUIRES_PREAUTH in remove
    assert REQUIRES_PREAUTH not in add
    assert not _flag("+colour", add, remove)


def test_names_salts_and_getprinc_output_without_key_bytes():
    assert canonical_name("HTTP/web", "R.TEST") == "HTTP/web@R.TEST"
    assert default_salt("HTTP/web@R.TEST", "R.TEST") == b"R.TESTHTTPweb"
    material = KeyMaterial.from_password("pw", b"R.TESTalice", [18, 17])
    key_bytes = [bytes(b) for b in material.keys.values()]
    assert "redacted" in repr(material) and key_bytes[0].hex() not in repr(material)
    material.wipe()
    assert all(v is None for v in material.keys.values())
    record = make_record("alice@R.TEST", 3, [18, 17], b"R.TESTalice",
                         PrincipalSpec(frozenset({REQUIRES_PREAUTH}), max_life=7200),
                         created=0, modified=0)
    record["version"] = 4
    text = format_principal(entry_of(record), "admin@R.TEST")
    assert "Key: vno 3, aes256-cts-hmac-sha1-96" in text
    assert "Key: vno 3, aes128-cts-hmac-sha1-96" in text
    assert "Maximum ticket life: 0 days 02:00:00" in text
    assert "Attributes: REQUIRES_PRE_AUTH" in text
    assert not any(k.hex() in text for k in key_bytes)


def test_cluster_ports_move_and_admin_realm_is_recorded(tmp_path):
    ports = list(range(41000, 41012))
    client = write_cluster(tmp_path, "R.TEST", ports=ports)
    with open(client, "rb") as f:
        doc = tomllib.load(f)
    assert doc["admin"]["realm"] == "R.TEST"
    assert [n["client_port"] for n in doc["nodes"]] == ports[3:6]
    configure_cluster(tmp_path, "R.TEST", ports=list(range(42000, 42012)))
    from mpc.cluster import load_client_config, load_node_config

    node = load_node_config(tmp_path / "node-1.toml")
    assert (node.port, node.client_port, node.admin_port, node.metrics_port) == (
        42001, 42004, 42007, 42010)
    assert node.store.startswith("sqlite:")
    assert [a.admin_port for a in load_client_config(client).nodes] == [42006, 42007, 42008]
    assert node.prf_own and node.prf_next  # the PRF key file is untouched
    assert node.spin_us == 500  # the default: link readers poll while jobs run
    text = (tmp_path / "node-1.toml").read_text()
    (tmp_path / "node-1.toml").write_text(text.replace("[node]\n", "[node]\nspin_us = 0\n", 1))
    assert load_node_config(tmp_path / "node-1.toml").spin_us == 0


def test_cli_messages_without_a_cluster(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "kdc.cli", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)})

    r = run("admin", "getprinc", "bob")
    assert r.returncode == 1 and "no cluster client config" in r.stderr
    r = run("admin", "frobnicate")
    assert r.returncode == 2 and 'Unknown request "frobnicate"' in r.stderr
    r = run("bench")
    assert r.returncode == 2 and "bench load" in r.stderr
    assert "Traceback" not in r.stderr
