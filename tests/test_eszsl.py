"""The two non-generative reference rows: ESZSL (closed form) and the seen-only softmax
(ConSE for unseen classes). Properties of the maths, of the classifier each one is, and a run
through the protocol; the registry suite (tests/test_methods.py) covers the method contract."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tinydata import tiny_dataset
from unseen.config import resolve_run_config
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError
from unseen.methods import get_method
from unseen.methods.eszsl import ESZSL, _per_class_accuracy, eszsl_closed_form
from unseen.methods.seen_softmax import SeenSoftmax
from unseen.runner import run


def _dataset():
    """Features a linear map of 8-d class vectors (made unit-norm by the task, as FLO's and
    CUB's are: with vectors of unequal norms a bilinear score is not a similarity)."""
    return tiny_dataset(n_classes=10, n_unseen=3, n_per_class=15, semantic_dim=8, feature_dim=12)


@pytest.fixture(scope="module")
def task() -> ZSLTask:
    return ZSLTask(_dataset(), semantic_transform="l2")


def _problem(m: int = 40, d: int = 7, a: int = 5, z: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, d, generator=g, dtype=torch.float64)
    s = torch.randn(z, a, generator=g, dtype=torch.float64)
    y = torch.arange(m) % z
    return x, y, s


# ---------------------------------------------------------------------- ESZSL: the maths
def test_closed_form_is_the_papers_formula():
    """V = (X X^T + g I)^-1 X Y S^T (S S^T + l I)^-1 in the paper's layout (X d x m, S a x z,
    Y in {-1, 1}), computed with explicit inverses."""
    x, y, s = _problem()
    gamma, lam = 0.3, 2.0
    xp, sp = x.T, s.T  # the paper's X (d x m) and S (a x z)
    ymat = -torch.ones(len(y), s.shape[0], dtype=torch.float64)
    ymat[torch.arange(len(y)), y] = 1.0
    paper = (
        torch.linalg.inv(xp @ xp.T + gamma * torch.eye(xp.shape[0], dtype=torch.float64))
        @ xp
        @ ymat
        @ sp.T
        @ torch.linalg.inv(sp @ sp.T + lam * torch.eye(sp.shape[0], dtype=torch.float64))
    )
    ours = eszsl_closed_form(x, y, s, gamma, lam).double()
    torch.testing.assert_close(ours, paper, rtol=1e-4, atol=1e-5)


def test_closed_form_minimises_the_regularised_square_loss():
    """The gradient of ||X V S^T - Y||^2 + g ||V S^T||^2 + l ||X V||^2 + g l ||V||^2 (the
    paper's objective with beta = gamma lambda) vanishes at the closed form."""
    x, y, s = _problem(seed=1)
    gamma, lam = 0.5, 0.7
    ymat = -torch.ones(len(y), s.shape[0], dtype=torch.float64)
    ymat[torch.arange(len(y)), y] = 1.0
    v = eszsl_closed_form(x, y, s, gamma, lam).double().requires_grad_(True)
    objective = (
        (x @ v @ s.T - ymat).pow(2).sum()
        + gamma * (v @ s.T).pow(2).sum()
        + lam * (x @ v).pow(2).sum()
        + gamma * lam * v.pow(2).sum()
    )
    (grad,) = torch.autograd.grad(objective, v)
    assert float(grad.abs().max()) < 1e-3 * float(objective.detach())


def test_grid_search_matches_brute_force_closed_forms():
    """The eigenbasis shortcut scores every pair as the closed form fitted per fold would."""
    x, y, s = _problem(m=60, z=6, seed=2)
    x, s = x.float(), s.float()
    method = ESZSL(seed=4, folds=3)
    pairs = [(0.01, 0.1), (1.0, 1.0), (100.0, 0.01)]
    fast = method._held_out_t1(x, y, s, pairs)
    order = torch.randperm(6, generator=torch.Generator().manual_seed(4))
    for i, (gamma, lam) in enumerate(pairs):
        accs = []
        for held in order.tensor_split(3):
            kept = torch.tensor([c for c in range(6) if c not in held.tolist()])
            train = torch.isin(y, kept)
            pos = torch.full((6,), -1, dtype=torch.long)
            pos[kept] = torch.arange(len(kept))
            v = eszsl_closed_form(x[train], pos[y[train]], s[kept], gamma, lam)
            pos[held] = torch.arange(len(held))
            pred = (x[~train] @ v @ s[held].T).argmax(1)
            accs.append(_per_class_accuracy(pred, pos[y[~train]], len(held)))
        assert abs(float(fast[i]) - 100 * sum(accs) / len(accs)) < 1e-4


def test_choice_is_the_best_pair_and_given_values_are_used(task):
    chosen = ESZSL(seed=0, grid=[0.01, 1.0, 100.0]).fit(task.train)
    best_t1 = chosen.history_[-1]["held_out_t1"]
    for gamma in (0.01, 100.0):
        fixed = ESZSL(seed=0, reg_gamma=gamma, reg_lambda=1.0).fit(task.train)
        h = fixed.history_[-1]
        assert h["log10_gamma"] == pytest.approx(math.log10(gamma)) and h["log10_lambda"] == 0.0
        assert h["held_out_t1"] <= best_t1 + 1e-9  # same folds (same seed), one candidate
    net = fixed.nets_["eszsl"]
    x = net.inputs(task.train.features)
    seen = task.train.seen_classes
    pos = torch.full((task.train.n_classes,), -1, dtype=torch.long)
    pos[seen] = torch.arange(len(seen))
    expected = eszsl_closed_form(x, pos[task.train.labels], task.train.semantics[seen], 100.0, 1.0)
    torch.testing.assert_close(net.v.detach(), expected)


def test_scores_follow_the_papers_rule_and_are_scale_free(task):
    m = ESZSL(seed=0).fit(task.train)
    classes, sem = task.classes, task.train.semantics[task.classes]
    scorer = m.own_classifier(classes, sem)
    x = task.train.features[:50]
    raw = m.nets_["eszsl"](x) @ sem.T  # x^T V s_c, the paper's inference rule
    assert torch.equal(scorer.predict_scores(x).argmax(1), raw.argmax(1))
    with torch.no_grad():
        m.nets_["eszsl"].v.mul_(37.0)  # another regulariser's scale: same calibration gamma
    again = m.own_classifier(classes, sem).predict_scores(x)
    torch.testing.assert_close(again, scorer.predict_scores(x))


def test_sample_points_embed_onto_their_class_vectors(task):
    """Without standardisation or noise, s_c^T V^+ is mapped by V onto s_c (a <= d here)."""
    m = ESZSL(seed=0, standardize=False).fit(task.train)
    with torch.no_grad():
        m.nets_["eszsl"].spread.zero_()
    sem = task.train.semantics[task.unseen_classes]
    x = m.sample(sem, 2)
    embedded = m.nets_["eszsl"](x)
    torch.testing.assert_close(embedded, sem.repeat_interleave(2, 0), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("eszsl", {"folds": 1}, "eszsl: folds must be >= 2, got 1"),
        ("eszsl", {"grid": [1.0, 0.0]}, "eszsl: grid must list positive numbers"),
        ("eszsl", {"reg_lambda": -1.0}, r"eszsl: reg_lambda must be >= 0 \(0 = chosen\)"),
        ("seen-softmax", {"top": 0}, r"seen-softmax: top \(ConSE's T\) must be >= 1, got 0"),
    ],
)
def test_bad_options_are_refused_before_training(name, values, message, task):
    method = get_method(name)(seed=0, **values)
    with pytest.raises(ConfigError, match=message):
        method.check_config(method.dims_from(task.train))


