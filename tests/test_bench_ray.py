"""The tiny grid on a real Ray cluster of two nodes on loopback (a head and a worker node,
separate raylet processes, started with ``ray start`` as on real machines): every result equals
the local executor's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from unseen.bench.executors import LocalExecutor, RayExecutor
from unseen.bench.grid import load_grid
from unseen.bench.harness import run_grid
from unseen.bench.store import Store

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'unseen[dist]')")

TINY = Path(__file__).resolve().parents[1] / "configs" / "bench" / "tiny.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(*args: str, temp: str) -> subprocess.Popen:
    # --block keeps `ray start` in the foreground; ending its process group ends exactly the
    # processes this test started (and nothing else named ray on the machine).
    cli = Path(sys.executable).with_name("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [str(cli), "start", "--block", "--disable-usage-stats", "--temp-dir", temp, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture
def cluster():
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's unix sockets live there
    port = _free_port()
    address = f"127.0.0.1:{port}"
    procs = [
        _ray_start(
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            temp=temp,
        )
    ]
    try:
        deadline = time.time() + 60
        while True:  # the worker node can only join once the head's GCS answers
            probe = subprocess.run(
                [str(Path(sys.executable).with_name("ray")), "status", f"--address={address}"],
                capture_output=True,
            )
            if probe.returncode == 0:
                break
            if time.time() > deadline or procs[0].poll() is not None:
                pytest.fail("the Ray head did not start within 60 s")
            time.sleep(1)
        procs.append(
            _ray_start(
                f"--address={address}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=1",
                temp=temp,
            )
        )
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            try:  # whatever of this group is still up (raylet, GCS, workers)
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp, ignore_errors=True)


def _results(store: Store) -> dict:
    skip = {"run_dir", "finished", "total_seconds", "fit_seconds", "source"}
    out = {}
    for r in store.rows():
        row = {k: v for k, v in r.items() if k not in skip}
        row["validation"] = json.loads(row["validation"])
        del row["validation"]["seconds"]  # wall time of the selection
        out[(r["key"], r["seed"])] = row
    return out


def test_ray_cluster_on_loopback_matches_the_local_executor(cluster, tmp_path):
    grid = load_grid(TINY)
    t0 = time.time()
    executor = RayExecutor(address=cluster, node_ip="127.0.0.1")
    try:
        deadline = time.time() + 30
        while sum(n["Alive"] for n in ray.nodes()) < 2:  # head + worker node
            assert time.time() < deadline, "the worker node did not join the cluster"
            time.sleep(0.5)
        # Both raylets are on this machine. (Ray itself replaces --node-ip-address=127.0.0.1
        # by the host's own interface address, `ray start` logs "Local node IP: ...".)
        alive = [n for n in ray.nodes() if n["Alive"]]
        assert len({n["NodeID"] for n in alive}) == 2
        assert len({n["NodeManagerAddress"] for n in alive}) == 1
        with Store(tmp_path / "ray.sqlite") as store:
            status = run_grid(grid, tmp_path / "ray", store, executor, echo=False)
            assert not status.failed, status.failed
            on_ray = _results(store)
        print(f"ray grid: {time.time() - t0:.1f} s")
    finally:
        executor.shutdown()
    with Store(tmp_path / "local.sqlite") as store:
        status = run_grid(grid, tmp_path / "local", store, LocalExecutor(workers=1), echo=False)
        assert not status.failed, status.failed
        local = _results(store)
    assert len(local) == len(grid.jobs) * 2
    assert on_ray.keys() == local.keys()
    for key in local:  # metrics, validation choice and training history, bit for bit
        assert on_ray[key] == local[key], key
