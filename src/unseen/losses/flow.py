r"""IZF's likelihood and prototype losses, as pure functions on tensors.

References:
    Shen et al., "Invertible Zero-Shot Recognition Flows", ECCV 2020, Eq. 4-5, 7, 8.
"""

from __future__ import annotations

import math

import torch

__all__ = ["factorized_flow_nll", "prototype_centring_loss", "stacked_centring_loss"]

_LOG_2PI = math.log(2.0 * math.pi)


def factorized_flow_nll(
    c_hat: torch.Tensor,
    z: torch.Tensor,
    c: torch.Tensor,
    log_det: torch.Tensor,
) -> torch.Tensor:
    r"""Per-sample :math:`-\log p_\theta(v \mid y)` of the factorized conditional flow.

    Eq. 4-5 (supplementary Eq. 9): with :math:`[\hat c, \hat z^f] = f(v)`,

    .. math:: -\log p_\theta(v|y) = -\log \mathcal N(\hat c \mid c(y), I)
              - \log \mathcal N(\hat z^f \mid 0, I) - \log\Big|\det\frac{\partial f}{\partial v}
              \Big|,

    i.e. :math:`\tfrac12\lVert \hat c - c(y)\rVert^2 + \tfrac12\lVert\hat z^f\rVert^2
    + \tfrac{d_v}{2}\log 2\pi - \log|\det|`. Its batch mean is :math:`\mathcal L_{Flow}`
    (Eq. 7).

    Args:
        c_hat: ``(n, d_c)`` semantic factor of the forward pass.
        z: ``(n, d_v - d_c)`` non-semantic factor.
        c: ``(n, d_c)`` semantic vectors :math:`c(y)` of the samples' classes.
        log_det: ``(n,)`` :math:`\log|\det \partial f/\partial v|`.

    Returns:
        ``(n,)`` negative log-likelihoods in nats.
    """
    d_v = c_hat.shape[-1] + z.shape[-1]
    quad = 0.5 * ((c_hat - c).pow(2).sum(-1) + z.pow(2).sum(-1))
    return quad + 0.5 * d_v * _LOG_2PI - log_det


def prototype_centring_loss(prototypes: torch.Tensor, class_means: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathcal L_C` (Eq. 8): mean over classes of :math:`\lVert f^{-1}([c, 0]) -
    \bar v_c\rVert^2`.

    Args:
        prototypes: ``(K, d_v)`` classification prototypes :math:`f^{-1}([c^s, 0])`.
        class_means: ``(K, d_v)`` mean feature :math:`\bar v^s_c` of each class.
    """
    return (prototypes - class_means).pow(2).sum(-1).mean(-1)


def stacked_centring_loss(
    prototypes: torch.Tensor, class_means: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    r""":math:`\mathcal L_C` of each stacked seed, ``(K,)``, over the classes of its own
    minibatch (seeds trained as one batched model draw different classes).

    Args:
        prototypes: ``(K, C, d_v)`` every class's prototype under each seed's network.
        class_means: ``(C, d_v)`` class means by global id.
        labels: ``(K, n)`` each seed's minibatch labels.
    """
    losses = []
    for seed_protos, seed_labels in zip(prototypes, labels, strict=True):
        classes = torch.unique(seed_labels)
        losses.append(prototype_centring_loss(seed_protos[classes], class_means[classes]))
    return torch.stack(losses)
