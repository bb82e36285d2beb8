"""``unseen bench GRID``: run a grid of methods x datasets x variants x seeds, store every
result in SQLite, and write the report (Markdown + CSV + figures). A paper's study table or
sensitivity figure is a grid too (``configs/studies/``), run on any dataset with
``--dataset``. See docs/bench.md."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "bench",
        help="run a grid (methods x datasets x variants x seeds) into a results store + report",
        description=(
            "Run every job of a grid file that the store does not hold yet (finished "
            "`unseen run` folders with the same resolved config are imported, not rerun), "
            "then write OUT/report.md, summary.csv, runs.csv and figures. Rerunning the "
            "command skips finished jobs; a killed grid resumes where it stopped."
        ),
    )
    b.add_argument(
        "grid",
        help="grid file, e.g. configs/bench/report.yaml or the study configs/studies/izf-tab3.yaml "
        "(its relative paths are taken from its own folder; a configs/... path missing here "
        "is the shipped one)",
    )
    b.add_argument(
        "--dataset",
        nargs="+",
        metavar="DATASET",
        help="run the grid on these datasets instead of its own (e.g. a study on CUB)",
    )
    b.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="added to the grid's set for every job (rows' own settings still win), e.g. "
        "data.features=effnet_lite0.mat",
    )
    b.add_argument(
        "--config",
        help="config file (as `unseen run --config`) for every entry that names none, "
        "e.g. configs/gmn/FLO-fast.yaml",
    )
    b.add_argument(
        "--rows",
        nargs="+",
        metavar="PATTERN",
        help="only the jobs whose row or label matches one of these shell patterns",
    )
    b.add_argument(
        "--validate-only",
        action="store_true",
        help="stop every job after its validation choice (test never scored); a study table "
        "then shows the chosen validation numbers",
    )
    b.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="LABEL=RUN_FOLDER",
        help="a finished run shown under a study table (e.g. f-CLSWGAN=runs/clswgan-flo-fast)",
    )
    b.add_argument(
        "--out",
        help="bench folder (default runs/bench-<grid name>, + -<DATASET> with --dataset)",
    )
    b.add_argument(
        "--store", help="SQLite results store (default OUT/results.sqlite); may be shared"
    )
    b.add_argument("--executor", choices=["local", "ray"], default="local")
    b.add_argument("--address", help="Ray cluster address (default: start one on this machine)")
    b.add_argument(
        "--jobs",
        type=int,
        help="parallel jobs (default: one per GPU for CUDA grids, else CPU cores / --threads)",
    )
    b.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1)")
    b.add_argument("--device", help="override the grid's device for every job (cpu, cuda)")
    b.add_argument("--seeds", type=int, nargs="+", help="override the grid's seeds")
    b.add_argument(
        "--data-root", help="override the grid's data_root (the folder holding <DATASET>/)"
    )
    b.add_argument(
        "--no-run", action="store_true", help="run nothing: import finished runs and report"
    )
    b.add_argument("--list", action="store_true", help="list the grid's jobs and their state")
    b.set_defaults(func=_cmd_bench)


#: (load_grid keyword, command-line option) of the values that replace or add to the grid's
_GRID_OPTIONS = (
    ("device", "device"),
    ("seeds", "seeds"),
    ("data_root", "data_root"),
    ("datasets", "dataset"),
    ("sets", "set"),
    ("config", "config"),
    ("rows", "rows"),
    ("validate_only", "validate_only"),
)


def _cmd_bench(args: argparse.Namespace) -> int:
    from unseen.bench.executors import make_executor
    from unseen.bench.grid import load_grid
    from unseen.bench.harness import find_run_folders, job_done, run_grid
    from unseen.bench.report import write_report
    from unseen.bench.store import Store
    from unseen.errors import ConfigError

    for flag in ("jobs", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {value}")
    references = {}
    for item in args.reference:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            raise ConfigError(f"--reference {item!r} must look like LABEL=RUN_FOLDER")
        references[label] = Path(folder)
    grid = load_grid(args.grid, **{key: getattr(args, name) for key, name in _GRID_OPTIONS})
    default = f"runs/bench-{grid.name}" + (f"-{'+'.join(args.dataset)}" if args.dataset else "")
    out = Path(args.out or default)
    store = Store(args.store or out / "results.sqlite")
    try:
        if args.list:
            index = find_run_folders([*grid.import_dirs, out / "jobs"])
            for job in grid.jobs:
                state = (
                    "stored"
                    if job_done(store, job)
                    else "importable"
                    if job.key in index
                    else "import-only, missing"
                    if job.import_only
                    else "to run"
                )
                print(f"{job.label:28} {job.dataset:6} {job.key[:8]}  {state}")
            for s in grid.skipped:
                print(f"skipped: {s}")
            return 0
        executor = None
        if not args.no_run:
            cuda = any(j.config.device.startswith("cuda") for j in grid.jobs)
            executor = make_executor(
                args.executor,
                workers=args.jobs,
                threads=args.threads,
                cuda=cuda,
                address=args.address,
            )
        try:
            status = run_grid(grid, out, store, executor)
        finally:
            if executor is not None and hasattr(executor, "shutdown"):
                executor.shutdown()
        report = write_report(grid, store, out, status.line(), references)
        print(f"[bench] {status.line()}")
        for s in grid.skipped:
            print(f"[bench] skipped: {s}")
        for f in status.failed:
            print(f"[bench] failed: {f}")
        print(f"report: {report}")
        return 1 if status.failed else 0
    finally:
        store.close()
