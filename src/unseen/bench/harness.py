"""``unseen bench``'s driver: skip what the store holds, import finished runner folders, run
the rest on an executor, store each result as it arrives.

A grid job is finished when the store holds every one of its seeds under its config key
(:func:`unseen.bench.grid.config_key`), or, for a ``validate_only`` job, its validation
selection. A finished ``unseen run`` folder (``run.yaml`` + ``results.json``; for a
validation-only job ``validation/selection.json`` is enough) under one of the grid's
``import`` folders, or under the bench's own ``OUT/jobs``, whose resolved config has the same
key is imported instead of rerun; its row records where it came from (``source = import``,
its folder, the time its results were written and the unseen version it names). Everything
else runs.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unseen.bench.grid import Grid, Job, config_key, read_run_folder
from unseen.bench.store import Store
from unseen.rundir import _git, _repo, code_version

__all__ = [
    "GridStatus",
    "code_version",
    "find_run_folders",
    "importable",
    "job_done",
    "run_grid",
]


def _import_version(results: dict[str, Any], finished: str) -> str:
    """What is known of the code that wrote an imported run: the ``code_version`` the runner
    recorded (runs since it does), else its unseen version and the commit that was HEAD of
    this checkout when results.json was written (the run may have used other code)."""
    if results.get("code_version"):
        return str(results["code_version"])
    version = f"unseen {results.get('unseen_version', '?')}"
    commit = _git(["log", "-1", "--format=%h", f"--before={finished}"], _repo())
    return f"{version}; HEAD then: {commit} (working tree not recorded)" if commit else version


def _mtime(path: Path) -> str:
    t = _dt.datetime.fromtimestamp(path.stat().st_mtime, tz=_dt.timezone.utc)
    return t.isoformat(timespec="seconds")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _finished_file(folder: Path) -> Path | None:
    """What says a runner folder finished: results.json, else its validation selection."""
    for name in ("results.json", "validation/selection.json"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_run_folders(roots: list[Path]) -> dict[str, list[Path]]:
    """Runner folders under ``roots`` that finished at least their validation selection, by
    config key (newest first)."""
    found: dict[str, list[Path]] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for spec in sorted(root.rglob("run.yaml")):
            folder = spec.parent
            if _finished_file(folder) is None:
                continue
            try:
                import yaml

                key = config_key(yaml.safe_load(spec.read_text()))
            except Exception:  # a foreign or broken run.yaml: not importable, not fatal
                continue
            found.setdefault(key, []).append(folder)
    for folders in found.values():
        folders.sort(key=lambda f: _finished_file(f).stat().st_mtime, reverse=True)
    return found


@dataclass
class GridStatus:
    """What happened to each job of a grid."""

    stored: list[str] = field(default_factory=list)  # already in the store
    imported: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # import-only or --no-run, not found

    def line(self) -> str:
        return (
            f"{len(self.stored)} already stored, {len(self.imported)} imported, "
            f"{len(self.ran)} ran, {len(self.failed)} failed, {len(self.missing)} missing"
        )


def importable(job: Job, folders: list[Path]) -> bool:
    """Whether one of ``folders`` (same config key) holds what ``job`` needs: its validation
    selection for a ``validate_only`` job, else results for every one of its seeds (a
    validation-only run of the same config is not a finished test run)."""
    for folder in folders:
        if job.validate_only:
            if (folder / "validation" / "selection.json").is_file():
                return True
            continue
        run = read_run_folder(folder)
        if run and set(map(str, job.config.seeds)) <= set(run["results"].get("seeds", {})):
            return True
    return False


def _import(store: Store, job: Job, folder: Path, seeds: list[int], source: str) -> bool:
    if job.validate_only:
        return _import_validation(store, job, folder, source)
    run = read_run_folder(folder)
    if run is None:
        return False
    results = run["results"]
    if not set(map(str, seeds)) <= set(results.get("seeds", {})):
        return False
    results = {**results, "seeds": {str(s): results["seeds"][str(s)] for s in seeds}}
    _add(store, job, results, source, folder, written=folder / "results.json")
    return True


def _import_validation(store: Store, job: Job, folder: Path, source: str) -> bool:
    """A folder's validation selection (``validation/selection.json``) into the store."""
    path = folder / "validation" / "selection.json"
    try:
        selection = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    results = {"validation": selection, "config": job.config.to_dict(), "dataset": job.dataset}
    _add(store, job, results, source, folder, written=path)
    return True


def _add(
    store: Store,
    job: Job,
    results: dict[str, Any],
    source: str,
    run_dir: Path | str,
    *,
    written: Path | None = None,
) -> None:
    """Store a job's results (``validate_only``: its validation selection) with where they
    came from; ``written`` is the imported file (its time is the finish time), none for a
    result that just arrived from the executor."""
    finished = _mtime(written) if written is not None else _now()
    version = code_version() if source == "bench" else _import_version(results, finished)
    add = store.add_validation if job.validate_only else store.add_results
    add(
        job.key,
        results,
        label=job.label,
        variant=job.variant,
        source=source,
        run_dir=str(run_dir),
        code_version=version,
        finished=finished,
    )


