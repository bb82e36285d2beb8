"""``unseen bench GRID``: run a grid of methods x datasets x variants x seeds, store every
result in SQLite, and write the report (Markdown + CSV + figures). A paper's study table or
sensitivity figure is a grid too (``configs/studies/``), run on any dataset with
``--dataset``. See docs/bench.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from unseen.commands import add_command, add_executor_options, executor_from

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    b = add_command(sub, "bench", _cmd_bench)
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
    add_executor_options(b, "job")
    b.add_argument("--device", help="override the grid's device for every job (cpu, cuda)")
    b.add_argument("--seeds", type=int, nargs="+", help="override the grid's seeds")
    b.add_argument(
        "--splits",
        type=int,
        metavar="N",
        help="also run every job on N alternative class splits (grid key `splits`: drawn by "
        "`unseen splits` into runs/splits, seed 0, unless the grid says otherwise) and add the "
        "robustness table to the report",
    )
    b.add_argument(
        "--data-root", help="override the grid's data_root (the folder holding <DATASET>/)"
    )
    b.add_argument(
        "--no-run", action="store_true", help="run nothing: import finished runs and report"
    )
    b.add_argument("--list", action="store_true", help="list the grid's jobs and their state")


def _cmd_bench(args: argparse.Namespace) -> int:
    """run a grid (methods x datasets x variants x seeds) into a results store + report

    Run every job of a grid file that the store does not hold yet (finished `unseen run`
    folders with the same resolved config are imported, not rerun), then write OUT/report.md,
    summary.csv, runs.csv and figures. Rerunning the command skips finished jobs; a killed grid
    resumes where it stopped.
    """
    from unseen.bench.grid import load_grid
    from unseen.bench.harness import find_run_folders, importable, job_done, run_grid
    from unseen.bench.report import write_report
    from unseen.bench.store import Store
    from unseen.errors import ConfigError

    references = {}
    for item in args.reference:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            raise ConfigError(f"--reference {item!r} must look like LABEL=RUN_FOLDER")
        references[label] = Path(folder)
    # options named as load_grid's keywords, --dataset and --set replace or add to grid values
    same = "device seeds data_root config rows validate_only splits"
    options = {name: getattr(args, name) for name in same.split()}
    grid = load_grid(args.grid, datasets=args.dataset, sets=args.set, **options)
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
                    if importable(job, index.get(job.key, []))
                    else "import-only, missing"
                    if job.import_only
                    else "to run"
                )
                where = f"{job.dataset} {job.split}".strip()
                print(f"{job.label:28} {where:13} {job.key[:8]}  {state}")
            for s in grid.skipped:
                print(f"skipped: {s}")
            return 0
        cuda = any(j.config.device.startswith("cuda") for j in grid.jobs)
        with executor_from(args, cuda, run=not args.no_run) as executor:
            status = run_grid(grid, out, store, executor)
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
