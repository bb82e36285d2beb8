"""Pure loss functions on tensors."""

from unseen.losses.adversarial import gradient_penalty
from unseen.losses.gradient_matching import class_gradients, gradient_matching_loss
from unseen.losses.sinkhorn import sinkhorn_distance

__all__ = ["class_gradients", "gradient_matching_loss", "gradient_penalty", "sinkhorn_distance"]
