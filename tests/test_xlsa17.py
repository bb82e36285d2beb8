from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from unseen.data import (
    DATASETS,
    ZSLDataset,
    discover,
    inspect_xlsa17,
    load_xlsa17,
    read_mat,
)
from unseen.errors import DataError

Factory = Callable[..., Path]

# name: classes, semantic dim, trainval, test_seen, test_unseen, seen classes, unseen classes
REAL = {
    "AWA1": (50, 85, 19832, 4958, 5685, 40, 10),
    "AWA2": (50, 85, 23527, 5882, 7913, 40, 10),
    "CUB": (200, 312, 7057, 1764, 2967, 150, 50),
    "SUN": (717, 102, 10320, 2580, 1440, 645, 72),
    "APY": (32, 64, 5932, 1483, 7924, 20, 12),
    "FLO": (102, 1024, 5631, 1403, 1155, 82, 20),
}


def assert_same(a: ZSLDataset, b: ZSLDataset) -> None:
    for key in ("features", "labels", "semantics", "trainval", "test_seen", "test_unseen"):
        x, y = getattr(a, key), getattr(b, key)
        assert x.dtype == y.dtype and x.shape == y.shape, key
        np.testing.assert_array_equal(x, y, err_msg=key)
    np.testing.assert_array_equal(a.val_classes, b.val_classes)
    assert a.class_names == b.class_names
    assert a.quirks == b.quirks
    assert a.name == b.name


# ---------------------------------------------------------------------------- tiny files


def test_tiny_load(tiny_xlsa17: Factory) -> None:
    ds = load_xlsa17(tiny_xlsa17(), "tiny")
    raw = tiny_xlsa17.arrays()
    assert ds.name == "TINY" and not ds.synthetic
    assert ds.features.shape == (30, 8) and ds.features.dtype == np.float32
    np.testing.assert_array_equal(ds.features, raw["res101"]["features"].T)
    assert ds.labels.dtype == np.int64 and ds.labels.min() == 0 and ds.labels.max() == 5
    assert ds.semantics.shape == (6, 5) and ds.semantics.dtype == np.float32
    np.testing.assert_allclose(ds.semantics, raw["att_splits"]["att"].T, rtol=1e-6)
    np.testing.assert_array_equal(ds.trainval, raw["att_splits"]["trainval_loc"].ravel() - 1)
    assert ds.trainval.dtype == np.int64
    assert ds.class_names == [f"c{i}" for i in range(6)]
    np.testing.assert_array_equal(ds.seen_classes, [0, 1, 2, 3])
    np.testing.assert_array_equal(ds.unseen_classes, [4, 5])
    np.testing.assert_array_equal(ds.val_classes, [2, 3])
    assert any("overlap test_seen_loc in 8 images" in q for q in ds.quirks)


def test_v5_and_v73_give_identical_datasets(tiny_xlsa17: Factory) -> None:
    a = load_xlsa17(tiny_xlsa17("v5"), "TINY")
    b = load_xlsa17(tiny_xlsa17("v7.3"), "TINY")
    assert (b.source.split(" + ")[0]).endswith("att_splits.mat")
    assert read_mat(b.source.split(" + ")[0], ["att"])["att"].shape == (5, 6)
    assert_same(a, b)


def test_semantics_choices_and_features_path(tiny_xlsa17: Factory) -> None:
    root = tiny_xlsa17(features_file="my_feats.mat")
    ds = load_xlsa17(
        root, "TINY", features=root / "TINY" / "my_feats.mat", semantics="original_att"
    )
    raw = tiny_xlsa17.arrays()["att_splits"]["original_att"]
    np.testing.assert_allclose(ds.semantics, raw.T, rtol=1e-6)
    assert load_xlsa17(root, "TINY", features="my_feats.mat").semantic_dim == 5


def test_features_stored_n_by_d_accepted(tiny_xlsa17: Factory) -> None:
    feats = tiny_xlsa17.arrays()["res101"]["features"]
    ds = load_xlsa17(tiny_xlsa17(res101={"features": np.ascontiguousarray(feats.T)}), "TINY")
    np.testing.assert_array_equal(ds.features, feats.T)
    assert any("stored N x d" in q for q in ds.quirks)


