"""Result objects: plain dataclasses that serialise to JSON, and mean ± std over seeds."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["METRIC_KEYS", "EvalResult", "format_summary", "mean_std", "summarize"]

# Accuracies are stored in percent (0-100), like the papers' tables.
METRIC_KEYS = ("t1", "s", "u", "h", "s_cal", "u_cal", "h_cal", "ausuc")


@dataclass
class EvalResult:
    """Metrics of one evaluation (percent).

    Attributes:
        t1: CZSL per-class top-1 on unseen test images among unseen classes only.
        s, u, h: GZSL per-class accuracy on seen / unseen test images among all classes, and
            their harmonic mean, without calibration.
        gamma: calibration applied for ``s_cal``/``u_cal``/``h_cal`` (chosen on validation);
            ``None`` when no calibration was asked for.
        ausuc: area under the seen-unseen accuracy curve (percent of the unit square).
        best_gamma: the gamma maximising H on *this* split. Only filled on the validation
            problem (on test it would be an oracle).
        split: ``"test"`` or ``"validation"``.
    """

    t1: float
    s: float
    u: float
    h: float
    ausuc: float
    gamma: float | None = None
    s_cal: float | None = None
    u_cal: float | None = None
    h_cal: float | None = None
    best_gamma: float | None = None
    split: str = "test"
    n_seen_images: int = 0
    n_unseen_images: int = 0
    confusion: list[list[int]] | None = None
    confusion_classes: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def line(self) -> str:
        """One human-readable line."""
        out = f"T1 {self.t1:5.1f} | S {self.s:5.1f} U {self.u:5.1f} H {self.h:5.1f}"
        if self.h_cal is not None:
            out += (
                f" | calibrated (gamma {self.gamma:.3g}) S {self.s_cal:5.1f} "
                f"U {self.u_cal:5.1f} H {self.h_cal:5.1f}"
            )
        return out + f" | AUSUC {self.ausuc:5.1f}"


def mean_std(values: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "values"}`` with the sample standard deviation (ddof=1; 0 for one)."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return {"mean": mean, "std": math.sqrt(var), "values": list(values)}


def summarize(results: list[EvalResult]) -> dict[str, dict[str, Any]]:
    """Mean and sample standard deviation (ddof=1; 0 for a single run) of each metric."""
    out: dict[str, dict[str, Any]] = {}
    for key in METRIC_KEYS:
        values = [getattr(r, key) for r in results if getattr(r, key) is not None]
        if values:
            out[key] = mean_std(values)
    return out


def format_mean_std(m: dict[str, Any] | None) -> str:
    """``61.2 ± 0.4`` from a :func:`mean_std` dict; ``61.2`` for a single seed (no spread was
    measured, so none is printed); ``-`` for a missing one."""
    if not m:
        return "-"
    if len(m.get("values") or []) == 1:
        return f"{m['mean']:.1f}"
    return f"{m['mean']:.1f} ± {m['std']:.1f}"


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """``T1 61.2 ± 0.4 | S .. U .. H ..`` (and calibrated metrics when present)."""

    def f(key: str) -> str:
        return format_mean_std(summary[key])

    n = len(summary["h"]["values"])
    lines = [
        f"over {n} seed(s): CZSL T1 {f('t1')}",
        f"GZSL           S {f('s')}  U {f('u')}  H {f('h')}",
    ]
    if "h_cal" in summary:
        lines.append(f"GZSL calibrated S {f('s_cal')}  U {f('u_cal')}  H {f('h_cal')}")
    lines.append(f"AUSUC {f('ausuc')}")
    return "\n".join(lines)
