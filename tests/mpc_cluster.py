"""A throwaway three-node MPC cluster: real ``python -m mpc.node`` processes over real TLS.

``MpcCluster(tmpdir)`` generates cluster material (CA, certificates, PRF keys, configs) on
free loopback ports, starts the three node processes, and stops them by PID. Used by the
tests (``mpc_cluster`` fixture) and by ``bench/bench_mpc.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdc.cli import free_ports
from mpc.cluster import generate_cluster

ROOT = Path(__file__).resolve().parent.parent


def node_env() -> dict[str, str]:
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = "1"
    env["NUMBA_CACHE_DIR"] = str(ROOT / ".numba_cache")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class MpcCluster:
    def __init__(self, directory: str | Path, *, debug: bool = True,
                 job_timeout: float = 30.0, store: str = "sqlite") -> None:
        self.dir = Path(directory)
        ports = free_ports(12)
        self.admin_ports, self.metrics_ports = ports[6:9], ports[9:12]
        generate_cluster(self.dir, ports[:3], ports[3:6], debug=debug, job_timeout=job_timeout,
                         admin_ports=self.admin_ports, metrics_ports=self.metrics_ports,
                         store=store)
        self.client_config = self.dir / "client.toml"
        self.procs: list[subprocess.Popen | None] = [None, None, None]

    def config(self, party: int) -> Path:
        return self.dir / f"node-{party}.toml"

    def start_node(self, party: int) -> None:
        log = open(self.dir / f"node-{party}.log", "ab")
        self.procs[party] = subprocess.Popen(
            [sys.executable, "-m", "mpc.node", "--config", str(self.config(party))],
            cwd=ROOT, env=node_env(), stdout=log, stderr=log)
        log.close()

    def start(self) -> MpcCluster:
        for i in range(3):
            self.start_node(i)
        return self

    def store_path(self, party: int) -> Path:
        """Node ``party``'s SQLite share store."""
        return self.dir / f"node-{party}" / "shares.db"

    def kill_node(self, party: int, sig: int = signal.SIGKILL) -> None:
        p = self.procs[party]
        if p is not None and p.poll() is None:
            os.kill(p.pid, sig)
            p.wait(timeout=10)

    def alive(self, party: int) -> bool:
        p = self.procs[party]
        return p is not None and p.poll() is None

    def stop(self) -> list[int | None]:
        codes = []
        for p in self.procs:
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs:
            if p is None:
                codes.append(None)
                continue
            try:
                codes.append(p.wait(timeout=10))
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                codes.append(p.wait(timeout=10))
        return codes

    def wait_ready(self, client, timeout: float = 30.0) -> None:
        client.wait_ready(timeout=timeout)

    def logs(self) -> str:
        return "\n".join((self.dir / f"node-{i}.log").read_text(errors="replace")
                         for i in range(3) if (self.dir / f"node-{i}.log").exists())


def wait_until(pred, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


@pytest.fixture(scope="module")
def mpc_cluster(tmp_path_factory):
    cluster = MpcCluster(tmp_path_factory.mktemp("mpc-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()
