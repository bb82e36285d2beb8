"""Generative ZSL methods, one file per paper, and their registry."""

from unseen.methods.base import (
    GenerativeMethod,
    MethodConfig,
    available_methods,
    get_method,
    register,
)
from unseen.methods.cegzsl import CEGZSL, CEGZSLConfig
from unseen.methods.cgan_immd import CGANiMMD, CGANiMMDConfig
from unseen.methods.clswgan import CLSWGAN, CLSWGANConfig
from unseen.methods.coupling import TLCoupling, TLCouplingConfig
from unseen.methods.cvae import CVAE, CVAEConfig
from unseen.methods.eszsl import ESZSL, ESZSLConfig
from unseen.methods.fvaegan import FVAEGAN, FVAEGANConfig
from unseen.methods.gmn import GMN, GMNConfig
from unseen.methods.gsmflow import GSMFlow, GSMFlowConfig
from unseen.methods.izf import IZF, IZFConfig
from unseen.methods.meanreg import MeanReg, MeanRegConfig
from unseen.methods.seen_softmax import SeenSoftmax, SeenSoftmaxConfig
from unseen.methods.tfvaegan import TFVAEGAN, TFVAEGANConfig

__all__ = [
    "CEGZSL",
    "CLSWGAN",
    "CVAE",
    "ESZSL",
    "FVAEGAN",
    "GMN",
    "IZF",
    "TFVAEGAN",
    "CEGZSLConfig",
    "CGANiMMD",
    "CGANiMMDConfig",
    "CLSWGANConfig",
    "CVAEConfig",
    "ESZSLConfig",
    "FVAEGANConfig",
    "GMNConfig",
    "GSMFlow",
    "GSMFlowConfig",
    "GenerativeMethod",
    "IZFConfig",
    "MeanReg",
    "MeanRegConfig",
    "MethodConfig",
    "SeenSoftmax",
    "SeenSoftmaxConfig",
    "TFVAEGANConfig",
    "TLCoupling",
    "TLCouplingConfig",
    "available_methods",
    "get_method",
    "register",
]
