"""The front-end's Prometheus metrics (``[metrics] listen``), checked against real traffic.

A realm of our KDC (tests/realm.py) runs with ``[metrics] listen = "127.0.0.1:0"``; the ready
file names the bound /metrics address. Real MIT kinit/kvno log in, fail a password, get a
service ticket; a raw UDP socket retransmits one request. Each scrape is parsed with
``kdc.metrics.parse_text`` and its change must equal what was done, and equal the KDC's own
audit log over the same interval.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import socket
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from kdc.config import TESTING_REFERENCE_ENV, ConfigError, ListenAddress, parse_config
from kdc.metrics import CONTENT_TYPE, Sample, parse_text
from tests import realm as realm_mod
from tests.realm import REALM, SERVICE, KdcRealm, require_mit_clients

REQUESTS = "mpckdc_kdc_requests_total"
LATENCY = "mpckdc_kdc_request_seconds"
LOOKASIDE = "mpckdc_kdc_lookaside_hits_total"


# -- configuration ---------------------------------------------------------------------------


def _doc(**extra) -> dict:
    return {
        "realm": {"name": REALM},
        "listen": {"udp": ["127.0.0.1:0"]},
        "keyservice": {"kind": "mpc", "client_config": "cluster/client.toml"},
        **extra,
    }


def test_metrics_table_is_optional_and_checked():
    assert parse_config(_doc()).metrics_listen is None
    assert parse_config(_doc(metrics={})).metrics_listen is None
    cfg = parse_config(_doc(metrics={"listen": "127.0.0.1:9188"}))
    assert cfg.metrics_listen == ListenAddress("127.0.0.1", 9188)
    assert parse_config(_doc(metrics={"listen": "[::1]:0"})).metrics_listen == \
        ListenAddress("::1", 0)
    for bad, message in (
        ({"listen": 9188}, "host:port"),
        ({"listen": "127.0.0.1"}, "host:port"),
        ({"listen": "127.0.0.1:70000"}, "out of range"),
        ({"listen": "127.0.0.1:1", "port": 2}, "unknown key"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_config(_doc(metrics=bad))
    with pytest.raises(ConfigError, match=r"\[metrics\] must be a table"):
        parse_config(_doc(metrics="127.0.0.1:9188"))


def test_shipped_example_config_parses_with_metrics_uncommented():
    """config/one-machine.toml documents [metrics]; uncommented, it is a valid table."""
    import tomllib

    text = (Path(__file__).resolve().parent.parent / "config" / "one-machine.toml").read_text()
    assert "# [metrics]" in text
    enabled = re.sub(r"(?m)^# (\[metrics\]|listen = )", r"\1", text)
    cfg = parse_config(tomllib.loads(enabled))
    assert cfg.metrics_listen == ListenAddress("127.0.0.1", 9188)


# -- a running realm with metrics ----------------------------------------------------------------


@dataclasses.dataclass
class MetricsRealm:
    kdc: KdcRealm
    urls: list[str]

    @property
    def audit_file(self) -> Path:
        return self.kdc.work / "audit.jsonl"


def start_metrics_realm(work: Path, *, workers: int | None = None) -> MetricsRealm:
    """tests/realm.py's realm plus ``[metrics] listen = "127.0.0.1:0"``."""
    work.mkdir(parents=True, exist_ok=True)
    realm_mod.create_database(work)
    config = realm_mod.write_kdc_config(work)
    config.write_text(config.read_text() + '\n[metrics]\nlisten = "127.0.0.1:0"\n')
    kdc = KdcRealm(work=work)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TESTING_REFERENCE_ENV, "1")  # the child's reference key service (tests only)
        realm_mod.start_kdc(kdc, workers=workers)
    realm_mod.write_client_configs(kdc)
    info = json.loads((work / "ready.json").read_text())
    return MetricsRealm(kdc, [f"http://{address}/metrics" for address in info["metrics"]])


@pytest.fixture(scope="module")
def mrealm(tmp_path_factory):
    require_mit_clients()
    r = start_metrics_realm(tmp_path_factory.mktemp("metrics-realm"))
    try:
        yield r
    finally:
        r.kdc.stop()


