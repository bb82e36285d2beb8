"""Where grid jobs run: a local process pool (default) or a Ray cluster.

Both run the same function, :func:`run_job`, on the same job specs (plain dicts), and yield
results as jobs finish so that the caller stores each one at once (a killed grid keeps what it
finished; the runner itself resumes a killed job from its checkpoints).

* :class:`LocalExecutor`: ``jobs`` worker processes (spawned, so each starts with a clean
  torch). On a CPU machine the default is one worker per ``threads`` cores with ``threads=1``
  torch thread each: several torch processes with default threads on few cores spend their
  time in OpenMP barriers. With CUDA devices and a CUDA grid the default is one worker per GPU,
  each worker pinned to its GPU (``CUDA_VISIBLE_DEVICES``), one job at a time per GPU.
* :class:`RayExecutor`: each job is a Ray task (``num_cpus=threads``, ``num_gpus=1`` for CUDA
  jobs, so Ray places one job per GPU); ``address`` is an existing cluster (``ray start
  --head`` on one node, ``ray start --address=HEAD:6379`` on the others) or ``None`` for a
  cluster of this machine alone. The grid file is the same; only ``--executor ray`` changes.
  Every node needs unseen installed and the data at the same ``data_root`` path.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

__all__ = ["LocalExecutor", "RayExecutor", "default_workers", "make_executor", "run_job"]


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one grid job (``unseen run`` into ``spec["out"]``) and return its results.json.

    ``spec``: ``config`` (a resolved ``RunConfig.to_dict()``), ``out`` (folder), ``threads``
    (torch threads), ``validate_only``, ``keep_checkpoints``, ``runner`` (a name of
    :data:`unseen.bench.runners.RUNNERS`, default ``protocol``: ``unseen run``), ``plugins``
    (``--plugin`` modules or files to import first: each node needs them at the same path).
    """
    import torch

    from unseen.bench.runners import RUNNERS
    from unseen.config import RunConfig
    from unseen.methods.base import load_plugin

    threads = int(spec.get("threads") or 1)
    torch.set_num_threads(threads)
    for plugin in spec.get("plugins") or []:  # --plugin methods, in a spawned worker too
        load_plugin(plugin)
    cfg = RunConfig.from_dict(spec["config"])
    run = RUNNERS[spec.get("runner") or "protocol"]
    result = run(
        cfg,
        spec["out"],
        echo=False,
        validate_only=bool(spec.get("validate_only")),
        keep_checkpoints=bool(spec.get("keep_checkpoints")),
    )
    result["host"] = os.uname().nodename
    return result


def _cuda_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # torch without CUDA runtime
        return 0


def default_workers(threads: int = 1, cuda: bool = False) -> int:
    """One worker per GPU for CUDA grids, else one per ``threads`` CPU cores."""
    if cuda:
        return max(1, _cuda_count())
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, threads))


def _init_worker(gpus: Any, threads: int) -> None:
    # Before torch initialises CUDA in this process: pin the worker to one GPU.
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)


class _Executor:
    """Either executor is a context manager, so that a Ray cluster it started ends with the
    ``with`` block that used it, however that block ends."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Nothing to release: a local pool lives only while ``map`` runs."""


class LocalExecutor(_Executor):
    """A pool of ``workers`` spawned processes on this machine (in-process when 1)."""

    name = "local"

    def __init__(self, workers: int | None = None, threads: int = 1, cuda: bool = False) -> None:
        self.threads = max(1, threads)
        self.cuda = cuda and _cuda_count() > 0
        self.workers = workers or default_workers(self.threads, self.cuda)

    def map(self, specs: list[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, results or exception)`` as jobs finish."""
        if not specs:
            return
        if self.workers == 1 and not self.cuda:  # in this process, one job after another
            import torch

            before = torch.get_num_threads()
            try:
                for i, spec in enumerate(specs):
                    try:
                        result: Any = run_job({**spec, "threads": self.threads})
                    except Exception as exc:
                        result = exc
                    torch.set_num_threads(before)  # the caller's setting between jobs
                    yield i, result
            finally:
                torch.set_num_threads(before)
            return
        ctx = mp.get_context("spawn")
        n = min(self.workers, len(specs))
        gpus = None
        if self.cuda:
            gpus = ctx.Queue()
            for g in range(n):
                gpus.put(g)
        with ProcessPoolExecutor(
            n, mp_context=ctx, initializer=_init_worker, initargs=(gpus, self.threads)
        ) as pool:
            futures = {
                pool.submit(run_job, {**spec, "threads": self.threads}): i
                for i, spec in enumerate(specs)
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    exc = f.exception()
                    yield futures[f], exc if exc is not None else f.result()


class RayExecutor(_Executor):
    """Ray tasks on a cluster (``address``) or a local one started here (``address=None``)."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        threads: int = 1,
        cuda: bool = False,
        num_cpus: int | None = None,
        node_ip: str | None = None,
    ) -> None:
        try:
            import ray
        except ImportError:
            from unseen.errors import ConfigError

            raise ConfigError(
                "--executor ray needs Ray: pip install 'unseen[dist]' (or pip install ray)"
            ) from None
        self.ray = ray
        self.threads = max(1, threads)
        self.cuda = cuda
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"address": address, "include_dashboard": False}
            if address is None:
                kwargs["num_cpus"] = num_cpus
            if node_ip:  # this machine's address as the cluster sees it (e.g. 127.0.0.1)
                kwargs["_node_ip_address"] = node_ip
            ray.init(**kwargs, log_to_driver=False)
            self._started = True

    def map(self, specs: list[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        ray = self.ray
        task = ray.remote(run_job).options(
            num_cpus=self.threads,
            num_gpus=1 if self.cuda else 0,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(self.threads)}},
            max_retries=0,
        )
        refs = {task.remote({**spec, "threads": self.threads}): i for i, spec in enumerate(specs)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    yield refs[ref], ray.get(ref)
                except Exception as exc:
                    yield refs[ref], exc

    def shutdown(self) -> None:
        if self._started:
            self.ray.shutdown()


def make_executor(
    kind: str,
    *,
    workers: int | None = None,
    threads: int = 1,
    cuda: bool = False,
    address: str | None = None,
) -> LocalExecutor | RayExecutor:
    if kind == "local":
        return LocalExecutor(workers, threads, cuda)
    if kind == "ray":
        return RayExecutor(address, threads, cuda, num_cpus=workers)
    from unseen.errors import ConfigError

    raise ConfigError(f"unknown executor {kind!r}; valid: local, ray")
