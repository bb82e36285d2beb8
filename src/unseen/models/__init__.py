"""Plain ``nn.Module`` networks shared by methods (training logic lives in the methods)."""

from unseen.models.coupling import InferenceNetwork, JointCritic
from unseen.models.gmn import BilinearProbe, GMNGenerator, UnconditionalCritic
from unseen.models.mlp import MLP, ConditionalCritic, ConditionalGenerator

__all__ = [
    "MLP",
    "BilinearProbe",
    "ConditionalCritic",
    "ConditionalGenerator",
    "GMNGenerator",
    "InferenceNetwork",
    "JointCritic",
    "UnconditionalCritic",
]
