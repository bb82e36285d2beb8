"""unseen sweep on the tiny synthetic problem: validation only during the search, the best
retrained and tested once, trials stored and not rerun, TPE through Optuna."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from unseen.bench.executors import LocalExecutor
from unseen.bench.store import Store
from unseen.bench.sweep import load_sweep, parse_sweep, run_sweep
from unseen.errors import ConfigError

TINY = Path(__file__).resolve().parents[1] / "configs" / "bench" / "sweeps" / "tiny.yaml"


class Counting(LocalExecutor):
    def __init__(self) -> None:
        super().__init__(workers=1)
        self.seen: list[dict] = []

    def map(self, specs):
        self.seen += specs
        yield from super().map(specs)


def test_grid_sweep_searches_on_validation_and_tests_only_the_best(tmp_path):
    sw = load_sweep(TINY)
    ex = Counting()
    with Store(tmp_path / "s.sqlite") as store:
        summary = run_sweep(sw, tmp_path, store, ex, echo=False)
        trials = store.trials(sw.name)
        assert len(trials) == 4 and all(t["state"] == "complete" for t in trials)
        assert all(s["validate_only"] for s in ex.seen)  # the search never reaches test
        best = max(trials, key=lambda t: (t["value"], -t["number"]))
        assert summary["best_trial"] == best["number"]
        assert summary["best_params"] == best["params"]
        # only the best trial's folder holds test results; the others stop at validation
        for t in trials:
            folder = tmp_path / "trials" / f"{t['number']:04d}"
            assert (folder / "results.json").exists() == (t["number"] == best["number"])
        results = json.loads((Path(summary["run_dir"]) / "results.json").read_text())
        assert results["validation"]["choice"]["validation"]["h_cal_best"] == pytest.approx(
            best["value"]
        )
        rows = store.rows()
        assert len(rows) == 2 and {r["seed"] for r in rows} == {0, 1}
        # a rerun tells the stored trials again and runs no new trial
        ex2 = Counting()
        run_sweep(sw, tmp_path, store, ex2, echo=False)
        assert ex2.seen == []
    best_yaml = (tmp_path / "best.yaml").read_text()
    assert "VALIDATION" in best_yaml and "Command:" in best_yaml
    assert yaml.safe_load(best_yaml)["method"] == {
        k.split(".", 1)[1]: v for k, v in best["params"].items()
    }


def test_a_failed_trial_is_stored_as_failed_with_its_error_and_the_search_goes_on(tmp_path):
    class FirstFails(LocalExecutor):
        def map(self, specs):
            for i, result in super().map(specs):
                yield i, RuntimeError("boom") if specs[i]["label"] == "trial 0" else result

    sw = load_sweep(TINY)
    with Store(tmp_path / "s.sqlite") as store:
        summary = run_sweep(sw, tmp_path, store, FirstFails(workers=1), echo=False)
        trials = store.trials(sw.name)
    assert [t["state"] for t in trials] == ["failed", "complete", "complete", "complete"]
    assert trials[0]["value"] is None
    assert trials[0]["validation"] == {"error": "RuntimeError: boom"}
    assert summary["best_trial"] != 0 and all(t["value"] is not None for t in trials[1:])


def test_tpe_sweep_runs_the_asked_number_of_trials_in_the_space(tmp_path):
    pytest.importorskip("optuna", reason="Optuna is not installed (pip install 'unseen[sweep]')")
    raw = yaml.safe_load(TINY.read_text())
    raw.update(
        sampler="tpe",
        trials=3,
        space={"method.cls_weight": {"log": [0.001, 1.0]}, "classifier.lr": {"choices": [1e-3]}},
    )
    sw = parse_sweep(raw)
    with Store(tmp_path / "s.sqlite") as store:
        run_sweep(sw, tmp_path, store, LocalExecutor(workers=1), jobs=2, echo=False)
        trials = store.trials(sw.name)
    assert len(trials) == 3
    assert all(0.001 <= t["params"]["method.cls_weight"] <= 1.0 for t in trials)


@pytest.mark.parametrize(
    "change",
    [
        {"space": {}},
        {"space": {"method.lr": {"between": [1, 2]}}},
        {"space": {"method.lr": {"log": [0.0, 1.0]}}},
        {"space": {"method.no_such_key": {"choices": [1]}}},
        {"sampler": "random"},
        {"sampler": "grid", "space": {"method.lr": {"float": [1e-4, 1e-3]}}},
        {"colour": "red"},
    ],
)
def test_bad_sweep_files_are_refused(change):
    raw = yaml.safe_load(TINY.read_text())
    raw.update(change)
    with pytest.raises(ConfigError):
        parse_sweep(raw)


def test_sweep_paths_come_from_its_folder_and_grid_trials_are_noted(tmp_path, monkeypatch):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "base.yaml").write_text("method: {hidden_g: 48}\n")
    raw = yaml.safe_load(TINY.read_text())
    raw["config"] = "base.yaml"  # beside the sweep file
    (tmp_path / "s" / "sweep.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    sw = load_sweep("s/sweep.yaml")
    assert sw.config == str(tmp_path / "s" / "base.yaml")
    assert (
        sw.config_for({"method.cls_weight": 0.1, "method.lr": 1e-3}).method_params["hidden_g"] == 32
    )  # the file's `set` wins over its config file, as in unseen run
    assert any("ignored by the grid sampler" in n for n in sw.notes)  # tiny.yaml has trials: 3
    raw["config"] = "missing.yaml"
    (tmp_path / "s" / "sweep.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"missing\.yaml does not exist"):
        load_sweep("s/sweep.yaml")
