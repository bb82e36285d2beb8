"""Networks of the two-level adversarial visual-semantic coupling model.

Reference:
    Chandhok & Balasubramanian, "Two-Level Adversarial Visual-Semantic Coupling for
    Generalized Zero-shot Learning", WACV 2021 (Sec. 3.2 inference network, Sec. 3.3 joint
    critic, Sec. 3.4 recognition features).

The generator G(z, h) and the conditional critics are the f-CLSWGAN MLPs of
:mod:`unseen.models.mlp`; this module adds the inference network I(x) -> h_hat whose hidden
activations f are exposed for the recognition module (Eq. 15), and the joint critic D3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unseen.models.mlp import MLP

__all__ = ["InferenceNetwork", "JointCritic"]


class InferenceNetwork(nn.Module):
    """I(x): visual features to semantic space, ``Linear -> LeakyReLU`` per hidden layer.

    Args:
        feature_dim: size of x.
        semantic_dim: size of h (the output h_hat).
        hidden: hidden layer sizes (f-VAEGAN-D2-like default: one layer of 4096).
        slope: LeakyReLU slope.

    Example:
        >>> net = InferenceNetwork(8, 3, hidden=(5,))
        >>> h_hat, f = net.with_features(torch.randn(4, 8))
        >>> h_hat.shape, f.shape
        (torch.Size([4, 3]), torch.Size([4, 5]))
    """

    def __init__(
        self,
        feature_dim: int,
        semantic_dim: int,
        hidden: Sequence[int] = (4096,),
        slope: float = 0.2,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("the inference network needs at least one hidden layer")
        self.net = MLP(feature_dim, tuple(hidden), semantic_dim, slope=slope)
        self.hidden = tuple(int(h) for h in hidden)

    @property
    def feature_size(self) -> int:
        """Size of f, the concatenated hidden activations returned by :meth:`with_features`."""
        return sum(self.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """h_hat = I(x)."""
        return self.net(x)

    def with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h_hat, f)``: the output and the intermediate features f of I (Sec. 3.4).

        f is the concatenation of the post-activation outputs of every hidden layer, in
        order (one layer in the paper-sized network).
        """
        feats = []
        h = x
        for module in self.net:
            h = module(h)
            if isinstance(module, nn.LeakyReLU):
                feats.append(h)
        return h, torch.cat(feats, dim=-1)


class JointCritic(nn.Module):
    """D3(x, h): scores a <visual, semantic> pair (Sec. 3.3, Eq. 12).

    ``input_gradient`` returns the gradient with respect to BOTH inputs, ``(grad_x, grad_h)``
    concatenated, which is what the joint gradient penalty of Eq. 12 takes the norm of.
    """

    def __init__(self, feature_dim: int, semantic_dim: int, hidden: Sequence[int] = (4096,)):
        super().__init__()
        self.feature_dim = feature_dim
        self.net = MLP(feature_dim + semantic_dim, tuple(hidden), 1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, h], dim=-1)).squeeze(-1)

    def forward_pair(self, xh: torch.Tensor) -> torch.Tensor:
        """D3 on pairs already concatenated as ``[x, h]`` rows."""
        return self.net(xh).squeeze(-1)

    def input_gradient(self, xh: torch.Tensor) -> torch.Tensor:
        """``d D3 / d [x, h]`` in closed form, for ``[x, h]`` rows (see ``MLP.input_gradient``)."""
        return self.net.input_gradient(xh)