@pytest.mark.parametrize("name", ["eszsl", "seen-softmax"])
def test_other_classifier_kinds_are_refused(name, task):
    m = get_method(name)(seed=0, epochs=1).fit(task.train)
    with pytest.raises(ConfigError, match=r"classifier\.kind=method"):
        m.transform_features(task.train.features[:3])


@pytest.mark.parametrize("name", ["eszsl", "seen-softmax"])
def test_a_run_scores_with_the_methods_own_classifier(name, tmp_path):
    """Through the protocol with classifier.kind=method: results for every metric; with the
    default softmax the run stops with the sentence that says what to set."""
    ds = _dataset()
    sets = {
        "data": {"semantic_transform": "l2"},
        "classifier": {"kind": "method"},
        "selection": {"health": False},
    }
    if name == "seen-softmax":
        sets["method"] = {"epochs": 10}
    cfg = resolve_run_config(name, "tiny", overrides=sets, seeds=[0, 1])
    res = run(cfg, tmp_path / "ok", echo=False, dataset=ds)
    summary = res["summary"]
    for key in ("t1", "s", "u", "h", "h_cal"):
        assert 0.0 <= summary[key]["mean"] <= 100.0
    if name == "eszsl":  # features are a linear map of the semantics: ESZSL recovers it
        assert summary["t1"]["mean"] > 100 / 3 + 20
    plain = resolve_run_config(name, "tiny", overrides={"selection": {"health": False}}, seeds=[0])
    with pytest.raises(ConfigError, match=r"classifier\.kind=method"):
        run(plain, tmp_path / "softmax", echo=False, dataset=ds)


# ---------------------------------------------------------------------- seen-only softmax
def test_seen_softmax_learns_seen_classes_only(task):
    m = SeenSoftmax(seed=0, epochs=30, lr=1e-2).fit(task.train)
    net = m.nets_["softmax"]
    assert net.linear.out_features == len(task.seen_classes)
    assert torch.equal(net.seen, task.seen_classes)
    scorer = m.own_classifier(task.seen_classes, task.train.semantics[task.seen_classes])
    pred = scorer.predict(task.train.features)
    assert float((pred == task.train.labels).float().mean()) > 0.9  # it learned the seen ones


def test_conse_scores(task):
    """Seen columns: the softmax's probabilities (summing to one over the seen classes);
    unseen columns: cos(sum_t p_t s_t / sum_t p_t, s_u) over the top-T seen classes."""
    top = 2
    m = SeenSoftmax(seed=0, epochs=5, top=top).fit(task.train)
    classes = task.classes
    scores = m.own_classifier(classes, task.train.semantics[classes]).predict_scores(
        task.train.features[:20]
    )
    is_seen = torch.isin(classes, task.seen_classes)
    torch.testing.assert_close(scores[:, is_seen].sum(1), torch.ones(20))
    net = m.nets_["softmax"]
    p = torch.softmax(net(task.train.features[:20]), 1).detach()
    vals, idx = p.topk(top, 1)
    f = (vals[:, :, None] * net.seen_semantics[idx]).sum(1) / vals.sum(1, keepdim=True)
    s_u = task.train.semantics[classes[~is_seen]]
    expected = F.normalize(f, dim=1) @ F.normalize(s_u, dim=1).T
    torch.testing.assert_close(scores[:, ~is_seen], expected)
