"""The one timing, FLOP-counting and memory helper of the speed scripts in benchmarks/.

Every speed script imports from here (``from timing import ...``; the scripts run as
``python benchmarks/<script>.py``, which puts this folder first on ``sys.path``):

* :func:`timed`: wall seconds of repeated calls after warm-up, synchronising CUDA;
* :func:`interleaved_ms`: milliseconds per call of several functions timed in turns;
* :func:`flops_of` / :func:`matmul_flops`: the FLOPs of ``torch.utils.flop_counter``'s
  formulas (matrix products, convolutions, attention) over every op run;
* :func:`sgemm_gflops`: this machine's fp32 sgemm rate, the yardstick of achieved GFLOP/s;
* :func:`peak_memory_mib`, :func:`rss_mib`, :func:`peak_rss_mib`: peak and current memory;
  :func:`in_fresh_process`: a measurement in a process of its own (its own peak memory);
* :func:`random_seen_data`: random features of a benchmark's shape (speed does not depend on
  their values);
* :func:`nll_step`: a flow's maximum-likelihood training step (the flow comparisons);
* :func:`machine`: the CPU, cores, GPU, torch and Python of a measurement;
* :func:`speed_parser` / :func:`speed_args`: every script's ``--device`` and ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "flops_of",
    "in_fresh_process",
    "interleaved_ms",
    "machine",
    "matmul_flops",
    "nll_step",
    "peak_memory_mib",
    "peak_rss_mib",
    "random_seen_data",
    "rss_mib",
    "sgemm_gflops",
    "speed_args",
    "speed_parser",
    "sync",
    "timed",
]


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA is asynchronous; CPU is not)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    fn: Callable[[], Any], device: torch.device | str = "cpu", repeats: int = 1, warmup: int = 0
) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def interleaved_ms(
    fns: dict[str, Callable[[], Any]],
    device: torch.device | str = "cpu",
    rounds: int = 1,
    calls: int = 1,
    results: dict[str, list[Any]] | None = None,
) -> dict[str, list[float]]:
    """Milliseconds per call of each of ``fns``, one number per round of ``calls`` calls in a
    row. The rounds take the functions in turns, in alternating order, so that on a shared
    machine all see the same load; what the calls return is added to ``results[name]``."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns.items())
    for r in range(rounds):
        for name, fn in order if r % 2 == 0 else order[::-1]:
            sync(device)
            t0 = time.perf_counter()
            out = [fn() for _ in range(calls)]
            sync(device)
            times[name].append((time.perf_counter() - t0) / calls * 1e3)
            if results is not None:
                results[name] += out
    return times


def matmul_flops() -> Any:
    """A dispatch mode that sums the FLOPs of torch's ``flop_counter`` formulas over every op
    run inside it (``with matmul_flops() as c: ...; c.get_total_flops()``).

    ``FlopCounterMode`` itself also tracks modules with backward hooks, and those make
    ``torch.autograd.grad`` fail on leaf tensors (CGAN + L_iMMD's gradient penalty: "A leaf
    node was passed to _will_engine_execute_node"); the counting rule here is the same.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class MatmulFlops(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += int(formula(*args, **kwargs, out_val=out))
            return out

        def get_total_flops(self) -> int:
            return self.total

    return MatmulFlops()


def flops_of(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (see :func:`matmul_flops`)."""
    with matmul_flops() as counter:
        fn()
    return counter.get_total_flops()


def sgemm_gflops(device: torch.device | str, n: int = 2048, k: int = 256, reps: int = 20) -> float:
    """fp32 ``(n x n) @ (n x k)`` rate in GFLOP/s, the yardstick of the achieved GFLOP/s."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, k, device=device)
    seconds = sum(timed(lambda: a @ b, device, reps, warmup=3))
    return 2 * n * n * k * reps / seconds / 1e9


def rss_mib() -> float:
    """This process's resident set now (Linux ``VmRSS``)."""
    return _status_mib("VmRSS:")


def peak_rss_mib() -> float:
    """This process's peak resident set. Linux keeps ``ru_maxrss`` across ``exec`` (a child
    started by a 2 GB parent reports 2 GB), so ``VmHWM`` of this address space is read."""
    peak = _status_mib("VmHWM:")
    return peak if peak == peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_mib(device: torch.device | str) -> float:
    """Peak memory of the measurement: ``max_memory_allocated`` on CUDA, else peak RSS."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mib()


def in_fresh_process(args: list[str]) -> Any:
    """Run the running script again with ``args`` in a process of its own, so that peak memory
    is that of one measurement; returns the JSON its last line of output prints."""
    proc = subprocess.run([sys.executable, sys.argv[0], *args], capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(lines[-1])


def _status_mib(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def random_seen_data(
    n: int, d: int, d_a: int, n_seen: int, n_unseen: int = 10, *, seed: int = 0, unit: bool = False
) -> Any:
    """Seen training data of a benchmark's shape with random values: ``n`` features of ``d``
    dims in [0, 1), labels cycling over ``n_seen`` classes, ``d_a``-dim class semantics in
    [0, 1) (unit length with ``unit``) for ``n_seen + n_unseen`` classes. On the CPU: a
    method's ``_to_device`` moves it."""
    from unseen.data.task import SeenTrainData

    g = torch.Generator().manual_seed(seed)
    semantics = torch.rand(n_seen + n_unseen, d_a, generator=g)
    if unit:
        semantics = torch.nn.functional.normalize(semantics, dim=1)
    return SeenTrainData(
        features=torch.rand(n, d, generator=g),
        labels=torch.arange(n) % n_seen,
        semantics=semantics,
        seen_classes=torch.arange(n_seen),
        unseen_classes=torch.arange(n_seen, n_seen + n_unseen),
        name=f"random {n} x {d}",
        synthetic=True,
    )


def machine() -> str:
    """CPU, visible cores, GPU, torch version and threads, Python: one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {cores} cores visible, {gpu}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s), Python {platform.python_version()}"
    )


def nll_step(
    forward: Callable[..., Any], params: Any, x: torch.Tensor, cond: Any = None, lr: float = 1e-4
) -> Callable[[], None]:
    """One maximum-likelihood training step of a flow under a standard normal prior, as a
    function: ``forward(x)`` (``forward(x, cond)`` with a condition) -> ``(z, log|det|)``,
    the mean negative log-likelihood, backward and an Adam step over ``params``."""
    opt = torch.optim.Adam(params, lr)

    def step() -> None:
        z, ladj = forward(x, cond) if cond is not None else forward(x)
        loss = (0.5 * z.pow(2).sum(1) - ladj).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def speed_parser(doc: str) -> argparse.ArgumentParser:
    """A speed script's parser: its docstring as the description (``--help`` shows its usage
    lines), ``--device`` and ``--threads`` (applied by :func:`speed_args`)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return p


def speed_args(p: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments ``p`` parses from ``argv`` (the command line), ``--threads`` applied."""
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args
