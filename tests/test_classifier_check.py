"""`unseen classifier-check`: on a run's validation generator it reproduces the runner's
validation records exactly (same task, same synthetic features, same classifier); with
--seen-only it trains on real pseudo-seen features alone. On the toy data."""

from __future__ import annotations

import json

import pytest

from test_studies import TINY
from unseen.cli import main
from unseen.commands.classifier_check import parse_setting
from unseen.config import ClassifierConfig, resolve_run_config
from unseen.runner import run

# test_studies' tiny GMN sizes, with a longer classifier schedule to choose from.
OVERRIDES = {
    **TINY["gmn"],
    "classifier": {**TINY["gmn"]["classifier"], "epochs": 3},
    "selection": {**TINY["gmn"]["selection"], "eval_every": 2, "classifier_epochs": [2, 3]},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    cfg = resolve_run_config("gmn", "toy", overrides=OVERRIDES, seeds=[0])
    out = tmp_path_factory.mktemp("check") / "run"
    run(cfg, out, validate_only=True, echo=False)
    return out


def _check(run_dir, tmp_path, *args: str) -> list[dict]:
    out = tmp_path / "rows.json"
    assert main(["classifier-check", str(run_dir), *args, "--json", str(out)]) == 0
    return json.loads(out.read_text())["rows"]


def test_parse_setting():
    kind, params = parse_setting('bilinear:lr=0.3,bias="class",epochs=5,bias2=raw')
    assert kind == "bilinear"
    assert params == {"lr": 0.3, "bias": "class", "epochs": 5, "bias2": "raw"}


def test_on_the_generator_it_reproduces_the_runner_records(finished, tmp_path):
    records = json.loads((finished / "validation" / "records.json").read_text())
    last = [r for r in records if r["epoch"] == 2 and r["n_synthetic"] == 10]
    assert {r["classifier_epochs"] for r in last} == {2, 3}
    args = ["bilinear", "bilinear:lr=0.5", "--n-synthetic", "10", "0", "--epochs", "2", "3"]
    rows = _check(finished, tmp_path, *args)
    ours = {
        x["classifier_epochs"]: x
        for x in rows
        if x["setting"] == "bilinear" and x["n_synthetic"] == 10
    }
    for r in last:  # the run's own classifier config: the runner's numbers exactly
        got = ours[r["classifier_epochs"]]
        for key in ("t1", "s", "u", "h", "ausuc"):
            assert got[key] == pytest.approx(r[key]), key
    # n = 0 is the real-only classifier: the pseudo-unseen classes get no training feature
    zero = [x for x in rows if x["n_synthetic"] == 0]
    assert len(zero) == 4 and {x["setting"] for x in zero} == {"bilinear", "bilinear:lr=0.5"}


def test_seen_only_overrides_the_runs_classifier(finished, tmp_path, capsys):
    args = ["--seen-only", 'bilinear:lr=0.5,bias="class"', "softmax", "--epochs", "1", "2"]
    rows = _check(finished, tmp_path, *args, "--set", "data.semantic_transform=l2")
    bilinear = rows[0]["params"]
    assert bilinear["lr"] == 0.5 and bilinear["bias"] == "class" and bilinear["epochs"] == 2
    assert bilinear["batch_size"] == ClassifierConfig().batch_size != 256  # the run's, kept
    assert all(set(r["acc"]) == {"1", "2"} for r in rows)
    assert all(0 <= a <= 100 for r in rows for a in r["acc"].values())
    capsys.readouterr()
    assert main(["classifier-check", str(finished), "softmax", "--set", "data.features=x"]) == 2
    assert "with --seen-only" in capsys.readouterr().err
    assert main(["classifier-check", str(finished), 'bilinear:bias="class"']) == 2
    assert "no classifier config fields" in capsys.readouterr().err
