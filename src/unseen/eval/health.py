r"""Generator health: does the generator know the classes, before any test run?

A generative ZSL method only helps if its synthetic features look like the real features of
their class. The numbers here are measured on VALIDATION data (the held-out images of the
pseudo-seen classes and the images of the pseudo-unseen classes, none of which the
validation generator was fitted on), for seen and unseen classes separately:

(a) **synthetic-only accuracy**: a softmax trained on generated features ONLY, scored on real
    features of the same classes (per-class top-1). A class-agnostic generator scores near
    chance; a good one near a classifier trained on real features.
(b) **class-mean hit rate**: the share of generated class means whose nearest real class mean
    (among the group's classes) is their own class's, and the mean distance from a generated
    class mean to its real one divided by the mean distance between real class means
    (``mean_error_ratio``; below 0.5 is good, near or above 1 is "anywhere").
(c) **spread ratio**: generated within-class spread / real within-class spread (RMS distance
    to the class mean, averaged over classes); far from 1 = too wide or collapsed.
(d) **real-vs-synthetic probe**: a logistic regression trained to tell real from generated
    features of the same classes, scored on held-out halves (50% = indistinguishable, near
    100% = the synthetic features carry a fingerprint the final classifier can learn).
(e) for flows, **untouched dimensions**: input dimensions the transform passes through
    bit-identical (:func:`untouched_dimensions`).

Methods may add their own numbers (``GenerativeMethod.health``; e.g. TL-Coupling's inference
network against a ridge-regression baseline). :func:`generator_health` turns everything into
a :class:`HealthReport` with plain-language warnings.

References:
    The checks follow the audit of issue 13 (IZF's untouched dimensions, GMN's class-agnostic
    generator, a synthetic-only classifier as in Xian et al., CVPR 2018, Sec. 4.3's
    "generated features alone" experiment).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "GroupHealth",
    "HealthReport",
    "class_mean_stats",
    "generator_health",
    "group_health",
    "probe_accuracy",
    "spread_ratio",
    "synthetic_only_accuracy",
    "untouched_dimensions",
]

#: warning thresholds (see :func:`HealthReport.warnings`)
PROBE_FINGERPRINT = 95.0  # % real-vs-synthetic probe accuracy
SPREAD_RANGE = (0.5, 2.0)
HIT_RATE_MIN = 50.0  # % of generated class means nearest their own real mean
AGNOSTIC_FACTOR = 2.0  # synthetic-only T1 below this many times chance


def untouched_dimensions(x: torch.Tensor, y: torch.Tensor) -> int:
    """How many columns of the input ``x`` reappear bit-identical as some column of ``y``.

    For a flow ``y = f(x)`` evaluated on a batch of real (or random) inputs, such a column is
    a dimension that no coupling ever transformed (permutations only move it). Exact
    equality over a whole batch does not happen by chance for a transformed dimension.

    Example:
        >>> x = torch.randn(8, 3)
        >>> untouched_dimensions(x, torch.stack([x[:, 2], 2 * x[:, 0], x[:, 1] + 1], 1))
        1
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same number of rows, got {len(x)} and {len(y)}")
    out_cols = {y[:, j].contiguous().numpy().tobytes() for j in range(y.shape[1])}
    x = x.to(y.dtype)
    return sum(x[:, i].contiguous().numpy().tobytes() in out_cols for i in range(x.shape[1]))


