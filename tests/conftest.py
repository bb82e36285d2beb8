"""Shared fixtures: the real xlsa17 files beside the repository, tiny synthetic ones, and the
device the method tests train on (``UNSEEN_TEST_DEVICE=cuda`` runs them on a GPU)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import scipy.io

SHARED_XLSA17 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "xlsa17"
#: environment variable naming the device of the method tests (default cpu)
TEST_DEVICE_ENV = "UNSEEN_TEST_DEVICE"

_H5_CLASSES = {
    np.dtype(np.float64): "double",
    np.dtype(np.float32): "single",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.uint16): "uint16",
    np.dtype(np.int32): "int32",
    np.dtype(np.int64): "int64",
    np.dtype(np.bool_): "logical",
}


@pytest.fixture
def shared_data() -> Path:
    """The real xlsa17 folder (``../shared/data/xlsa17``); skips the test when absent."""
    if not SHARED_XLSA17.is_dir():
        pytest.skip(
            "../shared/data/xlsa17 not found beside the repository: real-data tests need it"
        )
    return SHARED_XLSA17


@pytest.fixture(scope="session")
def device() -> str:
    """The device the method tests train on: ``cpu``, or ``$UNSEEN_TEST_DEVICE`` (``cuda``,
    ``cuda:1``). Asked for CUDA where torch sees none, the tests that use it are skipped (with
    that reason), not run on the CPU: a CUDA check must not pass without a GPU."""
    import torch

    name = os.environ.get(TEST_DEVICE_ENV, "").strip() or "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise pytest.UsageError(f"{TEST_DEVICE_ENV}={name!r} is not a torch device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"{TEST_DEVICE_ENV}={name} but torch sees no CUDA device")
    return name


@pytest.fixture
def cuda_device(device: str) -> str:
    """The test device when it is a CUDA device; skips CUDA-only tests otherwise."""
    if not device.startswith("cuda"):
        pytest.skip(f"needs a CUDA device: run with {TEST_DEVICE_ENV}=cuda on a GPU machine")
    return device


# ---------------------------------------------------------------------------- .mat writers


def write_v5(path: Path, variables: dict[str, Any]) -> None:
    """Write with scipy.io.savemat; ``list[str]`` becomes a C x 1 cell array of strings."""
    out = {}
    for key, value in variables.items():
        if isinstance(value, list):
            cell = np.empty((len(value), 1), dtype=object)
            for i, v in enumerate(value):
                cell[i, 0] = v
            value = cell
        out[key] = value
    scipy.io.savemat(str(path), out)


def _h5_char(group: Any, name: str, text: str) -> Any:
    ds = group.create_dataset(name, data=np.array([[ord(c)] for c in text], dtype=np.uint16))
    ds.attrs["MATLAB_class"] = np.bytes_("char")
    ds.attrs["MATLAB_int_decode"] = np.int32(2)
    return ds


def write_mat73(path: Path, variables: dict[str, Any]) -> None:
    """Write a MATLAB v7.3 file the way MATLAB does.

    Datasets are stored transposed (HDF5 is row-major), strings as uint16 char arrays, cell
    arrays as object references into ``#refs#``, behind a 512-byte ``MATLAB 7.3`` userblock.
    """
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for key, value in variables.items():
            if isinstance(value, str):
                _h5_char(f, key, value)
            elif isinstance(value, list):
                cell = f.create_dataset(key, (1, len(value)), dtype=h5py.ref_dtype)
                for i, text in enumerate(value):
                    cell[0, i] = _h5_char(refs, f"{key}_{i}", text).ref
                cell.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                arr = np.asarray(value)
                ds = f.create_dataset(key, data=arr.T)
                ds.attrs["MATLAB_class"] = np.bytes_(_H5_CLASSES[arr.dtype])
    header = (
        "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: "
        + time.strftime("%a %b %d %H:%M:%S %Y")
        + " HDF5 schema 1.00 ."
    ).encode()
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    with path.open("r+b") as f:
        f.write(header.ljust(512, b"\x00"))


def write_mat(path: Path, variables: dict[str, Any], fmt: str) -> None:
    (write_v5 if fmt == "v5" else write_mat73)(path, variables)


# ---------------------------------------------------------------------------- tiny dataset


def tiny_arrays() -> dict[str, dict[str, Any]]:
    """A 6-class xlsa17-layout dataset: classes 0-3 seen (0,1 train / 2,3 val), 4-5 unseen.

    30 images (5 per class, in shuffled order), 8-d features, 5-d attributes. Like the real
    files, train_loc/val_loc cover trainval AND test_seen images.
    """
    rng = np.random.default_rng(0)
    n_classes, per_class, d, d_a = 6, 5, 8, 5
    labels = rng.permutation(np.repeat(np.arange(n_classes), per_class))  # 0-based
    pos = {c: np.flatnonzero(labels == c) for c in range(n_classes)}
    trainval = np.sort(np.concatenate([pos[c][:3] for c in range(4)]))
    test_seen = np.sort(np.concatenate([pos[c][3:] for c in range(4)]))
    test_unseen = np.sort(np.concatenate([pos[4], pos[5]]))
    train = np.sort(np.concatenate([pos[0], pos[1]]))
    val = np.sort(np.concatenate([pos[2], pos[3]]))
    original = rng.uniform(0, 100, size=(d_a, n_classes))
    att = original / np.linalg.norm(original, axis=0, keepdims=True)

    def loc(idx: np.ndarray) -> np.ndarray:
        return (idx + 1).astype(np.uint16).reshape(-1, 1)

    att_splits = {
        "att": att,
        "original_att": original,
        "trainval_loc": loc(trainval),
        "test_seen_loc": loc(test_seen),
        "test_unseen_loc": loc(test_unseen),
        "train_loc": loc(train),
        "val_loc": loc(val),
        "allclasses_names": [f"c{i}" for i in range(n_classes)],
    }
    centers = rng.uniform(0, 3, size=(n_classes, d))
    feats = (centers[labels] + 0.1 * rng.standard_normal((labels.size, d))).astype(np.float32)
    res101 = {
        "features": np.ascontiguousarray(feats.T),
        "labels": (labels + 1).astype(np.float64).reshape(-1, 1),
        "image_files": [f"img_{i:03d}.jpg" for i in range(labels.size)],
    }
    return {"att_splits": att_splits, "res101": res101}


class TinyXlsa17:
    """Factory: ``tiny_xlsa17(fmt="v5"|"v7.3", ...)`` writes a dataset and returns the root."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.count = 0

    @staticmethod
    def arrays() -> dict[str, dict[str, Any]]:
        return tiny_arrays()

    def __call__(
        self,
        fmt: str = "v5",
        *,
        name: str = "TINY",
        att_splits: dict[str, Any] | None = None,
        res101: dict[str, Any] | None = None,
        features_file: str | None = "res101.mat",
        sent: dict[str, Any] | None = None,
        txt: dict[str, list[str]] | None = None,
        txt_in_splits: bool = True,
    ) -> Path:
        """Write the tiny dataset; override or drop (value ``None``) variables per file."""
        self.count += 1
        root = self.base / f"root{self.count}"
        folder = root / name
        folder.mkdir(parents=True)
        data = tiny_arrays()
        for part, changes in (("att_splits", att_splits), ("res101", res101)):
            for key, value in (changes or {}).items():
                if value is None:
                    data[part].pop(key, None)
                else:
                    data[part][key] = value
        write_mat(folder / "att_splits.mat", data["att_splits"], fmt)
        if features_file is not None:
            write_mat(folder / features_file, data["res101"], fmt)
        if sent is not None:
            write_mat(folder / "sent_splits.mat", sent, fmt)
        if txt:
            txt_dir = folder / "splits" if txt_in_splits else folder
            txt_dir.mkdir(exist_ok=True)
            for fname, lines in txt.items():
                (txt_dir / fname).write_text("\n".join(lines) + "\n")
        return root


