r"""CE-GZSL: a WGAN-GP feature generator trained jointly with a contrastive embedding.

Reference:
    Han, Fu, Chen, Yang, "Contrastive Embedding for Generalized Zero-Shot Learning", CVPR 2021
    (arXiv:2103.16173). Facts of the implementation (layer sizes, loss weights, temperatures,
    optimiser, which features the final classifier sees) are read from the authors' code,
    github.com/Hanzy1996/CE-GZSL (``CE_GZSL.py``, ``model.py``, ``losses.py``,
    ``classifier_embed_contras.py``, ``util.py``). No code is copied. We could not read the
    paper's text: its losses are cited by name, and their equation numbers are unverified.

The hybrid framework (the paper's Fig. 2; names as there):

* feature generation: a conditional generator G(eps, a) -> x~ and a conditional critic
  D(x, a), trained as a WGAN-GP (f-CLSWGAN's: :class:`unseen.models.mlp.ConditionalGenerator`,
  :class:`unseen.models.mlp.ConditionalCritic`, :func:`unseen.methods.clswgan.gradient_penalty`);
* the embedding function E: x -> h (one linear layer and a ReLU), the space in which the final
  GZSL classifier works (the abstract: real and synthetic samples are mapped into the
  embedding space, "where we perform the final GZSL classification"; official: the classifier
  of ``classifier_embed_contras.py`` is trained on h alone);
* the projection H: h -> z (one linear layer, then z / ||z||), for the instance-level loss;
* the comparator F([h, a]) -> relevance score (one hidden layer, LeakyReLU 0.2), for the
  class-level loss.

Losses (tau_ins, tau_cls the two temperatures; B the batch):

* instance-level contrastive loss (supervised contrastive, with the anchor's own class as
  positives): for an anchor i with positives P(i) = {p != i : y_p = y_i},
  ``l_i = -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / tau_ins) / sum_{k != i}
  exp(z_i.z_k / tau_ins) )``, averaged over the anchors that have a positive
  (:func:`instance_contrastive_loss`; official ``SupConLoss_clear``);
* class-level contrastive loss: a softmax over the seen classes of the relevance scores,
  ``l_i = -log( exp(F(h_i, a_{y_i}) / tau_cls) / sum_{c in seen} exp(F(h_i, a_c) / tau_cls) )``
  (:func:`class_contrastive_loss`; official ``class_scores_for_loop``);
* the critic side (one Adam step per critic iteration, D, E, H and F together, official):
  ``L_D = E[D(x~, a)] - E[D(x, a)] + lambda GP + L_ins(z real) + L_cls(h real)``;
* the generator side (G only; D, E, H, F frozen):
  ``L_G = -E[D(x~, a)] + ins_weight * L_ins([z~; z real]) + cls_weight * L_cls(h~)``, where
  the instance-level term contrasts the synthetic batch against the (detached) real one with
  the same labels, so every synthetic anchor has its real counterparts as positives.

``transform_features(x)`` returns h = E(x) (``classifier_features: h``, paper and official) or
``[h, x]`` (``hx``, ours). ``sample`` returns raw-space features G(eps, a); the runner applies
``transform_features`` to real seen, synthetic unseen and test features alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.methods.base import GenerativeMethod, MethodConfig, make_adam, register
from unseen.methods.clswgan import _seen_positions, gradient_penalty
from unseen.methods.precision import full_precision
from unseen.models.mlp import MLP, ConditionalCritic, ConditionalGenerator, init_normal
from unseen.models.pairwise import pair_mlp_scores

__all__ = [
    "CEGZSL",
    "CLASSIFIER_FEATURES",
    "CEGZSLConfig",
    "Comparator",
    "class_contrastive_loss",
    "instance_contrastive_loss",
]

#: what ``transform_features`` returns: the embedding h (paper, official) or [h, x] (ours)
CLASSIFIER_FEATURES = ("h", "hx")


def _instance_contrastive_loss(
    z: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The instance-level (supervised) contrastive loss over the rows of ``z``.

    Args:
        z: ``(n, k)`` projections; each row is scaled to unit length here, so the
            similarities are cosines (the official projection ends in the same scaling).
        labels: ``(n,)`` class labels; rows with the same label are each other's positives.
        temperature: tau_ins > 0.

    Returns:
        The mean over anchors that have at least one positive of ``-1/|P(i)| sum_p log
        softmax_{k != i}(z_i.z_k / tau)_p``; 0 when no anchor has a positive (the official
        ``SupConLoss_clear`` leaves such anchors out the same way, and divides by zero when
        none is left).
    """
    if z.dim() == 3:  # seeds trained as one stacked model: one loss per seed
        return _stacked_instance_loss(z, labels, temperature)
    n = len(z)
    if n < 2:
        return z.new_zeros(())
    z = F.normalize(z, dim=1)
    self_pair = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_pair, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_pair
    n_pos = positive.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.new_zeros(())
    pos_sum = log_prob.masked_fill(~positive, 0.0).sum(1)
    return -(pos_sum[has] / n_pos[has]).mean()


