"""The loader's check of labels against the class folders of ``image_files`` (issue 14).

A features file whose labels index another class order of ``att_splits.mat`` (another
re-save) pairs every image with the wrong class semantics and crashes nothing; the check must
refuse it, name the first disagreeing image, and repair a permutation of whole classes only
when asked (``repair_labels`` / ``data.repair_labels``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import write_mat73, write_v5
from unseen.cli import main
from unseen.config import DataConfig
from unseen.data import inspect_xlsa17, load_xlsa17, read_mat
from unseen.data.label_names import check_label_names, class_key, folder_columns
from unseen.errors import DataError

Factory = Callable[..., Path]

# CUB-style names (number prefix, as CUB's allclasses_names and image folders have them)
NAMES = [
    "001.Black_footed_Albatross",
    "002.Laysan_Albatross",
    "003.Sooty_Albatross",
    "004.Groove_billed_Ani",
    "005.Crested_Auklet",
    "006.Least_Auklet",
]
# swaps a seen class (column 1) with an unseen one (column 5): labels 1 <-> 5 (1-based)
SWAP = np.array([4, 1, 2, 3, 0, 5])


def _labels0(tiny: Factory) -> np.ndarray:
    return tiny.arrays()["res101"]["labels"].ravel().astype(np.int64) - 1


def _files(labels0: np.ndarray, names: list[str] = NAMES) -> list[str]:
    """xlsa17's res101.mat form: absolute paths ending in images/<class folder>/<file>."""
    base = "/BS/Deep_Fragments/work/MSc/CUB_200_2011/CUB_200_2011/images"
    return [f"{base}/{names[c]}/{names[c][4:]}_{i:04d}_{i}.jpg" for i, c in enumerate(labels0)]


def _root(
    tiny: Factory,
    fmt: str = "v5",
    *,
    labels0: np.ndarray | None = None,
    files: list[str] | None = None,
    names: list[str] = NAMES,
) -> Path:
    """The tiny dataset with class names and class-folder image_files; ``labels0`` (0-based)
    replaces the features file's labels, e.g. with a permuted copy."""
    truth = _labels0(tiny)
    res: dict = {"image_files": files if files is not None else _files(truth)}
    if labels0 is not None:
        res["labels"] = (labels0 + 1).astype(np.float64).reshape(-1, 1)
    return tiny(fmt, att_splits={"allclasses_names": names}, res101=res)


def _name_quirks(quirks: list[str]) -> list[str]:
    return [q for q in quirks if "image_files" in q or "by name" in q or "REPAIRED" in q]


# ---------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("name", "folder_path"),
    [
        # CUB: xlsa17's res101.mat path; names with and without the number prefix
        (
            "001.Black_footed_Albatross",
            "/BS/x/CUB_200_2011/images/001.Black_footed_Albatross/a.jpg",
        ),
        ("Black_footed_Albatross", "images/001.Black_footed_Albatross/a.jpg"),
        ("001.Black_footed_Albatross", "images/black-footed albatross/a.jpg"),
        # AWA2: '+' in names and folders, and the '//' of xlsa17's paths
        (
            "grizzly+bear",
            "/BS/xian/work/data/Animals_with_Attributes2//JPEGImages/grizzly+bear/g.jpg",
        ),
        # SUN: a letter folder, then the class over one or two folders
        ("abbey", "/BS/Deep_Fragments/work/MSc/data/SUN/images/a/abbey/sun_aaa.jpg"),
        ("bakery_shop", "/BS/Deep_Fragments/work/MSc/data/SUN/images/b/bakery/shop/sun_b.jpg"),
        ("airport_airport", "images/a/airport/airport/sun_c.jpg"),
        ("temple_south_asia", "images/t/temple/south_asia/sun_d.jpg"),
        # Windows separators
        ("antelope", "C:\\data\\AwA2\\JPEGImages\\antelope\\antelope_10001.jpg"),
    ],
)
def test_folder_names_its_class(name: str, folder_path: str) -> None:
    names = ["zebra", name, "shop", "south_asia", "airport"]
    assert folder_columns([folder_path], names).tolist() == [1]


