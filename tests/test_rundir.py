"""Run folders: the manifest and --force, the lock, failed starts, added seeds, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

import unseen.runner as runner_mod
from tinydata import tiny_dataset
from unseen.config import resolve_run_config
from unseen.errors import OutputExistsError
from unseen.methods.base import GenerativeMethod
from unseen.rundir import Manifest, RunLock
from unseen.runner import run

TINY = {
    "method": {"epochs": 2, "batch_size": 16, "hidden": 8},
    "classifier": {"epochs": 2, "batch_size": 32},
    "selection": {"eval_every": 2, "n_synthetic": [5], "classifier_epochs": [], "health": False},
}
DATA = tiny_dataset(n_per_class=10)


def _run(out, seeds=(0,), overrides=None, **kw):
    over = json.loads(json.dumps(TINY))
    for section, values in (overrides or {}).items():
        over[section].update(values)
    cfg = resolve_run_config("meanreg", "tiny", overrides=over, seeds=list(seeds))
    return run(cfg, out, echo=False, dataset=DATA, **kw)


def _files(root):
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_force_removes_only_what_unseen_wrote(tmp_path):
    from unseen.plot.style import new_figure, save_figure

    out = tmp_path / "r"
    _run(out)
    save_figure(new_figure(2, 2), out / "figures" / "bars")  # unseen plot's, recorded
    (out / "seed_analysis.ipynb").write_text("{}")  # the user's, beside seed_0/
    (out / "seed_0" / "notes.txt").write_text("mine")  # the user's, inside seed_0/
    (out / "figures" / "mine.png").write_bytes(b"png")
    assert "figures/bars.png" in Manifest.read(out).files
    _run(out, force=True)
    files = _files(out)
    assert {"seed_analysis.ipynb", "seed_0/notes.txt", "figures/mine.png"} <= files
    assert "figures/bars.png" not in files and "figures/bars.svg" not in files  # stale, gone
    assert (out / "results.json").exists() and (out / "seed_0" / "model.pt").exists()


def test_force_in_a_folder_from_before_manifests(tmp_path):
    out = tmp_path / "r"
    _run(out)
    (out / "manifest.json").unlink()  # as written by an older unseen
    (out / "seed_analysis.ipynb").write_text("{}")
    (out / "seed_notes").mkdir()
    (out / "seed_notes" / "a.txt").write_text("mine")
    _run(out, force=True)
    assert (out / "seed_analysis.ipynb").read_text() == "{}"
    assert (out / "seed_notes" / "a.txt").read_text() == "mine"
    assert (out / "results.json").exists()


def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "run.yaml").write_text("method: meanreg\n")  # a run that is starting elsewhere
    lock = RunLock(out)
    lock.acquire()
    try:
        with pytest.raises(OutputExistsError, match=r"another unseen run .*pid \d+"):
            _run(out)
    finally:
        lock.release()
    assert not (out / "log.txt").exists()
    _run(out)  # the lock is gone with its holder
    assert not (out / "run.lock").exists()


def test_a_failed_start_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    def broken(self, data, **kw):
        raise RuntimeError("no memory for the first epoch")

    monkeypatch.setattr(GenerativeMethod, "fit", broken)
    with pytest.raises(RuntimeError):
        _run(tmp_path / "new")
    assert not (tmp_path / "new").exists()  # created by the run: removed again
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError):
        _run(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    monkeypatch.undo()
    _run(tmp_path / "new")  # the corrected command needs no --force
    assert (tmp_path / "new" / "results.json").exists()


def test_unfinished_run_without_progress_is_replaced_with_progress_refused(tmp_path, monkeypatch):
    out = tmp_path / "r"

    class Killed(Exception):
        pass

    def killed(*a, **kw):
        raise Killed

    monkeypatch.setattr(runner_mod, "train_and_evaluate", killed)
    with pytest.raises(Killed):
        _run(out)  # validation trained and was killed: progress was made, kept for resume
    assert (out / "validation" / "checkpoint.pt").exists()
    monkeypatch.undo()
    with pytest.raises(OutputExistsError, match=r"method_params.hidden 8 -> 12"):
        _run(out, overrides={"method": {"hidden": 12}})
    (out / "validation" / "checkpoint.pt").unlink()
    (out / "validation" / "model.pt").unlink(missing_ok=True)
    _run(out, overrides={"method": {"hidden": 12}})  # no progress left: replaced, no --force
    assert json.loads((out / "results.json").read_text())["config"]["method_params"]["hidden"] == 12


def test_seeds_are_added_to_a_finished_run_without_redoing_validation(tmp_path, monkeypatch):
    out = tmp_path / "r"
    first = _run(out, seeds=(0,))
    seed0 = (out / "seed_0" / "metrics.json").read_text()

    def no_validation(*a, **kw):
        raise AssertionError("validation must be reused")

    monkeypatch.setattr(runner_mod, "select_on_validation", no_validation)
    both = _run(out, seeds=(0, 1))
    assert sorted(both["seeds"]) == ["0", "1"]
    assert (out / "seed_0" / "metrics.json").read_text() == seed0
    assert both["validation"]["choice"] == first["validation"]["choice"]
    monkeypatch.undo()
    reference = _run(tmp_path / "fresh", seeds=(0, 1))
    assert both["summary"] == reference["summary"]
    with pytest.raises(OutputExistsError, match="already holds finished results"):
        _run(out, seeds=(0, 1))
    with pytest.raises(OutputExistsError, match="another config"):
        _run(out, seeds=(1, 0, 2))  # another validation seed: another run


def test_checkpoints_go_after_success_unless_kept(tmp_path):
    _run(tmp_path / "a", seeds=(0, 1))
    files = _files(tmp_path / "a")
    assert not [f for f in files if f.endswith("checkpoint.pt")]
    assert {"validation/model.pt", "seed_0/model.pt", "seed_1/model.pt"} <= files
    state = torch.load(tmp_path / "a" / "seed_0" / "model.pt", weights_only=True)
    assert "optimizers" not in state  # weights only: a third of a checkpoint with Adam
    assert GenerativeMethod.load(tmp_path / "a" / "seed_0" / "model.pt").epoch_ >= 1
    _run(tmp_path / "b", keep_checkpoints=True)
    kept = _files(tmp_path / "b")
    assert {"validation/checkpoint.pt", "seed_0/checkpoint.pt"} <= kept


def test_validate_only_then_full_run_reuses_the_choice(tmp_path, monkeypatch):
    out = tmp_path / "r"
    _run(out, validate_only=True)
    assert (out / "validation" / "selection.json").exists()
    assert not (out / "validation" / "checkpoint.pt").exists()
    assert (out / "validation" / "model.pt").exists()  # what `unseen diagnose` reads
    monkeypatch.setattr(runner_mod, "select_on_validation", None)  # would fail if called
    _run(out)
    assert (out / "results.json").exists()


def test_a_start_killed_before_run_yaml_is_still_ours(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    Manifest(out).add("run.yaml", "log.txt")  # what a kill right after the manifest leaves
    (out / "run.lock").write_text("pid 1 on gone\n")
    _run(out)
    assert (out / "results.json").exists()
