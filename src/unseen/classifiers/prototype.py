"""Nearest-prototype classifier: each class is scored by its distance to one prototype.

References:
    Mensink et al., "Distance-Based Image Classification: Generalizing to New Classes at
    Near-Zero Cost", TPAMI 2013 (nearest class mean). IZF's NBC (Shen et al., ECCV 2020) uses
    prototypes computed by the flow, see :meth:`NearestPrototypeClassifier.from_prototypes`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unseen.classifiers.base import (
    BaseClassifier,
    check_class_semantics,
    check_classes,
    check_features,
    check_samples,
    encode_labels,
)
from unseen.errors import ConfigError

__all__ = ["METRICS", "NearestPrototypeClassifier"]

METRICS = ("euclidean", "cosine")


class NearestPrototypeClassifier(BaseClassifier):
    r"""Score class :math:`k` by the closeness of :math:`x` to its prototype :math:`p_k`.

    ``fit`` takes the per-class means of the features (nearest class mean);
    :meth:`from_prototypes` takes prototypes computed elsewhere.

    Scores are NOT probabilities: ``metric="euclidean"`` gives the negative distance
    :math:`-\lVert x - p_k \rVert_2`, ``metric="cosine"`` the cosine similarity
    :math:`\cos(x, p_k)`. Either way, larger is closer.

    Args:
        metric: ``"euclidean"`` or ``"cosine"``.
        device: where scoring runs; inputs may live anywhere.

    Example:
        >>> protos = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
        >>> clf = NearestPrototypeClassifier.from_prototypes(protos, torch.tensor([4, 9]))
        >>> clf.predict(torch.tensor([[1.0, 0.0], [8.0, 1.0]])).tolist()
        [4, 9]
        >>> clf.predict_scores(torch.tensor([[3.0, 4.0]]))
        tensor([[-5.0000, -8.0623]])
    """

    def __init__(self, metric: str = "euclidean", device: str | torch.device = "cpu") -> None:
        self.metric = metric
        self.device = device

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.metric not in METRICS:
            raise ConfigError(
                f"NearestPrototypeClassifier: unknown metric {self.metric!r}; "
                f"valid: {list(METRICS)}"
            )

    def fit(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        classes: torch.Tensor,
        class_semantics: torch.Tensor | None = None,
    ) -> NearestPrototypeClassifier:
        """Use the mean of the samples of each class as its prototype.

        Args:
            X: ``(N, d)`` features.
            y: ``(N,)`` global class ids, each one in ``classes``.
            classes: ``(K,)`` global class ids; the column order of the scores. Every class
                needs at least one sample.
            class_semantics: ignored (accepted so every classifier shares one signature).

        Returns:
            ``self``.
        """
        self._validate_params()
        X = check_features(X, "X")
        check_samples(X, y)
        classes = check_classes(classes)
        target = encode_labels(y, classes)
        check_class_semantics(class_semantics, len(classes), required=False, who="prototype")

        counts = torch.bincount(target, minlength=len(classes))
        if (counts == 0).any():
            empty = classes[counts == 0]
            raise ConfigError(
                f"NearestPrototypeClassifier needs samples of every class; {empty.numel()} "
                f"class(es) have none (e.g. {empty[:5].tolist()}). Synthesize features for them "
                "or use from_prototypes"
            )
        device = torch.device(self.device)
        X = X.to(device=device, dtype=torch.float32)
        target = target.to(device)
        sums = torch.zeros(len(classes), X.shape[1], device=device).index_add_(0, target, X)
        self._set_state(sums / counts.to(device).unsqueeze(1), classes)
        return self

    @classmethod
    def from_prototypes(
        cls,
        prototypes: torch.Tensor,
        classes: torch.Tensor,
        metric: str = "euclidean",
        device: str | torch.device = "cpu",
    ) -> NearestPrototypeClassifier:
        """A fitted classifier with the given prototypes (e.g. IZF's :math:`f^{-1}([c, 0])`).

        Args:
            prototypes: ``(K, d)`` one prototype per class, rows aligned with ``classes``.
            classes: ``(K,)`` global class ids.
            metric: ``"euclidean"`` or ``"cosine"``.
            device: where scoring runs.
        """
        clf = cls(metric=metric, device=device)
        clf._validate_params()
        prototypes = check_features(prototypes, "prototypes")
        classes = check_classes(classes)
        if prototypes.shape[0] != len(classes):
            raise ConfigError(
                f"prototypes has {prototypes.shape[0]} rows but classes has {len(classes)} "
                "entries; rows must be aligned with `classes`"
            )
        protos = prototypes.detach().to(device=torch.device(device), dtype=torch.float32)
        clf._set_state(protos.clone(), classes)
        return clf

    def _set_state(self, prototypes: torch.Tensor, classes: torch.Tensor) -> None:
        self.prototypes_ = prototypes
        self.classes_ = classes
        self.n_features_in_ = int(prototypes.shape[1])

    def _scores(self, X: torch.Tensor) -> torch.Tensor:
        if self.metric == "cosine":
            return F.normalize(X, dim=1) @ F.normalize(self.prototypes_, dim=1).T
        # The direct (not matmul) form: no cancellation error, and the same result however
        # many rows a chunk holds.
        return -torch.cdist(X, self.prototypes_, compute_mode="donot_use_mm_for_euclid_dist")
