"""Preprocessing as explicit transforms fitted on training data only.

Feature transforms are fitted on the seen *training* features of a task and then applied
unchanged to every other split, so no statistic of a test image ever leaks into training.
Class-semantic transforms act per class vector and have nothing to fit.
"""

from __future__ import annotations

import numpy as np

from unseen.errors import ConfigError

__all__ = [
    "FEATURE_TRANSFORMS",
    "SEMANTIC_TRANSFORMS",
    "FeatureTransform",
    "Identity",
    "L2Normalize",
    "MinMaxScaler",
    "make_feature_transform",
    "transform_semantics",
]


class FeatureTransform:
    """Base class: ``fit(train) -> self``; ``transform(x)`` applies the fitted map."""

    def fit(self, x: np.ndarray) -> FeatureTransform:
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, list[float]]:
        """Fitted statistics as plain lists (for the resolved config / reports)."""
        return {}


class Identity(FeatureTransform):
    """No preprocessing (e.g. GMN uses raw ReLU features)."""

    def transform(self, x: np.ndarray) -> np.ndarray:
        return x


class MinMaxScaler(FeatureTransform):
    """Per-dimension min-max scaling to [0, 1] using training minima and maxima.

    Test values outside the training range map outside [0, 1]; they are not clipped, which is
    what f-CLSWGAN/IZF do.
    """

    def fit(self, x: np.ndarray) -> MinMaxScaler:
        self.min_ = x.min(axis=0)
        span = x.max(axis=0) - self.min_
        # Constant dimensions would divide by zero; leave them at 0.
        self.scale_ = np.where(span > 0, span, 1.0).astype(x.dtype)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.min_) / self.scale_).astype(np.float32)


class L2Normalize(FeatureTransform):
    """Scale each feature vector to unit Euclidean norm (stateless)."""

    def transform(self, x: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return (x / np.maximum(norm, 1e-12)).astype(np.float32)


FEATURE_TRANSFORMS = {"none": Identity, "minmax": MinMaxScaler, "l2": L2Normalize}
SEMANTIC_TRANSFORMS = ("none", "l2")


def make_feature_transform(name: str) -> FeatureTransform:
    """Build an unfitted feature transform by name (``none``, ``minmax``, ``l2``)."""
    try:
        return FEATURE_TRANSFORMS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown feature transform '{name}'; choose one of {sorted(FEATURE_TRANSFORMS)}"
        ) from None


def transform_semantics(semantics: np.ndarray, name: str) -> np.ndarray:
    """Apply a class-semantic transform: ``none`` or ``l2`` (each class vector to unit norm)."""
    if name == "none":
        return semantics.astype(np.float32)
    if name == "l2":
        norm = np.linalg.norm(semantics, axis=1, keepdims=True)
        return (semantics / np.maximum(norm, 1e-12)).astype(np.float32)
    raise ConfigError(
        f"unknown semantic transform '{name}'; choose one of {list(SEMANTIC_TRANSFORMS)}"
    )
