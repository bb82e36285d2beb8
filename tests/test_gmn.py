"""GMN: latent-noise generator, the critic variants, the transductive guard, the runner path,
per-class GM batching, the official initialisation."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from conftest import check_transductive_run
from tinydata import tiny_dataset
from unseen.config import resolve_run_config
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError
from unseen.losses.gradient_matching import gradient_matching_loss
from unseen.methods.gmn import GMN, VARIANTS, _ClassGroups, _seen_positions
from unseen.models.gmn import GMNGenerator
from unseen.runner import run

TINY = dict(epochs=2, batch_size=16, noise_dim=4, hidden_g=(16,), hidden_d=(16,), critic_steps=2)


@pytest.fixture(scope="module")
def tiny():
    return tiny_dataset(n_per_class=12)


@pytest.mark.parametrize("mu_tanh", [False, True])
def test_latent_reparameterisation_has_the_right_mean_and_covariance(mu_tanh):
    torch.manual_seed(0)
    G = GMNGenerator(3, 5, noise_dim=4, hidden=(8,), mu_tanh=mu_tanh)
    with torch.no_grad():
        G.log_cov.weight.normal_(0, 0.5)
        G.log_cov.bias.normal_(0, 0.5)
    a = torch.rand(1, 3)
    mu, cov = G.latent_params(a)
    n = 200_000
    with torch.no_grad():
        z = G.latent(a.expand(n, 3), torch.randn(n, 4))
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.02, rtol=0)
    emp = torch.cov(z.T)
    torch.testing.assert_close(emp, torch.diag(cov[0]), atol=0.03, rtol=0.02)
    if mu_tanh:
        assert mu.abs().max() < 1
    # the latent heads are trained end to end: the output's gradient reaches them
    out = G(a.expand(8, 3), torch.randn(8, 4)).sum()
    out.backward()
    assert G.mu.weight.grad.abs().sum() > 0 and G.log_cov.weight.grad.abs().sum() > 0


def test_identity_covariance_and_concat_generator():
    G = GMNGenerator(3, 5, noise_dim=4, hidden=(8,), identity_cov=True)
    a, eps = torch.rand(2, 3), torch.randn(2, 4)
    mu, cov = G.latent_params(a)
    assert torch.equal(cov, torch.ones_like(cov))
    torch.testing.assert_close(G.latent(a, eps), mu + eps)
    C = GMNGenerator(3, 5, noise_dim=4, hidden=(8,), conditioning="concat")
    assert torch.equal(C.latent(a, eps), torch.cat([eps, a], 1))
    assert (C(a, eps) >= 0).all()  # non-negative (ReLU) output by default


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_trains(variant, tiny):
    task = ZSLTask(tiny, transductive=variant == "wgan-su+gm")
    m = GMN(seed=0, **TINY, **VARIANTS[variant]).fit(task.train)
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in m.history_)
    keys = set(m.history_[-1])
    assert ("gm" in keys) == (VARIANTS[variant]["aux"] == "gm")
    assert ("critic" in keys) == (VARIANTS[variant]["critic"] != "none")


def test_transductive_critic_needs_explicit_unlabeled_data(tiny):
    inductive = ZSLTask(tiny)
    assert inductive.train.unlabeled is None
    with pytest.raises(ConfigError, match="transductive=True"):
        GMN(**TINY, critic="seen+unlabeled").fit(inductive.train)
    with pytest.raises(ConfigError, match="transductive=True"):
        GMN(**TINY, critic="seen+unlabeled").fit(inductive.validation().train)
    # the other critics never need it
    GMN(**TINY, critic="seen").fit(inductive.train)


def test_bad_config_values_are_refused(tiny):
    task = ZSLTask(tiny)
    for bad in ({"critic": "x"}, {"aux": "y"}, {"critic": "none", "aux": "none"}):
        with pytest.raises(ConfigError):
            GMN(**{**TINY, **bad}).fit(task.train)


def test_probe_reinitialised_every_iteration_matches_the_official_scheme(tiny):
    task = ZSLTask(tiny)
    # With re-initialisation at every iteration theta is a fresh draw each time, so after
    # training the probe is one SGD step away from a random init: its norm stays near the
    # init's; along a long trajectory it drifts further from it.
    fresh = GMN(seed=0, **{**TINY, "epochs": 3}, probe_reinit_every=1, probe_lr=0.5).fit(task.train)
    traj = GMN(seed=0, **{**TINY, "epochs": 3}, probe_reinit_every=1000, probe_lr=0.5).fit(
        task.train
    )
    w_fresh = fresh.nets_["probe"].weight.norm()
    w_traj = traj.nets_["probe"].weight.norm()
    assert w_traj > 1.5 * w_fresh


def test_runner_marks_transductive_results(tiny, tmp_path):
    params = {**TINY, **VARIANTS["wgan-su+gm"]}
    sets = {
        "method": params,
        "classifier": {"kind": "bilinear", "epochs": 3, "lr": 0.05, "zsl_train": "all"},
        "selection": {"eval_every": 2, "n_synthetic": [5]},
    }
    check_transductive_run("gmn", sets, tiny, tmp_path)


@pytest.mark.parametrize("zsl_train, fits", [("synthetic", 2), ("all", 1)])
def test_czsl_from_the_all_class_classifier(zsl_train, fits, tiny, monkeypatch):
    import unseen.runner as runner
    from unseen.config import ClassifierConfig

    task = ZSLTask(tiny)
    m = GMN(seed=0, **TINY).fit(task.train)
    built = []
    real_build = runner.build_classifier

    def counting(cfg, device, seed):
        clf = real_build(cfg, device, seed)
        built.append(clf)
        return clf

    monkeypatch.setattr(runner, "build_classifier", counting)
    cfg = ClassifierConfig(kind="bilinear", epochs=2, lr=0.05, zsl_train=zsl_train)
    res = runner.train_and_evaluate(task, m, 4, cfg, seed=0)
    assert len(built) == fits
    if zsl_train == "all":  # T1 = the GZSL classifier restricted to the unseen columns
        torch.testing.assert_close(res[2].t1, task.evaluate(built[0]).t1)
    with pytest.raises(ConfigError, match="zsl_train"):
        resolve_run_config("gmn", "toy", overrides={"classifier": {"zsl_train": "x"}})


def test_per_task_counts_are_chosen_on_validation_and_reported(tiny, tmp_path):
    sets = {
        "method": TINY,
        "classifier": {"kind": "bilinear", "epochs": 3, "lr": 0.05, "zsl_train": "all"},
        "selection": {"eval_every": 2, "n_synthetic": [2, 6, 12], "per_task_counts": True},
    }
    cfg = resolve_run_config("gmn", "toy", overrides=sets, seeds=[0, 1])
    rep = run(cfg, tmp_path / "pt", dataset=tiny, echo=False)
    choice, records = rep["validation"]["choice"], rep["validation"]["records"]
    at = [
        r
        for r in records
        if r["epoch"] == choice["epochs"] and r["classifier_epochs"] == choice["classifier_epochs"]
    ]
    for task_name, metric in (("zsl", "t1"), ("gzsl_u", "u"), ("gzsl_s", "s")):
        n = choice["n_per_task"][task_name]
        assert max(r[metric] for r in at) == next(r[metric] for r in at if r["n_synthetic"] == n)
    per_task = rep["seeds"]["0"]["result"]["extra"]["per_task"]
    assert per_task["counts"] == choice["n_per_task"]
    u, s = per_task["u"], per_task["s"]
    assert per_task["h"] == pytest.approx(2 * u * s / (u + s) if u + s else 0.0)
    assert set(rep["summary"]["per_task"]) == {"t1", "u", "s", "h"}
    assert len(rep["summary"]["per_task"]["h"]["values"]) == 2
    # the main (single all-task model) result is unchanged in kind
    assert "per_task" not in rep["summary"]["h"]


def test_seen_top_up_fills_each_seen_class_to_the_count(tiny, monkeypatch):
    import unseen.runner as runner
    from unseen.config import ClassifierConfig

    task = ZSLTask(tiny)
    data = task.train
    m = GMN(seed=0, **TINY).fit(data)
    counts = torch.bincount(data.labels, minlength=data.n_classes)
    n = int(counts[data.seen_classes].max()) + 3
    x, y = runner.seen_top_up(m, data, n)
    after = counts + torch.bincount(y, minlength=data.n_classes)
    assert (after[data.seen_classes] == n).all()
    assert not torch.isin(y, data.unseen_classes).any() and x.shape == (len(y), data.feature_dim)
    assert len(runner.seen_top_up(m, data, 1)[1]) == 0  # nothing lacks a feature
    sizes = []
    real_build = runner.build_classifier

    def spy(cfg, device, seed):
        clf = real_build(cfg, device, seed)
        fit = clf.fit
        clf.fit = lambda X, *a, **k: (sizes.append(len(X)), fit(X, *a, **k))[1]
        return clf

    monkeypatch.setattr(runner, "build_classifier", spy)
    for top_up in (False, True):
        cfg = ClassifierConfig(kind="bilinear", epochs=1, zsl_train="all", seen_top_up=top_up)
        runner.train_and_evaluate(task, m, n, cfg, seed=0)
    assert sizes[1] - sizes[0] == len(y)


# ---------------------------------------------------------------- per-class GM batching
PER_CLASS = dict(gm_batching="per-class", gm_classes_per_iter=3, gm_real_per_class=6)


def _uneven(data):
    """The training data with classes thinned to 9, 9, 4, 2, ... samples (some < R)."""
    keep = torch.ones(len(data.labels), dtype=torch.bool)
    for i, c in enumerate(data.seen_classes[2:4].tolist()):
        rows = torch.nonzero(data.labels == c).flatten()
        keep[rows[[4, 2][i] :]] = False
    return dataclasses.replace(data, features=data.features[keep], labels=data.labels[keep])


def test_class_groups_draw_distinct_classes_from_their_own_samples():
    target = torch.tensor([0] * 9 + [1] * 2 + [2] * 5 + [3] * 0 + [4] * 7)[torch.randperm(23)]
    groups = _ClassGroups(target, 5)
    seen = set()
    for _ in range(50):
        classes, idx, mask = groups.draw(3, 4)
        assert len(set(classes.tolist())) == 3 and 3 not in classes.tolist()  # no empty class
        assert idx.shape == mask.shape == (3, 4)
        for c, row, m in zip(classes, idx, mask):
            assert (target[row] == c).all()  # padding rows too point into the class
            assert int(m.sum()) == min(4, int((target == c).sum()))
            assert len(set(row[m].tolist())) == int(m.sum())  # without replacement
            seen.update(row[m].tolist())
    assert seen == set(range(23))  # every sample of every class gets drawn


def test_per_class_gm_is_one_term_per_drawn_class_summed(tiny):
    """The generator's L_GM term = the SUM over the drawn classes of each class's distance,
    each computed by hand on that class's real and synthetic batch alone (official)."""
    data = _uneven(ZSLTask(tiny).train)
    m = GMN(seed=0, **TINY, **PER_CLASS, gm_fake_per_class=5).fit(data)
    target = _seen_positions(data)
    probe = m.nets_["probe"]
    sem = data.semantics[data.seen_classes]
    details: dict = {}
    loss, terms = m._gm_term(data, None, None, None, _ClassGroups(target, 6), details)
    classes = details["classes"]
    assert terms.shape == (3,) and len(set(classes.tolist())) == 3
    assert details["x_fake"].shape == (3, 5, data.feature_dim)
    hand = []
    for c, rows, mask, fake in zip(
        classes, details["real_index"], details["real_mask"], details["x_fake"]
    ):
        rows = rows[mask]
        assert (target[rows] == c).all()
        assert len(rows) == min(6, int((target == c).sum()))
        y_r, y_s = c.repeat(len(rows)), c.repeat(len(fake))
        w, b = probe.weight.detach(), probe.bias.detach()
        hand.append(gradient_matching_loss(data.features[rows], y_r, fake, y_s, w, b, sem))
    torch.testing.assert_close(terms, torch.stack(hand))
    torch.testing.assert_close(loss, torch.stack(hand).sum())
    # the synthetic batch of each group is of that group's class: its gradient reaches G
    loss.backward()
    assert m.nets_["generator"].mu.weight.grad.abs().sum() > 0