def test_folder_naming_no_class() -> None:
    # FLO's own image_files: 'jpg/image_XXXXX.jpg' names no class; a bare file name neither
    cols = folder_columns(["jpg/image_06765.jpg", "img_000.jpg"], ["class_001", "jpg_x"])
    assert cols.tolist() == [-1, -1]


def test_class_key() -> None:
    assert class_key("001.Black_footed_Albatross") == class_key("black footed-albatross")
    assert class_key("killer+whale") == "killer_whale"
    assert class_key("2008_000008") == "2008_000008"  # digits only: no prefix to drop
    with pytest.raises(ValueError, match="'Killer_Whale' and 'killer\\+whale'"):
        folder_columns(["a/b.jpg"], ["Killer_Whale", "killer+whale"])


def test_v73_image_files_read_like_v5(tmp_path: Path) -> None:
    """The low-level HDF5 path for cells of strings gives what the v5 reader gives."""
    files = ["images/001.Gro\u00dfer_Brachvogel/\u00e9t\u00e9_1.jpg", "x", "a/b/c.jpg"]
    values = {"image_files": files, "labels": np.ones((3, 1))}
    write_v5(tmp_path / "a.mat", values)
    write_mat73(tmp_path / "b.mat", values)
    v5 = read_mat(tmp_path / "a.mat", ["image_files"])["image_files"]
    assert v5 == files
    assert read_mat(tmp_path / "b.mat", ["image_files"])["image_files"] == files


def test_real_class_names_are_distinct_and_sun_folders_match(shared_data: Path) -> None:
    for name in ("AWA1", "AWA2", "CUB", "SUN", "APY"):
        names = read_mat(shared_data / name / "att_splits.mat", ["allclasses_names"])
        names = names["allclasses_names"]
        assert len({class_key(n) for n in names}) == len(names), name
    # every SUN class, as a one-folder or two-folder name below its letter folder
    sun = read_mat(shared_data / "SUN" / "att_splits.mat", ["allclasses_names"])
    sun = sun["allclasses_names"]
    flat = [f"SUN/images/{n[0]}/{n}/sun_x.jpg" for n in sun]
    nested = [f"SUN/images/{n[0]}/{n.replace('_', '/', 1)}/sun_x.jpg" for n in sun]
    np.testing.assert_array_equal(folder_columns(flat, sun), np.arange(len(sun)))
    np.testing.assert_array_equal(folder_columns(nested, sun), np.arange(len(sun)))


