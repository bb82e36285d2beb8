"""``unseen sweep FILE``: hyper-parameter search on the validation problem only (grid or
Optuna TPE), then the best setting retrained on all seen training data and tested once.
See :mod:`unseen.bench.sweep` and docs/bench.md."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from unseen.commands import add_command, add_executor_options, executor_from

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "sweep", _cmd_sweep)
    s.add_argument("sweep", help="sweep file, e.g. configs/bench/sweeps/clswgan-flo.yaml")
    s.add_argument("--out", help="sweep folder (default runs/sweep-<name>)")
    s.add_argument("--sampler", choices=["grid", "tpe"], help="override the file's sampler")
    s.add_argument("--trials", type=int, help="override the file's number of TPE trials")
    add_executor_options(s, "trial")
    s.add_argument("--data-root", help="override the sweep file's data_root")


def _cmd_sweep(args: argparse.Namespace) -> int:
    """search hyper-parameters on validation only (grid / TPE), then test the best once

    Every trial is `unseen run --validate-only` (test never scored); trials are stored as they
    finish and a killed sweep resumes. The best setting is then run through the full protocol
    and OUT/best.yaml records the values with this command. Relative paths in the sweep file
    are taken from its own folder.
    """
    from unseen.bench.store import Store
    from unseen.bench.sweep import load_sweep, run_sweep
    from unseen.errors import ConfigError

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
    with executor_from(args, cuda=(sw.device or "cpu").startswith("cuda")) as executor:
        jobs = getattr(executor, "workers", None) or args.jobs or 1
        parts = ["unseen", "sweep", args.sweep]
        for flag in ("out", "sampler", "trials", "executor", "address", "jobs", "threads"):
            value = getattr(args, flag)
            if value is not None and not (flag == "executor" and value == "local"):
                parts += [f"--{flag}", str(value)]
        with Store(args.store or out / "results.sqlite") as store:
            summary = run_sweep(sw, out, store, executor, jobs=jobs, command=shlex.join(parts))
    ts = summary["test_summary"]
    print(
        f"[sweep] best {summary['best_params']}: validation {summary['best_validation']:.2f}; "
        "test " + ", ".join(f"{k.upper()} {v['mean']:.1f}" for k, v in ts.items())
    )
    print(f"report: {out / 'sweep.md'}; chosen values: {out / 'best.yaml'}")
    return 0
