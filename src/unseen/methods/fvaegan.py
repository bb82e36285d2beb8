r"""f-VAEGAN-D2: a conditional VAE and a conditional WGAN sharing one feature generator.

Reference:
    Xian, Sharma, Schiele, Akata, "f-VAEGAN-D2: A Feature Generating Framework for Any-Shot
    Learning", CVPR 2019 (Sec. 3). Facts of the implementation (layer sizes, weights,
    optimisers) are read from the authors' public code path of this model, the tf-VAEGAN
    repository (github.com/akshitac8/tfvaegan, ``train_images.py``, ``networks/
    TFVAEGAN_model.py``, ``scripts/run_{flo,cub}_tfvaegan.py``), with tf-VAEGAN's own
    additions (semantic decoder, feedback module) switched off. No code is copied.

The paper's losses (its Sec. 3.1-3.2; we cite them by name, equation numbers unverified):

* L_VAE = KL(q(z | x, a) || N(0, I)) - E_q[log p(x | z, a)]: encoder ``E(x, a) -> (mu,
  log sigma^2)``, ``z = mu + sigma * eps``, the decoder is the generator ``G(z, a)``. With a
  Bernoulli decoder (sigmoid output, features min-max scaled to [0, 1]) the reconstruction
  term is the binary cross-entropy summed over feature dimensions (official code); ``recon:
  l2`` uses the squared error instead (a unit-variance Gaussian decoder, up to 1/2; ours).
  Both terms are summed over dimensions and averaged over the batch: :func:`vae_loss`.
* L_WGAN = E[D1(x, a)] - E[D1(G(z, a), a)] - lambda E[(||grad D1(x^, a)||_2 - 1)^2], the
  conditional WGAN-GP critic D1 (f-CLSWGAN's, :class:`unseen.models.mlp.ConditionalCritic`
  with :func:`unseen.methods.clswgan.gradient_penalty`).
* f-VAEGAN: min_{G,E} max_{D1} L_VAE + gamma L_WGAN. The official code weights the critic's
  loss by ``gamma_d`` and the generator's adversarial term by ``gamma_g`` (both 10 in the
  FLO and CUB scripts).
* f-VAEGAN-D2 (transductive): + L^u_WGAN = E[D2(x_u)] - E[D2(G(z, a_u))] - lambda E[(||grad
  D2(x^_u)||_2 - 1)^2] with an unconditional critic D2
  (:class:`unseen.models.gmn.UnconditionalCritic`) on unlabeled features x_u. Only with
  ``transductive: true`` and a task built with ``transductive=True``; the runner then marks
  the results ``transductive: true`` (as GMN's L^{S+U} variant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.methods.base import GenerativeMethod, MethodConfig, make_adam, register
from unseen.methods.clswgan import gradient_penalty
from unseen.methods.cvae import gaussian_kl
from unseen.methods.precision import full_precision
from unseen.models.gmn import UnconditionalCritic
from unseen.models.mlp import MLP, ConditionalCritic, ConditionalGenerator, init_normal

__all__ = ["D2_CLASSES", "FVAEGAN", "OUT_ACTIVATIONS", "RECONS", "FVAEGANConfig", "vae_loss"]

RECONS = ("bce", "l2")
OUT_ACTIVATIONS = ("sigmoid", "relu", "none")
D2_CLASSES = ("all", "unseen")


def _vae_loss(
    recon: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    kind: str = "bce",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The two terms of L_VAE, each summed over dimensions and averaged over the batch.

    Args:
        recon: ``G(z, a)`` for ``z ~ q(z | x, a)``, in (0, 1) for ``bce``.
        x: the real features (targets), in [0, 1] for ``bce``.
        mu, logvar: the encoder's Gaussian ``q(z | x, a) = N(mu, diag(exp(logvar)))``.
        kind: ``bce``: :math:`-\sum_j x_j \log r_j + (1 - x_j) \log(1 - r_j)` (official
            code; logs clamped at -100 as PyTorch's BCE); ``l2``: :math:`\sum_j (x_j -
            r_j)^2` (ours).

    Returns:
        ``(reconstruction, kl)``: batch means; L_VAE is their sum.
    """
    target = x.detach()
    if kind == "bce":
        log_r = torch.log(recon).clamp_min(-100.0)
        log_1mr = torch.log1p(-recon).clamp_min(-100.0)
        per_sample = -(target * log_r + (1.0 - target) * log_1mr).sum(-1)
    elif kind == "l2":
        per_sample = (target - recon).pow(2).sum(-1)
    else:
        raise ConfigError(f"fvaegan: recon must be one of {RECONS}, got {kind!r}")
    # means over the batch (last) axis: one value per seed when seeds are stacked
    return per_sample.mean(-1), gaussian_kl(mu, logvar).mean(-1)


