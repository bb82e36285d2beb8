"""Two-level adversarial visual-semantic coupling (TL-Coupling).

Reference:
    Chandhok & Balasubramanian, "Two-Level Adversarial Visual-Semantic Coupling for
    Generalized Zero-shot Learning", WACV 2021. No public code exists; this is the reference
    implementation. Every equation of Sec. 3 maps to one function or method below.

Modules (Fig. 1):

* generative module (Sec. 3.1, Eq. 7-9): G(z, h) -> x_hat, conditional critic D1(x, h) with a
  gradient penalty on x, classification loss of a softmax classifier pre-trained on seen
  features and frozen (beta) -- f-CLSWGAN, inherited from :class:`~unseen.methods.CLSWGAN`;
* inference module (Sec. 3.2, Eq. 10-11): I(x) -> h_hat, critic D2(h, x) with a gradient
  penalty on h, and a Sinkhorn (Wasserstein) alignment of the class centres of h_hat with the
  ground-truth class semantics h (gamma);
* joint maximisation (Sec. 3.3, Eq. 12-13): D3 tells <x, I(x)> from <G(z, h), h>, with a
  gradient penalty on both inputs of the interpolates; G and I jointly maximise Eq. 13;
* recognition module (Sec. 3.4, Eq. 15): the final softmax classifier sees
  ``transform_features(x) = [x, h_hat, f]`` (f = hidden activations of I) for real seen,
  synthetic unseen and test features alike.

Training order of one generator iteration (:meth:`TLCoupling._train_epoch`):

1. ``critic_steps`` times, on a fresh random minibatch each: x_hat = G(z, h) and h_hat = I(x)
   are computed without gradients, then D1, D2 and D3 each take one Adam step on their own
   critic loss (the negatives of Eq. 7, 10 and 12, gradient penalties included);
2. on a fresh minibatch, G and I take one joint Adam step on the generator side of Eq. 14,
   ``L_gen + alpha1 * L_inf + alpha2 * L_joint-max`` (critics frozen, classifier frozen).

Modules whose weight is 0 are skipped entirely (alpha1 = 0: no D2 step, no L_inf; alpha2 = 0:
no D3 step, no L_joint-max), which gives the ablation S1 (generative module only).

Health check (:meth:`TLCoupling.health`, reported by ``unseen diagnose``): the inference module
only helps if I(x) -> h_hat carries class information beyond what a closed-form linear map
does, and the adversarial part of Eq. 10-11 only trains I if D2 separates h from h_hat. Both are
measured on held-out real pseudo-unseen features: the zero-shot accuracy of h_hat against that
of a ridge regression x -> h (:class:`RidgeMap`), and D2's Wasserstein estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.eval.metrics import per_class_accuracy
from unseen.losses.sinkhorn import sinkhorn_distance as _sinkhorn_distance
from unseen.methods.base import make_adam, register
from unseen.methods.clswgan import CLSWGAN, CLSWGANConfig, _seen_positions, gradient_penalty
from unseen.methods.precision import full_precision
from unseen.models.coupling import InferenceNetwork, JointCritic
from unseen.models.mlp import ConditionalCritic, ConditionalGenerator, init_normal

__all__ = [
    "RidgeMap",
    "TLCoupling",
    "TLCouplingConfig",
    "class_centres",
    "nearest_semantic_accuracy",
]

#: the alignment in fp32 under bf16/fp16 autocast (POT's log-domain Sinkhorn iterations)
sinkhorn_distance = full_precision(_sinkhorn_distance)


@dataclass
class TLCouplingConfig(CLSWGANConfig):
    """TL-Coupling hyper-parameters.

    The f-CLSWGAN fields (``noise_dim``, ``hidden_g``, ``hidden_d`` (D1), ``critic_steps``,
    ``gp_weight`` (lambda of Eq. 7, 10, 12), ``cls_weight`` (beta of Eq. 9), ``lr``,
    ``beta1``, ``pretrain_*``) keep their meaning; sizes default to the f-VAEGAN-D2-like
    architecture the paper follows (4096 hidden units, LeakyReLU 0.2, lambda 10).

    Attributes:
        hidden_i: hidden layer sizes of the inference network I (its f has their sum).
        hidden_d2, hidden_d3: hidden width of D2 and D3.
        alpha1: weight of L_inf in Eq. 14 (0 disables the inference module's critic D2).
        alpha2: weight of L_joint-max in Eq. 14 (0 disables the joint critic D3).
        gamma: weight of the Wasserstein alignment inside L_inf (Eq. 11).
        sinkhorn_reg: entropic regularisation of the Sinkhorn distance, relative to the mean
            squared distance between the two sets of centres.
        coupled_features: recognition module on ``[x, h_hat, f]`` (Eq. 15) instead of x.
        lr_i: Adam learning rate of I (0 = ``lr``).
    """

    hidden_i: tuple[int, ...] = (4096,)
    hidden_d2: int = 4096
    hidden_d3: int = 4096
    alpha1: float = 1.0
    alpha2: float = 1.0
    gamma: float = 1.0
    sinkhorn_reg: float = 0.05
    coupled_features: bool = True
    lr_i: float = 0.0


def class_centres(values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean row of ``values`` per distinct label: ``(centres (K, d), classes (K,))``.

    Example:
        >>> c, k = class_centres(torch.tensor([[0.0], [2.0], [5.0]]), torch.tensor([3, 3, 1]))
        >>> c.squeeze(1).tolist(), k.tolist()
        ([5.0, 1.0], [1, 3])
    """
    classes, inverse = torch.unique(labels, return_inverse=True)
    sums = torch.zeros(len(classes), values.shape[1], dtype=values.dtype, device=values.device)
    sums = sums.index_add(0, inverse, values)
    counts = torch.bincount(inverse, minlength=len(classes)).to(values.dtype)
    return sums / counts[:, None], classes


def nearest_semantic_accuracy(
    predicted: torch.Tensor,
    labels: torch.Tensor,
    class_semantics: torch.Tensor,
    classes: torch.Tensor,
) -> float:
    """Zero-shot per-class top-1 (in [0, 1]) of the nearest-semantics rule.

    Each row of ``predicted`` (an estimate of its image's semantic vector) goes to the class of
    ``classes`` whose row of ``class_semantics`` has the highest cosine similarity with it;
    accuracy is averaged per class (the ZSL protocol's T1).

    Example:
        >>> sem = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> pred = torch.tensor([[2.0, 0.1], [0.3, 0.2], [0.0, 5.0]])
        >>> nearest_semantic_accuracy(pred, torch.tensor([7, 9, 9]), sem, torch.tensor([7, 9]))
        0.75
    """
    pred = F.normalize(predicted.detach().cpu().double(), dim=1)
    protos = F.normalize(class_semantics.detach().cpu().double(), dim=1)
    classes = torch.as_tensor(classes).cpu()
    guess = classes[(pred @ protos.T).argmax(dim=1)]
    return per_class_accuracy(labels.cpu().numpy(), guess.numpy(), classes.numpy())


#: ridge penalties tried, relative to the mean eigenvalue of the centred feature Gram matrix
#: (so that the grid does not depend on the feature scale or the number of samples).
RIDGE_PENALTIES: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclass
class RidgeMap:
    """Closed-form ridge regression x -> h with an intercept: the inference network's baseline.

    ``h_pred = (x - mean_x) @ weight + mean_h``, with
    ``weight = (Xc^T Xc + lam I)^-1 Xc^T Hc`` on centred training rows. :meth:`fit` picks lam
    among ``RIDGE_PENALTIES`` (times the mean eigenvalue of ``Xc^T Xc``) by the zero-shot
    accuracy on a class-disjoint split of the TRAINING classes only (every fifth class, in
    sorted order, held out), then refits on all training rows with it.
    """

    mean_x: torch.Tensor
    mean_h: torch.Tensor
    weight: torch.Tensor
    penalty: float  # relative to the mean eigenvalue (the grid value chosen)

    @staticmethod
    def _solutions(
        x: torch.Tensor, h: torch.Tensor, penalties: tuple[float, ...]
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(mean_x, mean_h, [weight per penalty])``; one eigendecomposition serves all."""
        mx, mh = x.mean(0), h.mean(0)
        xc, hc = x - mx, h - mh
        evals, evecs = torch.linalg.eigh(xc.T @ xc)
        scale = evals.clamp_min(0).mean().clamp_min(1e-12)
        proj = evecs.T @ (xc.T @ hc)
        weights = [evecs @ (proj / (evals.clamp_min(0) + p * scale)[:, None]) for p in penalties]
        return mx, mh, weights

    @classmethod
    def fit(
        cls,
        features: torch.Tensor,
        labels: torch.Tensor,
        semantics: torch.Tensor,
        penalties: tuple[float, ...] = RIDGE_PENALTIES,
    ) -> RidgeMap:
        """Fit on ``features`` with targets ``semantics[labels]`` (float64 on the CPU)."""
        x = features.detach().cpu().double()
        y = labels.detach().cpu().long()
        sem = semantics.detach().cpu().double()
        chosen = 1.0 if 1.0 in penalties else penalties[len(penalties) // 2]
        present = torch.unique(y)
        held = present[2::5]
        if len(penalties) > 1 and len(held) >= 2 and len(present) - len(held) >= 2:
            inner = ~torch.isin(y, held)
            mx, mh, weights = cls._solutions(x[inner], sem[y[inner]], penalties)
            x_held, y_held = x[~inner], y[~inner]
            accs = [
                nearest_semantic_accuracy((x_held - mx) @ w + mh, y_held, sem[held], held)
                for w in weights
            ]
            # ties go to the larger penalty (the smoother map)
            best = max(range(len(penalties)), key=lambda i: (accs[i], penalties[i]))
            chosen = penalties[best]
        mx, mh, (weight,) = cls._solutions(x, sem[y], (chosen,))
        return cls(mean_x=mx, mean_h=mh, weight=weight, penalty=float(chosen))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Estimated semantics of the rows of ``x`` (float64, CPU)."""
        return (x.detach().cpu().double() - self.mean_x) @ self.weight + self.mean_h


@register
class TLCoupling(CLSWGAN):
    """Two-level adversarial visual-semantic coupling (Chandhok & Balasubramanian, WACV 2021)."""

    name = "tlcoupling"
    config_class = TLCouplingConfig
    # the epoch draws and reduces through the seed-axis helpers; the Sinkhorn alignment of
    # Eq. 11 runs per seed (each seed's minibatch has its own set of classes)
    supports_seed_batch = True
    paper = (
        "Chandhok & Balasubramanian, Two-Level Adversarial Visual-Semantic Coupling for "
        "Generalized Zero-shot Learning, WACV 2021"
    )
    config: TLCouplingConfig

    # ------------------------------------------------------------------ networks
    def _build(self, dims: dict[str, int]) -> None:
        c = self.config
        if c.coupled_features and c.alpha1 <= 0 and c.alpha2 <= 0:
            raise ConfigError(
                "tlcoupling: coupled_features needs a trained inference network "
                "(alpha1 > 0 or alpha2 > 0); set coupled_features: false for S1"
            )
        if min(c.alpha1, c.alpha2, c.gamma) < 0:
            raise ConfigError("tlcoupling: alpha1, alpha2 and gamma must be >= 0")
        d, da = dims["feature_dim"], dims["semantic_dim"]
        self.nets_ = nn.ModuleDict(
            {
                "generator": ConditionalGenerator(self._noise_dim(dims), da, d, (c.hidden_g,)),
                "critic": ConditionalCritic(d, da, (c.hidden_d,)),  # D1(x, h)
                "seen_classifier": nn.Linear(d, dims["n_seen"]),
                "inference": InferenceNetwork(d, da, c.hidden_i),  # I(x)
                # D2(h, x): h first, so the closed-form input gradient is the one on h.
                "critic_inf": ConditionalCritic(da, d, (c.hidden_d2,)),
                "critic_joint": JointCritic(d, da, (c.hidden_d3,)),  # D3(x, h)
            }
        )
        for key in ("generator", "critic", "inference", "critic_inf", "critic_joint"):
            init_normal(self.nets_[key])
        self.optimizers_ = self._make_optimizers()

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        betas = (c.beta1, 0.999)

        def adam(key: str, lr: float) -> torch.optim.Adam:
            return make_adam(self.nets_[key].parameters(), lr, betas=betas)

        return {
            "generator": adam("generator", c.lr),
            "critic": adam("critic", c.lr),
            "inference": adam("inference", c.lr_i or c.lr),
            "critic_inf": adam("critic_inf", c.lr),
            "critic_joint": adam("critic_joint", c.lr),
        }

    # ------------------------------------------------------------------ critic losses
    def critic_gen_loss(
        self, x: torch.Tensor, x_hat: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 7, critic side: ``E[D1(x_hat, h)] - E[D1(x, h)] + lambda * GP_x`` (minimised,
        i.e. D1 maximises L_WGAN1). Returns ``(loss, E[D1(x,h)] - E[D1(x_hat,h)])``."""
        D1 = self.nets_["critic"]
        n = x.shape[-2]
        scores = D1(torch.cat([x_hat, x], dim=-2), torch.cat([h, h], dim=-2))
        d_fake, d_real = self.seed_mean(scores[..., :n]), self.seed_mean(scores[..., n:])
        gp = gradient_penalty(
            lambda v: D1(v, h),
            x,
            x_hat,
            self.config.gp_weight,
            input_gradient=lambda v: D1.input_gradient(v, h),
            alpha=self.rand(n, 1),
        )
        return d_fake - d_real + gp, (d_real - d_fake).detach()

    def critic_inf_loss(
        self, h: torch.Tensor, h_hat: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 10, critic side: ``E[D2(h_hat, x)] - E[D2(h, x)] + lambda * GP_h``, with the
        penalty on interpolates h~ = a h + (1 - a) h_hat (gradient w.r.t. h only, x fixed).
        Returns ``(loss, E[D2(h,x)] - E[D2(h_hat,x)])``."""
        D2 = self.nets_["critic_inf"]
        n = h.shape[-2]
        scores = D2(torch.cat([h_hat, h], dim=-2), torch.cat([x, x], dim=-2))
        d_fake, d_real = self.seed_mean(scores[..., :n]), self.seed_mean(scores[..., n:])
        gp = gradient_penalty(
            lambda v: D2(v, x),
            h,
            h_hat,
            self.config.gp_weight,
            input_gradient=lambda v: D2.input_gradient(v, x),
            alpha=self.rand(n, 1),
        )
        return d_fake - d_real + gp, (d_real - d_fake).detach()

    def critic_joint_loss(
        self, x: torch.Tensor, h_hat: torch.Tensor, x_hat: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 12, critic side: ``E[D3(x_hat, h)] - E[D3(x, h_hat)] + lambda * GP_{x,h}``.

        D3 maximises ``E[D3(x, h_hat)] - E[D3(x_hat, h)]`` (the pair with the REAL image
        feature and the inferred semantics scores high). The penalty acts on the norm of the
        gradient w.r.t. both inputs of the interpolates x~ = a x + (1 - a) x_hat,
        h~ = a h_hat + (1 - a) h (one a per row for both). Returns ``(loss, the estimate)``.
        """
        D3 = self.nets_["critic_joint"]
        real = torch.cat([x, h_hat], dim=-1)  # <x, I(x)>
        fake = torch.cat([x_hat, h], dim=-1)  # <G(z, h), h>
        n = x.shape[-2]
        scores = D3.forward_pair(torch.cat([fake, real], dim=-2))
        d_fake, d_real = self.seed_mean(scores[..., :n]), self.seed_mean(scores[..., n:])
        gp = gradient_penalty(
            D3.forward_pair,
            real,
            fake,
            self.config.gp_weight,
            input_gradient=D3.input_gradient,
            alpha=self.rand(n, 1),
        )
        return d_fake - d_real + gp, (d_real - d_fake).detach()

    # ------------------------------------------------------------------ G and I losses
    def generative_loss(
        self, x_hat: torch.Tensor, h: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 9, generator side: ``-E[D1(x_hat, h)] + beta * L_CLS`` with L_CLS of Eq. 8
        (cross-entropy of the frozen pre-trained seen classifier on x_hat).
        Returns ``(loss, adversarial part, L_CLS)``."""
        adv = -self.seed_mean(self.nets_["critic"](x_hat, h))
        cls = self.seed_cross_entropy(self.nets_["seen_classifier"](x_hat), target)
        return adv + self.config.cls_weight * cls, adv, cls

    def alignment_loss(self, h_hat: torch.Tensor, labels: torch.Tensor, semantics: torch.Tensor):
        """L_wasserstein of Eq. 11: Sinkhorn distance between the class centres of h_hat in
        the minibatch and the ground-truth semantics h of those classes (two uniform point
        sets, no correspondence imposed)."""
        if self.seed_batch_:  # per seed: each seed's minibatch has its own classes
            return torch.stack(
                [self.alignment_loss_one(h_k, y_k, semantics) for h_k, y_k in zip(h_hat, labels)]
            )
        return self.alignment_loss_one(h_hat, labels, semantics)

    def alignment_loss_one(
        self, h_hat: torch.Tensor, labels: torch.Tensor, semantics: torch.Tensor
    ) -> torch.Tensor:
        """L_wasserstein of one minibatch (one seed)."""
        centres, classes = class_centres(h_hat, labels)
        return sinkhorn_distance(centres, semantics[classes], self.config.sinkhorn_reg)

    def inference_loss(
        self,
        h_hat: torch.Tensor,
        x: torch.Tensor,
        labels: torch.Tensor,
        semantics: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 11, inference side: ``-E[D2(h_hat, x)] + gamma * L_wasserstein``.
        Returns ``(loss, adversarial part, L_wasserstein)`` (the latter 0 when gamma = 0)."""
        adv = -self.seed_mean(self.nets_["critic_inf"](h_hat, x))
        if self.config.gamma > 0:
            align = self.alignment_loss(h_hat, labels, semantics)
        else:
            align = torch.zeros_like(adv)
        return adv + self.config.gamma * align, adv, align

    def joint_max_loss(
        self, x: torch.Tensor, h_hat: torch.Tensor, x_hat: torch.Tensor, h: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 13 as a loss for G and I to MINIMISE: ``E[D3(x, h_hat)] - E[D3(x_hat, h)]``.

        Maximising L_joint-max = -(E[D3(x, h_hat)] - E[D3(x_hat, h)]) is minimising this:
        I lowers D3 on <x, I(x)> and G raises it on <G(z, h), h>, so the two joint
        distributions p(x) p(h_hat | x) and p(h) p(x_hat | h) are matched.
        """
        D3 = self.nets_["critic_joint"]
        scores = D3.forward_pair(
            torch.cat([torch.cat([x, h_hat], dim=-1), torch.cat([x_hat, h], dim=-1)], dim=-2)
        )
        n = x.shape[-2]
        return self.seed_mean(scores[..., :n]) - self.seed_mean(scores[..., n:])

    def total_loss(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        target: torch.Tensor,
        semantics: torch.Tensor,
        z: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 14, generator/inference side: ``L_gen + alpha1 L_inf + alpha2 L_joint-max``.

        Args:
            x: real seen features of the minibatch; ``labels`` their global class ids,
                ``target`` their positions among the seen classes (classifier outputs).
            semantics: ``(C, d_a)`` semantics of all classes.
            z: the generator noise for the minibatch.

        Returns:
            ``(total, parts)`` with the detached parts for the training log.
        """
        c = self.config
        h = semantics[labels]
        x_hat = self.nets_["generator"](z, h)
        l_gen, adv_g, cls = self.generative_loss(x_hat, h, target)
        total = l_gen
        parts = {"generator": adv_g, "cls": cls}
        if c.alpha1 > 0 or c.alpha2 > 0:
            h_hat = self.nets_["inference"](x)
        if c.alpha1 > 0:
            l_inf, adv_i, align = self.inference_loss(h_hat, x, labels, semantics)
            total = total + c.alpha1 * l_inf
            parts.update(inference=adv_i, align=align)
        if c.alpha2 > 0:
            l_joint = self.joint_max_loss(x, h_hat, x_hat, h)
            total = total + c.alpha2 * l_joint
            parts["joint"] = l_joint
        parts["total"] = total
        return total, {k: v.detach() for k, v in parts.items()}

    # ------------------------------------------------------------------ training
    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        c = self.config
        nets, opts = self.nets_, self.optimizers_
        G, inf = nets["generator"], nets["inference"]
        use_inf, use_joint = c.alpha1 > 0, c.alpha2 > 0
        critics = ["critic"] + ["critic_inf"] * use_inf + ["critic_joint"] * use_joint
        nets["seen_classifier"].requires_grad_(False)
        x_all, sem = data.features, data.semantics
        target_all = _seen_positions(data)
        n, B = len(x_all), c.batch_size
        # summed as tensors (no device sync per step); one value per seed when stacked
        sums: dict[str, torch.Tensor] = {}
        steps = max(1, -(-n // B))

        def log(key: str, value: torch.Tensor) -> None:
            sums[key] = sums.get(key, 0.0) + value.detach()

        for _ in range(steps):
            # 1. Critics D1, D2, D3: critic_steps updates on fresh minibatches.
            for key in critics:
                nets[key].requires_grad_(True)
            for _ in range(c.critic_steps):
                idx = self.randint(n, (B,))
                x, h = x_all[idx], sem[data.labels[idx]]
                z = self.randn(B, G.noise_dim)
                with torch.no_grad():
                    x_hat = G(z, h)
                    h_hat = inf(x) if use_inf or use_joint else None
                loss, w1 = self.critic_gen_loss(x, x_hat, h)
                crit = {"critic": loss}
                if use_inf:
                    crit["critic_inf"], w2 = self.critic_inf_loss(h, h_hat, x)
                if use_joint:
                    crit["critic_joint"], w3 = self.critic_joint_loss(x, h_hat, x_hat, h)
                # The three critic graphs are disjoint: one backward trains each on its own loss.
                self.optimize(sum(crit.values()), *(opts[key] for key in critics))
            for key in critics:
                nets[key].requires_grad_(False)
            for key, value in crit.items():
                log(key, value.detach())
            log("w_gen", w1)
            if use_inf:
                log("w_inf", w2)
            if use_joint:
                log("w_joint", w3)
            # 2. G and I: one joint step on Eq. 14.
            idx = self.randint(n, (B,))
            z = self.randn(B, G.noise_dim)
            total, parts = self.total_loss(x_all[idx], data.labels[idx], target_all[idx], sem, z)
            gi = ["generator"] + ["inference"] * (use_inf or use_joint)
            self.optimize(total, *(opts[key] for key in gi))
            for key, value in parts.items():
                log(key, value)
        return {k: v / steps for k, v in sums.items()}

    # ------------------------------------------------------------------ health check
    def _batched(
        self, fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, batch_size: int = 4096
    ) -> torch.Tensor:
        """``fn`` over row batches of ``tensors`` (moved to the device), eval mode, no grad;
        the output is concatenated on the CPU."""
        was_training = self.nets_.training
        self.nets_.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(tensors[0]), batch_size):
                out.append(fn(*(t[i : i + batch_size].to(self.device) for t in tensors)).cpu())
        self.nets_.train(was_training)
        return torch.cat(out)

    def health(
        self,
        real: torch.Tensor,
        labels: torch.Tensor,
        classes: torch.Tensor,
        train: SeenTrainData,
    ) -> dict[str, float]:
        """Is the inference module worth its cost? Numbers on held-out real pseudo-unseen data.

        Args:
            real: held-out real features of the pseudo-unseen ``classes``; ``labels`` their
                global class ids (neither was ever seen by ``fit``).
            classes: the pseudo-unseen class ids (the candidates of the zero-shot rule).
            train: the data the method was fitted on (the ridge baseline's training data).

        Returns:
            ``{}`` for S1 (alpha1 = alpha2 = 0: I is never trained, so its output is the random
            initialisation). Otherwise:

            * ``hhat_zsl_acc``: per-class accuracy (%) of assigning each image to the class
              whose semantic vector is nearest (cosine) to h_hat = I(x) (Sec. 3.2);
            * ``ridge_zsl_acc``: the same rule with h estimated by :class:`RidgeMap` fitted on
              ``train`` (penalty chosen on a class-disjoint split of ``train``, never on
              ``real``), and ``ridge_penalty`` the relative penalty it chose;
            * ``d2_estimate`` (alpha1 > 0 only, D2 is untrained otherwise): D2's Wasserstein
              estimate ``E[D2(h, x)] - E[D2(h_hat, x)]`` with h the true class semantics
              (Eq. 10); a critic that separates real from inferred semantics makes it > 0;
            * ``d2_true_vs_other`` (alpha1 > 0, >= 2 classes): ``E[D2(h, x)] - E[D2(h', x)]``
              with h' the semantics of another pseudo-unseen class (the next one in sorted
              order): > 0 iff D2 prefers the right class for an image, i.e. its conditioning
              on x is of any use to I;
            * ``inference_warning``: 1.0 when h_hat classifies worse than the ridge map (I then
              adds less semantic information to the coupling and to Eq. 15's [x, h_hat, f]
              than a closed-form regression would).
        """
        self._check_fitted()
        c = self.config
        if c.alpha1 <= 0 and c.alpha2 <= 0:
            return {}
        # sorted: "another class" below is the next one in sorted order (searchsorted)
        classes = torch.as_tensor(classes, dtype=torch.long).cpu().sort().values
        labels = torch.as_tensor(labels, dtype=torch.long).cpu()
        x = real.detach().cpu().float()
        sem = train.semantics.detach().cpu().float()
        inf = self.nets_["inference"]
        protos = sem[classes]
        h_hat = self._batched(inf, x)
        out = {"hhat_zsl_acc": 100.0 * nearest_semantic_accuracy(h_hat, labels, protos, classes)}
        ridge = RidgeMap.fit(train.features, train.labels, sem)
        h_ridge = ridge.predict(x)
        out["ridge_zsl_acc"] = 100.0 * nearest_semantic_accuracy(h_ridge, labels, protos, classes)
        out["ridge_penalty"] = ridge.penalty
        if c.alpha1 > 0:
            D2 = self.nets_["critic_inf"]
            h = sem[labels]
            d_real = self._batched(D2, h, x)
            d_fake = self._batched(lambda hb, xb: D2(inf(xb), xb), x, x)
            out["d2_estimate"] = float(d_real.mean() - d_fake.mean())
            if len(classes) >= 2:
                pos = torch.searchsorted(classes, labels)
                other = sem[classes[(pos + 1) % len(classes)]]
                out["d2_true_vs_other"] = float(d_real.mean() - self._batched(D2, other, x).mean())
        out["inference_warning"] = float(out["hhat_zsl_acc"] < out["ridge_zsl_acc"])
        return out

    # ------------------------------------------------------------------ recognition
    def recognition_layout(self) -> dict[str, tuple[int, int]]:
        """Column ranges ``[start, stop)`` of x, h_hat and f in :meth:`transform_features`.

        Empty for h_hat and f when ``coupled_features`` is off (recognition on x alone).
        """
        self._check_fitted()
        d, da = self.dims_["feature_dim"], self.dims_["semantic_dim"]
        if not self.config.coupled_features:
            return {"x": (0, d), "h_hat": (d, d), "f": (d, d)}
        nf = self.nets_["inference"].feature_size
        return {"x": (0, d), "h_hat": (d, d + da), "f": (d + da, d + da + nf)}

    def transform_features(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Eq. 15's classifier input ``<x, h_hat, f>`` with ``(h_hat, f) = I(x)`` (Sec. 3.4).

        Applied alike to real seen, synthetic unseen and test features by the runner. The
        layout is ``[x | h_hat | f]`` (see :meth:`recognition_layout`); with
        ``coupled_features`` off, x is returned unchanged (ablations S1, S2). The output stays
        on x's device.
        """
        self._check_fitted()
        if not self.config.coupled_features:
            return x
        inf = self.nets_["inference"]
        was_training = inf.training
        inf.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                xb = x[i : i + batch_size].to(self.device, torch.float32)
                h_hat, f = inf.with_features(xb)
                out.append(torch.cat([xb, h_hat, f], dim=1).to(x.device))
        inf.train(was_training)
        if not out:
            return x.new_zeros(0, self.recognition_layout()["f"][1])
        return torch.cat(out)
