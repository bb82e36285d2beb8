"""The TL-Coupling study commands (Table 2 ablation, Fig. 2 figures) end to end on demo data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_SET = [
    "method.epochs=1",
    "method.batch_size=32",
    "method.hidden_g=8",
    "method.hidden_d=8",
    "method.hidden_i=[8]",
    "method.hidden_d2=8",
    "method.hidden_d3=8",
    "method.critic_steps=1",
    "method.pretrain_epochs=1",
    "classifier.epochs=2",
    "selection.eval_every=1",
    "selection.n_synthetic=[5]",
    "selection.classifier_epochs=[2]",
]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ablation_variants_switch_the_documented_parts():
    v = load("coupling_ablation").VARIANTS
    assert v["S1"] == {"alpha1": 0.0, "alpha2": 0.0, "gamma": 0.0, "coupled_features": False}
    assert v["S2"] == {"gamma": 0.0, "coupled_features": False}
    assert v["S3"] == {"gamma": 0.0, "coupled_features": True}
    assert v["S4"] == {"coupled_features": True}  # gamma from the config (> 0)


def test_ablation_command_runs_every_variant_through_the_protocol(tmp_path, capsys):
    mod = load("coupling_ablation")
    args = ["--dataset", "demo", "--seeds", "0", "--out", str(tmp_path)]
    for s in TINY_SET:
        args += ["--set", s]
    assert mod.main(args) == 0
    table = (tmp_path / "table.md").read_text()
    for name in ("S1", "S2", "S3", "S4"):
        report = json.loads((tmp_path / name / "results.json").read_text())
        assert report["method"] == "tlcoupling"
        assert name in table
    s3 = json.loads((tmp_path / "S3" / "results.json").read_text())
    assert s3["config"]["method_params"]["coupled_features"] is True
    assert s3["config"]["method_params"]["gamma"] == 0.0
    # a second call reuses the finished variants
    assert mod.main(args) == 0
    assert "reusing" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["sweep", "nsyn"])
def test_figure_commands_write_png_and_numbers(tmp_path, kind):
    mod = load("coupling_figures")
    args = [kind, "--dataset", "demo", "--out", str(tmp_path)]
    for s in TINY_SET:
        args += ["--set", s]
    if kind == "sweep":
        args += ["--param", "gamma", "--values", "0", "1"]
    else:
        args += ["--values", "3", "6"]
    assert mod.main(args) == 0
    data = json.loads((tmp_path / "figure.json").read_text())
    assert data["x"] == ([0.0, 1.0] if kind == "sweep" else [3, 6])
    assert len(data["H"]) == 2 and (tmp_path / "figure.png").stat().st_size > 0
    assert not list(tmp_path.rglob("seed_*"))  # validation only: test never scored


def test_curves_command_plots_history(tmp_path):
    mod = load("coupling_figures")
    hist = [{"epoch": e, "total": 1.0 / e, "w_gen": 0.5} for e in (1, 2, 3)]
    (tmp_path / "metrics.json").write_text(json.dumps({"history": hist}))
    out = tmp_path / "curves.png"
    assert mod.main(["curves", str(tmp_path / "metrics.json"), "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["x"] == [1, 2, 3] and data["total"] == [1.0, 0.5, 1.0 / 3]
