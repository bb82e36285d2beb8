"""TL-Coupling: each loss term in isolation, the recognition layout, the runner hook."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tinydata import tiny_dataset
from unseen.classifiers.softmax import SoftmaxClassifier
from unseen.config import ClassifierConfig
from unseen.data.task import SeenTrainData, ZSLTask
from unseen.errors import ConfigError
from unseen.losses.sinkhorn import sinkhorn_distance
from unseen.methods.clswgan import CLSWGAN
from unseen.methods.coupling import (
    RidgeMap,
    TLCoupling,
    class_centres,
    nearest_semantic_accuracy,
)
from unseen.runner import train_and_evaluate

TINY = dict(
    epochs=1,
    batch_size=16,
    hidden_g=8,
    hidden_d=8,
    hidden_i=(8,),
    hidden_d2=8,
    hidden_d3=8,
    critic_steps=1,
    pretrain_epochs=1,
)
D, DA = 6, 4  # tiny_dataset sizes


@pytest.fixture(scope="module")
def task() -> ZSLTask:
    return ZSLTask(tiny_dataset(n_per_class=12))


def built(**kw) -> TLCoupling:
    torch.manual_seed(0)
    m = TLCoupling(**{**TINY, **kw})
    m.dims_ = {"feature_dim": D, "semantic_dim": DA, "n_classes": 8, "n_seen": 6}
    m._build(m.dims_)
    return m


def linearise(net: nn.Module) -> torch.Tensor:
    """Make a LeakyReLU MLP critic linear (slope 1); return its constant input gradient."""
    for mod in net.modules():
        if isinstance(mod, nn.LeakyReLU):
            mod.negative_slope = 1.0
        if hasattr(mod, "slope"):
            mod.slope = 1.0
    lin = [mod for mod in net.modules() if isinstance(mod, nn.Linear)]
    grad = lin[-1].weight
    for layer in reversed(lin[:-1]):
        grad = grad @ layer.weight
    return grad.detach().squeeze(0)


def batch(n: int = 10, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, k, generator=g) for k in (D, D, DA, DA)]  # x, x_hat, h, h_hat


# ---------------------------------------------------------------- gradient penalties
def test_gp_d1_on_linear_critic_is_lambda_norm_of_x_weights():
    m = built(gp_weight=10.0)
    w = linearise(m.nets_["critic"])  # D1(x, h): columns [x | h]
    x, x_hat, h, _ = batch()
    loss, est = m.critic_gen_loss(x, x_hat, h)
    D1 = m.nets_["critic"]
    gap = D1(x_hat, h).mean() - D1(x, h).mean()
    expected_gp = 10.0 * (w[:D].norm() - 1) ** 2  # gradient on x only
    torch.testing.assert_close(loss - gap, expected_gp)
    torch.testing.assert_close(est, -gap.detach())


def test_gp_d2_on_linear_critic_is_lambda_norm_of_h_weights():
    m = built(gp_weight=3.0)
    w = linearise(m.nets_["critic_inf"])  # D2(h, x): columns [h | x]
    x, _, h, h_hat = batch()
    loss, _ = m.critic_inf_loss(h, h_hat, x)
    D2 = m.nets_["critic_inf"]
    gap = D2(h_hat, x).mean() - D2(h, x).mean()
    torch.testing.assert_close(loss - gap, 3.0 * (w[:DA].norm() - 1) ** 2)
    # The penalty is NOT the one on the x columns or on both.
    assert not torch.isclose(loss - gap, 3.0 * (w.norm() - 1) ** 2)


def test_gp_d3_on_linear_critic_uses_both_inputs():
    m = built(gp_weight=10.0)
    w = linearise(m.nets_["critic_joint"])  # D3(x, h): columns [x | h]
    x, x_hat, h, h_hat = batch()
    loss, _ = m.critic_joint_loss(x, h_hat, x_hat, h)
    D3 = m.nets_["critic_joint"]
    gap = D3(x_hat, h).mean() - D3(x, h_hat).mean()
    gp = loss - gap
    torch.testing.assert_close(gp, 10.0 * (w.norm() - 1) ** 2)
    assert not torch.isclose(gp, 10.0 * (w[:D].norm() - 1) ** 2)


def test_gp_d3_closed_form_equals_autograd_on_nonlinear_critic():
    m = built()
    D3 = m.nets_["critic_joint"]
    xh = torch.rand(7, D + DA, requires_grad=True)
    (auto,) = torch.autograd.grad(D3.forward_pair(xh).sum(), xh)
    torch.testing.assert_close(D3.input_gradient(xh), auto)


# ---------------------------------------------------------------- joint critic pairs
def test_joint_critic_sees_real_x_with_inferred_h_and_generated_x_with_real_h():
    m = built()
    D3 = m.nets_["critic_joint"]
    seen: list[torch.Tensor] = []
    original = D3.forward_pair

    def record(xh):
        seen.append(xh.detach().clone())
        return original(xh)

    D3.forward_pair = record
    x, x_hat, h, h_hat = batch(n=5)
    m.critic_joint_loss(x, h_hat, x_hat, h)
    scored = seen[0]  # [fake pairs; real pairs]
    torch.testing.assert_close(scored[:5], torch.cat([x_hat, h], 1))
    torch.testing.assert_close(scored[5:], torch.cat([x, h_hat], 1))
    seen.clear()
    m.joint_max_loss(x, h_hat, x_hat, h)
    torch.testing.assert_close(seen[0][:5], torch.cat([x, h_hat], 1))
    torch.testing.assert_close(seen[0][5:], torch.cat([x_hat, h], 1))


def test_joint_signs_critic_maximises_eq12_generators_minimise_its_gap():
    m = built(gp_weight=0.0)
    D3 = m.nets_["critic_joint"]
    x, x_hat, h, h_hat = batch()
    real, fake = D3(x, h_hat).mean(), D3(x_hat, h).mean()
    loss_d, est = m.critic_joint_loss(x, h_hat, x_hat, h)
    torch.testing.assert_close(loss_d, fake - real)  # minimising = maximising Eq. 12
    torch.testing.assert_close(est, (real - fake).detach())
    torch.testing.assert_close(m.joint_max_loss(x, h_hat, x_hat, h), real - fake)  # -Eq. 13


def test_joint_max_trains_inference_and_generator_not_critics(task):
    m = built(alpha1=0.0, alpha2=1.0, cls_weight=0.0)
    data = task.train
    idx = torch.arange(8)
    target = torch.zeros(8, dtype=torch.long)
    total, parts = m.total_loss(
        data.features[idx], data.labels[idx], target, data.semantics, torch.randn(8, DA)
    )
    assert set(parts) == {"generator", "cls", "joint", "total"}
    total.backward()
    for key in ("generator", "inference"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.nets_[key].parameters())


# ---------------------------------------------------------------- other loss terms
def test_generative_loss_is_adversarial_plus_beta_cross_entropy():
    m = built(cls_weight=0.5)
    _, x_hat, h, _ = batch()
    target = torch.arange(10) % 6
    loss, adv, cls = m.generative_loss(x_hat, h, target)
    torch.testing.assert_close(adv, -m.nets_["critic"](x_hat, h).mean())
    ce = nn.functional.cross_entropy(m.nets_["seen_classifier"](x_hat), target)
    torch.testing.assert_close(cls, ce)
    torch.testing.assert_close(loss, adv + 0.5 * ce)


def test_inference_loss_gamma_weighting_and_zero_alignment_when_off():
    sem = torch.rand(8, DA)
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    x = torch.rand(6, D)
    h_hat = torch.rand(6, DA)
    off = built(gamma=0.0)
    _, adv, align = off.inference_loss(h_hat, x, labels, sem)
    assert align.item() == 0.0
    on = built(gamma=2.0)
    loss, adv, align = on.inference_loss(h_hat, x, labels, sem)
    assert align.item() > 0
    torch.testing.assert_close(loss, adv + 2.0 * align)


def test_class_centres():
    v = torch.tensor([[1.0, 0], [3.0, 2], [5.0, 5]])
    c, k = class_centres(v, torch.tensor([4, 4, 2]))
    assert k.tolist() == [2, 4]
    torch.testing.assert_close(c, torch.tensor([[5.0, 5], [2.0, 1]]))


def test_alignment_is_near_zero_when_centres_equal_the_semantics_and_positive_otherwise():
    m = built(sinkhorn_reg=1e-3)
    sem = torch.rand(8, DA)
    labels = torch.tensor([0, 0, 3, 3, 5])
    exact = sem[labels] + 0.01 * torch.tensor([1.0, -1.0, 1.0, -1.0, 0.0])[:, None]
    assert m.alignment_loss(exact, labels, sem).item() < 1e-4
    assert m.alignment_loss(sem[labels] + 0.5, labels, sem).item() > 0.5


# ---------------------------------------------------------------- Sinkhorn
def test_sinkhorn_identical_sets_zero_different_sets_positive():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=g)
    assert sinkhorn_distance(x, x, debias=True).abs().item() < 1e-6
    assert sinkhorn_distance(x, x, reg=1e-3).item() < 1e-4
    # the same set in another order is the same distribution
    assert sinkhorn_distance(x, x[torch.randperm(12, generator=g)], reg=1e-3).item() < 1e-4
    y = torch.randn(12, 5, generator=g)
    assert sinkhorn_distance(x, y).item() > 0.1
    assert sinkhorn_distance(x, y, debias=True).item() > 0.1
    # a shift by s adds about s^2 (squared Euclidean cost) for small reg
    shifted = sinkhorn_distance(x, x + torch.tensor([2.0, 0, 0, 0, 0]), reg=1e-3)
    assert abs(shifted.item() - 4.0) < 0.05


def test_sinkhorn_is_differentiable_and_pulls_sets_together():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, generator=g, requires_grad=True)
    y = torch.randn(6, 3, generator=g) + 3.0
    sinkhorn_distance(x, y).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        moved = x - 0.1 * x.grad
    assert sinkhorn_distance(moved, y) < sinkhorn_distance(x.detach(), y)


def test_sinkhorn_rejects_bad_shapes():
    with pytest.raises(ValueError, match="sets"):
        sinkhorn_distance(torch.zeros(3, 2), torch.zeros(3, 4))


# ---------------------------------------------------------------- recognition module
def test_recognition_features_layout_is_x_then_h_hat_then_f(task):
    m = TLCoupling(**TINY).fit(task.train)
    x = task.train.features[:9]
    out = m.transform_features(x)
    lay = m.recognition_layout()
    assert lay == {"x": (0, D), "h_hat": (D, D + DA), "f": (D + DA, D + DA + 8)}
    assert out.shape == (9, D + DA + 8)
    inf = m.nets_["inference"]
    with torch.no_grad():
        hidden = inf.net[1](inf.net[0](x))  # Linear -> LeakyReLU
        torch.testing.assert_close(out[:, slice(*lay["x"])], x)
        torch.testing.assert_close(out[:, slice(*lay["h_hat"])], inf(x))
        torch.testing.assert_close(out[:, slice(*lay["f"])], hidden)
    # batching does not change the result
    torch.testing.assert_close(m.transform_features(x, batch_size=2), out)
    assert m.transform_features(x[:0]).shape == (0, D + DA + 8)


def test_recognition_features_off_is_identity(task):
    m = TLCoupling(**TINY, coupled_features=False).fit(task.train)
    x = task.train.features[:4]
    assert m.transform_features(x) is x
    assert m.recognition_layout()["f"] == (D, D)


def test_base_transform_is_identity(task):
    m = CLSWGAN(epochs=1, batch_size=16, hidden_g=8, hidden_d=8, pretrain_epochs=1)
    x = torch.rand(3, D)
    assert m.transform_features(x) is x


# ---------------------------------------------------------------- ablation switches
def _params(m, key):
    return [p.detach().clone() for p in m.nets_[key].parameters()]


def _changed(before, m, key):
    return any(not torch.equal(a, b) for a, b in zip(before, m.nets_[key].parameters()))


@pytest.mark.parametrize(
    ("kw", "trained"),
    [
        (dict(alpha1=0.0, alpha2=0.0, gamma=0.0, coupled_features=False), set()),
        (dict(alpha1=1.0, alpha2=0.0), {"inference", "critic_inf"}),
        (dict(alpha1=0.0, alpha2=1.0), {"inference", "critic_joint"}),
        (dict(), {"inference", "critic_inf", "critic_joint"}),
    ],
)
def test_ablation_switches_train_exactly_the_enabled_modules(task, kw, trained):
    m = TLCoupling(**{**TINY, **kw})
    m.dims_ = m.dims_from(task.train)
    m._build(m.dims_)  # fit() keeps networks built for the same sizes
    before = {k: _params(m, k) for k in ("inference", "critic_inf", "critic_joint", "generator")}
    m.fit(task.train, epochs=1)
    assert _changed(before["generator"], m, "generator")
    for key in ("inference", "critic_inf", "critic_joint"):
        assert _changed(before[key], m, key) == (key in trained), key
    logged = set(m.history_[-1])
    assert ("w_inf" in logged) == ("critic_inf" in trained)
    assert ("w_joint" in logged) == ("critic_joint" in trained)


def test_coupled_features_without_inference_training_is_refused(task):
    with pytest.raises(ConfigError, match="coupled_features"):
        TLCoupling(**TINY, alpha1=0.0, alpha2=0.0).fit(task.train)
    with pytest.raises(ConfigError, match=">= 0"):
        TLCoupling(**TINY, gamma=-1.0).fit(task.train)


# ---------------------------------------------------------------- runner hook
def test_runner_feeds_transformed_features_to_the_classifier(task, monkeypatch):
    m = TLCoupling(**TINY).fit(task.train)
    width = m.recognition_layout()["f"][1]
    fitted: list[int] = []
    scored: list[int] = []
    orig_fit, orig_scores = SoftmaxClassifier.fit, SoftmaxClassifier.predict_scores

    def fit(self, X, *a, **k):
        fitted.append(X.shape[1])
        return orig_fit(self, X, *a, **k)

    def predict_scores(self, X):
        scored.append(X.shape[1])
        return orig_scores(self, X)

    monkeypatch.setattr(SoftmaxClassifier, "fit", fit)
    monkeypatch.setattr(SoftmaxClassifier, "predict_scores", predict_scores)
    res = train_and_evaluate(task, m, 4, ClassifierConfig(epochs=2), seed=0)
    assert fitted == [width, width]  # GZSL (real seen + synthetic) and CZSL classifiers
    assert scored and set(scored) == {width}  # test features transformed the same way
    r = next(iter(res.values()))
    assert 0.0 <= r.h <= 100.0


# ---------------------------------------------------------------- health check
def linear_toy(n_classes: int = 20, n_unseen: int = 5, n_per_class: int = 10, seed: int = 0):
    """Separable toy: class semantics = a linear function of the class feature means (h = m A).

    More seen classes than feature dimensions, so the seen class means span the feature space
    and the map extrapolates to the unseen classes. Returns the seen training data (first
    ``n_classes - n_unseen`` classes) and held-out features / labels / ids of the unseen ones.
    """
    g = torch.Generator().manual_seed(seed)
    d, da = D, DA
    means = 3.0 * torch.randn(n_classes, d, generator=g)
    a = torch.randn(d, da, generator=g)
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    x = means[labels] + 0.1 * torch.randn(len(labels), d, generator=g)
    sem = means @ a  # class semantics; every image's own x @ a is close to its class's
    unseen = torch.arange(n_classes - n_unseen, n_classes)
    is_seen = ~torch.isin(labels, unseen)
    train = SeenTrainData(
        features=x[is_seen],
        labels=labels[is_seen],
        semantics=sem,
        seen_classes=torch.arange(n_classes - n_unseen),
        unseen_classes=unseen,
        name="linear-toy",
    )
    return train, x[~is_seen], labels[~is_seen], unseen


def test_nearest_semantic_accuracy_is_per_class_cosine():
    sem = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    classes = torch.tensor([3, 5, 8])
    # scale does not matter (cosine); class 5 gets 1 of 2 right, the others all right
    pred = torch.tensor([[9.0, 0.0], [0.0, 0.1], [1.0, 0.1], [2.0, 2.1]])
    acc = nearest_semantic_accuracy(pred, torch.tensor([3, 5, 5, 8]), sem, classes)
    assert acc == pytest.approx((1 + 0.5 + 1) / 3)


def test_ridge_map_recovers_a_linear_semantic_map():
    train, x_u, y_u, unseen = linear_toy()
    ridge = RidgeMap.fit(train.features, train.labels, train.semantics)
    sem = train.semantics
    assert nearest_semantic_accuracy(ridge.predict(x_u), y_u, sem[unseen], unseen) == 1.0
    # ties go to the largest perfect penalty; a strong one (10x the mean eigenvalue) is not
    assert ridge.penalty < 10.0
    # with a tiny penalty the map itself is recovered, not only its cosine directions
    tiny = RidgeMap.fit(train.features, train.labels, sem, (1e-4,))
    rel = (tiny.predict(x_u) - sem[y_u].double()).norm() / sem[y_u].double().norm()
    assert rel < 0.1


def test_ridge_penalty_grid_and_split():
    train = linear_toy()[0]
    a = RidgeMap.fit(train.features, train.labels, train.semantics)
    b = RidgeMap.fit(train.features, train.labels, train.semantics)
    assert a.penalty == b.penalty  # deterministic split (every fifth training class)
    torch.testing.assert_close(a.weight, b.weight)
    # a single-value grid is used as is (no split needed)
    assert RidgeMap.fit(train.features, train.labels, train.semantics, (0.5,)).penalty == 0.5
    # too few training classes for a class-disjoint split: the fixed rule (penalty 1)
    two = torch.isin(train.labels, torch.tensor([0, 1]))
    few = RidgeMap.fit(train.features[two], train.labels[two], train.semantics)
    assert few.penalty == 1.0


def test_health_reports_inference_ridge_and_d2_numbers():
    train, x_u, y_u, unseen = linear_toy()
    m = TLCoupling(**TINY).fit(train)
    report = m.health(x_u, y_u, unseen, train)
    assert set(report) == {
        "hhat_zsl_acc",
        "ridge_zsl_acc",
        "ridge_penalty",
        "d2_estimate",
        "d2_true_vs_other",
        "inference_warning",
    }
    assert all(isinstance(v, float) for v in report.values())
    assert report["ridge_zsl_acc"] == 100.0  # separable, linear: the baseline is perfect
    assert 0.0 <= report["hhat_zsl_acc"] <= 100.0
    # one tiny epoch cannot beat a perfect closed form: the warning fires
    assert report["inference_warning"] == float(report["hhat_zsl_acc"] < 100.0) == 1.0


def test_health_d2_estimate_is_real_minus_inferred_critic_mean():
    train, x_u, y_u, unseen = linear_toy()
    m = TLCoupling(**TINY).fit(train)
    D2, inf = m.nets_["critic_inf"], m.nets_["inference"]
    with torch.no_grad():
        h = train.semantics[y_u]
        expected = D2(h, x_u).mean() - D2(inf(x_u), x_u).mean()
        other = train.semantics[unseen[(torch.searchsorted(unseen, y_u) + 1) % len(unseen)]]
        vs_other = D2(h, x_u).mean() - D2(other, x_u).mean()
    report = m.health(x_u, y_u, unseen, train)
    assert report["d2_estimate"] == pytest.approx(float(expected), abs=1e-5)
    assert report["d2_true_vs_other"] == pytest.approx(float(vs_other), abs=1e-5)


def test_health_of_s1_is_empty_and_without_d2_has_no_d2_numbers():
    train, x_u, y_u, unseen = linear_toy()
    s1 = TLCoupling(**TINY, alpha1=0.0, alpha2=0.0, gamma=0.0, coupled_features=False)
    assert s1.fit(train).health(x_u, y_u, unseen, train) == {}
    joint_only = TLCoupling(**TINY, alpha1=0.0).fit(train)  # D2 never trained
    report = joint_only.health(x_u, y_u, unseen, train)
    assert "hhat_zsl_acc" in report and "d2_estimate" not in report
