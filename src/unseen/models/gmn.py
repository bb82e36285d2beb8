"""GMN's networks: the class-conditional latent-noise generator, critics, bilinear probe.

Reference:
    Sariyildiz & Cinbis, "Gradient Matching Generative Networks for Zero-Shot Learning",
    CVPR 2019, Sec. 3.1 (latent noise), 3.2 (compatibility f), 3.3 (conditional critic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from unseen.models.mlp import MLP
from unseen.models.stacked import register_stacker

__all__ = [
    "BilinearProbe",
    "GMNGenerator",
    "StackedBilinearProbe",
    "UnconditionalCritic",
    "init_official",
]


def init_official(module: nn.Module, gain: float = math.sqrt(2.0)) -> None:
    """Xavier-normal weights (gain sqrt(2)) and zero biases for every ``nn.Linear``.

    The official GMN code's initialisation: it applies this to every Linear layer of its
    generator (the mu and log-variance heads, the hidden and the output layers) and of its
    conditional critic. The paper does not state an initialisation; the library's default
    (``init: default``) is f-CLSWGAN's N(0, 0.02^2) (:func:`unseen.models.mlp.init_normal`).

    Args:
        module: the network; every ``nn.Linear`` inside it is re-initialised in place.
        gain: Xavier gain; the weights get std ``gain * sqrt(2 / (fan_in + fan_out))``.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class GMNGenerator(nn.Module):
    r"""Feature generator G conditioned on class semantics a.

    ``conditioning="latent"`` (Sec. 3.1): a class-conditional Gaussian latent
    :math:`z \sim \mathcal{N}(\mu(a), \Sigma(a))` with :math:`\mu(a) = W_{mu} a + b_{mu}`
    (``mu_tanh``: :math:`\tanh(W_{mu} a + b_{mu})`) and diagonal
    :math:`\Sigma(a) = \exp(W_{cov} a + b_{cov})` (``identity_cov``: :math:`\Sigma = I`),
    sampled with the re-parameterisation :math:`z = \mu(a) + \Sigma(a)^{1/2} \epsilon`, then
    ``MLP(z)``. The heads are trained end to end with the MLP.

    ``conditioning="concat"`` (f-CLSWGAN's generator): ``MLP([eps, a])``.

    Args:
        semantic_dim: size of a.
        feature_dim: size of the generated features.
        noise_dim: size of eps (and z).
        hidden: hidden layer widths (LeakyReLU 0.2 between layers).
        conditioning: ``"latent"`` or ``"concat"``.
        mu_tanh, identity_cov: the paper's two latent options (Sec. 4, implementation).
        out_activation: ``"relu"`` for non-negative (ReLU) features, or ``None``.

    Example:
        >>> G = GMNGenerator(4, 6, noise_dim=3, hidden=(8,))
        >>> G(torch.rand(5, 4), torch.randn(5, 3)).shape
        torch.Size([5, 6])
    """

    def __init__(
        self,
        semantic_dim: int,
        feature_dim: int,
        noise_dim: int = 512,
        hidden: Sequence[int] = (2048,),
        conditioning: str = "latent",
        mu_tanh: bool = False,
        identity_cov: bool = False,
        out_activation: str | None = "relu",
    ) -> None:
        super().__init__()
        if conditioning not in ("latent", "concat"):
            raise ValueError(f"conditioning must be 'latent' or 'concat', got {conditioning!r}")
        self.noise_dim = noise_dim
        self.conditioning = conditioning
        self.mu_tanh = mu_tanh
        self.identity_cov = identity_cov
        if conditioning == "latent":
            self.mu = nn.Linear(semantic_dim, noise_dim)
            self.log_cov = None if identity_cov else nn.Linear(semantic_dim, noise_dim)
            in_dim = noise_dim
        else:
            in_dim = noise_dim + semantic_dim
        self.net = MLP(in_dim, hidden, feature_dim, out_activation=out_activation)

    def latent_params(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu(a), Sigma(a))``: mean and diagonal covariance of z, each ``(N, noise_dim)``."""
        if self.conditioning != "latent":
            raise ValueError("latent_params needs conditioning='latent'")
        mu = self.mu(a)
        if self.mu_tanh:
            mu = torch.tanh(mu)
        cov = torch.ones_like(mu) if self.log_cov is None else torch.exp(self.log_cov(a))
        return mu, cov

    def latent(self, a: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The generator's input for semantics ``a`` and standard normal ``eps``."""
        if self.conditioning == "concat":  # last axis: a leading seed axis may come first
            return torch.cat([eps, a], dim=-1)
        mu = self.mu(a)
        if self.mu_tanh:
            mu = torch.tanh(mu)
        if self.log_cov is None:
            return mu + eps
        return mu + torch.exp(0.5 * self.log_cov(a)) * eps  # Sigma^{1/2} eps, Sigma diagonal

    def forward(self, a: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.net(self.latent(a, eps))


class UnconditionalCritic(nn.Module):
    """D(x): an MLP critic that ignores class information (L^S_WGAN, L^{S+U}_WGAN)."""

    def __init__(self, feature_dim: int, hidden: Sequence[int] = (4096,)) -> None:
        super().__init__()
        self.net = MLP(feature_dim, hidden, 1)

    def forward(self, x: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def input_gradient(self, x: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        """``dD/dx`` in closed form (see :meth:`unseen.models.mlp.MLP.input_gradient`)."""
        return self.net.input_gradient(x)


class BilinearProbe(nn.Module):
    """Parameters theta = (W, b) of the compatibility f(x, a) = (x^T W + b^T) a (Eq. 6).

    Used by GMN as the classifier whose gradients are matched (and, frozen after
    pre-training, as the L_CLS baseline's classifier). ``W`` starts from N(0, 0.02^2) and
    ``b`` from 0, as GMN's bilinear classifier.
    """

    def __init__(self, feature_dim: int, semantic_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(feature_dim, semantic_dim))
        self.bias = nn.Parameter(torch.empty(semantic_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.normal_(0.0, 0.02)
            self.bias.zero_()

    def forward(self, x: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        return (x @ self.weight + self.bias) @ semantics.T


class StackedBilinearProbe(nn.Module):
    """K :class:`BilinearProbe` s on a leading seed axis (seeds trained as one batched model).

    ``weight`` is ``(K, d, d_a)`` and ``bias`` ``(K, d_a)``; ``forward`` takes ``(K, N, d)``
    features and the ``(C, d_a)`` class semantics all seeds share and returns ``(K, N, C)``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    @classmethod
    def stack(cls, probes: list[BilinearProbe]) -> StackedBilinearProbe:
        weight = torch.stack([p.weight.detach() for p in probes]).clone()
        return cls(weight, torch.stack([p.bias.detach() for p in probes]).clone())

    @staticmethod
    def unstack(stacked: StackedBilinearProbe, probe: BilinearProbe, k: int) -> None:
        with torch.no_grad():
            probe.weight.copy_(stacked.weight[k])
            probe.bias.copy_(stacked.bias[k])

    def reset_parameters(self, generators: list[torch.Generator]) -> None:
        """Each seed's :meth:`BilinearProbe.reset_parameters`, drawn from its own stream."""
        with torch.no_grad():
            for k, g in enumerate(generators):
                self.weight[k].normal_(0.0, 0.02, generator=g)
            self.bias.zero_()

    def forward(self, x: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight) @ semantics.T


register_stacker(
    BilinearProbe, StackedBilinearProbe, StackedBilinearProbe.stack, StackedBilinearProbe.unstack
)