def test_class_names_fallbacks(tiny_xlsa17: Factory) -> None:
    names = [f"bird_{i}" for i in range(6)]
    root = tiny_xlsa17(att_splits={"allclasses_names": None}, txt={"allclasses.txt": names})
    ds = load_xlsa17(root, "TINY")
    assert ds.class_names == names
    assert any("class names from splits/allclasses.txt" in q for q in ds.quirks)
    ds = load_xlsa17(tiny_xlsa17(att_splits={"allclasses_names": None}), "TINY")
    assert ds.class_names[0] == "class_001" and ds.class_names[-1] == "class_006"
    assert any("no allclasses_names" in q for q in ds.quirks)


@pytest.mark.parametrize("in_splits", [True, False])
def test_missing_train_val_locs_use_valclasses_txt(tiny_xlsa17: Factory, in_splits: bool) -> None:
    root = tiny_xlsa17(
        att_splits={"train_loc": None, "val_loc": None},
        txt={
            "trainvalclasses.txt": ["c0", "c1", "c2", "c3"],
            "testclasses.txt": ["c4", "c5"],
            "valclasses1.txt": ["c1", "c3"],
        },
        txt_in_splits=in_splits,
    )
    ds = load_xlsa17(root, "TINY")
    np.testing.assert_array_equal(ds.val_classes, [1, 3])
    assert any("no train_loc/val_loc" in q and "valclasses1.txt" in q for q in ds.quirks)
    report = inspect_xlsa17(root, "TINY", features="absent.mat")
    assert (report.n_seen_classes, report.n_unseen_classes) == (4, 2)
    assert not report.features_present and report.feature_dim is None


def test_missing_train_val_locs_without_txt(tiny_xlsa17: Factory) -> None:
    ds = load_xlsa17(tiny_xlsa17(att_splits={"train_loc": None, "val_loc": None}), "TINY")
    assert ds.val_classes is None
    assert any("left to the protocol" in q for q in ds.quirks)


def test_sent_splits_supply_locs_and_semantics(tiny_xlsa17: Factory) -> None:
    raw = tiny_xlsa17.arrays()["att_splits"]
    emb = np.random.default_rng(1).uniform(0, 5, size=(16, 6))
    sent = {k: raw[k] for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc")}
    sent |= {"att": emb, "train_loc": raw["train_loc"], "val_loc": raw["val_loc"]}
    root = tiny_xlsa17(att_splits={"train_loc": None, "val_loc": None}, sent=sent)
    ds = load_xlsa17(root, "TINY", semantics="sent")
    assert ds.semantics.shape == (6, 16)
    np.testing.assert_allclose(ds.semantics, emb.T, rtol=1e-6)
    np.testing.assert_array_equal(ds.val_classes, [2, 3])
    assert any("taken from sent_splits.mat" in q for q in ds.quirks)
    assert any("not L2-normalised" in q for q in ds.quirks)
    report = inspect_xlsa17(root, "TINY")
    assert report.semantic_sources == ["att 5-d", "original_att 5-d", "sent 16-d"]


def test_discover_and_names(tiny_xlsa17: Factory) -> None:
    root = tiny_xlsa17(name="cub")
    for name in ("mine", "AWA2"):
        (root / name).mkdir()
        shutil.copy(root / "cub" / "att_splits.mat", root / name / "att_splits.mat")
    (root / "empty").mkdir()
    assert discover(root) == ["AWA2", "cub", "mine"]
    assert inspect_xlsa17(root, "CUB").name == "CUB"
    assert inspect_xlsa17(root, "mine").name == "mine"
    report = inspect_xlsa17(root, "Cub").to_dict()
    assert report["n_classes"] == 6 and report["n_trainval"] == 12
    assert report["features_present"] and report["n_images"] == 30 and report["feature_dim"] == 8
    assert (report["n_seen_classes"], report["n_unseen_classes"]) == (4, 2)


# ---------------------------------------------------------------------------- bad input


def test_err_unknown_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data root .*nowhere not found"):
        load_xlsa17(tmp_path / "nowhere", "AWA2")


def test_err_missing_att_splits(tmp_path: Path) -> None:
    (tmp_path / "AWA2").mkdir()
    with pytest.raises(DataError, match=r"AWA2: missing att_splits\.mat: expected .*AWA2"):
        load_xlsa17(tmp_path, "awa2")


def test_err_unknown_dataset(tiny_xlsa17: Factory) -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'AWA3'.*AWA1, AWA2, CUB.*TINY"):
        load_xlsa17(tiny_xlsa17(), "AWA3")


def test_err_unknown_semantics(tiny_xlsa17: Factory) -> None:
    with pytest.raises(DataError, match=r"unknown semantics 'word2vec'.*att, original_att, sent"):
        load_xlsa17(tiny_xlsa17(), "TINY", semantics="word2vec")


def test_err_sent_without_sent_splits(tiny_xlsa17: Factory) -> None:
    with pytest.raises(DataError, match=r"semantics='sent' needs .*sent_splits\.mat"):
        load_xlsa17(tiny_xlsa17(), "TINY", semantics="sent")


def test_err_original_att_absent(tiny_xlsa17: Factory) -> None:
    with pytest.raises(DataError, match=r"att_splits\.mat: no usable variable 'original_att'"):
        load_xlsa17(
            tiny_xlsa17(att_splits={"original_att": None}), "TINY", semantics="original_att"
        )


def test_err_missing_features_file(tiny_xlsa17: Factory) -> None:
    root = tiny_xlsa17(features_file="effnet.mat")
    with pytest.raises(DataError, match=r"res101\.mat not found.*data.features=effnet\.mat"):
        load_xlsa17(root, "TINY")
    report = inspect_xlsa17(root, "TINY")  # inspect never fails on a missing features file
    assert not report.features_present and report.features_file.endswith("res101.mat")


def test_err_corrupt_att_splits(tiny_xlsa17: Factory) -> None:
    root = tiny_xlsa17("v7.3")
    path = root / "TINY" / "att_splits.mat"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match=r"att_splits\.mat: looks like a MATLAB v7\.3"):
        load_xlsa17(root, "TINY")