def _class_means(x: np.ndarray, y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.stack([x[y == c].mean(axis=0) for c in classes])


def class_mean_stats(
    real_x: np.ndarray, real_y: np.ndarray, gen_x: np.ndarray, gen_y: np.ndarray, classes
) -> tuple[float, float]:
    """(b): ``(hit rate %, mean_error_ratio)`` of the generated class means.

    Example:
        >>> rx = np.array([[0.0], [0.2], [4.0], [4.2]]); ry = np.array([0, 0, 1, 1])
        >>> gx = np.array([[0.1], [3.1]]); gy = np.array([0, 1])
        >>> hit, ratio = class_mean_stats(rx, ry, gx, gy, np.array([0, 1]))
        >>> hit, round(ratio, 3)
        (100.0, 0.125)
    """
    classes = np.asarray(classes)
    real_m = _class_means(real_x, real_y, classes)
    gen_m = _class_means(gen_x, gen_y, classes)
    dist = np.linalg.norm(gen_m[:, None, :] - real_m[None, :, :], axis=-1)  # (gen, real)
    hit = float(np.mean(np.argmin(dist, axis=1) == np.arange(len(classes)))) * 100.0
    err = float(np.mean(np.diag(dist)))
    k = len(classes)
    between = np.linalg.norm(real_m[:, None, :] - real_m[None, :, :], axis=-1)
    mean_between = float(between.sum() / (k * (k - 1))) if k > 1 else float("nan")
    return hit, err / mean_between if mean_between > 0 else float("nan")


def _rms_spread(x: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    spreads = []
    for c in classes:
        xc = x[y == c]
        spreads.append(math.sqrt(float(np.mean(np.sum((xc - xc.mean(0)) ** 2, axis=1)))))
    return float(np.mean(spreads))


def spread_ratio(real_x, real_y, gen_x, gen_y, classes) -> float:
    """(c): generated / real within-class RMS distance to the class mean, class-averaged."""
    classes = np.asarray(classes)
    real = _rms_spread(real_x, real_y, classes)
    return _rms_spread(gen_x, gen_y, classes) / real if real > 0 else float("nan")


def synthetic_only_accuracy(
    real_x: torch.Tensor,
    real_y: torch.Tensor,
    gen_x: torch.Tensor,
    gen_y: torch.Tensor,
    classes: torch.Tensor,
    *,
    seed: int = 0,
    epochs: int = 30,
) -> float:
    """(a): per-class top-1 (%) on real features of a softmax trained on generated ones only.

    The classifier is the library's final softmax (Adam 1e-3, beta1 0.5) with batch 256.
    """
    from unseen.classifiers import make_classifier
    from unseen.eval.metrics import per_class_accuracy

    clf = make_classifier("softmax", lr=1e-3, epochs=epochs, batch_size=256, seed=seed)
    clf.fit(gen_x, gen_y, classes)
    pred = clf.predict(real_x).cpu().numpy()
    return 100.0 * per_class_accuracy(real_y.cpu().numpy(), pred, classes.cpu().numpy())


def probe_accuracy(real_x: np.ndarray, gen_x: np.ndarray, *, seed: int = 0) -> float:
    """(d): accuracy (%) of a linear probe telling real from generated features.

    Equal numbers of each (the smaller count, at most 2000), standardised with statistics of
    the probe's training half; scikit-learn's L2 logistic regression (C = 1) trained on one
    half, scored on the other.
    """
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    n = min(len(real_x), len(gen_x), 2000)
    if n < 4:
        return float("nan")
    r = real_x[rng.choice(len(real_x), n, replace=False)]
    g = gen_x[rng.choice(len(gen_x), n, replace=False)]
    x = np.concatenate([r, g]).astype(np.float64)
    y = np.concatenate([np.zeros(n), np.ones(n)])
    order = rng.permutation(2 * n)
    train, test = order[:n], order[n:]
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-8
    x = (x - mu) / sd
    probe = LogisticRegression(C=1.0, max_iter=500).fit(x[train], y[train])
    return 100.0 * float(np.mean(probe.predict(x[test]) == y[test]))


@dataclass
class GroupHealth:
    """Health numbers of one group of classes (seen or unseen), see the module docstring."""

    n_classes: int
    synthetic_only_t1: float
    chance: float
    mean_hit_rate: float
    mean_error_ratio: float
    spread_ratio: float
    probe_accuracy: float


def group_health(
    real_x: torch.Tensor,
    real_y: torch.Tensor,
    gen_x: torch.Tensor,
    gen_y: torch.Tensor,
    classes: torch.Tensor,
    *,
    seed: int = 0,
) -> GroupHealth:
    """(a)-(d) for one group of classes; every class of ``classes`` needs real features."""
    rx, ry = real_x.double().numpy(), real_y.numpy()
    gx, gy = gen_x.double().numpy(), gen_y.numpy()
    cl = classes.numpy()
    hit, ratio = class_mean_stats(rx, ry, gx, gy, cl)
    return GroupHealth(
        n_classes=len(cl),
        synthetic_only_t1=synthetic_only_accuracy(real_x, real_y, gen_x, gen_y, classes, seed=seed),
        chance=100.0 / len(cl),
        mean_hit_rate=hit,
        mean_error_ratio=ratio,
        spread_ratio=spread_ratio(rx, ry, gx, gy, cl),
        probe_accuracy=probe_accuracy(rx, gx, seed=seed),
    )


@dataclass
class HealthReport:
    """The health of one generator on a validation problem.

    Attributes:
        unseen, seen: :class:`GroupHealth` of the pseudo-unseen and pseudo-seen classes
            (``seen`` is ``None`` when the problem holds out no seen images).
        untouched_dims: input dimensions the method's flow leaves unchanged (``None``: no
            flow); ``feature_dim`` the number of dimensions.
        extra: the method's own numbers (``GenerativeMethod.health``).
        n_per_class: generated features per class used for the numbers.
    """

    unseen: GroupHealth
    seen: GroupHealth | None
    untouched_dims: int | None
    feature_dim: int
    extra: dict[str, float] = field(default_factory=dict)
    n_per_class: int = 0

    def warnings(self) -> list[str]:
        """Plain-language warnings for a class-agnostic, fingerprinted or partly untouched
        generator (thresholds: this module's constants)."""
        out = []
        if self.untouched_dims:
            out.append(
                f"{self.untouched_dims} of {self.feature_dim} feature dimensions pass through "
                "the flow unchanged: they are generated straight from the prior"
            )
        for name, g in (("unseen", self.unseen), ("seen", self.seen)):
            if g is None:
                continue
            if g.synthetic_only_t1 < AGNOSTIC_FACTOR * g.chance:
                out.append(
                    f"class-agnostic generator ({name}): a softmax trained on its features "
                    f"recognises real ones at {g.synthetic_only_t1:.1f}% (chance {g.chance:.1f}%)"
                )
            if g.mean_hit_rate < HIT_RATE_MIN:
                out.append(
                    f"misplaced classes ({name}): only {g.mean_hit_rate:.0f}% of generated class "
                    "means lie nearest their own real class mean"
                )
            if g.probe_accuracy > PROBE_FINGERPRINT:
                out.append(
                    f"fingerprinted features ({name}): a linear probe tells generated from real "
                    f"at {g.probe_accuracy:.1f}%"
                )
            lo, hi = SPREAD_RANGE
            if not lo <= g.spread_ratio <= hi:
                out.append(
                    f"{'too wide' if g.spread_ratio > hi else 'collapsed'} classes ({name}): "
                    f"generated within-class spread is {g.spread_ratio:.2f}x the real one"
                )
        for key, value in self.extra.items():
            if key.endswith("_warning") and value:
                out.append(f"{self._method_warning(key)}")
        return out

    def _method_warning(self, key: str) -> str:
        numbers = ", ".join(
            f"{k} {v:.3g}" for k, v in self.extra.items() if not k.endswith("_warning")
        )
        return f"{key[: -len('_warning')]}: see {numbers}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = self.warnings()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HealthReport:
        return cls(
            unseen=GroupHealth(**d["unseen"]),
            seen=None if d.get("seen") is None else GroupHealth(**d["seen"]),
            untouched_dims=d.get("untouched_dims"),
            feature_dim=d["feature_dim"],
            extra=dict(d.get("extra", {})),
            n_per_class=d.get("n_per_class", 0),
        )

    def line(self) -> str:
        """One log line: the unseen (and seen) numbers."""

        def part(name: str, g: GroupHealth | None) -> str:
            if g is None:
                return ""
            return (
                f" {name}: syn-only T1 {g.synthetic_only_t1:.1f} (chance {g.chance:.1f}), "
                f"mean hit {g.mean_hit_rate:.0f}%, mean err {g.mean_error_ratio:.2f}, "
                f"spread {g.spread_ratio:.2f}x, probe {g.probe_accuracy:.1f}%;"
            )

        s = "health" + part("unseen", self.unseen) + part("seen", self.seen)
        if self.untouched_dims is not None:
            s += f" untouched dims {self.untouched_dims}/{self.feature_dim};"
        if self.extra:
            s += " " + ", ".join(f"{k} {v:.3g}" for k, v in self.extra.items())
        return s.rstrip(";")


def generator_health(
    method,
    *,
    real_unseen: tuple[torch.Tensor, torch.Tensor],
    unseen_classes: torch.Tensor,
    real_seen: tuple[torch.Tensor, torch.Tensor] | None,
    seen_classes: torch.Tensor,
    semantics: torch.Tensor,
    train,
    n_per_class: int = 200,
    seed: int = 0,
) -> HealthReport:
    """The :class:`HealthReport` of a fitted method on held-out real features.

    Args:
        method: a fitted :class:`~unseen.methods.base.GenerativeMethod`.
        real_unseen: ``(features, labels)`` of the pseudo-unseen classes, held out from fit.
        unseen_classes, seen_classes: the class ids of both groups.
        real_seen: held-out ``(features, labels)`` of the seen classes, or ``None``.
        semantics: ``(C, d_a)`` class semantics (rows by global class id).
        train: the data the method was fitted on (passed to ``method.health``).
        n_per_class: generated features per class.
        seed: seeds generation, the classifiers and the probe (the global RNG is restored).
    """
    with torch.random.fork_rng(devices=[] if method.device.type != "cuda" else [method.device]):
        torch.manual_seed(seed)
        gen_u = method.synthesize(unseen_classes, semantics, n_per_class)
        unseen = group_health(*real_unseen, *gen_u, unseen_classes, seed=seed)
        seen = None
        if real_seen is not None and len(real_seen[1]):
            present = torch.unique(real_seen[1])
            gen_s = method.synthesize(present, semantics, n_per_class)
            seen = group_health(*real_seen, *gen_s, present, seed=seed)
        untouched = None
        probe_x, probe_y = real_seen if seen is not None else real_unseen
        probe_x, probe_y = probe_x[:512], probe_y[:512]
        with torch.no_grad():
            mapped = method.flow_map(
                probe_x.to(method.device), probe_y.to(method.device), semantics.to(method.device)
            )
        if mapped is not None:
            untouched = untouched_dimensions(probe_x.to(mapped.dtype), mapped.cpu())
        extra = method.health(real_unseen[0], real_unseen[1], unseen_classes, train)
    return HealthReport(
        unseen=unseen,
        seen=seen,
        untouched_dims=untouched,
        feature_dim=int(real_unseen[0].shape[1]),
        extra={k: float(v) for k, v in extra.items()},
        n_per_class=n_per_class,
    )
