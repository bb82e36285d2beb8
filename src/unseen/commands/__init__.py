"""Sub-commands of ``unseen`` that live outside :mod:`unseen.cli`, and what they share.

Each module listed in :data:`MODULES` defines ``register(sub)`` which adds its command(s) with
:func:`add_command`: the handler takes the parsed ``argparse.Namespace`` and returns an exit
code, and its docstring is the command's ``--help`` text. Errors the user can fix are raised
as :class:`unseen.errors.UnseenError` and printed by :func:`unseen.cli.main` (exit 2).

Adding a command is one new module here plus one line in :data:`MODULES`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unseen.errors import ConfigError, DataError, OutputExistsError

if TYPE_CHECKING:
    from unseen.config import RunConfig
    from unseen.data.task import ZSLTask
    from unseen.methods.base import GenerativeMethod

__all__ = [
    "MODULES",
    "add_command",
    "add_executor_options",
    "executor_from",
    "open_validation",
    "refuse_existing",
    "register_all",
]

# Module names under unseen.commands, one per command group.
MODULES: list[str] = [
    "bench",
    "sweep",
    "predict",
    "plot",
    "compare",
    "data",
    "extract",
    "diagnose",
    "classifier_check",
    "splits",
]


def register_all(sub: argparse._SubParsersAction) -> None:
    """Let every command module add its parsers to ``sub``."""
    for name in MODULES:
        importlib.import_module(f"unseen.commands.{name}").register(sub)


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    device: bool = False,
) -> argparse.ArgumentParser:
    """The parser of command ``name``, run by ``handler``; with ``device``, the --device its
    models run on (checked by the handler with :func:`unseen.cli._check_device`).

    The handler's docstring is the command's help, so that who reads the code reads what the
    user reads: its first paragraph is the line of ``unseen --help`` (argparse rewraps it), the
    rest the description of ``unseen NAME --help``."""
    summary, _, details = (inspect.getdoc(handler) or "").partition("\n\n")
    p = sub.add_parser(name, help=" ".join(summary.split()), description=details or None)
    p.set_defaults(func=handler)
    if device:
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    return p


def refuse_existing(*paths: str | Path | None, force: bool) -> None:
    """Stop before any work when an output file exists and ``--force`` was not given."""
    for path in paths:
        if path and Path(path).exists() and not force:
            raise OutputExistsError(f"{path} already exists; pass --force to replace it")


# ------------------------------------------------ executors (bench, sweep)
def add_executor_options(p: argparse.ArgumentParser, unit: str) -> None:
    """Where the ``unit``s (jobs, trials) run and the store that keeps their results."""
    p.add_argument(
        "--store", help="SQLite results store (default OUT/results.sqlite); may be shared"
    )
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster address (default: start one on this machine)")
    workers = "one per GPU when they use CUDA, else CPU cores / --threads"
    p.add_argument("--jobs", type=int, help=f"{unit}s in parallel (default: {workers})")
    p.add_argument("--threads", type=int, default=1, help=f"torch threads per {unit} (default 1)")


def executor_from(
    args: argparse.Namespace, cuda: bool, run: bool = True
) -> contextlib.AbstractContextManager[Any]:
    """The executor of :func:`add_executor_options` for a ``with`` block that shuts it down
    (``None`` when ``run`` is off)."""
    from unseen.bench.executors import make_executor

    for flag in ("jobs", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {value}")
    if not run:
        return contextlib.nullcontext()
    return make_executor(
        args.executor, workers=args.jobs, threads=args.threads, cuda=cuda, address=args.address
    )


# ------------------------------------------------ run folders (diagnose, classifier-check)
def open_validation(
    run_dir: str | Path,
    device: str | None,
    data_root: str | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[RunConfig, GenerativeMethod | None, ZSLTask]:
    """What a run folder holds of its validation, readable before its test stage: its resolved
    config (``run.yaml``; ``data`` changes its data section, ``data_root`` replaces the root of
    moved data), the generator it chose (``validation/model.pt``; ``checkpoint.pt`` in runs made
    before model.pt was kept; loaded on ``device``, None without one), and its validation
    problem as the runner built it. The generator is checked before the data are loaded."""
    import dataclasses

    import yaml

    from unseen.config import DataConfig
    from unseen.methods.base import GenerativeMethod, config_from_dict
    from unseen.plot.runs import _run_config
    from unseen.runner import build_task, load_dataset

    spec = Path(run_dir) / "run.yaml"
    if not spec.is_file():
        raise DataError(f"{run_dir} is not an unseen run folder (no run.yaml)")
    try:
        cfg = _run_config(yaml.safe_load(spec.read_text()), spec)
    except yaml.YAMLError as exc:
        raise DataError(f"{spec} is not readable YAML: {exc}") from None
    data = {**(data or {}), **({"root": data_root} if data_root else {})}
    if data:
        data = config_from_dict(DataConfig, {**dataclasses.asdict(cfg.data), **data}, "data")
        cfg = dataclasses.replace(cfg, data=data)
    method = None
    if device is not None:
        found = [
            p for p in ("model.pt", "checkpoint.pt") if Path(run_dir, "validation", p).is_file()
        ]
        if not found:
            raise DataError(
                f"{run_dir}/validation holds no model.pt or checkpoint.pt: validation has not "
                "run yet (start the run, or rerun it with `unseen run ... --validate-only`)"
            )
        model = Path(run_dir, "validation", found[0])
        method = GenerativeMethod.load(model, device=device)
        if method.name != cfg.method:
            raise DataError(f"{model} holds a '{method.name}' model, the run is '{cfg.method}'")
    task = build_task(cfg.data, load_dataset(cfg.data))
    return cfg, method, task.validation(holdout=cfg.selection.holdout, seed=cfg.seeds[0])
