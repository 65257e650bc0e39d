"""kdc/metrics.py: Prometheus text format, parsed back; histogram buckets; escaping; HTTP."""

from __future__ import annotations

import math
import re

import pytest

from kdc.metrics import (
    CONTENT_TYPE,
    Registry,
    escape_label_value,
    make_app,
    parse_text,
)

# One sample line of the text format, written independently of kdc.metrics.parse_text.
LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*",?)*\})? '
    r"(-?[0-9.e+-]+|\+Inf|-Inf|NaN)$"
)


def _registry() -> Registry:
    r = Registry()
    req = r.counter("mpckdc_requests_total", "KDC requests by type and outcome.",
                    ("type", "outcome"))
    req.labels("AS_REQ", "ISSUE").inc()
    req.labels("AS_REQ", "ISSUE").inc(2)
    req.labels(type="TGS_REQ", outcome="PREAUTH_FAILED").inc()
    depth = r.gauge("mpckdc_queue_depth", "Jobs waiting for an MPC batch.")
    depth.set(7)
    depth.dec(2)
    lat = r.histogram("mpckdc_request_seconds", "Request latency.", ("type",),
                      buckets=(0.001, 0.01, 0.1))
    for v in (0.0005, 0.001, 0.002, 0.05, 0.05, 3.0):
        lat.labels("AS_REQ").observe(v)
    r.gauge("mpckdc_batches_in_flight", "Batches in flight.", callback=lambda: 3)
    return r


def test_render_is_valid_text_format_and_parses_back():
    text = _registry().render()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$", line), line
        else:
            assert LINE.match(line), line
    assert "# TYPE mpckdc_requests_total counter" in text
    assert "# TYPE mpckdc_request_seconds histogram" in text
    assert 'mpckdc_requests_total{type="AS_REQ",outcome="ISSUE"} 3\n' in text
    assert "mpckdc_queue_depth 5\n" in text
    assert "mpckdc_batches_in_flight 3\n" in text
    samples = {(s.name, s.labels): s.value for s in parse_text(text)}
    assert samples[("mpckdc_requests_total", (("type", "TGS_REQ"),
                                              ("outcome", "PREAUTH_FAILED")))] == 1
    assert samples[("mpckdc_queue_depth", ())] == 5


def test_histogram_buckets_are_cumulative_and_end_at_count():
    samples = [s for s in parse_text(_registry().render())
               if s.name.startswith("mpckdc_request_seconds")]
    buckets = [(s.label("le"), s.value) for s in samples if s.name.endswith("_bucket")]
    assert buckets == [("0.001", 2), ("0.01", 3), ("0.1", 5), ("+Inf", 6)]
    values = [v for _, v in buckets]
    assert values == sorted(values)
    count = next(s.value for s in samples if s.name == "mpckdc_request_seconds_count")
    total = next(s.value for s in samples if s.name == "mpckdc_request_seconds_sum")
    assert count == 6 == buckets[-1][1]
    assert total == pytest.approx(0.0005 + 0.001 + 0.002 + 0.05 + 0.05 + 3.0)
    assert math.isinf(float("+Inf"))


def test_label_values_and_help_are_escaped():
    r = Registry()
    c = r.counter("odd_total", 'Help with \\ backslash\nand newline "quotes".', ("v",))
    nasty = 'a"b\\c\nd} 5'
    c.labels(nasty).inc()
    text = r.render()
    assert '# HELP odd_total Help with \\\\ backslash\\nand newline "quotes".\n' in text
    assert 'odd_total{v="a\\"b\\\\c\\nd} 5"} 1\n' in text
    assert escape_label_value(nasty) == 'a\\"b\\\\c\\nd} 5'
    (sample,) = parse_text(text)
    assert sample.label("v") == nasty and sample.value == 1
    assert len(text.splitlines()) == 3  # the newline in the value did not break the line


def test_bad_names_and_usage_are_refused():
    r = Registry()
    with pytest.raises(ValueError):
        r.counter("bad-name", "x")
    with pytest.raises(ValueError):
        r.counter("ok_total", "x", ("bad-label",))
    with pytest.raises(ValueError):
        r.counter("ok2_total", "x", ("__reserved",))
    with pytest.raises(ValueError):
        r.histogram("h", "x", ("le",))
    c = r.counter("c_total", "x", ("a",))
    with pytest.raises(ValueError):
        c.inc()  # has labels
    with pytest.raises(ValueError):
        c.labels("x").inc(-1)
    with pytest.raises(ValueError):
        c.labels("x", "y")
    with pytest.raises(ValueError):
        r.counter("c_total", "again")
    with pytest.raises(ValueError):
        parse_text('x{a="unterminated} 1\n')
    with pytest.raises(ValueError):
        parse_text("x 1 2 3\n")


