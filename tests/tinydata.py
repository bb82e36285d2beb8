"""A tiny, fully controlled ZSL problem for protocol, method and runner tests."""

from __future__ import annotations

import numpy as np

from unseen.data.dataset import ZSLDataset


def tiny_dataset(
    n_classes: int = 8,
    n_unseen: int = 2,
    n_per_class: int = 20,
    feature_dim: int = 6,
    semantic_dim: int = 4,
    seed: int = 0,
    tag_index: bool = False,
) -> ZSLDataset:
    """Features = linear map of the class semantics + noise.

    With ``tag_index`` the last feature column holds the image index, so tests can check
    which images reached which part of the protocol.
    """
    rng = np.random.default_rng(seed)
    sem = rng.random((n_classes, semantic_dim)).astype(np.float32)
    w = rng.normal(size=(semantic_dim, feature_dim)).astype(np.float32)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    feats = sem[labels] @ w + 0.1 * rng.normal(size=(len(labels), feature_dim))
    feats = feats.astype(np.float32)
    if tag_index:
        feats[:, -1] = np.arange(len(labels))
    unseen = np.arange(n_classes - n_unseen, n_classes)
    seen_img = np.nonzero(~np.isin(labels, unseen))[0]
    test_seen = seen_img[::4]
    trainval = np.setdiff1d(seen_img, test_seen)
    test_unseen = np.nonzero(np.isin(labels, unseen))[0]
    return ZSLDataset(
        name="tiny",
        features=feats,
        labels=labels.astype(np.int64),
        semantics=sem,
        class_names=[f"c{i}" for i in range(n_classes)],
        trainval=trainval,
        test_seen=test_seen,
        test_unseen=test_unseen,
        val_classes=np.array([0, 1]),
        synthetic=True,
        source="synthetic: tests/tinydata.py",
    )
