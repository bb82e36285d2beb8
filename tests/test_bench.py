"""The bench harness on the tiny synthetic grid: config keys, grid expansion, the store,
skip / import / resume, and the report."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from unseen.bench.executors import LocalExecutor
from unseen.bench.grid import config_key, expand, load_grid
from unseen.bench.harness import run_grid
from unseen.bench.report import write_report
from unseen.bench.store import Store
from unseen.config import resolve_run_config
from unseen.errors import ConfigError
from unseen.runner import run

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "bench" / "tiny.yaml"


class NoRun:
    """An executor that fails the test if anything is handed to it."""

    name = "none"

    def map(self, specs):
        raise AssertionError(f"nothing should run, got {[s['label'] for s in specs]}")


def _tiny(**changes) -> dict:
    raw = yaml.safe_load(TINY.read_text())
    raw.update(changes)
    return raw


def test_config_key_ignores_root_and_spelling_but_not_values():
    a = resolve_run_config("clswgan", "demo", overrides={"method": {"epochs": 3}}).to_dict()
    b = json.loads(json.dumps(a))
    b["data"]["root"] = "/somewhere/else"
    b["method_params"] = {}  # defaults written out or left implicit: the same run
    b["method_params"]["epochs"] = 3
    assert config_key(a) == config_key(b)
    older = json.loads(json.dumps(a))
    del older["classifier"]["seen_top_up"]  # a run.yaml written before the key existed
    assert config_key(older) == config_key(a)
    c = json.loads(json.dumps(a))
    c["method_params"]["epochs"] = 4
    assert config_key(c) != config_key(a)
    d = json.loads(json.dumps(a))
    d["seeds"] = [5, 0]  # another validation seed -> another selection -> another run
    assert config_key(d) != config_key(a)
    d["seeds"] = [0, 7]  # same validation seed, other test seeds: same key (rows per seed)
    assert config_key(d) == config_key(a)


def test_grid_expands_entries_datasets_and_variants():
    grid = load_grid(TINY)
    assert [j.label for j in grid.jobs] == ["f-CLSWGAN cls0.1", "f-CLSWGAN cls0.01", "CVAE"]
    assert all(j.config.seeds == [0, 1] for j in grid.jobs)
    assert grid.jobs[0].config.method_params["cls_weight"] == 0.1
    assert grid.jobs[0].config.method_params["hidden_g"] == 32  # entry set + variant set
    assert len({j.key for j in grid.jobs}) == 3
    # adding a method is one entry
    raw = _tiny()
    raw["entries"].append({"method": "izf"})
    assert [j.method for j in expand(raw).jobs][-1] == "izf"
    raw["entries"].append({"method": "no-such-method", "label": "X"})
    with pytest.raises(ConfigError, match=r"no-such-method.*--plugin"):
        expand(raw)  # never silently skipped


@pytest.mark.parametrize(
    "bad",
    [
        {"entries": []},
        {"colour": "red"},
        {"entries": [{"method": "clswgan", "sett": {}}]},
        {"entries": [{"method": "clswgan", "set": {"method.no_such_key": 1}}]},
        {"entries": [{"method": "clswgan"}, {"method": "clswgan", "label": "again"}]},
    ],
)
def test_bad_grids_are_refused_with_a_config_error(bad):
    with pytest.raises(ConfigError):
        expand(_tiny(**bad))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The tiny grid run once by the local executor (2 worker processes) into a folder."""
    out = tmp_path_factory.mktemp("bench")
    grid = load_grid(TINY)
    with Store(out / "results.sqlite") as store:
        status = run_grid(grid, out, store, LocalExecutor(workers=2), echo=False)
    return out, grid, status


