"""The load generator (bench/loadgen): request templates, statistics, and short real runs.

Real runs go against a real MIT krb5kdc (tests/mit_kdc.py), against our own KDC
(tests/realm.py) and against a deliberately slow little UDP "KDC" started here; every run is
bounded by a count. Counts are checked against the KDCs' own request logs, and for our KDC
also against its Prometheus metrics (``--metrics``).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.loadgen import cli
from bench.loadgen.engine import LoadConfig, run_load, worker_share
from bench.loadgen.report import document, plot, run_to_json
from bench.loadgen.requests import (
    NEXT,
    OK,
    ClientKeys,
    RequestFactory,
    Template,
    Tgt,
    parse_mix,
)
from bench.loadgen.stats import LatencyHistogram, RunStats, bucket_bounds, bucket_of
from clients.keytab import KeytabEntry, write_keytab
from clients.transport import connect_udp
from kdc.crypto import decrypt, encrypt, random_key, verify_checksum
from kdc.messages import constants as c
from kdc.messages import decode, decode_message, encode
from kdc.messages.model import (
    ApReq,
    Authenticator,
    EncKdcRepPart,
    EncryptedData,
    EncryptionKey,
    EncTicketPart,
    KdcRep,
    KrbError,
    PaEncTsEnc,
    PrincipalName,
    Ticket,
    TransitedEncoding,
)
from tests.mit_kdc import ENCTYPES, MitRealm, find_program, mit_realm_fixture  # noqa: F401

REALM = "EXAMPLE.COM"
USERS = 8


# -- statistics ----------------------------------------------------------------------------------


def test_histogram_buckets_are_contiguous_and_precise():
    previous_high = 0
    for i in range(0, 2000):
        low, high = bucket_bounds(i)
        assert low == previous_high
        previous_high = high
        assert bucket_of(low) == i and bucket_of(high - 1) == i
        assert (high - low) / max(low, 1) <= 1 / 64 + 1e-12 or high - low == 1


def test_histogram_percentiles_match_sorted_samples():
    import random

    rng = random.Random(5)
    values = [rng.lognormvariate(-6, 1.2) for _ in range(20000)]  # seconds, ~2.5 ms median
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    ordered = sorted(values)
    for p in (50, 90, 99, 99.9):
        exact = ordered[int(p / 100 * len(ordered)) - 1]
        assert h.percentile(p) == pytest.approx(exact, rel=0.02, abs=2e-6)
    assert h.percentile(100) == pytest.approx(max(values), abs=1e-6)
    # merging two halves gives the same counts as one histogram of everything
    a, b = LatencyHistogram(), LatencyHistogram()
    for v in values[:7000]:
        a.record(v)
    for v in values[7000:]:
        b.record(v)
    a.merge(b)
    assert a.counts == h.counts and a.total == h.total and a.max_us == h.max_us
    again = LatencyHistogram.from_json(json.loads(json.dumps(h.to_json())))
    assert again.counts == h.counts and again.percentile(99) == h.percentile(99)


def test_run_stats_series_and_errors():
    s = RunStats(interval=0.5)
    s.record_start(0.1, 0.0)
    s.record_ok(0.2, 0.010, "as")
    s.record_error(0.7, "KDC_ERR_PREAUTH_FAILED", 0.020)
    s.record_error(1.2, "TIMEOUT", None)
    rows = s.series()
    assert [r["t"] for r in rows] == [0.0, 0.5, 1.0]
    assert rows[0]["ok_per_s"] == 2.0 and rows[1]["errors_per_s"] == 2.0
    assert s.errors == {"KDC_ERR_PREAUTH_FAILED": 1, "TIMEOUT": 1}
    assert s.latency_all.total == 2 and s.latency_ok.total == 1


# -- request templates ---------------------------------------------------------------------------


def _client(name: str = "user0001", etype: int = 18) -> ClientKeys:
    pname = PrincipalName(c.NT_PRINCIPAL, (name,))
    return ClientKeys(f"{name}@{REALM}", pname, REALM, {etype: random_key(etype)})


def test_template_renders_what_the_codec_encodes():
    f = RequestFactory(REALM, [_client()], mode="as", seed=1)
    for nonce in (1 << 24, 0x12345678, (1 << 31) - 1):
        der = f.as_request(0, nonce)
        req = decode_message(der)
        assert req.req_body.nonce == nonce
        assert encode(req) == der  # byte-identical to a fresh encoding of the same request
        assert req.req_body.cname.components == ("user0001",)
        assert req.padata == ()
    t = Template(b"abcXYZdef", {"x": b"XYZ"})
    assert t.render(x=b"123") == b"abc123def"
    with pytest.raises(ValueError):
        t.render(x=b"12")
    with pytest.raises(ValueError):
        Template(b"aXaXa", {"x": b"X"})


def test_preauth_request_carries_a_valid_encrypted_timestamp():
    client = _client()
    f = RequestFactory(REALM, [client], mode="as-preauth", seed=2)
    op = f.operation()
    first, kind = op.first()
    assert kind == "AS_REQ" and decode_message(first).padata == ()
    from kdc.messages import encode_etype_info2, encode_method_data
    from kdc.messages.model import EtypeInfo2Entry, PAData

    methods = encode_method_data([
        PAData(c.PA_ETYPE_INFO2, encode_etype_info2([EtypeInfo2Entry(18, "EXAMPLE.COMuser0001")])),
        PAData(c.PA_ENC_TIMESTAMP, b""),
        PAData(c.PA_FX_COOKIE, b"MIT"),
    ])
    error = KrbError(None, None, int(time.time()), 0, c.KDC_ERR_PREAUTH_REQUIRED, REALM,
                     client.name, REALM, PrincipalName(2, ("krbtgt", REALM)), None, methods)
    status, second, kind = op.on_reply(encode(error))
    assert status == NEXT and kind == "AS_REQ"
    req = decode_message(second)
    assert encode(req) == second
    assert [pa.padata_type for pa in req.padata] == [c.PA_FX_COOKIE, c.PA_ENC_TIMESTAMP]
    enc = decode(EncryptedData, req.padata[1].padata_value)
    stamp = decode(PaEncTsEnc, decrypt(client.keys[18], c.KU_PA_ENC_TIMESTAMP, enc.cipher))
    assert abs(stamp.patimestamp - time.time()) < 5
    # a second timestamp (other op) is a different ciphertext of the same length
    op2 = f.operation()
    op2.first()
    _, third, _ = op2.on_reply(encode(error))
    assert len(third) == len(second) and third != second


def _fake_tgt(client: ClientKeys) -> tuple[Tgt, object]:
    krbtgt = random_key(18)
    session = random_key(18)
    part = EncTicketPart(0, EncryptionKey(18, session.contents), REALM, client.name,
                         TransitedEncoding(1, b""), 1000, None, 2_000_000_000, None)

    ticket = Ticket(REALM, PrincipalName(2, ("krbtgt", REALM)),
                    EncryptedData(18, 1, encrypt(krbtgt, c.KU_TICKET, encode(part))))
    return Tgt(encode(ticket), session, 2_000_000_000), krbtgt


def test_tgs_request_authenticator_checks_out_and_reply_is_verified():
    client = _client()
    f = RequestFactory(REALM, [client], mode="tgs", seed=3)
    tgt, _ = _fake_tgt(client)
    f.tgts[0] = tgt
    op = f.operation()
    der, kind = op.first()
    assert kind == "TGS_REQ"
    req = decode_message(der)
    assert encode(req) == der
    assert req.req_body.sname.components == ("HTTP", "localhost")
    ap_req = decode(ApReq, req.padata[0].padata_value)
    assert encode(ap_req.ticket) == tgt.ticket
    auth = decode(Authenticator, decrypt(tgt.session_key, c.KU_TGS_REQ_AUTH,
                                         ap_req.authenticator.cipher))
    assert auth.cname == client.name and auth.subkey is None
    # RFC 4120 §7.2.2: the checksum covers the req-body exactly as sent
    assert verify_checksum(tgt.session_key, c.KU_TGS_REQ_AUTH_CKSUM, req.req_body_bytes,
                           auth.cksum.cksumtype, auth.cksum.checksum)
    # a reply with the right nonce is OK, with another nonce NONCE_MISMATCH

    def reply(nonce: int) -> bytes:
        part = EncKdcRepPart(EncryptionKey(18, bytes(32)), (), nonce, None, 0, 1, None, 2, None,
                             REALM, req.req_body.sname, tag=26)
        enc = encrypt(tgt.session_key, c.KU_TGS_REP_ENC_PART_SESSION_KEY, encode(part))
        return encode(KdcRep(c.KRB_TGS_REP, None, REALM, client.name,
                             decode(Ticket, tgt.ticket), EncryptedData(18, None, enc)))

    assert op.on_reply(reply(req.req_body.nonce))[0] == OK
    op2 = f.operation()
    der2, _ = op2.first()
    assert op2.on_reply(reply(decode_message(der2).req_body.nonce ^ 1))[1] == "NONCE_MISMATCH"
    op3 = f.operation()
    op3.first()
    assert op3.on_reply(b"\x30\x00")[1] == "BAD_REPLY"


def test_fast_reply_walk_agrees_with_the_codec_on_mit_captures():
    from bench.loadgen.requests import fast_kdc_rep, fast_krb_error, wire_names
    from tests.vectors import capture

    for name in ("alice-as-rep", "bob-as-rep", "alice-tgs-rep-http-localhost",
                 "kdcload-alice-as-rep", "kdcload-alice-tgs-rep"):
        data = capture(name)
        rep = decode_message(data)
        msg_type, names, etype, cipher = fast_kdc_rep(data)
        assert (msg_type, etype, cipher) == (rep.msg_type, rep.enc_part.etype,
                                             rep.enc_part.cipher)
        assert names == wire_names(rep.crealm, rep.cname)
        assert fast_krb_error(data) is None
    data = capture("bob-krb-error-preauth-required")
    err = decode_message(data)
    assert fast_krb_error(data) == (err.error_code, err.e_data)
    assert fast_kdc_rep(data) is None
    for bad in (b"", b"\x6b", b"\x6b\x85\x00", capture("alice-as-rep")[:-1], b"\x7e\x02\x30\x00"):
        assert fast_kdc_rep(bad) is None and fast_krb_error(bad) is None


def test_parse_mix_and_shares():
    assert parse_mix("as-preauth:60,tgs:40") == {"as-preauth": 60.0, "tgs": 40.0}
    for bad in ("nope:1", "mix:1", "as:-1", "", "as:x"):
        with pytest.raises(ValueError):
            parse_mix(bad)
    cfg = LoadConfig(("127.0.0.1", 9), REALM, [f"u{i}" for i in range(5)], mode="as",
                     keytab="k", concurrency=5, count=11, workers=2)
    a, b = worker_share(cfg, 0), worker_share(cfg, 1)
    assert a.principals == ["u0", "u2", "u4"] and b.principals == ["u1", "u3"]
    assert (a.concurrency, b.concurrency) == (3, 2) and (a.count, b.count) == (6, 5)


def test_poisson_and_uniform_schedules():
    from bench.loadgen.engine import Engine

    cfg = LoadConfig(("127.0.0.1", 9), REALM, ["u"], keytab="k", rate=1000.0, count=10,
                     workers=2, arrivals="poisson", seed=4)
    engine = Engine(worker_share(cfg, 1), factory=None, worker=1)
    engine.t0 = 100.0
    times = [t for t, _ in zip(engine._due_times(), range(4000), strict=False)]
    gaps = [b - a for a, b in zip([100.0, *times], times, strict=False)]
    assert all(g > 0 for g in gaps)
    assert sum(gaps) / len(gaps) == pytest.approx(2 / 1000, rel=0.1)  # this worker: rate/2
    assert max(gaps) > 3 * min(gaps) * 10  # exponential gaps, not evenly spaced
    uniform = Engine(worker_share(replace_arrivals(cfg, "uniform"), 1), factory=None, worker=1)
    uniform.t0 = 0.0
    first = [t for t, _ in zip(uniform._due_times(), range(3), strict=False)]
    assert first == pytest.approx([0.001, 0.003, 0.005])  # worker 1 of 2 at 1000/s


def replace_arrivals(cfg: LoadConfig, arrivals: str) -> LoadConfig:
    from dataclasses import replace

    return replace(cfg, arrivals=arrivals)


def test_progress_line_shows_counts_errors_and_percentiles():
    import io

    from bench.loadgen.progress import Progress

    stream = io.StringIO()
    progress = Progress("mit", stream, plain_period=0.0)
    window = LatencyHistogram()
    for ms in (1, 2, 3, 4, 50):
        window.record(ms / 1000)
    for worker in (0, 1):
        progress({"worker": worker, "elapsed": 1.5, "started": 100, "ok": 90,
                  "errors": {"TIMEOUT": 3, "KDC_ERR_PREAUTH_FAILED": 7}, "messages": 200,
                  "outstanding": 0, "window": window.to_json(), "final": False})
    progress.close()
    line = stream.getvalue().strip().splitlines()[-1]
    assert line.startswith("[mit] 1.5s sent 200 ok 180 err 20")
    assert "KDC_ERR_PREAUTH_FAILED 14" in line and "TIMEOUT 6" in line
    assert "p50 3.0 ms" in line
    assert float(re.search(r"p99 ([\d.]+) ms", line).group(1)) == pytest.approx(50, rel=0.02)


def test_metrics_scrape_and_delta():
    import http.server

    from kdc.metrics import Registry

    registry = Registry()
    requests = registry.counter("mpckdc_kdc_requests_total", "x", ("type",))
    requests.labels("AS_REQ").inc(5)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = registry.render().encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        before = cli.scrape([url])
        requests.labels("AS_REQ").inc(7)
        after = cli.scrape([url])
    finally:
        server.shutdown()
        thread.join(5)
    delta = cli.metrics_delta(before, after)[url]
    assert delta['mpckdc_kdc_requests_total{type="AS_REQ"}'] == {"value": 12.0, "delta": 7.0}


def test_cli_usage_errors(tmp_path, capsys):
    assert cli.main(["--target", "nohost", "--password-pattern", "x"]) == 2
    assert cli.main(["--target", "127.0.0.1:88"]) == 2  # no keys
    assert cli.main(["--target", "127.0.0.1:88", "--keytab", str(tmp_path / "missing")]) == 2
    assert cli.main(["--target", "127.0.0.1:88", "--password-pattern", "x",
                     "--concurrency", "0"]) == 2
    err = capsys.readouterr().err
    assert "bad target" in err and "keytab" in err


# -- open loop against a slow server -------------------------------------------------------------


class SlowKdc:
    """A UDP "KDC" that serves one request at a time, ``service`` seconds each, answering every
    request with KRB-ERROR KDC_ERR_SVC_UNAVAILABLE: capacity 1/service requests per second."""

    def __init__(self, service: float) -> None:
        self.service = service
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.received = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        queue: asyncio.Queue = asyncio.Queue()
        outer = self

        class Proto(asyncio.DatagramProtocol):
            def connection_made(self, transport) -> None:
                self.transport = transport

            def datagram_received(self, data, addr) -> None:
                outer.received += 1
                queue.put_nowait((data, addr, self.transport))

        async def serve() -> None:
            transport, _ = await self.loop.create_datagram_endpoint(
                Proto, local_addr=("127.0.0.1", 0))
            self.port = transport.get_extra_info("sockname")[1]
            self.transport = transport
            self.ready.set()
            error = encode(KrbError(None, None, int(time.time()), 0, c.KDC_ERR_SVC_UNAVAILABLE,
                                    None, None, REALM, PrincipalName(2, ("krbtgt", REALM))))
            while True:
                _data, addr, tr = await queue.get()
                await asyncio.sleep(self.service)
                tr.sendto(error, addr)

        self.task = self.loop.create_task(serve())
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.loop.call_soon_threadsafe(self.transport.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_open_loop_overload_shows_as_latency_not_as_a_lower_send_rate(tmp_path):
    keytab = tmp_path / "u.keytab"
    write_keytab(str(keytab), [KeytabEntry(f"user{i:04d}@{REALM}", 1, random_key(18))
                               for i in range(4)])
    server = SlowKdc(service=0.03)  # ~33 requests/s
    try:
        cfg = LoadConfig(("127.0.0.1", server.port), REALM, [f"user{i:04d}" for i in range(4)],
                         mode="as", keytab=str(keytab), rate=200.0, count=60, timeout=10.0,
                         retries=0, interval=0.1)
        result = run_load(cfg)
    finally:
        server.stop()
    s = result.stats
    assert s.started == 60 and s.messages["AS_REQ"] == 60 and server.received == 60
    assert s.errors == {"KDC_ERR_SVC_UNAVAILABLE": 60} and s.retransmits == 0
    # the generator kept its schedule: 60 sends due over 0.3 s, the server needs ~1.8 s;
    # a closed-loop sender would have been held back for the whole 1.8 s
    assert s.send_lag.max_us < s.latency_all.max_us / 4
    started_bins = [k for k, b in s.bins.items() if b.started]
    assert max(started_bins) <= 3  # every due time within 0.3 s (+ one bin)
    # and the latency, measured from the due time, grows as the queue builds up
    rows = [r for r in s.series() if r["all_p50_ms"] is not None]
    assert rows[-1]["all_p50_ms"] > 5 * rows[0]["all_p50_ms"]
    assert s.latency_all.max_us > 1_000_000  # last answers waited behind ~59 others


# -- real KDCs -----------------------------------------------------------------------------------


def _count_log(path: Path, kind: str) -> int:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return 0
    return len(re.findall(rf"\): {kind} ", text))


@pytest.fixture(scope="module")
def mit_users(mit_realm: MitRealm) -> Path:
    """USERS principals user0000.. with +requires_preauth and random keys, in users.keytab."""
    keytab = mit_realm.work / "users.keytab"
    if not keytab.exists():
        lines = []
        for i in range(USERS):
            lines.append(f"addprinc +requires_preauth -randkey -e {ENCTYPES} user{i:04d}")
            lines.append(f"ktadd -norandkey -k {keytab} user{i:04d}")
        proc = subprocess.run([find_program("kadmin.local"), "-r", REALM],
                              input="\n".join(lines) + "\n", text=True, capture_output=True,
                              env=mit_realm.env(), timeout=120)
        assert keytab.exists(), proc.stderr[-2000:]
    return keytab


def _run_cli(args: list[str]) -> int:
    return cli.main([*args, "--quiet"])


def test_against_mit_counts_agree_with_the_kdc_log(mit_realm, mit_users, tmp_path):
    log = mit_realm.work / "krb5kdc.log"
    before = _count_log(log, "AS_REQ")
    out = tmp_path / "out"
    code = _run_cli([
        "--target", f"127.0.0.1:{mit_realm.port}", "--label", "mit", "--realm", REALM,
        "--mode", "as-preauth", "--principals", str(USERS), "--keytab", str(mit_users),
        "--concurrency", "4", "--count", "150", "--timeout", "5", "--out", str(out),
    ])
    assert code == 0
    doc = json.loads((out / "result.json").read_text())
    run = doc["runs"][0]
    assert run["summary"]["ok"] == 150 and run["errors"] == {}
    assert run["messages"] == {"AS_REQ": 300}  # two messages per pre-authenticated login
    assert run["summary"]["latency_ok"]["count"] == 150
    retransmits = run["summary"]["retransmits"]
    logged = _count_log(log, "AS_REQ") - before
    assert 300 <= logged <= 300 + retransmits
    assert run["series"] and run["summary"]["qps"] > 0
    for name in ("throughput.png", "latency.png", "cdf.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_against_mit_tgs_with_two_workers(mit_realm, mit_users, tmp_path):
    log = mit_realm.work / "krb5kdc.log"
    as_before, tgs_before = _count_log(log, "AS_REQ"), _count_log(log, "TGS_REQ")
    cfg = LoadConfig(("127.0.0.1", mit_realm.port), REALM,
                     [f"user{i:04d}" for i in range(USERS)], mode="tgs", keytab=str(mit_users),
                     concurrency=4, count=120, workers=2, timeout=5.0)
    result = run_load(cfg)
    s = result.stats
    assert s.ok == 120 and not s.errors
    assert s.messages == {"TGS_REQ": 120}
    assert result.setup.ok == USERS and result.setup.messages["AS_REQ"] == 2 * USERS
    assert _count_log(log, "TGS_REQ") - tgs_before - s.retransmits <= 120 <= \
        _count_log(log, "TGS_REQ") - tgs_before
    assert _count_log(log, "AS_REQ") - as_before >= 2 * USERS


def test_against_mit_over_tcp_in_mix_mode(mit_realm, mit_users, tmp_path):
    log = mit_realm.work / "krb5kdc.log"
    as_before, tgs_before = _count_log(log, "AS_REQ"), _count_log(log, "TGS_REQ")
    cfg = LoadConfig(("127.0.0.1", mit_realm.port), REALM,
                     [f"user{i:04d}" for i in range(USERS)], mode="mix",
                     mix="as-preauth:2,tgs:1,login:1", keytab=str(mit_users), concurrency=3,
                     count=60, tcp=True, timeout=10.0)
    result = run_load(cfg)
    s = result.stats
    assert s.ok == 60 and not s.errors and s.retransmits == 0
    assert set(s.by_mode) <= {"as-preauth", "tgs", "login"} and sum(s.by_mode.values()) == 60
    # two AS-REQs per as-preauth/login op, one TGS-REQ per tgs/login op, plus the TGT setup
    assert s.messages["AS_REQ"] == 2 * (s.by_mode["as-preauth"] + s.by_mode["login"])
    assert s.messages["TGS_REQ"] == s.by_mode["tgs"] + s.by_mode["login"]
    assert _count_log(log, "AS_REQ") - as_before == \
        s.messages["AS_REQ"] + result.setup.messages["AS_REQ"]
    assert _count_log(log, "TGS_REQ") - tgs_before == s.messages["TGS_REQ"]


def test_against_mit_wrong_password_counts_preauth_failed(mit_realm, tmp_path):
    log = mit_realm.work / "krb5kdc.log"
    before = _count_log(log, "AS_REQ")
    cfg = LoadConfig(("127.0.0.1", mit_realm.port), REALM, ["bob"], mode="as-preauth",
                     password_pattern="{name}-wrong-password", concurrency=2, count=20,
                     timeout=5.0)
    result = run_load(cfg)
    assert result.stats.ok == 0
    assert dict(result.stats.errors) == {"KDC_ERR_PREAUTH_FAILED": 20}
    assert result.stats.messages["AS_REQ"] == 40
    assert 40 <= _count_log(log, "AS_REQ") - before <= 40 + result.stats.retransmits
    doc = document([run_to_json(result)])
    assert doc["runs"][0]["errors"] == {"KDC_ERR_PREAUTH_FAILED": 20}
    paths = plot(doc, tmp_path / "plots")
    assert all(p.stat().st_size > 0 for p in paths)


# -- our KDC ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def our_realm(tmp_path_factory):
    from kdc.keyservice.base import REQUIRES_PREAUTH
    from kdc.keyservice.reference import ReferenceKeyService
    from tests import realm as realm_fixture

    work = tmp_path_factory.mktemp("loadgen-realm")
    realm_fixture.create_database(work)
    db = ReferenceKeyService.load(work / "reference-db.json")
    entries = []
    for i in range(USERS):
        name = f"user{i:04d}@{REALM}"
        db.add_principal(name, randkey=True, attributes=(REQUIRES_PREAUTH,))
        entries += [KeytabEntry(name, db.get(name).kvno, k) for k in db.keys_of(name)]
    db.save(work / "reference-db.json")
    write_keytab(str(work / "users.keytab"), entries)
    config = realm_fixture.write_kdc_config(work)
    config.write_text(config.read_text() + '\n[metrics]\nlisten = "127.0.0.1:0"\n')
    kdc = realm_fixture.KdcRealm(work=work)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MPCKDC_TESTING_REFERENCE", "1")  # the child's reference key service
        realm_fixture.start_kdc(kdc)
    try:
        yield kdc
    finally:
        kdc.stop()


@pytest.fixture(scope="module")
def our_metrics_url(our_realm) -> str:
    """The front-end's /metrics (``[metrics] listen``; the ready file names the address)."""
    info = json.loads((our_realm.work / "ready.json").read_text())
    assert len(info["metrics"]) == 1
    return f"http://{info['metrics'][0]}/metrics"


