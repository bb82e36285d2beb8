"""Wasserstein-GAN losses.

Reference:
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017 (gradient penalty).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["gradient_penalty"]


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
    input_gradient: Callable[[torch.Tensor], torch.Tensor] | None = None,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """``weight * E[(||grad_x D(x_hat)||_2 - 1)^2]`` on random interpolates of real and fake.

    ``critic`` maps a batch of inputs to one score per row; condition it on anything else by
    closing over it (``lambda x: D(x, a)``), so the penalty acts on ``x`` alone as in
    f-CLSWGAN. The graph is kept, so the penalty trains the critic. ``input_gradient``, when
    given, computes ``grad_x D`` directly (e.g. the closed form of an MLP critic) instead of a
    double backward through autograd; the result is the same.

    ``alpha``: the interpolation weights, ``(batch, 1)``, drawn here from the global random
    stream when not given. With a leading seed axis (``real`` of shape ``(K, batch, d)``,
    seeds trained as one stacked model, each drawing ``alpha`` from its own stream) the
    penalty is returned per seed, shape ``(K,)``.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], 1, device=real.device, dtype=real.dtype)
    x_hat = alpha * real.detach() + (1 - alpha) * fake.detach()
    if input_gradient is not None:
        grad = input_gradient(x_hat)
    else:
        x_hat.requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return weight * ((grad.norm(2, dim=-1) - 1) ** 2).mean(-1)
