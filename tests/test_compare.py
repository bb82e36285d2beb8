"""Per-class accuracies in every seed's metrics.json, and ``unseen compare A B``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinydata import tiny_dataset
from unseen.cli import main
from unseen.config import resolve_run_config
from unseen.errors import DataError
from unseen.eval.compare import compare_runs
from unseen.runner import run

DATA = tiny_dataset(n_per_class=12)


def _run(out, noise: float, seeds=(0, 1)):
    over = {
        "method": {"epochs": 2, "batch_size": 16, "hidden": 8, "noise": noise},
        "classifier": {"epochs": 3, "batch_size": 32},
        "selection": {"eval_every": 2, "n_synthetic": [10], "health": False},
    }
    cfg = resolve_run_config("meanreg", "tiny", overrides=over, seeds=list(seeds))
    return run(cfg, out, echo=False, dataset=DATA)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    return root, _run(root / "a", 0.1), _run(root / "b", 2.0)


def test_metrics_json_holds_per_class_accuracies_that_average_to_the_metrics(two_runs):
    root, _a, _ = two_runs
    entry = json.loads((root / "a" / "seed_0" / "metrics.json").read_text())
    result = entry["result"]
    pc = result["extra"]["per_class"]
    assert set(pc) == {"names", "t1", "s", "u", "s_cal", "u_cal"}
    assert pc["names"]["6"] == "c6"
    assert set(pc["u"]) == {"6", "7"} and set(pc["s"]) == {str(c) for c in range(6)}
    for key in ("t1", "s", "u", "s_cal", "u_cal"):
        assert np.mean(list(pc[key].values())) == pytest.approx(result[key], abs=1e-3)


def test_paired_comparison(two_runs):
    _root, a, b = two_runs
    comp = compare_runs(a, b)
    assert set(comp) == {"t1", "s", "u", "s_cal", "u_cal"}
    u = comp["u"]
    assert u.seeds == [0, 1] and u.classes == ["c6", "c7"]
    per_seed_mean = np.mean([b["seeds"][s]["result"]["u"] - a["seeds"][s]["result"]["u"]
                             for s in ("0", "1")])  # fmt: skip
    assert u.mean == pytest.approx(per_seed_mean, abs=1e-3)  # class-mean of the differences
    assert u.p_value is None  # 2 classes: no test
    assert sum(u.counts()) == 2
    same = compare_runs(a, a)["s"]
    assert same.mean == 0 and same.counts() == (0, 0, 6)


def test_compare_refuses_unpairable_runs(two_runs, tmp_path):
    _root, a, b = two_runs
    other = json.loads(json.dumps(b))
    other["dataset"] = "FLO"
    with pytest.raises(DataError, match="same test images"):
        compare_runs(a, other)
    other = json.loads(json.dumps(b))
    other["seeds"] = {"5": other["seeds"]["0"]}
    with pytest.raises(DataError, match="share no seed"):
        compare_runs(a, other)
    old = json.loads(json.dumps(b))
    del old["seeds"]["0"]["result"]["extra"]["per_class"]
    with pytest.raises(DataError, match="no per-class accuracies"):
        compare_runs(a, old)


def test_compare_command(two_runs, capsys, tmp_path):
    root, _, _ = two_runs
    out = tmp_path / "cmp.json"
    assert main(["compare", str(root / "a"), str(root / "b"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "GZSL U (unseen classes): mean difference" in text and "Wilcoxon" in text
    saved = json.loads(out.read_text())
    assert set(saved["metrics"]["u"]["per_class"]) == {"c6", "c7"}
    assert main(["compare", str(root / "a"), str(tmp_path)]) == 2
    assert "no run.yaml" in capsys.readouterr().err