# ---------------------------------------------------------------------------- tiny files


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_matching_names_pass(tiny_xlsa17: Factory, fmt: str) -> None:
    ds = load_xlsa17(_root(tiny_xlsa17, fmt), "TINY")
    np.testing.assert_array_equal(ds.labels, _labels0(tiny_xlsa17))
    assert _name_quirks(ds.quirks) == [
        "res101.mat: labels checked by name: the folder in image_files of each of the 30 "
        "images names its label's class (allclasses_names in att_splits.mat; 6 classes)"
    ]


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_permuted_labels_refused(tiny_xlsa17: Factory, fmt: str) -> None:
    truth = _labels0(tiny_xlsa17)
    root = _root(tiny_xlsa17, fmt, labels0=SWAP[truth])
    i = int(np.flatnonzero(SWAP[truth] != truth)[0])
    c, wrong = int(truth[i]), int(SWAP[truth[i]])
    path = _files(truth)[i]
    expected = (
        f"image {i + 1} ('{path}') has label {wrong + 1}, the class '{NAMES[wrong]}' (column "
        f"{wrong + 1} of allclasses_names in att_splits.mat), but its folder '{NAMES[c]}' is "
        f"the class '{NAMES[c]}' (column {c + 1}); 10 of 30 images disagree."
    )
    for load in (load_xlsa17, inspect_xlsa17):
        with pytest.raises(DataError) as err:
            load(root, "TINY")
        msg = str(err.value)
        assert "\n" not in msg
        assert msg.startswith(f"{root / 'TINY' / 'res101.mat'}: the labels disagree")
        assert expected in msg
        assert (
            "whole classes moved to other columns (label 1 -> column 5, label 5 -> column 1)" in msg
        )
        assert "--set data.repair_labels=true" in msg


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_permuted_labels_repaired_on_request(tiny_xlsa17: Factory, fmt: str) -> None:
    truth = _labels0(tiny_xlsa17)
    good = load_xlsa17(_root(tiny_xlsa17, fmt), "TINY")
    root = _root(tiny_xlsa17, fmt, labels0=SWAP[truth])
    fixed = load_xlsa17(root, "TINY", repair_labels=True)
    for key in ("features", "labels", "semantics", "trainval", "test_seen", "test_unseen"):
        np.testing.assert_array_equal(getattr(fixed, key), getattr(good, key), err_msg=key)
    np.testing.assert_array_equal(fixed.val_classes, good.val_classes)
    assert fixed.class_names == good.class_names
    (repair,) = _name_quirks(fixed.quirks)
    assert repair.startswith("res101.mat: labels REPAIRED by class name (data.repair_labels")
    assert "10 of 30 images (2 classes)" in repair
    assert "label 1 -> column 5 ('005.Crested_Auklet')" in repair
    report = inspect_xlsa17(root, "TINY", repair_labels=True)
    assert (report.n_seen_classes, report.n_unseen_classes) == (4, 2)
    assert any("labels REPAIRED" in q for q in report.quirks)
    # nothing to repair: the check's usual line
    again = load_xlsa17(_root(tiny_xlsa17, fmt), "TINY", repair_labels=True)
    assert again.quirks == good.quirks


def test_reordered_att_splits_repaired(tiny_xlsa17: Factory) -> None:
    """The case the check exists for: the same features file with a re-save of att_splits.mat
    that lists the classes in another order (att, original_att and names moved together)."""
    order = np.array([2, 0, 5, 1, 4, 3])  # new column j holds old class order[j]
    raw = tiny_xlsa17.arrays()
    truth = _labels0(tiny_xlsa17)
    good = load_xlsa17(_root(tiny_xlsa17), "TINY")
    resave = {
        "att": raw["att_splits"]["att"][:, order],
        "original_att": raw["att_splits"]["original_att"][:, order],
        "allclasses_names": [NAMES[k] for k in order],
    }
    root = tiny_xlsa17(att_splits=resave, res101={"image_files": _files(truth)})
    with pytest.raises(DataError, match="whole classes moved to other columns"):
        load_xlsa17(root, "TINY")
    fixed = load_xlsa17(root, "TINY", repair_labels=True)
    inverse = np.argsort(order)
    np.testing.assert_array_equal(fixed.labels, inverse[truth])
    assert [fixed.class_names[c] for c in fixed.labels] == [NAMES[c] for c in truth]
    np.testing.assert_allclose(fixed.semantics[fixed.labels], good.semantics[good.labels])
    np.testing.assert_array_equal(fixed.features, good.features)


def test_not_a_permutation_is_not_repaired(tiny_xlsa17: Factory) -> None:
    truth = _labels0(tiny_xlsa17)
    labels = truth.copy()
    i = int(np.flatnonzero(truth == 0)[1])  # one image of class 1 labelled class 2
    labels[i] = 1
    root = _root(tiny_xlsa17, labels0=labels)
    for repair in (False, True):
        with pytest.raises(DataError) as err:
            load_xlsa17(root, "TINY", repair_labels=repair)
        msg = str(err.value)
        assert f"image {i + 1} (" in msg and "has label 2, the class '002.Laysan_Albatross'" in msg
        assert "is the class '001.Black_footed_Albatross' (column 1); 1 of 30 images" in msg
        assert "cannot be repaired by name" in msg
        assert ("(data.repair_labels: true was set)" in msg) is repair


