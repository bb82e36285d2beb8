"""make_adam: torch's fused Adam kernel for large networks, the same update rule as the default."""

import torch
from torch import nn

from unseen.methods.base import make_adam


def _fused(opt: torch.optim.Optimizer) -> bool:
    return bool(opt.defaults.get("fused"))


def test_large_networks_get_the_fused_kernel_small_ones_the_default():
    big = nn.Linear(1000, 1000)  # 1.001M parameters
    small = nn.Linear(100, 100)
    assert _fused(make_adam(big.parameters(), 1e-3))
    assert not _fused(make_adam(small.parameters(), 1e-3))


def test_fused_updates_equal_the_default_kernel():
    torch.manual_seed(0)
    a = nn.Linear(1000, 1000)
    b = nn.Linear(1000, 1000)
    b.load_state_dict(a.state_dict())
    start = a.weight.detach().clone()
    fused = make_adam(a.parameters(), 1e-3, weight_decay=1e-4, betas=(0.5, 0.999))
    plain = torch.optim.Adam(b.parameters(), 1e-3, betas=(0.5, 0.999), weight_decay=1e-4)
    assert _fused(fused) and not _fused(plain)
    for _ in range(5):
        x = torch.randn(8, 1000)
        for net, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        # both kernels compute the same formula; they differ only in the order of fp32 ops
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert (a.weight - start).abs().max() > 1e-3  # the updates did move the weights
