"""CE-GZSL: the two contrastive losses against hand computations, the comparator's all-pairs
scoring, which losses reach which networks (and which updates move which weights), the
embedding the final classifier sees, the learning-rate decay, option errors and one run of
the whole protocol on the embedded features."""

from __future__ import annotations

import math

import pytest
import torch

from tinydata import tiny_dataset
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError
from unseen.methods.cegzsl import (
    CEGZSL,
    Comparator,
    class_contrastive_loss,
    instance_contrastive_loss,
)

TINY = dict(
    epochs=2,
    batch_size=16,
    hidden_g=16,
    hidden_d=16,
    embed_dim=12,
    proj_dim=8,
    hidden_f=16,
    critic_steps=2,
)
DIMS = {"feature_dim": 6, "semantic_dim": 4, "n_classes": 8, "n_seen": 6}
NETS = ("generator", "critic", "embedding", "projection", "comparator")


@pytest.fixture(scope="module")
def task():
    return ZSLTask(tiny_dataset(n_per_class=12))


def _lse(*values: float) -> float:
    return math.log(sum(math.exp(v) for v in values))


# ---------------------------------------------------------------- losses
def test_instance_loss_equals_a_hand_computation():
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 2])
    tau = 0.5
    # cosines / tau: s12 = 1.2, s13 = 0, s14 = -2; s21 = 1.2, s23 = 1.6, s24 = -1.2.
    # Anchors 3 and 4 have no positive and are left out; anchors 1 and 2 have one each.
    l1 = -(1.2 - _lse(1.2, 0.0, -2.0))
    l2 = -(1.2 - _lse(1.2, 1.6, -1.2))
    loss = instance_contrastive_loss(z, labels, tau)
    assert loss.item() == pytest.approx((l1 + l2) / 2, rel=1e-6)
    # the rows are scaled to unit length first: lengths do not matter
    scaled = z * torch.tensor([[2.0], [0.5], [3.0], [1.5]])
    assert instance_contrastive_loss(scaled, labels, tau).item() == pytest.approx(loss.item())


def test_instance_loss_averages_over_each_anchors_positives():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = torch.tensor([0, 0, 0])  # every anchor has two positives and no negative
    tau = 1.0
    s = {(0, 1): 0.0, (0, 2): 0.6, (1, 2): 0.8}
    sim = lambda i, j: s[min(i, j), max(i, j)]  # noqa: E731
    per_anchor = []
    for i in range(3):
        others = [j for j in range(3) if j != i]
        lse = _lse(*(sim(i, j) for j in others))
        per_anchor.append(-sum(sim(i, j) - lse for j in others) / 2)
    loss = instance_contrastive_loss(z, labels, tau)
    assert loss.item() == pytest.approx(sum(per_anchor) / 3, rel=1e-6)


def test_instance_loss_without_positives_is_zero_and_finite():
    z = torch.randn(4, 3, requires_grad=True)
    loss = instance_contrastive_loss(z, torch.arange(4), 0.1)
    assert loss.item() == 0.0
    single = instance_contrastive_loss(torch.randn(1, 3), torch.tensor([0]), 0.1)
    assert single.item() == 0.0
    # one pair of positives among singletons: finite loss and gradients
    loss = instance_contrastive_loss(z, torch.tensor([0, 0, 1, 2]), 0.1)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(z.grad).all()


def test_class_loss_equals_a_hand_computation():
    scores = torch.tensor([[2.0, 0.0, 1.0], [0.5, 0.5, -1.0]])
    target = torch.tensor([0, 2])
    tau = 0.5
    l1 = -(4.0 - _lse(4.0, 0.0, 2.0))
    l2 = -(-2.0 - _lse(1.0, 1.0, -2.0))
    loss = class_contrastive_loss(scores, target, tau)
    assert loss.item() == pytest.approx((l1 + l2) / 2, rel=1e-6)