async def test_http_handler_serves_metrics():
    from aiohttp import ClientSession
    from aiohttp.test_utils import TestServer

    registry = _registry()
    server = TestServer(make_app(registry), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with ClientSession() as session:
            async with session.get(server.make_url("/metrics")) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == CONTENT_TYPE
                body = await resp.text()
        assert body == registry.render()
        registry.get("mpckdc_queue_depth").inc()
        async with ClientSession() as session:
            async with session.get(server.make_url("/metrics")) as resp:
                assert "mpckdc_queue_depth 6\n" in await resp.text()
    finally:
        await server.close()


def test_kdc_metrics_from_audit_events_and_transport_stats():
    from kdc.kdc_log import RequestRecord
    from kdc.metrics import KdcMetrics, tee
    from kdc.transport import TransportStats

    now = [1000.0]
    m = KdcMetrics(clock=lambda: now[0])
    seen = []
    sink = tee(seen.append, None, m.audit)
    issue = RequestRecord(kind="AS_REQ", now=999.998, status="ISSUE", client="alice@EXAMPLE.COM")
    failed = RequestRecord(kind="AS_REQ", now=999.5, status="PREAUTH_FAILED", error_code=24)
    again = RequestRecord(kind="TGS_REQ", now=1000.0, status="ISSUE", lookaside=True)
    for record in (issue, issue, failed, again):
        sink(record.event())
    assert len(seen) == 4
    stats = TransportStats()
    stats.udp_requests = 41
    stats.tcp_open = 2
    m.bind_transport(stats)
    text = m.registry.render()
    assert "alice" not in text  # principals are never labels
    samples = {(s.name, s.labels): s.value for s in parse_text(text)}
    req = "mpckdc_kdc_requests_total"
    assert samples[(req, (("type", "AS_REQ"), ("status", "ISSUE"), ("outcome", "issue")))] == 2
    assert samples[(req, (("type", "AS_REQ"), ("status", "PREAUTH_FAILED"),
                          ("outcome", "error")))] == 1
    assert samples[("mpckdc_kdc_lookaside_hits_total", ())] == 1
    assert samples[("mpckdc_kdc_udp_requests_total", ())] == 41
    assert samples[("mpckdc_kdc_tcp_open", ())] == 2
    le = "mpckdc_kdc_request_seconds_bucket"
    assert samples[(le, (("type", "AS_REQ"), ("le", "0.0025")))] == 2  # 2 ms each
    assert samples[(le, (("type", "AS_REQ"), ("le", "0.25")))] == 2
    assert samples[(le, (("type", "AS_REQ"), ("le", "0.5")))] == 3
    stats.udp_requests = 42  # read at scrape time
    assert "mpckdc_kdc_udp_requests_total 42\n" in m.registry.render()


def test_mpc_node_metrics():
    from kdc.metrics import MpcNodeMetrics

    m = MpcNodeMetrics()
    m.batch_started(64)
    m.round_done(and_gates=64 * 5120, seconds=0.0002)
    m.round_done(and_gates=64 * 5120, seconds=0.0003)
    m.queue_depth.set(3)
    text = m.registry.render()
    samples = {(s.name, s.labels): s.value for s in parse_text(text)}
    assert samples[("mpckdc_mpc_batches_in_flight", ())] == 1
    assert samples[("mpckdc_mpc_rounds_total", ())] == 2
    assert samples[("mpckdc_mpc_and_gates_total", ())] == 2 * 64 * 5120
    assert samples[("mpckdc_mpc_batch_size_bucket", (("le", "64"),))] == 1
    assert samples[("mpckdc_mpc_batch_size_bucket", (("le", "32"),))] == 0
    assert samples[("mpckdc_mpc_queue_depth", ())] == 3
    m.batch_finished(0.01)
    assert "mpckdc_mpc_batches_in_flight 0\n" in m.registry.render()
