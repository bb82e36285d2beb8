r"""Seen-only softmax: a classifier that never sees an unseen class (a reference row).

The floor every generative method must clear: a linear softmax :math:`p(y \mid x) =
\mathrm{softmax}(W x + b)_y` over the SEEN classes only, trained on the real seen training
features only (cross-entropy, Adam with beta1 0.5, lr 1e-3, batch 64: the final classifier of
f-CLSWGAN's code, the runner's default softmax), no synthetic feature anywhere.

A seen-class softmax has no column for an unseen class, so it needs a rule to score one. The
rule here is ConSE (Norouzi et al., "Zero-shot learning by convex combination of semantic
embeddings", ICLR 2014, Sec. 3): the image's semantic embedding is the probability-weighted
mean of the semantic vectors of its top-T seen classes,

.. math:: f(x) = \frac{1}{Z} \sum_{t=1}^{T} p(\hat y_t \mid x)\, s(\hat y_t), \qquad
          Z = \sum_{t=1}^{T} p(\hat y_t \mid x),

and an unseen class :math:`u` is scored :math:`\cos(f(x), s_u)` (T = 10, the paper's best).
A seen class is scored by its softmax probability. The two scores live on different scales
and uncalibrated GZSL mixes them as they come; calibrated stacking (Chao et al., ECCV 2016:
subtract gamma from every seen score, gamma chosen on the validation problem) is what puts
seen and unseen classes in one decision, exactly the job it was designed for. CZSL T1 is
ConSE among the unseen classes.

How it fits the protocol: ``fit`` trains the softmax for ``epochs`` (the runner chooses the
number on validation, as for a generator's epochs); the classifier is the method's own
(``classifier.kind: method``, :meth:`SeenSoftmax.own_classifier`); any other classifier kind
is refused (:meth:`SeenSoftmax.transform_features` raises), since it would train on
synthetic features. :meth:`SeenSoftmax.sample` exists only for the method contract (the runner
synthesizes before it classifies; the validation health report and the registry suite call
it): for a class it returns the seen class means of its T semantically nearest seen classes,
averaged with weights proportional to their positive cosine similarity, plus Gaussian noise
at the seen within-class spread. Those points never reach the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unseen.classifiers.base import BaseClassifier, check_classes
from unseen.config import ClassifierConfig
from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.methods.base import GenerativeMethod, MethodConfig, minibatch_epoch, register
from unseen.methods.eszsl import seeded_noise, within_class_spread

__all__ = ["ConSEScorer", "SeenSoftmax", "SeenSoftmaxConfig"]


@dataclass
class SeenSoftmaxConfig(MethodConfig):
    """Seen-only softmax hyper-parameters: ConSE's T, and the softmax's, whose defaults are
    the runner's default final softmax (:class:`~unseen.config.ClassifierConfig`).

    Attributes:
        epochs: most epochs; the runner picks the count on validation (multiples of
            ``selection.eval_every`` and the last).
        lr: Adam learning rate.
        beta1: Adam's first-moment decay (0.5, f-CLSWGAN's classifier).
        weight_decay: L2 penalty.
        top: ConSE's T, the seen classes whose semantic vectors are mixed.
    """

    epochs: int = ClassifierConfig.epochs
    batch_size: int = ClassifierConfig.batch_size
    lr: float = ClassifierConfig.lr
    beta1: float = ClassifierConfig.beta1
    weight_decay: float = ClassifierConfig.weight_decay
    top: int = 10


class _SeenLinear(nn.Module):
    """The seen-class softmax's logits, and what scoring and sampling need of the seen data
    (set before the first epoch, saved with the weights)."""

    def __init__(self, feature_dim: int, semantic_dim: int, n_seen: int) -> None:
        super().__init__()
        self.linear = nn.Linear(feature_dim, n_seen)
        nn.init.normal_(self.linear.weight, 0.0, 0.02)  # f-CLSWGAN's classifier init
        nn.init.zeros_(self.linear.bias)
        self.register_buffer("seen", torch.zeros(n_seen, dtype=torch.long))
        self.register_buffer("seen_semantics", torch.zeros(n_seen, semantic_dim))
        self.register_buffer("class_means", torch.zeros(n_seen, feature_dim))
        self.register_buffer("spread", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class ConSEScorer(BaseClassifier):
    """Softmax probability for seen classes, ConSE's cosine for the others (module doc)."""

    def __init__(self, top: int = 10, device: str | torch.device = "cpu") -> None:
        self.top = top
        self.device = device

    @classmethod
    def from_net(
        cls,
        net: _SeenLinear,
        classes: torch.Tensor,
        class_semantics: torch.Tensor,
        top: int,
        device: str | torch.device = "cpu",
    ) -> ConSEScorer:
        """The scorer of a fitted seen softmax over ``classes`` (rows of ``class_semantics``)."""
        clf = cls(top=top, device=device)
        clf.classes_ = check_classes(classes)
        if class_semantics.shape != (len(clf.classes_), net.seen_semantics.shape[1]):
            raise ConfigError(
                f"class_semantics must be ({len(clf.classes_)}, {net.seen_semantics.shape[1]}),"
                f" got {tuple(class_semantics.shape)}"
            )
        dev = torch.device(device)
        clf.weight_ = net.linear.weight.detach().to(dev, torch.float32)
        clf.bias_ = net.linear.bias.detach().to(dev, torch.float32)
        clf.seen_semantics_ = net.seen_semantics.to(dev, torch.float32)
        clf.class_semantics_ = F.normalize(class_semantics.detach().to(dev, torch.float32), dim=1)
        # column of each class in the softmax, -1 for a class it has no column for
        where = (clf.classes_.to(dev)[:, None] == net.seen.to(dev)[None, :]).float()
        clf.seen_column_ = torch.where(where.sum(1) > 0, where.argmax(1), -1)
        clf.n_features_in_ = int(clf.weight_.shape[1])
        return clf

    def _scores(self, X: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(torch.addmm(self.bias_, X, self.weight_.T), dim=1)
        vals, idx = p.topk(min(self.top, p.shape[1]), dim=1)
        f = (vals[:, :, None] * self.seen_semantics_[idx]).sum(1) / vals.sum(1, keepdim=True)
        cos = F.normalize(f, dim=1) @ self.class_semantics_.T
        seen = self.seen_column_ >= 0
        out = cos.clone()
        out[:, seen] = p[:, self.seen_column_[seen]]
        return out


@register
class SeenSoftmax(GenerativeMethod):
    """Softmax on real seen features only; unseen classes scored by ConSE."""

    name = "seen-softmax"
    config_class = SeenSoftmaxConfig
    paper = "(reference row) softmax on real seen features only, ConSE for unseen: kind=method"
    config: SeenSoftmaxConfig

    def _check_config(self) -> None:
        if self.config.top < 1:
            raise ConfigError(f"seen-softmax: top (ConSE's T) must be >= 1, got {self.config.top}")

    def _build(self, dims: dict[str, int]) -> None:
        self._check_config()
        c = self.config
        net = _SeenLinear(dims["feature_dim"], dims["semantic_dim"], dims["n_seen"])
        self.nets_ = nn.ModuleDict({"softmax": net})
        self.optimizers_ = {
            "softmax": torch.optim.Adam(
                net.linear.parameters(), c.lr, betas=(c.beta1, 0.999), weight_decay=c.weight_decay
            )
        }

    def _prepare(self, data: SeenTrainData) -> None:
        """Record the seen classes, their semantic vectors, feature means and spread."""
        net = self.nets_["softmax"]
        seen = data.seen_classes
        pos = self._positions(data)
        x = data.features.float()
        sums = torch.zeros(len(seen), x.shape[1], device=x.device).index_add_(
            0, pos[data.labels], x
        )
        counts = torch.bincount(pos[data.labels], minlength=len(seen)).clamp_min(1)
        with torch.no_grad():
            net.seen.copy_(seen)
            net.seen_semantics.copy_(data.semantics[seen].float())
            net.class_means.copy_(sums / counts[:, None].float())
            net.spread.copy_(within_class_spread(x, data.labels))

    @staticmethod
    def _positions(data: SeenTrainData) -> torch.Tensor:
        """Global class id -> softmax column (-1 for classes without one)."""
        pos = torch.full((data.n_classes,), -1, dtype=torch.long, device=data.labels.device)
        pos[data.seen_classes] = torch.arange(len(data.seen_classes), device=pos.device)
        return pos

    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        net = self.nets_["softmax"]
        target = self._positions(data)[data.labels]

        def losses(idx: torch.Tensor) -> dict[str, torch.Tensor]:
            ce = F.cross_entropy(net(data.features[idx]), target[idx])
            return {"ce": ce, "total": ce}

        parts = minibatch_epoch(
            self.optimizers_["softmax"],
            len(target),
            self.config.batch_size,
            data.features.device,
            losses,
            optimize=self.optimize,
        )
        return {"ce": parts["ce"]}

    def own_classifier(self, classes: torch.Tensor, class_semantics: torch.Tensor) -> ConSEScorer:
        """Softmax probabilities for the seen classes, ConSE cosines for the others."""
        self._check_fitted()
        return ConSEScorer.from_net(
            self.nets_["softmax"], classes, class_semantics, self.config.top, device=self.device
        )

    def transform_features(self, x: torch.Tensor) -> torch.Tensor:
        """Refused: the seen-only softmax is its own classifier (see the module doc)."""
        raise ConfigError(
            "seen-softmax is a classifier trained on real seen features only: run it with "
            "--set classifier.kind=method (another classifier kind would train on the points "
            "its sample() returns, which are not generated features)"
        )

    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        """``(K * n, d)``: weighted means of the T semantically nearest seen classes' feature
        means, plus noise at the seen within-class spread (module doc: not a generator)."""
        self._check_fitted()
        net = self.nets_["softmax"]
        sem = F.normalize(class_semantics.to(self.device, torch.float32), dim=1)
        sim = sem @ F.normalize(net.seen_semantics, dim=1).T
        vals, idx = sim.float().topk(min(self.config.top, sim.shape[1]), dim=1)
        vals = vals.clamp_min(0.0) + 1e-6  # all-negative similarities: an even mix
        weights = torch.zeros_like(sim, dtype=torch.float32).scatter_(1, idx, vals)
        base = (weights / weights.sum(1, keepdim=True)) @ net.class_means
        x = base.repeat_interleave(n_per_class, dim=0)
        return x + net.spread * seeded_noise(tuple(x.shape), self.seed, self.device)
