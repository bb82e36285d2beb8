from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import write_mat, write_mat73, write_v5
from unseen.data.matfile import mat_variables, read_mat
from unseen.errors import DataError

VARIABLES = {
    "features": np.arange(12, dtype=np.float32).reshape(3, 4),  # d x N
    "labels": np.array([[1.0], [2.0], [2.0], [3.0]]),
    "trainval_loc": np.array([[1], [3]], dtype=np.uint16),
    "flags": np.array([[True, False, True]]),
    "allclasses_names": ["antelope", "grizzly+bear", "x"],
    "title": "hello",
}


@pytest.fixture(params=["v5", "v7.3"])
def matfile(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / f"{request.param}.mat"
    write_mat(path, VARIABLES, request.param)
    return path


def test_reads_matlab_shapes_and_types(matfile: Path) -> None:
    m = read_mat(matfile)
    assert set(m) == set(VARIABLES)
    assert m["features"].shape == (3, 4) and m["features"].dtype == np.float32
    np.testing.assert_array_equal(m["features"], VARIABLES["features"])
    assert m["labels"].shape == (4, 1) and m["labels"].dtype == np.float64
    assert m["trainval_loc"].dtype == np.uint16
    np.testing.assert_array_equal(m["flags"], [[1, 0, 1]])
    assert m["flags"].dtype == np.uint8  # what scipy.io.loadmat gives for logicals
    assert m["allclasses_names"] == ["antelope", "grizzly+bear", "x"]
    assert m["title"] == "hello"


def test_v5_and_v73_identical(tmp_path: Path) -> None:
    write_v5(tmp_path / "a.mat", VARIABLES)
    write_mat73(tmp_path / "b.mat", VARIABLES)
    assert (tmp_path / "b.mat").read_bytes().startswith(b"MATLAB 7.3")
    a, b = read_mat(tmp_path / "a.mat"), read_mat(tmp_path / "b.mat")
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a[key] == b[key]
    assert mat_variables(tmp_path / "a.mat")["features"] == (3, 4)
    assert mat_variables(tmp_path / "b.mat")["features"] == (3, 4)


def test_keys_and_optional(matfile: Path) -> None:
    m = read_mat(matfile, ["labels"], optional=["title", "absent"])
    assert set(m) == {"labels", "title"}


def test_plain_hdf5_without_matlab_header(tmp_path: Path) -> None:
    path = tmp_path / "plain.mat"
    with h5py.File(path, "w") as f:
        f["features"] = np.ones((5, 2), dtype=np.float32)  # HDF5 (N, d) == MATLAB d x N
    assert read_mat(path)["features"].shape == (2, 5)


def test_real_v5_file(shared_data: Path) -> None:
    m = read_mat(shared_data / "CUB" / "att_splits.mat", ["att", "allclasses_names"])
    assert m["att"].shape == (312, 200)
    assert len(m["allclasses_names"]) == 200
    assert m["allclasses_names"][0] == "002.Laysan_Albatross"


# ---------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothere\.mat: file not found"):
        read_mat(tmp_path / "nothere.mat")


def test_text_file_renamed_mat(tmp_path: Path) -> None:
    path = tmp_path / "notes.mat"
    path.write_text("trainval classes\nantelope\n")
    with pytest.raises(DataError, match=r"notes\.mat: not a MATLAB \.mat file"):
        read_mat(path)


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_truncated(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "full.mat"
    write_mat(path, {"att": np.random.default_rng(0).random((50, 40))}, fmt)
    cut = tmp_path / "cut.mat"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.mat: .*truncated or corrupt"):
        read_mat(cut)


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_missing_key_lists_present(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "x.mat"
    write_mat(path, {"att": np.ones((2, 2)), "trainval_loc": np.ones((2, 1))}, fmt)
    with pytest.raises(DataError, match=r"x\.mat: variable 'labels' not found.*att, trainval_loc"):
        read_mat(path, ["labels"])