def _metric_deltas(run: dict, url: str, name: str) -> dict[tuple[str, ...], float]:
    """Changes over the run of the samples ``name``, keyed by their label values."""
    out = {}
    for key, entry in run["metrics"][url].items():
        sample, _, labels = key.partition("{")
        if sample == name and entry["delta"]:
            out[tuple(re.findall(r'="([^"]*)"', labels))] = entry["delta"]
    return out


def test_against_our_kdc_counts_agree_with_its_log(our_realm, tmp_path):
    log = our_realm.log_file
    as_before, tgs_before = _count_log(log, "AS_REQ"), _count_log(log, "TGS_REQ")
    out = tmp_path / "out"
    code = _run_cli([
        "--target", f"127.0.0.1:{our_realm.port}", "--label", "mpckdc", "--realm", REALM,
        "--mode", "login", "--principals", str(USERS), "--keytab",
        str(our_realm.work / "users.keytab"), "--concurrency", "4", "--count", "60",
        "--timeout", "5", "--out", str(out), "--no-plots",
    ])
    assert code == 0
    run = json.loads((out / "result.json").read_text())["runs"][0]
    assert run["summary"]["ok"] == 60, run["errors"]
    assert run["messages"] == {"AS_REQ": 120, "TGS_REQ": 60}
    retransmits = run["summary"]["retransmits"]
    deadline = time.monotonic() + 5  # the KDC's log handler writes as it answers
    while time.monotonic() < deadline and _count_log(log, "TGS_REQ") - tgs_before < 60:
        time.sleep(0.05)
    assert 120 <= _count_log(log, "AS_REQ") - as_before <= 120 + retransmits
    assert 60 <= _count_log(log, "TGS_REQ") - tgs_before <= 60 + retransmits


