"""Metrics and result objects of the protocol (test labels are only touched here and in
:meth:`unseen.data.task.ZSLTask.evaluate`)."""

from unseen.eval.metrics import (
    SeenUnseenCurve,
    calibrated_predict,
    confusion_matrix,
    harmonic_mean,
    per_class_accuracy,
    seen_unseen_curve,
)
from unseen.eval.results import METRIC_KEYS, EvalResult, format_summary, summarize

__all__ = [
    "METRIC_KEYS",
    "EvalResult",
    "SeenUnseenCurve",
    "calibrated_predict",
    "confusion_matrix",
    "format_summary",
    "harmonic_mean",
    "per_class_accuracy",
    "seen_unseen_curve",
    "summarize",
]
