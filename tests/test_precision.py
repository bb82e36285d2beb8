"""Mixed precision (``precision: fp32 | bf16 | fp16``): every method's matrix products run in
the low precision, what must stay fp32 does, results stay finite, bad values are refused.

Matrix products are observed with a dispatch mode (below autocast, so it sees the dtype a
product really ran in), FLOPs counted per dtype. The methods train on the ``device`` fixture's
device (``UNSEEN_TEST_DEVICE=cuda`` on a GPU machine); fp16 needs CUDA and is skipped on CPU.
"""

from __future__ import annotations

import collections
import json

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import fit_killed
from test_methods import METHODS, TINY
from tinydata import tiny_dataset
from unseen.cli import main
from unseen.config import RunConfig, resolve_run_config
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError
from unseen.methods import get_method
from unseen.methods.clswgan import gradient_penalty
from unseen.methods.izf import inverse_mmd_loss
from unseen.methods.precision import (
    MixedPrecision,
    check_precision,
    fp32_region,
    full_precision,
)
from unseen.models.flows import ConditionalCouplingFlow, CouplingFlow
from unseen.models.mlp import ConditionalCritic

aten = torch.ops.aten
#: matrix-product ops -> position of the operand whose last dimension is the inner one
_PRODUCTS = {
    aten.mm.default: 0,
    aten.addmm.default: 1,
    aten.bmm.default: 0,
    aten.baddbmm.default: 1,
}
LOW = (torch.bfloat16, torch.float16)


class ProductDtypes(TorchDispatchMode):
    """FLOPs of the matrix products run inside the block, per output dtype."""

    def __init__(self) -> None:
        super().__init__()
        self.flops: collections.Counter[torch.dtype] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _PRODUCTS:
            self.flops[out.dtype] += 2 * out.numel() * args[_PRODUCTS[func]].shape[-1]
        return out

    def share(self, dtypes: tuple[torch.dtype, ...] = LOW) -> float:
        total = sum(self.flops.values())
        return sum(self.flops[d] for d in dtypes) / total if total else 0.0


@pytest.fixture(scope="module")
def task() -> ZSLTask:
    return ZSLTask(tiny_dataset(n_per_class=12))


def make(name: str, precision: str, device: str = "cpu", **kw):
    return get_method(name)(seed=0, device=device, precision=precision, **{**TINY[name], **kw})


def _finite_history(m) -> bool:
    return all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in m.history_)


def _float_dtypes(value) -> list[torch.dtype]:
    if isinstance(value, torch.Tensor):
        return [value.dtype] if value.is_floating_point() else []
    if isinstance(value, tuple | list):
        return [d for v in value for d in _float_dtypes(v)]
    return []


# ---------------------------------------------------------------------- every method
@pytest.mark.parametrize("name", METHODS)
def test_bf16_trains_and_samples_in_low_precision(name, task, device):
    """The bulk of every method's products run in bf16 (the rest: its fp32 penalties, MMD,
    gradient matching), every network answers in fp32 (the losses are fp32), training stays
    finite, and synthesis is bf16 inside, fp32 outside."""
    m = make(name, "bf16", device).fit(task.train, epochs=0)  # built: its networks exist
    outputs: list[tuple[str, torch.dtype]] = []
    for key, net in m.nets_.items():  # after the method's own hooks: sees what losses see
        net.register_forward_hook(
            lambda _m, _a, out, key=key: outputs.extend((key, d) for d in _float_dtypes(out))
        )
    with ProductDtypes() as fit_products:
        m.fit(task.train)
    assert fit_products.share() >= 0.25, fit_products.flops
    assert outputs and all(d == torch.float32 for _, d in outputs), set(outputs)
    assert _finite_history(m)
    with ProductDtypes() as sample_products:
        x, y = m.synthesize(task.unseen_classes, task.train.semantics, 5)
    assert sample_products.share() > 0.5, sample_products.flops
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert len(x) == len(y) == 5 * len(task.unseen_classes)
    assert all(p.dtype == torch.float32 for p in m.nets_.parameters())


@pytest.mark.parametrize("name", METHODS)
def test_fp32_runs_no_low_precision_product(name, task, device):
    """The default: not one product in bf16/fp16, during training or synthesis."""
    m = make(name, "fp32", device)
    with ProductDtypes() as products:
        m.fit(task.train)
        m.synthesize(task.unseen_classes, task.train.semantics, 3)
    assert products.share() == 0.0 and sum(products.flops.values()) > 0


@pytest.mark.parametrize("name", METHODS)
def test_bf16_resume_after_kill_equals_uninterrupted(name, task, tmp_path, device):
    """Precision is part of what a checkpoint resumes: a killed bf16 fit resumes to the same
    weights, and a checkpoint trained in bf16 is refused by an fp32 fit."""
    full = make(name, "bf16", device, epochs=3).fit(task.train)

    ckpt = tmp_path / "ckpt.pt"
    fit_killed(make(name, "bf16", device, epochs=3), task.train, ckpt)
    with pytest.raises(ConfigError, match=r"precision bf16.*asks for fp32"):
        make(name, "fp32", device, epochs=3).fit(task.train, checkpoint=ckpt)
    resumed = make(name, "bf16", device, epochs=3).fit(task.train, checkpoint=ckpt)
    for (k, a), (_, b) in zip(
        full.nets_.state_dict().items(), resumed.nets_.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=k)


