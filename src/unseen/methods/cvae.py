r"""Conditional VAE feature generator, optionally with IZF's L_C and L_iMMD.

The CVAE baseline of IZF's toy study (Fig. 4d, supplementary Sec. 4.3, Eq. 16) and of its
component analysis (Tab. 3, Baseline 1: CVAE + L_C + L_iMMD):

.. math:: \mathcal L = D_{KL}(q_\phi(z|c, v) \Vert p(z)) - \mathbb E_{q_\phi}[\log
          p_\theta(v|c, z)] + \lambda_2 \mathcal L_C + \lambda_3 \mathcal L_{iMMD},

with :math:`p(z) = N(0, I)`, a Gaussian decoder of unit variance (so the reconstruction
term is :math:`\tfrac12\lVert v - \hat v\rVert^2` up to a constant), prototypes
:math:`\mathrm{dec}(c, 0)` for L_C and the nearest-prototype classifier (as IZF's
:math:`f^{-1}([c, 0])`), and unseen features :math:`\mathrm{dec}(c^u, z)` for L_iMMD.
With ``lambda_c = lambda_immd = 0`` it is a plain CVAE (Sohn et al.; CVAE-ZSL, Mishra et al.).

``loss_scale`` as in :mod:`unseen.methods.izf`: ``dim`` divides the ELBO and L_C by ``d_v``.

References:
    | Sohn, Lee, Yan, "Learning Structured Output Representation using Deep Conditional
      Generative Models", NeurIPS 2015.
    | Mishra et al., "A Generative Model for Zero Shot Learning Using Conditional
      Variational Autoencoders", CVPR-W 2018.
    | Shen et al., "Invertible Zero-Shot Recognition Flows", ECCV 2020, Tab. 3, supp. Eq. 16.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unseen.classifiers import NearestPrototypeClassifier
from unseen.data.task import SeenTrainData
from unseen.losses.flow import prototype_centring_loss, stacked_centring_loss
from unseen.methods.base import GenerativeMethod, MethodConfig, make_adam, minibatch_epoch, register
from unseen.methods.izf import check_izf_options, inverse_mmd_loss, seen_class_means
from unseen.models.mlp import MLP

__all__ = ["CVAE", "CVAEConfig", "gaussian_kl"]


@dataclass
class CVAEConfig(MethodConfig):
    """CVAE hyper-parameters.

    Attributes:
        hidden: hidden width of encoder and decoder (one hidden layer each, LeakyReLU 0.2).
        latent_dim: size of z; 0 means the semantic dimension.
        lambda_c, lambda_immd: weights of IZF's L_C and L_iMMD (0 = plain CVAE; Tab. 3
            Baseline 1 uses IZF's 1 and 0.1).
        kernel, kernel_scale, mmd_estimator, loss_scale: as in IZF's config.
        lr: Adam learning rate.
    """

    epochs: int = 30
    batch_size: int = 256
    hidden: int = 1024
    latent_dim: int = 0
    lambda_c: float = 0.0
    lambda_immd: float = 0.0
    kernel: str = "imq"
    kernel_scale: float = 0.0
    mmd_estimator: str = "izf"
    loss_scale: str = "dim"
    lr: float = 1e-3


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r""":math:`D_{KL}(N(\mu, \mathrm{diag}\,e^{\log\sigma^2}) \Vert N(0, I))` per sample."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)


