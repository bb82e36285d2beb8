"""Seeds as one batched model (--batch-seeds): stacked layers compute each seed's own layer,
batched training equals sequential training up to float rounding, resume after a kill, the
runner's per-seed outputs, and methods that cannot batch.

Why a tolerance and not equality: a batched matrix product (``baddbmm``) sums in another
order than a plain one (``addmm``), so gradients differ in the last bits. Adam divides by
the root of the squared-gradient average, so where a gradient coordinate is ~0 (e.g. a
critic's first-layer weight on a near-constant input column) a last-bit difference can flip
the sign of that coordinate's update, each worth up to ~lr: over the ~50 updates of the
tiny problem at lr 1e-4 that bounds a weight's difference by ~5e-3 (observed: up to 4e-4,
in the critics' first layers only; 1e-9 elsewhere). The random streams are the same draw for
draw, so the differences stay at that size instead of becoming seed noise: the synthetic
features agree to 1e-6, while two different seeds differ by ~1e-2 (features of ~1e-2 size
after a few epochs from N(0, 0.02) weights).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import fit_killed
from test_methods import TINY as TINY_BY_METHOD
from tinydata import tiny_dataset
from unseen.config import resolve_run_config
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError
from unseen.methods import available_methods, get_method
from unseen.methods.seedbatch import fit_seeds, members, restore_rng
from unseen.models.mlp import MLP, ConditionalCritic
from unseen.models.stacked import StackedLinear, stack_modules, unstack_into
from unseen.runner import run

TINY = dict(epochs=3, batch_size=16, hidden_g=16, hidden_d=16, critic_steps=2, pretrain_epochs=2)
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def task():
    return ZSLTask(tiny_dataset(n_per_class=12))


# ---------------------------------------------------------------- stacked layers
def test_a_stacked_module_computes_each_seeds_module():
    nets = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        nets.append(MLP(5, (7,), 3, out_activation="sigmoid"))
    stacked = stack_modules(nets)
    assert isinstance(stacked[0], StackedLinear) and stacked[0].weight.shape == (3, 7, 5)
    x = torch.randn(3, 4, 5)
    out = stacked(x)
    for k, net in enumerate(nets):
        torch.testing.assert_close(out[k], net(x[k]))
    # round trip: seed k's slice back into a fresh module of the same shape
    fresh = MLP(5, (7,), 3, out_activation="sigmoid")
    unstack_into(stacked, fresh, 1)
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), nets[1].parameters()))
    with pytest.raises(ValueError, match="seeds"):
        stacked(torch.randn(4, 5))  # no seed axis
    with pytest.raises(ValueError, match="structure"):
        stack_modules([nets[0], MLP(5, (7, 7), 3)])
    with pytest.raises(ValueError, match=r"nn\.Linear"):
        stack_modules([nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))] * 2)


def test_the_closed_form_critic_gradient_works_stacked():
    critics = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        critics.append(ConditionalCritic(4, 3, (6,)))
    stacked = stack_modules(critics)
    x, a = torch.randn(3, 5, 4), torch.randn(3, 5, 3)
    grad = stacked.input_gradient(x, a)
    for k, critic in enumerate(critics):
        xk = x[k].clone().requires_grad_(True)
        (ref,) = torch.autograd.grad(critic(xk, a[k]).sum(), xk)
        torch.testing.assert_close(grad[k], ref)


# ---------------------------------------------------------------- training
BATCHED = [n for n, cls in available_methods().items() if cls.supports_seed_batch]
CASES = [(n, {}) for n in BATCHED] + [
    ("fvaegan", {"transductive": True}),
    ("izf", {"coupling": "alternating", "input_noise": 0.07, "n_blocks": 2}),
    # GSMFlow: the conference model, the IZF-prior row, the official "batch" contrastive classes
    ("gsmflow", {"variant": "no-em"}),
    ("gsmflow", {"variant": "izf-prior", "prior_scale": 2.0}),
    ("gsmflow", {"contrastive_classes": "batch", "contrastive_batch": 8, "permute": True}),
    # GMN: the official per-class GM batches, the L_CLS baseline, the transductive critic,
    # f-CLSWGAN's [z, a] input with a fresh probe theta at every step
    (
        "gmn",
        {
            "gm_batching": "per-class",
            "gm_classes_per_iter": 3,
            "gm_real_per_class": 6,
            "gm_fake_per_class": 5,
        },
    ),
    ("gmn", {"critic": "conditional", "aux": "cls", "pretrain_epochs": 2}),
    ("gmn", {"critic": "seen+unlabeled", "transductive": True}),
    ("gmn", {"conditioning": "concat", "probe_reinit_every": 1}),
]


def test_the_batched_methods():
    assert {"clswgan", "fvaegan", "tfvaegan", "meanreg", "izf", "tlcoupling", "gmn"} <= set(BATCHED)


@pytest.mark.parametrize(
    "name, extra",
    CASES,
    ids=[f"{n}-{'-'.join(map(str, e.values())) or 'default'}" for n, e in CASES],
)
def test_batched_training_equals_sequential_training(name, extra):
    transductive = bool(extra.get("transductive"))
    task = ZSLTask(tiny_dataset(n_per_class=12), transductive=transductive)
    extra = {k: v for k, v in extra.items() if k != "transductive" or name == "fvaegan"}
    sizes = {**(TINY if name == "clswgan" else TINY_BY_METHOD.get(name, {})), **extra}
    sem = task.train.semantics[task.unseen_classes]
    sequential, samples = [], []
    for seed in SEEDS:
        sequential.append(get_method(name)(seed=seed, **sizes).fit(task.train))
        samples.append(sequential[-1].sample(sem, 4))  # from the stream the fit left
    batched = fit_seeds(name, sequential[0].config, SEEDS, task.train)
    for seq, bat, x in zip(sequential, batched, samples, strict=True):
        assert bat.seed_batch_ is None and bat.epoch_ == seq.epoch_ == sizes["epochs"]
        for (name, p), (_, q) in zip(seq.nets_.named_parameters(), bat.nets_.named_parameters()):
            torch.testing.assert_close(q, p, atol=2e-3, rtol=0, msg=name)
        for h_seq, h_bat in zip(seq.history_, bat.history_, strict=True):
            assert h_seq.keys() == h_bat.keys()
            for key in h_seq:
                assert h_bat[key] == pytest.approx(h_seq[key], rel=1e-4, abs=1e-4)
        restore_rng(bat)
        torch.testing.assert_close(bat.sample(sem, 4), x, atol=1e-6, rtol=0)
    # the seeds really differ from each other (the tolerance is far below seed noise)
    assert (samples[0] - samples[1]).abs().max() > 1e-3
    if hasattr(sequential[0], "transform_features"):  # e.g. tf-VAEGAN's [x, Dec(x), h(x)]
        x = task.train.features[:5]
        for seq, bat in zip(sequential, batched, strict=True):
            torch.testing.assert_close(
                bat.transform_features(x), seq.transform_features(x), atol=1e-5, rtol=0
            )


@pytest.mark.parametrize("name", ["clswgan", "gsmflow"])
def test_batched_training_resumes_after_a_kill(task, tmp_path, name):
    # gsmflow: its per-seed contrastive nets travel in the checkpoint, the mining is redone
    sizes = {**TINY_BY_METHOD["gsmflow"], "epochs": 3} if name == "gsmflow" else TINY

    def batched():
        m = get_method(name)(seed=0, **sizes)
        m.seed_batch_ = [0, 1]
        return m

    whole = members(batched().fit(task.train))
    killed = batched()
    fit_killed(killed, task.train, tmp_path / "ckpt.pt", at_epoch=2)
    resumed = members(batched().fit(task.train, checkpoint=tmp_path / "ckpt.pt"))
    for a, b in zip(whole, resumed, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(a.nets_.parameters(), b.nets_.parameters()))
        assert a.history_ == b.history_
        assert all(torch.equal(s, t) for s, t in zip(a.rng_after_fit_, b.rng_after_fit_))
    # a checkpoint of other seeds is refused, not silently continued
    other = get_method(name)(seed=0, **sizes)
    other.seed_batch_ = [0, 2]
    with pytest.raises(ConfigError, match="seeds"):
        other.fit(task.train, checkpoint=tmp_path / "ckpt.pt")


@pytest.mark.parametrize("name", ["clswgan", "gmn", "gsmflow"])
def test_bf16_batched_training_runs(task, name):
    sizes = TINY if name == "clswgan" else TINY_BY_METHOD[name]
    config = get_method(name)(**sizes).config
    fitted = fit_seeds(name, config, [0, 1], task.train, precision="bf16")
    sem = task.train.semantics
    assert all(torch.isfinite(m.synthesize(task.unseen_classes, sem, 3)[0]).all() for m in fitted)
    assert all(m.precision == "bf16" for m in fitted)


def test_methods_without_a_seed_axis_refuse(task):
    with pytest.raises(ConfigError, match="cannot train seeds as one batched model"):
        fit_seeds("eszsl", None, SEEDS, task.train)  # no generator to train
    with pytest.raises(ConfigError, match="distinct"):
        fit_seeds("clswgan", None, [0, 0], task.train)


# ---------------------------------------------------------------- the runner
SETS = {
    "classifier": {"kind": "softmax", "epochs": 3},
    "selection": {"eval_every": 3, "n_synthetic": [5]},
}


def test_run_with_batch_seeds_gives_the_sequential_per_seed_results(tmp_path):
    reports = {}
    for batch in (False, True):
        cfg = resolve_run_config(
            "clswgan", "toy", overrides={"method": TINY, **SETS}, seeds=SEEDS, seed_batch=batch
        )
        reports[batch] = run(
            cfg, tmp_path / str(batch), dataset=tiny_dataset(n_per_class=12), echo=False
        )
    for s in map(str, SEEDS):
        a, b = reports[False]["seeds"][s]["result"], reports[True]["seeds"][s]["result"]
        for key in ("t1", "s", "u", "h"):
            assert b[key] == pytest.approx(a[key], abs=1e-9), (s, key)
        wa = torch.load(tmp_path / "False" / f"seed_{s}" / "model.pt", weights_only=True)["nets"]
        wb = torch.load(tmp_path / "True" / f"seed_{s}" / "model.pt", weights_only=True)["nets"]
        for key in wa:
            torch.testing.assert_close(wb[key], wa[key], atol=1e-4, rtol=0)
    log = (tmp_path / "True" / "log.txt").read_text()
    assert "[seeds 0 1 2] trained together as one batched model" in log
    assert not list((tmp_path / "True").rglob("*checkpoint.pt"))
    assert reports[True]["config"]["seed_batch"] is True
    assert "seed_batch" not in reports[False]["config"]  # older run keys unchanged


def test_run_with_batch_seeds_on_a_method_without_it_trains_seeds_in_turn(tmp_path, monkeypatch):
    # every registered generator batches its seeds now; a plug-in method may not
    monkeypatch.setattr(get_method("meanreg"), "supports_seed_batch", False)
    cfg = resolve_run_config("meanreg", "toy", overrides=SETS, seeds=[0, 1], seed_batch=True)
    rep = run(cfg, tmp_path / "mr", dataset=tiny_dataset(n_per_class=12), echo=False)
    assert set(rep["seeds"]) == {"0", "1"}
    assert "meanreg trains its seeds one after another" in (tmp_path / "mr" / "log.txt").read_text()


@pytest.mark.parametrize("estimator", ["izf", "unbiased", "biased"])
@pytest.mark.parametrize("kernel", ["imq", "gaussian"])
def test_mmd_of_stacked_sets_is_each_seeds_mmd(kernel, estimator):
    from unseen.losses.mmd import mmd

    x, y = torch.randn(3, 6, 4), torch.randn(3, 6, 4) + 0.5
    stacked = mmd(x, y, kernel, estimator)
    assert stacked.shape == (3,)
    for k in range(3):
        torch.testing.assert_close(stacked[k], mmd(x[k], y[k], kernel, estimator))


def test_ce_gzsl_contrastive_losses_of_stacked_seeds_are_each_seeds():
    from unseen.methods.cegzsl import class_contrastive_loss, instance_contrastive_loss

    z = torch.randn(3, 6, 4)
    labels = torch.tensor([[0, 0, 1, 1, 2, 3], [0, 1, 2, 3, 4, 5], [1, 1, 1, 2, 2, 0]])
    stacked = instance_contrastive_loss(z, labels, 0.1)
    for k in range(3):  # seed 1 has no anchor with a positive: 0, as the one-seed form
        torch.testing.assert_close(stacked[k], instance_contrastive_loss(z[k], labels[k], 0.1))
    scores, target = torch.randn(3, 6, 5), torch.randint(5, (3, 6))
    stacked = class_contrastive_loss(scores, target, 0.1)
    for k in range(3):
        torch.testing.assert_close(stacked[k], class_contrastive_loss(scores[k], target[k], 0.1))


@pytest.mark.parametrize("coupling", ["two-sided", "alternating"])
def test_a_stacked_flow_is_each_seeds_flow_and_inverts(coupling):
    from unseen.models.flows import CouplingFlow, StackedAffineCoupling, StackedPermutation

    flows = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        flows.append(CouplingFlow(6, n_blocks=2, hidden=5, clamp=2.0, coupling=coupling))
    stacked = stack_modules(flows)
    kinds = {type(m) for m in stacked.layers}
    assert kinds == {StackedPermutation, StackedAffineCoupling}
    x = torch.randn(3, 4, 6)
    y, ladj = stacked(x)
    for k, flow in enumerate(flows):
        yk, lk = flow(x[k])
        torch.testing.assert_close(y[k], yk)
        torch.testing.assert_close(ladj[k], lk)
    torch.testing.assert_close(stacked.inverse(y), x, atol=1e-5, rtol=0)
    fresh = CouplingFlow(6, n_blocks=2, hidden=5, clamp=2.0, coupling=coupling)
    unstack_into(stacked, fresh, 2)
    torch.testing.assert_close(fresh(x[2])[0], flows[2](x[2])[0])  # permutations too
