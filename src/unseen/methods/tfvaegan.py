r"""tf-VAEGAN: f-VAEGAN with a semantic embedding decoder and a feedback module.

Reference:
    Narayan, Gupta, Khan, Snoek, Shao, "Latent Embedding Feedback and Discriminative Features
    for Zero-Shot Classification", ECCV 2020 (Sec. 3). The paper is not in
    ``../shared/papers``: its losses below are cited by name from its Sec. 3.1-3.3 as the
    authors' README and code describe them, equation numbers unverified. Facts of the
    implementation (sizes, weights, optimisers, the two-pass epoch) are read from the
    official code (github.com/akshitac8/tfvaegan: ``train_images.py``,
    ``networks/TFVAEGAN_model.py``, ``classifiers/classifier_images.py``,
    ``scripts/run_{flo,cub}_tfvaegan.py``). No code is copied.

On top of f-VAEGAN (:mod:`unseen.methods.fvaegan`: L_VAE + gamma L_WGAN):

* **Semantic embedding decoder** Dec: x -> a_hat (``x -> hidden -> a``, LeakyReLU 0.2, the
  output L2-normalised as the official ``AttDec``), trained with the cycle-consistency loss
  L_R = E[||Dec(x) - a||_1] on real features (each critic step, official) and on the
  synthetic batch of the generator step, where it also trains G:
  min_{G,E} L_VAE + gamma L_WGAN + beta L_R(Dec(x~), a). ``decoder_loss: l1`` is the paper's
  L1; ``weighted_l1`` the official code's ``WeightedL1`` (each row's absolute errors weighted
  by their squared error over the row's L2 error norm).
* **Feedback module** F (two ``hidden -> hidden`` layers, LeakyReLU 0.2): G's hidden layer
  g becomes g + delta F(h), with h = Dec's hidden layer on the first-pass synthetic feature
  G(z, a) (detached, official), so x~ = G_out(g + delta F(h)). Training alternates, as the
  official ``feedback_loop = 2``: each epoch is one pass over the data without feedback and
  one with it (delta = ``a1``; F is updated only in the second pass); synthesis uses the
  feedback with delta = ``a2``.
* **Discriminative feature transformation**: the final classifier sees [x, Dec(x), h(x)]
  (official ``compute_dec_out``), for real seen, synthetic unseen and test features alike
  (:meth:`TFVAEGAN.transform_features`); ``classifier_input: x`` keeps the raw features.

Only the inductive model: the paper's transductive variant is not implemented
(``transductive: true`` is refused).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.methods.base import make_adam, register
from unseen.methods.fvaegan import FVAEGAN, FVAEGANConfig
from unseen.methods.precision import full_precision
from unseen.models.mlp import MLP, init_normal

__all__ = ["CLASSIFIER_INPUTS", "DECODER_LOSSES", "TFVAEGAN", "TFVAEGANConfig", "cycle_loss"]

DECODER_LOSSES = ("l1", "weighted_l1")
CLASSIFIER_INPUTS = ("x+dec", "x")


def _cycle_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    r"""L_R for one batch: summed over semantic dimensions, averaged over the batch.

    ``l1``: :math:`\sum_j |p_j - t_j|` (paper). ``weighted_l1``: :math:`\sum_j w_j |p_j -
    t_j|` with :math:`w_j = (p_j - t_j)^2 / \|p - t\|_2` (official ``WeightedL1``; the
    weights are not detached there and are not here).
    """
    diff = pred - target
    if kind == "l1":
        return diff.abs().sum(-1).mean(-1)  # per seed when seeds are stacked
    if kind == "weighted_l1":
        weight = diff.pow(2) / diff.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (weight * diff.abs()).sum(-1).mean(-1)
    raise ConfigError(f"tfvaegan: decoder_loss must be one of {DECODER_LOSSES}, got {kind!r}")


#: L_R in fp32 under bf16/fp16 autocast (the row norms)
cycle_loss = full_precision(_cycle_loss)


class SemanticDecoder(nn.Module):
    """Dec(x) -> (a_hat, h): ``x -> hidden (LeakyReLU 0.2) -> a``, a_hat L2-normalised
    (official ``AttDec`` without its optional sigmoid)."""

    def __init__(self, feature_dim: int, semantic_dim: int, hidden: int):
        super().__init__()
        self.hidden = nn.Linear(feature_dim, hidden)
        self.out = nn.Linear(hidden, semantic_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.leaky_relu(self.hidden(x), 0.2)
        return F.normalize(self.out(h), dim=-1, eps=1e-12), h


@dataclass
class TFVAEGANConfig(FVAEGANConfig):
    """tf-VAEGAN hyper-parameters: f-VAEGAN's (:class:`FVAEGANConfig`) and these.

    Sources: "paper" = Narayan et al. (ECCV 2020); "official" = its public code
    (``config_images.py`` and the FLO / CUB scripts); "ours" = neither gives one.

    Attributes:
        recons_weight: beta, the weight of L_R in the generator's objective and of the
            decoder's own loss on real features (official: 0.01 in the FLO and CUB scripts;
            ``config_images.py`` default 1). 0 turns the decoder off (and with it the
            feedback and the feature transformation): f-VAEGAN.
        decoder_loss: ``l1`` (paper) or ``weighted_l1`` (official ``WeightedL1``). Default
            the paper's; the official weights were tuned with ``weighted_l1``.
        dec_lr: Adam lr of Dec (official: 1e-4; beta1 as G's).
        feedback: train and sample with the feedback module (paper, official). Off: each
            epoch is one pass without F (the paper's "w/o feedback" ablation).
        a1: delta of the feedback during training (official: 0.5 on FLO, 1 on CUB).
        a2: delta of the feedback during synthesis (official: as a1 in both scripts).
        feed_lr: Adam lr of F (official: 1e-5 in both scripts; beta1 as G's).
        classifier_input: ``x+dec``: the classifier sees [x, Dec(x), h(x)] (paper's feature
            transformation, official); ``x``: the raw features.
    """

    recons_weight: float = 0.01
    decoder_loss: str = "l1"
    dec_lr: float = 1e-4
    feedback: bool = True
    a1: float = 1.0
    a2: float = 1.0
    feed_lr: float = 1e-5
    classifier_input: str = "x+dec"


@register
class TFVAEGAN(FVAEGAN):
    """tf-VAEGAN (inductive), Narayan et al. ECCV 2020."""

    name = "tfvaegan"
    config_class = TFVAEGANConfig
    paper = (
        "Narayan et al., Latent Embedding Feedback and Discriminative Features for Zero-Shot "
        "Classification (tf-VAEGAN), ECCV'20"
    )
    config: TFVAEGANConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._delta = 0.0  # the feedback weight of the current pass (0: no feedback)

    @property
    def _decoder_on(self) -> bool:
        return self.config.recons_weight > 0

    def _check_options(self) -> None:
        super()._check_options()
        c = self.config
        if c.transductive:
            raise ConfigError(
                "tfvaegan: transductive is not implemented (the official image code is "
                "inductive); use method fvaegan for f-VAEGAN-D2"
            )
        if c.decoder_loss not in DECODER_LOSSES:
            raise ConfigError(
                f"tfvaegan: decoder_loss must be one of {DECODER_LOSSES}, got {c.decoder_loss!r}"
            )
        if c.classifier_input not in CLASSIFIER_INPUTS:
            raise ConfigError(
                f"tfvaegan: classifier_input must be one of {CLASSIFIER_INPUTS}, "
                f"got {c.classifier_input!r}"
            )
        for key in ("recons_weight", "dec_lr", "feed_lr", "a1", "a2"):
            if not getattr(c, key) >= 0:
                raise ConfigError(f"tfvaegan: {key} must be >= 0, got {getattr(c, key)}")

    def _build(self, dims: dict[str, int]) -> None:
        super()._build(dims)
        if not self._decoder_on:
            return
        c = self.config
        extra = {"decoder": SemanticDecoder(dims["feature_dim"], dims["semantic_dim"], c.hidden_g)}
        if c.feedback:
            # F maps Dec's hidden layer onto G's hidden layer: both are hidden_g wide (ngh)
            extra["feedback"] = MLP(c.hidden_g, (c.hidden_g,), c.hidden_g)
        for key, net in extra.items():
            init_normal(net)
            self.nets_[key] = net
        self.optimizers_ = self._make_optimizers()

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        opts = super()._make_optimizers()
        betas = (c.beta1, 0.999)
        for key, lr in (("decoder", c.dec_lr), ("feedback", c.feed_lr)):
            if key in self.nets_:
                opts[key] = make_adam(self.nets_[key].parameters(), lr, betas=betas)
        return opts

    def _generate(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``G(z, a)``, and with feedback on (delta > 0) the second pass: G's hidden layer
        plus delta F(h), h = Dec's hidden layer on the first pass's output (detached)."""
        G = self.nets_["generator"]
        if self._delta == 0.0 or "feedback" not in self.nets_:
            return G(z, a)
        net = G.net  # Linear, LeakyReLU, Linear, Sigmoid (one hidden layer, official)
        hidden = net[1](net[0](torch.cat([z, a], dim=-1)))
        first = net[3](net[2](hidden)) if len(net) > 3 else net[2](hidden)
        h = self.nets_["decoder"](first)[1].detach()
        # the second layer of F ends with LeakyReLU in the official module
        fb = F.leaky_relu(self.nets_["feedback"](h), 0.2)
        out = net[2](hidden + self._delta * fb)
        out = net[3](out) if len(net) > 3 else out
        return out.to(net[0].weight.dtype)  # fp32 under autocast, as MLP.forward

    def _real_batch_hook(self, x: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        """Dec's own update on a real batch: beta L_R(Dec(x), a) (official: once per critic
        step, before the critic's)."""
        if not self._decoder_on:
            return {}
        c = self.config
        loss = c.recons_weight * cycle_loss(self.nets_["decoder"](x)[0], a, c.decoder_loss)
        self.optimize(loss, self.optimizers_["decoder"])
        return {"decoder_real": loss.detach()}

    def _generator_extra(self, fake: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        """beta L_R(Dec(x~), a): trains G (and Dec, official ``freeze_dec`` off)."""
        if not self._decoder_on:
            return {}
        c = self.config
        return {
            "cycle": c.recons_weight * cycle_loss(self.nets_["decoder"](fake)[0], a, c.decoder_loss)
        }

    def _generator_optimizers(self) -> list[torch.optim.Optimizer]:
        opts = super()._generator_optimizers()
        if self._decoder_on:
            opts.append(self.optimizers_["decoder"])
        if self._delta > 0 and "feedback" in self.optimizers_:
            opts.append(self.optimizers_["feedback"])  # F learns in the feedback pass only
        return opts

    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        """One epoch = a pass without feedback, then (``feedback: true``) a pass with it at
        delta = ``a1`` (official ``feedback_loop = 2``); the log averages the two."""
        c = self.config
        deltas = [0.0, c.a1] if self._decoder_on and c.feedback else [0.0]
        logs: dict[str, float] = {}
        try:
            for delta in deltas:
                self._delta = delta
                for key, value in super()._train_epoch(data, epoch).items():
                    logs[key] = logs.get(key, 0.0) + value / len(deltas)
        finally:
            self._delta = 0.0
        return logs

    @torch.no_grad()
    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        """Synthetic features with the feedback at delta = ``a2`` (official synthesis)."""
        self._delta = self.config.a2 if self._decoder_on and self.config.feedback else 0.0
        try:
            return super().sample(class_semantics, n_per_class)
        finally:
            self._delta = 0.0

    @torch.no_grad()
    def transform_features(self, x: torch.Tensor) -> torch.Tensor:
        """[x, Dec(x), h(x)] (the paper's discriminative feature transformation; official
        ``compute_dec_out``), or ``x`` with ``classifier_input: x`` or without a decoder."""
        self._check_fitted()
        if self.config.classifier_input == "x" or not self._decoder_on:
            return x
        dec = self.nets_["decoder"]
        out = []
        for chunk in torch.split(x, 4096):  # bounded memory on large test sets
            a_hat, h = dec(chunk.to(self.device))
            out.append(torch.cat([chunk.to(self.device), a_hat, h], dim=1).to(x.device))
        return torch.cat(out)
