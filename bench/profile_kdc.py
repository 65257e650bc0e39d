"""Where does the KDC front-end spend its time? Drive ``Kdc.handle`` in-process and profile it.

Feeds the KDC core (reference key service, the MIT 1.20 captures' realm) the requests MIT's
own client library sends, taken from ``../shared/captures/mit-krb5-1.20/``:

    as           alice's AS-REQ without pre-authentication (kdcload ``-m as -p alice``)
    preauth-1    bob's first AS-REQ, answered KDC_ERR_PREAUTH_REQUIRED
    preauth-2    bob's AS-REQ with PA-ENC-TIMESTAMP (the second half of ``-m as -p bob``)
    tgs          kdcload's FAST-armored TGS-REQ for HTTP/localhost (``-m tgs``), in 2048 copies
                 that differ in the authenticator's subkey, as MIT draws a new one every time
                 (more copies than the per-thread cache of derived keys holds)

with the clock pinned to each capture's time. The lookaside cache runs with a zero time to
live, so each identical request goes through the whole path (cache lookup and insert
included) instead of being answered as a retransmit. By default the log line goes to a file in
MIT's format and the audit event to a JSON-lines file, as ``mpckdc kdc`` with the test realm's
configuration does (``--no-log`` turns both off).

Prints microseconds per request of each kind (best of several rounds), the per-login figure
(preauth-1 + preauth-2) and, with ``--profile``, the top functions of a cProfile run over a
mix of all four. Writes JSON to ``bench/out/profile_kdc.json`` (or ``--out``). Not a test.

    python -m bench.profile_kdc [--seconds 1] [--profile] [--top 30] [--no-log]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import os
import platform
import pstats
import sys
import tempfile
import time
from dataclasses import replace
from itertools import cycle, islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kdc import crypto  # noqa: E402
from kdc.core import Kdc  # noqa: E402
from kdc.keyservice.reference import ReferenceKeyService  # noqa: E402
from kdc.lookaside import Lookaside  # noqa: E402
from kdc.messages import constants as C  # noqa: E402
from kdc.messages import decode, encode  # noqa: E402
from kdc.messages.model import (  # noqa: E402
    ApReq,
    Authenticator,
    EncryptionKey,
    EncTicketPart,
    KdcReq,
    PAData,
)
from kdc.server import AuditLog, setup_logging  # noqa: E402
from tests.kdc_harness import (  # noqa: E402
    ALICE_TGT_SESSION_KEY,
    BOB_PATIMESTAMP,
    CAPTURE_NOW,
    PEER,
    capture_key,
    make_key_service,
    make_policy,
)
from tests.vectors import capture  # noqa: E402

KINDS = ("as", "preauth-1", "preauth-2", "tgs")
# First byte of the reply each kind must produce (0x6b AS-REP, 0x6d TGS-REP, 0x7e KRB-ERROR).
EXPECTED_REPLY = {"as": 0x6B, "preauth-1": 0x7E, "preauth-2": 0x6B, "tgs": 0x6D}


def tgs_request_time(data: bytes) -> float:
    """The authenticator's ctime of a captured TGS-REQ (so the KDC's skew check passes)."""
    req = decode(KdcReq, data)
    pa = req.find_padata(C.PA_TGS_REQ)
    ap = decode(ApReq, pa.padata_value)
    tgt = decode(EncTicketPart, crypto.decrypt(
        capture_key("krbtgt/EXAMPLE.COM"), C.KU_TICKET, ap.ticket.enc_part.cipher))
    session = crypto.Key(tgt.key.keytype, tgt.key.keyvalue)
    auth = decode(Authenticator, crypto.decrypt(session, C.KU_TGS_REQ_AUTH, ap.authenticator.cipher))
    return auth.ctime + auth.cusec / 1e6


def with_fresh_subkey(data: bytes) -> bytes:
    """The captured TGS-REQ with a new random authenticator subkey, as MIT sends every time
    (so the reply key is a new key for each request, as under kdcload)."""
    req = decode(KdcReq, data)
    index, pa = next((i, p) for i, p in enumerate(req.padata) if p.padata_type == C.PA_TGS_REQ)
    ap = decode(ApReq, pa.padata_value)
    tgt = decode(EncTicketPart, crypto.decrypt(
        capture_key("krbtgt/EXAMPLE.COM"), C.KU_TICKET, ap.ticket.enc_part.cipher))
    session = crypto.Key(tgt.key.keytype, tgt.key.keyvalue)
    auth = decode(Authenticator, crypto.decrypt(session, C.KU_TGS_REQ_AUTH, ap.authenticator.cipher))
    subkey = EncryptionKey(auth.subkey.keytype, os.urandom(len(auth.subkey.keyvalue)))
    cipher = crypto.encrypt(session, C.KU_TGS_REQ_AUTH, encode(replace(auth, subkey=subkey)))
    ap = replace(ap, authenticator=replace(ap.authenticator, cipher=cipher))
    padata = list(req.padata)
    padata[index] = PAData(C.PA_TGS_REQ, encode(ap))
    return encode(replace(req, padata=tuple(padata)))


def workload(variants: int = 2048) -> dict[str, tuple[list[bytes], float]]:
    """kind -> (request variants, the clock to answer them at)."""
    assert ALICE_TGT_SESSION_KEY  # the harness realm is the captures' realm
    tgs = capture("kdcload-alice-tgs-req")
    return {
        "as": ([capture("kdcload-alice-as-req")], CAPTURE_NOW),
        "preauth-1": ([capture("bob-as-req")], BOB_PATIMESTAMP),
        "preauth-2": ([capture("bob-as-req-pa-enc-timestamp")], BOB_PATIMESTAMP + 0.5),
        "tgs": ([with_fresh_subkey(tgs) for _ in range(variants)], tgs_request_time(tgs)),
    }


def build_kdc(work: Path, with_log: bool) -> tuple[Kdc, AuditLog | None]:
    """The core as the server builds it: MIT-format log file and JSON audit file (or neither)."""
    audit = None
    if with_log:
        setup_logging(work / "kdc.log", "info")
        audit = AuditLog(work / "audit.jsonl")
    else:
        logging.getLogger("mpckdc").setLevel(logging.WARNING)
    policy = make_policy()
    kdc = Kdc(policy, make_key_service(ReferenceKeyService), audit=audit,
              lookaside=Lookaside(ttl=0, max_entries=policy.lookaside_entries,
                                  max_bytes=policy.lookaside_bytes))
    return kdc, audit


async def time_kind(kdc: Kdc, variants: list[bytes], now: float, seconds: float,
                    rounds: int) -> float:
    """Best CPU microseconds per request over ``rounds`` runs of about ``seconds`` each.

    CPU time of this process (not wall time), so that time spent descheduled on a shared
    machine does not count."""
    reply = await kdc.handle(variants[0], PEER, now)
    best = float("inf")
    n = 50
    for _ in range(rounds):
        batch = list(islice(cycle(variants), n))
        t0 = time.process_time()
        for data in batch:
            await kdc.handle(data, PEER, now)
        dt = time.process_time() - t0
        best = min(best, dt / n)
        n = max(50, min(200_000, int(seconds / max(dt / n, 1e-7))))
    return best * 1e6 if reply is not None else float("nan")


async def profile_mix(kdc: Kdc, mix: list[tuple[list[bytes], float]], loops: int) -> None:
    for i in range(loops):
        for variants, now in mix:
            await kdc.handle(variants[i % len(variants)], PEER, now)


def _loop_factory():
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="per timing round (default 1)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="also run cProfile over the mix")
    ap.add_argument("--loops", type=int, default=3000, help="mix iterations under cProfile")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    ap.add_argument("--no-log", action="store_true", help="no log file and no audit file")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS,
                    help="requests in the cProfile mix (default: all four)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "profile_kdc.json")
    args = ap.parse_args(argv)

    work = workload()
    with tempfile.TemporaryDirectory(prefix="profile-kdc-") as tmp:
        kdc, audit = build_kdc(Path(tmp), not args.no_log)
        result: dict[str, float] = {}

        async def run() -> None:
            for kind, (variants, now) in work.items():
                reply = await kdc.handle(variants[0], PEER, now)
                if not reply or reply[0] != EXPECTED_REPLY[kind]:
                    raise SystemExit(f"{kind}: unexpected reply {reply[:1].hex() if reply else None}")
            for kind, (variants, now) in work.items():
                result[kind] = await time_kind(kdc, variants, now, args.seconds, args.rounds)

        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run())
            stats_text = ""
            if args.profile:
                prof = cProfile.Profile()
                prof.enable()
                runner.run(profile_mix(kdc, [work[k] for k in args.kinds], args.loops))
                prof.disable()
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(args.sort).print_stats(args.top)
                stats_text = buf.getvalue()
        if audit is not None:
            audit.close()

    login = result["preauth-1"] + result["preauth-2"]
    print(f"# KDC core in-process, reference key service, log={'off' if args.no_log else 'file+audit'}")
    print("| request | µs per request | requests/s on one core |")
    print("|---|--:|--:|")
    for kind in KINDS:
        print(f"| {kind} | {result[kind]:.1f} | {1e6 / result[kind]:,.0f} |")
    print(f"| preauth login (preauth-1 + preauth-2) | {login:.1f} | {1e6 / login:,.0f} |")
    if stats_text:
        print()
        print(stats_text)
    doc = {
        "python": platform.python_version(),
        "log": not args.no_log,
        "us_per_request": result,
        "us_per_preauth_login": login,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