def test_against_our_kdc_errors_by_code(our_realm):
    cfg = LoadConfig(("127.0.0.1", our_realm.port), REALM, ["bob", "nobody"],
                     mode="as-preauth", password_pattern="{name}-wrong", concurrency=2,
                     count=20, timeout=5.0)
    result = run_load(cfg)
    assert result.stats.ok == 0
    assert dict(result.stats.errors) == {"KDC_ERR_PREAUTH_FAILED": 10,
                                         "KDC_ERR_C_PRINCIPAL_UNKNOWN": 10}


def test_against_our_kdc_counts_agree_with_its_metrics(our_realm, our_metrics_url, tmp_path):
    out = tmp_path / "out"
    code = _run_cli([
        "--target", f"127.0.0.1:{our_realm.port}", "--label", "mpckdc", "--realm", REALM,
        "--mode", "login", "--principals", str(USERS), "--keytab",
        str(our_realm.work / "users.keytab"), "--concurrency", "4", "--count", "40",
        "--timeout", "5", "--metrics", our_metrics_url, "--out", str(out), "--no-plots",
    ])
    assert code == 0
    run = json.loads((out / "result.json").read_text())["runs"][0]
    assert run["summary"]["ok"] == 40, run["errors"]
    assert "error" not in run["metrics"][our_metrics_url]
    sent = Counter(run["messages"]) + Counter(run["setup"]["messages"])
    assert sent["AS_REQ"] == 80 and sent["TGS_REQ"] == 40
    requests = _metric_deltas(run, our_metrics_url, "mpckdc_kdc_requests_total")
    retransmits = run["summary"]["retransmits"]
    kerberos = {k: v for k, v in requests.items() if k[0] != "DISPATCH"}
    assert kerberos == {
        ("AS_REQ", "NEEDED_PREAUTH", "error"): sent["AS_REQ"] / 2,
        ("AS_REQ", "ISSUE", "issue"): sent["AS_REQ"] / 2,
        ("TGS_REQ", "ISSUE", "issue"): sent["TGS_REQ"],
    }
    # retransmitted requests (if any) were answered from the lookaside cache
    hits = _metric_deltas(run, our_metrics_url, "mpckdc_kdc_lookaside_hits_total").get((), 0)
    assert hits <= retransmits
    assert requests.get(("DISPATCH", "LOOKASIDE", "lookaside"), 0) == hits
    udp = _metric_deltas(run, our_metrics_url, "mpckdc_kdc_udp_requests_total").get((), 0)
    assert udp == sum(sent.values()) + retransmits
    latency = _metric_deltas(run, our_metrics_url, "mpckdc_kdc_request_seconds_count")
    assert latency[("AS_REQ",)] == sent["AS_REQ"] and latency[("TGS_REQ",)] == sent["TGS_REQ"]