def fetch(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - our own 127.0.0.1 URL
        return resp.headers.get("Content-Type", ""), resp.read().decode("utf-8")


def scrape(urls: list[str]) -> list[Sample]:
    samples: list[Sample] = []
    for url in urls:
        samples.extend(parse_text(fetch(url)[1]))
    return samples


def values(samples: list[Sample], name: str) -> Counter:
    """Sum per label set (over workers) of the samples called ``name``."""
    out: Counter = Counter()
    for s in samples:
        if s.name == name:
            out[s.labels] += s.value
    return out


def requests_by(samples: list[Sample]) -> Counter:
    """(type, status, outcome) -> count."""
    return Counter({(dict(k)["type"], dict(k)["status"], dict(k)["outcome"]): v
                    for k, v in values(samples, REQUESTS).items()})


def delta(after: Counter, before: Counter) -> dict:
    out = {k: after[k] - before.get(k, 0) for k in after}
    return {k: v for k, v in out.items() if v}


def scalar(samples: list[Sample], name: str) -> float:
    return sum(s.value for s in samples if s.name == name and not s.labels)


def audit_lines(r: MetricsRealm) -> list[dict]:
    try:
        text = r.audit_file.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def audit_counts(events: list[dict]) -> dict:
    return dict(Counter((e["type"], e["status"], e["outcome"]) for e in events))


def fresh_as_req() -> bytes:
    """alice's captured AS-REQ with a new random nonce: bytes the KDC has not seen yet."""
    import secrets

    from kdc.messages import decode, encode
    from kdc.messages.model import KdcReq
    from tests.vectors import capture

    req = decode(KdcReq, capture("alice-as-req"))
    body = dataclasses.replace(req.req_body, nonce=secrets.randbelow(1 << 31))
    return encode(dataclasses.replace(req, req_body=body))


def udp_exchange(address: tuple[str, int], data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(data, address)
        return s.recvfrom(65536)[0]


# -- tests against the running realm ---------------------------------------------------------


def test_ready_file_names_one_metrics_endpoint_serving_text_format(mrealm):
    assert len(mrealm.urls) == 1
    content_type, text = fetch(mrealm.urls[0])
    assert content_type == CONTENT_TYPE
    assert "# TYPE mpckdc_kdc_requests_total counter" in text
    assert "# TYPE mpckdc_kdc_request_seconds histogram" in text
    assert "# TYPE mpckdc_kdc_udp_requests_total counter" in text
    assert "# TYPE mpckdc_kdc_tcp_open gauge" in text
    assert scalar(parse_text(text), LOOKASIDE) >= 0  # present before any hit
    other = mrealm.urls[0].replace("/metrics", "/other")
    with pytest.raises(urllib.error.HTTPError) as info:
        fetch(other)
    assert info.value.code == 404


def test_logins_are_counted_by_type_status_and_outcome(mrealm):
    kdc = mrealm.kdc
    audit_before = len(audit_lines(mrealm))
    before = scrape(mrealm.urls)
    kdc.kinit("bob@" + REALM)  # +requires_preauth: NEEDED_PREAUTH, then ISSUE
    kdc.run(["kvno", f"{SERVICE}@{REALM}"])  # one TGS-REQ
    wrong = kdc.kinit("bob@" + REALM, "not-bobs-password", check=False,
                      ccache=kdc.work / "wrong.ccache")
    assert wrong.returncode != 0 and "Password incorrect" in wrong.stderr
    kdc.kinit("alice@" + REALM, ccache=kdc.work / "alice.ccache")  # no preauth: one AS-REQ
    after = scrape(mrealm.urls)

    got = delta(requests_by(after), requests_by(before))
    # A slow machine can make kinit retransmit over UDP; those are DISPATCH lookaside hits.
    kerberos = {k: v for k, v in got.items() if k[0] != "DISPATCH"}
    assert kerberos == {
        ("AS_REQ", "NEEDED_PREAUTH", "error"): 2,  # two pre-authenticated logins tried
        ("AS_REQ", "ISSUE", "issue"): 2,  # bob, alice
        ("AS_REQ", "PREAUTH_FAILED", "error"): 1,  # the wrong password
        ("TGS_REQ", "ISSUE", "issue"): 1,
    }
    assert set(got) - set(kerberos) <= {("DISPATCH", "LOOKASIDE", "lookaside")}
    # ... and exactly what the KDC's own audit log recorded over the same interval
    assert got == audit_counts(audit_lines(mrealm)[audit_before:])
    lookaside = scalar(after, LOOKASIDE) - scalar(before, LOOKASIDE)
    assert lookaside == got.get(("DISPATCH", "LOOKASIDE", "lookaside"), 0)

    # latency histogram: one observation per request, per type
    counts_after, counts_before = values(after, LATENCY + "_count"), values(before, LATENCY + "_count")
    for kind in ("AS_REQ", "TGS_REQ"):
        key = (("type", kind),)
        wanted = sum(v for (t, _s, _o), v in got.items() if t == kind)
        assert counts_after[key] - counts_before.get(key, 0) == wanted


def test_histograms_are_cumulative_and_match_the_request_counter(mrealm):
    mrealm.kdc.kinit("alice@" + REALM, ccache=mrealm.kdc.work / "h.ccache")
    samples = scrape(mrealm.urls)
    by_type: Counter = Counter()
    for (kind, _status, _outcome), v in requests_by(samples).items():
        by_type[kind] += v
    assert by_type["AS_REQ"] >= 1
    kinds = {s.label("type") for s in samples if s.name == LATENCY + "_count"}
    assert kinds == set(by_type)
    for kind in kinds:
        buckets = [(s.label("le"), s.value) for s in samples
                   if s.name == LATENCY + "_bucket" and s.label("type") == kind]
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), f"{kind}: buckets not cumulative"
        assert buckets[-1][0] == "+Inf"
        bounds = [float(le) for le, _ in buckets]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)
        count = values(samples, LATENCY + "_count")[(("type", kind),)]
        total = values(samples, LATENCY + "_sum")[(("type", kind),)]
        assert buckets[-1][1] == count == by_type[kind]
        assert 0 < total < 60 * count  # seconds, every request answered


