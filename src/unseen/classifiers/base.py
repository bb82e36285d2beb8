"""The contract shared by the final classifiers, and the input checks they all use.

Every classifier follows scikit-learn's estimator contract: ``__init__`` only stores
hyper-parameters, ``fit(X, y, classes, class_semantics)`` returns ``self``, and learned state
ends in ``_``. Labels are *global* class ids; ``classes`` fixes the column order of the scores.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any

import torch

from unseen.errors import ConfigError

__all__ = [
    "BaseClassifier",
    "EpochCallback",
    "check_class_semantics",
    "check_classes",
    "check_features",
    "check_positive",
    "check_positive_int",
    "check_samples",
    "encode_labels",
    "epoch_batches",
    "seeded_generator",
]

EpochCallback = Callable[[int, Any], None]
"""``epoch_callback(epoch, clf)``: called after each epoch (1-based) with the fitted classifier."""

# Rows per chunk in predict_scores: 4096 x 2048 float32 is 32 MiB, small on any device.
PREDICT_BATCH_ROWS = 4096


class BaseClassifier:
    """Base of the final classifiers: batched ``predict_scores``, ``predict`` and parameters.

    Subclasses implement :meth:`fit` (setting ``classes_``) and :meth:`_scores`, which maps a
    chunk of features already on ``self.device`` to ``(n, K)`` scores.
    """

    classes_: torch.Tensor
    n_features_in_: int

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        """The hyper-parameters accepted by ``__init__``, in signature order."""
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters as a dict (scikit-learn's ``get_params``)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params: Any) -> BaseClassifier:
        """Set hyper-parameters; unknown names raise :class:`ConfigError`."""
        valid = self.param_names()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ConfigError(
                f"{type(self).__name__} got unknown parameter(s) {unknown}; valid: {valid}"
            )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _validate_params(self) -> None:
        """Raise :class:`ConfigError` for invalid hyper-parameter values."""
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ConfigError(f"{type(self).__name__}: invalid device {self.device!r}") from err

    # ------------------------------------------------------------------ prediction
    def _scores(self, X: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit first")

    @torch.no_grad()
    def predict_scores(self, X: torch.Tensor, batch_size: int = PREDICT_BATCH_ROWS) -> torch.Tensor:
        """Scores of every sample for every class, columns in ``classes_`` order.

        Args:
            X: ``(N, d)`` features, on any device.
            batch_size: rows scored at a time, so large test sets fit in memory.

        Returns:
            ``(N, K)`` float32 scores on the CPU (see each classifier for their meaning).
        """
        self._check_fitted()
        X = check_features(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ConfigError(
                f"X has {X.shape[1]} features but {type(self).__name__} was fitted on "
                f"{self.n_features_in_}"
            )
        device = torch.device(self.device)
        chunks = [
            self._scores(X[i : i + batch_size].to(device=device, dtype=torch.float32)).float().cpu()
            for i in range(0, X.shape[0], batch_size)
        ]
        if not chunks:
            return torch.empty(0, len(self.classes_), dtype=torch.float32)
        return torch.cat(chunks)

    def predict(self, X: torch.Tensor, batch_size: int = PREDICT_BATCH_ROWS) -> torch.Tensor:
        """``(N,)`` int64 global class ids of the highest-scoring class, on the CPU."""
        columns = self.predict_scores(X, batch_size).argmax(dim=1)
        return self.classes_[columns]


# ---------------------------------------------------------------------- input checks
def check_features(X: torch.Tensor, name: str = "X") -> torch.Tensor:
    """Check that ``X`` is a 2-D floating tensor (any device) and return it."""
    if not isinstance(X, torch.Tensor):
        raise ConfigError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if X.ndim != 2:
        raise ConfigError(f"{name} must be 2-D (samples x dims), got shape {tuple(X.shape)}")
    if not X.is_floating_point():
        raise ConfigError(f"{name} must be a floating-point tensor, got {X.dtype}")
    return X


def check_classes(classes: torch.Tensor) -> torch.Tensor:
    """Return ``classes`` as a 1-D int64 CPU tensor of distinct ids (the column order)."""
    if not isinstance(classes, torch.Tensor):
        classes = torch.as_tensor(classes)
    classes = classes.detach().to(device="cpu", dtype=torch.int64).reshape(-1)
    if classes.numel() == 0:
        raise ConfigError("classes is empty; a classifier needs at least one class")
    uniq, counts = torch.unique(classes, return_counts=True)
    if (counts > 1).any():
        raise ConfigError(f"classes must be distinct; repeated: {uniq[counts > 1][:5].tolist()}")
    return classes


def encode_labels(y: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Map global labels ``y`` to column indices into ``classes`` (1-D int64, CPU).

    Raises:
        ConfigError: naming a few labels of ``y`` that are not in ``classes``.
    """
    if not isinstance(y, torch.Tensor):
        y = torch.as_tensor(y)
    if y.is_floating_point() or y.is_complex():
        raise ConfigError(f"labels y must be an integer tensor, got {y.dtype}")
    y = y.detach().to(device="cpu", dtype=torch.int64).reshape(-1)
    sorted_classes, order = torch.sort(classes)
    pos = torch.searchsorted(sorted_classes, y).clamp_(max=len(classes) - 1)
    found = sorted_classes[pos] == y
    if not bool(found.all()):
        bad = torch.unique(y[~found])
        raise ConfigError(
            f"{bad.numel()} label value(s) of y are not in `classes` (e.g. {bad[:5].tolist()}); "
            f"classes holds {len(classes)} ids: {sorted_classes[:10].tolist()}"
            + (" ..." if len(classes) > 10 else "")
        )
    return order[pos]


