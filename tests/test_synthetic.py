from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from unseen.data import (
    ZSLDataset,
    demo_dataset,
    load_xlsa17,
    synthetic_benchmark,
    synthetic_like,
    toy_dataset,
)
from unseen.errors import ConfigError, DataError

Factory = Callable[..., Path]


def assert_equal(a: ZSLDataset, b: ZSLDataset) -> None:
    for key in ("features", "labels", "semantics", "trainval", "test_seen", "test_unseen"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)


def prototype_accuracy(ds: ZSLDataset) -> float:
    """Per-class accuracy on unseen classes of prototypes ridge-regressed from semantics."""
    x, y, s = ds.features, ds.labels, ds.semantics.astype(np.float64)
    seen, unseen = ds.seen_classes, ds.unseen_classes
    means = np.stack([x[ds.trainval][y[ds.trainval] == c].mean(0) for c in seen])
    a = s[seen]
    w = np.linalg.solve(a.T @ a + 0.1 * np.eye(a.shape[1]), a.T @ means)
    protos = s[unseen] @ w
    xu, yu = x[ds.test_unseen], y[ds.test_unseen]
    pred = unseen[((xu[:, None] - protos[None]) ** 2).sum(-1).argmin(1)]
    return float(np.mean([np.mean(pred[yu == c] == c) for c in unseen]))


# ---------------------------------------------------------------------------- toy


def test_toy() -> None:
    ds = toy_dataset(n_per_class=30, seed=3)
    assert ds.synthetic and ds.source.startswith("synthetic:")
    assert ds.features.shape == (3 * 30 + 3 * 15 + 30, 4) and ds.features.dtype == np.float32
    assert (ds.trainval.size, ds.test_seen.size, ds.test_unseen.size) == (90, 45, 30)
    np.testing.assert_array_equal(ds.semantics, [[0, 1], [0, 0], [1, 0], [1, 1]])
    assert ds.class_names == ["seen_(0,1)", "seen_(0,0)", "seen_(1,0)", "unseen_(1,1)"]
    np.testing.assert_array_equal(ds.seen_classes, [0, 1, 2])
    np.testing.assert_array_equal(ds.unseen_classes, [3])
    assert ds.val_classes is None
    assert np.all(ds.features[:, 2:] == 0)
    for c in range(4):  # v = 2c - 1 + N(0, I/9)
        x = ds.features[ds.labels == c, :2]
        np.testing.assert_allclose(x.mean(0), 2 * ds.semantics[c] - 1, atol=0.25)
        np.testing.assert_allclose(x.std(0), 1 / 3, atol=0.12)
    assert toy_dataset(n_per_class=30, padding=False).feature_dim == 2
    assert_equal(toy_dataset(n_per_class=30, seed=3), ds)


# ---------------------------------------------------------------------------- benchmark


def small(seed: int = 0, **kw: object) -> ZSLDataset:
    sem = np.random.default_rng(9).random((7, 5))
    args: dict[str, object] = {"n_trainval": 103, "n_test_seen": 21, "n_test_unseen": 17}
    args.update(kw)
    return synthetic_benchmark(sem, [0, 1, 2, 4, 6], [3, 5], seed=seed, feature_dim=12, **args)


def test_benchmark_sizes_and_spread() -> None:
    ds = small()
    assert (ds.trainval.size, ds.test_seen.size, ds.test_unseen.size) == (103, 21, 17)
    assert ds.features.shape == (141, 12) and ds.features.dtype == np.float32
    assert ds.features.min() >= 0
    np.testing.assert_array_equal(ds.seen_classes, [0, 1, 2, 4, 6])
    np.testing.assert_array_equal(ds.unseen_classes, [3, 5])
    counts = np.bincount(ds.labels[ds.trainval], minlength=7)[[0, 1, 2, 4, 6]]
    assert counts.max() - counts.min() <= 1
    assert ds.synthetic and ds.source.startswith("synthetic:")
    assert ds.class_names[0] == "class_001"


def test_benchmark_deterministic() -> None:
    assert_equal(small(seed=4), small(seed=4))
    assert not np.array_equal(small(seed=4).features, small(seed=5).features)


