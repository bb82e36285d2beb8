r"""Conditional WGAN (f-CLSWGAN) + IZF's L_iMMD: the baseline of IZF's toy study, Fig. 4c.

Supplementary Sec. 4.2, Eq. 15:

.. math:: \min_G \max_D\; \mathbb E[D(v^s, c^s)] - \mathbb E[D(\hat v^s, c^s)]
          - \mathcal L_{Lip} + \alpha \mathcal L_{CLS} + \beta \mathcal L_{iMMD},

i.e. f-CLSWGAN (:mod:`unseen.methods.clswgan`, unchanged) whose generator loss gets the extra
term :math:`\beta \mathcal L_{iMMD}` (Eq. 9 of the main paper) between a batch of real seen
features and a batch generated for unseen classes, :math:`\beta = 0.1`. The generator's
output activation is an option (``generator_output``) because the toy data is signed (the
f-CLSWGAN generator ends in a ReLU, for non-negative CNN features).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.losses.mmd import KERNELS
from unseen.methods.base import register
from unseen.methods.clswgan import CLSWGAN, CLSWGANConfig, _seen_positions, gradient_penalty
from unseen.methods.izf import inverse_mmd_loss
from unseen.models.mlp import ConditionalGenerator, init_normal

__all__ = ["CGANiMMD", "CGANiMMDConfig"]


@dataclass
class CGANiMMDConfig(CLSWGANConfig):
    """f-CLSWGAN's config plus ``immd_weight`` (beta, paper 0.1), ``kernel`` and
    ``generator_output`` (``relu`` as f-CLSWGAN, or ``none`` for signed features)."""

    immd_weight: float = 0.1
    kernel: str = "imq"
    generator_output: str = "relu"


@register
class CGANiMMD(CLSWGAN):
    """f-CLSWGAN + beta * L_iMMD (IZF supplementary Eq. 15)."""

    name = "cgan-immd"
    config_class = CGANiMMDConfig
    paper = "IZF's CGAN + L_iMMD baseline (Shen et al., ECCV 2020, supplementary Sec. 4.2)"
    config: CGANiMMDConfig

    def _build(self, dims: dict[str, int]) -> None:
        c = self.config
        if c.kernel not in KERNELS:
            raise ConfigError(f"cgan-immd: unknown kernel {c.kernel!r}; valid: {list(KERNELS)}")
        if c.generator_output not in ("relu", "none"):
            raise ConfigError("cgan-immd: generator_output must be 'relu' or 'none'")
        super()._build(dims)
        if c.generator_output == "none":
            g = ConditionalGenerator(
                self._noise_dim(dims),
                dims["semantic_dim"],
                dims["feature_dim"],
                (c.hidden_g,),
                out_activation=None,
            )
            init_normal(g)
            self.nets_["generator"] = g
            self.optimizers_ = self._make_optimizers()

    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        # f-CLSWGAN's epoch (clswgan.py) with beta * L_iMMD added to the generator loss.
        c = self.config
        G, D = self.nets_["generator"], self.nets_["critic"]
        clf = self.nets_["seen_classifier"]
        clf.requires_grad_(False)
        opt_g, opt_d = self.optimizers_["generator"], self.optimizers_["critic"]
        x_all, sem = data.features, data.semantics
        target_all = _seen_positions(data)
        n, nz, B = len(x_all), G.noise_dim, c.batch_size
        unseen = data.unseen_classes
        # summed as tensors (no device sync per step); one value per seed when stacked
        sums: dict[str, torch.Tensor | float] = dict.fromkeys(
            ("critic", "generator", "cls", "immd"), 0.0
        )
        steps = max(1, -(-n // B))
        for _ in range(steps):
            D.requires_grad_(True)
            for _ in range(c.critic_steps):
                idx = self.randint(n, (B,))
                x, a = x_all[idx], sem[data.labels[idx]]
                with torch.no_grad():
                    fake = G(self.randn(B, nz), a)
                scores = D(torch.cat([fake, x], dim=-2), torch.cat([a, a], dim=-2))
                # the closed-form input gradient, as f-CLSWGAN's (the same value as autograd's
                # double backward; faster, and its weight gradient keeps the stacked layout)
                gp = gradient_penalty(
                    lambda v, a=a: D(v, a),
                    x,
                    fake,
                    c.gp_weight,
                    input_gradient=lambda v, a=a: D.input_gradient(v, a),
                    alpha=self.rand(B, 1),
                )
                loss_d = self.seed_mean(scores[..., :B]) - self.seed_mean(scores[..., B:]) + gp
                self.optimize(loss_d, opt_d)
            D.requires_grad_(False)
            idx = self.randint(n, (B,))
            a = sem[data.labels[idx]]
            fake = G(self.randn(B, nz), a)
            adv = -self.seed_mean(D(fake, a))
            cls = self.seed_cross_entropy(clf(fake), target_all[idx])
            u = unseen[self.randint(len(unseen), (B,))]
            fake_u = G(self.randn(B, nz), sem[u])
            immd = inverse_mmd_loss(x_all[idx], fake_u, c.kernel)
            loss_g = adv + c.cls_weight * cls + c.immd_weight * immd
            self.optimize(loss_g, opt_g)
            for key, value in (
                ("critic", loss_d),
                ("generator", adv),
                ("cls", cls),
                ("immd", immd),
            ):
                sums[key] = sums[key] + value.detach()
        return {k: v / steps for k, v in sums.items()}