@pytest.fixture
def tiny_xlsa17(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing small xlsa17-layout .mat files (v5 or v7.3) under ``tmp_path``."""
    return TinyXlsa17(tmp_path)


def check_transductive_run(method: str, sets: dict[str, Any], dataset: Any, out: Path) -> None:
    """A transductive method's run is marked transductive in its outputs, and the same config
    on an inductive task (no unlabeled features) is refused (GMN's S+U critic, f-VAEGAN-D2)."""
    from unseen.config import resolve_run_config
    from unseen.errors import ConfigError
    from unseen.runner import run

    sets = {**sets, "data": {"transductive": True}}
    rep = run(
        resolve_run_config(method, "toy", overrides=sets, seeds=[0]),
        out / "tr",
        dataset=dataset,
        echo=False,
    )
    assert rep["task"]["transductive"] is True
    assert rep["seeds"]["0"]["result"]["extra"]["transductive"] is True
    sets["data"] = {"transductive": False}
    cfg = resolve_run_config(method, "toy", overrides=sets, seeds=[0])
    with pytest.raises(ConfigError, match="transductive"):
        run(cfg, out / "ind", dataset=dataset, echo=False)


class Killed(Exception):
    """Raised by :func:`fit_killed` to stop a fit as a kill would, after a checkpoint."""


def fit_killed(method: Any, train: Any, checkpoint: Path, at_epoch: int = 2) -> None:
    """Fit ``method`` with ``checkpoint`` and stop it at the end of epoch ``at_epoch`` (what a
    killed job leaves behind), for the resume-equals-uninterrupted tests."""

    def kill(epoch: int, _m: Any) -> None:
        if epoch == at_epoch:
            raise Killed

    with pytest.raises(Killed):
        method.fit(train, checkpoint=checkpoint, callback=kill)
