from __future__ import annotations

import torch

from unseen.losses import gradient_penalty


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    # D(x) = w.x has gradient w everywhere: penalty = weight * (|w| - 1)^2.
    w = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    real, fake = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    gp = gradient_penalty(lambda x: x @ w, real, fake, weight=10.0)
    assert torch.isclose(gp, torch.tensor(10.0 * (5.0 - 1.0) ** 2, dtype=torch.float64))
    gp.backward()  # trains the critic: d/dw = 10 * 2 * (|w|-1) * w/|w|
    torch.testing.assert_close(w.grad, 10 * 2 * 4.0 * torch.tensor([0.6, 0.8], dtype=torch.float64))


def test_gradient_penalty_zero_for_unit_gradient():
    w = torch.tensor([0.6, 0.8], requires_grad=True)
    gp = gradient_penalty(lambda x: x @ w, torch.randn(4, 2), torch.randn(4, 2))
    assert gp.abs().item() < 1e-10


def test_closed_form_critic_gradient_equals_autograd():
    from unseen.models.mlp import ConditionalCritic

    torch.manual_seed(0)
    critic = ConditionalCritic(5, 3, hidden=(7, 6)).double()
    x, a = torch.randn(9, 5, dtype=torch.float64), torch.randn(9, 3, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(critic(xr, a).sum(), xr, create_graph=True)
    closed = critic.input_gradient(x, a)
    torch.testing.assert_close(closed, auto)
    # The penalty built on either trains the critic's weights identically.
    real, fake = torch.randn(9, 5, dtype=torch.float64), torch.randn(9, 5, dtype=torch.float64)
    grads = []
    for use_closed in (False, True):
        torch.manual_seed(1)
        critic.zero_grad()
        gp = gradient_penalty(
            lambda v: critic(v, a),
            real,
            fake,
            input_gradient=(lambda v: critic.input_gradient(v, a)) if use_closed else None,
        )
        gp.backward()
        grads.append(
            [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in critic.parameters()]
        )
    for g_auto, g_closed in zip(*grads):
        torch.testing.assert_close(g_closed, g_auto)