@register
class CVAE(GenerativeMethod):
    """Conditional VAE (+ optional L_C and L_iMMD): IZF's Tab. 3 Baseline 1 and Fig. 4d."""

    name = "cvae"
    config_class = CVAEConfig
    paper = "Sohn et al., NeurIPS 2015 (as IZF's baseline, Shen et al., ECCV 2020)"
    config: CVAEConfig
    # draws and reductions through the seed-axis helpers; L_C per seed (each seed's minibatch
    # holds its own classes)
    supports_seed_batch = True

    def _latent(self, dims: dict[str, int]) -> int:
        return self.config.latent_dim or dims["semantic_dim"]

    def _build(self, dims: dict[str, int]) -> None:
        c = self.config
        check_izf_options(c)
        d, da, dz = dims["feature_dim"], dims["semantic_dim"], self._latent(dims)
        self.nets_ = nn.ModuleDict(
            {
                "encoder": MLP(d + da, (c.hidden,), 2 * dz),
                "decoder": MLP(dz + da, (c.hidden,), d),
            }
        )
        self.optimizers_ = self._make_optimizers()

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"cvae": make_adam(self.nets_.parameters(), self.config.lr)}

    def decode(self, c: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.nets_["decoder"](torch.cat([z, c], dim=-1))

    def prototypes(self, class_semantics: torch.Tensor) -> torch.Tensor:
        """``dec(c, 0)``: the CVAE's counterpart of IZF's prototypes."""
        c = class_semantics.to(self.device, torch.float32)
        return self.decode(c, c.new_zeros(len(c), self._latent(self.dims_)))

    def losses(
        self,
        v: torch.Tensor,
        y: torch.Tensor,
        semantics: torch.Tensor,
        class_means: torch.Tensor,
        unseen_classes: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """``elbo`` (negative ELBO per sample), ``centre``, ``immd`` and ``total``."""
        c = self.config
        per = float(v.shape[-1]) if c.loss_scale == "dim" else 1.0
        dz = self._latent(self.dims_)
        a = semantics[y]
        mu, logvar = self.nets_["encoder"](torch.cat([v, a], dim=-1)).split(dz, dim=-1)
        z = mu + self.randn(*mu.shape[-2:]) * (0.5 * logvar).exp()
        recon = 0.5 * (self.decode(a, z) - v).pow(2).sum(-1)
        elbo = self.seed_mean(gaussian_kl(mu, logvar) + recon)
        total = elbo / per
        out = {"elbo": elbo}
        if c.lambda_c != 0:
            if self.seed_batch_:  # per seed: each seed's minibatch has its own classes
                l_c = self._stacked_centring(semantics, class_means, y)
            else:
                l_c = self._centring(semantics, class_means, y)
            total = total + c.lambda_c * l_c / per
            out["centre"] = l_c
        n = v.shape[-2]
        if c.lambda_immd != 0 and n >= 2:
            u = unseen_classes[self.randint(len(unseen_classes), (n,))]
            v_u = self.decode(semantics[u], self.randn(n, dz))
            l_immd = inverse_mmd_loss(v, v_u, c.kernel, c.mmd_estimator, c.kernel_scale or None)
            total = total + c.lambda_immd * l_immd
            out["immd"] = l_immd
        out["total"] = total
        return out

    def _centring(
        self, semantics: torch.Tensor, class_means: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """L_C over the classes of one minibatch's labels ``y``."""
        classes = torch.unique(y)
        return prototype_centring_loss(self.prototypes(semantics[classes]), class_means[classes])

    def _stacked_centring(
        self, semantics: torch.Tensor, class_means: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """L_C of each stacked seed, ``(K,)``: every class's prototype from every seed's
        decoder at once, then each seed's loss over the classes of its own minibatch."""
        k, dz = len(y), self._latent(self.dims_)
        sem = semantics.to(torch.float32).expand(k, -1, -1)
        protos = self.decode(sem, sem.new_zeros(k, len(semantics), dz))
        return stacked_centring_loss(protos, class_means, y)

    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        c = self.config
        opt = self.optimizers_["cvae"]
        means = seen_class_means(data)
        sem = data.semantics.to(data.features.dtype)
        return minibatch_epoch(
            opt,
            len(data.features),
            c.batch_size,
            data.features.device,
            lambda idx: self.losses(
                data.features[idx], data.labels[idx], sem, means, data.unseen_classes
            ),
            min_batch=2,
            optimize=self.optimize,
            randperm=self.randperm,
        )

    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        self._check_fitted()
        c = class_semantics.to(self.device, torch.float32).repeat_interleave(n_per_class, dim=0)
        z = torch.randn(len(c), self._latent(self.dims_), device=self.device)
        with torch.no_grad():
            return self.decode(c, z)

    def own_classifier(
        self, classes: torch.Tensor, class_semantics: torch.Tensor
    ) -> NearestPrototypeClassifier:
        """Nearest prototype ``dec(c, 0)``, Euclidean (Tab. 3's NBC column for Baseline 1)."""
        self._check_fitted()
        with torch.no_grad():
            protos = self.prototypes(class_semantics)
        return NearestPrototypeClassifier.from_prototypes(protos, classes, device=self.device)
