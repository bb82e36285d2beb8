"""MMD estimators, kernels and IZF's negated MMD against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from unseen.errors import ConfigError
from unseen.losses.flow import factorized_flow_nll, prototype_centring_loss
from unseen.losses.mmd import gaussian_kernel, imq_kernel, inverse_mmd_loss, mmd


def test_kernels_by_hand():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])  # squared distance 25, d = 2 -> C = 4
    torch.testing.assert_close(imq_kernel(x, x), torch.tensor([[1.0, 4 / 29], [4 / 29, 1.0]]))
    g = math.exp(-25 / 4)
    torch.testing.assert_close(gaussian_kernel(x, x), torch.tensor([[1.0, g], [g, 1.0]]))
    torch.testing.assert_close(imq_kernel(x, x, scale=25.0)[0, 1], torch.tensor(0.5))


def test_mmd_hand_computed_two_points_each():
    # x = {0, 1}, y = {3, 5} on a line, d = 1 -> C = 2, k = 2 / (2 + r^2).
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[3.0], [5.0]])

    def k(r2):
        return 2 / (2 + r2)

    kxx, kyy = k(1), k(4)
    cross = [k(9), k(25), k(4), k(16)]
    izf = kxx + kyy - 2 * sum(cross) / 4  # within: only i != j pairs (one pair each way)
    biased = (2 + 2 * kxx) / 4 + (2 + 2 * kyy) / 4 - 2 * sum(cross) / 4
    unbiased = kxx + kyy - 2 * (k(25) + k(4)) / 2  # cross over i != j: (x0,y1), (x1,y0)
    torch.testing.assert_close(mmd(x, y), torch.tensor(izf))
    torch.testing.assert_close(mmd(x, y, estimator="biased"), torch.tensor(biased))
    torch.testing.assert_close(mmd(x, y, estimator="unbiased"), torch.tensor(unbiased))


@pytest.mark.parametrize("kernel", ["imq", "gaussian"])
def test_mmd_of_a_set_with_itself(kernel):
    torch.manual_seed(0)
    x = torch.randn(7, 3, dtype=torch.float64)
    # The U- and V-statistics are exactly 0 on identical sets.
    assert abs(float(mmd(x, x, kernel, "unbiased"))) < 1e-12
    assert abs(float(mmd(x, x, kernel, "biased"))) < 1e-12
    # Eq. 9's form (unbiased within, biased cross) is (2 / n) * (mean off-diagonal k - 1).
    kxx = imq_kernel(x, x) if kernel == "imq" else gaussian_kernel(x, x)
    n = len(x)
    off = (kxx.sum() - n) / (n * (n - 1))
    torch.testing.assert_close(mmd(x, x, kernel, "izf"), 2 / n * (off - 1))
    assert float(mmd(x, x, kernel, "izf")) < 0


def test_mmd_grows_with_separation_and_inverse_loss_is_its_negation():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    values = [float(mmd(x, torch.randn(64, 4) + shift)) for shift in (0.0, 1.0, 3.0)]
    assert values[0] < values[1] < values[2]
    y = torch.randn(64, 4) + 1.0
    torch.testing.assert_close(inverse_mmd_loss(x, y), -mmd(x, y))


def test_inverse_mmd_gradient_pushes_generated_away_from_seen():
    torch.manual_seed(0)
    seen = torch.randn(32, 2)
    gen = (torch.randn(32, 2) * 0.5 + torch.tensor([1.0, 0.0])).requires_grad_(True)
    before = float(mmd(seen, gen.detach()))
    inverse_mmd_loss(seen, gen).backward()
    with torch.no_grad():
        moved = gen - 0.5 * gen.grad / gen.grad.norm()  # a descent step on L_iMMD
    assert float(mmd(seen, moved)) > before
    gen = gen.detach()
    assert float((moved.mean(0) - seen.mean(0)).norm()) > float((gen.mean(0) - seen.mean(0)).norm())


def test_mmd_bad_input():
    x = torch.randn(4, 2)
    with pytest.raises(ConfigError, match="kernel"):
        mmd(x, x, kernel="rbf")
    with pytest.raises(ConfigError, match="estimator"):
        mmd(x, x, estimator="nope")
    with pytest.raises(ConfigError, match="2 samples"):
        mmd(x[:1], x)
    with pytest.raises(ConfigError, match="equal size"):
        mmd(x, x[:3], estimator="unbiased")


def test_flow_nll_hand_computed():
    c_hat = torch.tensor([[1.0, 2.0]])
    c = torch.tensor([[0.0, 2.0]])
    z = torch.tensor([[3.0]])
    log_det = torch.tensor([0.5])
    expected = 0.5 * (1 + 9) + 1.5 * math.log(2 * math.pi) - 0.5
    torch.testing.assert_close(factorized_flow_nll(c_hat, z, c, log_det), torch.tensor([expected]))
    # Equals -log N([c_hat, z]; [c, 0], I) - log|det| from torch.distributions.
    normal = torch.distributions.Normal(torch.tensor([0.0, 2.0, 0.0]), 1.0)
    ref = -normal.log_prob(torch.tensor([1.0, 2.0, 3.0])).sum() - 0.5
    torch.testing.assert_close(factorized_flow_nll(c_hat, z, c, log_det)[0], ref)


def test_prototype_centring_loss_hand_computed():
    protos = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    means = torch.tensor([[1.0, 3.0], [3.0, 4.0]])
    torch.testing.assert_close(prototype_centring_loss(protos, means), torch.tensor((4 + 25) / 2))
