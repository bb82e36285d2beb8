"""Final classifiers, trained on real seen + synthetic unseen features.

All share one contract (:class:`BaseClassifier`): ``fit(X, y, classes, class_semantics)``
with global class ids, ``classes_`` as the column order, ``predict_scores`` (batched, CPU
output) and ``predict``. :func:`make_classifier` builds one by name and keyword arguments;
:func:`build_classifier` builds the final classifier a run's ``classifier`` config section
names (the factory the runner and the artefact use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unseen.classifiers.base import BaseClassifier
from unseen.classifiers.bilinear import BilinearClassifier
from unseen.classifiers.prototype import NearestPrototypeClassifier
from unseen.classifiers.softmax import SoftmaxClassifier
from unseen.errors import ConfigError

if TYPE_CHECKING:
    from unseen.config import ClassifierConfig

__all__ = [
    "CLASSIFIERS",
    "BaseClassifier",
    "BilinearClassifier",
    "NearestPrototypeClassifier",
    "SoftmaxClassifier",
    "build_classifier",
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


def build_classifier(cfg: ClassifierConfig, device: str, seed: int) -> BaseClassifier:
    """The final classifier of a run's ``classifier`` section (softmax, bilinear or nearest
    prototype), seeded with ``seed``; ``kind: method`` is the method's own and not built here.

    Raises:
        ConfigError: for a kind that names no classifier, naming the valid kinds.
    """
    if cfg.kind == "prototype":
        return make_classifier("prototype", device=device)
    common = {
        "lr": cfg.lr,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "weight_decay": cfg.weight_decay,
        "device": device,
        "seed": seed,
    }
    if cfg.kind == "softmax":
        return make_classifier("softmax", beta1=cfg.beta1, **common)
    if cfg.kind == "bilinear":
        return make_classifier("bilinear", momentum=cfg.momentum, lr_decay=cfg.lr_decay, **common)
    return make_classifier(cfg.kind)  # raises ConfigError naming the valid kinds
