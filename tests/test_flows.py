"""The coupling flow: invertibility, exact log-determinants, gradients, save/load."""

from __future__ import annotations

import io
import math

import pytest
import torch

from unseen.eval.health import untouched_dimensions
from unseen.models.flows import (
    AffineCoupling,
    ConditionalCouplingFlow,
    CouplingFlow,
    Permutation,
    affine_coupling_forward,
    affine_coupling_inverse,
    soft_clamp,
)

FLOWS = {
    "coupling": lambda d: AffineCoupling(d, hidden=5),
    "coupling-first": lambda d: AffineCoupling(d, hidden=5, transformed="first"),
    "coupling-clamped": lambda d: AffineCoupling(d, hidden=5, clamp=2.0),
    "flow-1": lambda d: CouplingFlow(d, n_blocks=1, hidden=4),
    "flow-2": lambda d: CouplingFlow(d, n_blocks=2),
    "flow-5-clamped": lambda d: CouplingFlow(d, n_blocks=5, clamp=2.0),
    "flow-3-clamped": lambda d: CouplingFlow(d, n_blocks=3, hidden=7, clamp=1.5),
    "flow-alternating-2": lambda d: CouplingFlow(d, n_blocks=2, hidden=4, coupling="alternating"),
    "flow-alternating-5": lambda d: CouplingFlow(d, n_blocks=5, clamp=2.0, coupling="alternating"),
}

# Every flow the library has, as ``(d, seed) -> x -> f(x)``: IZF's CouplingFlow in both block
# designs and every block count of its Fig. 5d, GSMFlow's conditional GLOW flow with and
# without permutations. A single coupling LAYER is not a flow (it moves one half by design).
EVERY_FLOW = {
    **{
        f"izf-{design}-{k}": (
            lambda d, g, k=k, design=design: CouplingFlow(
                d, n_blocks=k, hidden=6, generator=g, coupling=design
            )
        )
        for design in ("two-sided", "alternating")
        for k in (1, 2, 3, 5, 7)
        if not (design == "alternating" and k == 1)
    },
    **{
        f"gsmflow-{k}{'-permuted' if perm else ''}": (
            lambda d, g, k=k, perm=perm: _conditioned(
                ConditionalCouplingFlow(d, 3, n_blocks=k, hidden=6, permute=perm, generator=g)
            )
        )
        for k in (1, 3, 5)
        for perm in (False, True)
    },
}


def _conditioned(flow: ConditionalCouplingFlow):
    cond = torch.randn(1, flow.cond_features, generator=torch.Generator().manual_seed(9))

    def f(x: torch.Tensor) -> torch.Tensor:
        return flow(x, cond.expand(len(x), -1))[0]

    return f


def _as_map(flow):
    return flow if not isinstance(flow, torch.nn.Module) else (lambda x: flow(x)[0])


@pytest.mark.parametrize("name", EVERY_FLOW)
@pytest.mark.parametrize("d", [5, 64, 257])
def test_every_dimension_is_transformed(name, d):
    """No input dimension may pass through a flow unchanged, for any permutation draw.

    The old IZF blocks (one coupling after an independent random permutation) failed this:
    a dimension escapes all K blocks with probability 2^-K (see the next test).
    """
    for seed in range(4):
        torch.manual_seed(seed)
        f = _as_map(EVERY_FLOW[name](d, torch.Generator().manual_seed(seed)))
        x = torch.rand(32, d)
        with torch.no_grad():
            assert untouched_dimensions(x, f(x)) == 0, f"seed {seed}"


def test_untouched_check_catches_one_sided_blocks_with_random_permutations():
    """The design IZF had before: 5 x (random permutation -> one-sided coupling). At d = 1280
    about 1280 / 32 = 40 dimensions stay in every block's conditioning half."""
    counts = []
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        layers = []
        for _ in range(5):
            layers += [Permutation(1280, g), AffineCoupling(1280, hidden=8)]
        x = torch.rand(16, 1280)
        y = x
        with torch.no_grad():
            for layer in layers:
                y = layer(y)[0]
        counts.append(untouched_dimensions(x, y))
    assert all(c > 10 for c in counts), counts
    assert 20 < sum(counts) / len(counts) < 70  # 40 expected