def _stacked_instance_loss(
    z: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """:func:`_instance_contrastive_loss` of each seed's ``(n, k)`` slice of ``(K, n, k)``
    projections, ``(K,)``: the anchors without a positive are masked out per seed instead of
    dropped (each seed's batch holds its own labels)."""
    n = z.shape[1]
    if n < 2:
        return z.new_zeros(z.shape[0])
    z = F.normalize(z, dim=-1)
    self_pair = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.transpose(1, 2) / temperature).masked_fill(self_pair, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    positive = (labels[:, :, None] == labels[:, None, :]) & ~self_pair
    n_pos = positive.sum(-1)
    has = n_pos > 0
    per_anchor = log_prob.masked_fill(~positive, 0.0).sum(-1) / n_pos.clamp_min(1)
    # 0 for a seed whose batch has no anchor with a positive (as the one-seed form)
    return -(per_anchor * has).sum(-1) / has.sum(-1).clamp_min(1)


def _class_contrastive_loss(
    scores: torch.Tensor, target: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The class-level contrastive loss: cross-entropy of ``softmax(scores / tau_cls)``.

    Args:
        scores: ``(n, K)`` relevance scores F(h_i, a_c) of each sample against each seen class.
        target: ``(n,)`` the true class of each row, as a column of ``scores``.
        temperature: tau_cls > 0.
    """
    if scores.dim() == 3:  # one loss per stacked seed
        flat = F.cross_entropy(
            scores.reshape(-1, scores.shape[-1]) / temperature, target.reshape(-1), reduction="none"
        )
        return flat.reshape(target.shape).mean(-1)
    return F.cross_entropy(scores / temperature, target)


#: the two contrastive losses in fp32 under bf16/fp16 autocast (log-sum-exps of scaled cosines
#: and scores; see unseen.methods.precision)
instance_contrastive_loss = full_precision(_instance_contrastive_loss)
class_contrastive_loss = full_precision(_class_contrastive_loss)


class Comparator(nn.Module):
    """F([h, a]) -> one relevance score: ``[h, a] -> hidden -> 1`` with LeakyReLU 0.2 (the
    official comparator's shape).

    The first layer of F on a concatenation ``[h, a]`` is ``W_h h + W_a a + b``; it is kept as
    its two halves (``from_h`` with the bias, ``from_a`` without): the same function, with the
    official N(0, 0.02^2) weights and zero biases (set here). :meth:`forward` can then score
    every embedding against every class at once: the ``n`` embedding halves and the ``K``
    class halves are computed once each and added pairwise, instead of running the MLP on
    ``n * K`` concatenated pairs.
    """

    def __init__(self, embed_dim: int, semantic_dim: int, hidden: int, slope: float = 0.2):
        super().__init__()
        self.from_h = nn.Linear(embed_dim, hidden)
        self.from_a = nn.Linear(semantic_dim, hidden, bias=False)
        self.out = nn.Linear(hidden, 1)
        self.slope = slope
        init_normal(self.from_h)
        init_normal(self.out)
        nn.init.normal_(self.from_a.weight, 0.0, 0.02)

    def forward(self, h: torch.Tensor, class_semantics: torch.Tensor) -> torch.Tensor:
        """``(n, K)`` scores F([h_i, a_c]) for ``(n, e)`` embeddings and ``(K, d_a)`` classes
        (``(S, n, K)`` for the ``(S, n, e)`` embeddings of S stacked seeds).

        The hidden layer of every pair is never materialised: :func:`pair_mlp_scores` reduces
        it in one fused kernel with closed-form gradients (25x faster at the FLO shape than
        autograd through the broadcast, and without its 1.4 GB temporaries)."""
        if h.dim() == 3:  # stacked seeds: every seed's F on its own embeddings
            seeds = h.shape[0]
            v = self.from_a(class_semantics.expand(seeds, -1, -1))
            w, b = self.out.weight_t[..., 0], self.out.bias[:, :, None]  # (S, hidden), (S, 1, 1)
        else:
            v = self.from_a(class_semantics)
            w, b = self.out.weight[0], self.out.bias
        return pair_mlp_scores(self.from_h(h), v, w, self.slope) + b

    def pair_scores(self, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``(n,)`` scores of row-aligned pairs ``(h_i, a_i)``: F on ``[h_i, a_i]``."""
        return self.out(F.leaky_relu(self.from_h(h) + self.from_a(a), self.slope)).squeeze(1)


@dataclass
class CEGZSLConfig(MethodConfig):
    """CE-GZSL hyper-parameters, each default with its source.

    Sources: "paper" = Han et al. (CVPR 2021); "official" = the authors' code
    (github.com/Hanzy1996/CE-GZSL, ``CE_GZSL.py`` argument defaults and its README command,
    ``model.py``); "ours" = neither gives one.

    Attributes:
        epochs: generator epochs; one epoch = ceil(N / batch_size) generator steps (official:
            the same loop, 2000 epochs by default; the configs use that maximum).
        batch_size: minibatch (official: 2048), drawn without replacement, as the official
            ``next_batch`` (a batch larger than the training set is the whole set).
        noise_dim: size of the generator's noise; ``0`` = the semantic dimension (official
            README command: ``nz = attSize = 1024``).
        hidden_g, hidden_d: hidden width of G and D, one hidden layer each (official ngh and
            ndh: 4096, LeakyReLU 0.2; G ends in a ReLU).
        embed_dim: size of the embedding h (official embedSize: 2048).
        proj_dim: size of the projection z (official outzSize: 512).
        hidden_f: hidden width of the comparator F (official nhF: 2048).
        critic_steps: critic (and embedding) updates per generator step (official: 5).
        gp_weight: lambda of the gradient penalty (official lambda1: 10).
        ins_weight: weight of the instance-level loss on synthetic features in G's loss
            (official: 0.001).
        cls_weight: weight of the class-level loss on synthetic features in G's loss
            (official: 0.001).
        ins_temp: tau of the instance-level loss (official: 0.1).
        cls_temp: tau of the class-level loss (official: 0.1).
        lr, beta1: Adam settings of G, D, E, H, F (official: 1e-4, 0.5; beta2 0.999).
        lr_decay, lr_decay_every: every ``lr_decay_every`` epochs all learning rates are
            multiplied by ``lr_decay`` (official: 0.99 every 100 epochs).
        classifier_features: what :meth:`CEGZSL.transform_features` returns: ``h`` (paper
            and official: the final classifier works in the embedding space) or ``hx``
            (``[h, x]``, ours, an option for ablations).
    """

    epochs: int = 30
    batch_size: int = 2048
    noise_dim: int = 0
    hidden_g: int = 4096
    hidden_d: int = 4096
    embed_dim: int = 2048
    proj_dim: int = 512
    hidden_f: int = 2048
    critic_steps: int = 5
    gp_weight: float = 10.0
    ins_weight: float = 0.001
    cls_weight: float = 0.001
    ins_temp: float = 0.1
    cls_temp: float = 0.1
    lr: float = 1e-4
    beta1: float = 0.5
    lr_decay: float = 0.99
    lr_decay_every: int = 100
    classifier_features: str = "h"


@register
class CEGZSL(GenerativeMethod):
    """CE-GZSL (Han et al., CVPR 2021): WGAN-GP generation + contrastive embedding."""

    name = "cegzsl"
    config_class = CEGZSLConfig
    paper = "Han et al., Contrastive Embedding for Generalized Zero-Shot Learning, CVPR 2021"
    config: CEGZSLConfig
    supports_seed_batch = True  # draws and reductions through the seed-axis helpers

    #: networks updated by the critic-side step (official: one Adam over D, E, H and F)
    CRITIC_SIDE = ("critic", "embedding", "projection", "comparator")

    def _check_options(self) -> None:
        c = self.config
        for key in ("ins_temp", "cls_temp"):
            value = getattr(c, key)
            if not value > 0:
                raise ConfigError(f"cegzsl: {key} must be a temperature > 0, got {value!r}")
        for key in ("embed_dim", "proj_dim"):
            value = getattr(c, key)
            if value < 1:
                raise ConfigError(f"cegzsl: {key} must be an integer >= 1, got {value!r}")
        if not 0.0 < c.lr_decay <= 1.0:
            raise ConfigError(f"cegzsl: lr_decay must lie in (0, 1], got {c.lr_decay!r}")
        if c.classifier_features not in CLASSIFIER_FEATURES:
            raise ConfigError(
                f"cegzsl: classifier_features must be one of {CLASSIFIER_FEATURES}, "
                f"got {c.classifier_features!r}"
            )

    def _build(self, dims: dict[str, int]) -> None:
        self._check_options()
        c = self.config
        d, da = dims["feature_dim"], dims["semantic_dim"]
        nz = c.noise_dim or da
        self.nets_ = nn.ModuleDict(
            {
                "generator": ConditionalGenerator(nz, da, d, (c.hidden_g,)),
                "critic": ConditionalCritic(d, da, (c.hidden_d,)),
                "embedding": MLP(d, (), c.embed_dim, out_activation="relu"),
                "projection": MLP(c.embed_dim, (), c.proj_dim),
                "comparator": Comparator(c.embed_dim, da, c.hidden_f),
            }
        )
        for k in ("generator", "critic", "embedding", "projection"):
            init_normal(self.nets_[k])  # N(0, 0.02^2) weights, zero biases (official)
        self.optimizers_ = self._make_optimizers()

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        betas = (c.beta1, 0.999)
        return {k: make_adam(net.parameters(), c.lr, betas=betas) for k, net in self.nets_.items()}

    # ------------------------------------------------------------------ losses
    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h, z)``: the embedding E(x) and its projection H(h) (scaled to unit length by
        the instance-level loss)."""
        h = self.nets_["embedding"](x)
        return h, self.nets_["projection"](h)

    def _draw_batch(self, data: SeenTrainData) -> tuple[torch.Tensor, ...]:
        """``(x, y, a)``: up to ``batch_size`` distinct training samples, their labels as
        positions in ``data.seen_classes`` and their class semantics (official
        ``next_batch``)."""
        idx = self.randperm(len(data.labels))[..., : self.config.batch_size]
        return data.features[idx], _seen_positions(data)[idx], data.semantics[data.labels[idx]]

    def _critic_losses(
        self, x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, seen_sem: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The critic side of one iteration on the real batch ``(x, y, a)``.

        ``wgan`` = E[D(x~, a)] - E[D(x, a)] + lambda GP trains D; ``ins_real`` and ``cls_real``
        (the contrastive losses of the real batch) train E, H and F. The synthetic features
        are drawn without gradients: nothing here reaches G. ``total`` is their sum
        (official weights 1, 1, 1).
        """
        c = self.config
        G, D = self.nets_["generator"], self.nets_["critic"]
        n = x.shape[-2]
        with torch.no_grad():
            fake = G(self.randn(n, G.noise_dim), a)
        scores = D(torch.cat([fake, x], dim=-2), torch.cat([a, a], dim=-2))
        d_fake, d_real = self.seed_mean(scores[..., :n]), self.seed_mean(scores[..., n:])
        gp = gradient_penalty(
            lambda v: D(v, a),
            x,
            fake,
            c.gp_weight,
            input_gradient=lambda v: D.input_gradient(v, a),
            alpha=self.rand(n, 1),
        )
        h, z = self._embed(x)
        parts = {
            "wgan": d_fake - d_real + gp,
            "ins_real": instance_contrastive_loss(z, y, c.ins_temp),
            "cls_real": class_contrastive_loss(
                self.nets_["comparator"](h, seen_sem), y, c.cls_temp
            ),
        }
        parts["total"] = parts["wgan"] + parts["ins_real"] + parts["cls_real"]
        parts["wasserstein"] = (d_real - d_fake).detach()
        return parts

    def _generator_losses(
        self, x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, seen_sem: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The generator side on the batch ``(x, y, a)``: x~ = G(eps, a) and
        ``total = -E[D(x~, a)] + ins_weight L_ins([z~; z]) + cls_weight L_cls(h~)``, with the
        real projections z detached (official). Call with D, E, H, F frozen."""
        c = self.config
        G = self.nets_["generator"]
        fake = G(self.randn(x.shape[-2], G.noise_dim), a)
        h_fake, z_fake = self._embed(fake)
        z_real = self._embed(x)[1].detach()
        parts = {
            "adv": -self.seed_mean(self.nets_["critic"](fake, a)),
            "ins_fake": instance_contrastive_loss(
                torch.cat([z_fake, z_real], dim=-2), torch.cat([y, y], dim=-1), c.ins_temp
            ),
            "cls_fake": class_contrastive_loss(
                self.nets_["comparator"](h_fake, seen_sem), y, c.cls_temp
            ),
        }
        parts["total"] = (
            parts["adv"] + c.ins_weight * parts["ins_fake"] + c.cls_weight * parts["cls_fake"]
        )
        return parts

    def _set_critic_side_trainable(self, flag: bool) -> None:
        for k in self.CRITIC_SIDE:
            self.nets_[k].requires_grad_(flag)

    def _critic_update(self, *batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """One joint Adam step of D, E, H and F on :meth:`_critic_losses`."""
        parts = self._critic_losses(*batch)
        self.optimize(parts["total"], *(self.optimizers_[k] for k in self.CRITIC_SIDE))
        return parts

    def _generator_update(self, *batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """One Adam step of G on :meth:`_generator_losses`, D, E, H and F frozen."""
        self._set_critic_side_trainable(False)
        parts = self._generator_losses(*batch)
        self.optimize(parts["total"], self.optimizers_["generator"])
        self._set_critic_side_trainable(True)
        return parts

    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        c = self.config
        seen_sem = data.semantics[data.seen_classes]
        steps = max(1, -(-len(data.labels) // c.batch_size))
        # summed as tensors (no device sync per step); one value per seed when stacked
        sums: dict[str, torch.Tensor] = {}
        for _ in range(steps):
            for _ in range(c.critic_steps):
                batch = self._draw_batch(data)
                critic = self._critic_update(*batch, seen_sem)
            # the generator step reuses the last critic batch (official)
            gen = self._generator_update(*batch, seen_sem)
            logged = {
                "critic": critic["total"],
                "generator": gen["total"],
                **{k: critic[k] for k in ("wasserstein", "ins_real", "cls_real")},
                **{k: gen[k] for k in ("adv", "ins_fake", "cls_fake")},
            }
            for k, v in logged.items():
                sums[k] = sums.get(k, 0.0) + v.detach()
        if (epoch + 1) % c.lr_decay_every == 0 and c.lr_decay != 1.0:
            for opt in self.optimizers_.values():
                for group in opt.param_groups:
                    group["lr"] *= c.lr_decay
        return {k: v / steps for k, v in sums.items()}

    # ------------------------------------------------------------------ outputs
    @torch.no_grad()
    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        """``G(eps, a)`` with ``eps ~ N(0, I)``, ``n_per_class`` per row, in the raw feature
        space (the runner maps them through :meth:`transform_features`)."""
        self._check_fitted()
        G = self.nets_["generator"]
        a = class_semantics.to(self.device).repeat_interleave(n_per_class, dim=0)
        return G(torch.randn(len(a), G.noise_dim, device=self.device), a)

    def transform_features(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """The final classifier's input: h = E(x) (``classifier_features: h``) or ``[h, x]``
        (``hx``), in fp32 on ``x``'s device, computed ``batch_size`` rows at a time."""
        self._check_fitted()
        E = self.nets_["embedding"]
        with_x = self.config.classifier_features == "hx"
        width = self.config.embed_dim + (x.shape[1] if with_x else 0)
        out = [x.new_zeros(0, width, dtype=torch.float32)]
        with torch.no_grad():
            for xb in x.split(batch_size):
                xb = xb.to(self.device, torch.float32)
                h = E(xb)
                out.append((torch.cat([h, xb], dim=1) if with_x else h).to(x.device))
        return torch.cat(out)
