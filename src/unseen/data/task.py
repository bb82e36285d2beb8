"""The protocol's split types: what a method may see, and what only the evaluation sees.

A :class:`ZSLTask` cuts a :class:`~unseen.data.dataset.ZSLDataset` into

* ``task.train`` -- a :class:`SeenTrainData`: seen-class training features and labels plus the
  semantic vectors of the classes (inductive ZSL may use unseen class *semantics*). This is
  the only thing ``method.fit`` receives;
* a test part (seen-test and unseen-test images) held privately, reachable only through
  :meth:`ZSLTask.evaluate`, which takes a fitted classifier and returns metrics.

:meth:`ZSLTask.validation` builds the validation problem from the training part alone: the
pseudo-unseen classes are a subset of the seen classes (xlsa17's train/val class split), and
part of the pseudo-seen training images is held out as validation-seen. Hyper-parameters,
epochs, synthetic counts and the calibration gamma are chosen there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from unseen.data.dataset import ZSLDataset
from unseen.data.preprocess import FeatureTransform, make_feature_transform, transform_semantics
from unseen.errors import ConfigError, DataError
from unseen.eval.metrics import (
    calibrated_predict,
    confusion_matrix,
    harmonic_mean,
    per_class_accuracies,
    per_class_accuracy,
    seen_unseen_curve,
)
from unseen.eval.results import EvalResult

__all__ = ["Scorer", "SeenTrainData", "ZSLTask"]


class Scorer(Protocol):
    """Anything with ``classes_`` (column order) and ``predict_scores(X) -> (N, K)``."""

    classes_: torch.Tensor

    def predict_scores(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True, eq=False)
class SeenTrainData:
    """Everything a method may learn from.

    Attributes:
        features: ``(N, d)`` preprocessed seen training features.
        labels: ``(N,)`` global class index of each row.
        semantics: ``(C, d_a)`` semantic vectors of *all* classes of the dataset.
        seen_classes: the task's seen classes (global indices).
        unseen_classes: the task's unseen classes; only their semantics are known.
        name: the task's name (dataset and split).
        synthetic: whether the features are synthetic.
        unlabeled: unlabeled test features, present only for a task built with
            ``transductive=True`` (never labels).
    """

    features: torch.Tensor
    labels: torch.Tensor
    semantics: torch.Tensor
    seen_classes: torch.Tensor
    unseen_classes: torch.Tensor
    name: str = ""
    synthetic: bool = False
    unlabeled: torch.Tensor | None = None

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def semantic_dim(self) -> int:
        return int(self.semantics.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.semantics.shape[0])

    @property
    def transductive(self) -> bool:
        return self.unlabeled is not None

    def class_means(self) -> torch.Tensor:
        """``(len(seen_classes), d)`` mean feature of each seen class, in ``seen_classes`` order."""
        pos = torch.full((self.n_classes,), -1, dtype=torch.long)
        pos[self.seen_classes] = torch.arange(len(self.seen_classes))
        idx = pos[self.labels]
        sums = torch.zeros(len(self.seen_classes), self.feature_dim, dtype=self.features.dtype)
        sums.index_add_(0, idx, self.features)
        counts = torch.bincount(idx, minlength=len(self.seen_classes)).clamp_min(1)
        return sums / counts[:, None].to(sums.dtype)


class ZSLTask:
    """A seen-train part that methods see and a test part that only :meth:`evaluate` sees.

    Args:
        dataset: the loaded benchmark (must include features).
        feature_transform: ``"minmax"`` (default), ``"l2"`` or ``"none"``; fitted on the
            training features of this task only.
        semantic_transform: ``"none"`` (default) or ``"l2"``.
        transductive: expose the unlabeled test features as ``train.unlabeled`` (GMN's
            L^{S+U} variant). Off by default; results then carry ``transductive: true``.

    Example:
        >>> from unseen.data.synthetic import demo_dataset
        >>> task = ZSLTask(demo_dataset())
        >>> val = task.validation()          # choose everything here
        >>> data = task.train                # what fit() receives
    """

    def __init__(
        self,
        dataset: ZSLDataset,
        *,
        feature_transform: str = "minmax",
        semantic_transform: str = "none",
        transductive: bool = False,
    ) -> None:
        if not dataset.has_features:
            raise DataError(f"{dataset.name}: a task needs image features; none were loaded")
        self._init(
            dataset,
            train_idx=dataset.trainval,
            seen_test_idx=dataset.test_seen,
            unseen_test_idx=dataset.test_unseen,
            seen_classes=dataset.seen_classes,
            unseen_classes=dataset.unseen_classes,
            split="test",
            feature_transform=feature_transform,
            semantic_transform=semantic_transform,
            transductive=transductive,
        )

    # The constructor above builds the test task; validation tasks use the same initialiser.
    def _init(
        self,
        dataset: ZSLDataset,
        *,
        train_idx: np.ndarray,
        seen_test_idx: np.ndarray,
        unseen_test_idx: np.ndarray,
        seen_classes: np.ndarray,
        unseen_classes: np.ndarray,
        split: str,
        feature_transform: str,
        semantic_transform: str,
        transductive: bool,
        notes: list[str] | None = None,
    ) -> None:
        self.dataset_name = dataset.name
        self.split = split
        self.synthetic = dataset.synthetic
        self.feature_transform_name = feature_transform
        self.semantic_transform_name = semantic_transform
        self.notes = list(notes or [])
        self.seen_classes = torch.as_tensor(np.sort(seen_classes), dtype=torch.long)
        self.unseen_classes = torch.as_tensor(np.sort(unseen_classes), dtype=torch.long)
        self.classes = torch.sort(torch.cat([self.seen_classes, self.unseen_classes])).values
        self._dataset = dataset
        self._train_idx = np.asarray(train_idx)
        # Private by convention and by name mangling: nothing in fit() can reach these.
        self.__seen_test_idx = np.asarray(seen_test_idx)
        self.__unseen_test_idx = np.asarray(unseen_test_idx)
        self._transform: FeatureTransform = make_feature_transform(feature_transform)
        train_x = dataset.features[self._train_idx]
        self._transform.fit(train_x)
        semantics = transform_semantics(dataset.semantics, semantic_transform)
        unlabeled = None
        if transductive:
            both = np.concatenate([self.__seen_test_idx, self.__unseen_test_idx])
            # Shuffled so that row order carries no seen/unseen information.
            both = np.random.default_rng(0).permutation(both)
            unlabeled = torch.from_numpy(self._transform.transform(dataset.features[both]))
        self.transductive = transductive
        self._train = SeenTrainData(
            features=torch.from_numpy(np.ascontiguousarray(self._transform.transform(train_x))),
            labels=torch.as_tensor(dataset.labels[self._train_idx], dtype=torch.long),
            semantics=torch.from_numpy(np.ascontiguousarray(semantics)),
            seen_classes=self.seen_classes,
            unseen_classes=self.unseen_classes,
            name=self.name,
            synthetic=dataset.synthetic,
            unlabeled=unlabeled,
        )

    # ------------------------------------------------------------------ public
    @property
    def name(self) -> str:
        return f"{self.dataset_name}/{self.split}"

    @property
    def train(self) -> SeenTrainData:
        """The seen training data: the only input of ``method.fit``."""
        return self._train

    def describe(self) -> dict[str, object]:
        """Sizes of every part, for logs and result files."""
        return {
            "task": self.name,
            "synthetic_features": self.synthetic,
            "n_seen_classes": len(self.seen_classes),
            "n_unseen_classes": len(self.unseen_classes),
            "n_train": len(self._train_idx),
            "n_test_seen": len(self.__seen_test_idx),
            "n_test_unseen": len(self.__unseen_test_idx),
            "feature_transform": self.feature_transform_name,
            "semantic_transform": self.semantic_transform_name,
            "transductive": self.transductive,
            "notes": self.notes,
        }

    def validation(
        self, holdout: float = 0.2, seed: int = 0, val_class_fraction: float = 0.2
    ) -> ZSLTask:
        """The validation problem, built from this task's training part only.

        Pseudo-unseen classes are the dataset's validation classes (xlsa17 train/val class
        split) or, when the dataset has none, a seeded random ``val_class_fraction`` of the
        seen classes. ``holdout`` of each pseudo-seen class's training images become the
        validation-seen test set; all training images of the pseudo-unseen classes form the
        validation-unseen test set. No test image is used.
        """
        if self.split != "test":
            raise ConfigError("validation() is built from the test task, not from a validation")
        if not 0.0 < holdout < 1.0:
            raise ConfigError(f"validation holdout must be in (0, 1), got {holdout}")
        ds = self._dataset
        rng = np.random.default_rng(seed)
        seen = self.seen_classes.numpy()
        notes = []
        if ds.val_classes is not None and len(ds.val_classes):
            val_classes = np.intersect1d(ds.val_classes, seen)
        else:
            k = max(1, round(val_class_fraction * len(seen)))
            val_classes = np.sort(rng.choice(seen, size=k, replace=False))
            notes.append(
                f"no train/val class split in the data: {k} of {len(seen)} seen classes drawn "
                f"at random (seed {seed}) as pseudo-unseen"
            )
        if len(val_classes) == 0 or len(val_classes) >= len(seen):
            raise DataError(
                f"{ds.name}: the validation class split leaves {len(seen) - len(val_classes)} "
                "pseudo-seen classes; need at least one pseudo-seen and one pseudo-unseen class"
            )
        pseudo_seen = np.setdiff1d(seen, val_classes)
        labels = ds.labels[self._train_idx]
        train_parts, held_parts = [], []
        for c in pseudo_seen:
            idx = self._train_idx[labels == c]
            idx = idx[rng.permutation(len(idx))]
            n_held = round(holdout * len(idx)) if len(idx) > 1 else 0
            n_held = min(max(n_held, 1 if len(idx) > 1 else 0), len(idx) - 1)
            held_parts.append(idx[:n_held])
            train_parts.append(idx[n_held:])
        val = ZSLTask.__new__(ZSLTask)
        val._init(
            ds,
            train_idx=np.sort(np.concatenate(train_parts)),
            seen_test_idx=np.sort(np.concatenate(held_parts)),
            unseen_test_idx=np.sort(self._train_idx[np.isin(labels, val_classes)]),
            seen_classes=pseudo_seen,
            unseen_classes=val_classes,
            split="validation",
            feature_transform=self.feature_transform_name,
            semantic_transform=self.semantic_transform_name,
            transductive=self.transductive,
            notes=notes,
        )
        return val

    def evaluate(
        self,
        classifier: Scorer,
        zsl_classifier: Scorer | None = None,
        *,
        gamma: float | None = None,
        confusion: bool = False,
    ) -> EvalResult:
        """Score the test part of this task with fitted classifiers.

        Args:
            classifier: GZSL classifier; its ``classes_`` must include every class of the task
                (extra columns are dropped).
            zsl_classifier: classifier used for CZSL T1 (restricted to unseen columns);
                defaults to ``classifier``.
            gamma: calibrated-stacking value chosen on validation; adds ``*_cal`` metrics.
            confusion: also return the GZSL confusion matrix (uncalibrated).
        """
        x_seen, y_seen = self._test_part(self.__seen_test_idx)
        x_unseen, y_unseen = self._test_part(self.__unseen_test_idx)
        classes = self.classes.numpy()
        seen_np, unseen_np = self.seen_classes.numpy(), self.unseen_classes.numpy()

        s_seen = _scores(classifier, x_seen, classes, "classifier")
        s_unseen = _scores(classifier, x_unseen, classes, "classifier")
        zsl = zsl_classifier or classifier
        z_unseen = _scores(zsl, x_unseen, unseen_np, "zsl_classifier")

        pred_t1 = unseen_np[np.argmax(z_unseen, axis=1)]
        t1 = per_class_accuracy(y_unseen, pred_t1, unseen_np)
        pred_s = calibrated_predict(s_seen, classes, seen_np, 0.0)
        pred_u = calibrated_predict(s_unseen, classes, seen_np, 0.0)
        s = per_class_accuracy(y_seen, pred_s, seen_np)
        u = per_class_accuracy(y_unseen, pred_u, unseen_np)
        curve = seen_unseen_curve(s_seen, y_seen, s_unseen, y_unseen, classes, seen_np)
        result = EvalResult(
            t1=100 * t1,
            s=100 * s,
            u=100 * u,
            h=100 * harmonic_mean(s, u),
            ausuc=100 * curve.auc(),
            split=self.split,
            n_seen_images=len(y_seen),
            n_unseen_images=len(y_unseen),
        )
        if self.split == "validation":
            g, _, _, h_best = curve.best()
            result.best_gamma = g
            result.extra["h_at_best_gamma"] = 100 * h_best
        preds = {"t1": (y_unseen, pred_t1), "s": (y_seen, pred_s), "u": (y_unseen, pred_u)}
        if gamma is not None:
            pred_sc = calibrated_predict(s_seen, classes, seen_np, gamma)
            pred_uc = calibrated_predict(s_unseen, classes, seen_np, gamma)
            sc = per_class_accuracy(y_seen, pred_sc)
            uc = per_class_accuracy(y_unseen, pred_uc)
            result.gamma = float(gamma)
            result.s_cal, result.u_cal = 100 * sc, 100 * uc
            result.h_cal = 100 * harmonic_mean(sc, uc)
            preds.update(s_cal=(y_seen, pred_sc), u_cal=(y_unseen, pred_uc))
        if self.split == "test":  # per class, for paired comparisons (`unseen compare`)
            result.extra["per_class"] = self._per_class(preds)
        if confusion:
            y_all = np.concatenate([y_seen, y_unseen])
            result.confusion = confusion_matrix(
                y_all, np.concatenate([pred_s, pred_u]), classes
            ).tolist()
            result.confusion_classes = classes.tolist()
        if self.transductive:
            result.extra["transductive"] = True
        if self.synthetic:
            result.extra["synthetic_features"] = True
        return result

    def health(self, method, *, n_per_class: int = 200, seed: int = 0):
        """Generator health of a method fitted on this VALIDATION problem's training part
        (:func:`unseen.eval.health.generator_health`): its synthetic features against the
        held-out pseudo-seen and the pseudo-unseen real features. Refused on the test task:
        nothing is chosen or diagnosed on test data.
        """
        from unseen.eval.health import generator_health

        if self.split != "validation":
            raise ConfigError(
                "generator health is measured on the validation problem only "
                "(task.validation()), never on test data"
            )
        x_s, y_s = self._test_part(self.__seen_test_idx)
        x_u, y_u = self._test_part(self.__unseen_test_idx)
        return generator_health(
            method,
            real_unseen=(x_u, torch.as_tensor(y_u, dtype=torch.long)),
            unseen_classes=self.unseen_classes,
            real_seen=(x_s, torch.as_tensor(y_s, dtype=torch.long)),
            seen_classes=self.seen_classes,
            semantics=self._train.semantics,
            train=self._train,
            n_per_class=n_per_class,
            seed=seed,
        )

    # ------------------------------------------------------------------ private
    def _per_class(self, preds: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
        """Accuracy (%) of every class, per metric: ``{"names": {id: name}, "t1": {id: acc},
        "s": ..., "u": ..., "s_cal": ..., "u_cal": ...}`` (ids as strings, JSON keys)."""
        names = self._dataset.class_names
        out: dict[str, Any] = {
            "names": {str(int(c)): str(names[int(c)]) for c in self.classes.numpy()}
        }
        for key, (y, pred) in preds.items():
            classes = self.unseen_classes if key in ("t1", "u", "u_cal") else self.seen_classes
            accs = per_class_accuracies(y, pred, classes.numpy())
            out[key] = {str(c): round(100 * a, 4) for c, a in accs.items()}
        return out

    def _test_part(self, idx: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        x = self._transform.transform(self._dataset.features[idx])
        return torch.from_numpy(np.ascontiguousarray(x)), self._dataset.labels[idx]


def _scores(clf: Scorer, x: torch.Tensor, classes: np.ndarray, what: str) -> np.ndarray:
    """Scores restricted to ``classes`` (in that order)."""
    cols = clf.classes_.cpu().numpy()
    pos = {int(c): i for i, c in enumerate(cols)}
    missing = [int(c) for c in classes if int(c) not in pos]
    if missing:
        raise ValueError(f"{what} has no score column for classes {missing[:5]}")
    scores = clf.predict_scores(x).detach().cpu().numpy()
    return scores[:, [pos[int(c)] for c in classes]]
