"""Generator health (`unseen diagnose`): hand-computed numbers, warnings, the protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from test_methods import TINY, make
from tinydata import tiny_dataset
from unseen.cli import main
from unseen.config import ClassifierConfig, resolve_run_config
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError
from unseen.eval.health import (
    GroupHealth,
    HealthReport,
    class_mean_stats,
    probe_accuracy,
    spread_ratio,
    synthetic_only_accuracy,
    untouched_dimensions,
)
from unseen.methods import available_methods
from unseen.runner import run, train_and_evaluate


def _blobs(n=60, d=5, k=3, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 4
    y = np.repeat(np.arange(k), n)
    return (centres[y] + spread * rng.normal(size=(len(y), d))), y


def test_untouched_dimensions_counts_exact_copies_only():
    x = torch.rand(10, 4)
    y = torch.stack([x[:, 3], x[:, 0] * 1.0001, x[:, 1], x[:, 2] + 1e-3], 1)
    assert untouched_dimensions(x, y) == 2  # columns 3 and 1 moved, not transformed
    assert untouched_dimensions(x, torch.exp(x)) == 0


def test_class_mean_stats_by_hand():
    rx, ry = _blobs()
    # generated means = real means shifted by a known offset of 1 along the first axis
    means = np.stack([rx[ry == c].mean(0) for c in range(3)])
    gx, gy = means + np.array([1.0, 0, 0, 0, 0]), np.arange(3)
    hit, ratio = class_mean_stats(rx, ry, gx, gy, np.arange(3))
    between = np.mean(
        [np.linalg.norm(means[i] - means[j]) for i in range(3) for j in range(3) if i != j]
    )
    assert hit == 100.0
    assert ratio == pytest.approx(1.0 / between)
    # swapped labels: every generated mean sits on another class
    hit, _ = class_mean_stats(rx, ry, means[[1, 2, 0]], gy, np.arange(3))
    assert hit == 0.0


def test_spread_ratio_by_hand():
    rx, ry = _blobs()
    assert spread_ratio(rx, ry, rx, ry, np.arange(3)) == pytest.approx(1.0)
    means = np.stack([rx[ry == c].mean(0) for c in range(3)])
    wide = means[ry] + 3.0 * (rx - means[ry])
    assert spread_ratio(rx, ry, wide, ry, np.arange(3)) == pytest.approx(3.0)


def test_probe_tells_shifted_but_not_identical_distributions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    assert 40 <= probe_accuracy(a, b) <= 60
    # a shift of 2 sigma along one axis: the Bayes accuracy is Phi(1) = 84%; 6 sigma: 99.9%
    assert 78 < probe_accuracy(a, b + np.array([2.0] + [0] * 7)) < 90
    assert probe_accuracy(a, b + np.array([6.0] + [0] * 7)) > 97


def test_synthetic_only_accuracy_separates_good_and_label_shuffled_generators():
    rx, ry = _blobs(seed=1)
    gx, gy = _blobs(seed=2)  # same centres (seeded by the same rng draw), new noise
    gx = gx - np.stack([gx[gy == c].mean(0) for c in range(3)])[gy]
    gx = gx + np.stack([rx[ry == c].mean(0) for c in range(3)])[gy]
    t = torch.from_numpy
    classes = torch.arange(3)
    good = synthetic_only_accuracy(t(rx).float(), t(ry), t(gx).float(), t(gy), classes)
    bad = synthetic_only_accuracy(t(rx).float(), t(ry), t(gx).float(), t((gy + 1) % 3), classes)
    assert good > 95 and bad < 5


def _group(**kw) -> GroupHealth:
    base = dict(
        n_classes=10,
        synthetic_only_t1=60.0,
        chance=10.0,
        mean_hit_rate=90.0,
        mean_error_ratio=0.3,
        spread_ratio=1.1,
        probe_accuracy=70.0,
    )
    return GroupHealth(**{**base, **kw})


def test_warnings_name_each_defect():
    healthy = HealthReport(unseen=_group(), seen=_group(), untouched_dims=0, feature_dim=8)
    assert healthy.warnings() == []
    sick = HealthReport(
        unseen=_group(synthetic_only_t1=12.0, mean_hit_rate=5.0),
        seen=_group(probe_accuracy=99.0, spread_ratio=3.5),
        untouched_dims=3,
        feature_dim=8,
        extra={"inference_warning": 1.0, "hhat_zsl_acc": 10.0},
    )
    text = " | ".join(sick.warnings())
    for piece in (
        "3 of 8 feature dimensions",
        "class-agnostic generator (unseen)",
        "misplaced classes (unseen)",
        "fingerprinted features (seen)",
        "too wide classes (seen)",
        "inference:",
    ):
        assert piece in text
    again = HealthReport.from_dict(json.loads(json.dumps(sick.to_dict())))
    assert again.warnings() == sick.warnings()


@pytest.fixture(scope="module")
def task() -> ZSLTask:
    return ZSLTask(tiny_dataset(n_per_class=12))


def test_health_is_refused_on_the_test_task(task):
    m = make("meanreg").fit(task.train)
    with pytest.raises(ConfigError, match="validation problem only"):
        task.health(m)


@pytest.mark.parametrize("name", sorted(available_methods()))
def test_every_method_has_a_health_report(name, task):
    val = task.validation(seed=0)
    m = make(name).fit(val.train)
    rep = val.health(m, n_per_class=10)
    for g in (rep.unseen, rep.seen):
        assert 0 <= g.synthetic_only_t1 <= 100 and 0 <= g.mean_hit_rate <= 100
        assert np.isfinite(g.spread_ratio) and 0 <= g.probe_accuracy <= 100
    flows = {"izf", "gsmflow"}
    assert (rep.untouched_dims == 0) if name in flows else (rep.untouched_dims is None)
    assert isinstance(rep.warnings(), list)


def test_health_does_not_move_the_global_rng(task):
    val = task.validation(seed=0)
    m = make("meanreg").fit(val.train)
    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    val.health(m, n_per_class=10)
    assert torch.equal(torch.rand(3), before)


def _tiny_izf_cfg(**extra):
    overrides = {
        "method": dict(TINY["izf"], epochs=4),
        "classifier": dict(epochs=4, batch_size=32),
        "selection": dict(eval_every=2, n_synthetic=[5], classifier_epochs=[2, 4], **extra),
    }
    return resolve_run_config("izf", "tiny", overrides=overrides, seeds=[0])


def test_runner_logs_health_at_every_validation_point_and_diagnose_reads_it(tmp_path, capsys):
    out = tmp_path / "r"
    rep = run(
        _tiny_izf_cfg(), out, echo=False, dataset=tiny_dataset(n_per_class=12), validate_only=True
    )
    logged = json.loads((out / "validation" / "health.json").read_text())
    assert [h["epoch"] for h in logged] == [2, 4]
    assert all(h["untouched_dims"] == 0 for h in logged)
    assert rep["validation"]["choice"]["health"]["epoch"] == rep["validation"]["choice"]["epochs"]
    assert "health unseen:" in (out / "log.txt").read_text()
    assert (out / "validation" / "model.pt").exists()

    # `unseen diagnose` needs the run's data: a run on the built-in demo problem has it.
    demo = tmp_path / "demo"
    assert main(["run", "meanreg", "--dataset", "demo", "--seeds", "0", "--validate-only",
                 "--set", "method.epochs=2", "--set", "selection.eval_every=2",
                 "--out", str(demo)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["diagnose", str(demo), "--json", str(tmp_path / "h.json")]) == 0
    printed = capsys.readouterr().out
    assert "synthetic-only T1" in printed and "logged at the validation points" in printed
    saved = json.loads((tmp_path / "h.json").read_text())
    assert saved["untouched_dims"] is None and saved["epoch"] == 2


def test_diagnose_bad_input_exits_2(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "nowhere")]) == 2
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.yaml").write_text("method: meanreg\ndata: {dataset: demo}\n")
    assert main(["diagnose", str(tmp_path / "r")]) == 2
    assert "validation has not run yet" in capsys.readouterr().err


def test_health_can_be_switched_off(tmp_path):
    out = tmp_path / "r"
    run(
        _tiny_izf_cfg(health=False),
        out,
        echo=False,
        dataset=tiny_dataset(n_per_class=12),
        validate_only=True,
    )
    assert not (out / "validation" / "health.json").exists()


# ---------------------------------------------------------------------- one T1 definition
def test_validation_t1_is_the_t1_of_a_classifier_trained_that_long(task):
    """T1 measured along the classifier run on validation equals the T1 of a classifier
    trained for that many epochs as on test (the same CZSL classifier definition)."""
    val = task.validation(seed=0)
    m = make("clswgan").fit(val.train)
    cfg = ClassifierConfig(epochs=4, batch_size=16)
    along = train_and_evaluate(val, m, 6, cfg, seed=0, classifier_epochs=[2, 4])
    for e in (2, 4):
        alone = train_and_evaluate(val, m, 6, ClassifierConfig(epochs=e, batch_size=16), seed=0)
        assert along[e].t1 == pytest.approx(alone[e].t1)
        assert along[e].h == pytest.approx(alone[e].h)


def test_batch_equals_n_synthetic_is_the_official_batch(task):
    val = task.validation(seed=0)
    m = make("clswgan").fit(val.train)
    official = ClassifierConfig(epochs=3, batch_equals_n_synthetic=True)
    explicit = ClassifierConfig(epochs=3, batch_size=7)
    a = train_and_evaluate(val, m, 7, official, seed=0)[3]
    b = train_and_evaluate(val, m, 7, explicit, seed=0)[3]
    assert (a.t1, a.s, a.u) == (b.t1, b.s, b.u)