def test_grid_runs_and_stores_one_row_per_job_and_seed(ran):
    out, grid, status = ran
    assert sorted(status.ran) == sorted(j.label for j in grid.jobs) and not status.failed
    db = sqlite3.connect(out / "results.sqlite")  # queryable by anyone, no unseen needed
    rows = db.execute("SELECT key, seed, source, h, t1, code_version FROM runs").fetchall()
    assert len(rows) == len(grid.jobs) * 2
    assert {(r[0], r[1]) for r in rows} == {(j.key, s) for j in grid.jobs for s in (0, 1)}
    assert all(r[2] == "bench" and r[5].startswith("unseen ") for r in rows)
    # each row's metrics are the seed's metrics of the runner's results.json
    for job in grid.jobs:
        results = json.loads((out / "jobs" / job.slug / "results.json").read_text())
        for seed in (0, 1):
            t1 = db.execute(
                "SELECT t1 FROM runs WHERE key = ? AND seed = ?", (job.key, seed)
            ).fetchone()[0]
            assert t1 == results["seeds"][str(seed)]["result"]["t1"]


def test_rerunning_a_grid_runs_nothing(ran):
    out, grid, _ = ran
    with Store(out / "results.sqlite") as store:
        status = run_grid(grid, out, store, NoRun(), echo=False)
    assert len(status.stored) == len(grid.jobs) and not status.ran


def test_a_grid_killed_after_a_job_finished_picks_the_job_up_without_rerunning(ran, tmp_path):
    out, grid, _ = ran
    # A fresh store (as if the grid died before storing anything) beside the finished jobs.
    with Store(tmp_path / "fresh.sqlite") as store:
        status = run_grid(grid, out, store, NoRun(), echo=False)
        assert sorted(status.ran) == sorted(j.label for j in grid.jobs)
        assert {r["source"] for r in store.rows()} == {"bench"}


def test_finished_runner_folders_with_the_same_config_are_imported(ran, tmp_path):
    _, grid, _ = ran
    job = grid.jobs[2]
    hand = tmp_path / "by-hand" / "cvae-demo"
    run(job.config, hand, echo=False)  # what a user would do with `unseen run`
    raw = _tiny(**{"import": [str(tmp_path / "by-hand")]})
    grid2 = expand(raw)
    with Store(tmp_path / "s.sqlite") as store:
        status = run_grid(grid2, tmp_path / "bench2", store, None, echo=False)
        assert status.imported == ["CVAE"]
        assert sorted(status.missing) == ["f-CLSWGAN cls0.01", "f-CLSWGAN cls0.1"]
        rows = store.rows([job.key])
        assert [r["source"] for r in rows] == ["import", "import"]
        assert rows[0]["run_dir"] == str(hand)
        # another config (one value changed) is not taken for the same run
        raw["entries"][1]["set"]["method.hidden"] = 16
        status = run_grid(expand(raw), tmp_path / "bench2", store, None, echo=False)
        assert "CVAE" in status.missing


def test_import_only_entries_are_never_run(tmp_path):
    raw = _tiny()
    raw["entries"] = [{**raw["entries"][1], "import_only": True}]
    with Store(tmp_path / "s.sqlite") as store:
        status = run_grid(expand(raw), tmp_path, store, NoRun(), echo=False)
    assert status.missing == ["CVAE"]


