"""f-CLSWGAN: conditional WGAN-GP feature generator with a classification loss.

Reference:
    Xian, Lorenz, Schiele, Akata, "Feature Generating Networks for Zero-Shot Learning",
    CVPR 2018.

The critic minimises (Eq. 2, WGAN-GP)
    L_D = E[D(x~, a)] - E[D(x, a)] + lambda * E[(||grad_x^ D(x^, a)||_2 - 1)^2]
and the generator minimises (Eq. 4)
    L_G = -E[D(x~, a)] + beta * E[-log P(y | x~; theta)],
where P is a softmax classifier pre-trained on seen features and frozen, x~ = G(z, a).

Seeds can train as one batched model (``supports_seed_batch``, :mod:`unseen.methods.seedbatch`):
the training draws and reduces through the base class's seed-axis helpers, and every
concatenation and slice is on the feature (last) or batch (second-to-last) axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unseen.data.task import SeenTrainData
from unseen.losses.adversarial import gradient_penalty as _gradient_penalty
from unseen.methods.base import GenerativeMethod, MethodConfig, make_adam, register
from unseen.methods.precision import full_precision
from unseen.models.mlp import ConditionalCritic, ConditionalGenerator, init_normal

__all__ = ["CLSWGAN", "CLSWGANConfig"]

#: the penalty in fp32 under bf16/fp16 autocast, critic included (its double backward is
#: where low precision would hurt; see unseen.methods.precision)
gradient_penalty = full_precision(_gradient_penalty)


@dataclass
class CLSWGANConfig(MethodConfig):
    """f-CLSWGAN hyper-parameters (defaults: the paper's / official code's).

    Attributes:
        epochs: generator epochs; one epoch = ceil(N / batch_size) generator steps.
        batch_size: minibatch size.
        noise_dim: size of z; ``0`` means "same as the semantic dimension" (official code).
        hidden_g, hidden_d: hidden width of G and D (one hidden layer each).
        critic_steps: critic updates per generator update.
        gp_weight: lambda of the gradient penalty.
        cls_weight: beta, weight of the classification loss.
        lr, beta1: Adam settings of G and D.
        pretrain_epochs, pretrain_lr, pretrain_batch: the seen-class softmax classifier.
    """

    epochs: int = 30
    batch_size: int = 64
    noise_dim: int = 0
    hidden_g: int = 4096
    hidden_d: int = 4096
    critic_steps: int = 5
    gp_weight: float = 10.0
    cls_weight: float = 0.01
    lr: float = 1e-4
    beta1: float = 0.5
    pretrain_epochs: int = 50
    pretrain_lr: float = 1e-3
    pretrain_batch: int = 100


@register
class CLSWGAN(GenerativeMethod):
    """f-CLSWGAN (Xian et al., CVPR 2018)."""

    name = "clswgan"
    config_class = CLSWGANConfig
    paper = "Xian et al., Feature Generating Networks for Zero-Shot Learning, CVPR 2018"
    config: CLSWGANConfig
    supports_seed_batch = True

    def _noise_dim(self, dims: dict[str, int]) -> int:
        return self.config.noise_dim or dims["semantic_dim"]

    def _build(self, dims: dict[str, int]) -> None:
        c = self.config
        d, da = dims["feature_dim"], dims["semantic_dim"]
        self.nets_ = nn.ModuleDict(
            {
                "generator": ConditionalGenerator(self._noise_dim(dims), da, d, (c.hidden_g,)),
                "critic": ConditionalCritic(d, da, (c.hidden_d,)),
                # Pre-trained seen classifier of the classification loss; frozen in training.
                "seen_classifier": nn.Linear(d, dims["n_seen"]),
            }
        )
        init_normal(self.nets_["generator"])
        init_normal(self.nets_["critic"])
        self.optimizers_ = self._make_optimizers()

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        betas = (c.beta1, 0.999)
        return {
            "generator": make_adam(self.nets_["generator"].parameters(), c.lr, betas=betas),
            "critic": make_adam(self.nets_["critic"].parameters(), c.lr, betas=betas),
        }

    def _prepare(self, data: SeenTrainData) -> None:
        """Pre-train the seen-class softmax classifier used by the classification loss."""
        c = self.config
        clf = self.nets_["seen_classifier"]
        clf.requires_grad_(True)  # frozen after a previous fit(); pre-train it afresh
        target = _seen_positions(data)
        opt = torch.optim.Adam(clf.parameters(), c.pretrain_lr, betas=(0.5, 0.999))
        n = len(data.labels)
        for _ in range(c.pretrain_epochs):
            perm = self.randperm(n)
            for i in range(0, n, c.pretrain_batch):
                idx = perm[..., i : i + c.pretrain_batch]
                loss = self.seed_cross_entropy(clf(data.features[idx]), target[idx])
                self.optimize(loss, opt)
        clf.requires_grad_(False)

    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        c = self.config
        G, D = self.nets_["generator"], self.nets_["critic"]
        clf = self.nets_["seen_classifier"]
        clf.requires_grad_(False)
        opt_g, opt_d = self.optimizers_["generator"], self.optimizers_["critic"]
        x_all, sem = data.features, data.semantics
        target_all = _seen_positions(data)
        n, B = len(x_all), c.batch_size
        nz = G.noise_dim
        # summed as tensors (no device sync per step); one value per seed when stacked
        sums: dict[str, torch.Tensor | float] = dict.fromkeys(
            ("critic", "wasserstein", "generator", "cls"), 0.0
        )
        steps = max(1, -(-n // B))
        for _ in range(steps):
            # Critic: a fresh random minibatch per critic step, as the official code.
            D.requires_grad_(True)
            for _ in range(c.critic_steps):
                idx = self.randint(n, (B,))
                x, a = x_all[idx], sem[data.labels[idx]]
                z = self.randn(B, nz)
                with torch.no_grad():
                    fake = G(z, a)
                # One critic pass over [fake; real]: bigger matrix products, same result.
                scores = D(torch.cat([fake, x], dim=-2), torch.cat([a, a], dim=-2))
                d_fake, d_real = self.seed_mean(scores[..., :B]), self.seed_mean(scores[..., B:])
                gp = gradient_penalty(
                    lambda v, a=a: D(v, a),
                    x,
                    fake,
                    c.gp_weight,
                    input_gradient=lambda v, a=a: D.input_gradient(v, a),
                    alpha=self.rand(B, 1),
                )
                loss_d = d_fake - d_real + gp
                self.optimize(loss_d, opt_d)
            D.requires_grad_(False)
            idx = self.randint(n, (B,))
            a = sem[data.labels[idx]]
            z = self.randn(B, nz)
            fake = G(z, a)
            adv = -self.seed_mean(D(fake, a))
            cls = self.seed_cross_entropy(clf(fake), target_all[idx])
            loss_g = adv + c.cls_weight * cls
            self.optimize(loss_g, opt_g)
            for key, value in (
                ("critic", loss_d),
                ("wasserstein", d_real - d_fake),
                ("generator", adv),
                ("cls", cls),
            ):
                sums[key] = sums[key] + value.detach()
        return {k: v / steps for k, v in sums.items()}

    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        self._check_fitted()
        G = self.nets_["generator"]
        a = class_semantics.to(self.device).repeat_interleave(n_per_class, dim=0)
        z = torch.randn(len(a), G.noise_dim, device=self.device)
        with torch.no_grad():
            return G(z, a)


def _seen_positions(data: SeenTrainData) -> torch.Tensor:
    """Labels as positions in ``data.seen_classes`` (the seen classifier's outputs)."""
    pos = torch.full((data.n_classes,), -1, dtype=torch.long, device=data.labels.device)
    pos[data.seen_classes] = torch.arange(len(data.seen_classes), device=data.labels.device)
    return pos[data.labels]
