"""MLP generators and critics of the f-CLSWGAN family.

Reference:
    Xian et al., "Feature Generating Networks for Zero-Shot Learning", CVPR 2018.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unseen.models.stacked import StackedLinear

__all__ = ["MLP", "ConditionalCritic", "ConditionalGenerator", "init_normal"]


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) weights and zero biases for every Linear (the f-CLSWGAN initialisation)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)


class MLP(nn.Sequential):
    """``Linear -> LeakyReLU(slope)`` repeated over ``hidden``, then a final ``Linear``.

    Args:
        in_dim: input size.
        hidden: sizes of the hidden layers.
        out_dim: output size.
        slope: LeakyReLU negative slope.
        out_activation: ``None``, ``"relu"`` or ``"sigmoid"`` applied to the output.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        slope: float = 0.2,
        out_activation: str | None = None,
    ) -> None:
        layers: list[nn.Module] = []
        prev = in_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.LeakyReLU(slope)]
            prev = h
        layers.append(nn.Linear(prev, out_dim))
        if out_activation == "relu":
            layers.append(nn.ReLU())
        elif out_activation == "sigmoid":
            layers.append(nn.Sigmoid())
        elif out_activation is not None:
            raise ValueError(f"unknown output activation {out_activation!r}")
        super().__init__(*layers)
        self.slope = slope
        self.out_activation = out_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layers in order; the output in the weights' dtype. Under autocast (bf16/fp16)
        the layers compute in low precision, and the losses built on the output (critic
        means, reconstruction errors) are then computed in fp32."""
        out = super().forward(x)
        dtype = self[0].weight.dtype
        return out if out.dtype == dtype else out.to(dtype)

    def input_gradient(self, x: torch.Tensor, n_inputs: int | None = None) -> torch.Tensor:
        """Gradient of the (scalar) output w.r.t. the first ``n_inputs`` input columns.

        Closed form for a LeakyReLU MLP with one output: grad = W_1^T D_1 ... W_L^T D_L w,
        where D_k are the diagonal LeakyReLU slopes at ``x``. It equals autograd's
        ``grad(create_graph=True)`` (the slopes are piecewise constant, so their derivative is
        zero almost everywhere) and stays differentiable w.r.t. the weights, at about 60% of
        the cost of a double backward (measured in benchmarks/clswgan_speed.py).
        """
        if self.out_activation is not None or self[-1].out_features != 1:
            raise ValueError("input_gradient needs a linear single-output MLP")
        # plain layers, or seed-stacked ones (unseen.models.stacked): the same products with a
        # leading seed axis, broadcast by matmul
        linears = [m for m in self if isinstance(m, (nn.Linear, StackedLinear))]
        slopes = []
        h = x
        for lin in linears[:-1]:
            h = lin(h)
            slopes.append(torch.where(h > 0, 1.0, self.slope).detach())
            h = nn.functional.leaky_relu(h, self.slope)
        grad = linears[-1].weight  # (1, h_L), broadcast over the batch
        for lin, s in zip(reversed(linears[:-1]), reversed(slopes)):
            first = lin is linears[0] and n_inputs is not None
            if isinstance(lin, StackedLinear):
                # (grad * s) @ W as (W^T (grad * s)^T)^T on the stored (K, in, out) weight, so
                # that its gradient arrives in the parameter's own layout: with the transposed
                # view, adding it to the forward pass's gradient was a strided copy that cost
                # as much as the products (profiled on this CPU)
                w_t = lin.weight_t[:, :n_inputs] if first else lin.weight_t
                grad = (w_t @ (grad * s).transpose(-1, -2)).transpose(-1, -2)
                continue
            w = lin.weight[..., :n_inputs] if first else lin.weight
            grad = (grad * s) @ w
        return grad


class ConditionalGenerator(nn.Module):
    """G(z, a): noise and class semantics concatenated, through an MLP (f-CLSWGAN Sec. 3.1)."""

    def __init__(
        self,
        noise_dim: int,
        semantic_dim: int,
        feature_dim: int,
        hidden: Sequence[int] = (4096,),
        out_activation: str | None = "relu",
    ) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.net = MLP(noise_dim + semantic_dim, hidden, feature_dim, out_activation=out_activation)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, a], dim=-1))


class ConditionalCritic(nn.Module):
    """D(x, a): features and class semantics concatenated, to one unbounded score."""

    def __init__(self, feature_dim: int, semantic_dim: int, hidden: Sequence[int] = (4096,)):
        super().__init__()
        self.net = MLP(feature_dim + semantic_dim, hidden, 1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, a], dim=-1)).squeeze(-1)

    def input_gradient(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``d D(x, a) / d x`` in closed form (see :meth:`MLP.input_gradient`)."""
        return self.net.input_gradient(torch.cat([x, a], dim=-1), x.shape[-1])
