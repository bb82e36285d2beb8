from __future__ import annotations

import numpy as np
import pytest

from unseen.data.preprocess import (
    L2Normalize,
    MinMaxScaler,
    make_feature_transform,
    transform_semantics,
)
from unseen.errors import ConfigError


def test_minmax_uses_training_statistics_and_handles_constant_dims():
    train = np.array([[0.0, 5.0, 2.0], [10.0, 5.0, 4.0]], dtype=np.float32)
    t = MinMaxScaler().fit(train)
    np.testing.assert_allclose(t.transform(train), [[0, 0, 0], [1, 0, 1]])
    # Test values beyond the training range are not clipped (what f-CLSWGAN/IZF do).
    np.testing.assert_allclose(t.transform(np.array([[20.0, 6.0, 1.0]])), [[2.0, 1.0, -0.5]])


def test_l2_feature_and_semantic_normalisation():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(L2Normalize().transform(x), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(transform_semantics(x, "l2"), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(transform_semantics(x, "none"), x)
    assert make_feature_transform("none").transform(x) is x


def test_unknown_transforms_are_config_errors():
    with pytest.raises(ConfigError, match="zscore"):
        make_feature_transform("zscore")
    with pytest.raises(ConfigError, match="pca"):
        transform_semantics(np.ones((2, 2)), "pca")
