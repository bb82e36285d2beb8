"""Paired comparison of two finished runs on the same test classes (``unseen compare``).

Two methods' mean accuracies differ by less than their seed-to-seed spread more often than
not; what the means hide is whether one method is better on most classes or much better on a
few. With the per-class accuracies every seed's ``metrics.json`` holds, the comparison pairs
each class with itself: for each metric, the difference B - A per class, averaged over the
seeds both runs have, then summarised over classes (mean, how many classes gained or lost,
the largest gains and losses by name, and the Wilcoxon signed-rank test of the per-class
differences, classes as the pairs). The per-seed differences of the summary metrics are
given beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unseen.errors import DataError

__all__ = ["METRICS", "PairedComparison", "compare_runs", "format_comparison"]

#: per-class metrics compared: CZSL T1, GZSL S and U, calibrated S and U
METRICS = ("t1", "s", "u", "s_cal", "u_cal")


@dataclass
class PairedComparison:
    """Per-class paired differences B - A of one metric (percentage points)."""

    metric: str
    seeds: list[int]
    classes: list[str]  # class names, in the order of ``diff``
    diff: np.ndarray  # per class, mean over seeds of B - A
    a: np.ndarray  # per class, mean over seeds
    b: np.ndarray
    p_value: float | None  # Wilcoxon signed-rank over classes (None: too few classes)
    per_seed: dict[int, float] = field(default_factory=dict)  # B - A of the class mean

    @property
    def mean(self) -> float:
        return float(self.diff.mean()) if self.diff.size else 0.0

    def counts(self, tol: float = 1e-9) -> tuple[int, int, int]:
        """Classes that gained, lost, stayed equal."""
        return (
            int((self.diff > tol).sum()),
            int((self.diff < -tol).sum()),
            int((np.abs(self.diff) <= tol).sum()),
        )

    def to_dict(self) -> dict[str, Any]:
        up, down, same = self.counts()
        return {
            "metric": self.metric,
            "seeds": self.seeds,
            "mean_difference": self.mean,
            "classes_better": up,
            "classes_worse": down,
            "classes_equal": same,
            "wilcoxon_p": self.p_value,
            "per_seed_difference": {str(k): v for k, v in self.per_seed.items()},
            "per_class": {
                name: {"a": float(a), "b": float(b), "difference": float(d)}
                for name, a, b, d in zip(self.classes, self.a, self.b, self.diff)
            },
        }


def _per_class(results: dict[str, Any], seed: int, where: str) -> dict[str, Any]:
    entry = results["seeds"].get(str(seed), {})
    per_class = entry.get("result", {}).get("extra", {}).get("per_class")
    if not per_class:
        raise DataError(
            f"{where} holds no per-class accuracies for seed {seed} (the run was made by an "
            "unseen that did not record them); rerun it with --force to record them"
        )
    return per_class


def compare_runs(
    a: dict[str, Any], b: dict[str, Any], *, names: tuple[str, str] = ("A", "B")
) -> dict[str, PairedComparison]:
    """Paired per-class comparison of two runs' ``results.json`` (B - A), per metric.

    Raises:
        DataError: the runs are on different datasets or classes, or share no seed, or lack
            per-class accuracies.
    """
    for key in ("dataset", "synthetic_features"):
        if a.get(key) != b.get(key):
            raise DataError(
                f"{names[0]} and {names[1]} differ in {key} ({a.get(key)!r} vs {b.get(key)!r}); "
                "a paired comparison needs the same test images"
            )
    seeds = sorted(set(map(int, a["seeds"])) & set(map(int, b["seeds"])))
    if not seeds:
        raise DataError(
            f"{names[0]} (seeds {sorted(map(int, a['seeds']))}) and {names[1]} (seeds "
            f"{sorted(map(int, b['seeds']))}) share no seed to pair"
        )
    out: dict[str, PairedComparison] = {}
    for metric in METRICS:
        pa = [_per_class(a, s, names[0]) for s in seeds]
        pb = [_per_class(b, s, names[1]) for s in seeds]
        if any(metric not in p for p in pa + pb):
            continue  # e.g. calibrated metrics of a run without calibration
        ids = sorted(pa[0][metric], key=int)
        if any(sorted(p[metric], key=int) != ids for p in pa + pb):
            raise DataError(
                f"{names[0]} and {names[1]} score different classes for {metric}; a paired "
                "comparison needs the same test classes"
            )
        va = np.array([[p[metric][c] for c in ids] for p in pa])  # seeds x classes
        vb = np.array([[p[metric][c] for c in ids] for p in pb])
        diff = (vb - va).mean(axis=0)
        out[metric] = PairedComparison(
            metric=metric,
            seeds=seeds,
            classes=[pa[0]["names"].get(c, c) for c in ids],
            diff=diff,
            a=va.mean(axis=0),
            b=vb.mean(axis=0),
            p_value=_wilcoxon(diff),
            per_seed={s: float(vb[i].mean() - va[i].mean()) for i, s in enumerate(seeds)},
        )
    return out


def _wilcoxon(diff: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of per-class differences; ``None`` when fewer
    than 6 classes differ (the test cannot reach p < 0.05 below that)."""
    nonzero = diff[np.abs(diff) > 1e-9]
    if nonzero.size < 6:
        return None
    from scipy.stats import wilcoxon

    p = float(wilcoxon(nonzero).pvalue)
    return p if math.isfinite(p) else None


def format_comparison(
    comp: dict[str, PairedComparison], names: tuple[str, str], *, top: int = 3
) -> str:
    """A short text report: one block per metric."""
    labels = {
        "t1": "CZSL T1 (unseen classes)",
        "s": "GZSL S (seen classes)",
        "u": "GZSL U (unseen classes)",
        "s_cal": "calibrated S",
        "u_cal": "calibrated U",
    }
    first = next(iter(comp.values()))
    lines = [
        f"B - A per class, mean over the seeds both have ({', '.join(map(str, first.seeds))}); "
        f"A = {names[0]}, B = {names[1]}"
    ]
    for metric, c in comp.items():
        up, down, same = c.counts()
        p = "n/a (fewer than 6 classes differ)" if c.p_value is None else f"{c.p_value:.3g}"
        per_seed = ", ".join(f"seed {s}: {d:+.1f}" for s, d in c.per_seed.items())
        order = np.argsort(c.diff)
        gains = ", ".join(
            f"{c.classes[i]} {c.diff[i]:+.1f}" for i in order[::-1][:top] if c.diff[i] > 0
        )
        losses = ", ".join(f"{c.classes[i]} {c.diff[i]:+.1f}" for i in order[:top] if c.diff[i] < 0)
        lines += [
            "",
            f"{labels[metric]}: mean difference {c.mean:+.2f} points over {len(c.classes)} "
            f"classes; better on {up}, worse on {down}, equal on {same}; Wilcoxon p = {p}",
            f"  per seed (class-mean difference): {per_seed}",
            f"  largest gains: {gains or '-'}",
            f"  largest losses: {losses or '-'}",
        ]
    return "\n".join(lines)