@pytest.mark.parametrize("name", METHODS)
def test_fp16_on_cuda_scales_the_loss(name, task, tmp_path, cuda_device):
    """fp16 (CUDA only) trains every method with a GradScaler whose state the checkpoint keeps."""
    m = make(name, "fp16", cuda_device)
    assert m.amp.scaler is not None
    with ProductDtypes() as products:
        m.fit(task.train, checkpoint=tmp_path / "ckpt.pt")
    assert products.share((torch.float16,)) >= 0.25, products.flops
    assert _finite_history(m)
    x, _ = m.synthesize(task.unseen_classes, task.train.semantics, 4)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert state["precision"] == "fp16" and state["grad_scaler"]["scale"] > 0


# ---------------------------------------------------------------------- what stays fp32
@pytest.mark.parametrize(
    "flow",
    [
        CouplingFlow(64, n_blocks=3, generator=torch.Generator().manual_seed(0)),
        ConditionalCouplingFlow(64, 8, n_blocks=3, hidden=32),
    ],
    ids=["izf", "gsmflow"],
)
def test_flow_log_determinant_is_fp32_under_autocast(flow):
    """The coupling nets run in bf16, but their log-scales, z and log|det| come back fp32 and
    close to fp32's."""
    torch.manual_seed(1)
    x = torch.randn(16, 64)
    cond = (torch.randn(16, 8),) if isinstance(flow, ConditionalCouplingFlow) else ()
    with torch.no_grad():
        _, ladj32 = flow(x, *cond)
        with ProductDtypes() as products, MixedPrecision("bf16").autocast():
            z, ladj = flow(x, *cond)
            back = flow.inverse(z, *cond)
            if isinstance(flow, CouplingFlow):
                s, t = flow.layers[1].scale_shift(x[:, :32])
            else:
                s, t = flow.blocks[0].subnet(1, x[:, 32:], None)
    assert products.share() == 1.0
    assert s.dtype == t.dtype == torch.float32
    assert z.dtype == ladj.dtype == back.dtype == torch.float32
    scale = 1.0 + float(ladj32.abs().max())
    assert float((ladj - ladj32).abs().max()) <= 0.02 * scale
    assert float((back - x).abs().max()) <= 0.05 * (1.0 + float(x.abs().max()))


def test_gradient_penalty_and_mmd_run_in_fp32_under_autocast():
    """The critic inside the penalty (and its double backward) and the MMD kernels run in
    fp32 even inside a bf16 region, with bf16 inputs, and give fp32's value."""
    torch.manual_seed(0)
    critic = ConditionalCritic(12, 5, hidden=(16,))
    real, fake, a = torch.rand(8, 12), torch.rand(8, 12), torch.rand(8, 5)
    torch.manual_seed(3)
    gp32 = gradient_penalty(lambda v: critic(v, a), real, fake, 10.0)
    with ProductDtypes() as products, MixedPrecision("bf16").autocast():
        torch.manual_seed(3)
        gp = gradient_penalty(lambda v: critic(v, a), real.bfloat16(), fake, 10.0)
        mmd = inverse_mmd_loss(real, fake.bfloat16(), "imq")
    assert products.share() == 0.0 and sum(products.flops.values()) > 0
    assert gp.dtype == mmd.dtype == torch.float32
    torch.testing.assert_close(gp, gp32, rtol=1e-2, atol=1e-3)  # inputs rounded to bf16 once
    torch.testing.assert_close(mmd, inverse_mmd_loss(real, fake.bfloat16().float(), "imq"))


def test_full_precision_turns_autocast_off_only_inside():
    @full_precision
    def probe(x: torch.Tensor) -> tuple[bool, torch.dtype]:
        return torch.is_autocast_enabled("cpu"), x.dtype

    x = torch.ones(2, dtype=torch.bfloat16)
    assert probe(x) == (False, torch.bfloat16)  # no autocast: called as is
    with MixedPrecision("bf16").autocast():
        assert probe(x) == (False, torch.float32)
        assert torch.is_autocast_enabled("cpu")
        with fp32_region():
            assert not torch.is_autocast_enabled("cpu")


def test_steps_inside_one_autocast_block_see_the_updated_weights():
    """An epoch steps its optimizers inside one autocast block: the products must use the
    weights of the last step, not a copy cached at the first (the bf16 losses follow fp32's)."""

    def losses(precision: str) -> list[float]:
        torch.manual_seed(0)
        layer = torch.nn.Linear(16, 1)
        opt = torch.optim.SGD(layer.parameters(), lr=0.1)
        x, y = torch.randn(32, 16), torch.randn(32, 1)
        amp, out = MixedPrecision(precision), []
        with amp.autocast():
            for _ in range(5):
                loss = (layer(x).float() - y).pow(2).mean()
                amp.step(loss, opt)
                out.append(float(loss.detach()))
        return out

    fp32, bf16 = losses("fp32"), losses("bf16")
    assert len(set(bf16)) == 5
    torch.testing.assert_close(torch.tensor(bf16), torch.tensor(fp32), rtol=2e-2, atol=1e-3)


