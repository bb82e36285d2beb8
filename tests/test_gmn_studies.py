"""Smoke test of GMN's study commands (Table 2 and Fig. 5) on the built-in toy data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

TINY_SETS = [
    "method.epochs=2",
    "method.hidden_g=[16]",
    "method.hidden_d=[16]",
    "method.noise_dim=4",
    "method.batch_size=64",
    "method.critic_steps=1",
    "classifier.kind=bilinear",
    "classifier.epochs=2",
    "classifier.lr=0.05",
    "classifier.zsl_train=all",
    "selection.eval_every=1",
    "selection.n_synthetic=[5,10]",
]


@pytest.fixture
def bench(monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(BENCH))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # the scripts' --threads sets it process-wide
    for name in ("gmn_table2", "gmn_figures"):
        sys.modules.pop(name, None)


def _sets():
    return [a for s in TINY_SETS for a in ("--set", s)]


def test_table2_rows_and_transductive_mark(bench, tmp_path):
    import gmn_table2

    out = tmp_path / "t2"
    argv = ["--dataset", "toy", *_sets(), "--seeds", "0", "--threads", "1", "--out", str(out)]
    gmn_table2.main([*argv, "--set", "selection.eval_every=2", "--variants", "real-only"])
    gmn_table2.main([*argv, "--set", "selection.eval_every=2", "--variants", "wgan-su+gm"])
    table = (out / "table2.md").read_text()  # rows of both invocations
    assert "Train only with real samples" in table and "(transductive) |" in table
    assert "‡ (per-task counts)" in table
    rows = json.loads((out / "table2.json").read_text())
    assert rows["wgan-su+gm"]["transductive"] and not rows["real-only"]["transductive"]


def test_fig5_records_u_per_epoch(bench, tmp_path):
    pytest.importorskip("matplotlib")
    import gmn_figures

    out = tmp_path / "f5"
    gmn_figures.main(
        ["fig5", "--dataset", "toy", *_sets(), "--variants", "wgan", "gm", "--out", str(out)]
    )
    data = json.loads((out / "fig5.json").read_text())
    assert data["gm"]["epoch"] == [1, 2] and len(data["wgan"]["u"]) == 2
    assert (out / "fig5.png").stat().st_size > 0
