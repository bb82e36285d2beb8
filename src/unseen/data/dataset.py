"""The in-memory benchmark: every image feature, label, class semantic vector and split.

A :class:`ZSLDataset` is what the loaders return. It is *not* handed to methods: the protocol
(:mod:`unseen.data.task`) cuts it into a seen-training part that methods may see and a test
part that only the evaluation can reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unseen.errors import DataError

__all__ = ["ZSLDataset"]

#: why each split must hold images (the protocol's metrics are undefined without them)
_NEEDED = {
    "trainval": "methods are trained on the seen classes' trainval images",
    "test_seen": "GZSL S and H are measured on seen-class test images (hold out some "
    "images of every seen class, e.g. 20%)",
    "test_unseen": "T1 and GZSL U are measured on unseen-class test images",
}


@dataclass(frozen=True, eq=False)
class ZSLDataset:
    """A zero-shot benchmark with the xlsa17 "proposed split".

    All indices are 0-based (the loaders convert MATLAB's 1-based ones).

    Attributes:
        name: Dataset name, e.g. ``"FLO"``.
        features: ``(N, d)`` float32 image features (``None`` when only semantics were loaded).
        labels: ``(N,)`` int64 class index of each image, in ``[0, C)``.
        semantics: ``(C, d_a)`` float32 class semantic vectors (attributes or text embeddings).
        class_names: ``C`` class names.
        trainval: indices of the seen-class training images.
        test_seen: indices of the seen-class test images.
        test_unseen: indices of the unseen-class test images.
        val_classes: classes (subset of the seen ones) used as pseudo-unseen classes when
            building the validation problem; ``None`` lets the protocol pick them.
        quirks: human-readable notes about oddities found while loading.
        synthetic: ``True`` when the features are synthetic (never report them as results).
        source: where the data came from (paths or a generator description).
    """

    name: str
    features: np.ndarray | None
    labels: np.ndarray | None
    semantics: np.ndarray
    class_names: list[str]
    trainval: np.ndarray
    test_seen: np.ndarray
    test_unseen: np.ndarray
    val_classes: np.ndarray | None = None
    quirks: list[str] = field(default_factory=list)
    synthetic: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ properties
    @property
    def n_classes(self) -> int:
        return int(self.semantics.shape[0])

    @property
    def semantic_dim(self) -> int:
        return int(self.semantics.shape[1])

    @property
    def feature_dim(self) -> int | None:
        return None if self.features is None else int(self.features.shape[1])

    @property
    def has_features(self) -> bool:
        return self.features is not None

    @property
    def seen_classes(self) -> np.ndarray:
        """Sorted classes of the trainval images."""
        self._need_labels("seen_classes")
        return np.unique(self.labels[self.trainval])

    @property
    def unseen_classes(self) -> np.ndarray:
        """Sorted classes of the test-unseen images."""
        self._need_labels("unseen_classes")
        return np.unique(self.labels[self.test_unseen])

    def _need_labels(self, what: str) -> None:
        if self.labels is None:
            raise DataError(
                f"{self.name}: '{what}' needs per-image labels, but this dataset was loaded "
                "without a features file (labels live in the features file, e.g. res101.mat)."
            )

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`DataError` naming the field at fault when the data are inconsistent."""
        name = self.name
        sem = self.semantics
        if sem.ndim != 2:
            raise DataError(
                f"{name}: class semantics must be 2-D (classes x dims), got {sem.shape}"
            )
        if not np.all(np.isfinite(sem)):
            raise DataError(f"{name}: class semantics contain NaN or inf values")
        if len(self.class_names) != sem.shape[0]:
            raise DataError(
                f"{name}: {len(self.class_names)} class names for {sem.shape[0]} semantic vectors"
            )
        split_names = ("trainval", "test_seen", "test_unseen")
        if self.features is None:
            return
        feats, labels = self.features, self.labels
        if feats.ndim != 2:
            raise DataError(
                f"{name}: features must be 2-D (images x dims), got shape {feats.shape}"
            )
        if labels is None or labels.shape != (feats.shape[0],):
            got = None if labels is None else labels.shape
            raise DataError(
                f"{name}: {feats.shape[0]} feature rows but labels of shape {got}; "
                "expected one label per image"
            )
        n = feats.shape[0]
        if feats.shape[1] == 0:
            raise DataError(f"{name}: features have 0 dimensions (shape {feats.shape})")
        if labels.size and (labels.min() < 0 or labels.max() >= sem.shape[0]):
            raise DataError(
                f"{name}: labels range over [{labels.min()}, {labels.max()}] (0-based) but there "
                f"are only {sem.shape[0]} classes in the semantic matrix"
            )
        for split in split_names:
            idx = getattr(self, split)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise DataError(
                    f"{name}: split '{split}' indexes image {idx.max() + 1} (1-based) but the "
                    f"features file holds only {n} images"
                )
        for split in split_names:
            idx = getattr(self, split)
            if idx.size == 0:
                raise DataError(f"{name}: split '{split}' is empty; {_NEEDED[split]}")
            uniq, counts = np.unique(idx, return_counts=True)
            if (counts > 1).any():
                twice = uniq[counts > 1]
                raise DataError(
                    f"{name}: split '{split}' lists {twice.size} image(s) more than once "
                    f"(0-based: {twice[:5].tolist()}); every image must appear once"
                )
        for i, a in enumerate(split_names):
            for b in split_names[i + 1 :]:
                common = np.intersect1d(getattr(self, a), getattr(self, b))
                if common.size:
                    raise DataError(
                        f"{name}: splits '{a}' and '{b}' share {common.size} image(s) "
                        f"(0-based: {common[:5].tolist()}); a test image in training leaks "
                        "the answer, so the splits must be disjoint"
                    )
        bad = ~np.isfinite(feats[np.concatenate([self.trainval, self.test_seen, self.test_unseen])])
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            raise DataError(
                f"{name}: features contain NaN or inf values in {rows.size} images "
                "(first few split positions: "
                f"{rows[:5].tolist()}); clean or drop them before training"
            )
        train = feats[self.trainval]
        if np.all(train.max(axis=0) == train.min(axis=0)):
            raise DataError(
                f"{name}: every feature dimension is constant over the {len(self.trainval)} "
                "training images (all images look alike); the features file is broken or "
                "holds a placeholder"
            )
        seen = set(np.unique(labels[self.trainval]).tolist())
        unseen = set(np.unique(labels[self.test_unseen]).tolist())
        if seen & unseen:
            raise DataError(
                f"{name}: classes {sorted(seen & unseen)[:5]} appear both in trainval and "
                "test_unseen; seen and unseen classes must be disjoint"
            )
        if not set(np.unique(labels[self.test_seen]).tolist()) <= seen:
            raise DataError(f"{name}: test_seen holds classes that have no trainval images")
        if self.val_classes is not None and not set(self.val_classes.tolist()) <= seen:
            raise DataError(f"{name}: validation classes must be seen (trainval) classes")
