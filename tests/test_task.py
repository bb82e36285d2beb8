"""Split hygiene of the protocol: what fit() sees, what only evaluate() sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinydata import tiny_dataset
from unseen.data.task import SeenTrainData, ZSLTask
from unseen.errors import ConfigError, DataError


class Oracle:
    """A 'classifier' that reads the true class from the tagged index column."""

    def __init__(self, labels: np.ndarray, classes: torch.Tensor, index_of) -> None:
        self.labels, self.classes_, self.index_of = labels, classes, index_of

    def predict_scores(self, x: torch.Tensor) -> torch.Tensor:
        idx = self.index_of(x)
        y = torch.as_tensor(self.labels[idx])
        return (y[:, None] == self.classes_[None, :]).float()


def _task(**kw) -> tuple[ZSLTask, object]:
    ds = tiny_dataset(tag_index=True, **kw)
    return ZSLTask(ds, feature_transform="none"), ds


def _indices(x: torch.Tensor) -> set[int]:
    return set(x[:, -1].round().long().tolist())


def test_train_holds_only_trainval_images():
    task, ds = _task()
    data = task.train
    assert isinstance(data, SeenTrainData)
    assert _indices(data.features) == set(ds.trainval.tolist())
    assert not _indices(data.features) & set(ds.test_seen.tolist())
    assert set(data.labels.tolist()) == set(ds.seen_classes.tolist())
    assert data.unlabeled is None and not data.transductive


def test_seen_train_data_exposes_no_test_attribute():
    task, _ = _task()
    public = {k for k in vars(task.train)}
    assert public == {
        "features", "labels", "semantics", "seen_classes", "unseen_classes", "name",
        "synthetic", "unlabeled",
    }  # fmt: skip
    assert not any("test" in k for k in vars(task) if not k.startswith("_ZSLTask__"))


def test_validation_uses_trainval_images_only_and_disjoint_classes():
    task, ds = _task()
    val = task.validation(holdout=0.25, seed=3)
    assert set(val.unseen_classes.tolist()) == {0, 1}
    assert set(val.seen_classes.tolist()) == set(ds.seen_classes.tolist()) - {0, 1}
    train_idx = _indices(val.train.features)
    assert train_idx < set(ds.trainval.tolist())
    assert not set(val.train.labels.tolist()) & {0, 1}
    # The held-out and pseudo-unseen images are trainval images as well.
    held = set(val._ZSLTask__seen_test_idx.tolist())
    pseudo_unseen = set(val._ZSLTask__unseen_test_idx.tolist())
    assert held | pseudo_unseen <= set(ds.trainval.tolist())
    assert not held & train_idx and not pseudo_unseen & train_idx
    # About 25% of each pseudo-seen class is held out.
    assert 0.15 < len(held) / (len(held) + len(train_idx)) < 0.35


def test_validation_without_class_split_draws_seeded_classes():
    from dataclasses import replace

    ds = replace(tiny_dataset(), val_classes=None)
    a = ZSLTask(ds).validation(seed=1)
    b = ZSLTask(ds).validation(seed=1)
    assert torch.equal(a.unseen_classes, b.unseen_classes)
    assert a.notes and "random" in a.notes[0]
    assert not set(a.unseen_classes.tolist()) & set(ds.unseen_classes.tolist())


def test_minmax_is_fitted_on_training_features_only():
    ds = tiny_dataset()
    task = ZSLTask(ds, feature_transform="minmax")
    x = task.train.features
    assert torch.allclose(x.min(0).values, torch.zeros(x.shape[1]), atol=1e-6)
    assert torch.allclose(x.max(0).values, torch.ones(x.shape[1]), atol=1e-6)
    raw = ds.features[ds.trainval]
    np.testing.assert_allclose(task._transform.min_, raw.min(0), rtol=1e-6)


def test_evaluate_oracle_is_perfect_and_uniform_is_not():
    task, ds = _task()
    oracle = Oracle(ds.labels, task.classes, lambda x: x[:, -1].round().long())
    r = task.evaluate(oracle, gamma=0.0, confusion=True)
    assert (r.t1, r.s, r.u, r.h) == (100.0, 100.0, 100.0, 100.0)
    assert r.h_cal == 100.0 and r.ausuc == pytest.approx(100.0)
    cm = np.array(r.confusion)
    assert np.all(cm == np.diag(np.diag(cm)))
    assert cm.sum() == len(ds.test_seen) + len(ds.test_unseen)

    class AlwaysFirst:
        classes_ = task.classes

        def predict_scores(self, x):
            s = torch.zeros(len(x), len(self.classes_))
            s[:, 0] = 1
            return s

    r2 = task.evaluate(AlwaysFirst())
    assert r2.u == 0.0 and r2.h == 0.0
    assert r2.best_gamma is None  # only the validation split reports a best gamma


def test_validation_reports_best_gamma():
    task, ds = _task()
    val = task.validation()
    oracle = Oracle(ds.labels, task.classes, lambda x: x[:, -1].round().long())
    r = val.evaluate(oracle)
    assert r.split == "validation" and r.best_gamma is not None
    assert r.extra["h_at_best_gamma"] == pytest.approx(100.0)


def test_evaluate_refuses_classifier_missing_classes():
    task, _ = _task()

    class Partial:
        classes_ = task.seen_classes

        def predict_scores(self, x):
            return torch.zeros(len(x), len(self.classes_))

    with pytest.raises(ValueError, match="no score column"):
        task.evaluate(Partial())


def test_transductive_is_explicit():
    ds = tiny_dataset(tag_index=True)
    assert ZSLTask(ds).train.unlabeled is None
    t = ZSLTask(ds, feature_transform="none", transductive=True)
    got = _indices(t.train.unlabeled)
    assert got == set(ds.test_seen.tolist()) | set(ds.test_unseen.tolist())
    assert t.describe()["transductive"] is True


def test_class_means_match_numpy():
    task, ds = _task()
    means = task.train.class_means()
    for i, c in enumerate(task.seen_classes.tolist()):
        idx = ds.trainval[ds.labels[ds.trainval] == c]
        np.testing.assert_allclose(means[i].numpy(), ds.features[idx].mean(0), rtol=1e-5)


def test_bad_task_arguments():
    from dataclasses import replace

    ds = tiny_dataset()
    with pytest.raises(ConfigError, match="feature transform"):
        ZSLTask(ds, feature_transform="zscore")
    with pytest.raises(ConfigError, match="holdout"):
        ZSLTask(ds).validation(holdout=1.5)
    with pytest.raises(DataError, match="features"):
        ZSLTask(replace(ds, features=None, labels=None))
