"""Generative ZSL methods, one file per paper, and their registry."""

from unseen.methods.base import (
    GenerativeMethod,
    MethodConfig,
    available_methods,
    get_method,
    register,
)
from unseen.methods.clswgan import CLSWGAN, CLSWGANConfig
from unseen.methods.gmn import GMN, GMNConfig

__all__ = [
    "CLSWGAN",
    "GMN",
    "CLSWGANConfig",
    "GMNConfig",
    "GenerativeMethod",
    "MethodConfig",
    "available_methods",
    "get_method",
    "register",
]
