"""IZF-specific behaviour: the objective, prototypes/NBC, the runner's two classifiers, the toy
study, and the CVAE / CGAN + L_iMMD baselines."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tinydata import tiny_dataset
from unseen.config import resolve_run_config
from unseen.data.task import SeenTrainData, ZSLTask
from unseen.errors import ConfigError
from unseen.losses.flow import factorized_flow_nll, prototype_centring_loss
from unseen.losses.mmd import inverse_mmd_loss, mmd
from unseen.methods import IZF, get_method
from unseen.methods.izf import seen_class_means
from unseen.runner import run
from unseen.studies.izf_toy import panel_numbers, run_toy_seeds, run_toy_study

TINY = dict(epochs=2, batch_size=16, n_blocks=2, hidden=8)


@pytest.fixture(scope="module")
def task() -> ZSLTask:
    return ZSLTask(tiny_dataset(n_per_class=12))


def test_objective_is_the_weighted_sum_of_the_three_losses(task):
    m = IZF(**TINY, lambda_flow=2.0, lambda_c=1.0, lambda_immd=0.1).fit(task.train)
    data = task.train
    v, y = data.features[:10], data.labels[:10]
    means = seen_class_means(data)
    torch.manual_seed(0)
    parts = m.losses(v, y, data.semantics, means, data.unseen_classes)
    d = v.shape[1]
    # Recompute every term by hand from the public pieces.
    c_hat, z, ladj = m.encode(v)
    l_flow = factorized_flow_nll(c_hat, z, data.semantics[y], ladj).mean()
    classes = torch.unique(y)
    l_c = prototype_centring_loss(m.prototypes(data.semantics[classes]), means[classes])
    torch.testing.assert_close(parts["flow"], l_flow)
    torch.testing.assert_close(parts["centre"], l_c)
    expected = 2.0 * l_flow / d + 1.0 * l_c + 0.1 * parts["immd"]  # nll-dim
    torch.testing.assert_close(parts["total"], expected)
    assert float(parts["immd"].detach()) <= 2.0
    # Loss terms with weight 0 are not computed at all.
    m.config.lambda_c, m.config.lambda_immd = 0.0, 0.0
    assert set(m.losses(v, y, data.semantics, means, data.unseen_classes)) == {"flow", "total"}
    m.config.loss_scale = "sum"
    torch.testing.assert_close(
        m.losses(v, y, data.semantics, means, data.unseen_classes)["total"], 2.0 * l_flow
    )
    m.config.loss_scale, m.config.lambda_c = "dim", 1.0
    torch.testing.assert_close(
        m.losses(v, y, data.semantics, means, data.unseen_classes)["total"],
        2.0 * l_flow / d + l_c / d,
    )


def test_class_means_by_global_id(task):
    data = task.train
    means = seen_class_means(data)
    for k in data.seen_classes[:3].tolist():
        torch.testing.assert_close(means[k], data.features[data.labels == k].mean(0))
    assert means[data.unseen_classes].abs().sum() == 0


def test_prototypes_and_nbc(task):
    m = IZF(**TINY).fit(task.train)
    sem = task.train.semantics[task.classes]
    protos = m.prototypes(sem)
    z0 = torch.zeros(len(sem), task.train.feature_dim - task.train.semantic_dim)
    torch.testing.assert_close(protos, m.flow.inverse(torch.cat([sem, z0], 1)))
    # The forward pass of a prototype gives back [c, 0] (invertibility).
    c_hat, z, _ = m.encode(protos)
    torch.testing.assert_close(c_hat, sem, atol=1e-4, rtol=0)
    assert z.abs().max() < 1e-4
    clf = m.own_classifier(task.classes, sem)
    assert clf.classes_.tolist() == task.classes.tolist()
    assert torch.equal(clf.predict(protos.detach()), task.classes)


def test_semantic_scale_multiplies_c_everywhere(task):
    m = IZF(**TINY, semantic_scale=3.0).fit(task.train)
    sem = task.train.semantics[task.classes]
    z0 = torch.zeros(len(sem), task.train.feature_dim - task.train.semantic_dim)
    torch.testing.assert_close(m.prototypes(sem), m.flow.inverse(torch.cat([3 * sem, z0], 1)))
    c_hat, _, _ = m.encode(m.prototypes(sem))
    torch.testing.assert_close(c_hat, 3 * sem, atol=1e-4, rtol=0)


def test_sample_follows_eq6(task):
    m = IZF(**TINY).fit(task.train)
    sem = task.train.semantics[task.unseen_classes]
    torch.manual_seed(3)
    x = m.sample(sem, 4)
    torch.manual_seed(3)
    c = sem.repeat_interleave(4, 0)
    z = torch.randn(len(c), task.train.feature_dim - task.train.semantic_dim)
    torch.testing.assert_close(x, m.flow.inverse(torch.cat([c, z], 1)).detach())


def test_immd_alone_pushes_generated_unseen_away_from_seen(task):
    torch.manual_seed(0)
    only_immd = dict(TINY, epochs=5, lambda_flow=0.0, lambda_c=0.0, lambda_immd=1.0, lr=1e-2)
    m = IZF(**only_immd)
    data = task.train
    sem_u = data.semantics[data.unseen_classes]

    def gap(model):
        torch.manual_seed(1)
        return float(mmd(data.features, model.sample(sem_u, 40)))

    m.fit(data, epochs=1)
    before = gap(m)
    m.fit(data)
    assert gap(m) > before
    # and the positive MMD (lambda_3 < 0) pulls them together
    pos = IZF(**{**only_immd, "lambda_immd": -1.0}).fit(data, epochs=1)
    b2 = gap(pos)
    pos.fit(data)
    assert gap(pos) < b2


def test_izf_option_errors(task):
    with pytest.raises(ConfigError, match="kernel"):
        IZF(**TINY, kernel="rbf").fit(task.train)
    with pytest.raises(ConfigError, match="loss_scale"):
        IZF(**TINY, loss_scale="mean").fit(task.train)
    narrow = SeenTrainData(
        features=torch.rand(20, 3),
        labels=torch.arange(4).repeat(5),
        semantics=torch.rand(6, 3),
        seen_classes=torch.arange(4),
        unseen_classes=torch.tensor([4, 5]),
    )
    with pytest.raises(ConfigError, match="d_v > d_c"):
        IZF(**TINY).fit(narrow)


@pytest.mark.parametrize("kind", ["method", "softmax"])
def test_runner_nbc_and_softmax(kind, tmp_path):
    cfg = resolve_run_config(
        "izf",
        "tiny",
        overrides={
            "method": TINY,
            "classifier": {"kind": kind, "epochs": 2},
            "selection": {"eval_every": 1, "n_synthetic": [5]},
        },
        seeds=[0],
    )
    report = run(cfg, tmp_path / kind, dataset=tiny_dataset(n_per_class=12), echo=False)
    s = report["summary"]
    for key in ("t1", "s", "u", "h"):
        assert 0.0 <= s[key]["mean"] <= 100.0
    assert (tmp_path / kind / "results.json").exists()


@pytest.mark.parametrize("name", ["cvae", "cgan-immd"])
def test_baselines_with_immd_train(name, task):
    kw = (
        dict(epochs=2, batch_size=16, hidden=8, lambda_c=1.0, lambda_immd=0.1)
        if name == "cvae"
        else dict(
            epochs=2,
            batch_size=16,
            hidden_g=8,
            hidden_d=8,
            critic_steps=1,
            pretrain_epochs=1,
            generator_output="none",
        )
    )
    m = get_method(name)(**kw).fit(task.train)
    assert "immd" in m.history_[-1] and np.isfinite(m.history_[-1]["immd"])
    x = m.sample(task.train.semantics[task.unseen_classes], 3)
    assert torch.isfinite(x).all()
    if name == "cgan-immd":
        assert (x < 0).any()  # signed output without the ReLU


def test_inverse_mmd_is_used_with_the_seen_batch_first():
    # -MMD is symmetric in its two sets for the izf estimator; guard the sign convention.
    torch.manual_seed(0)
    a, b = torch.randn(8, 3), torch.randn(8, 3) + 2
    assert float(inverse_mmd_loss(a, b)) < 0
    torch.testing.assert_close(inverse_mmd_loss(a, b), inverse_mmd_loss(b, a))


def test_toy_panel_numbers_by_hand():
    nums = panel_numbers(np.array([[1.0, 1.0, 0, 0], [1.0, 0.0, 0, 0]]))
    assert nums["mean_x"] == 1.0 and nums["mean_y"] == 0.5
    assert nums["dist_mean_to_unseen_centre"] == pytest.approx(0.5)
    assert nums["dist_mean_to_nearest_seen_centre"] == pytest.approx(1.5)
    assert nums["share_nearest_to_unseen_centre"] == 0.5  # (1, 0) is 1 from both


def test_toy_study_writes_figure_and_numbers(tmp_path):
    res = run_toy_study(
        tmp_path, epochs=1, hidden=4, n_per_class=24, n_generated=10, panels="bcdfgh", echo=False
    )
    assert (tmp_path / "toy.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "toy.json").read_text())
    assert set(saved["panels"]) == set("abcdfgh")
    assert saved["panels"]["a"]["dist_mean_to_unseen_centre"] < 0.3  # true data sits at (1,1)
    assert len(res["claims"]) == 3


def test_toy_seeds_summary_and_resume(tmp_path):
    kw = dict(epochs=1, hidden=4, n_per_class=24, n_generated=10, panels="bf", echo=False)
    summary = run_toy_seeds(tmp_path, [0, 1], **kw)
    assert set(summary["panels"]) == set("abf")
    for claim, share in summary["claims"].items():
        per = [json.loads((tmp_path / f"seed_{s}" / "toy.json").read_text()) for s in (0, 1)]
        assert share == np.mean([p["claims"][claim] for p in per])
    before = (tmp_path / "seed_0" / "toy.json").stat().st_mtime_ns
    run_toy_seeds(tmp_path, [0, 1], **kw)  # finished seeds are reused, not retrained
    assert (tmp_path / "seed_0" / "toy.json").stat().st_mtime_ns == before