def test_folder_of_no_class_is_an_error(tiny_xlsa17: Factory) -> None:
    truth = _labels0(tiny_xlsa17)
    files = _files(truth)
    files[7] = "/data/CUB/images/999.Dodo/Dodo_0001.jpg"
    with pytest.raises(DataError, match=r"image 8 .* its folder '999\.Dodo' names no class"):
        load_xlsa17(_root(tiny_xlsa17, files=files), "TINY", repair_labels=True)


def test_skips_say_why(tiny_xlsa17: Factory) -> None:
    # no image_files at all: nothing new is said
    ds = load_xlsa17(tiny_xlsa17(res101={"image_files": None}), "TINY")
    assert _name_quirks(ds.quirks) == []
    # FLO's case: no class names (placeholders class_001...) to compare with
    root = tiny_xlsa17(att_splits={"allclasses_names": None})
    ds = load_xlsa17(root, "TINY")
    assert _name_quirks(ds.quirks) == [
        "res101.mat: the labels are not checked against the image folders of image_files: "
        "att_splits.mat gives no class names to compare them with"
    ]
    # image_files without class folders (the tiny default: 'img_000.jpg')
    ds = load_xlsa17(tiny_xlsa17(), "TINY")
    assert _name_quirks(ds.quirks) == [
        "res101.mat: image_files' folders name no class (e.g. 'img_000.jpg'), so the labels "
        "are not checked against them"
    ]
    # a form of image_files the reader does not support (a struct) leaves the features usable
    ds = load_xlsa17(tiny_xlsa17(res101={"image_files": {"path": "a/b.jpg"}}), "TINY")
    (quirk,) = _name_quirks(ds.quirks)
    assert quirk.startswith("res101.mat: 'image_files' cannot be read (")
    assert "is a MATLAB struct" in quirk and quirk.endswith("not checked against image folders")
    # the wrong number of paths
    ds = load_xlsa17(tiny_xlsa17(res101={"image_files": ["a/b.jpg"] * 3}), "TINY")
    assert _name_quirks(ds.quirks) == [
        "res101.mat: 'image_files' has 3 entries for 30 images; the labels are not checked "
        "against image folders"
    ]


