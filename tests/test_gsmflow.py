"""GSMFlow: the conditional coupling flow, relative positioning, boundary mining, variants."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from test_methods import TINY as TINY_ALL
from tinydata import tiny_dataset
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError
from unseen.methods import GenerativeMethod, GSMFlow
from unseen.methods.gsmflow import VARIANTS
from unseen.models.flows import ConditionalCouplingFlow, GlowCoupling, soft_clamp
from unseen.models.gsmflow import (
    ContrastiveNet,
    RelativePositioning,
    contrastive_loss,
    mine_boundary_samples,
    prediction_entropy,
    semantic_anchors,
)

TINY = TINY_ALL["gsmflow"]  # the registry suite's tiny sizes, one definition

FLOW_CASES = [
    dict(features=6, cond_features=3, clamp=1.0, permute=False),
    dict(features=7, cond_features=2, clamp=None, permute=True),
    dict(features=5, cond_features=0, clamp=2.0, permute=False),
]


def _flow(case: dict, **kw) -> ConditionalCouplingFlow:
    torch.manual_seed(0)
    flow = ConditionalCouplingFlow(
        case["features"],
        case["cond_features"],
        n_blocks=3,
        hidden=16,
        clamp=case["clamp"],
        permute=case["permute"],
        **kw,
    ).double()
    # Non-trivial scales: the default init keeps s small, which would hide log-det errors.
    with torch.no_grad():
        for p in flow.parameters():
            p.mul_(3.0 if case["clamp"] else 1.0)
    return flow


def _cond(case: dict, n: int) -> torch.Tensor | None:
    return (
        torch.randn(n, case["cond_features"], dtype=torch.float64)
        if case["cond_features"]
        else None
    )


@pytest.mark.parametrize("case", FLOW_CASES)
def test_flow_is_invertible_float64(case):
    flow = _flow(case)
    x = torch.randn(9, case["features"], dtype=torch.float64)
    a = _cond(case, 9)
    z, _ = flow(x, a)
    assert not torch.allclose(z, x)
    torch.testing.assert_close(flow.inverse(z, a), x, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("case", FLOW_CASES)
def test_log_det_matches_autograd_jacobian(case):
    flow = _flow(case)
    x = torch.randn(4, case["features"], dtype=torch.float64)
    a = _cond(case, 4)
    _, ladj = flow(x, a)
    for i in range(len(x)):
        ai = None if a is None else a[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, ai=ai: flow(v[None], ai)[0][0], x[i])
        expected = torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(ladj[i], expected, atol=1e-9, rtol=1e-9)


def test_condition_changes_the_map_and_indexed_condition_is_the_same_function():
    case = FLOW_CASES[0]
    flow = _flow(case)
    rows = torch.randn(3, 3, dtype=torch.float64)
    index = torch.tensor([0, 2, 2, 1, 0, 1, 2])
    x = torch.randn(len(index), 6, dtype=torch.float64, requires_grad=True)
    z_idx, l_idx = flow(x, rows, index)
    z_per, l_per = flow(x, rows[index])
    torch.testing.assert_close(z_idx, z_per)
    torch.testing.assert_close(l_idx, l_per)
    # and the gradients agree (the gathered share's backward is an index_add)
    g_idx = torch.autograd.grad((z_idx.sum() + l_idx.sum()), [x, flow.cond_weight])
    g_per = torch.autograd.grad((z_per.sum() + l_per.sum()), [x, flow.cond_weight])
    for a, b in zip(g_idx, g_per):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(flow.inverse(z_idx, rows, index), x.detach())
    # another class vector gives another z
    z_other, _ = flow(x, rows[(index + 1) % 3])
    assert (z_other - z_per).abs().max() > 1e-3


def test_gradients_reach_every_flow_parameter():
    flow = _flow(FLOW_CASES[0])
    x, a = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    z, ladj = flow(x, a)
    (z.pow(2).sum() - ladj.sum()).backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_glow_block_updates_both_halves():
    torch.manual_seed(0)
    block = GlowCoupling(6, hidden=8).double()
    u1, u2 = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    v1, v2, _ = block(u1, u2)
    assert not torch.allclose(v1, u1) and not torch.allclose(v2, u2)
    b1, b2 = block.inverse(v1, v2)
    torch.testing.assert_close(b1, u1)
    torch.testing.assert_close(b2, u2)


def test_soft_clamp_bounds_and_limits():
    s = torch.linspace(-50, 50, 201, dtype=torch.float64)
    for c in (0.5, 1.0, 2.0):
        out = soft_clamp(s, c)
        assert out.abs().max() < c  # 2c/pi * atan(.) stays inside (-c, c)
        assert torch.all(out[1:] > out[:-1])  # strictly increasing: invertible
        # FrEIA's 0.636 form bounds by 0.636 * c * pi / 2 (just below c)
        assert soft_clamp(s, c, 0.636).abs().max() < 0.636 * c * math.pi / 2
    small = torch.tensor([1e-4], dtype=torch.float64)
    torch.testing.assert_close(soft_clamp(small, 1.0), small * 2 / math.pi, rtol=1e-6, atol=0)
    assert soft_clamp(s, None) is s


def test_anchors_on_a_hand_made_similarity_matrix():
    # Cosine similarities chosen by hand; row sums 2.8, 2.9, 2.85, 2.1, 1.65
    # -> max: class 1, min: class 4, median (3rd of 5): class 0.
    sim = np.array(
        [
            [1.0, 0.9, 0.8, 0.1, 0.0],
            [0.9, 1.0, 0.7, 0.2, 0.1],
            [0.8, 0.7, 1.0, 0.3, 0.05],
            [0.1, 0.2, 0.3, 1.0, 0.5],
            [0.0, 0.1, 0.05, 0.5, 1.0],
        ]
    )
    vecs = np.linalg.cholesky(sim)  # rows with exactly these cosines (unit norm)
    norms = np.array([3.0, 0.5, 7.0, 1.0, 2.0])[:, None]  # cosine ignores the norms
    sem = torch.tensor(vecs * norms, dtype=torch.float32)
    assert semantic_anchors(sem).tolist() == [1, 4, 0]
    rp = RelativePositioning(5, out_dim=4)
    assert rp.set_anchors(sem).tolist() == [1, 4, 0]
    torch.testing.assert_close(rp.anchors, sem[[1, 4, 0]])
    # Eq. 10 written out
    a = torch.randn(3, 5)
    expected = sum(torch.relu(h(a - anc)) for h, anc in zip(rp.h, sem[[1, 4, 0]]))
    torch.testing.assert_close(rp(a), expected)


def _trained_g(seed: int = 0) -> tuple[ContrastiveNet, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    k, d, d_a = 4, 6, 3
    sem = torch.randn(k, d_a)
    centres = 3 * torch.randn(k, d)
    y = torch.arange(k).repeat_interleave(30)
    x = centres[y] + 0.3 * torch.randn(len(y), d)
    g = ContrastiveNet(d, d_a, hidden=32)
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    for _ in range(200):
        loss = contrastive_loss(g.scores(x, sem), y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in g.parameters():
        p.requires_grad_(False)
    return g, x, y, sem


def test_boundary_mining_raises_the_entropy_of_g():
    g, x, y, sem = _trained_g()
    base = prediction_entropy(g.scores(x, sem)).mean()
    assert base < 0.9 * math.log(4)  # g is confident on its training data
    trace: list[float] = []
    x_plus = mine_boundary_samples(
        g, x, y, sem, steps=10, lr=20.0, entropy_weight=10.0, batch_size=32, trace=trace
    )
    assert len(trace) == 11 and trace[0] == pytest.approx(float(base), rel=1e-5)
    assert trace[-1] > trace[0] + 0.05  # the samples moved toward the boundaries
    assert sum(b >= a - 1e-6 for a, b in itertools.pairwise(trace)) >= 8  # (nearly) monotone
    after = prediction_entropy(g.scores(x_plus, sem)).mean()
    assert float(after) == pytest.approx(trace[-1], rel=1e-5)
    # the sign: without the entropy term the same steps do not raise it (they lower L_con)
    trace0: list[float] = []
    mine_boundary_samples(
        g, x, y, sem, steps=10, lr=20.0, entropy_weight=0.0, batch_size=32, trace=trace0
    )
    assert trace0[-1] <= trace0[0] + 1e-3 < trace[-1]
    assert not torch.equal(x_plus, x) and x_plus.shape == x.shape


def test_pair_scores_backward_matches_autograd_float64():
    """g's hand-written pair backward (_PairLogits) against autograd of the plain formula,
    for every input (samples, class part, last layer) -- training g needs all three."""
    torch.manual_seed(0)
    g = ContrastiveNet(6, 3, hidden=5, n_classes=4).double()
    x = torch.randn(7, 6, dtype=torch.float64, requires_grad=True)
    sem = torch.randn(4, 3, dtype=torch.float64)
    target = torch.randint(4, (7,))

    def plain(x):
        h = g.fc_x(x)[:, None, :] + g.fc_a(sem)[None]
        return torch.sigmoid(g.out(torch.relu(h)).squeeze(-1))

    params = [x, *g.parameters()]
    grads = []
    for fn in (plain, lambda x: g.scores(x, sem)):
        s = fn(x)
        loss = (contrastive_loss(s, target) - prediction_entropy(s)).sum()
        grads.append(torch.autograd.grad(loss, params))
    assert torch.allclose(plain(x), g.scores(x, sem), atol=1e-14)
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-12)
    # the frozen-class shortcut used by mining is the same function
    assert torch.equal(g.scores(x, sem), g.scores(x, class_part=g.class_part(sem)))


def test_mining_in_class_groups_official_mode():
    """class_groups (the official code's batches, each against its own classes): one group
    holding every class is Eq. 4 itself; small groups still raise the entropy."""
    g, x, y, sem = _trained_g()
    kw = dict(steps=5, lr=20.0, entropy_weight=10.0, batch_size=32)
    assert torch.allclose(
        mine_boundary_samples(g, x, y, sem, **kw),
        mine_boundary_samples(g, x, y, sem, **kw, class_groups=len(x)),
        atol=1e-6,
    )
    trace: list[float] = []
    torch.manual_seed(0)
    x_plus = mine_boundary_samples(g, x, y, sem, **kw, trace=trace, class_groups=3)
    assert x_plus.shape == x.shape and trace[-1] > trace[0]
    # groups of 3 see at most 3 classes: entropies bounded by log 3 (< log 4 of all classes)
    assert max(trace) <= math.log(3) + 1e-6


@pytest.fixture(scope="module")
def task() -> ZSLTask:
    return ZSLTask(tiny_dataset(n_per_class=12))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_ablation_variant_trains_and_samples(variant, task):
    m = GSMFlow(seed=0, variant=variant, **TINY).fit(task.train)
    assert set(m.nets_) >= {"flow"}
    assert ("g" in m.nets_) == VARIANTS[variant]["em"]
    assert ("rp" in m.nets_) == VARIANTS[variant]["rp"]
    assert ("proto" in m.history_[-1]) == VARIANTS[variant]["proto"]
    x = m.sample(task.train.semantics[task.unseen_classes], 4)
    assert x.shape == (4 * len(task.unseen_classes), task.train.feature_dim)
    assert torch.isfinite(x).all()


def test_full_variant_mines_and_doubles_the_training_set(task):
    m = GSMFlow(seed=0, **{**TINY, "mining_steps": 3})
    m.fit(task.train)
    x_plus, y_plus = m.boundary_samples(m._to_device(task.train))
    assert x_plus.shape == task.train.features.shape
    assert torch.equal(y_plus, task.train.labels)
    assert len(m.mining_trace_) == 4


def test_unknown_variant_is_a_config_error(task):
    with pytest.raises(ConfigError, match="variant"):
        GSMFlow(variant="nope", **TINY).fit(task.train)


def test_save_load_round_trip_keeps_anchors_and_samples(task, tmp_path):
    m = GSMFlow(seed=3, **TINY).fit(task.train)
    path = tmp_path / "gsm.pt"
    m.save(path)
    loaded = GenerativeMethod.load(path)
    assert isinstance(loaded, GSMFlow)
    torch.testing.assert_close(loaded.nets_["rp"].anchors, m.nets_["rp"].anchors)
    assert loaded.nets_["rp"].anchors.abs().sum() > 0
    sem = task.train.semantics[task.unseen_classes]
    torch.manual_seed(0)
    a = m.sample(sem, 3)
    torch.manual_seed(0)
    b = loaded.sample(sem, 3)
    torch.testing.assert_close(a, b)


def test_izf_prior_scale_is_a_scaling_of_the_class_vectors(task):
    """Variant izf-prior's prior N([s a, 0], I): prior_scale s is the same as feeding s a."""
    m = GSMFlow(seed=0, variant="izf-prior", **{**TINY, "prior_scale": 3.0}).fit(task.train)
    data = m._to_device(task.train)
    means = data.features.new_zeros(data.n_classes, data.feature_dim)
    x, y, sem = data.features[:20], data.labels[:20], data.semantics.float()
    with torch.no_grad():
        scaled = m.losses(x, y, sem, means)["flow"].item()
        m.config.prior_scale = 1.0
        fed = m.losses(x, y, 3.0 * sem, means)["flow"].item()
        unscaled = m.losses(x, y, sem, means)["flow"].item()
    assert scaled == pytest.approx(fed, rel=1e-6)
    assert unscaled != pytest.approx(fed, rel=1e-3)


def test_contrastive_classes_batch_fits_and_bad_value_is_a_config_error(task):
    m = GSMFlow(seed=0, **{**TINY, "mining_steps": 2, "contrastive_classes": "batch"})
    m.fit(task.train)
    assert len(m.mining_trace_) == 3
    with pytest.raises(ConfigError, match="contrastive_classes"):
        GSMFlow(**{**TINY, "contrastive_classes": "some"}).fit(task.train)
