"""The papers' study grids (configs/studies/): every file expands on FLO and CUB with the same
command shape, its rows are exactly the rows of the per-study script it replaced (pinned
here as those scripts built them), and a table, a real-only row and a validation sweep run
end to end through `unseen bench` on the tiny built-in problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unseen.bench.grid import config_key, load_grid
from unseen.cli import main
from unseen.config import parse_set, resolve_run_config

STUDIES = Path(__file__).resolve().parents[1] / "configs" / "studies"
FILES = sorted(p.name for p in STUDIES.glob("*.yaml"))

# The deleted scripts' rows, as they built them: (method, overrides on the shipped config).
# benchmarks/izf_ablation.py ROWS (row 1 is the CVAE with IZF's shared keys, see _izf_tab3)
IZF_TAB3 = {
    "no-c-immd": {"lambda_c": 0.0, "lambda_immd": 0.0},
    "no-c": {"lambda_c": 0.0},
    "no-immd": {"lambda_immd": 0.0},
    "positive-mmd": {"lambda_immd": -1.0},
    "gaussian": {"kernel": "gaussian"},
    "full": {},
}
CVAE_SHARED = ("epochs", "batch_size", "kernel", "kernel_scale", "mmd_estimator", "loss_scale")
# benchmarks/gmn_table2.py (deleted): unseen.methods.gmn.VARIANTS, transductive for wgan-su+gm only
GMN_ROWS = ["wgan+cls", "cwgan", "wgan+gm", "cwgan+gm", "wgan-su+gm", "cwgan+cls"]
# benchmarks/coupling_ablation.py VARIANTS
TLC_ROWS = {
    "S1": {"alpha1": 0.0, "alpha2": 0.0, "gamma": 0.0, "coupled_features": False},
    "S2": {"gamma": 0.0, "coupled_features": False},
    "S3": {"gamma": 0.0, "coupled_features": True},
    "S4": {"coupled_features": True},
}
# benchmarks/gsmflow_ablation.py ROWS
GSM_ROWS = ["izf-prior", "no-constraints", "no-em-vp", "no-em-rp", "no-em", "no-vp", "full"]
# benchmarks/izf_sensitivity.py and gsmflow_sensitivity.py GRID
IZF_FIG5 = {
    "lambda_flow": [0.1, 0.5, 1.0, 1.5, 2.0],
    "lambda_c": [0.1, 0.5, 1.0, 1.5, 2.0],
    "lambda_immd": [0.1, 0.5, 1.0, 1.5, 2.0],
    "n_blocks": [1, 2, 3, 4, 5, 6],
}
GSM_FIG7 = {
    "entropy_weight": [0.1, 1.0, 5.0, 10.0, 20.0],
    "perturbation": [0.02, 0.05, 0.15, 0.3, 0.5],
    "lambda_proto": [1.0, 3.0, 10.0, 20.0, 30.0],
    "semantic_out": [128, 256, 512, 1024, 2048],
    "n_blocks": [1, 3, 5, 10, 20],
    "mining_steps": [5, 10, 20, 30, 40],
}


def _key(method: str, dataset: str, over: dict, seeds=(0, 1, 2), config=None) -> str:
    cfg = resolve_run_config(
        method, dataset, overrides=over, seeds=list(seeds), config_file=config
    ).to_dict()
    return config_key(cfg)


def _izf_tab3(dataset: str) -> set[str]:
    """benchmarks/izf_ablation.py's cell_config, for every cell."""
    izf = resolve_run_config("izf", dataset)
    keys = set()
    for kind in ("method", "softmax"):
        shared = {k: v for k, v in izf.method_params.items() if k in CVAE_SHARED}
        sections = {
            "data": {k: v for k, v in izf.data.__dict__.items() if k not in ("dataset", "root")},
            "classifier": {**izf.classifier.__dict__, "kind": kind},
            "selection": izf.selection.__dict__,
        }
        cvae = {**shared, "lambda_c": 1.0, "lambda_immd": 0.1}
        keys.add(_key("cvae", dataset, {"method": cvae, **sections}))
        for variant in IZF_TAB3.values():
            keys.add(_key("izf", dataset, {"method": variant, "classifier": {"kind": kind}}))
    return keys


def _gmn(dataset: str, rows: list[str], selection: dict, seeds=(0, 1, 2)) -> set[str]:
    from unseen.methods.gmn import VARIANTS

    return {
        _key(
            "gmn",
            dataset,
            {
                "method": dict(VARIANTS[v]),
                "data": {"transductive": v == "wgan-su+gm"},
                "selection": {"per_task_counts": True, **selection},
            },
            seeds,
        )
        for v in rows
    }


def _gsm_tab3(dataset: str) -> set[str]:
    scale = resolve_run_config("izf", dataset).method_params.get("semantic_scale", 1.0)
    return {
        _key(
            "gsmflow",
            dataset,
            {"method": {"variant": v, **({"prior_scale": scale} if v == "izf-prior" else {})}},
        )
        for v in GSM_ROWS
    }


