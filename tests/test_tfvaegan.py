"""tf-VAEGAN: L_R against a hand computation, the decoder off reduces to f-VAEGAN exactly,
the feedback changes the second pass only, which networks learn in which pass, the feature
transformation seen by the classifier, a full protocol run, and option errors."""

from __future__ import annotations

import math

import pytest
import torch

from tinydata import tiny_dataset
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError
from unseen.methods.fvaegan import FVAEGAN
from unseen.methods.tfvaegan import TFVAEGAN, cycle_loss

TINY = dict(epochs=2, batch_size=16, hidden_e=16, hidden_g=16, hidden_d=16, critic_steps=2)
DIMS = {"feature_dim": 6, "semantic_dim": 4, "n_classes": 8, "n_seen": 6}


@pytest.fixture(scope="module")
def task():
    return ZSLTask(tiny_dataset(n_per_class=12))


# ---------------------------------------------------------------- L_R
def test_cycle_loss_equals_a_hand_computation():
    pred = torch.tensor([[0.5, 0.0], [1.0, 1.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 4.0]])
    # l1: rows 0.5 and 1 + 3 = 4 -> mean 2.25
    assert cycle_loss(pred, target, "l1").item() == pytest.approx(2.25)
    # weighted: row 1: d = (0.5, 0): w = (0.25 / 0.5, 0) = (0.5, 0) -> 0.25
    # row 2: d = (1, -3), |d| = sqrt(10): w = (1, 9) / sqrt(10) -> (1 + 27) / sqrt(10)
    hand = (0.25 + 28 / math.sqrt(10)) / 2
    assert cycle_loss(pred, target, "weighted_l1").item() == pytest.approx(hand, rel=1e-6)
    with pytest.raises(ConfigError, match="decoder_loss"):
        cycle_loss(pred, target, "l2")


# ---------------------------------------------------------------- reductions and passes
def test_without_the_decoder_it_is_fvaegan_exactly(task):
    """recons_weight 0 turns off Dec, F and the transformation: the same training stream and
    the same samples as f-VAEGAN for the same seed."""
    sem = task.train.semantics[task.unseen_classes]
    out = []
    for cls, extra in ((FVAEGAN, {}), (TFVAEGAN, {"recons_weight": 0.0})):
        m = cls(seed=3, **TINY, **extra).fit(task.train)
        torch.manual_seed(5)
        out.append(m.sample(sem, 4))
    assert torch.equal(out[0], out[1])
    assert set(m.nets_) == {"encoder", "generator", "critic"}
    x = task.train.features[:5]
    assert m.transform_features(x) is x


def test_feedback_changes_the_second_pass_only(task):
    m = TFVAEGAN(seed=0, **TINY, a1=0.5, a2=0.7).fit(task.train)
    G = m.nets_["generator"]
    z = torch.randn(5, G.noise_dim)
    a = task.train.semantics[task.train.labels[:5]]
    with torch.no_grad():
        plain = G(z, a)
        assert torch.equal(m._generate(z, a), plain)  # delta 0 between passes
        m._delta = 0.7
        fed = m._generate(z, a)
        m._delta = 0.0
    assert not torch.equal(fed, plain)  # small at N(0, 0.02) init, but there
    # sampling uses the feedback at a2: the same noise gives the fed output
    torch.manual_seed(1)
    s = m.sample(a[:1], 5)
    torch.manual_seed(1)
    z1 = torch.randn(5, G.noise_dim)
    m._delta = 0.7
    with torch.no_grad():
        ref = m._generate(z1, a[:1].repeat(5, 1))
    m._delta = 0.0
    torch.testing.assert_close(s, ref)


def test_which_networks_learn(task):
    """Dec learns (real batches and the cycle loss), F learns in the feedback pass only: with
    feedback off it does not exist and each epoch is one pass."""
    m = TFVAEGAN(seed=0, **{**TINY, "epochs": 0}).fit(task.train)
    before = {k: [p.detach().clone() for p in m.nets_[k].parameters()] for k in m.nets_}
    m.config.epochs = 1
    m.fit(task.train)
    for key, params in before.items():
        changed = any(not torch.equal(p, q) for p, q in zip(params, m.nets_[key].parameters()))
        assert changed, key
    assert {"decoder_real", "cycle", "recon", "kl", "critic"} <= set(m.history_[-1])
    off = TFVAEGAN(seed=0, **TINY, feedback=False).fit(task.train)
    assert "feedback" not in off.nets_ and "feedback" not in off.optimizers_


def test_feature_transformation(task):
    m = TFVAEGAN(seed=0, **TINY).fit(task.train)
    x = task.train.features[:7]
    out = m.transform_features(x)
    d, da, h = task.train.feature_dim, task.train.semantic_dim, TINY["hidden_g"]
    assert out.shape == (7, d + da + h)
    torch.testing.assert_close(out[:, :d], x)
    a_hat = out[:, d : d + da]
    torch.testing.assert_close(a_hat.norm(dim=1), torch.ones(7))  # L2-normalised (official)
    raw = TFVAEGAN(seed=0, **TINY, classifier_input="x").fit(task.train)
    assert raw.transform_features(x) is x


def test_a_full_protocol_run(tmp_path):
    """The runner trains the classifier on the transformed features of real seen, synthetic
    unseen and test features alike."""
    from unseen.config import resolve_run_config
    from unseen.runner import run

    sets = {
        "method": TINY,
        "classifier": {"kind": "softmax", "epochs": 3},
        "selection": {"eval_every": 2, "n_synthetic": [5]},
    }
    cfg = resolve_run_config("tfvaegan", "toy", overrides=sets, seeds=[0])
    rep = run(cfg, tmp_path / "run", dataset=tiny_dataset(n_per_class=12), echo=False)
    result = rep["seeds"]["0"]["result"]
    assert 0.0 <= result["h"] <= 100.0 and math.isfinite(result["t1"])


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"decoder_loss": "l2"}, "decoder_loss"),
        ({"classifier_input": "h"}, "classifier_input"),
        ({"transductive": True}, "transductive"),
        ({"a1": -1.0}, "a1"),
    ],
)
def test_bad_options_are_refused_before_training(bad, match):
    with pytest.raises(ConfigError, match=match):
        TFVAEGAN(**{**TINY, **bad}).check_config(DIMS)
