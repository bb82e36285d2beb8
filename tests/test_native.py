from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from unseen.data import (
    ZSLDataset,
    convert_xlsa17,
    load_native,
    load_xlsa17,
    save_native,
    toy_dataset,
)
from unseen.errors import DataError, OutputExistsError

Factory = Callable[..., Path]


def arrays(ds: ZSLDataset) -> dict[str, np.ndarray]:
    return {
        "features": ds.features,
        "labels": ds.labels,
        "semantics": ds.semantics,
        "class_names": np.array(ds.class_names, dtype=str),
        "trainval": ds.trainval,
        "test_seen": ds.test_seen,
        "test_unseen": ds.test_unseen,
    }


def assert_same(a: ZSLDataset, b: ZSLDataset) -> None:
    for key in ("features", "labels", "semantics", "trainval", "test_seen", "test_unseen"):
        x, y = getattr(a, key), getattr(b, key)
        assert x.dtype == y.dtype, key
        np.testing.assert_array_equal(x, y, err_msg=key)
    if a.val_classes is None:
        assert b.val_classes is None
    else:
        np.testing.assert_array_equal(a.val_classes, b.val_classes)
    assert (a.name, a.class_names, a.quirks, a.synthetic, a.source) == (
        b.name,
        b.class_names,
        b.quirks,
        b.synthetic,
        b.source,
    )


def test_round_trip_xlsa17(tiny_xlsa17: Factory, tmp_path: Path) -> None:
    ds = load_xlsa17(tiny_xlsa17(), "TINY")
    path = save_native(ds, tmp_path / "tiny.npz")
    back = load_native(path)
    assert_same(ds, back)
    assert not back.synthetic
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["tiny.npz"]  # no temp left
    with np.load(path, allow_pickle=False) as npz:  # readable without pickle
        assert int(npz["format_version"]) == 1


def test_round_trip_synthetic(tmp_path: Path) -> None:
    ds = toy_dataset(n_per_class=10)
    back = load_native(save_native(ds, tmp_path / "toy.npz"))
    assert_same(ds, back)
    assert back.synthetic and back.val_classes is None


def test_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "toy.npz"
    save_native(toy_dataset(n_per_class=4), path)
    with pytest.raises(OutputExistsError, match=r"toy\.npz already exists.*--force"):
        save_native(toy_dataset(n_per_class=6), path)
    assert load_native(path).features.shape[0] == 4 * 4 + 3 * 2
    save_native(toy_dataset(n_per_class=6), path, overwrite=True)
    assert load_native(path).features.shape[0] == 4 * 6 + 3 * 3


def test_convert_xlsa17(tiny_xlsa17: Factory, tmp_path: Path) -> None:
    root = tiny_xlsa17("v7.3")
    out = convert_xlsa17(root, "TINY", tmp_path / "out" / "tiny.npz", semantics="original_att")
    assert_same(load_xlsa17(root, "TINY", semantics="original_att"), load_native(out))
    with pytest.raises(OutputExistsError, match=r"tiny\.npz already exists"):
        convert_xlsa17(root, "TINY", out)


def test_hand_written_minimal_file(tmp_path: Path) -> None:
    ds = toy_dataset(n_per_class=6)
    np.savez(tmp_path / "mine.npz", **arrays(ds))
    back = load_native(tmp_path / "mine.npz")
    assert back.name == "mine" and not back.synthetic and back.val_classes is None
    np.testing.assert_array_equal(back.features, ds.features)


# ---------------------------------------------------------------------------- bad input


def write(tmp_path: Path, **changes: object) -> Path:
    data = arrays(toy_dataset(n_per_class=6))
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = tmp_path / "bad.npz"
    np.savez(path, **data)
    return path


def test_err_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.npz: file not found"):
        load_native(tmp_path / "nope.npz")


def test_err_not_npz(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_text("features,labels\n1,2\n")
    with pytest.raises(DataError, match=r"x\.npz: not a readable \.npz archive"):
        load_native(path)


@pytest.mark.parametrize("key", ["features", "semantics", "test_unseen"])
def test_err_missing_key(tmp_path: Path, key: str) -> None:
    with pytest.raises(DataError, match=rf"bad\.npz: missing key '{key}'"):
        load_native(write(tmp_path, **{key: None}))


def test_err_wrong_dtype(tmp_path: Path) -> None:
    labels = toy_dataset(n_per_class=6).labels.astype(np.float64)
    with pytest.raises(DataError, match=r"bad\.npz: key 'labels' has dtype float64; expected"):
        load_native(write(tmp_path, labels=labels))


def test_err_shape_mismatch(tmp_path: Path) -> None:
    labels = toy_dataset(n_per_class=6).labels[:-1]
    with pytest.raises(
        DataError, match=r"key 'labels' has shape \(32,\); expected \(33,\) \(one per feature row\)"
    ):
        load_native(write(tmp_path, labels=labels))


def test_err_class_names_count(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"key 'class_names' has shape \(2,\); expected \(4,\)"):
        load_native(write(tmp_path, class_names=np.array(["a", "b"])))


def test_err_object_array(tmp_path: Path) -> None:
    names = np.array(["a", "b", "c", "d"], dtype=object)
    with pytest.raises(DataError, match=r"key 'class_names' is stored as a Python object array"):
        load_native(write(tmp_path, class_names=names))


def test_err_split_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"bad\.npz: .*split 'test_seen' indexes image 100"):
        load_native(write(tmp_path, test_seen=np.array([0, 99])))


def test_err_save_without_features(tmp_path: Path) -> None:
    ds = toy_dataset(n_per_class=4)
    semantic_only = ZSLDataset(
        name="s",
        features=None,
        labels=None,
        semantics=ds.semantics,
        class_names=ds.class_names,
        trainval=ds.trainval,
        test_seen=ds.test_seen,
        test_unseen=ds.test_unseen,
    )
    with pytest.raises(DataError, match="without features"):
        save_native(semantic_only, tmp_path / "s.npz")
