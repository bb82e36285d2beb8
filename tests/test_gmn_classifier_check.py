"""benchmarks/gmn_classifier_check.py: its `synthetic` mode reproduces the runner's validation
records exactly (same task, same synthetic features, same classifier), on the toy data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from test_gmn_studies import TINY_SETS
from unseen.config import parse_set, resolve_run_config
from unseen.runner import run

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
# test_gmn_studies' tiny GMN sizes, with a longer classifier schedule to choose from
# (later --set values win).
TINY = [
    *TINY_SETS,
    "classifier.epochs=3",
    "selection.eval_every=2",
    "selection.classifier_epochs=[2,3]",
]


@pytest.fixture
def check(monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(BENCH))
    threads = torch.get_num_threads()
    import gmn_classifier_check

    yield gmn_classifier_check
    torch.set_num_threads(threads)
    sys.modules.pop("gmn_classifier_check", None)


def test_parse_setting_overrides_defaults(check):
    kind, params = check.parse_setting('bilinear:lr=0.3,bias="class",epochs=5')
    assert kind == "bilinear" and params["lr"] == 0.3 and params["bias"] == "class"
    assert params["momentum"] == check.DEFAULTS["bilinear"]["momentum"]  # kept


def test_synthetic_mode_reproduces_the_runner_records(check, tmp_path):
    cfg = resolve_run_config("gmn", "toy", overrides=parse_set(TINY), seeds=[0])
    out = tmp_path / "run"
    run(cfg, out, validate_only=True, echo=False)
    records = json.loads((out / "validation" / "records.json").read_text())
    last = [r for r in records if r["epoch"] == 2 and r["n_synthetic"] == 10]
    assert {r["classifier_epochs"] for r in last} == {2, 3}
    rows = check.main(
        [
            "synthetic",
            str(out),
            "--n-synthetic",
            "10",
            "0",
            "--epochs",
            "2",
            "3",
            "--",
            "bilinear",
            "bilinear:lr=0.5",
        ]
    )
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