def test_cli_refuses_permuted_labels(
    tiny_xlsa17: Factory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    truth = _labels0(tiny_xlsa17)
    root = _root(tiny_xlsa17, labels0=SWAP[truth])
    assert main(["datasets", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unseen datasets: error: ") and err.count("\n") == 1
    assert "the labels disagree with the class folders of image_files" in err
    assert "--set data.repair_labels=true" in err
    out = tmp_path / "run"
    argv = ["run", "clswgan", "--dataset", "TINY", "--data-root", str(root), "--out", str(out)]
    assert main([*argv, "--set", "method.epochs=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unseen run: error: ") and "'005.Crested_Auklet'" in err
    # the unpermuted copy is listed, with the check's result
    assert main(["datasets", "--data-root", str(_root(tiny_xlsa17))]) == 0
    assert "quirk: res101.mat: labels checked by name" in capsys.readouterr().out


def test_run_config_repairs(tiny_xlsa17: Factory) -> None:
    from unseen.runner import load_dataset

    truth = _labels0(tiny_xlsa17)
    root = _root(tiny_xlsa17, labels0=SWAP[truth])
    ds = load_dataset(DataConfig(dataset="TINY", root=str(root), repair_labels=True))
    np.testing.assert_array_equal(ds.labels, truth)


# ---------------------------------------------------------------------------- real files


def test_real_cub_passes_fast(shared_data: Path) -> None:
    """The shared CUB features (11,788 images) agree with CUB's att_splits.mat by name, and
    the check (reading image_files aside) takes milliseconds."""
    ds = load_xlsa17(shared_data, "CUB", features="effnet_lite0.mat")
    assert _name_quirks(ds.quirks) == [
        "effnet_lite0.mat: labels checked by name: the folder in image_files of each of the "
        "11788 images names its label's class (allclasses_names in att_splits.mat; 200 classes)"
    ]
    m = read_mat(shared_data / "CUB" / "effnet_lite0.mat", ["labels", "image_files"])
    labels = m["labels"].ravel().astype(np.int64) - 1
    start = time.perf_counter()
    out, _ = check_label_names(
        labels,
        m["image_files"],
        ds.class_names,
        names_source="allclasses_names",
        features_path=Path("effnet_lite0.mat"),
    )
    assert time.perf_counter() - start < 1.0
    np.testing.assert_array_equal(out, ds.labels)


def test_real_flo_skipped_for_want_of_names(shared_data: Path) -> None:
    r = inspect_xlsa17(shared_data, "FLO", features="effnet_lite0.mat")
    assert r.features_present and r.n_images == 8189
    assert _name_quirks(r.quirks) == [
        "effnet_lite0.mat: the labels are not checked against the image folders of "
        "image_files: att_splits.mat gives no class names to compare them with"
    ]


def test_real_cub_in_numeric_class_order_is_caught_and_repaired(
    shared_data: Path, tmp_path: Path
) -> None:
    """The real CUB features with a re-save of att_splits.mat in CUB's numeric class order
    (as xlsa17's original lists them): refused, and repaired by name on request."""
    src = shared_data / "CUB"
    att = read_mat(src / "att_splits.mat")
    names = att["allclasses_names"]
    order = np.argsort([int(n[:3]) for n in names])  # new column j = old column order[j]
    folder = tmp_path / "CUB"
    folder.mkdir()
    resave = {k: v for k, v in att.items() if k not in ("att", "original_att")}
    resave |= {k: att[k][:, order] for k in ("att", "original_att")}
    resave["allclasses_names"] = new_names = [names[k] for k in order]
    write_v5(folder / "att_splits.mat", resave)
    (folder / "effnet_lite0.mat").symlink_to(src / "effnet_lite0.mat")
    (folder / "splits").symlink_to(src / "splits")
    with pytest.raises(DataError) as err:
        load_xlsa17(tmp_path, "CUB", features="effnet_lite0.mat")
    msg = str(err.value)
    assert "image 1 ('images/001.Black_footed_Albatross/" in msg
    # the file's label 151 was a column of the old order; in this one it is class 151
    assert f"has label 151, the class '{new_names[150]}' (column 151 of" in msg
    assert new_names[150].startswith("151.")
    assert "is the class '001.Black_footed_Albatross' (column 1)" in msg
    assert "whole classes moved to other columns" in msg
    good = load_xlsa17(shared_data, "CUB", features="effnet_lite0.mat")
    fixed = load_xlsa17(tmp_path, "CUB", features="effnet_lite0.mat", repair_labels=True)
    assert [fixed.class_names[c] for c in fixed.labels[::97]] == [
        good.class_names[c] for c in good.labels[::97]
    ]
    np.testing.assert_array_equal(fixed.semantics[fixed.labels], good.semantics[good.labels])
    assert fixed.seen_classes.size == 150 and fixed.unseen_classes.size == 50
    assert any("labels REPAIRED" in q and "11788 images" in q for q in fixed.quirks)


def test_real_datasets_command_shows_cub_and_flo_features(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["datasets", "--data-root", str(shared_data)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line[:1].isalpha()}
    assert lines["CUB"].endswith("effnet_lite0.mat: 11788 x 1280")
    assert lines["FLO"].endswith("effnet_lite0.mat: 8189 x 1280")
    assert (
        "quirk: effnet_lite0.mat: labels checked by name: the folder in image_files of each "
        "of the 11788 images names its label's class"
    ) in out
    assert "quirk: effnet_lite0.mat: the labels are not checked against the image folders" in out