def _spice(module: torch.nn.Module, scale: float = 0.4) -> torch.nn.Module:
    """Larger random weights so that s(.) is far from 0 and the test is not trivial."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return module


@pytest.mark.parametrize("name", FLOWS)
@pytest.mark.parametrize("d", [2, 5, 8])
def test_inverse_undoes_forward_float64(name, d):
    torch.manual_seed(0)
    f = _spice(FLOWS[name](d).double())
    x = torch.randn(16, d, dtype=torch.float64)
    y, _ = f(x)
    assert not torch.allclose(y, x)  # it does something
    torch.testing.assert_close(f.inverse(y), x, atol=1e-5, rtol=0)
    z = torch.randn(16, d, dtype=torch.float64)
    torch.testing.assert_close(f(f.inverse(z))[0], z, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", FLOWS)
@pytest.mark.parametrize("d", [2, 5, 6])
def test_log_det_equals_autograd_jacobian(name, d):
    torch.manual_seed(1)
    f = _spice(FLOWS[name](d).double())
    x = torch.randn(4, d, dtype=torch.float64)
    _, ladj = f(x)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: f(v[None])[0][0], x[i])
        _, logabsdet = torch.linalg.slogdet(jac)
        torch.testing.assert_close(ladj[i], logabsdet, atol=1e-8, rtol=1e-8)
    assert ladj.abs().max() > 0.01  # the Jacobian is not a permutation


def test_coupling_math_functions():
    x_b = torch.tensor([[1.0, -2.0]])
    s = torch.tensor([[0.0, torch.log(torch.tensor(3.0))]])
    t = torch.tensor([[0.5, 1.0]])
    y_b, ladj = affine_coupling_forward(x_b, s, t)
    torch.testing.assert_close(y_b, torch.tensor([[1.5, -5.0]]))
    torch.testing.assert_close(ladj, torch.log(torch.tensor([3.0])))
    torch.testing.assert_close(affine_coupling_inverse(y_b, s, t), x_b)
    s_big = torch.tensor([-100.0, 0.0, 1e-3, 100.0])
    assert soft_clamp(s_big, None) is s_big
    c = soft_clamp(s_big, 2.0)
    # FrEIA's form: bounded by the clamp, slope 2 / pi at 0.
    assert c.abs().max() < 2.0 and c[1] == 0
    torch.testing.assert_close(c[2], s_big[2] * 2 / math.pi, rtol=1e-4, atol=0)


def test_permutation_is_fixed_and_saved():
    p = Permutation(10, torch.Generator().manual_seed(0))
    x = torch.arange(10.0)[None]
    y, ladj = p(x)
    assert sorted(y[0].tolist()) == x[0].tolist() and y[0].tolist() != x[0].tolist()
    assert ladj.tolist() == [0.0]
    torch.testing.assert_close(p.inverse(y), x)
    assert "order" in p.state_dict()


def test_permutations_survive_save_load():
    torch.manual_seed(0)
    a = CouplingFlow(9, n_blocks=4)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    torch.manual_seed(12345)  # another seed: other permutations unless they are loaded
    b = CouplingFlow(9, n_blocks=4)
    orders = [m.order.clone() for m in b.layers if isinstance(m, Permutation)]
    assert any(
        not torch.equal(o, m.order)
        for o, m in zip(orders, [m for m in a.layers if isinstance(m, Permutation)])
    )
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    for pa, pb in zip(a.layers, b.layers):
        if isinstance(pa, Permutation):
            assert torch.equal(pa.order, pb.order) and torch.equal(
                pa.inverse_order, pb.inverse_order
            )
    x = torch.randn(3, 9)
    torch.testing.assert_close(a(x)[0], b(x)[0])


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    f = CouplingFlow(6, n_blocks=3, hidden=4)
    x = torch.randn(8, 6)
    y, ladj = f(x)
    (y.pow(2).sum() - ladj.sum() + f.inverse(torch.randn(8, 6)).sum()).backward()
    for name, p in f.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_sizes():
    with pytest.raises(ValueError, match="2 features"):
        AffineCoupling(1)
    with pytest.raises(ValueError, match="n_blocks"):
        CouplingFlow(4, n_blocks=0)
    with pytest.raises(ValueError, match="n_blocks >= 2"):
        CouplingFlow(4, n_blocks=1, coupling="alternating")
    with pytest.raises(ValueError, match="coupling"):
        CouplingFlow(4, coupling="one-sided")