#: L_VAE in fp32 under bf16/fp16 autocast (logs and exponentials of the KL)
vae_loss = full_precision(_vae_loss)


class VAEEncoder(nn.Module):
    """E(x, a) -> (mu, logvar): ``[x, a] -> hidden -> 2 * latent`` (LeakyReLU 0.2 after
    both), then two linear heads (the official encoder's shape)."""

    def __init__(self, feature_dim: int, semantic_dim: int, latent_dim: int, hidden: int):
        super().__init__()
        self.trunk = MLP(feature_dim + semantic_dim, (hidden,), 2 * latent_dim)
        self.mu = nn.Linear(2 * latent_dim, latent_dim)
        self.logvar = nn.Linear(2 * latent_dim, latent_dim)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.leaky_relu(self.trunk(torch.cat([x, a], dim=-1)), 0.2)
        return self.mu(h), self.logvar(h)


@dataclass
class FVAEGANConfig(MethodConfig):
    """f-VAEGAN-D2 hyper-parameters, each default with its source.

    Sources: "paper" = Xian et al. (CVPR 2019); "official" = the tf-VAEGAN repository's
    code path of f-VAEGAN (``train_images.py`` with ``config_images.py``, and the values
    common to its FLO and CUB scripts); "ours" = neither gives one.

    Attributes:
        epochs: generator epochs; one epoch = ceil(N / batch_size) generator steps
            (official: the same loop; its scripts run 500 epochs on FLO, 300 on CUB).
        batch_size: minibatch (official: 64).
        latent_dim: size of z, of the encoder's output and of the generator's noise input;
            ``0`` = the semantic dimension (official: ``latent_size = attSize``).
        hidden_e, hidden_g, hidden_d: hidden widths of E, G and D1/D2, one hidden layer each
            (official: 4096, LeakyReLU 0.2; E has a second layer of 2 * latent_dim).
        out_activation: G's output: ``sigmoid`` (official; a Bernoulli decoder of min-max
            scaled features), ``relu`` or ``none``.
        recon: reconstruction term of L_VAE: ``bce`` (official; needs features in [0, 1],
            i.e. ``data.feature_transform: minmax``) or ``l2`` (ours).
        gamma_d: weight of the critic's loss, gradient penalty included (official: 10).
        gamma_g: weight of the generator's adversarial term, the paper's gamma (official: 10).
        critic_steps: D1 (and D2) updates per generator step (official: 5).
        gp_weight: lambda of the gradient penalty (official: 10), its starting value with
            ``gp_adaptive``.
        gp_adaptive: rescale D1's lambda after every generator step as the official code
            does (``train_images.py``): with m the mean of E[(||grad D1||_2 - 1)^2] over the
            step's critic updates, lambda *= 1.1 when m > 1.05, lambda /= 1.1 when m < 1.001.
            Not in the paper (default off: a fixed lambda, the paper's and WGAN-GP's). Since
            m < 1.001 whenever 0 < ||grad D1|| < 2, the official lambda shrinks until the
            critic's slope passes 2. D2 keeps the fixed lambda. Not with batched seeds.
        encoded_noise: the critic's fakes and the generator's adversarial term use
            ``z ~ q(z | x, a)`` (the VAE reconstruction) instead of ``z ~ N(0, I)``
            (official: on in the CUB script, off in the FLO script; default off).
        lr: Adam learning rate of E, G, D1, D2 (official scripts: 1e-4 on FLO and CUB;
            ``config_images.py`` default 1e-3).
        beta1: Adam beta1 of G, D1, D2 (official: 0.5; beta2 0.999).
        encoder_beta1: Adam beta1 of E (official: PyTorch's default 0.9).
        transductive: add the unconditional critic D2 on unlabeled features (paper's
            f-VAEGAN-D2; needs a task built with ``transductive=True``). Off: f-VAEGAN.
        gamma_d2, gamma_g2: weights of D2's loss and of the generator's D2 term (ours: 10,
            as gamma_d and gamma_g; the tf-VAEGAN code declares ``gammaD2``/``gammaG_D2``
            with default 1000 but its image scripts are inductive and never use them).
        d2_classes: the classes of D2's fakes: ``all`` (ours, default: classes drawn
            uniformly from all classes, because this library's unlabeled set holds the
            test features of seen AND unseen classes) or ``unseen`` (the paper, whose
            unlabeled set is of unseen classes only).
    """

    epochs: int = 30
    batch_size: int = 64
    latent_dim: int = 0
    hidden_e: int = 4096
    hidden_g: int = 4096
    hidden_d: int = 4096
    out_activation: str = "sigmoid"
    recon: str = "bce"
    gamma_d: float = 10.0
    gamma_g: float = 10.0
    critic_steps: int = 5
    gp_weight: float = 10.0
    gp_adaptive: bool = False
    encoded_noise: bool = False
    lr: float = 1e-4
    beta1: float = 0.5
    encoder_beta1: float = 0.9
    transductive: bool = False
    gamma_d2: float = 10.0
    gamma_g2: float = 10.0
    d2_classes: str = "all"


