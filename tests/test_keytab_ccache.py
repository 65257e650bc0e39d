"""Keytab v0x502, ccache v4 and krb5.conf parsing, checked against MIT's files and MIT's klist."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.ccache import (
    Ccache,
    CcacheError,
    Credential,
    parse_ccache,
    read_ccache,
    serialize_ccache,
    write_ccache,
)
from clients.keytab import (
    KeytabEntry,
    KeytabError,
    parse_keytab,
    read_keytab,
    serialize_keytab,
    write_keytab,
)
from clients.klist import format_ccache, format_keytab
from clients.krb5conf import ConfigError, load_config, parse_duration, parse_profile
from kdc.crypto import Key, decrypt
from kdc.messages import decode, decode_message, encode
from kdc.messages.model import EncKdcRepPart
from tests.mit_kdc import find_program
from tests.vectors import PROJECT_ROOT, capture, captures_dir

KEYTABS = captures_dir() / "keytabs"

# The key table of captures/mit-krb5-1.20/README.md (all kvno 1).
README_KEYS = {
    ("alice@EXAMPLE.COM", 18): "6f4656b4249379e3f71f4da93b5cc6c25dff516351d6e1d93b4bf712a705ff3b",
    ("alice@EXAMPLE.COM", 17): "8af91a0c0e809c442cfba9512ca37c6a",
    ("bob@EXAMPLE.COM", 18): "941f98d5fd9cf929c93678bcd0624790d03ce1ff14c65c37d80526b01737267b",
    ("bob@EXAMPLE.COM", 17): "824ce39a25eb4bdd684b8c708244455b",
    ("HTTP/localhost@EXAMPLE.COM", 18):
        "6757b3a582d4591e7f13069378b9a255d88afd1f0363e0bc1126dd936a52cfcf",
    ("HTTP/localhost@EXAMPLE.COM", 17): "6d92ce460e07d1a1cc832ba6b190ee44",
    ("krbtgt/EXAMPLE.COM@EXAMPLE.COM", 18):
        "dc0ee3e3d66984f908440b845cc41c77fa483bea9021b4a07bf248e0ba22623a",
    ("krbtgt/EXAMPLE.COM@EXAMPLE.COM", 17): "adf11d817162ac2ab53d6b4709dc3c44",
}
ALICE_TGT_SESSION_KEY = "6a92a6cac45ad8170abf2848172aaded29dd0d758be38395cf7f16fb583ac71c"

needs_mit_klist = pytest.mark.skipif(find_program("klist") is None,
                                     reason="MIT klist (krb5-user) not installed")


@pytest.fixture(autouse=True)
def krb5_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A minimal krb5.conf and ccache name, set in os.environ and returned for subprocesses."""
    conf = tmp_path / "krb5.conf"
    conf.write_text("[libdefaults]\n    default_realm = EXAMPLE.COM\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
    env.update(KRB5_CONFIG=str(conf), KRB5CCNAME=f"FILE:{tmp_path}/ccache", LC_ALL="C",
               KRB5_KTNAME=f"FILE:{tmp_path}/default.keytab")
    for k, v in env.items():
        if k.startswith("KRB5") or k == "LC_ALL":
            monkeypatch.setenv(k, v)
    return env


def run_mit(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([find_program(args[0]) or args[0], *args[1:]], env=env,
                          capture_output=True, text=True, timeout=30)


def run_ours(module: str, args: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    env = dict(env, PYTHONPATH=str(PROJECT_ROOT))
    return subprocess.run([sys.executable, "-m", module, *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60, **kw)


# -- keytab ---------------------------------------------------------------------------------------


def test_capture_keytabs_hold_the_readme_keys(krb5_env):
    entries = read_keytab(str(KEYTABS / "all.keytab"))
    found = {(e.principal, e.key.etype): e.key.contents.hex() for e in entries}
    assert found == README_KEYS
    assert {e.kvno for e in entries} == {1}
    by_name = {e.principal: e.name_type for e in entries}
    assert by_name["krbtgt/EXAMPLE.COM@EXAMPLE.COM"] == 2  # NT_SRV_INST as MIT wrote it
    assert by_name["HTTP/localhost@EXAMPLE.COM"] == 1
    for name, principal in (("alice", "alice@EXAMPLE.COM"), ("bob", "bob@EXAMPLE.COM"),
                            ("http", "HTTP/localhost@EXAMPLE.COM"),
                            ("krbtgt", "krbtgt/EXAMPLE.COM@EXAMPLE.COM")):
        single = read_keytab(f"FILE:{KEYTABS / name}.keytab")
        assert [(e.principal, e.key.etype) for e in single] == [(principal, 18), (principal, 17)]
        for e in single:
            assert e.key.contents.hex() == README_KEYS[(principal, e.key.etype)]


@pytest.mark.parametrize("name", ["alice", "bob", "http", "krbtgt", "all"])
def test_capture_keytab_round_trip_is_byte_identical(name):
    data = (KEYTABS / f"{name}.keytab").read_bytes()
    assert serialize_keytab(parse_keytab(data)) == data


def test_keytab_entry_repr_hides_key():
    entry = KeytabEntry("alice@EXAMPLE.COM", 3, Key(17, bytes.fromhex(README_KEYS[
        ("alice@EXAMPLE.COM", 17)])))
    assert README_KEYS[("alice@EXAMPLE.COM", 17)] not in repr(entry)
    assert "alice@EXAMPLE.COM" in repr(entry) and "kvno=3" in repr(entry)


@needs_mit_klist
def test_written_keytab_is_listed_by_mit_klist(tmp_path, krb5_env):
    entries = [
        KeytabEntry("HTTP/web.example.com@EXAMPLE.COM", 5, Key(18, bytes(range(32))), 1_700_000_000),
        KeytabEntry("HTTP/web.example.com@EXAMPLE.COM", 5, Key(17, bytes(range(16))), 1_700_000_000),
        KeytabEntry("carol@EXAMPLE.COM", 300, Key(18, bytes(32)), 1_800_000_000),
        KeytabEntry("krbtgt/EXAMPLE.COM@EXAMPLE.COM", 2, Key(17, bytes(16)), 0),
    ]
    path = tmp_path / "new.keytab"
    write_keytab(str(path), entries)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_keytab(str(path)) == [
        KeytabEntry(e.principal, e.kvno, e.key, e.timestamp, 2 if e.principal.startswith(
            "krbtgt/") else 1) for e in entries]
    # round trip of our own file is byte-identical too
    assert serialize_keytab(read_keytab(str(path))) == path.read_bytes()

    mit = run_mit(["klist", "-k", "-e", "-t", str(path)], krb5_env)
    assert mit.returncode == 0, mit.stderr
    lines = mit.stdout.splitlines()
    assert lines[0] == f"Keytab name: FILE:{path}"
    body = [line.split() for line in lines[3:]]
    # KVNO, date, time, principal, (etype)
    assert [(int(f[0]), f[3], f[4]) for f in body] == [
        (5, "HTTP/web.example.com@EXAMPLE.COM", "(aes256-cts-hmac-sha1-96)"),
        (5, "HTTP/web.example.com@EXAMPLE.COM", "(aes128-cts-hmac-sha1-96)"),
        (300, "carol@EXAMPLE.COM", "(aes256-cts-hmac-sha1-96)"),
        (2, "krbtgt/EXAMPLE.COM@EXAMPLE.COM", "(aes128-cts-hmac-sha1-96)"),
    ]
    # our klist prints the very same text, and python -m clients.klist works
    ours = format_keytab(str(path), read_keytab(str(path)), show_time=True, show_etype=True,
                         show_keys=False)
    assert ours == mit.stdout
    cli = run_ours("clients.klist", ["-k", "-e", "-t", str(path)], krb5_env)
    assert cli.returncode == 0 and cli.stdout == mit.stdout
    mit_keys = run_mit(["klist", "-k", "-K", str(path)], krb5_env)
    cli_keys = run_ours("clients.klist", ["-k", "-K", str(path)], krb5_env)
    assert cli_keys.stdout == mit_keys.stdout


@needs_mit_klist
def test_capture_keytab_listing_equals_mit(krb5_env):
    for flags in (["-k"], ["-k", "-e"], ["-k", "-t", "-e"], ["-k", "-t", "-e", "-K"]):
        path = str(KEYTABS / "all.keytab")
        mit = run_mit(["klist", *flags, path], krb5_env)
        ours = run_ours("clients.klist", [*flags, path], krb5_env)
        assert mit.returncode == 0 and ours.returncode == 0
        assert ours.stdout == mit.stdout


def test_keytab_append_and_errors(tmp_path):
    path = tmp_path / "kt"
    a = KeytabEntry("a@R", 1, Key(17, bytes(16)))
    b = KeytabEntry("b@R", 2, Key(18, bytes(32)))
    write_keytab(str(path), [a])
    write_keytab(str(path), [b], append=True)
    assert [(e.principal, e.kvno) for e in read_keytab(str(path))] == [("a@R", 1), ("b@R", 2)]
    data = path.read_bytes()
    with pytest.raises(KeytabError, match="truncated"):
        parse_keytab(data[:-3])
    with pytest.raises(KeytabError, match="version"):
        parse_keytab(b"\x05\x01" + data[2:])
    with pytest.raises(KeytabError, match="not found"):
        read_keytab(str(tmp_path / "missing"))
    # a hole (negative length) is skipped, as MIT does for deleted entries
    holed = data[:2] + (-8).to_bytes(4, "big", signed=True) + bytes(8) + data[2:]
    assert len(parse_keytab(holed)) == 2


# -- ccache ---------------------------------------------------------------------------------------


def alice_tgt_credential() -> Credential:
    """alice's TGT from the MIT capture, its enc-part decrypted with alice's key."""
    rep = decode_message(capture("alice-as-rep"))
    key = Key(18, bytes.fromhex(README_KEYS[("alice@EXAMPLE.COM", 18)]))
    part = decode(EncKdcRepPart, decrypt(key, 3, rep.enc_part.cipher))
    return Credential(
        client="alice@EXAMPLE.COM",
        server="krbtgt/EXAMPLE.COM@EXAMPLE.COM",
        key=Key(part.key.keytype, part.key.keyvalue),
        authtime=part.authtime,
        starttime=part.starttime or 0,
        endtime=part.endtime,
        renew_till=part.renew_till or 0,
        flags=part.flags,
        ticket=encode(rep.ticket),
    )


def test_ccache_round_trip(tmp_path):
    cred = alice_tgt_credential()
    assert cred.key.contents.hex() == ALICE_TGT_SESSION_KEY
    assert ALICE_TGT_SESSION_KEY not in repr(cred)
    cc = Ccache("alice@EXAMPLE.COM", [cred])
    path = tmp_path / "cc"
    write_ccache(f"FILE:{path}", cc)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    assert data[:2] == b"\x05\x04"
    assert data[2:16] == bytes.fromhex("000c 0001 0008") + bytes(8)  # DeltaTime tag, as MIT's
    back = read_ccache(str(path))
    assert back.default_principal == "alice@EXAMPLE.COM"
    [got] = back.credentials
    assert (got.client, got.server, got.key, got.authtime, got.endtime, got.renew_till,
            got.flags, got.ticket) == (cred.client, cred.server, cred.key, cred.authtime,
                                       cred.endtime, cred.renew_till, cred.flags, cred.ticket)
    assert serialize_ccache(back) == data
    with pytest.raises(CcacheError):
        parse_ccache(data[:-1])
    with pytest.raises(CcacheError, match="version"):
        parse_ccache(b"\x05\x03" + data[2:])
    with pytest.raises(CcacheError, match="Unsupported credentials cache type"):
        read_ccache("KEYRING:persistent:0")


@needs_mit_klist
def test_ccache_listed_by_mit_klist_like_ours(tmp_path, krb5_env):
    cred = alice_tgt_credential()
    path = tmp_path / "cc"
    write_ccache(str(path), Ccache("alice@EXAMPLE.COM", [cred]))
    for flags in ([], ["-f"], ["-e"], ["-e", "-f"]):
        mit = run_mit(["klist", *flags, "-c", f"FILE:{path}"], krb5_env)
        assert mit.returncode == 0, mit.stderr
        assert "Default principal: alice@EXAMPLE.COM" in mit.stdout
        assert "krbtgt/EXAMPLE.COM@EXAMPLE.COM" in mit.stdout
        ours = format_ccache(f"FILE:{path}", read_ccache(str(path)), show_flags="-f" in flags,
                             show_etype="-e" in flags, show_config=False)
        assert ours == mit.stdout
    assert "Flags: RI" in run_mit(["klist", "-f", str(path)], krb5_env).stdout


def test_ccache_missing_file_message(tmp_path, krb5_env):
    env = dict(krb5_env, KRB5CCNAME=f"FILE:{tmp_path}/none")
    ours = run_ours("clients.klist", [], env)
    assert ours.returncode == 1
    assert ours.stderr == f"klist: No credentials cache found (filename: {tmp_path}/none)\n"
    if find_program("klist"):
        mit = run_mit(["klist"], env)
        assert mit.stderr == ours.stderr


# -- krb5.conf ------------------------------------------------------------------------------------


def test_krb5conf_parsing(tmp_path, monkeypatch):
    conf = tmp_path / "krb5.conf"
    conf.write_text(
        "# comment\n[libdefaults]\n default_realm = EXAMPLE.COM\n udp_preference_limit = 1\n"
        " ticket_lifetime = 10h 30m\n renew_lifetime = 7d\n forwardable = true\n\n"
        "[realms]\n EXAMPLE.COM = {\n  kdc = 127.0.0.1:18088\n  kdc = tcp/[::1]:99\n"
        "  kdc = kdc.example.com\n  admin_server = x\n }\n OTHER.ORG = {\n }\n"
    )
    monkeypatch.setenv("KRB5_CONFIG", f"{tmp_path}/missing.conf:{conf}")
    config = load_config()
    assert config.default_realm == "EXAMPLE.COM"
    assert config.udp_preference_limit == 1
    assert config.ticket_lifetime == 10 * 3600 + 30 * 60
    assert config.renew_lifetime == 7 * 86400
    assert config.forwardable is True
    assert config.kdcs("EXAMPLE.COM") == [("127.0.0.1", 18088), ("::1", 99),
                                          ("kdc.example.com", 88)]
    with pytest.raises(ConfigError, match="Cannot find KDC"):
        config.kdcs("OTHER.ORG")
    monkeypatch.delenv("KRB5_CONFIG")
    with pytest.raises(ConfigError, match="KRB5_CONFIG is not set"):
        load_config()
    assert load_config({"KRB5_CONFIG": str(conf)}).default_realm == "EXAMPLE.COM"


@pytest.mark.parametrize("text,seconds", [
    ("36000", 36000), ("10h", 36000), ("10h 0m 0s", 36000), ("1d2h", 93600), ("1:30", 5400),
    ("0:00:45", 45), ("7d 0h 0m 0s", 604800),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_profile_errors():
    for bad in ("kdc = x\n", "[realms]\n R = {\n kdc = x\n", "[libdefaults]\nnovalue\n",
                "[realms]\n}\n"):
        with pytest.raises(ConfigError):
            parse_profile(bad)
    with pytest.raises(ConfigError):
        parse_duration("ten hours")


# -- malformed files: a clear error, never another exception -------------------------------------

_KEYTAB_SAMPLE = (KEYTABS / "all.keytab").read_bytes()


def _ccache_sample() -> bytes:
    return serialize_ccache(Ccache("alice@EXAMPLE.COM", [alice_tgt_credential()]))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_keytab_gives_keytab_error(data):
    blob = bytearray(_KEYTAB_SAMPLE)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        entries = parse_keytab(bytes(blob[:cut]))
    except KeytabError:
        return
    for e in entries:
        assert isinstance(e.principal, str) and isinstance(e.key, Key)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_ccache_gives_ccache_error(data):
    sample = _ccache_sample()
    blob = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        cc = parse_ccache(bytes(blob[:cut]))
    except CcacheError:
        return
    for cred in cc.credentials:
        cred.is_config  # noqa: B018  (must not raise)
    assert serialize_ccache(cc) == bytes(blob[:cut])  # whatever parses re-encodes identically


def test_files_are_rewritten_in_place_with_mode_0600(tmp_path):
    """Key-holding files: mode 0600 even over an existing 0644 file, and no temp copies."""
    kt, cc = tmp_path / "x.keytab", tmp_path / "x.cc"
    for path in (kt, cc):
        path.write_bytes(b"old")
        path.chmod(0o644)
    write_keytab(str(kt), [KeytabEntry("a@R", 1, Key(17, bytes(16)))])
    write_ccache(str(cc), Ccache("alice@EXAMPLE.COM", [alice_tgt_credential()]))
    assert stat.S_IMODE(kt.stat().st_mode) == 0o600 and stat.S_IMODE(cc.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["krb5.conf", "x.cc", "x.keytab"]
    assert len(read_keytab(str(kt))) == 1 and len(read_ccache(str(cc)).credentials) == 1