def job_done(store: Store, job: Job) -> bool:
    """Whether the store holds the job: every seed, or its validation selection."""
    if job.validate_only:
        return store.validation_done(job.key)
    return set(job.config.seeds) <= store.seeds_done(job.key)


def _check_data(jobs: list[Job]) -> None:
    """Refuse to start jobs whose data cannot be there (before any job runs)."""
    from unseen.errors import ConfigError

    for job in jobs:
        data = job.config.data
        name = data.dataset
        if name in ("demo", "toy"):
            continue
        if name.endswith(".npz"):
            if not Path(name).is_file():
                raise ConfigError(f"{job.label} / {name}: the dataset file {name} does not exist")
            continue
        if not data.root or not Path(data.root).is_dir():
            raise ConfigError(
                f"{job.label} / {name}: data root {data.root or '(none)'} is not a folder; set "
                "data_root in the grid file (relative to the file's folder) or pass --data-root"
            )


def _draw_splits(grid: Grid, jobs: list[Job], say: Any) -> None:
    """Draw the alternative class splits the ``jobs`` need (grid ``splits``) with ``unseen
    splits``' function, once per dataset; existing files are used as they are, never
    replaced, and a partial set is refused (its files would not come from one draw)."""
    from unseen.data.splits import write_splits
    from unseen.errors import ConfigError

    for job in jobs:
        if not job.split:
            continue
        files = grid.split_files(job.dataset)
        there = [f.exists() for f in files]
        if all(there):
            continue
        if any(there):
            missing = [str(f) for f, ok in zip(files, there, strict=True) if not ok]
            raise ConfigError(
                f"{job.where}: the split folder {grid.splits['folder']} holds "
                f"some of the {len(files)} split files of seed {grid.splits['seed']} but not "
                f"{', '.join(missing)}; remove the others or give another splits.folder (files "
                "of one draw belong together)"
            )
        data = job.config.data
        written = write_splits(
            data.root,
            job.dataset,
            features=data.features,
            n=grid.splits["n"],
            seed=grid.splits["seed"],
            out=grid.splits["folder"],
        )
        say(f"[bench] {job.dataset}: drew {len(written)} class splits into {grid.splits['folder']}")


def run_grid(
    grid: Grid,
    out: Path,
    store: Store,
    executor: Any | None,
    *,
    echo: bool = True,
) -> GridStatus:
    """Bring the store up to date with ``grid``; ``executor=None`` runs nothing (report only)."""

    def say(msg: str) -> None:
        if echo:
            print(msg, flush=True)

    status = GridStatus()
    jobs_dir = out / "jobs"
    index = find_run_folders([*grid.import_dirs, jobs_dir])
    todo: list[Job] = []
    for job in grid.jobs:
        seeds = job.config.seeds
        if job_done(store, job):
            status.stored.append(job.label)
            continue
        own = jobs_dir / job.slug
        done = False
        for folder in index.get(job.key, []):
            source = "bench" if folder.resolve() == own.resolve() else "import"
            if _import(store, job, folder, seeds, source):
                say(f"[bench] {job.where}: imported {folder}")
                (status.ran if source == "bench" else status.imported).append(job.label)
                done = True
                break
        if done:
            continue
        if job.import_only or executor is None:
            status.missing.append(job.label)
            say(f"[bench] {job.where}: no finished run (not run here)")
            continue
        todo.append(job)
    if todo and executor is not None:
        _check_data(todo)
        _draw_splits(grid, todo, say)
        say(f"[bench] running {len(todo)} job(s) on the {executor.name} executor")
        from unseen.methods.base import loaded_plugins

        plugins = loaded_plugins()  # worker processes import them again (spawn, Ray)
        specs = [
            {
                "config": j.config.to_dict(),
                "out": str(jobs_dir / j.slug),
                "label": j.label,
                "plugins": plugins,
                "runner": j.runner,
                "validate_only": j.validate_only,
            }
            for j in todo
        ]
        for i, result in executor.map(specs):
            job = todo[i]
            if isinstance(result, BaseException):
                status.failed.append(f"{job.label}: {type(result).__name__}: {result}")
                say(f"[bench] {job.where}: FAILED: {result}")
                continue
            _add(store, job, json.loads(json.dumps(result)), "bench", specs[i]["out"])
            status.ran.append(job.label)
            if job.validate_only:
                h = result["validation"]["choice"]["validation"]["h_cal_best"]
                say(f"[bench] {job.where}: done (validation H_cal {h:.1f})")
            else:
                h = result["summary"]["h"]["mean"]
                say(f"[bench] {job.where}: done (H {h:.1f})")
    return status