def test_against_our_kdc_error_codes_agree_with_its_metrics(our_realm, our_metrics_url,
                                                           tmp_path):
    out = tmp_path / "out"
    code = _run_cli([
        "--target", f"127.0.0.1:{our_realm.port}", "--realm", REALM, "--mode", "as-preauth",
        "--principal", "bob", "--principal", "nobody", "--password-pattern", "{name}-wrong",
        "--concurrency", "2", "--count", "20", "--timeout", "5",
        "--metrics", our_metrics_url, "--out", str(out), "--no-plots",
    ])
    assert code in (0, 1)
    run = json.loads((out / "result.json").read_text())["runs"][0]
    assert run["errors"] == {"KDC_ERR_PREAUTH_FAILED": 10, "KDC_ERR_C_PRINCIPAL_UNKNOWN": 10}
    requests = _metric_deltas(run, our_metrics_url, "mpckdc_kdc_requests_total")
    assert {k: v for k, v in requests.items() if k[0] != "DISPATCH"} == {
        ("AS_REQ", "NEEDED_PREAUTH", "error"): 10,  # bob's first message
        ("AS_REQ", "PREAUTH_FAILED", "error"): 10,
        ("AS_REQ", "CLIENT_NOT_FOUND", "error"): 10,
    }
    assert run["messages"] == {"AS_REQ": 30}