def test_report_has_every_row_beside_paper_numbers_and_provenance(ran, tmp_path):
    out, _, _ = ran
    papers = tmp_path / "papers.yaml"
    papers.write_text("f-CLSWGAN: {demo: {u: 12.3, s: 45.6, h: 78.9, t1: 32.1}}\n")
    raw = _tiny(
        papers=str(papers),
        features_note={"demo": "SYNTHETIC features, not comparable"},
    )
    for entry in raw["entries"][:1]:
        entry["paper"] = "f-CLSWGAN"
    grid = expand(raw)
    with Store(out / "results.sqlite") as store:
        report = write_report(grid, store, tmp_path / "rep").read_text()
    with Store(out / "results.sqlite") as store:
        choices = {j.key: json.loads(store.rows([j.key])[0]["validation"]) for j in grid.jobs}
    for job in grid.jobs:
        # ‡: validation chose the last epoch it scored (unseen.selection.budget_end)
        mark = " ‡" if "budget_end" in choices[job.key] else ""
        assert f"| {job.label}{mark} | 2 |" in report
    marked = [j.label for j in grid.jobs if "budget_end" in choices[j.key]]
    assert ("‡ Validation chose the last generator epoch" in report) == bool(marked)
    for label in marked:
        assert f"{label} (epoch " in report
    assert "12.3 / 45.6 / 78.9" in report and "32.1" in report
    assert "**SYNTHETIC features, not comparable**" in report
    assert "**SYNTHETIC features: a smoke test of the code, not benchmark results.**" in report
    assert str(out / "jobs") in report or "jobs/" in report
    # the generator-health table: one line per row, its numbers those of the stored choice
    with Store(out / "results.sqlite") as store:
        first = store.rows([grid.jobs[0].key])[0]
    health = json.loads(first["validation"])["health"]["unseen"]
    line = next(x for x in report.splitlines() if x.startswith(f"| {grid.jobs[0].label} | "))
    assert f"| {health['synthetic_only_t1']:.1f} ({health['chance']:.1f}) |" in report
    assert line and report.count("real-vs-synthetic probe") == 1
    with open(tmp_path / "rep" / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == len(grid.jobs)
    with open(tmp_path / "rep" / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 2 * len(grid.jobs)
    assert (tmp_path / "rep" / "h_demo.png").stat().st_size > 0


def test_bench_command_end_to_end(ran, capsys):
    from unseen.cli import main

    out, grid, _ = ran
    assert main(["bench", str(TINY), "--out", str(out), "--list"]) == 0
    assert capsys.readouterr().out.count("stored") == len(grid.jobs)
    assert main(["bench", str(TINY), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{len(grid.jobs)} already stored" in text and (out / "report.md").exists()
    assert main(["bench", str(TINY) + ".missing", "--out", str(out)]) == 2


# ---------------------------------------------------------------------- paths of a grid file
def _project(tmp_path: Path) -> Path:
    """A project with its own configs/ tree: a grid naming paths from the project root (like
    the shipped ones) and from its own folder."""
    proj = tmp_path / "proj"
    (proj / "configs" / "bench").mkdir(parents=True)
    (proj / "configs" / "cvae").mkdir()
    (proj / "configs" / "cvae" / "small.yaml").write_text("method: {hidden: 16}\n")
    (proj / "configs" / "bench" / "local.yaml").write_text("method: {hidden: 24}\n")
    (proj / "configs" / "bench" / "papers.yaml").write_text("{}\n")
    raw = _tiny(
        name="proj",
        papers="papers.yaml",
        entries=[
            {"label": "root-relative", "method": "cvae", "config": "configs/cvae/small.yaml"},
            {"label": "file-relative", "method": "cvae", "config": "local.yaml"},
        ],
    )
    (proj / "configs" / "bench" / "g.yaml").write_text(yaml.safe_dump(raw))
    return proj / "configs" / "bench" / "g.yaml"


def test_grid_paths_are_taken_from_the_grid_file_not_the_current_folder(tmp_path, monkeypatch):
    grid_file = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (elsewhere, grid_file.parent, tmp_path / "proj"):
        monkeypatch.chdir(cwd)
        grid = load_grid(grid_file.relative_to(tmp_path) if cwd == tmp_path else grid_file)
        assert [j.config.method_params["hidden"] for j in grid.jobs] == [16, 24]
        assert grid.papers == grid_file.parent / "papers.yaml"


def test_grid_from_another_folder_runs_and_reports(tmp_path, monkeypatch, capsys):
    from unseen.cli import main

    grid_file = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "b"
    assert main(["bench", str(grid_file), "--out", str(out), "--list"]) == 0
    assert capsys.readouterr().out.count("to run") == 2
    raw = yaml.safe_load(grid_file.read_text())
    raw["entries"][1]["config"] = "nowhere.yaml"
    grid_file.write_text(yaml.safe_dump(raw))
    assert main(["bench", str(grid_file), "--out", str(out), "--list"]) == 2
    err = capsys.readouterr().err
    assert "nowhere.yaml does not exist" in err and str(grid_file.parent) in err


def test_shipped_grid_lists_every_row_from_anywhere(tmp_path, monkeypatch, capsys):
    from unseen.cli import main

    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load((ROOT / "configs" / "bench" / "report.yaml").read_text())
    rows = sum(
        len(e.get("variants") or [""]) * len(e.get("datasets") or raw["datasets"])
        for e in raw["entries"]
    )
    grid = load_grid("configs/bench/report.yaml")  # the README's command, from another folder
    assert len(grid.jobs) == rows and rows >= 26 and not grid.skipped
    shared = (ROOT / "../shared/data/xlsa17").resolve()
    if shared.is_dir():  # the grid's ../shared/data/xlsa17 is the project root's
        assert Path(grid.jobs[0].config.data.root).resolve() == shared
    assert grid.import_dirs == [ROOT / "runs"]
    assert main(["bench", "configs/bench/report.yaml", "--list", "--out", "b"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == rows


def test_grid_data_root_override_and_missing_root(tmp_path, capsys):
    from unseen.cli import main

    raw = _tiny(datasets=["FLO"], data_root="no/such/root")
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(raw))
    grid = load_grid(tmp_path / "g.yaml", data_root="/elsewhere")
    assert {j.config.data.root for j in grid.jobs} == {"/elsewhere"}
    code = main(["bench", str(tmp_path / "g.yaml"), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "no/such/root is not a folder" in err and "--data-root" in err


def test_runs_name_the_commit_of_the_code_they_ran(tmp_path, monkeypatch):
    """code_version() names the checkout of the package's source, not the current folder's;
    an imported run's row shows the version its results.json recorded."""
    import subprocess

    from unseen.bench.harness import _import_version
    from unseen.rundir import code_version

    monkeypatch.chdir(tmp_path)  # not a git checkout
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if head:  # a git checkout (not an installed copy)
        assert code_version().split(" git ")[1].removesuffix("+dirty") == head
    recorded = {"unseen_version": "0.1.0", "code_version": "unseen 0.1.0 git abc1234"}
    assert _import_version(recorded, "2026-01-01T00:00:00+00:00") == "unseen 0.1.0 git abc1234"
    assert _import_version({"unseen_version": "0.1.0"}, "2026-01-01").startswith("unseen 0.1.0")


def test_a_validation_only_folder_is_not_importable_for_a_test_job(tmp_path):
    """`bench --list` says importable only when a folder holds every seed the job needs."""
    from unseen.bench.harness import importable

    job = expand(_tiny()).jobs[0]
    folder = tmp_path / "run"
    (folder / "validation").mkdir(parents=True)
    (folder / "run.yaml").write_text("method: x\n")
    (folder / "validation" / "selection.json").write_text("{}")
    assert not importable(job, [folder])
    seeds = {str(s): {} for s in job.config.seeds}
    (folder / "results.json").write_text(json.dumps({"seeds": dict(list(seeds.items())[:-1])}))
    assert not importable(job, [folder])  # one seed short
    (folder / "results.json").write_text(json.dumps({"seeds": seeds}))
    assert importable(job, [folder])


def test_budget_end_marker_from_the_choice_or_an_older_runs_records(tmp_path):
    from unseen.bench.report import _budget_end_lines, _budget_end_of

    end = {"epoch": 10, "previous_epoch": 5, "score": 45.0, "previous_score": 40.0}
    assert _budget_end_of({"validation": json.dumps({"budget_end": end})}) == end
    # a run made before the choice recorded it: computed from its validation records
    (tmp_path / "validation").mkdir()
    records = [
        {"epoch": 5, "h": 0.0, "extra": {"h_at_best_gamma": 40.0}},
        {"epoch": 10, "h": 0.0, "extra": {"h_at_best_gamma": 45.0}},
    ]
    (tmp_path / "validation" / "records.json").write_text(json.dumps(records))
    old = {"validation": json.dumps({"criterion": "h_cal"}), "run_dir": str(tmp_path)}
    assert _budget_end_of(old) == end
    records[1]["extra"]["h_at_best_gamma"] = 39.0  # the peak was earlier: no marker
    (tmp_path / "validation" / "records.json").write_text(json.dumps(records))
    assert _budget_end_of(old) is None
    assert _budget_end_of({"validation": None, "run_dir": str(tmp_path / "gone")}) is None
    lines = _budget_end_lines([{"label": "A", "budget_end": end}, {"label": "B"}])
    assert "A (epoch 10: 40.0 at epoch 5 -> 45.0)" in lines[-1] and "B (" not in lines[-1]
    assert _budget_end_lines([{"label": "B", "budget_end": None}]) == []
