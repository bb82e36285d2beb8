"""The protocol end to end on a tiny problem: files, determinism, resume after a kill."""

from __future__ import annotations

import json

import pytest

import unseen.runner as runner_mod
from tinydata import tiny_dataset
from unseen.config import resolve_run_config
from unseen.errors import OutputExistsError
from unseen.runner import run

TINY = {
    "method": dict(
        epochs=4, batch_size=16, hidden_g=16, hidden_d=16, critic_steps=2, pretrain_epochs=2
    ),
    "classifier": dict(epochs=4, batch_size=32),
    "selection": dict(eval_every=2, n_synthetic=[5, 10], classifier_epochs=[2, 4]),
}


def _cfg(seeds=(0, 1)):
    return resolve_run_config("clswgan", "tiny", overrides=TINY, seeds=list(seeds))


def _run(out, **kw):
    return run(_cfg(), out, echo=False, dataset=tiny_dataset(n_per_class=12), **kw)


def test_run_writes_results_and_chooses_on_validation(tmp_path):
    rep = _run(tmp_path / "r")
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"run.yaml", "results.json", "log.txt", "validation", "seed_0", "seed_1"} <= files
    assert (tmp_path / "r" / "seed_0" / "model.pt").exists()
    choice = rep["validation"]["choice"]
    assert choice["epochs"] in (2, 4)
    assert choice["n_synthetic"] in (5, 10)
    assert choice["classifier_epochs"] in (2, 4)
    assert choice["gamma"] is not None
    # 2 eval epochs x 2 synthetic counts x 2 classifier epochs were measured on validation.
    assert len(rep["validation"]["records"]) == 8
    assert all(r["split"] == "validation" for r in rep["validation"]["records"])
    summary = rep["summary"]
    assert set(summary) >= {"t1", "s", "u", "h", "s_cal", "u_cal", "h_cal", "ausuc"}
    assert len(summary["h"]["values"]) == 2
    assert rep["synthetic_features"] is True
    on_disk = json.loads((tmp_path / "r" / "results.json").read_text())
    assert on_disk["summary"] == summary
    # chosen at the last scored epoch <=> the choice carries budget_end, and the log says so
    chosen_last = choice["epochs"] == 4
    assert ("budget_end" in choice) == chosen_last
    log = (tmp_path / "r" / "log.txt").read_text()
    assert ("validation chose the last epoch it scored (4;" in log) == chosen_last


def _rec(epoch: int, h_cal: float) -> dict:
    return {"epoch": epoch, "h": 0.0, "extra": {"h_at_best_gamma": h_cal}}


def test_budget_end_by_hand():
    from unseen.selection import budget_end

    # best per epoch: 5 -> 40, 10 -> 45 (the last, above every earlier epoch): at the end
    rising = [_rec(5, 40.0), _rec(5, 38.0), _rec(10, 45.0), _rec(10, 20.0)]
    assert budget_end(rising) == {
        "epoch": 10,
        "previous_epoch": 5,
        "score": 45.0,
        "previous_score": 40.0,
    }
    # a peak before the last epoch, a tie with an earlier epoch (ties go to the earlier), one
    # epoch only, nothing scored: not at the end
    assert budget_end([_rec(5, 30.0), _rec(10, 50.0), _rec(15, 49.0)]) is None
    assert budget_end([_rec(5, 50.0), _rec(10, 40.0), _rec(15, 50.0)]) is None
    assert budget_end([_rec(5, 50.0)]) is None
    assert budget_end([]) is None
    # criterion "h" reads the raw H: the last epoch's H is not above epoch 5's
    raw = [{"epoch": 5, "h": 30.0, "extra": {}}, {"epoch": 10, "h": 20.0, "extra": {}}]
    assert budget_end(raw, "h") is None
    # the epoch before the last is the one reported, not the best earlier one
    three = [_rec(5, 44.0), _rec(10, 42.0), _rec(15, 46.0)]
    assert budget_end(three)["previous_epoch"] == 10
    assert budget_end(three)["previous_score"] == 42.0


def test_same_seed_same_metrics(tmp_path):
    a = _run(tmp_path / "a")["summary"]
    b = _run(tmp_path / "b")["summary"]
    assert a == b


def test_killed_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    reference = _run(tmp_path / "ref")["summary"]
    real = runner_mod.train_and_evaluate
    calls = {"test": 0}

    class Killed(Exception):
        pass

    def dying(task, *a, **kw):
        if task.split == "test":
            calls["test"] += 1
            if calls["test"] == 2:  # die during the second seed's evaluation
                raise Killed
        return real(task, *a, **kw)

    monkeypatch.setattr(runner_mod, "train_and_evaluate", dying)
    with pytest.raises(Killed):
        _run(tmp_path / "k")
    assert (tmp_path / "k" / "seed_0" / "metrics.json").exists()
    assert not (tmp_path / "k" / "results.json").exists()
    monkeypatch.setattr(runner_mod, "train_and_evaluate", real)
    resumed = _run(tmp_path / "k")["summary"]
    assert resumed == reference


def test_finished_results_are_not_overwritten(tmp_path):
    _run(tmp_path / "r")
    before = (tmp_path / "r" / "results.json").read_text()
    with pytest.raises(OutputExistsError, match="--force"):
        _run(tmp_path / "r")
    assert (tmp_path / "r" / "results.json").read_text() == before
    (tmp_path / "r" / "notes.txt").write_text("mine")
    _run(tmp_path / "r", force=True)
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"  # the user's file survives


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "thesis.tex").write_text("precious")
    with pytest.raises(OutputExistsError, match=r"no run\.yaml"):
        _run(tmp_path / "x", force=True)
    assert (tmp_path / "x" / "thesis.tex").read_text() == "precious"


def test_unfinished_run_from_an_older_schema_resumes(tmp_path):
    import yaml

    out = tmp_path / "old"
    _run(out)
    (out / "results.json").unlink()
    old = yaml.safe_load((out / "run.yaml").read_text())
    del old["classifier"]["lr_decay"]  # as written by a version without that key
    (out / "run.yaml").write_text(yaml.safe_dump(old))
    _run(out)  # resumes instead of refusing
    assert (out / "results.json").exists()
