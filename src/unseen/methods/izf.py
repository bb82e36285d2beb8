r"""IZF: Invertible Zero-shot Flow.

Reference:
    Shen, Qin, Huang, Liu, Zhu, Shao, "Invertible Zero-Shot Recognition Flows", ECCV 2020
    (and its supplementary material). No official code was released; this file is written
    from the paper, equation by equation:

    ============================  ====================================================
    paper                         code
    ============================  ====================================================
    Eq. 2, Sec. 4.3 (network)     :class:`unseen.models.flows.CouplingFlow`
    supp. Eq. 10-11 (permutation) :class:`unseen.models.flows.Permutation`
    supp. Eq. 12-14 (log-det)     :func:`unseen.models.flows.affine_coupling_forward`
    Eq. 4-5 (factorized density)  :func:`unseen.losses.flow.factorized_flow_nll`
    Eq. 6 (generation)            :meth:`IZF.generate`, :meth:`IZF.sample`
    Eq. 7 (L_Flow)                :meth:`IZF.losses` -> ``flow``
    Eq. 8 (L_C, prototypes)       :meth:`IZF.prototypes`,
                                  :func:`unseen.losses.flow.prototype_centring_loss`
    Eq. 9 (L_iMMD)                :func:`unseen.losses.mmd.inverse_mmd_loss`
    Eq. 10 (overall objective)    :meth:`IZF.losses` -> ``total``
    Eq. 11 (IZF-NBC)              :meth:`IZF.own_classifier` (``classifier.kind: method``)
    Eq. 11 (IZF-Softmax)          the runner's softmax classifier on real seen + ``sample``
    ============================  ====================================================

Loss scale (``loss_scale``). Eq. 7 is a log-likelihood summed over the ``d_v`` feature
dimensions, Eq. 8 a squared norm over them and Eq. 9 is bounded by 2; the paper does not
say how the terms are normalised before the weights (2, 1, 0.1) apply. The default
``loss_scale="nll-dim"`` divides L_Flow by ``d_v`` (nats per dimension, the convention of the
INN/FrEIA code the paper builds on) and keeps Eq. 8 and 9 as written; ``"dim"`` divides both
L_Flow and L_C by ``d_v``; ``"sum"`` divides nothing. Measured on the FLO validation problem
(5 epochs, IZF-NBC, T1 over 5 pseudo-unseen classes, chance 20%): ``dim`` 8.1%, ``nll-dim``
39.7% -- with ``dim`` (or ``sum``) the likelihood term swamps L_C, the prototypes stay as
far from their class means (L_C 8.7) as the class means are from each other (8.0), and NBC
is at chance.
Everything else follows the text; departures are options
(``clamp``, on by default: FrEIA's soft clamp of the log-scales; off by default:
``grad_clip``, ``weight_decay``, ``semantic_scale``).

Semantic scale (``semantic_scale``). The prior of the semantic factor is N(c(y), I) with unit
variance (Eq. 5). With xlsa17's L2-normalised class vectors (unit norm; mean pairwise
distance 0.65 on FLO, 1.1 on the demo problem) the class-conditional priors overlap almost
completely, so the likelihood hardly depends on the class and f^-1([c, z]) hardly on c. The
paper does not say at what scale its attribute vectors enter; ``semantic_scale`` multiplies
c(y) everywhere (measured on the demo problem's validation split after 60 epochs: IZF-Softmax
T1 22% at scale 1 -- chance -- and 51% at scale 5).

Input noise (``input_noise``). A density on R^d cannot fit data with point masses: 49% of the
min-max-scaled FLO EfficientNet feature values are exactly 0, and the NLL then falls without
bound (-400 -> -1745 nats in 6 epochs, with the clamp) while L_C stalls. ``input_noise``
adds N(0, sigma^2 I) to the features of the likelihood term only (dequantization, as
GSMFlow's visual perturbation); not in the IZF paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unseen.classifiers import NearestPrototypeClassifier
from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.losses.flow import (
    factorized_flow_nll,
    prototype_centring_loss,
    stacked_centring_loss,
)
from unseen.losses.mmd import ESTIMATORS, KERNELS
from unseen.losses.mmd import inverse_mmd_loss as _inverse_mmd_loss
from unseen.methods.base import GenerativeMethod, MethodConfig, make_adam, minibatch_epoch, register
from unseen.methods.precision import full_precision
from unseen.models.flows import COUPLINGS, CouplingFlow

__all__ = ["IZF", "IZFConfig", "make_adam", "seen_class_means"]

#: L_iMMD in fp32 under bf16/fp16 autocast: a difference of large kernel sums (also used by
#: the CVAE and CGAN baselines)
inverse_mmd_loss = full_precision(_inverse_mmd_loss)

LOSS_SCALES = ("dim", "sum", "nll-dim")


@dataclass
class IZFConfig(MethodConfig):
    """IZF hyper-parameters (defaults: the paper's, Sec. 4.3 and 6.1).

    Attributes:
        epochs: passes over the seen training features (paper: ~100, best after ~20).
        batch_size: n of Eq. 9, seen features per step (paper: 256).
        n_blocks: permutation-coupling blocks (paper: 5; Fig. 5d).
        coupling: ``two-sided`` (each block moves both halves, as FrEIA's blocks that the
            paper builds on) or ``alternating`` (one coupling per block, halves swapped
            between blocks); see :class:`unseen.models.flows.CouplingFlow`. Both transform
            every dimension; the earlier design (one coupling after an independent random
            permutation) left about 2^-K of them untouched and is gone (docs/izf.md).
        hidden: hidden width of s(.) and t(.); 0 means d_v / 2 (paper).
        slope: LeakyReLU negative slope (Maas et al.'s 0.01).
        clamp: soft bound of the log-scales (FrEIA's, 2.0), 0 = none (Eq. 2's plain exp(s),
            which diverges on real features: NLL -> -inf, NaN after 4 epochs on FLO). The
            paper builds its INNs with FrEIA (Sec. 6.1), whose coupling blocks clamp.
        lambda_flow, lambda_c, lambda_immd: lambda_1, lambda_2, lambda_3 of Eq. 10 (paper:
            2, 1, 0.1). lambda_immd < 0 turns L_iMMD into a positive MMD (Tab. 3, Baseline 5).
        kernel: ``imq`` (paper) or ``gaussian`` (Tab. 3, Baseline 6).
        kernel_scale: C of the kernel; 0 means 2 d_v (paper).
        mmd_estimator: ``izf`` (Eq. 9), ``unbiased`` or ``biased`` (see losses/mmd.py).
        loss_scale: ``dim`` or ``sum`` (see the module docstring).
        lr: Adam learning rate (paper: 5e-4).
        weight_decay, grad_clip: optional Adam weight decay / gradient-norm clip (0 = off).
        semantic_scale: multiplies every class semantic vector c(y) before it is used (prior
            mean of c_hat, generation, prototypes); 1 = as given. Not in the paper; see the
            module docstring.
        input_noise: std of Gaussian noise added to the seen features entering L_Flow
            (dequantization; GSMFlow's "visual perturbation"); 0 = none (paper). Features
            with point masses (e.g. exact zeros after ReLU) have an unbounded likelihood.
    """

    epochs: int = 30
    batch_size: int = 256
    n_blocks: int = 5
    coupling: str = "two-sided"
    hidden: int = 0
    slope: float = 0.01
    clamp: float = 2.0
    lambda_flow: float = 2.0
    lambda_c: float = 1.0
    lambda_immd: float = 0.1
    kernel: str = "imq"
    kernel_scale: float = 0.0
    mmd_estimator: str = "izf"
    loss_scale: str = "nll-dim"
    lr: float = 5e-4
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    semantic_scale: float = 1.0
    input_noise: float = 0.0


def seen_class_means(data: SeenTrainData) -> torch.Tensor:
    """``(C, d)`` mean feature of every seen class, indexed by GLOBAL class id (zeros for the
    other classes), on the data's device: the :math:`\\bar v^s_c` of Eq. 8."""
    x, y = data.features, data.labels
    sums = torch.zeros(data.n_classes, x.shape[1], device=x.device, dtype=x.dtype)
    sums.index_add_(0, y, x)
    counts = torch.bincount(y, minlength=data.n_classes).clamp_min(1)
    return sums / counts[:, None].to(x.dtype)


def check_izf_options(c: IZFConfig | object) -> None:
    """Reject unknown string options with a message naming the valid values."""
    if c.kernel not in KERNELS:
        raise ConfigError(f"izf: unknown kernel {c.kernel!r}; valid: {list(KERNELS)}")
    if c.mmd_estimator not in ESTIMATORS:
        raise ConfigError(f"izf: unknown mmd_estimator {c.mmd_estimator!r}; valid: {ESTIMATORS}")
    if c.loss_scale not in LOSS_SCALES:
        raise ConfigError(f"izf: unknown loss_scale {c.loss_scale!r}; valid: {LOSS_SCALES}")


@register
class IZF(GenerativeMethod):
    """IZF (Shen et al., ECCV 2020): a factorized conditional flow ``v <-> [c_hat, z]``."""

    name = "izf"
    config_class = IZFConfig
    paper = "Shen et al., Invertible Zero-Shot Recognition Flows, ECCV 2020"
    config: IZFConfig
    # draws and reductions through the seed-axis helpers; the flow's coupling layers and
    # permutations stack (unseen.models.flows), L_C runs per seed
    supports_seed_batch = True

    def _build(self, dims: dict[str, int]) -> None:
        c = self.config
        check_izf_options(c)
        if c.coupling not in COUPLINGS:
            raise ConfigError(f"izf: unknown coupling {c.coupling!r}; valid: {list(COUPLINGS)}")
        if c.coupling == "alternating" and c.n_blocks < 2:
            raise ConfigError("izf: coupling 'alternating' needs n_blocks >= 2")
        d_v, d_c = dims["feature_dim"], dims["semantic_dim"]
        if d_v <= d_c:
            raise ConfigError(
                f"izf factorizes v (d_v={d_v}) into [c_hat (d_c={d_c}), z (d_v - d_c)] and "
                "needs d_v > d_c; pad the features (as the paper's toy problem does) or use "
                "lower-dimensional semantics"
            )
        flow = CouplingFlow(
            d_v,
            n_blocks=c.n_blocks,
            hidden=c.hidden or None,
            slope=c.slope,
            clamp=c.clamp or None,
            coupling=c.coupling,
        )
        self.nets_ = nn.ModuleDict({"flow": flow})
        self.optimizers_ = self._make_optimizers()

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        if c.grad_clip > 0 and self.seed_batch_:
            # one joint gradient norm would couple the stacked seeds
            raise ConfigError("izf: grad_clip > 0 cannot train seeds as one batched model")
        return {"flow": make_adam(self.nets_["flow"].parameters(), c.lr, c.weight_decay)}

    # ------------------------------------------------------------------ the model
    @property
    def flow(self) -> CouplingFlow:
        self._check_fitted()
        return self.nets_["flow"]

    def encode(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forward pass (Sec. 4.1): ``(c_hat, z, log|det|)`` with ``[c_hat, z] = f(v)``."""
        out, ladj = self.flow(v)
        d_c = self.dims_["semantic_dim"]
        return out[..., :d_c], out[..., d_c:], ladj

    def flow_map(
        self, x: torch.Tensor, labels: torch.Tensor, semantics: torch.Tensor
    ) -> torch.Tensor:
        """:math:`f(v)` (the health check counts the dimensions it leaves unchanged)."""
        return self.flow(x)[0]

    def generate(self, c: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Reverse pass (Eq. 6): :math:`\\hat v = f^{-1}([c, z])`."""
        return self.flow.inverse(torch.cat([c, z], dim=-1))

    def prototypes(self, class_semantics: torch.Tensor) -> torch.Tensor:
        """Classification prototypes :math:`f^{-1}([c, 0])` (Sec. 5.2), one row per class."""
        c = class_semantics.to(self.device, torch.float32) * self.config.semantic_scale
        return self.generate(c, c.new_zeros(len(c), self._z_dim))

    @property
    def _z_dim(self) -> int:
        return self.dims_["feature_dim"] - self.dims_["semantic_dim"]

    def losses(
        self,
        v: torch.Tensor,
        y: torch.Tensor,
        semantics: torch.Tensor,
        class_means: torch.Tensor,
        unseen_classes: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """The three losses of a batch and the objective of Eq. 10.

        Args:
            v: ``(n, d_v)`` seen features; y: their global labels.
            semantics: ``(C, d_c)`` semantics of all classes.
            class_means: ``(C, d_v)`` seen class means by global id (:func:`seen_class_means`).
            unseen_classes: ids of the classes whose features L_iMMD generates.

        Returns:
            ``flow`` (Eq. 7, nats per sample), ``centre`` (Eq. 8), ``immd`` (Eq. 9; 0 when
            lambda_3 = 0, not computed) and ``total`` (Eq. 10 with ``loss_scale`` applied).
        """
        c = self.config
        d_v, n = v.shape[-1], v.shape[-2]
        per = float(d_v) if c.loss_scale == "dim" else 1.0
        per_nll = 1.0 if c.loss_scale == "sum" else float(d_v)
        semantics = semantics * c.semantic_scale
        v_in = v + c.input_noise * self.randn(*v.shape[-2:]) if c.input_noise > 0 else v
        c_hat, z, ladj = self.encode(v_in)
        l_flow = self.seed_mean(factorized_flow_nll(c_hat, z, semantics[y], ladj))  # Eq. 7
        total = c.lambda_flow * l_flow / per_nll
        out = {"flow": l_flow}
        use_c, use_immd = c.lambda_c != 0, c.lambda_immd != 0 and n >= 2
        stacked = bool(self.seed_batch_)
        latents: list[torch.Tensor] = []
        if use_c:
            # stacked seeds: every class's prototype (each seed's minibatch has its own classes)
            classes = torch.arange(len(semantics), device=v.device) if stacked else torch.unique(y)
            protos_in = torch.cat([semantics[classes], v.new_zeros(len(classes), self._z_dim)], 1)
            latents.append(protos_in.expand(*v.shape[:-2], -1, -1))  # [c^s, 0] of Eq. 8
        if use_immd:
            u = unseen_classes[self.randint(len(unseen_classes), (n,))]
            z_f = self.randn(n, self._z_dim).to(v.dtype)
            latents.append(torch.cat([semantics[u], z_f], -1))  # [c^u, z^f] of Eq. 9
        if latents:
            # ONE reverse pass for the prototypes and the unseen samples: the same f^-1 in
            # fewer, larger matrix products (the prototypes alone are a few dozen rows).
            sizes = [x.shape[-2] for x in latents]
            generated = list(self.flow.inverse(torch.cat(latents, -2)).split(sizes, dim=-2))
        if use_c:
            protos = generated.pop(0)  # f^-1([c^s, 0])
            if stacked:
                l_c = stacked_centring_loss(protos, class_means, y)
            else:
                l_c = prototype_centring_loss(protos, class_means[classes])  # Eq. 8
            total = total + c.lambda_c * l_c / per
            out["centre"] = l_c
        if use_immd:
            v_u = generated.pop(0)  # v_hat^u = f^-1([c^u, z^f])
            l_immd = inverse_mmd_loss(
                v, v_u, c.kernel, c.mmd_estimator, c.kernel_scale or None
            )  # Eq. 9
            total = total + c.lambda_immd * l_immd
            out["immd"] = l_immd
        out["total"] = total  # Eq. 10
        return out

    # ------------------------------------------------------------------ training
    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        c = self.config
        opt = self.optimizers_["flow"]
        means = seen_class_means(data)  # cheap next to an epoch
        x_all, y_all, sem = data.features, data.labels, data.semantics.to(data.features.dtype)
        return minibatch_epoch(
            opt,
            len(x_all),
            c.batch_size,
            x_all.device,
            lambda idx: self.losses(x_all[idx], y_all[idx], sem, means, data.unseen_classes),
            min_batch=2,
            clip=c.grad_clip,
            optimize=self.optimize,
            randperm=self.randperm,
        )

    # ------------------------------------------------------------------ generation
    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        """Eq. 6 for each class: :math:`f^{-1}([c, z^f])`, :math:`z^f \\sim N(0, I)`."""
        self._check_fitted()
        c = class_semantics.to(self.device, torch.float32) * self.config.semantic_scale
        c = c.repeat_interleave(n_per_class, dim=0)
        z = torch.randn(len(c), self._z_dim, device=self.device)
        if not len(c):
            return c.new_zeros(0, self.dims_["feature_dim"])
        with torch.no_grad():
            return torch.cat([self.generate(a, b) for a, b in zip(c.split(8192), z.split(8192))])

    def own_classifier(
        self, classes: torch.Tensor, class_semantics: torch.Tensor
    ) -> NearestPrototypeClassifier:
        """IZF-NBC (Eq. 11): nearest prototype :math:`f^{-1}([c(y), 0])`, Euclidean."""
        self._check_fitted()
        with torch.no_grad():
            protos = self.prototypes(class_semantics)
        return NearestPrototypeClassifier.from_prototypes(
            protos, classes, metric="euclidean", device=self.device
        )