def test_benchmark_bad_args() -> None:
    with pytest.raises(ConfigError, match="n_trainval >= 5"):
        small(n_trainval=3)
    with pytest.raises(ConfigError, match="both seen and unseen"):
        synthetic_benchmark(np.eye(3), [0, 1], [1, 2], n_trainval=4, n_test_seen=2, n_test_unseen=2)
    with pytest.raises(DataError, match="semantics must be a finite"):
        synthetic_benchmark(np.ones(3), [0], [1], n_trainval=4, n_test_seen=2, n_test_unseen=2)


def test_benchmark_at_awa2_split_sizes() -> None:
    # Real AWA2 split sizes; a small feature dim keeps the test fast (speed is measured by
    # benchmarks, never asserted in tests).
    sem = np.random.default_rng(0).random((50, 85))
    ds = synthetic_benchmark(
        sem,
        np.arange(40),
        np.arange(40, 50),
        n_trainval=23527,
        n_test_seen=5882,
        n_test_unseen=7913,
        feature_dim=16,
    )
    assert ds.features.shape == (37322, 16)
    assert (len(ds.trainval), len(ds.test_seen), len(ds.test_unseen)) == (23527, 5882, 7913)


# ---------------------------------------------------------------------------- demo


def test_demo_is_learnable() -> None:
    ds = demo_dataset()
    assert ds.synthetic and ds.name == "demo"
    assert (ds.n_classes, ds.semantic_dim, ds.feature_dim) == (30, 32, 64)
    assert (ds.seen_classes.size, ds.unseen_classes.size) == (24, 6)
    assert ds.val_classes.size == 5 and set(ds.val_classes) <= set(ds.seen_classes)
    assert ds.trainval.size == 24 * 60
    assert np.all(ds.semantics >= 0)
    np.testing.assert_allclose(np.linalg.norm(ds.semantics, axis=1), 1, rtol=1e-5)
    # A linear map from semantics to class means, fitted on seen classes, beats chance (1/6).
    assert prototype_accuracy(ds) > 0.5
    assert_equal(demo_dataset(), ds)


# ---------------------------------------------------------------------------- like a real one


def test_synthetic_like_tiny(tiny_xlsa17: Factory) -> None:
    root = tiny_xlsa17()
    real = load_xlsa17(root, "TINY")
    ds = synthetic_like(root, "TINY", feature_dim=6, scale=2.0, seed=1)
    assert ds.name == "TINY-synthetic" and ds.synthetic and ds.source.startswith("synthetic:")
    np.testing.assert_array_equal(ds.semantics, real.semantics)
    assert ds.class_names == real.class_names
    assert (ds.trainval.size, ds.test_seen.size, ds.test_unseen.size) == (24, 16, 20)
    np.testing.assert_array_equal(ds.seen_classes, real.seen_classes)
    np.testing.assert_array_equal(ds.unseen_classes, real.unseen_classes)
    np.testing.assert_array_equal(ds.val_classes, real.val_classes)
    assert_equal(ds, synthetic_like(root, "TINY", feature_dim=6, scale=2.0, seed=1))


def test_synthetic_like_needs_class_split(tiny_xlsa17: Factory) -> None:
    with pytest.raises(DataError, match="cannot tell seen from unseen classes"):
        synthetic_like(tiny_xlsa17(features_file=None), "TINY", feature_dim=4)


@pytest.mark.parametrize(
    ("name", "seen", "unseen", "val"),
    [("AWA2", 40, 10, 13), ("APY", 20, 12, 5), ("FLO", 82, 20, 20)],
)
def test_synthetic_like_real(
    shared_data: Path, name: str, seen: int, unseen: int, val: int
) -> None:
    ds = synthetic_like(shared_data, name, feature_dim=8, scale=0.05)
    assert ds.name == f"{name}-synthetic" and ds.synthetic
    assert (ds.seen_classes.size, ds.unseen_classes.size) == (seen, unseen)
    assert ds.val_classes.size == val
    assert not np.intersect1d(ds.val_classes, ds.unseen_classes).size
    report_sizes = {
        "AWA2": (23527, 5882, 7913),
        "APY": (5932, 1483, 7924),
        "FLO": (5631, 1403, 1155),
    }
    expected = [max(round(n * 0.05), k) for n, k in zip(report_sizes[name], (seen, seen, unseen))]
    assert [ds.trainval.size, ds.test_seen.size, ds.test_unseen.size] == expected
