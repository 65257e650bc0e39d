"""One login's MPC work at a time: pair job vs two jobs vs the encryptions alone.

A pre-authenticated AS login asks the MPC key service for three operations at once: the
PA-ENC-TIMESTAMP decryption (client key, usage 1) and the ticket and enc-part encryptions
(krbtgt key, usage 2; client key, usage 3). With nothing else running the key service sends
them as one ``krb-pair`` job; this benchmark times that against the same operations as two
jobs and against the encryptions alone, alternating the three in one realm (three node
processes, TLS links) so that the placement of the processes on the cores, which moves
end-to-end figures by 10 % from one realm to the next, is the same for all three.

    python -m bench.bench_login_jobs [--reps 12]

Prints the medians and writes ``bench/out/bench_login_jobs.json``. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kdc.keyservice.base import KeyRef  # noqa: E402
from kdc.keyservice.mpc import MpcKeyService  # noqa: E402
from tests.mpc_realm import REALM, start_mpc_realm  # noqa: E402

# Sizes of a login at the test realm: PA-ENC-TS-ENC, EncTicketPart, EncASRepPart (bytes).
STAMP, TICKET, REPLY = 21, 144, 185
MODES = ("pair", "two jobs", "encryptions only")


async def measure(client_config: Path, reps: int) -> dict[str, list[float]]:
    ks = MpcKeyService(client_config, REALM)
    try:
        user = await ks.lookup(f"bob@{REALM}")
        tgs = await ks.lookup(f"krbtgt/{REALM}@{REALM}")
        client = KeyRef(user.name, user.kvno, 18)
        krbtgt = KeyRef(tgs.name, tgs.kvno, 18)
        stamp = await ks.encrypt(client, 1, bytes(STAMP))
        pairing = ks._partner
        times: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(reps):
            for mode in MODES:
                # "two jobs": the same requests with pairing switched off.
                ks._partner = pairing if mode == "pair" else (lambda *_: None)
                await ks.lookup(user.name)  # keep the cached record fresh (no lookup inside)
                ops = [ks.encrypt(krbtgt, 2, bytes(TICKET)), ks.encrypt(client, 3, bytes(REPLY))]
                if mode != "encryptions only":
                    ops.append(ks.decrypt(client, 1, stamp))
                t0 = time.perf_counter()
                await asyncio.gather(*ops)
                times[mode].append((time.perf_counter() - t0) * 1e3)
        return times
    finally:
        await ks.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "bench_login_jobs.json"))
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-login-jobs-"))
    realm = start_mpc_realm(work)
    try:
        times = asyncio.run(measure(realm.client_config, max(1, args.reps)))
    finally:
        realm.stop()
    result = {m: {"median_ms": statistics.median(t), "samples_ms": t} for m, t in times.items()}
    for mode, row in result.items():
        print(f"{mode:18s} median {row['median_ms']:7.1f} ms  "
              + " ".join(f"{x:.0f}" for x in row["samples_ms"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"time": time.time(), "reps": args.reps,
                                          "modes": result}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