@register
class FVAEGAN(GenerativeMethod):
    """f-VAEGAN (inductive) and f-VAEGAN-D2 (``transductive: true``), Xian et al. CVPR 2019."""

    name = "fvaegan"
    config_class = FVAEGANConfig
    paper = "Xian et al., f-VAEGAN-D2: Feature Generating Framework for Any-Shot Learning, CVPR'19"
    config: FVAEGANConfig
    supports_seed_batch = True  # draws and reductions through the seed-axis helpers

    def _latent(self, dims: dict[str, int]) -> int:
        return self.config.latent_dim or dims["semantic_dim"]

    def _check_options(self) -> None:
        c = self.config
        if c.recon not in RECONS:
            raise ConfigError(f"fvaegan: recon must be one of {RECONS}, got {c.recon!r}")
        if c.out_activation not in OUT_ACTIVATIONS:
            raise ConfigError(
                f"fvaegan: out_activation must be one of {OUT_ACTIVATIONS}, "
                f"got {c.out_activation!r}"
            )
        if c.recon == "bce" and c.out_activation != "sigmoid":
            raise ConfigError(
                "fvaegan: recon 'bce' needs out_activation 'sigmoid' (outputs in (0, 1)); "
                "use recon 'l2' with another output"
            )
        if c.d2_classes not in D2_CLASSES:
            raise ConfigError(
                f"fvaegan: d2_classes must be one of {D2_CLASSES}, got {c.d2_classes!r}"
            )
        if not 0.0 <= c.encoder_beta1 < 1.0:
            raise ConfigError(f"fvaegan: encoder_beta1 must lie in [0, 1), got {c.encoder_beta1}")

    def _build(self, dims: dict[str, int]) -> None:
        self._check_options()
        c = self.config
        d, da, dz = dims["feature_dim"], dims["semantic_dim"], self._latent(dims)
        out = None if c.out_activation == "none" else c.out_activation
        nets: dict[str, nn.Module] = {
            "encoder": VAEEncoder(d, da, dz, c.hidden_e),
            "generator": ConditionalGenerator(dz, da, d, (c.hidden_g,), out_activation=out),
            "critic": ConditionalCritic(d, da, (c.hidden_d,)),
        }
        if c.gp_adaptive:  # a buffer: saved in checkpoints, so a resumed run continues it
            nets["critic"].register_buffer("gp_lambda", torch.tensor(float(c.gp_weight)))
        if c.transductive:
            nets["critic_u"] = UnconditionalCritic(d, (c.hidden_d,))
        self.nets_ = nn.ModuleDict(nets)
        for net in self.nets_.values():
            init_normal(net)  # N(0, 0.02^2) weights, zero biases (official)
        self.optimizers_ = self._make_optimizers()

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        betas = (c.beta1, 0.999)
        return {
            "encoder": make_adam(
                self.nets_["encoder"].parameters(), c.lr, betas=(c.encoder_beta1, 0.999)
            ),
            **{
                k: make_adam(self.nets_[k].parameters(), c.lr, betas=betas)
                for k in ("generator", "critic", "critic_u")
                if k in self.nets_
            },
        }

    def _check_data(self, data: SeenTrainData) -> None:
        c = self.config
        if c.gp_adaptive and self.seed_batch_:
            raise ConfigError(
                f"{self.name}: gp_adaptive keeps one lambda per model and cannot train seeds "
                "as one batched model; drop --batch-seeds or gp_adaptive"
            )
        if c.transductive and data.unlabeled is None:
            raise ConfigError(
                "fvaegan: transductive (f-VAEGAN-D2's critic D2) trains on unlabeled test "
                "features, which a task exposes only when built with "
                "ZSLTask(..., transductive=True) (run config: data.transductive: true). "
                "Use transductive: false for inductive ZSL."
            )
        if c.recon == "bce":
            lo, hi = float(data.features.min()), float(data.features.max())
            if lo < 0.0 or hi > 1.0:
                raise ConfigError(
                    f"fvaegan: recon 'bce' needs features in [0, 1], got [{lo:.3g}, {hi:.3g}]; "
                    "use data.feature_transform: minmax (official preprocessing) or recon 'l2'"
                )

    def _prepare(self, data: SeenTrainData) -> None:
        self._check_data(data)

    def _encode(self, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(z, mu, logvar)`` with ``z = mu + exp(logvar / 2) * eps`` (reparameterised)."""
        mu, logvar = self.nets_["encoder"](x, a)
        z = mu + torch.exp(0.5 * logvar) * self.randn(*mu.shape[-2:])
        return z, mu, logvar

    def _generate(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``G(z, a)``: every synthetic feature of training and :meth:`sample` goes through
        here (tf-VAEGAN adds its feedback to G's hidden layer in its override)."""
        return self.nets_["generator"](z, a)

    def _real_batch_hook(self, x: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run on each critic step's real batch before the critic update; returns losses for
        the log. Nothing here (tf-VAEGAN trains its semantic decoder on it)."""
        return {}

    def _generator_extra(self, fake: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra terms of the E/G objective on the synthetic batch ``fake`` of classes ``a``
        (summed into the loss, logged by name). None here (tf-VAEGAN: its cycle loss)."""
        return {}

    def _generator_optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimizers stepped on the E/G objective."""
        return [self.optimizers_["encoder"], self.optimizers_["generator"]]

    def _critic_step(
        self, critic: str, x: torch.Tensor, a_real: torch.Tensor, a_fake: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One update of D1 (``critic``) or D2 (``critic_u``, which ignores ``a``) on real
        ``x`` against ``G(z, a_fake)``; returns ``(loss, wasserstein estimate, E[(||grad
        D||_2 - 1)^2])``."""
        c = self.config
        G, D = self.nets_["generator"], self.nets_[critic]
        with torch.no_grad():
            if critic == "critic" and c.encoded_noise:
                z = self._encode(x, a_real)[0]
            else:
                z = self.randn(a_fake.shape[-2], G.noise_dim)
            fake = self._generate(z, a_fake)
        n = fake.shape[-2]
        scores = D(torch.cat([fake, x], dim=-2), torch.cat([a_fake, a_real], dim=-2))
        d_fake, d_real = self.seed_mean(scores[..., :n]), self.seed_mean(scores[..., n:])
        penalty = gradient_penalty(  # E[(||grad D||_2 - 1)^2], weighted below
            lambda v: D(v, a_fake),
            x,
            fake,
            1.0,
            input_gradient=lambda v: D.input_gradient(v, a_fake),
            alpha=self.rand(n, 1),
        )
        adaptive = critic == "critic" and c.gp_adaptive
        gp = (D.gp_lambda if adaptive else c.gp_weight) * penalty
        weight = c.gamma_d if critic == "critic" else c.gamma_d2
        loss = weight * (d_fake - d_real + gp)
        self.optimize(loss, self.optimizers_[critic])
        return loss.detach(), (d_real - d_fake).detach(), penalty.detach()

    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        self._check_data(data)
        c = self.config
        G, D1 = self.nets_["generator"], self.nets_["critic"]
        D2 = self.nets_["critic_u"] if c.transductive else None
        x_all, sem, labels = data.features, data.semantics, data.labels
        n, B = len(x_all), c.batch_size
        fake_pool = data.unseen_classes if c.d2_classes == "unseen" else None
        steps = max(1, -(-n // B))
        # summed as tensors (no device sync per step); one value per seed when stacked
        sums: dict[str, torch.Tensor] = {}

        def add(key: str, value: torch.Tensor) -> None:
            sums[key] = sums.get(key, 0.0) + value.detach()

        def fake_classes() -> torch.Tensor:
            if fake_pool is None:
                return self.randint(data.n_classes, (B,))
            return fake_pool[self.randint(len(fake_pool), (B,))]

        for _ in range(steps):
            critics = [D1] if D2 is None else [D1, D2]
            for D in critics:
                D.requires_grad_(True)
            penalty_sum = 0.0
            for _ in range(c.critic_steps):
                # a fresh random batch per critic step (official)
                idx = self.randint(n, (B,))
                a = sem[labels[idx]]
                for key, value in self._real_batch_hook(x_all[idx], a).items():
                    add(key, value / c.critic_steps)
                loss_d, w, penalty = self._critic_step("critic", x_all[idx], a, a)
                penalty_sum = penalty_sum + penalty
                if D2 is not None:
                    x_u = data.unlabeled[self.randint(len(data.unlabeled), (B,))]
                    a_u = sem[fake_classes()]
                    loss_d2, w2, _ = self._critic_step("critic_u", x_u, a_u, a_u)
            for D in critics:
                D.requires_grad_(False)
            add("critic", loss_d)
            add("wasserstein", w)
            if c.gp_adaptive:  # the official rescaling of lambda (see FVAEGANConfig)
                lam, m = D1.gp_lambda, penalty_sum / c.critic_steps
                lam.copy_(torch.where(m > 1.05, lam * 1.1, torch.where(m < 1.001, lam / 1.1, lam)))
                add("gp_lambda", lam.clone())
            if D2 is not None:
                add("critic_u", loss_d2)
                add("wasserstein_u", w2)
            # E and G: L_VAE + gamma_g * (-E[D1(x~, a)]) (+ gamma_g2 * (-E[D2(x~_u)]))
            idx = self.randint(n, (B,))
            x, a = x_all[idx], sem[labels[idx]]
            z, mu, logvar = self._encode(x, a)
            recon_x = self._generate(z, a)
            rec, kl = vae_loss(recon_x, x, mu, logvar, c.recon)
            if c.encoded_noise:
                fake = recon_x
            else:
                fake = self._generate(self.randn(B, G.noise_dim), a)
            adv = -self.seed_mean(D1(fake, a))
            loss = rec + kl + c.gamma_g * adv
            for key, value in self._generator_extra(fake, a).items():
                loss = loss + value
                add(key, value.detach())
            if D2 is not None:
                a_u = sem[fake_classes()]
                adv_u = -self.seed_mean(D2(self._generate(self.randn(B, G.noise_dim), a_u)))
                loss = loss + c.gamma_g2 * adv_u
                add("generator_u", adv_u.detach())
            self.optimize(loss, *self._generator_optimizers())
            add("recon", rec.detach())
            add("kl", kl.detach())
            add("generator", adv.detach())
        return {k: v / steps for k, v in sums.items()}

    @torch.no_grad()
    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        """``G(z, a)`` with ``z ~ N(0, I)`` (the prior of L_VAE), ``n_per_class`` per row."""
        self._check_fitted()
        G = self.nets_["generator"]
        a = class_semantics.to(self.device).repeat_interleave(n_per_class, dim=0)
        return self._generate(torch.randn(len(a), G.noise_dim, device=self.device), a)