def test_udp_slot_never_keeps_a_socket_connected_to_itself(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    made = []
    real_socket = socket.socket

    def first_one_on_the_target_port(family, kind):
        sock = real_socket(family, kind)
        if not made:  # what the kernel may pick when nobody listens on the target port
            sock.bind(("127.0.0.1", port))
        made.append(sock)
        return sock

    monkeypatch.setattr(socket, "socket", first_one_on_the_target_port)
    sock = connect_udp(socket.AF_INET, ("127.0.0.1", port))
    monkeypatch.undo()
    with sock:
        assert len(made) == 2 and made[0].fileno() == -1  # the self-connected one is closed
        assert sock is made[1]
        assert sock.getpeername() == ("127.0.0.1", port)
        assert sock.getsockname()[1] != port


def test_closed_port_counts_network_errors_and_ends():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # nobody listens now: ICMP port unreachable -> NETWORK, quickly, no hang
    cfg = LoadConfig(("127.0.0.1", port), REALM, ["user0000"], mode="as",
                     password_pattern="{name}", concurrency=2, count=10, timeout=0.5,
                     retries=0)
    result = run_load(cfg)
    assert result.stats.ok == 0
    assert sum(result.stats.errors.values()) == 10
    assert set(result.stats.errors) <= {"NETWORK", "TIMEOUT"}