def test_a_udp_retransmit_is_a_lookaside_hit(mrealm):
    request = fresh_as_req()
    before = scrape(mrealm.urls)
    first = udp_exchange(mrealm.kdc.address, request)
    second = udp_exchange(mrealm.kdc.address, request)  # the same bytes again
    after = scrape(mrealm.urls)
    assert first[:1] == b"\x6b" and second == first  # AS-REP, resent unchanged
    assert delta(requests_by(after), requests_by(before)) == {
        ("AS_REQ", "ISSUE", "issue"): 1,
        ("DISPATCH", "LOOKASIDE", "lookaside"): 1,
    }
    assert scalar(after, LOOKASIDE) - scalar(before, LOOKASIDE) == 1
    for name in ("mpckdc_kdc_udp_requests_total", "mpckdc_kdc_udp_replies_total"):
        assert scalar(after, name) - scalar(before, name) == 2, name
    dispatch = values(after, LATENCY + "_count")[(("type", "DISPATCH"),)]
    assert dispatch >= 1


def test_tcp_requests_are_counted(mrealm):
    kdc = mrealm.kdc
    before = scrape(mrealm.urls)
    kdc.kinit("alice@" + REALM, tcp=True, ccache=kdc.work / "tcp.ccache")
    after = scrape(mrealm.urls)
    assert delta(requests_by(after), requests_by(before)) == {("AS_REQ", "ISSUE", "issue"): 1}
    for name in ("mpckdc_kdc_tcp_connections_total", "mpckdc_kdc_tcp_requests_total",
                 "mpckdc_kdc_tcp_replies_total"):
        assert scalar(after, name) - scalar(before, name) == 1, name
    assert scalar(after, "mpckdc_kdc_udp_requests_total") == \
        scalar(before, "mpckdc_kdc_udp_requests_total")


def test_no_key_material_or_names_in_any_label(mrealm):
    from kdc.keyservice.reference import ReferenceKeyService

    mrealm.kdc.kinit("bob@" + REALM, ccache=mrealm.kdc.work / "k.ccache")
    text = fetch(mrealm.urls[0])[1]
    samples = parse_text(text)
    assert samples and all(s.name.startswith("mpckdc_kdc_") for s in samples)
    label_names = {k for s in samples for k, _ in s.labels}
    assert label_names <= {"type", "status", "outcome", "le"}
    for s in samples:
        for k, v in s.labels:
            if k == "type":
                assert v in {"AS_REQ", "TGS_REQ", "DISPATCH", "UNKNOWN"}
            elif k == "status":
                assert re.fullmatch(r"[A-Z][A-Z_]*", v), v
            elif k == "outcome":
                assert v in {"issue", "error", "lookaside", "dropped", "unknown"}
    lowered = text.lower()
    for secret in realm_mod.PASSWORDS.values():
        assert secret.lower() not in lowered
    for name in ("alice", "bob", "http/localhost", "krbtgt"):
        assert name not in lowered
    db = ReferenceKeyService.load(mrealm.kdc.database)
    for principal in db.list("*"):
        for key in db.keys_of(principal):
            for form in (key.contents.hex(), base64.b64encode(key.contents).decode(),
                         key.contents.hex()[:16]):
                assert form.lower() not in lowered


# -- several workers -------------------------------------------------------------------------------


def test_each_worker_serves_its_own_metrics_and_they_sum_up(tmp_path):
    require_mit_clients()
    r = start_metrics_realm(tmp_path / "workers", workers=2)
    try:
        assert len(r.urls) == 2 and len(set(r.urls)) == 2
        info = json.loads((r.kdc.work / "ready.json").read_text())
        assert info["udp"] and info["metrics"] == [u[len("http://"):-len("/metrics")]
                                                  for u in r.urls]
        before = scrape(r.urls)
        for i in range(6):
            r.kdc.kinit("alice@" + REALM, ccache=r.kdc.work / f"w{i}.ccache")
        after = scrape(r.urls)
        got = delta(requests_by(after), requests_by(before))
        assert {k: v for k, v in got.items() if k[0] != "DISPATCH"} == \
            {("AS_REQ", "ISSUE", "issue"): 6}
        per_worker = [scrape([u]) for u in r.urls]
        total = sum(requests_by(s)[("AS_REQ", "ISSUE", "issue")] for s in per_worker)
        assert total == requests_by(after)[("AS_REQ", "ISSUE", "issue")]
    finally:
        r.kdc.stop()
