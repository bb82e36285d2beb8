"""Final classifiers, trained on real seen + synthetic unseen features.

All share one contract (:class:`BaseClassifier`): ``fit(X, y, classes, class_semantics)``
with global class ids, ``classes_`` as the column order, ``predict_scores`` (batched, CPU
output) and ``predict``. :func:`make_classifier` builds one by name from a config.
"""

from __future__ import annotations

from typing import Any

from unseen.classifiers.base import BaseClassifier
from unseen.classifiers.bilinear import BilinearClassifier
from unseen.classifiers.prototype import NearestPrototypeClassifier
from unseen.classifiers.softmax import SoftmaxClassifier
from unseen.errors import ConfigError

__all__ = [
    "CLASSIFIERS",
    "BaseClassifier",
    "BilinearClassifier",
    "NearestPrototypeClassifier",
    "SoftmaxClassifier",
    "list_classifiers",
    "make_classifier",
]

CLASSIFIERS: dict[str, type[BaseClassifier]] = {
    "softmax": SoftmaxClassifier,
    "prototype": NearestPrototypeClassifier,
    "bilinear": BilinearClassifier,
}


def list_classifiers() -> list[str]:
    """The registered classifier names, sorted."""
    return sorted(CLASSIFIERS)


def make_classifier(name: str, **params: Any) -> BaseClassifier:
    """Build the classifier registered as ``name`` with hyper-parameters ``params``.

    Raises:
        ConfigError: for an unknown name, an unknown parameter or an invalid value, naming
            the valid choices.

    Example:
        >>> make_classifier("prototype", metric="cosine")
        NearestPrototypeClassifier(metric='cosine', device='cpu')
    """
    if name not in CLASSIFIERS:
        raise ConfigError(f"unknown classifier {name!r}; valid: {list_classifiers()}")
    cls = CLASSIFIERS[name]
    valid = cls.param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"classifier {name!r} got unknown parameter(s) {unknown}; valid parameters: {valid}"
        )
    clf = cls(**params)
    clf._validate_params()
    return clf
