"""Pure loss functions on tensors."""

from unseen.losses.adversarial import gradient_penalty
from unseen.losses.sinkhorn import sinkhorn_distance

__all__ = ["gradient_penalty", "sinkhorn_distance"]
