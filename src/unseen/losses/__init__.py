"""Pure loss functions on tensors."""

from unseen.losses.adversarial import gradient_penalty

__all__ = ["gradient_penalty"]
