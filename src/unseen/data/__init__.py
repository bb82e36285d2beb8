"""Data: benchmark loaders, the native format, synthetic benchmarks and preprocessing."""

from __future__ import annotations

from unseen.data.dataset import ZSLDataset
from unseen.data.matfile import mat_variables, read_mat
from unseen.data.native import FORMAT_VERSION, convert_xlsa17, load_native, save_native
from unseen.data.preprocess import (
    FeatureTransform,
    Identity,
    L2Normalize,
    MinMaxScaler,
    make_feature_transform,
    transform_semantics,
)
from unseen.data.synthetic import demo_dataset, synthetic_benchmark, synthetic_like, toy_dataset
from unseen.data.xlsa17 import (
    DATASETS,
    SEMANTICS,
    DatasetReport,
    discover,
    inspect_xlsa17,
    load_xlsa17,
)

__all__ = [
    "DATASETS",
    "FORMAT_VERSION",
    "SEMANTICS",
    "DatasetReport",
    "FeatureTransform",
    "Identity",
    "L2Normalize",
    "MinMaxScaler",
    "ZSLDataset",
    "convert_xlsa17",
    "demo_dataset",
    "discover",
    "inspect_xlsa17",
    "load_native",
    "load_xlsa17",
    "make_feature_transform",
    "mat_variables",
    "read_mat",
    "save_native",
    "synthetic_benchmark",
    "synthetic_like",
    "toy_dataset",
    "transform_semantics",
]
