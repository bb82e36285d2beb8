"""f-VAEGAN-D2: L_VAE against a hand computation, the KL at the prior, the transductive D2
option (refused without unlabeled data, marked in the runner's outputs), fit and sample,
seeds, the BCE range guard and option errors."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import check_transductive_run
from tinydata import tiny_dataset
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError
from unseen.methods import get_method
from unseen.methods.fvaegan import FVAEGAN, vae_loss

TINY = dict(epochs=2, batch_size=16, hidden_e=16, hidden_g=16, hidden_d=16, critic_steps=2)


@pytest.fixture(scope="module")
def tiny():
    return tiny_dataset(n_per_class=12)


# ---------------------------------------------------------------- L_VAE
def test_vae_loss_equals_a_hand_computation():
    recon = torch.tensor([[0.2, 0.9], [0.5, 0.4]])
    x = torch.tensor([[0.0, 1.0], [1.0, 0.5]])
    mu = torch.tensor([[1.0], [0.0]])
    logvar = torch.tensor([[0.0], [math.log(2.0)]])
    rec, kl = vae_loss(recon, x, mu, logvar, "bce")
    # row 1: -log(0.8) - log(0.9); row 2: -log(0.5) - 0.5 log(0.4) - 0.5 log(0.6)
    bce = (
        -math.log(0.8) - math.log(0.9) - math.log(0.5) - 0.5 * math.log(0.4) - 0.5 * math.log(0.6)
    ) / 2
    # KL(N(mu, s2) || N(0, 1)) = 0.5 (mu^2 + s2 - 1 - log s2): 0.5 and 0.5 (1 - log 2)
    kl_hand = (0.5 + 0.5 * (1.0 - math.log(2.0))) / 2
    assert rec.item() == pytest.approx(bce, rel=1e-6)
    assert kl.item() == pytest.approx(kl_hand, rel=1e-6)
    rec2, kl2 = vae_loss(recon, x, mu, logvar, "l2")
    l2 = ((0.2**2 + 0.1**2) + (0.5**2 + 0.1**2)) / 2
    assert rec2.item() == pytest.approx(l2, rel=1e-6)
    assert kl2.item() == pytest.approx(kl_hand, rel=1e-6)
    # the same as PyTorch's BCE summed over dimensions, averaged over the batch
    ref = torch.nn.functional.binary_cross_entropy(recon, x, reduction="sum") / 2
    torch.testing.assert_close(rec, ref)


def test_kl_is_zero_at_the_prior():
    zeros = torch.zeros(5, 7)
    x = torch.rand(5, 3)
    _, kl = vae_loss(torch.full((5, 3), 0.5), x, zeros, zeros, "bce")
    assert kl.item() == 0.0


def test_vae_loss_gradient_reaches_encoder_and_generator(tiny):
    m = FVAEGAN(seed=0, **TINY).fit(ZSLTask(tiny).train, epochs=0)
    data = ZSLTask(tiny).train
    x, a = data.features[:8], data.semantics[data.labels[:8]]
    z, mu, logvar = m._encode(x, a)
    rec, kl = vae_loss(m.nets_["generator"](z, a), x, mu, logvar, "bce")
    (rec + kl).backward()
    for net in ("encoder", "generator"):
        assert all(p.grad is not None for p in m.nets_[net].parameters()), net


# ---------------------------------------------------------------- transductive D2
def test_transductive_option_needs_unlabeled_features(tiny):
    inductive = ZSLTask(tiny)
    assert inductive.train.unlabeled is None
    with pytest.raises(ConfigError, match="transductive=True"):
        FVAEGAN(**TINY, transductive=True).fit(inductive.train)
    with pytest.raises(ConfigError, match="transductive=True"):
        FVAEGAN(**TINY, transductive=True).fit(inductive.validation().train)


@pytest.mark.parametrize("d2_classes", ["all", "unseen"])
def test_transductive_trains_d2(tiny, d2_classes):
    task = ZSLTask(tiny, transductive=True)
    m = FVAEGAN(seed=0, **TINY, transductive=True, d2_classes=d2_classes).fit(task.train)
    assert "critic_u" in m.nets_ and "critic_u" in m.optimizers_
    last = m.history_[-1]
    assert {"critic_u", "wasserstein_u", "generator_u", "recon", "kl"} <= set(last)
    assert all(math.isfinite(v) for h in m.history_ for v in h.values())
    # the inductive model has no D2 and never looks at the unlabeled features
    plain = FVAEGAN(seed=0, **TINY).fit(task.train)
    assert "critic_u" not in plain.nets_ and "critic_u" not in plain.history_[-1]


def test_runner_marks_transductive_results(tiny, tmp_path):
    sets = {
        "method": {**TINY, "transductive": True},
        "classifier": {"kind": "softmax", "epochs": 3},
        "selection": {"eval_every": 2, "n_synthetic": [5]},
    }
    check_transductive_run("fvaegan", sets, tiny, tmp_path)


# ---------------------------------------------------------------- fit, sample, seeds
def test_fit_and_sample_on_the_tiny_problem(tiny):
    task = ZSLTask(tiny)
    m = get_method("fvaegan")(seed=0, **TINY).fit(task.train)
    assert m.epoch_ == 2 and {"critic", "wasserstein", "recon", "kl", "generator"} <= set(
        m.history_[-1]
    )
    sem = task.train.semantics[task.unseen_classes]
    x = m.sample(sem, 6)
    assert x.shape == (6 * len(sem), task.train.feature_dim)
    assert ((x > 0) & (x < 1)).all()  # sigmoid output: a Bernoulli decoder (official)
    # latent size = semantic size by default (official: latent_size = attSize)
    assert m.nets_["generator"].noise_dim == task.train.semantic_dim


@pytest.mark.parametrize("extra", [{}, {"encoded_noise": True}, {"transductive": True}])
def test_same_seed_same_result(tiny, extra):
    task = ZSLTask(tiny, transductive=True)
    sem = task.train.semantics[task.unseen_classes]
    out = []
    for seed in (0, 0, 1):
        m = FVAEGAN(seed=seed, **TINY, **extra).fit(task.train)
        torch.manual_seed(3)
        out.append(m.sample(sem, 4))
    assert torch.equal(out[0], out[1])
    assert not torch.equal(out[0], out[2])


# ---------------------------------------------------------------- guards
def test_bce_needs_features_in_unit_interval(tiny):
    raw = ZSLTask(tiny, feature_transform="none")
    assert raw.train.features.min() < 0
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        FVAEGAN(**TINY).fit(raw.train)
    m = FVAEGAN(**TINY, recon="l2", out_activation="none").fit(raw.train)
    assert all(math.isfinite(v) for h in m.history_ for v in h.values())


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"recon": "l1"}, "recon"),
        ({"out_activation": "tanh"}, "out_activation"),
        ({"recon": "bce", "out_activation": "relu"}, "sigmoid"),
        ({"d2_classes": "seen"}, "d2_classes"),
    ],
)
def test_bad_options_are_refused_before_training(bad, match):
    m = FVAEGAN(**{**TINY, **bad})
    with pytest.raises(ConfigError, match=match):
        m.check_config({"feature_dim": 6, "semantic_dim": 4, "n_classes": 8, "n_seen": 6})


# ---------------------------------------------------------------- official adaptive lambda
def test_adaptive_gp_lambda_follows_the_official_rule(tiny, monkeypatch):
    """lambda *= 1.1 when the step's mean penalty m > 1.05, /= 1.1 when m < 1.001, else kept."""
    import unseen.methods.fvaegan as fv

    task = ZSLTask(tiny)
    seen = []
    for value, factor in ((2.0, 1.1), (0.5, 1 / 1.1), (1.02, 1.0)):
        monkeypatch.setattr(fv, "gradient_penalty", lambda *a, v=value, **k: torch.tensor(v))
        m = FVAEGAN(seed=0, **{**TINY, "epochs": 1}, gp_adaptive=True).fit(task.train)
        steps = math.ceil(len(task.train.labels) / TINY["batch_size"])
        expected = 10.0 * factor**steps  # one rescaling per generator step
        assert float(m.nets_["critic"].gp_lambda) == pytest.approx(expected, rel=1e-5)
        seen.append(float(m.nets_["critic"].gp_lambda))
    assert seen[0] > 10.0 > seen[1] and seen[2] == pytest.approx(10.0)


def test_adaptive_gp_lambda_is_checkpointed_and_resumes(tiny, tmp_path):
    from test_methods import fit_killed

    task = ZSLTask(tiny)
    cfg = {**TINY, "epochs": 3, "gp_adaptive": True}
    full = FVAEGAN(seed=0, **cfg).fit(task.train)
    assert float(full.nets_["critic"].gp_lambda) != 10.0  # it moved (real penalties)
    ckpt = tmp_path / "ckpt.pt"
    fit_killed(FVAEGAN(seed=0, **cfg), task.train, ckpt)
    resumed = FVAEGAN(seed=0, **cfg).fit(task.train, checkpoint=ckpt)
    assert torch.equal(resumed.nets_["critic"].gp_lambda, full.nets_["critic"].gp_lambda)
    torch.testing.assert_close(resumed.nets_.state_dict(), full.nets_.state_dict())


def test_adaptive_gp_lambda_refuses_batched_seeds(tiny):
    m = FVAEGAN(seed=0, **TINY, gp_adaptive=True)
    m.seed_batch_ = [0, 1]
    with pytest.raises(ConfigError, match="gp_adaptive"):
        m.fit(ZSLTask(tiny).train)
