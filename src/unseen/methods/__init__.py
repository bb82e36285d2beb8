"""Generative ZSL methods, one file per paper, and their registry."""

from unseen.methods.base import (
    GenerativeMethod,
    MethodConfig,
    available_methods,
    get_method,
    register,
)
from unseen.methods.clswgan import CLSWGAN, CLSWGANConfig

__all__ = [
    "CLSWGAN",
    "CLSWGANConfig",
    "GenerativeMethod",
    "MethodConfig",
    "available_methods",
    "get_method",
    "register",
]