def test_comparator_scores_every_pair_as_the_mlp_on_concatenations():
    torch.manual_seed(0)
    comp = Comparator(embed_dim=5, semantic_dim=3, hidden=7)
    h, classes = torch.randn(4, 5), torch.randn(6, 3)
    scores = comp(h, classes)
    assert scores.shape == (4, 6)
    # the official comparator: one Linear on [h, a] (weights [W_h | W_a]), LeakyReLU, Linear
    first = torch.nn.Linear(8, 7)
    with torch.no_grad():
        first.weight.copy_(torch.cat([comp.from_h.weight, comp.from_a.weight], dim=1))
        first.bias.copy_(comp.from_h.bias)
    for i in range(4):
        for c in range(6):
            pair = torch.cat([h[i], classes[c]])[None]
            ref = comp.out(torch.nn.functional.leaky_relu(first(pair), 0.2))
            torch.testing.assert_close(scores[i, c], ref[0, 0])
    pairs = comp.pair_scores(h, classes[:4])
    torch.testing.assert_close(pairs, scores.diagonal())


# ---------------------------------------------------------------- which losses reach what
def _built(task, **kw) -> CEGZSL:
    return CEGZSL(seed=0, **{**TINY, **kw}).fit(task.train, epochs=0)


def _batch(m: CEGZSL, task):
    data = m._to_device(task.train)
    x, y, a = m._draw_batch(data)
    return x, y, a, data.semantics[data.seen_classes]


def _reached(m: CEGZSL, loss: torch.Tensor) -> set[str]:
    """The networks with a nonzero gradient from ``loss``."""
    for p in m.nets_.parameters():
        p.grad = None
    loss.backward(retain_graph=True)
    return {
        k
        for k in NETS
        if any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.nets_[k].parameters())
    }


def test_each_loss_reaches_only_its_networks(task):
    m = _built(task)
    torch.manual_seed(1)
    batch = _batch(m, task)
    critic = m._critic_losses(*batch)
    assert _reached(m, critic["wgan"]) == {"critic"}  # the fakes are drawn without gradients
    assert _reached(m, critic["ins_real"]) == {"embedding", "projection"}
    assert _reached(m, critic["cls_real"]) == {"embedding", "comparator"}
    assert _reached(m, critic["total"]) == {"critic", "embedding", "projection", "comparator"}
    gen = m._generator_losses(*batch)
    # the generator's terms reach G through D, E, H and F (frozen in its update, below)
    assert "generator" in _reached(m, gen["adv"])
    assert {"generator", "embedding", "projection"} <= _reached(m, gen["ins_fake"])
    assert "comparator" not in _reached(m, gen["ins_fake"])
    assert {"generator", "embedding", "comparator"} <= _reached(m, gen["cls_fake"])
    assert "projection" not in _reached(m, gen["cls_fake"])


def _snapshot(m: CEGZSL) -> dict[str, list[torch.Tensor]]:
    return {k: [p.detach().clone() for p in m.nets_[k].parameters()] for k in NETS}


def _moved(m: CEGZSL, before: dict[str, list[torch.Tensor]]) -> set[str]:
    return {
        k
        for k in NETS
        if any(not torch.equal(p, q) for p, q in zip(m.nets_[k].parameters(), before[k]))
    }


def test_critic_update_leaves_g_and_generator_update_moves_only_g(task):
    m = _built(task)
    torch.manual_seed(2)
    batch = _batch(m, task)
    before = _snapshot(m)
    m._critic_update(*batch)
    assert _moved(m, before) == {"critic", "embedding", "projection", "comparator"}
    before = _snapshot(m)
    m._generator_update(*batch)
    assert _moved(m, before) == {"generator"}
    # the frozen networks are trainable again for the next critic step
    assert all(p.requires_grad for p in m.nets_.parameters())