def test_step_clips_the_joint_gradient_norm():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    opts = [torch.optim.SGD(a.parameters(), lr=0.0), torch.optim.SGD(b.parameters(), lr=0.0)]
    loss = 100.0 * (a(torch.randn(3, 4)).sum() + b(torch.randn(3, 4)).sum())
    MixedPrecision("fp32").step(loss, *opts, clip=1.0)
    grads = [p.grad for m in (a, b) for p in m.parameters()]
    assert float(torch.cat([g.flatten() for g in grads]).norm()) == pytest.approx(1.0, rel=1e-5)


# ---------------------------------------------------------------------- settings and errors
def test_bad_precisions_are_refused_by_name():
    with pytest.raises(ConfigError, match="'fp8'"):
        check_precision("fp8")
    with pytest.raises(ConfigError, match=r"fp16 needs a CUDA device.*use bf16"):
        check_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="'fp64'"):
        get_method("meanreg")(precision="fp64")
    with pytest.raises(ConfigError, match="CUDA"):
        get_method("izf")(precision="fp16")
    assert check_precision("bf16", "cpu") == "bf16"


def test_bf16_is_refused_on_a_gpu_that_would_emulate_it(monkeypatch):
    """A GPU before compute capability 8.0 has no bf16 units: refused, fp16 offered."""
    import types

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(major=7)
    )
    with pytest.raises(ConfigError, match=r"compute capability 8\.0.*use fp16"):
        check_precision("bf16", "cuda")
    assert check_precision("fp16", "cuda:0") == "fp16"


def test_run_config_precision_and_stable_keys():
    """fp32 configs write no ``precision`` key (runs and bench job keys from before the option
    stay the same); others do and read back; the command line wins over the files."""
    fp32 = resolve_run_config("meanreg", "demo")
    assert fp32.precision == "fp32" and "precision" not in fp32.to_dict()
    bf16 = resolve_run_config("meanreg", "demo", overrides={"run": {"precision": "bf16"}})
    assert bf16.to_dict()["precision"] == "bf16"
    assert RunConfig.from_dict(bf16.to_dict()) == bf16
    assert RunConfig.from_dict(fp32.to_dict()).precision == "fp32"
    cli = resolve_run_config(
        "meanreg", "demo", overrides={"run": {"precision": "bf16"}}, precision="fp32"
    )
    assert cli.precision == "fp32"
    with pytest.raises(ConfigError, match="'half'"):
        resolve_run_config("meanreg", "demo", precision="half")
    with pytest.raises(ConfigError, match="valid: seeds, device, precision"):
        resolve_run_config("meanreg", "demo", overrides={"run": {"dtype": "bf16"}})


def test_bench_jobs_get_the_precision(tmp_path):
    from unseen.bench.grid import load_grid

    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\ndatasets: [demo]\nentries:\n  - method: meanreg\n")
    plain = load_grid(grid).jobs[0]
    bf16 = load_grid(grid, sets=["run.precision=bf16"]).jobs[0]
    assert plain.config.precision == "fp32" and bf16.config.precision == "bf16"
    assert plain.key != bf16.key


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "meanreg", "--dataset", "demo", "--precision", "fp8"], "'fp8'"),
        (["run", "meanreg", "--dataset", "demo", "--precision", "fp16"], "fp16 needs a CUDA"),
        (["run", "meanreg", "--dataset", "demo", "--set", "run.precision=int8"], "'int8'"),
    ],
)
def test_cli_bad_precision_exits_2_with_one_paragraph(capsys, argv, needle, tmp_path):
    code = main([*argv, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_bench_bad_precision_exits_2(capsys, tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\ndatasets: [demo]\nentries:\n  - method: meanreg\n")
    code = main(["bench", str(grid), "--precision", "fp4", "--list"])
    err = capsys.readouterr().err
    assert code == 2 and "'fp4'" in err and err.count("\n") == 1


def test_cli_run_in_bf16_records_the_precision(capsys, tmp_path):
    out = tmp_path / "r"
    argv = ["run", "meanreg", "--dataset", "demo", "--precision", "bf16", "--seeds", "0"]
    argv += ["--out", str(out), "--quiet"]
    for s in (
        "method.epochs=2",
        "classifier.epochs=2",
        "selection.eval_every=2",
        "selection.n_synthetic=[5]",
        "selection.classifier_epochs=[2]",
    ):
        argv += ["--set", s]
    assert main(argv) == 0, capsys.readouterr().err
    assert "precision: bf16" in (out / "run.yaml").read_text()
    results = json.loads((out / "results.json").read_text())
    assert results["precision"] == "bf16" and results["config"]["precision"] == "bf16"
    assert "precision: bf16 autocast" in (out / "log.txt").read_text()
    state = torch.load(out / "seed_0" / "model.pt", weights_only=True)
    assert state["precision"] == "bf16"