def test_err_txt_renamed_mat(tiny_xlsa17: Factory) -> None:
    root = tiny_xlsa17()
    (root / "TINY" / "res101.mat").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(DataError, match=r"res101\.mat: not a MATLAB \.mat file"):
        load_xlsa17(root, "TINY")


@pytest.mark.parametrize("key", ["att", "trainval_loc", "test_unseen_loc"])
def test_err_missing_key(tiny_xlsa17: Factory, key: str) -> None:
    with pytest.raises(DataError, match=rf"att_splits\.mat: variable '{key}' not found"):
        load_xlsa17(tiny_xlsa17(att_splits={key: None}), "TINY")


def test_err_v73_features_missing_labels(tiny_xlsa17: Factory) -> None:
    with pytest.raises(DataError, match=r"res101\.mat: variable 'labels' not found.*features"):
        load_xlsa17(tiny_xlsa17("v7.3", res101={"labels": None}), "TINY")


def test_err_labels_count_mismatch(tiny_xlsa17: Factory) -> None:
    labels = tiny_xlsa17.arrays()["res101"]["labels"][:-3]
    with pytest.raises(
        DataError, match=r"res101\.mat: 'labels' has 27 entries but 'features' is 8 x 30"
    ):
        load_xlsa17(tiny_xlsa17(res101={"labels": labels}), "TINY")


def test_err_split_index_zero(tiny_xlsa17: Factory) -> None:
    loc = tiny_xlsa17.arrays()["att_splits"]["trainval_loc"].copy()
    loc[0] = 0
    with pytest.raises(DataError, match=r"'trainval_loc' holds the index 0.*1-based"):
        load_xlsa17(tiny_xlsa17(att_splits={"trainval_loc": loc}), "TINY")


def test_err_split_index_too_large(tiny_xlsa17: Factory) -> None:
    loc = tiny_xlsa17.arrays()["att_splits"]["test_unseen_loc"].copy()
    loc[-1] = 31
    with pytest.raises(DataError, match=r"'test_unseen_loc' refers to image 31 .* only 30 images"):
        load_xlsa17(tiny_xlsa17(att_splits={"test_unseen_loc": loc}), "TINY")