def _sweep(method: str, dataset: str, grid: dict) -> set[str]:
    return {
        _key(method, dataset, {"method": {p: v}}, seeds=(0,)) for p, vs in grid.items() for v in vs
    }


OLD_ROWS = {
    "izf-tab3.yaml": _izf_tab3,
    "gmn-table2.yaml": lambda d: _gmn(d, GMN_ROWS, {}),
    "gmn-fig3.yaml": lambda d: _gmn(
        d, ["wgan+gm", "wgan-su+gm"], {"n_synthetic": [10, 25, 50, 150, 200, 250]}, (0,)
    ),
    "gmn-fig5.yaml": lambda d: _gmn(
        d, ["wgan", "gm", "wgan+gm", "wgan-su+gm"], {"eval_every": 1}, (0,)
    ),
    "tlcoupling-table2.yaml": lambda d: {
        _key("tlcoupling", d, {"method": v}) for v in TLC_ROWS.values()
    },
    "tlcoupling-fig2.yaml": lambda d: _sweep(
        "tlcoupling",
        d,
        {"alpha1": [0.1, 1.0, 10.0], "alpha2": [0.1, 1.0, 10.0], "gamma": [0.0, 0.1, 1.0, 10.0]},
    ),
    "tlcoupling-fig2f.yaml": lambda d: {
        _key("tlcoupling", d, {"selection": {"n_synthetic": [50, 150, 300, 600, 1200]}}, (0,))
    },
    "gsmflow-tab3.yaml": _gsm_tab3,
    "izf-fig5.yaml": lambda d: _sweep("izf", d, IZF_FIG5),
    "gsmflow-fig7.yaml": lambda d: _sweep("gsmflow", d, GSM_FIG7),
}


def test_every_study_file_is_pinned_here():
    assert sorted(OLD_ROWS) == FILES


@pytest.mark.parametrize("dataset", ["FLO", "CUB"])
@pytest.mark.parametrize("name", FILES)
def test_study_rows_are_the_old_scripts_rows(name, dataset):
    grid = load_grid(STUDIES / name, datasets=[dataset], data_root="")
    keys = {j.key for j in grid.jobs if j.runner == "protocol"}
    assert keys == OLD_ROWS[name](dataset)
    assert {j.dataset for j in grid.jobs} == {dataset}
    assert grid.layout["kind"] in ("table", "sweep", "counts", "epochs")
    if grid.layout["kind"] != "table":  # figures never score test
        assert all(j.validate_only for j in grid.jobs)


def test_gmn_real_only_row_is_its_named_runner():
    grid = load_grid(STUDIES / "gmn-table2.yaml", datasets=["CUB"], data_root="")
    real = [j for j in grid.jobs if j.row == "real-only"]
    assert len(real) == 1 and real[0].runner == "real-only"
    assert real[0].key not in {j.key for j in grid.jobs if j.runner == "protocol"}


def test_sweep_points_of_the_base_config_are_one_job():
    grid = load_grid(STUDIES / "izf-fig5.yaml", datasets=["FLO"], data_root="")
    points = [p for j in grid.jobs for p in j.sweep]
    assert len(points) == sum(len(v) for v in IZF_FIG5.values())
    assert len(grid.jobs) == len(points) - 3  # lambda_flow 2, lambda_c 1, lambda_immd 0.1, 5 blocks


# Tiny sizes as a config file (bench --config), on the built-in toy / demo problems.
TINY = {
    "gmn": {
        "method": {"epochs": 2, "hidden_g": [16], "hidden_d": [16], "noise_dim": 4},
        "classifier": {"kind": "bilinear", "epochs": 2, "lr": 0.05, "zsl_train": "all"},
        "selection": {"eval_every": 1, "n_synthetic": [5, 10]},
    },
    "tlcoupling": {
        "method": {"epochs": 1, "batch_size": 32, "hidden_g": 8, "hidden_d": 8, "hidden_i": [8]},
        "classifier": {"epochs": 2},
        "selection": {"eval_every": 1, "n_synthetic": [5], "classifier_epochs": [2]},
    },
}
TINY["gmn"]["method"].update(batch_size=64, critic_steps=1)
TINY["tlcoupling"]["method"].update(hidden_d2=8, hidden_d3=8, critic_steps=1, pretrain_epochs=1)


def _bench(grid: str, out: Path, dataset: str, method: str, *extra: str) -> str:
    import yaml

    config = out.parent / f"tiny-{method}.yaml"
    config.write_text(yaml.safe_dump(TINY[method]))
    argv = ["bench", str(STUDIES / grid), "--dataset", dataset, "--out", str(out)]
    assert main([*argv, "--jobs", "1", "--config", str(config), *extra]) == 0
    return (out / "report.md").read_text()


