"""Plain ``nn.Module`` networks shared by methods (training logic lives in the methods)."""

from unseen.models.coupling import InferenceNetwork, JointCritic
from unseen.models.mlp import MLP, ConditionalCritic, ConditionalGenerator

__all__ = ["MLP", "InferenceNetwork", "JointCritic", "ConditionalCritic", "ConditionalGenerator"]
