"""``unseen sweep FILE``: hyper-parameter search on the validation problem only (grid or
Optuna TPE), then the best setting retrained on all seen training data and tested once.
See :mod:`unseen.bench.sweep` and docs/bench.md."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "sweep",
        help="search hyper-parameters on validation only (grid / TPE), then test the best once",
        description=(
            "Every trial is `unseen run --validate-only` (test never scored); trials are stored "
            "as they finish and a killed sweep resumes. The best setting is then run through "
            "the full protocol and OUT/best.yaml records the values with this command."
        ),
    )
    s.add_argument(
        "sweep",
        help="sweep file, e.g. configs/bench/sweeps/clswgan-flo.yaml (relative paths in it "
        "are taken from its own folder)",
    )
    s.add_argument("--out", help="sweep folder (default runs/sweep-<name>)")
    s.add_argument("--store", help="SQLite results store (default OUT/results.sqlite)")
    s.add_argument("--sampler", choices=["grid", "tpe"], help="override the file's sampler")
    s.add_argument("--trials", type=int, help="override the file's number of TPE trials")
    s.add_argument("--executor", choices=["local", "ray"], default="local")
    s.add_argument("--address", help="Ray cluster address (default: start one here)")
    s.add_argument("--jobs", type=int, help="trials in parallel (default: machine-sized)")
    s.add_argument("--threads", type=int, default=1, help="torch threads per trial (default 1)")
    s.add_argument("--data-root", help="override the sweep file's data_root")
    s.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from unseen.bench.executors import make_executor
    from unseen.bench.store import Store
    from unseen.bench.sweep import load_sweep, run_sweep
    from unseen.errors import ConfigError

    for flag in ("jobs", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {value}")
    sw = load_sweep(args.sweep, data_root=args.data_root)
    if args.sampler:
        sw.sampler = args.sampler
        if sw.sampler == "grid" and any(k != "choices" for k, _ in sw.space.values()):
            raise ConfigError("--sampler grid needs a space of 'choices' lists only")
    if args.trials is not None:
        if args.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {args.trials}")
        sw.trials = args.trials
    sw.notes = [n for n in sw.notes if sw.sampler == "grid"]  # --sampler tpe uses trials
    if sw.sampler == "grid" and args.trials is not None:
        sw.notes.append(f"--trials {args.trials} is ignored by the grid sampler")
    for note in sw.notes:
        print(f"[sweep] note: {note}")
    out = Path(args.out or f"runs/sweep-{sw.name}")
    cuda = (sw.device or "cpu").startswith("cuda")
    executor = make_executor(
        args.executor, workers=args.jobs, threads=args.threads, cuda=cuda, address=args.address
    )
    jobs = getattr(executor, "workers", None) or args.jobs or 1
    parts = ["unseen", "sweep", args.sweep]
    for flag in ("out", "sampler", "trials", "executor", "address", "jobs", "threads"):
        value = getattr(args, flag)
        if value is not None and not (flag == "executor" and value == "local"):
            parts += [f"--{flag}", str(value)]
    command = shlex.join(parts)
    try:
        with Store(args.store or out / "results.sqlite") as store:
            summary = run_sweep(sw, out, store, executor, jobs=jobs, command=command)
    finally:
        if hasattr(executor, "shutdown"):
            executor.shutdown()
    ts = summary["test_summary"]
    print(
        f"[sweep] best {summary['best_params']}: validation {summary['best_validation']:.2f}; "
        "test " + ", ".join(f"{k.upper()} {v['mean']:.1f}" for k, v in ts.items())
    )
    print(f"report: {out / 'sweep.md'}; chosen values: {out / 'best.yaml'}")
    return 0
