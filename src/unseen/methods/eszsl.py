r"""ESZSL: "An embarrassingly simple approach to zero-shot learning" (a reference row).

Romera-Paredes & Torr, ICML 2015. A bilinear compatibility :math:`F(x, c) = x^\top V s_c`
between an image feature :math:`x \in \mathbb R^d` and a class's semantic vector
:math:`s_c \in \mathbb R^a`, learned on the seen classes by minimising the square loss to
:math:`Y \in \{-1, 1\}^{m \times z}` (+1 for an image's own class, -1 for the others) with the
paper's regulariser :math:`\Omega(V) = \gamma \lVert V S \rVert^2 + \lambda \lVert X^\top V
\rVert^2 + \beta \lVert V \rVert^2`. With :math:`\beta = \gamma \lambda` the minimiser has the
closed form (the paper's "one line of code"; paper notation: X is d x m, S is a x z)

.. math:: V = (X X^\top + \gamma I)^{-1}\, X\, Y\, S^\top\, (S S^\top + \lambda I)^{-1},

and a test image is assigned :math:`\arg\max_c x^\top V s_c` over the candidate classes (the
paper's inference rule): unseen classes need nothing but their :math:`s_c`.

How it fits the protocol:

* ``fit`` computes V once (the set-up before the first epoch); ``epochs`` is 1 and every epoch
  only reports the training objective. gamma and lambda (``reg_gamma``, ``reg_lambda``; 0 =
  choose) are chosen from ``grid`` (10^-3..10^3, the xlsa17 protocol's range) by zero-shot
  accuracy (T1, the paper's criterion) on classes held out of the seen training data that
  ``fit`` receives: the seen classes are dealt into ``folds`` groups (seeded by the method's
  seed), each group is held out once as pseudo-unseen while V is fitted on the others, and the
  pair with the best mean T1 is refitted on all seen classes. Nothing outside ``fit``'s data
  is used, so the same code runs inside the runner's validation problem and on the test task.
  The chosen pair is in every epoch's history (``log10_gamma``, ``log10_lambda``).
* The classifier is ESZSL's own compatibility (``classifier.kind: method``,
  :meth:`ESZSL.own_classifier`). Its scores are :math:`\cos`-normalised by the image's
  embedding, :math:`x^\top V s_c / \lVert x^\top V \rVert`: a positive factor per image, so
  every argmax (T1, U, S, H) is exactly the paper's, while calibrated stacking's gamma lives
  on a scale that does not depend on the chosen regularisers (the fits on the validation
  problem and on all seen data may choose different ones). Any other classifier kind is
  refused (:meth:`ESZSL.transform_features` raises): a classifier trained on the points of
  :meth:`ESZSL.sample` would not be ESZSL.
* ESZSL generates nothing. :meth:`ESZSL.sample` exists for the method contract (the runner
  synthesizes before it classifies, the validation health report and the registry suite call
  it): it returns the minimum-norm feature vector that V embeds onto :math:`s_c`
  (:math:`s_c^\top V^+`) plus Gaussian noise at the seen classes' mean within-class spread,
  the noise seeded by the method's seed and the caller's RNG. Its health numbers describe
  those points, not a generator.
* Features: with ``standardize`` (default) V sees each image z-scored per dimension with the
  seen training statistics and L2-normalised, the preprocessing of the data README's ESZSL
  reference measurement, chosen over the run's min-max features on FLO's validation problem
  (see :class:`ESZSLConfig`); the statistics are fitted in ``fit`` and saved with V.
* Precision: the Gram matrices, eigendecompositions and V are computed in fp32 whatever the
  run's precision (a ridge solve in bf16 loses the small eigenvalues that gamma regularises);
  the grid's scoring products run in the run's precision.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from unseen.classifiers.base import BaseClassifier, check_classes
from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError, DataError
from unseen.methods.base import GenerativeMethod, MethodConfig, register
from unseen.methods.precision import full_precision

__all__ = ["ESZSL", "CompatibilityScorer", "ESZSLConfig", "eszsl_closed_form", "seeded_noise"]

#: the regulariser grid of the xlsa17 protocol: 10^-3 .. 10^3
DEFAULT_GRID = [10.0**e for e in range(-3, 4)]


@dataclass
class ESZSLConfig(MethodConfig):
    """ESZSL hyper-parameters.

    Attributes:
        epochs: 1: the closed form is computed once; more epochs only repeat its report.
        reg_gamma: the paper's gamma (feature-side ridge); 0 = chosen from ``grid``.
        reg_lambda: the paper's lambda (semantic-side ridge); 0 = chosen from ``grid``.
        grid: candidate values of both, every pair tried (7 x 7 by default).
        folds: groups of seen classes held out in turn to choose gamma and lambda (>= 2).
        standardize: before V, z-score every feature dimension with the seen training
            features' mean and standard deviation, then L2-normalise each image (the
            preprocessing of the data README's ESZSL reference measurement). The z-score
            undoes the run's per-dimension min-max scaling, which is affine. On FLO's
            validation problem (proposed train/val class split, best of the 7 x 7 grid) it
            lifts T1 from 34.8 to 44.3 and calibrated H from 37.2 to 43.6 over the min-max
            features alone.
    """

    epochs: int = 1
    reg_gamma: float = 0.0
    reg_lambda: float = 0.0
    grid: list[float] = field(default_factory=lambda: list(DEFAULT_GRID))
    folds: int = 3
    standardize: bool = True


@full_precision
def eszsl_closed_form(
    x: torch.Tensor, labels: torch.Tensor, semantics: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    r"""``(d, a)`` V of the paper's closed form, in row convention (fp32, any autocast).

    With features as rows (``x`` is ``(m, d)``, ``semantics`` ``(z, a)``, ``labels`` column
    indices into ``semantics``) the paper's :math:`(XX^\top + \gamma I)^{-1} X Y S^\top
    (SS^\top + \lambda I)^{-1}` reads :math:`(x^\top x + \gamma I)^{-1} x^\top Y S
    (S^\top S + \lambda I)^{-1}`, :math:`Y \in \{-1, 1\}^{m \times z}`.
    """
    x, s = x.float(), semantics.float()
    ys = 2.0 * s[labels] - s.sum(0, keepdim=True)  # Y S without forming Y: +s_y, -s_c else
    eye_d = torch.eye(x.shape[1], device=x.device)
    eye_a = torch.eye(s.shape[1], device=x.device)
    left = torch.linalg.solve(x.T @ x + gamma * eye_d, x.T @ ys)
    return torch.linalg.solve(s.T @ s + lam * eye_a, left.T).T  # (S^T S + lam I) symmetric


def seeded_noise(shape: tuple[int, ...], seed: int, device: torch.device) -> torch.Tensor:
    """Standard normal noise drawn from a private generator seeded by ``seed`` and one draw
    of torch's global generator: reproducible under the caller's seeding (the runner seeds
    the global RNG per seed) and different for two method seeds, without moving the global
    stream more than that one draw. For the methods whose fit has nothing random."""
    draw = int(torch.randint(0, 2**62, (1,)))
    gen = torch.Generator(device=device).manual_seed((draw + 1_000_003 * seed) % 2**63)
    return torch.randn(shape, generator=gen, device=device)


def within_class_spread(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over classes and dimensions of the within-class standard deviation of ``x``."""
    _, idx, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    k = len(counts)
    sums = torch.zeros(k, x.shape[1], device=x.device).index_add_(0, idx, x.float())
    sq = torch.zeros(k, x.shape[1], device=x.device).index_add_(0, idx, x.float() ** 2)
    n = counts[:, None].float()
    var = (sq / n - (sums / n) ** 2).clamp_min(0.0)
    return var.sqrt().mean()


class _Compatibility(nn.Module):
    """Holds V (a frozen parameter, so the precision hooks return its products in fp32), the
    input standardisation, the chosen gamma/lambda with their held-out T1, V's pseudo-inverse
    and the noise scale (all set in ``fit``, saved with the model)."""

    def __init__(self, feature_dim: int, semantic_dim: int) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.zeros(feature_dim, semantic_dim), requires_grad=False)
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("std", torch.ones(feature_dim))
        self.register_buffer("norm", torch.ones(()))  # mean norm of standardised features
        self.register_buffer("standardize", torch.zeros((), dtype=torch.bool))
        self.register_buffer("v_pinv", torch.zeros(semantic_dim, feature_dim))
        self.register_buffer("chosen", torch.zeros(3))  # gamma, lambda, held-out T1 (%)
        self.register_buffer("spread", torch.zeros(()))

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Features as V sees them: z-scored and L2-normalised with ``standardize``."""
        if not bool(self.standardize):
            return x.float()
        z = (x.float() - self.mean) / self.std
        return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The image's embedding in semantic space, :math:`x^\\top V` (of its inputs)."""
        return self.inputs(x) @ self.v


class CompatibilityScorer(BaseClassifier):
    r"""Scores :math:`x^\top V s_c / \lVert x^\top V \rVert` for ``classes`` (ESZSL's rule,
    cos-normalised per image: the same argmax, a scale-free calibration gamma); ``x`` is the
    image as V sees it (standardised when the method standardises)."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = device

    @classmethod
    def from_module(
        cls,
        net: _Compatibility,
        class_semantics: torch.Tensor,
        classes: torch.Tensor,
        device: str | torch.device = "cpu",
    ) -> CompatibilityScorer:
        """The scorer of a fitted compatibility over ``classes`` (rows of ``class_semantics``)."""
        clf = cls(device=device)
        clf.classes_ = check_classes(classes)
        d, a = net.v.shape
        if class_semantics.shape != (len(clf.classes_), a):
            raise ConfigError(
                f"class_semantics must be ({len(clf.classes_)}, {a}), "
                f"got {tuple(class_semantics.shape)}"
            )
        clf.net_ = copy.deepcopy(net).to(device).float().eval()
        clf.class_semantics_ = class_semantics.detach().to(device, torch.float32)
        clf.n_features_in_ = int(d)
        return clf

    def _scores(self, X: torch.Tensor) -> torch.Tensor:
        emb = self.net_(X).float()
        emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return emb @ self.class_semantics_.T


@register
class ESZSL(GenerativeMethod):
    """ESZSL's closed-form compatibility V, gamma and lambda chosen on held-out seen classes."""

    name = "eszsl"
    config_class = ESZSLConfig
    paper = "ESZSL (Romera-Paredes & Torr, ICML 2015), reference row: classifier.kind=method"
    config: ESZSLConfig

    def _check_config(self) -> None:
        c = self.config
        if c.folds < 2:
            raise ConfigError(f"eszsl: folds must be >= 2, got {c.folds}")
        if not c.grid or not all(
            isinstance(g, int | float) and not isinstance(g, bool) and math.isfinite(g) and g > 0
            for g in c.grid
        ):
            raise ConfigError(f"eszsl: grid must list positive numbers, got {c.grid}")
        for key in ("reg_gamma", "reg_lambda"):
            if getattr(c, key) < 0:
                raise ConfigError(f"eszsl: {key} must be >= 0 (0 = chosen), got {getattr(c, key)}")

    def _build(self, dims: dict[str, int]) -> None:
        self._check_config()
        self.nets_ = nn.ModuleDict(
            {"eszsl": _Compatibility(dims["feature_dim"], dims["semantic_dim"])}
        )
        self.optimizers_ = {}  # closed form: nothing to step

    # ------------------------------------------------------------------ fit
    def _prepare(self, data: SeenTrainData) -> None:
        """Choose gamma and lambda on held-out seen classes, then solve on all seen data."""
        net = self.nets_["eszsl"]
        raw, labels = data.features.float(), data.labels
        with torch.no_grad():
            net.standardize.fill_(self.config.standardize)
            if self.config.standardize:
                net.mean.copy_(raw.mean(0))
                # a constant dimension stays 0 after centring: any positive std will do
                net.std.copy_(raw.std(0).clamp_min(1e-6))
                net.norm.copy_(((raw - net.mean) / net.std).norm(dim=1).mean())
        x = net.inputs(raw)
        seen = torch.unique(labels)
        if len(seen) < 2:
            raise DataError(
                f"eszsl: {data.name} has {len(seen)} seen class(es); choosing gamma and lambda "
                "needs at least 2 (one to fit, one to hold out)"
            )
        col = torch.full((data.n_classes,), -1, dtype=torch.long, device=labels.device)
        col[seen] = torch.arange(len(seen), device=labels.device)
        sem = data.semantics.float()[seen]
        c = self.config
        gammas = [c.reg_gamma] if c.reg_gamma > 0 else [float(g) for g in c.grid]
        lambdas = [c.reg_lambda] if c.reg_lambda > 0 else [float(g) for g in c.grid]
        pairs = [(g, lam) for g in gammas for lam in lambdas]
        # Also for a single given pair: its held-out T1 is reported beside it.
        t1 = self._held_out_t1(x, col[labels], sem, pairs)
        best = int(torch.argmax(t1))  # ties: the first pair in grid order
        gamma, lam = pairs[best]
        with torch.no_grad():
            net.v.copy_(eszsl_closed_form(x, col[labels], sem, gamma, lam))
            net.v_pinv.copy_(_pinv(net.v))
            net.chosen.copy_(torch.tensor([gamma, lam, float(t1[best])]))
            net.spread.copy_(within_class_spread(raw, labels))

    def _held_out_t1(
        self, x: torch.Tensor, y: torch.Tensor, sem: torch.Tensor, pairs: list[tuple[float, float]]
    ) -> torch.Tensor:
        """Mean over folds of the per-class T1 (%) of every (gamma, lambda) pair on the
        fold's held-out classes, V fitted on the other classes (``y``: column indices).

        Per fold, one eigendecomposition of each Gram matrix gives V for every pair:
        :math:`x^\\top x = U \\mathrm{diag}(p) U^\\top`, :math:`S^\\top S = W \\mathrm{diag}(q)
        W^\\top`, :math:`V = U [(U^\\top x^\\top Y S W) / ((p + \\gamma)(q + \\lambda)^\\top)]
        W^\\top`, scored without forming V."""
        z = sem.shape[0]
        gen = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(z, generator=gen)
        groups = [g for g in order.tensor_split(min(self.config.folds, z)) if len(g)]
        total = torch.zeros(len(pairs))
        gam = torch.tensor([p[0] for p in pairs], device=x.device)
        lam = torch.tensor([p[1] for p in pairs], device=x.device)
        for held in groups:
            is_held = torch.zeros(z, dtype=torch.bool, device=x.device)
            is_held[held.to(x.device)] = True
            kept = (~is_held).nonzero().squeeze(1)
            train = ~is_held[y]
            u, p, w, q, m = _eigen_parts(x[train], _reindex(y[train], kept, z), sem[kept])
            held_cols = is_held.nonzero().squeeze(1)
            xh, yh = x[~train], _reindex(y[~train], held_cols, z)
            xu = xh @ u  # (n_h, d), in the run's precision
            ws = w.T @ sem[held_cols].T  # (a, z_h)
            for i in range(len(pairs)):
                core = m / ((p[:, None] + gam[i]) * (q[None, :] + lam[i]))
                pred = (xu @ (core @ ws)).argmax(1)
                total[i] += _per_class_accuracy(pred, yh, len(held_cols))
        return 100.0 * total / len(groups)

    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        """Nothing to train (V is closed form): the objective's square-loss term, mean per
        score, and the chosen gamma / lambda with their held-out T1."""
        net = self.nets_["eszsl"]
        seen = torch.unique(data.labels)
        col = torch.full((data.n_classes,), -1, dtype=torch.long, device=data.labels.device)
        col[seen] = torch.arange(len(seen), device=seen.device)
        with torch.no_grad():
            scores = net(data.features) @ data.semantics.float()[seen].T
            target = -torch.ones_like(scores)
            target[torch.arange(len(scores)), col[data.labels]] = 1.0
            loss = float((scores.float() - target).pow(2).mean())
        gamma, lam, t1 = (float(v) for v in net.chosen)
        return {
            "square_loss": loss,
            "log10_gamma": math.log10(gamma),
            "log10_lambda": math.log10(lam),
            "held_out_t1": t1,
        }

    # ------------------------------------------------------------------ use
    def own_classifier(
        self, classes: torch.Tensor, class_semantics: torch.Tensor
    ) -> CompatibilityScorer:
        """ESZSL's inference rule over ``classes`` (cos-normalised, see the module doc)."""
        self._check_fitted()
        return CompatibilityScorer.from_module(
            self.nets_["eszsl"], class_semantics, classes, device=self.device
        )

    def transform_features(self, x: torch.Tensor) -> torch.Tensor:
        """Refused: ESZSL is scored by its own compatibility, not by a classifier trained on
        the points of :meth:`sample`."""
        raise ConfigError(
            "eszsl is scored by its own compatibility x^T V s_c: run it with "
            "--set classifier.kind=method (the points its sample() returns are not generated "
            "features, and a softmax, bilinear or prototype classifier trained on them would "
            "not be ESZSL)"
        )

    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        """``(K * n, d)``: :math:`s_c^\\top V^+` (the minimum-norm input with :math:`x^\\top V
        = s_c`, standardisation undone at the training features' mean norm) plus noise at the
        seen within-class spread; see the module doc (not a generator)."""
        self._check_fitted()
        net = self.nets_["eszsl"]
        base = (class_semantics.to(self.device, torch.float32) @ net.v_pinv).float()
        if bool(net.standardize):
            base = base / base.norm(dim=1, keepdim=True).clamp_min(1e-12) * net.norm
            base = base * net.std + net.mean
        x = base.repeat_interleave(n_per_class, dim=0)
        return x + net.spread * seeded_noise(tuple(x.shape), self.seed, self.device)


@full_precision
def _eigen_parts(
    x: torch.Tensor, y: torch.Tensor, sem: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """U, p, W, q and :math:`M = U^\\top x^\\top Y S W` of one fold, in fp32 (see
    :meth:`ESZSL._held_out_t1`); ``y`` indexes the rows of ``sem``."""
    x, sem = x.float(), sem.float()
    ys = 2.0 * sem[y] - sem.sum(0, keepdim=True)
    p, u = torch.linalg.eigh(x.T @ x)
    q, w = torch.linalg.eigh(sem.T @ sem)
    m = u.T @ (x.T @ ys) @ w
    # Gram matrices are PSD: round-off below zero would make p + gamma vanish for tiny gamma
    return u, p.clamp_min(0.0), w, q.clamp_min(0.0), m


@full_precision
def _pinv(v: torch.Tensor) -> torch.Tensor:
    """Moore-Penrose pseudo-inverse ``(a, d)`` of V, in fp32."""
    return torch.linalg.pinv(v.float())


def _reindex(y: torch.Tensor, cols: torch.Tensor, z: int) -> torch.Tensor:
    """Column indices ``y`` (into z columns) as positions within ``cols``."""
    pos = torch.full((z,), -1, dtype=torch.long, device=y.device)
    pos[cols] = torch.arange(len(cols), device=y.device)
    return pos[y]


def _per_class_accuracy(pred: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """Mean over the k classes present of each class's accuracy (the protocol's T1)."""
    hits = torch.zeros(k, device=y.device).index_add_(0, y, (pred == y).float())
    counts = torch.bincount(y, minlength=k).float()
    present = counts > 0
    return float((hits[present] / counts[present]).mean())