def test_gmn_table_with_its_real_only_row_runs_end_to_end(tmp_path):
    out = tmp_path / "b"
    rows = ["--rows", "real-only", "wgan-su+gm", "--seeds", "0", "1"]
    report = _bench("gmn-table2.yaml", out, "toy", "gmn", *rows)
    assert "| Train only with real samples (D_s) | 2 |" in report
    assert "L^{S+U}_WGAN + L_GM (transductive) ‡ (per-task counts)" in report
    assert "| yes |" in report and "| no |" in report  # the transductive flag
    real = json.loads(next((out / "jobs").glob("GMN_real-only*/results.json")).read_text())
    assert real["runner"] == "real-only" and sorted(real["seeds"]) == ["0", "1"]
    # a second call runs nothing: both rows are in the store
    report = _bench("gmn-table2.yaml", out, "toy", "gmn", *rows)
    assert "2 already stored" in report


def test_gmn_table2_rows_of_several_invocations_and_the_transductive_mark(tmp_path):
    """(was tests/test_gmn_studies.py, on benchmarks/gmn_table2.py) two invocations with
    disjoint rows share one --out; the table shows the rows of both."""
    out, common = tmp_path / "t2", ("--seeds", "0", "--set", "selection.eval_every=2")
    _bench("gmn-table2.yaml", out, "toy", "gmn", *common, "--rows", "real-only")
    _bench("gmn-table2.yaml", out, "toy", "gmn", *common, "--rows", "wgan-su+gm")
    report = _bench("gmn-table2.yaml", out, "toy", "gmn", *common, "--no-run")
    rows = {line.split(" | ")[0][2:]: line for line in report.splitlines() if line[:2] == "| "}
    assert rows["Train only with real samples (D_s)"].endswith("| no |")
    assert rows["L^{S+U}_WGAN + L_GM (transductive)"].endswith("| yes |")
    assert "L^{S+U}_WGAN + L_GM (transductive) ‡ (per-task counts)" in rows


def test_gmn_fig5_records_u_per_epoch(tmp_path):
    """(was tests/test_gmn_studies.py, on benchmarks/gmn_figures.py fig5)"""
    pytest.importorskip("matplotlib")
    out = tmp_path / "f5"
    _bench("gmn-fig5.yaml", out, "toy", "gmn", "--rows", "wgan", "gm")
    data = json.loads((out / "gmn-fig5_toy.json").read_text())
    assert data["gm"]["epoch"] == [1, 2] and len(data["wgan"]["u"]) == 2
    assert (out / "gmn-fig5_toy.png").stat().st_size > 0


def test_validation_sweep_never_scores_test_and_draws_the_chosen_points(tmp_path):
    out = tmp_path / "s"
    report = _bench("tlcoupling-fig2.yaml", out, "demo", "tlcoupling", "--rows", "gamma=*")
    data = json.loads((out / "tlcoupling-fig2_demo.json").read_text())
    assert list(data) == ["method.gamma"]
    assert [p["value"] for p in data["method.gamma"]] == [0.0, 0.1, 1.0, 10.0]
    assert (out / "tlcoupling-fig2_demo.png").stat().st_size > 0
    assert "| method.gamma | 10.0 |" in report and "validation" in report
    assert not list(out.rglob("seed_*"))  # validation only: the test split never scored
    for job in (out / "jobs").iterdir():
        sel = json.loads((job / "validation" / "selection.json").read_text())
        point = next(p for p in data["method.gamma"] if f"gamma_{p['value']}-" in job.name)
        assert point["h"] == sel["choice"]["validation"]["h"]


def test_a_table_run_validate_only_shows_the_chosen_validation_points(tmp_path):
    out = tmp_path / "v"
    extra = ("--rows", "S1", "S4", "--validate-only")
    report = _bench("tlcoupling-table2.yaml", out, "demo", "tlcoupling", *extra)
    assert "Validation numbers" in report and "| S4 = S3 + Wasserstein alignment | 1 |" in report
    assert not list(out.rglob("seed_*"))
    sel = json.loads(next((out / "jobs").glob("*S4*/validation/selection.json")).read_text())
    assert f"| {sel['choice']['validation']['t1']:.1f} |" in report


def test_a_paper_table_shows_the_papers_numbers_for_its_dataset(tmp_path):
    from unseen.bench.report import write_report
    from unseen.bench.store import Store

    grid = load_grid(STUDIES / "izf-tab3.yaml", datasets=["AWA1"], data_root="", seeds=[0])
    with Store(tmp_path / "r.sqlite") as store:
        text = write_report(grid, store, tmp_path).read_text()
    assert "paper NBC S / U / H" in text and "| 65.1 / 30.8 / 41.8 | 71.1 / 36.8 / 48.5 |" in text
    assert "Not in this report (no finished run yet)" in text


def test_study_options_are_checked():
    from unseen.errors import ConfigError

    with pytest.raises(ConfigError, match="no row matches"):
        load_grid(STUDIES / "gmn-table2.yaml", datasets=["FLO"], rows=["nothing"])
    with pytest.raises(ConfigError, match="no method of the grid has"):
        load_grid(STUDIES / "izf-tab3.yaml", datasets=["FLO"], sets=["method.nonsense=1"])
    parse_set(["method.epochs=1"])  # the --set form bench takes