# ---------------------------------------------------------------- training and outputs
def test_fit_logs_every_loss_and_decays_the_learning_rate(task):
    m = CEGZSL(seed=0, **{**TINY, "epochs": 3, "lr_decay_every": 2, "lr_decay": 0.5})
    m.fit(task.train)
    keys = {"critic", "generator", "wasserstein", "ins_real", "cls_real"}
    assert keys | {"adv", "ins_fake", "cls_fake"} <= set(m.history_[-1])
    assert all(math.isfinite(v) for h in m.history_ for v in h.values())
    for opt in m.optimizers_.values():  # decayed once, after epoch 2
        assert opt.param_groups[0]["lr"] == pytest.approx(m.config.lr * 0.5)
    # the noise size is the semantic size by default (official: nz = attSize)
    assert m.nets_["generator"].noise_dim == task.train.semantic_dim


def test_transform_features_is_the_trained_embedding(task):
    m = CEGZSL(seed=0, **TINY).fit(task.train)
    x = task.train.features[:10]
    h = m.transform_features(x)
    assert h.shape == (10, TINY["embed_dim"]) and h.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(h, torch.relu(m.nets_["embedding"][0](x)))
    assert (h >= 0).all()  # E ends in a ReLU (official)
    # it is the embedding E learnt in training, not a fixed map
    untrained = _built(task)
    assert not torch.allclose(untrained.transform_features(x), h)
    with torch.no_grad():
        m.nets_["embedding"][0].weight.mul_(2.0)
    assert not torch.allclose(m.transform_features(x), h)
    assert m.transform_features(x[:0]).shape == (0, TINY["embed_dim"])


def test_transform_features_hx_appends_the_raw_features(task):
    m = CEGZSL(seed=0, **TINY, classifier_features="hx").fit(task.train, epochs=1)
    x = task.train.features[:5]
    out = m.transform_features(x, batch_size=2)
    e = TINY["embed_dim"]
    assert out.shape == (5, e + x.shape[1])
    torch.testing.assert_close(out[:, e:], x)
    torch.testing.assert_close(out[:, :e], m.nets_["embedding"](x).detach())


def test_run_classifies_in_the_embedding_space(tmp_path, monkeypatch):
    """The whole protocol: the final softmax is trained and scored on h (embed_dim wide)."""
    from unseen.config import resolve_run_config
    from unseen.runner import run

    widths: list[int] = []
    original = CEGZSL.transform_features

    def spy(self, x, *args, **kwargs):
        out = original(self, x, *args, **kwargs)
        widths.append(out.shape[1])
        return out

    monkeypatch.setattr(CEGZSL, "transform_features", spy)
    sets = {
        "method": TINY,
        "classifier": {"kind": "softmax", "epochs": 2, "batch_equals_n_synthetic": True},
        "selection": {"eval_every": 2, "n_synthetic": [5], "health": False},
    }
    rep = run(
        resolve_run_config("cegzsl", "toy", overrides=sets, seeds=[0]),
        tmp_path / "r",
        dataset=tiny_dataset(n_per_class=12),
        echo=False,
    )
    result = rep["seeds"]["0"]["result"]
    assert all(0.0 <= result[k] <= 100.0 for k in ("t1", "u", "s", "h"))
    assert widths and set(widths) == {TINY["embed_dim"]}


# ---------------------------------------------------------------- option errors
@pytest.mark.parametrize(
    "bad, match",
    [
        ({"ins_temp": 0.0}, r"ins_temp must be a temperature > 0, got 0\.0"),
        ({"cls_temp": -0.5}, r"cls_temp must be a temperature > 0, got -0\.5"),
        ({"lr_decay": 0.0}, r"lr_decay must lie in \(0, 1\], got 0\.0"),
        ({"embed_dim": 0}, r"embed_dim must be an integer >= 1, got 0"),
        ({"classifier_features": "z"}, r"classifier_features must be one of .*got 'z'"),
    ],
)
def test_bad_options_are_refused_before_training(task, bad, match):
    m = CEGZSL(**{**TINY, **bad})
    with pytest.raises(ConfigError, match=match):
        m.check_config(DIMS)
    with pytest.raises(ConfigError, match=match):
        CEGZSL(**{**TINY, **bad}).fit(task.train)
