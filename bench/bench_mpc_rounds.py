"""Round-path micro-benchmark: the real engine of three parties in ONE process.

Drives three :class:`mpc.scheduler.RoundScheduler` instances with real
:class:`mpc.evaluator.PartyEvaluation` batches through the real BUNDLE framing
(:mod:`mpc.framing`), either in memory (``--link mem``) or through real TLS 1.3 channels
(:class:`mpc.tls.TlsChannel`) over loopback socket pairs (``--link tls``), all on one thread.
No cross-process wake-ups, so what it shows is the CPU the node code spends per round
(scheduler, evaluator, PRF, framing, TLS, syscalls): CPU microseconds per party-round and
per section (one batch's layer in a frame).

Usage: ``python -m bench.bench_mpc_rounds [--link mem|tls] [--batches N] [--circuit NAME]
[--words W]``. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from mpc import framing, registry, tls  # noqa: E402
from mpc.evaluator import PartyEvaluation  # noqa: E402
from mpc.kernels import warm_up  # noqa: E402
from mpc.prf import party_randomness  # noqa: E402
from mpc.scheduler import Batch, RoundScheduler  # noqa: E402
from mpc.sharing import share_bits  # noqa: E402


class _MemLink:
    """Frames as bytes in a deque; the reader side is a fake blocking socket over it."""

    def __init__(self) -> None:
        self.chunks: collections.deque = collections.deque()

    def send(self, buffers: list) -> None:
        self.chunks.append(b"".join(bytes(b) for b in buffers))

    def recv_into(self, view, nbytes: int = 0) -> int:
        data = self.chunks[0]
        n = min(len(data), nbytes or len(view))
        view[:n] = data[:n]
        if n == len(data):
            self.chunks.popleft()
        else:
            self.chunks[0] = data[n:]
        return n


class _TlsLink:
    """A real TLS 1.3 mutual-auth channel pair over a loopback socket pair."""

    def __init__(self, ctxs: dict) -> None:
        a, b = socket.socketpair()
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        box = {}
        t = threading.Thread(target=lambda: box.setdefault(
            "srv", tls.TlsChannel(b, ctxs["server"], server_side=True)))
        t.start()
        self.tx = tls.TlsChannel(a, ctxs["client"], server_side=False,
                                 server_hostname=ctxs["name"])
        t.join()
        self.rx = box["srv"]
        self.tx.raw.setblocking(False)

    def send(self, buffers: list) -> None:
        wire = memoryview(self.tx.seal(buffers))
        while wire.nbytes:
            k = self.tx.raw.send(wire)
            wire = wire[k:]

    def recv_into(self, view, nbytes: int = 0) -> int:
        return self.rx.recv_into(view, nbytes)


def _tls_contexts(d: Path) -> list[dict]:
    ca = tls.make_ca()
    (d / "ca.pem").write_bytes(ca.cert_pem)
    out = []
    for i in range(3):
        ck = tls.issue(ca, tls.node_name(i))
        (d / f"n{i}.pem").write_bytes(ck.cert_pem)
        (d / f"n{i}.key").write_bytes(ck.key_pem)
    for i in range(3):  # link: party i -> party i-1 (dialer i, acceptor i-1)
        p = (i - 1) % 3
        out.append({"client": tls.client_context(d / "ca.pem", d / f"n{i}.pem", d / f"n{i}.key"),
                    "server": tls.server_context(d / "ca.pem", d / f"n{p}.pem", d / f"n{p}.key"),
                    "name": tls.node_name(p)})
    return out


def run(link: str, batches: int, circuit_name: str, words: int, repeat: int) -> dict:
    circuit = registry.get(circuit_name)
    rands = party_randomness()
    tmp = tempfile.TemporaryDirectory(prefix="bench-rounds-")
    if link == "tls":
        ctxs = _tls_contexts(Path(tmp.name))
        links = [_TlsLink(ctxs[i]) for i in range(3)]  # links[i]: party i -> party i-1
    else:
        links = [_MemLink() for _ in range(3)]
    pending: collections.deque = collections.deque()  # parties with a frame to read
    # Party p reads the link of party p+1.
    readers = [framing.BufferedReader(links[(p + 1) % 3]) for p in range(3)]
    counters = [0, 0, 0]

    def sender(i: int):
        def send_bundle(sections: list) -> int:
            counters[i] += 1
            links[i].send(framing.bundle_buffers(counters[i] & 0xFFFFFFFF, sections))
            pending.append((i - 1) % 3)
            return counters[i]
        return send_bundle

    scheds = [RoundScheduler(i, sender(i), lambda: True, max_in_flight=4096) for i in range(3)]
    for s in scheds:
        s.start()
    rng = np.random.default_rng(1)
    ins = [rng.integers(0, 2**64, size=(len(ids), words), dtype=np.uint64)
           for ids in circuit.input_wires]
    shares = [share_bits(x) for x in ins]
    results = []
    next_id = [1]

    def launch() -> tuple[collections.deque, int]:
        done: collections.deque = collections.deque()
        for _ in range(batches):
            bid = next_id[0]
            next_id[0] += 1
            ev_done = done.append
            for p in range(3):
                ev = PartyEvaluation(circuit, p, rands[p], bid, words, reuse_send_buffers=True)
                for k in range(len(ins)):
                    ev.set_input(k, shares[k][p])

                def on_done(outputs, err, ev_done=ev_done, p=p):
                    if err is not None:
                        raise RuntimeError(f"batch failed: {err.code}")
                    ev_done(p)
                scheds[p].submit(Batch(batch_id=bid, evaluation=ev,
                                       layer_sizes=circuit.layer_sizes, words=words,
                                       reveal_all=True, n_outputs=len(circuit.output_wires),
                                       on_done=on_done, deadline=time.monotonic() + 600))
        return done, 3 * batches

    def drive(job: tuple[collections.deque, int]) -> None:
        done, want = job
        guard = 0
        while len(done) < want:
            if not pending:
                guard += 1
                if guard > 200_000:
                    raise RuntimeError("stalled")
                time.sleep(0.0001)
                continue
            p = pending.popleft()
            scheds[p].deliver(readers[p].next_bundle())

    drive(launch())  # warm-up
    for _ in range(repeat):
        r0 = sum(s.rounds for s in scheds)
        s0 = sum(s.sections_sent for s in scheds)
        c0 = sum(s.compute_seconds for s in scheds)
        t0, w0 = time.process_time(), time.perf_counter()
        drive(launch())
        cpu, wall = time.process_time() - t0, time.perf_counter() - w0
        rounds = sum(s.rounds for s in scheds) - r0
        sections = sum(s.sections_sent for s in scheds) - s0
        compute = sum(s.compute_seconds for s in scheds) - c0
        results.append({"cpu_us_per_round": 1e6 * cpu / rounds,
                        "cpu_us_per_section": 1e6 * cpu / sections,
                        "kernel_us_per_section": 1e6 * compute / sections,
                        "sections_per_round": sections / rounds, "wall_s": wall})
    for s in scheds:
        s.stop()
    tmp.cleanup()
    return {"link": link, "batches": batches, "circuit": circuit_name, "words": words,
            "runs": results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--link", choices=("mem", "tls"), default="mem")
    ap.add_argument("--batches", type=int, default=1)
    ap.add_argument("--circuit", default="and-layer:64x300")
    ap.add_argument("--words", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    warm_up()
    res = run(args.link, args.batches, args.circuit, args.words, args.repeat)
    for r in res["runs"]:
        print(f"{res['link']} {res['circuit']} w={res['words']} batches={res['batches']}: "
              f"{r['cpu_us_per_round']:7.1f} us CPU/party-round  "
              f"{r['cpu_us_per_section']:6.1f} us/section  "
              f"(kernel+prf {r['kernel_us_per_section']:5.1f})  "
              f"{r['sections_per_round']:.2f} sections/round  wall {r['wall_s']:.2f}s")
    best = min(r["cpu_us_per_round"] for r in res["runs"])
    print(f"best: {best:.1f} us CPU per party-round")
    return 0


if __name__ == "__main__":
    sys.exit(main())
