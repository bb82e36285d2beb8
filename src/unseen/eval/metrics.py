"""Metrics of the (generalised) zero-shot protocol, on plain numpy arrays.

References:
    Xian et al., "Zero-Shot Learning - A Comprehensive Evaluation of the Good, the Bad and
    the Ugly", TPAMI 2018 (per-class top-1, S/U/H).
    Chao et al., "An Empirical Study and Analysis of Generalized Zero-Shot Learning for
    Object Recognition in the Wild", ECCV 2016 (calibrated stacking, AUSUC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SeenUnseenCurve",
    "calibrated_predict",
    "confusion_matrix",
    "harmonic_mean",
    "per_class_accuracies",
    "per_class_accuracy",
    "seen_unseen_curve",
]


def per_class_accuracy(
    y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray | None = None
) -> float:
    """Mean over classes of the accuracy within each class (class-balanced top-1).

    Classes of ``classes`` without any sample in ``y_true`` are ignored.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(y_true) if classes is None else np.asarray(classes)
    accs = [np.mean(y_pred[y_true == c] == c) for c in classes if np.any(y_true == c)]
    return float(np.mean(accs)) if accs else 0.0


def per_class_accuracies(
    y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray
) -> dict[int, float]:
    """Accuracy within each class of ``classes`` that has samples in ``y_true`` (the terms
    whose mean is :func:`per_class_accuracy`)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {
        int(c): float(np.mean(y_pred[y_true == c] == c))
        for c in np.asarray(classes)
        if np.any(y_true == c)
    }


def harmonic_mean(s: float, u: float) -> float:
    """H = 2SU / (S + U), 0 when both are 0."""
    return 0.0 if s + u == 0 else 2.0 * s * u / (s + u)


def _seen_mask(classes: np.ndarray, seen_classes: np.ndarray) -> np.ndarray:
    return np.isin(np.asarray(classes), np.asarray(seen_classes))


def calibrated_predict(
    scores: np.ndarray, classes: np.ndarray, seen_classes: np.ndarray, gamma: float
) -> np.ndarray:
    """Calibrated stacking: ``argmax_c score(c) - gamma * 1[c is seen]`` (Chao et al. 2016)."""
    classes = np.asarray(classes)
    adjusted = scores - gamma * _seen_mask(classes, seen_classes)[None, :]
    return classes[np.argmax(adjusted, axis=1)]


@dataclass
class SeenUnseenCurve:
    """Seen/unseen accuracy as the calibration ``gamma`` sweeps the real line.

    ``acc_seen[i]`` and ``acc_unseen[i]`` hold for every gamma in the interval that starts at
    ``gammas[i]`` (the first interval starts at -inf, so ``gammas[0] = -inf``).
    """

    gammas: np.ndarray
    acc_seen: np.ndarray
    acc_unseen: np.ndarray

    def auc(self) -> float:
        """AUSUC: area under acc_seen (y) against acc_unseen (x), trapezoidal, end points in."""
        x = np.concatenate([[0.0], self.acc_unseen, [self.acc_unseen[-1]]])
        y = np.concatenate([[self.acc_seen[0]], self.acc_seen, [0.0]])
        return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))

    def best(self) -> tuple[float, float, float, float]:
        """``(gamma, S, U, H)`` maximising H; gamma is the middle of the best interval."""
        h = np.array([harmonic_mean(s, u) for s, u in zip(self.acc_seen, self.acc_unseen)])
        i = int(np.argmax(h))
        lo = self.gammas[i]
        hi = self.gammas[i + 1] if i + 1 < len(self.gammas) else np.inf
        if np.isinf(lo) and np.isinf(hi):
            gamma = 0.0
        elif np.isinf(lo):
            gamma = hi - 1e-3 * max(1.0, abs(hi))
        elif np.isinf(hi):
            gamma = lo + 1e-3 * max(1.0, abs(lo))
        else:
            gamma = (lo + hi) / 2.0
        return float(gamma), float(self.acc_seen[i]), float(self.acc_unseen[i]), float(h[i])


def seen_unseen_curve(
    scores_seen: np.ndarray,
    labels_seen: np.ndarray,
    scores_unseen: np.ndarray,
    labels_unseen: np.ndarray,
    classes: np.ndarray,
    seen_classes: np.ndarray,
) -> SeenUnseenCurve:
    """Exact per-class S and U for every gamma of calibrated stacking.

    For a sample, calibrated stacking predicts its best unseen class iff
    ``gamma > max_seen_score - max_unseen_score`` (its switch point), and its best seen class
    otherwise. So a seen-test sample is correct iff its best seen class is right and gamma is
    below its switch point; an unseen-test sample iff its best unseen class is right and gamma
    is above it. Sorting the switch points gives the whole curve in O(N log N).
    """
    classes = np.asarray(classes)
    mask = _seen_mask(classes, seen_classes)

    def parts(scores: np.ndarray, labels: np.ndarray, want_seen: bool):
        s_seen, s_unseen = scores[:, mask], scores[:, ~mask]
        best = s_seen if want_seen else s_unseen
        cls = classes[mask] if want_seen else classes[~mask]
        correct = cls[np.argmax(best, axis=1)] == labels
        switch = s_seen.max(axis=1) - s_unseen.max(axis=1)
        # Class-balanced weights: each class contributes 1/(n_c * n_classes).
        uniq, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
        weight = 1.0 / (counts[inv] * len(uniq))
        return switch, correct * weight

    sw_s, w_s = parts(scores_seen, np.asarray(labels_seen), True)
    sw_u, w_u = parts(scores_unseen, np.asarray(labels_unseen), False)
    gammas = np.unique(np.concatenate([sw_s, sw_u]))
    # Seen accuracy at gamma in [g_i, g_{i+1}): samples with switch > gamma, i.e. > g_i.
    order_s = np.argsort(sw_s)
    cum_s = np.concatenate([[0.0], np.cumsum(w_s[order_s])])
    n_le_s = np.searchsorted(sw_s[order_s], gammas, side="right")
    acc_seen_at = cum_s[-1] - cum_s[n_le_s]
    order_u = np.argsort(sw_u)
    cum_u = np.concatenate([[0.0], np.cumsum(w_u[order_u])])
    n_le_u = np.searchsorted(sw_u[order_u], gammas, side="right")
    acc_unseen_at = cum_u[n_le_u]
    # Prepend the interval (-inf, g_0): everything predicted seen.
    return SeenUnseenCurve(
        gammas=np.concatenate([[-np.inf], gammas]),
        acc_seen=np.concatenate([[cum_s[-1]], acc_seen_at]),
        acc_unseen=np.concatenate([[0.0], acc_unseen_at]),
    )


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Counts ``M[i, j]`` of samples of class ``classes[i]`` predicted as ``classes[j]``.

    Predictions outside ``classes`` are not counted.
    """
    classes = np.asarray(classes)
    pos = {int(c): i for i, c in enumerate(classes)}
    k = len(classes)
    ti = np.array([pos.get(int(c), -1) for c in y_true])
    pi = np.array([pos.get(int(c), -1) for c in y_pred])
    keep = (ti >= 0) & (pi >= 0)
    return np.bincount(ti[keep] * k + pi[keep], minlength=k * k).reshape(k, k)
