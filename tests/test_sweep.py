"""bench/sweep.py in a tiny configuration: real MIT krb5kdc (and the real MPC realm: three node
processes + front-end), bulk registration, two open-loop steps per mode, JSON and PNG output.
No timed assertions: only that every part ran and produced its rows and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.mit_kdc import missing_programs
from tests.vectors import PROJECT_ROOT

pytestmark = pytest.mark.skipif(bool(missing_programs()),
                                reason="MIT krb5 programs not installed")


def run_sweep(out, *args: str, timeout: float) -> dict:
    p = subprocess.run([sys.executable, "-m", "bench.sweep", "--out", str(out), *args],
                       cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    assert "knee (highest offered rate" in p.stdout
    return json.loads((out / "sweep.json").read_text())


def assert_pngs(doc: dict, modes: list[str]) -> None:
    assert sorted(doc["plots"]) == sorted(modes)
    for mode in modes:
        names = {p.rsplit("/", 1)[1] for p in doc["plots"][mode]}
        assert names == {"throughput.png", "latency.png", "cdf.png", "sweep.png",
                         "sweep-by-target.png"}
        for p in doc["plots"][mode]:
            with open(p, "rb") as f:
                head = f.read(8)
            assert head == b"\x89PNG\r\n\x1a\n"
            assert os.path.getsize(p) > 1000


def test_sweep_mit_both_modes(tmp_path):
    out = tmp_path / "out"
    doc = run_sweep(out, "--targets", "mit", "--users", "20", "--mit-rates", "20,40",
                    "--duration", "1", timeout=120)
    assert doc["registration"]["mit-krb5kdc"]["users"] == 20
    assert doc["registration"]["mit-krb5kdc"]["users_per_s"] > 0
    for mode in ("as-preauth", "tgs"):
        rows = [r for r in doc["steps"] if r["mode"] == mode]
        assert [r["offered_rate"] for r in rows] == [20.0, 40.0]
        # every step sent real requests and got real answers (pass or fail by code)
        assert all(r["ok"] + r["errors"] > 0 for r in rows)
        result = json.loads((out / mode / "result.json").read_text())
        assert {row["label"] for row in result["sweep"]} == {"mit-krb5kdc"}
    assert {(k["target"], k["mode"]) for k in doc["knees"]} == {
        ("mit-krb5kdc", "as-preauth"), ("mit-krb5kdc", "tgs")}
    assert_pngs(doc, ["as-preauth", "tgs"])


def test_sweep_mpc_and_mit_side_by_side(tmp_path):
    out = tmp_path / "out"
    doc = run_sweep(out, "--targets", "mpc,mit", "--modes", "as-preauth", "--users", "20",
                    "--mpc-rates", "1", "--mit-rates", "20", "--duration", "1.5",
                    "--retry-missed", "0", timeout=300)
    assert set(doc["registration"]) == {"mpckdc", "mit-krb5kdc"}
    assert doc["registration"]["mpckdc"]["users"] == 20
    rows = {r["target"]: r for r in doc["steps"]}
    assert set(rows) == {"mpckdc", "mit-krb5kdc"}
    assert rows["mit-krb5kdc"]["ok"] > 0
    assert rows["mpckdc"]["ok"] + rows["mpckdc"]["errors"] > 0
    # the nodes' /metrics were scraped around the step: MPC rounds happened during it
    mpc = rows["mpckdc"]["mpc"]
    assert len(mpc["nodes"]) == 3
    assert all(n["rounds"] > 0 for n in mpc["nodes"]) or rows["mpckdc"]["ok"] == 0
    result = json.loads((out / "as-preauth" / "result.json").read_text())
    assert {row["label"] for row in result["sweep"]} == {"mpckdc", "mit-krb5kdc"}
    assert_pngs(doc, ["as-preauth"])
