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
  gradient_matching_loss` (``gm_batching: random``: class-wise terms inside the generator's
  mixed batch, averaged; ours) or :func:`unseen.losses.gradient_matching.
  grouped_gradient_matching` (``gm_batching: per-class``: a few seen classes per iteration,
  each with its own real and synthetic batch, the terms summed; the official code). The
  expectation over theta is taken along a trajectory of
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
from torch import nn

from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.losses.gradient_matching import gradient_matching_loss as _gradient_matching_loss
from unseen.losses.gradient_matching import (
    grouped_gradient_matching as _grouped_gradient_matching,
)
from unseen.methods.base import GenerativeMethod, MethodConfig, make_adam, register
from unseen.methods.clswgan import gradient_penalty
from unseen.methods.precision import full_precision
from unseen.models.gmn import BilinearProbe, GMNGenerator, UnconditionalCritic, init_official
from unseen.models.mlp import ConditionalCritic, init_normal

__all__ = ["AUX_LOSSES", "CRITICS", "GMN", "GM_BATCHINGS", "INITS", "VARIANTS", "GMNConfig"]

#: L_GM in fp32 under bf16/fp16 autocast: cosines of per-class gradient sums (Gram matrices)
gradient_matching_loss = full_precision(_gradient_matching_loss)
grouped_gradient_matching = full_precision(_grouped_gradient_matching)

CRITICS = ("seen", "conditional", "seen+unlabeled", "none")
AUX_LOSSES = ("gm", "cls", "none")
GM_BATCHINGS = ("random", "per-class")
INITS = ("default", "official")

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
    """GMN hyper-parameters, each default with its source.

    Sources: "paper" = Sariyildiz & Cinbis (CVPR 2019); "official" = the authors' code
    (github.com/mbsariyildiz/gmn-zsl, its CUB script ``gmn_CUB.sh`` with
    ``common_CUB_hps.sh`` unless said otherwise); "ours" = a choice of this library where
    neither gives a value, or where we depart from the official code (``docs/gmn.md``).
    Defaults that are NOT the official value: ``hidden_d``, ``beta1``, ``gm_per_row``,
    ``probe_reinit_every``, ``gm_batching`` and ``init`` (each says so below).

    Attributes:
        epochs: generator epochs; one epoch = ceil(N / batch_size) generator iterations
            (ours; the official code counts iterations: 100k on CUB and AWA1, 20k on SUN).
        batch_size: minibatch size of the critic and of the generator's adversarial term
            (official: 256).
        conditioning: ``latent`` (class-conditional latent Gaussian, paper Sec. 3.1;
            official on CUB and AWA1) or ``concat`` ([z, a]; official on SUN).
        noise_dim: size of z (official: 512 on CUB and AWA1).
        mu_tanh: mu(a) = tanh(W a + b) (paper Sec. 4 option; the official code has none).
        identity_cov: Sigma(a) = I instead of exp(W a + b) (paper Sec. 4 option).
        hidden_g: hidden widths of G (official CUB: one layer of 2048; AWA1, SUN: two).
        hidden_d: hidden widths of the critic (ours: 4096 as f-CLSWGAN; official CUB: one
            layer of 1024, AWA1 and SUN: two of 2048; paper: 1-2 layers of 1024-4096).
        out_relu: non-negative generator output (ReLU CNN features; official).
        critic: ``seen`` (L^S_WGAN, Eq. 7), ``conditional`` (L^S_cWGAN, Eq. 9; the
            official code's only critic), ``seen+unlabeled`` (L^{S+U}_WGAN, Eq. 8;
            transductive: needs a task built with ``transductive=True``) or ``none``.
        aux: ``gm`` (L_GM), ``cls`` (frozen pre-trained classifier's loss) or ``none``.
        critic_steps, gp_weight, lr: WGAN-GP and Adam settings (official: 5, 10, 1e-4 for
            both G and D).
        beta1: Adam beta1 of G and D (ours: 0.5, f-CLSWGAN's; official: 0.0 on CUB and SUN,
            0.999 in the AWA1 script); beta2 is 0.999 (official).
        init: ``default`` (ours: N(0, 0.02^2) weights, zero biases, f-CLSWGAN's) or
            ``official`` (Xavier-normal with gain sqrt(2), zero biases, on every Linear
            layer of G, heads included, and of the critic:
            :func:`unseen.models.gmn.init_official`). The paper gives none.
        gm_weight: beta of Eq. 5 (official: Q = 100). With ``gm_batching: per-class`` it
            weights each class's term and the terms are summed (official); with ``random``
            it weights their mean.
        gm_per_row: cosine per parameter row (official) instead of one cosine over all of
            theta (paper, Eq. 4; default).
        gm_lp_weight: weight of the extra l_2 term between the gradient vectors (paper
            Sec. 4 option; official: Z = 0).
        gm_batching: how g_r and g_s (Eq. 2-3) are estimated. ``random`` (ours): from the
            generator's random real batch and its synthetic batch of the same labels, one
            term per class present, averaged (about batch_size / n_seen samples per
            class). ``per-class`` (official): each generator iteration draws
            ``gm_classes_per_iter`` seen classes and, for each, ``gm_real_per_class`` real
            and ``gm_fake_per_class`` synthetic samples of that class only; the terms are
            summed. The paper says only "over sample batches" of "the same class".
        gm_classes_per_iter: classes per iteration for ``per-class`` (official: CUB 5,
            SUN 20, AWA1 2).
        gm_real_per_class: real samples per drawn class (official: CUB 60, SUN 16, AWA1
            256); a class with fewer contributes all of its samples (ours; the official
            iterator repeats them).
        gm_fake_per_class: synthetic samples per drawn class (official: 2 x the real count
            on CUB and AWA1, 10 x on SUN).
        probe_lr, probe_momentum: SGD of the classifier whose trajectory supplies theta
            (ours; the official values 1e-2 / 0.9 of its classifier are unused by its GMN
            scripts, which never train it).
        probe_reinit_every: re-initialise that classifier every N generator iterations
            (the paper's N, not given; ours: 100; official: 1, a random theta every
            iteration).
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
    init: str = "default"
    gm_weight: float = 100.0
    gm_per_row: bool = False
    gm_lp_weight: float = 0.0
    gm_batching: str = "random"
    gm_classes_per_iter: int = 5
    gm_real_per_class: int = 60
    gm_fake_per_class: int = 120
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
    # seeds as one batched model: draws and reductions through the seed-axis helpers; L_GM is
    # computed per seed (each seed's batch holds its own classes), the probe re-drawn per seed
    supports_seed_batch = True

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
        if c.gm_batching not in GM_BATCHINGS:
            raise ConfigError(
                f"gmn: gm_batching must be one of {GM_BATCHINGS}, got {c.gm_batching!r}"
            )
        if min(c.gm_classes_per_iter, c.gm_real_per_class, c.gm_fake_per_class) < 1:
            raise ConfigError(
                "gmn: gm_classes_per_iter, gm_real_per_class and gm_fake_per_class must be "
                f">= 1, got {c.gm_classes_per_iter}, {c.gm_real_per_class}, "
                f"{c.gm_fake_per_class}"
            )
        if c.init not in INITS:
            raise ConfigError(f"gmn: init must be one of {INITS}, got {c.init!r}")
        if not 0.0 <= c.beta1 < 1.0:
            raise ConfigError(f"gmn: beta1 must lie in [0, 1), got {c.beta1}")

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
        init = init_official if c.init == "official" else init_normal
        init(self.nets_["generator"])
        if "critic" in self.nets_:
            init(self.nets_["critic"])
        self.optimizers_ = self._make_optimizers()

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        betas = (c.beta1, 0.999)
        out = {"generator": make_adam(self.nets_["generator"].parameters(), c.lr, betas=betas)}
        if "critic" in self.nets_:
            out["critic"] = make_adam(self.nets_["critic"].parameters(), c.lr, betas=betas)
        if "probe" in self.nets_:
            out["probe"] = torch.optim.SGD(
                self.nets_["probe"].parameters(), c.probe_lr, momentum=c.probe_momentum
            )
        return out

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
            perm = self.randperm(n)
            for i in range(0, n, c.pretrain_batch):
                idx = perm[..., i : i + c.pretrain_batch]
                loss = self.seed_cross_entropy(clf(data.features[idx], sem), target[idx])
                self.optimize(loss, opt)
        clf.requires_grad_(False)

    # ------------------------------------------------------------------ training
    def _critic_step(
        self, data: SeenTrainData, pool: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        c = self.config
        G, D = self.nets_["generator"], self.nets_["critic"]
        B = c.batch_size
        if pool is None:  # seen real features; fakes of the same classes (Eq. 7, 9)
            idx = self.randint(len(data.labels), (B,))
            x, a_real = data.features[idx], data.semantics[data.labels[idx]]
            a_fake = a_real
        else:  # Eq. 8: real from X_s + X_u, fakes for classes drawn uniformly from Y_all
            x = pool[self.randint(len(pool), (B,))]
            a_fake = data.semantics[self.randint(data.n_classes, (B,))]
            a_real = a_fake  # ignored by the unconditional critic
        with torch.no_grad():
            fake = G(a_fake, self.randn(B, G.noise_dim))
        scores = D(torch.cat([fake, x], dim=-2), torch.cat([a_fake, a_real], dim=-2))
        d_fake, d_real = self.seed_mean(scores[..., :B]), self.seed_mean(scores[..., B:])
        gp = gradient_penalty(
            lambda v: D(v, a_fake),
            x,
            fake,
            c.gp_weight,
            input_gradient=lambda v: D.input_gradient(v, a_fake),
            alpha=self.rand(B, 1),
        )
        loss = d_fake - d_real + gp
        self.optimize(loss, self.optimizers_["critic"])
        return {"critic": loss.detach(), "wasserstein": (d_real - d_fake).detach()}

    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, torch.Tensor]:
        self._check_data(data)
        c = self.config
        G = self.nets_["generator"]
        D = self.nets_["critic"] if "critic" in self.nets_ else None
        n, B = len(data.labels), c.batch_size
        seen_sem, target_all = data.semantics[data.seen_classes], _seen_positions(data)
        pool = None
        if c.critic == "seen+unlabeled":
            pool = torch.cat([data.features, data.unlabeled])
        groups = _ClassGroups(target_all, len(data.seen_classes))
        steps = max(1, -(-n // B))
        # summed as tensors (no device sync per step); one value per seed when stacked
        sums: dict[str, torch.Tensor] = {}

        def add(values: dict[str, torch.Tensor]) -> None:
            for k, v in values.items():
                sums[k] = sums[k] + v if k in sums else v

        # The per-class GM batch brings its own synthetic samples: without a critic, L_CLS
        # or random GM batching, the generator's random batch would go unused.
        need_fake = D is not None or c.aux == "cls" or c.gm_batching == "random"
        for step in range(steps):
            if D is not None:
                D.requires_grad_(True)
                for _ in range(c.critic_steps):
                    last = self._critic_step(data, pool)
                add(last)
                D.requires_grad_(False)
            # Generator step: a real seen batch fixes the classes of the synthetic batch.
            idx = self.randint(n, (B,))
            x_real, y = data.features[idx], target_all[idx]
            a = data.semantics[data.labels[idx]]
            fake = G(a, self.randn(B, G.noise_dim)) if need_fake else None
            loss: torch.Tensor | float = 0.0
            logs: dict[str, torch.Tensor] = {}
            if D is not None:
                if pool is None:
                    adv = -self.seed_mean(D(fake, a))
                else:  # Eq. 8: the adversarial term covers fakes of all classes
                    a_all = data.semantics[self.randint(data.n_classes, (B,))]
                    adv = -self.seed_mean(D(G(a_all, self.randn(B, G.noise_dim))))
                loss = loss + adv
                logs["generator"] = adv.detach()
            if c.aux == "gm":
                probe = self.nets_["probe"]
                global_step = epoch * steps + step
                if global_step % c.probe_reinit_every == 0:
                    if self.seed_batch_:  # each seed's theta from its own stream
                        probe.reset_parameters(self._streams)
                    else:
                        probe.reset_parameters()
                    self.optimizers_["probe"].state.clear()
                if self.seed_batch_:
                    gm, term_means = self._gm_term_seeds(data, (x_real, y), fake, groups)
                else:
                    gm, terms = self._gm_term(data, x_real, y, fake, groups)
                    term_means = terms.mean()
                loss = loss + c.gm_weight * gm
                # per-class mean distance: comparable between the two batchings
                logs["gm"] = term_means.detach()
            elif c.aux == "cls":
                self.nets_["seen_classifier"].requires_grad_(False)
                cls = self.seed_cross_entropy(self.nets_["seen_classifier"](fake, seen_sem), y)
                loss = loss + c.cls_weight * cls
                logs["cls"] = cls.detach()
            self.optimize(loss, self.optimizers_["generator"])
            if c.aux == "gm":
                # theta moves one SGD step along its trajectory on real seen data (Sec. 3.2).
                probe_loss = self.seed_cross_entropy(probe(x_real, seen_sem), y)
                self.optimize(probe_loss, self.optimizers_["probe"])
                logs["probe_ce"] = probe_loss.detach()
            add(logs)
        return {k: v / steps for k, v in sums.items()}

    def _gm_term(
        self,
        data: SeenTrainData,
        x_real: torch.Tensor,
        y: torch.Tensor,
        fake: torch.Tensor | None,
        groups: _ClassGroups,
        details: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L_GM as the generator minimises it (before ``gm_weight``) at the probe's theta.

        ``random`` batching: the mean over the classes present in the generator's random
        batch ``(x_real, y)`` and its synthetic batch ``fake`` of the same labels.
        ``per-class`` batching (the official code): ``gm_classes_per_iter`` seen classes
        are drawn, each with its own real and synthetic batch, and the per-class distances
        are SUMMED (the official code back-propagates ``Q * (1 - cos)`` once per class).

        Args:
            data: the training data; x_real, y: the generator's random real batch (``y``
                as positions in ``data.seen_classes``); fake: its synthetic batch.
            groups: the real samples grouped by class (for per-class batches).
            details: if given, filled with the per-class batch (``classes``, ``real_index``,
                ``x_real``, ``real_mask``, ``x_fake``), for tests.

        Returns:
            ``(loss, terms)``: the scalar term and the per-class distances it is made of.
        """
        c = self.config
        probe = self.nets_["probe"]
        w, b = probe.weight.detach(), probe.bias.detach()
        seen_sem = data.semantics[data.seen_classes]
        if c.gm_batching == "random":
            loss, per_class = gradient_matching_loss(
                x_real,
                y,
                fake,
                y,
                w,
                b,
                seen_sem,
                per_row=c.gm_per_row,
                lp_weight=c.gm_lp_weight,
                return_per_class=True,
            )
            return loss, per_class[~torch.isnan(per_class)]
        G = self.nets_["generator"]
        classes, idx, mask = groups.draw(c.gm_classes_per_iter, c.gm_real_per_class)
        k, s = len(classes), c.gm_fake_per_class
        a = seen_sem[classes].repeat_interleave(s, dim=0)
        x_fake = G(a, torch.randn(k * s, G.noise_dim, device=a.device)).view(k, s, -1)
        x_r = data.features[idx]
        terms = grouped_gradient_matching(
            x_r,
            x_fake,
            classes,
            w,
            b,
            seen_sem,
            real_mask=mask,
            per_row=c.gm_per_row,
            lp_weight=c.gm_lp_weight,
        )
        if details is not None:
            details.update(
                classes=classes, real_index=idx, x_real=x_r, real_mask=mask, x_fake=x_fake
            )
        return terms.sum(), terms

    def _gm_term_seeds(
        self, data: SeenTrainData, real: tuple[torch.Tensor, torch.Tensor],
        fake: torch.Tensor | None, groups: _ClassGroups,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """:meth:`_gm_term` for K stacked seeds: ``(loss (K,), mean per-class term (K,))``;
        ``real`` is the generator's real batch ``(x_real, y)``, ``(K, B, d)`` and ``(K, B)``.

        Each seed's batch holds its own classes, so the distances are computed seed by seed
        (on slices of the stacked tensors, at that seed's theta); the per-class batches are
        drawn from each seed's own stream in the order a sequential fit draws them, and all
        seeds' synthetic batches come from one stacked generator call.
        """
        c = self.config
        x_real, y = real
        probe = self.nets_["probe"]
        w, b = probe.weight.detach(), probe.bias.detach()
        seen_sem = data.semantics[data.seen_classes]
        opts = {"per_row": c.gm_per_row, "lp_weight": c.gm_lp_weight}
        losses, means = [], []
        if c.gm_batching == "random":
            for k in range(len(self._streams)):
                loss, per_class = gradient_matching_loss(
                    x_real[k], y[k], fake[k], y[k], w[k], b[k], seen_sem,
                    return_per_class=True, **opts,
                )  # fmt: skip
                losses.append(loss)
                means.append(per_class[~torch.isnan(per_class)].mean())
            return torch.stack(losses), torch.stack(means)
        G = self.nets_["generator"]
        s = c.gm_fake_per_class
        draws, eps = [], []
        for g in self._streams:  # per seed: classes, their real rows, then the noise
            classes, idx, mask = groups.draw(c.gm_classes_per_iter, c.gm_real_per_class, g)
            draws.append((classes, idx, mask))
            eps.append(torch.randn(len(classes) * s, G.noise_dim, device=self.device, generator=g))
        a = torch.stack([seen_sem[cl].repeat_interleave(s, dim=0) for cl, _, _ in draws])
        x_fake = G(a, torch.stack(eps))
        for k, (classes, idx, mask) in enumerate(draws):
            terms = grouped_gradient_matching(
                data.features[idx],
                x_fake[k].view(len(classes), s, -1),
                classes, w[k], b[k], seen_sem, real_mask=mask, **opts,
            )  # fmt: skip
            losses.append(terms.sum())
            means.append(terms.mean())
        return torch.stack(losses), torch.stack(means)

    @torch.no_grad()
    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        self._check_fitted()
        G = self.nets_["generator"]
        a = class_semantics.to(self.device).repeat_interleave(n_per_class, dim=0)
        return G(a, torch.randn(len(a), G.noise_dim, device=self.device))


class _ClassGroups:
    """Sample indices grouped by class, to draw per-class batches without a Python loop.

    Args:
        target: ``(N,)`` class positions 0..K-1 of the samples.
        n_classes: K.
    """

    def __init__(self, target: torch.Tensor, n_classes: int) -> None:
        self.order = torch.argsort(target, stable=True)  # samples of class 0, then 1, ...
        self.counts = torch.bincount(target, minlength=n_classes)
        self.offsets = self.counts.cumsum(0) - self.counts
        self.available = torch.nonzero(self.counts > 0).flatten()

    def draw(
        self, n_classes: int, n_per_class: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, ...]:
        """``n_classes`` distinct classes, each with up to ``n_per_class`` of its samples.

        Samples are drawn without replacement; a class with fewer than ``n_per_class``
        samples gives all of them (its remaining rows are padding, ``False`` in the mask).
        ``generator``: the random stream (the global one when ``None``).

        Returns:
            ``(classes (C,), indices (C, R), mask (C, R))`` with R = min(n_per_class,
            largest count among the drawn classes).
        """
        dev = self.order.device
        pick = torch.randperm(len(self.available), device=dev, generator=generator)[:n_classes]
        classes = self.available[pick]
        counts = self.counts[classes]
        width = int(counts.max())
        cols = torch.arange(width, device=dev)
        # random keys, padding last: the first R columns of the argsort are a uniform draw
        # without replacement from each class's own samples
        keys = torch.rand(len(classes), width, device=dev, generator=generator)
        keys = keys.masked_fill(cols >= counts[:, None], 2.0)
        r = min(n_per_class, width)
        pos = keys.argsort(1)[:, :r]
        mask = cols[:r] < counts[:, None]
        pos = torch.minimum(pos, counts[:, None] - 1)  # padding rows point at a real sample
        return classes, self.order[self.offsets[classes][:, None] + pos], mask


def _seen_positions(data: SeenTrainData) -> torch.Tensor:
    """Labels as positions in ``data.seen_classes`` (the probe's class order)."""
    pos = torch.full((data.n_classes,), -1, dtype=torch.long, device=data.labels.device)
    pos[data.seen_classes] = torch.arange(len(data.seen_classes), device=data.labels.device)
    return pos[data.labels]