def check_class_semantics(
    class_semantics: torch.Tensor | None, n_classes: int, required: bool, who: str
) -> torch.Tensor | None:
    """Check that ``class_semantics`` has one row per class (``required`` makes ``None`` fail)."""
    if class_semantics is None:
        if required:
            raise ConfigError(
                f"{who} needs class_semantics (one row per entry of `classes`) to score classes"
            )
        return None
    class_semantics = check_features(class_semantics, "class_semantics")
    if class_semantics.shape[0] != n_classes:
        raise ConfigError(
            f"class_semantics has {class_semantics.shape[0]} rows but classes has {n_classes} "
            "entries; rows must be aligned with `classes`"
        )
    return class_semantics


def check_samples(X: torch.Tensor, y: torch.Tensor) -> None:
    """Check that ``X`` and ``y`` describe the same, non-zero number of samples."""
    if y.reshape(-1).shape[0] != X.shape[0]:
        raise ConfigError(f"X has {X.shape[0]} rows but y has {y.reshape(-1).shape[0]} labels")
    if X.shape[0] == 0:
        raise ConfigError("cannot fit a classifier on zero samples")


def seeded_generator(seed: int) -> torch.Generator:
    """A private CPU generator, so fitting never touches the global RNG state."""
    return torch.Generator(device="cpu").manual_seed(int(seed))


def epoch_batches(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> list[torch.Tensor]:
    """Index tensors (on ``device``) of one epoch's minibatches, from a fresh permutation.

    The last batch may be smaller; every sample is visited once per epoch.
    """
    perm = torch.randperm(n, generator=generator).to(device)
    return list(perm.split(batch_size))


def check_positive(who: str, **values: float) -> None:
    """Raise :class:`ConfigError` for any value that is not > 0."""
    for name, value in values.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
            raise ConfigError(f"{who}: {name} must be a positive number, got {value!r}")


def check_positive_int(who: str, **values: int) -> None:
    """Raise :class:`ConfigError` for any value that is not an int >= 1."""
    for name, value in values.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{who}: {name} must be an integer >= 1, got {value!r}")
