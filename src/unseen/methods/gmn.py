"""GMN: Gradient Matching Generative Networks.

Reference:
    Sariyildiz & Cinbis, "Gradient Matching Generative Networks for Zero-Shot Learning",
    CVPR 2019.

Equation -> code:

* Sec. 3.1, latent noise z ~ N(mu(a), Sigma(a)), re-parameterised:
  :class:`unseen.models.gmn.GMNGenerator` (``conditioning: latent``; ``concat`` = [z, a]).
* Eq. 1 / Eq. 7 (L^S_WGAN, ``critic: seen``), Eq. 8 (L^{S+U}_WGAN, ``critic:
  seen+unlabeled``, transductive), Eq. 9 (L^S_cWGAN, ``critic: conditional``): the critic
  step in :meth:`GMN._critic_step` with :func:`unseen.losses.adversarial.gradient_penalty`.
* Eq. 2-4, 6 (g_r, g_s, L_GM for the bilinear f): :func:`unseen.losses.gradient_matching.
  gradient_matching_loss`; the expectation over theta is taken along a trajectory of
  :class:`unseen.models.gmn.BilinearProbe` trained by SGD on real seen batches and
  re-initialised every ``probe_reinit_every`` generator iterations (1 = the official code's
  "random theta every iteration").
* Eq. 5: the generator minimises ``L_WGAN + gm_weight * L_GM`` (``aux: gm``); the baselines
  ``aux: cls`` (loss of a frozen pre-trained bilinear classifier, as f-CLSWGAN) and
  ``aux: none``; ``critic: none`` trains with L_GM alone (Fig. 5's GMN-in-double-dagger).
* Sec. 3.4 (final bilinear classifier over all classes): ``classifier.kind: bilinear`` in the
  run config; the runner trains it on real seen + synthetic unseen features.

:data:`VARIANTS` names the paper's Table 2 / Fig. 5 objectives as config values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.losses.adversarial import gradient_penalty
from unseen.losses.gradient_matching import gradient_matching_loss
from unseen.methods.base import GenerativeMethod, MethodConfig, register
from unseen.models.gmn import BilinearProbe, GMNGenerator, UnconditionalCritic
from unseen.models.mlp import ConditionalCritic, init_normal

__all__ = ["AUX_LOSSES", "CRITICS", "GMN", "VARIANTS", "GMNConfig"]

CRITICS = ("seen", "conditional", "seen+unlabeled", "none")
AUX_LOSSES = ("gm", "cls", "none")

#: The generator objectives of the paper's Table 2 (and Fig. 5) as ``method`` config values.
VARIANTS: dict[str, dict[str, str]] = {
    "wgan+cls": {"critic": "seen", "aux": "cls"},  # L^S_WGAN + L_CLS
    "cwgan": {"critic": "conditional", "aux": "none"},  # L^S_cWGAN
    "wgan+gm": {"critic": "seen", "aux": "gm"},  # L^S_WGAN + L_GM
    "cwgan+gm": {"critic": "conditional", "aux": "gm"},  # L^S_cWGAN + L_GM (GMN)
    "wgan-su+gm": {"critic": "seen+unlabeled", "aux": "gm"},  # L^{S+U}_WGAN + L_GM
    "cwgan+cls": {"critic": "conditional", "aux": "cls"},  # L^S_cWGAN + L_CLS (Table 3)
    "wgan": {"critic": "seen", "aux": "none"},  # L^S_WGAN alone (Fig. 5)
    "gm": {"critic": "none", "aux": "gm"},  # L_GM alone (Fig. 5)
}


@dataclass
class GMNConfig(MethodConfig):
    """GMN hyper-parameters. Defaults: the official code's values (see ``docs/gmn.md``).

    Attributes:
        epochs: generator epochs; one epoch = ceil(N / batch_size) generator iterations.
        batch_size: minibatch size (real and synthetic).
        conditioning: ``latent`` (class-conditional latent Gaussian, Sec. 3.1) or ``concat``.
        noise_dim: size of z.
        mu_tanh: mu(a) = tanh(W a + b).
        identity_cov: Sigma(a) = I instead of exp(W a + b).
        hidden_g, hidden_d: hidden widths of G and of the critic.
        out_relu: non-negative generator output (ReLU CNN features).
        critic: ``seen`` (L^S_WGAN), ``conditional`` (L^S_cWGAN), ``seen+unlabeled``
            (L^{S+U}_WGAN; transductive: needs a task built with ``transductive=True``) or
            ``none``.
        aux: ``gm`` (L_GM), ``cls`` (frozen pre-trained classifier's loss) or ``none``.
        critic_steps, gp_weight, lr, beta1: WGAN-GP and Adam settings.
        gm_weight: beta of Eq. 5.
        gm_per_row: cosine per parameter row (official code) instead of over all of theta.
        gm_lp_weight: weight of the extra l_2 term between the gradient vectors.
        probe_lr, probe_momentum: SGD of the classifier whose trajectory supplies theta.
        probe_reinit_every: re-initialise that classifier every N generator iterations
            (the paper's N; 1 = the official code's random theta at every iteration).
        cls_weight: weight of L_CLS (``aux: cls``).
        pretrain_epochs, pretrain_lr, pretrain_batch: the L_CLS classifier (bilinear, Adam).
    """

    epochs: int = 30
    batch_size: int = 256
    conditioning: str = "latent"
    noise_dim: int = 512
    mu_tanh: bool = False
    identity_cov: bool = False
    hidden_g: tuple = (2048,)
    hidden_d: tuple = (4096,)
    out_relu: bool = True
    critic: str = "conditional"
    aux: str = "gm"
    critic_steps: int = 5
    gp_weight: float = 10.0
    lr: float = 1e-4
    beta1: float = 0.5
    gm_weight: float = 100.0
    gm_per_row: bool = False
    gm_lp_weight: float = 0.0
    probe_lr: float = 1e-2
    probe_momentum: float = 0.9
    probe_reinit_every: int = 100
    cls_weight: float = 0.01
    pretrain_epochs: int = 50
    pretrain_lr: float = 1e-3
    pretrain_batch: int = 100


@register
class GMN(GenerativeMethod):
    """GMN (Sariyildiz & Cinbis, CVPR 2019) and its Table 2 baselines (see :data:`VARIANTS`)."""

    name = "gmn"
    config_class = GMNConfig
    paper = "Sariyildiz & Cinbis, Gradient Matching Generative Networks for ZSL, CVPR 2019"
    config: GMNConfig

    def _check_config(self) -> None:
        c = self.config
        if c.critic not in CRITICS:
            raise ConfigError(f"gmn: critic must be one of {CRITICS}, got {c.critic!r}")
        if c.aux not in AUX_LOSSES:
            raise ConfigError(f"gmn: aux must be one of {AUX_LOSSES}, got {c.aux!r}")
        if c.critic == "none" and c.aux == "none":
            raise ConfigError("gmn: critic 'none' with aux 'none' gives the generator no loss")
        if c.conditioning not in ("latent", "concat"):
            raise ConfigError(f"gmn: conditioning must be latent or concat, got {c.conditioning!r}")
        if c.probe_reinit_every < 1 or c.critic_steps < 1 or c.noise_dim < 1:
            raise ConfigError("gmn: probe_reinit_every, critic_steps and noise_dim must be >= 1")

    def _build(self, dims: dict[str, int]) -> None:
        self._check_config()
        c = self.config
        d, da = dims["feature_dim"], dims["semantic_dim"]
        nets: dict[str, nn.Module] = {
            "generator": GMNGenerator(
                da,
                d,
                c.noise_dim,
                tuple(c.hidden_g),
                c.conditioning,
                c.mu_tanh,
                c.identity_cov,
                "relu" if c.out_relu else None,
            )
        }
        if c.critic == "conditional":
            nets["critic"] = ConditionalCritic(d, da, tuple(c.hidden_d))
        elif c.critic != "none":
            nets["critic"] = UnconditionalCritic(d, tuple(c.hidden_d))
        if c.aux == "gm":
            nets["probe"] = BilinearProbe(d, da)
        elif c.aux == "cls":
            nets["seen_classifier"] = BilinearProbe(d, da)
        self.nets_ = nn.ModuleDict(nets)
        init_normal(self.nets_["generator"])
        betas = (c.beta1, 0.999)
        self.optimizers_ = {
            "generator": torch.optim.Adam(self.nets_["generator"].parameters(), c.lr, betas=betas)
        }
        if "critic" in self.nets_:
            init_normal(self.nets_["critic"])
            self.optimizers_["critic"] = torch.optim.Adam(
                self.nets_["critic"].parameters(), c.lr, betas=betas
            )
        if "probe" in self.nets_:
            self.optimizers_["probe"] = torch.optim.SGD(
                self.nets_["probe"].parameters(), c.probe_lr, momentum=c.probe_momentum
            )

    def _check_data(self, data: SeenTrainData) -> None:
        if self.config.critic == "seen+unlabeled" and data.unlabeled is None:
            raise ConfigError(
                "gmn: critic 'seen+unlabeled' (L^{S+U}_WGAN) is transductive: it trains on "
                "unlabeled test features, which a task exposes only when built with "
                "ZSLTask(..., transductive=True) (run config: data.transductive: true). "
                "Use critic 'seen' or 'conditional' for inductive ZSL."
            )

    def _prepare(self, data: SeenTrainData) -> None:
        self._check_data(data)
        if self.config.aux != "cls":
            return
        # L_CLS baseline: a bilinear classifier over the seen classes, pre-trained on real
        # seen features and then frozen (f-CLSWGAN's scheme with GMN's compatibility f).
        c = self.config
        clf = self.nets_["seen_classifier"]
        sem, target = data.semantics[data.seen_classes], _seen_positions(data)
        opt = torch.optim.Adam(clf.parameters(), c.pretrain_lr, betas=(0.5, 0.999))
        n = len(data.labels)
        for _ in range(c.pretrain_epochs):
            perm = torch.randperm(n, device=data.features.device)
            for i in range(0, n, c.pretrain_batch):
                idx = perm[i : i + c.pretrain_batch]
                loss = F.cross_entropy(clf(data.features[idx], sem), target[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        clf.requires_grad_(False)

    # ------------------------------------------------------------------ training
    def _critic_step(self, data: SeenTrainData, pool: torch.Tensor | None) -> dict[str, float]:
        c = self.config
        G, D = self.nets_["generator"], self.nets_["critic"]
        dev, B = data.features.device, c.batch_size
        if pool is None:  # seen real features; fakes of the same classes (Eq. 7, 9)
            idx = torch.randint(len(data.labels), (B,), device=dev)
            x, a_real = data.features[idx], data.semantics[data.labels[idx]]
            a_fake = a_real
        else:  # Eq. 8: real from X_s + X_u, fakes for classes drawn uniformly from Y_all
            x = pool[torch.randint(len(pool), (B,), device=dev)]
            a_fake = data.semantics[torch.randint(data.n_classes, (B,), device=dev)]
            a_real = a_fake  # ignored by the unconditional critic
        with torch.no_grad():
            fake = G(a_fake, torch.randn(B, G.noise_dim, device=dev))
        scores = D(torch.cat([fake, x]), torch.cat([a_fake, a_real]))
        d_fake, d_real = scores[:B].mean(), scores[B:].mean()
        gp = gradient_penalty(
            lambda v: D(v, a_fake),
            x,
            fake,
            c.gp_weight,
            input_gradient=lambda v: D.input_gradient(v, a_fake),
        )
        loss = d_fake - d_real + gp
        opt = self.optimizers_["critic"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"critic": loss.item(), "wasserstein": (d_real - d_fake).item()}

    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        self._check_data(data)
        c = self.config
        G = self.nets_["generator"]
        D = self.nets_["critic"] if "critic" in self.nets_ else None
        n, dev, B = len(data.labels), data.features.device, c.batch_size
        seen_sem, target_all = data.semantics[data.seen_classes], _seen_positions(data)
        pool = None
        if c.critic == "seen+unlabeled":
            pool = torch.cat([data.features, data.unlabeled])
        steps = max(1, -(-n // B))
        sums: dict[str, float] = {}

        def add(values: dict[str, float]) -> None:
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v

        for step in range(steps):
            if D is not None:
                D.requires_grad_(True)
                for _ in range(c.critic_steps):
                    last = self._critic_step(data, pool)
                add(last)
                D.requires_grad_(False)
            # Generator step: a real seen batch fixes the classes of the synthetic batch.
            idx = torch.randint(n, (B,), device=dev)
            x_real, y = data.features[idx], target_all[idx]
            a = data.semantics[data.labels[idx]]
            fake = G(a, torch.randn(B, G.noise_dim, device=dev))
            loss = fake.new_zeros(())
            logs: dict[str, float] = {}
            if D is not None:
                if pool is None:
                    adv = -D(fake, a).mean()
                else:  # Eq. 8: the adversarial term covers fakes of all classes
                    a_all = data.semantics[torch.randint(data.n_classes, (B,), device=dev)]
                    adv = -D(G(a_all, torch.randn(B, G.noise_dim, device=dev))).mean()
                loss = loss + adv
                logs["generator"] = adv.item()
            if c.aux == "gm":
                probe = self.nets_["probe"]
                global_step = epoch * steps + step
                if global_step % c.probe_reinit_every == 0:
                    probe.reset_parameters()
                    self.optimizers_["probe"].state.clear()
                gm = gradient_matching_loss(
                    x_real,
                    y,
                    fake,
                    y,
                    probe.weight.detach(),
                    probe.bias.detach(),
                    seen_sem,
                    per_row=c.gm_per_row,
                    lp_weight=c.gm_lp_weight,
                )
                loss = loss + c.gm_weight * gm
                logs["gm"] = gm.item()
            elif c.aux == "cls":
                self.nets_["seen_classifier"].requires_grad_(False)
                cls = F.cross_entropy(self.nets_["seen_classifier"](fake, seen_sem), y)
                loss = loss + c.cls_weight * cls
                logs["cls"] = cls.item()
            opt = self.optimizers_["generator"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if c.aux == "gm":
                # theta moves one SGD step along its trajectory on real seen data (Sec. 3.2).
                probe_loss = F.cross_entropy(probe(x_real, seen_sem), y)
                popt = self.optimizers_["probe"]
                popt.zero_grad(set_to_none=True)
                probe_loss.backward()
                popt.step()
                logs["probe_ce"] = probe_loss.item()
            add(logs)
        return {k: v / steps for k, v in sums.items()}

    @torch.no_grad()
    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        self._check_fitted()
        G = self.nets_["generator"]
        a = class_semantics.to(self.device).repeat_interleave(n_per_class, dim=0)
        return G(a, torch.randn(len(a), G.noise_dim, device=self.device))


def _seen_positions(data: SeenTrainData) -> torch.Tensor:
    """Labels as positions in ``data.seen_classes`` (the probe's class order)."""
    pos = torch.full((data.n_classes,), -1, dtype=torch.long, device=data.labels.device)
    pos[data.seen_classes] = torch.arange(len(data.seen_classes), device=data.labels.device)
    return pos[data.labels]