def test_per_class_batching_trains_every_variant_with_gm(tiny):
    task = ZSLTask(tiny, transductive=True)
    for variant in ("cwgan+gm", "wgan+gm", "gm", "wgan-su+gm"):
        m = GMN(seed=0, **TINY, **PER_CLASS, **VARIANTS[variant]).fit(task.train)
        assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in m.history_)
        assert "gm" in m.history_[-1]


# ---------------------------------------------------------------- initialisation, Adam
def test_official_init_is_xavier_with_gain_sqrt2_on_every_linear_of_g_and_d():
    dims = {"feature_dim": 300, "semantic_dim": 200}
    big = dict(noise_dim=300, hidden_g=(400,), hidden_d=(400,))
    official = GMN(seed=0, **big, init="official")
    official._build(dims)
    default = GMN(seed=0, **big)
    default._build(dims)
    for net in ("generator", "critic"):
        layers = [x for x in official.nets_[net].modules() if isinstance(x, torch.nn.Linear)]
        assert len(layers) == (4 if net == "generator" else 2)  # G: mu, log-cov, hidden, out
        for lin in layers:
            fan_out, fan_in = lin.weight.shape
            std = math.sqrt(2.0) * math.sqrt(2.0 / (fan_in + fan_out))
            assert lin.weight.std().item() == pytest.approx(std, rel=0.05)
            assert lin.weight.mean().abs() < 0.1 * std and torch.all(lin.bias == 0)
        for lin in (x for x in default.nets_[net].modules() if isinstance(x, torch.nn.Linear)):
            assert lin.weight.std().item() == pytest.approx(0.02, rel=0.05)
            assert torch.all(lin.bias == 0)
    # the GM probe keeps its own N(0, 0.02^2) init either way (as the official code)
    assert official.nets_["probe"].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert (
        official.nets_["generator"].mu.weight.std() > 2 * default.nets_["generator"].mu.weight.std()
    )


def test_beta1_reaches_both_adam_optimisers(tiny):
    m = GMN(seed=0, **TINY, beta1=0.0).fit(ZSLTask(tiny).train)
    for name in ("generator", "critic"):
        assert m.optimizers_[name].param_groups[0]["betas"] == (0.0, 0.999)


@pytest.mark.parametrize(
    "bad",
    [
        {"gm_batching": "per_class"},
        {"gm_classes_per_iter": 0},
        {"gm_real_per_class": 0},
        {"gm_fake_per_class": -1},
        {"init": "xavier"},
        {"beta1": 1.0},
    ],
)
def test_bad_gm_options_are_config_errors(bad, tiny):
    with pytest.raises(ConfigError):
        GMN(**{**TINY, **bad}).fit(ZSLTask(tiny).train)


def test_gm_option_types_are_config_errors_in_run_configs():
    with pytest.raises(ConfigError, match="gm_classes_per_iter"):
        resolve_run_config("gmn", "toy", overrides={"method": {"gm_classes_per_iter": 2.5}})
    with pytest.raises(ConfigError, match="gm_batch"):
        resolve_run_config("gmn", "toy", overrides={"method": {"gm_batch": "per-class"}})