def test_err_nan_features(tiny_xlsa17: Factory) -> None:
    feats = tiny_xlsa17.arrays()["res101"]["features"].copy()
    feats[2, 7] = np.nan
    with pytest.raises(DataError, match=r"res101\.mat: 'features' holds NaN.*\[8\]"):
        load_xlsa17(tiny_xlsa17(res101={"features": feats}), "TINY")


def test_err_seen_unseen_overlap(tiny_xlsa17: Factory) -> None:
    raw = tiny_xlsa17.arrays()
    labels = raw["res101"]["labels"].copy()
    first_unseen = raw["att_splits"]["test_unseen_loc"][0, 0] - 1
    labels[first_unseen] = labels[raw["att_splits"]["trainval_loc"][0, 0] - 1]
    with pytest.raises(DataError, match=r"both trainval_loc and test_unseen_loc.*disjoint"):
        load_xlsa17(tiny_xlsa17(res101={"labels": labels}), "TINY")


def test_err_att_classes_vs_labels(tiny_xlsa17: Factory) -> None:
    att = tiny_xlsa17.arrays()["att_splits"]["att"][:, :5]  # 5 classes, labels go to 6
    root = tiny_xlsa17(att_splits={"att": att, "original_att": None, "allclasses_names": None})
    with pytest.raises(DataError, match=r"'labels' go up to class 6 but 'att' .* only 5 class"):
        load_xlsa17(root, "TINY")


def test_err_zero_based_labels(tiny_xlsa17: Factory) -> None:
    labels = tiny_xlsa17.arrays()["res101"]["labels"] - 1
    with pytest.raises(DataError, match=r"'labels' holds the class id 0.*1-based"):
        load_xlsa17(tiny_xlsa17(res101={"labels": labels}), "TINY")


def test_err_split_sets_share_images(tiny_xlsa17: Factory) -> None:
    raw = tiny_xlsa17.arrays()["att_splits"]
    loc = np.concatenate([raw["test_seen_loc"], raw["trainval_loc"][:1]])
    with pytest.raises(DataError, match="trainval_loc and test_seen_loc share 1 images"):
        load_xlsa17(tiny_xlsa17(att_splits={"test_seen_loc": loc}), "TINY")


# ---------------------------------------------------------------------------- real files


def test_real_discover(shared_data: Path) -> None:
    assert discover(shared_data) == list(DATASETS)


@pytest.mark.parametrize("name", DATASETS)
def test_real_inspect(shared_data: Path, name: str) -> None:
    n_cls, dim, n_tv, n_ts, n_tu, n_seen, n_unseen = REAL[name]
    r = inspect_xlsa17(shared_data, name.lower())
    assert (r.name, r.n_classes, r.semantic_dim) == (name, n_cls, dim)
    assert (r.n_trainval, r.n_test_seen, r.n_test_unseen) == (n_tv, n_ts, n_tu)
    assert not r.features_present
    if name == "FLO":  # no class lists: the split needs the labels of a features file
        assert r.n_seen_classes is None
        assert any("class_001..class_102" in q for q in r.quirks)
    else:
        assert (r.n_seen_classes, r.n_unseen_classes) == (n_seen, n_unseen)
    if name != "APY":
        assert any("only their class split is used" in q for q in r.quirks)
    if name.startswith("AWA"):
        assert any("4 entries equal to -1" in q for q in r.quirks)
        train, val = (20218, 9191) if name == "AWA2" else (16864, 7926)
        assert any(f"train_loc ({train}) + val_loc ({val})" in q for q in r.quirks)


def test_real_flo_with_effnet_features(shared_data: Path) -> None:
    ds = load_xlsa17(shared_data, "FLO", features="effnet_lite0.mat")
    assert ds.features.shape == (8189, 1280) and ds.features.dtype == np.float32
    assert ds.semantics.shape == (102, 1024)
    assert (ds.trainval.size, ds.test_seen.size, ds.test_unseen.size) == (5631, 1403, 1155)
    assert ds.seen_classes.size == 82 and ds.unseen_classes.size == 20
    assert ds.val_classes.size == 20
    assert not np.intersect1d(ds.val_classes, ds.unseen_classes).size
    assert set(ds.val_classes.tolist()) <= set(ds.seen_classes.tolist())
    assert any(
        "overlap test_seen_loc in 1403 images (1173 train_loc, 230 val_loc)" in q for q in ds.quirks
    )
    r = inspect_xlsa17(shared_data, "FLO", features="effnet_lite0.mat")
    assert (r.n_images, r.feature_dim, r.n_seen_classes, r.n_unseen_classes) == (8189, 1280, 82, 20)


def _fake_features(shared: Path, name: str, tmp: Path) -> Path:
    """Copy a real dataset folder and add a 4-d features file whose labels follow its splits.

    Images of train_loc / val_loc / test_unseen_loc get classes of trainclasses1 /
    valclasses1 / testclasses in turn, so the real split files load end to end.
    """
    root = tmp / "data"
    shutil.copytree(shared / name, root / name)
    att = scipy.io.loadmat(str(root / name / "att_splits.mat"))
    locs = att if "train_loc" in att else scipy.io.loadmat(str(root / name / "sent_splits.mat"))
    names = [str(n[0][0]) for n in att["allclasses_names"]]
    n = sum(att[k].size for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc"))
    labels = np.zeros(n)
    for key, fname in (
        ("train_loc", "trainclasses1.txt"),
        ("val_loc", "valclasses1.txt"),
        ("test_unseen_loc", "testclasses.txt"),
    ):
        idx = np.sort(locs[key].ravel().astype(int)) - 1
        lines = (root / name / "splits" / fname).read_text().split()
        classes = [names.index(c) + 1 for c in lines]
        labels[idx] = np.resize(classes, idx.size)
    feats = np.random.default_rng(0).random((4, n), dtype=np.float32)
    scipy.io.savemat(
        str(root / name / "res101.mat"), {"features": feats, "labels": labels[:, None]}
    )
    return root


def test_real_cub_locs_from_sent_splits(shared_data: Path, tmp_path: Path) -> None:
    root = _fake_features(shared_data, "CUB", tmp_path)
    ds = load_xlsa17(root, "CUB")
    assert ds.semantics.shape == (200, 312)
    assert any("taken from sent_splits.mat (train_loc 5875, val_loc 2946" in q for q in ds.quirks)
    assert ds.val_classes.size == 50
    assert not np.intersect1d(ds.val_classes, ds.unseen_classes).size
    sent = load_xlsa17(root, "CUB", semantics="sent")
    assert sent.semantics.shape == (200, 1024)
    assert any("sent embeddings are not L2-normalised" in q for q in sent.quirks)


def test_real_awa_minus_one_quirk(shared_data: Path, tmp_path: Path) -> None:
    root = _fake_features(shared_data, "AWA2", tmp_path)
    ds = load_xlsa17(root, "AWA2", semantics="original_att")
    assert (ds.semantics == -1).sum() == 4
    assert any("4 entries equal to -1" in q for q in ds.quirks)
    assert any("keeps the 4 -1 (missing) entries" in q for q in ds.quirks)
    assert ds.val_classes.size == 13 and ds.seen_classes.size == 40


def test_att_plus_sent_concatenates_normalised_embeddings(tiny_xlsa17: Factory) -> None:
    raw = tiny_xlsa17.arrays()["att_splits"]
    emb = np.random.default_rng(1).uniform(0, 5, size=(16, 6))
    sent = {k: raw[k] for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc")}
    sent |= {"att": emb, "train_loc": raw["train_loc"], "val_loc": raw["val_loc"]}
    root = tiny_xlsa17(sent=sent)
    both = load_xlsa17(root, "TINY", semantics="att+sent")
    att = load_xlsa17(root, "TINY", semantics="att").semantics
    snt = load_xlsa17(root, "TINY", semantics="sent").semantics
    assert both.semantics.shape == (6, att.shape[1] + snt.shape[1])
    np.testing.assert_allclose(
        both.semantics[:, att.shape[1] :], snt / np.linalg.norm(snt, axis=1, keepdims=True), 1e-5
    )
    np.testing.assert_allclose(np.linalg.norm(both.semantics, axis=1), np.sqrt(2), rtol=1e-5)
    with pytest.raises(DataError, match=r"att\+sent.*needs 'sent'"):
        load_xlsa17(tiny_xlsa17(), "TINY", semantics="att+sent")
