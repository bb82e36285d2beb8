"""Alternative class splits (``unseen splits``, :mod:`unseen.data.splits`) and ``data.splits``:
the drawn splits' properties, the files the loader reads back, refusals, and a run on one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unseen.cli import main
from unseen.config import resolve_run_config
from unseen.data import load_xlsa17
from unseen.data.splits import ClassSplit, draw_splits, write_splits
from unseen.errors import ConfigError, DataError, OutputExistsError
from unseen.runner import run


def _proposed(n_classes: int = 12, n_unseen: int = 3, seed: int = 0) -> dict:
    """A proposed split of uneven class sizes (1..9 images), 20% of seen images test-seen."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(n_classes), 1 + np.arange(n_classes) % 9))
    unseen = np.arange(n_classes - n_unseen, n_classes)
    seen_img = np.flatnonzero(~np.isin(labels, unseen))
    test_seen = seen_img[::5]
    return {
        "labels": labels,
        "trainval": np.setdiff1d(seen_img, test_seen),
        "test_seen": test_seen,
        "test_unseen": np.flatnonzero(np.isin(labels, unseen)),
    }


def _draw(n: int, seed: int, n_val: int = 2, **kw) -> list[ClassSplit]:
    return draw_splits(**{**_proposed(**kw), "n_val": n_val, "n": n, "seed": seed})


# ---------------------------------------------------------------------- drawn splits
def test_drawn_splits_are_disjoint_complete_and_have_the_proposed_counts():
    p = _proposed()
    labels, pool = p["labels"], np.concatenate([p["trainval"], p["test_seen"], p["test_unseen"]])
    proposed_unseen = set(np.unique(labels[p["test_unseen"]]).tolist())
    fraction = len(p["test_seen"]) / (len(p["test_seen"]) + len(p["trainval"]))
    splits = _draw(5, seed=3)
    assert [s.index for s in splits] == [1, 2, 3, 4, 5]
    for s in splits:
        parts = (s.trainval, s.test_seen, s.test_unseen)
        for i, a in enumerate(parts):  # image sets pairwise disjoint, together the pool
            for b in parts[i + 1 :]:
                assert not np.intersect1d(a, b).size
        assert np.array_equal(np.sort(np.concatenate(parts)), np.sort(pool))
        # class counts of the proposed split; seen/unseen disjoint; validation inside seen
        assert len(s.unseen) == 3 and len(s.seen) == 9 and len(s.val) == 2
        assert not np.intersect1d(s.seen, s.unseen).size and set(s.val) <= set(s.seen)
        assert set(s.unseen.tolist()) != proposed_unseen
        # every image of a seen class in trainval or test_seen; of an unseen one in test_unseen
        seen_imgs = np.sort(pool[np.isin(labels[pool], s.seen)])
        assert np.array_equal(np.sort(np.concatenate([s.trainval, s.test_seen])), seen_imgs)
        assert set(np.unique(labels[s.test_unseen])) == set(s.unseen)
        # each seen class keeps training images; classes of 2+ images get a test image too
        for c in s.seen:
            n_c = int((labels[pool] == c).sum())
            n_test = int((labels[s.test_seen] == c).sum())
            assert n_c - n_test >= 1 and (n_test >= 1 if n_c >= 2 else n_test == 0)
        assert abs(len(s.test_seen) / len(seen_imgs) - fraction) < 0.15
        # train_loc / val_loc: the trainval images of the training / validation classes
        assert np.array_equal(np.sort(np.concatenate([s.train, s.val_images])), s.trainval)
        assert set(np.unique(labels[s.val_images])) == set(s.val)
        assert not set(np.unique(labels[s.train])) & set(s.val)
    assert len({tuple(s.unseen) for s in splits}) == 5  # all different


def test_same_seed_same_splits_and_split_k_does_not_depend_on_n():
    a, b, longer, other = _draw(3, seed=7), _draw(3, seed=7), _draw(5, seed=7), _draw(3, seed=8)
    fields = ("unseen", "val", "trainval", "test_seen", "test_unseen", "train", "val_images")
    for x, y, z in zip(a, b, longer[:3], strict=True):
        for f in fields:
            assert np.array_equal(getattr(x, f), getattr(y, f))
            assert np.array_equal(getattr(x, f), getattr(z, f))
    assert any(not np.array_equal(x.unseen, y.unseen) for x, y in zip(a, other, strict=True))


def test_refused_counts_name_the_value():
    with pytest.raises(ConfigError, match=r"--n must be an integer >= 1, got 0"):
        _draw(0, seed=0)
    # 4 classes, 1 unseen: 3 other class sets
    with pytest.raises(ConfigError, match=r"--n 4: only 3 class split"):
        _draw(4, seed=0, n_classes=4, n_unseen=1, n_val=1)
    assert len(_draw(3, seed=0, n_classes=4, n_unseen=1, n_val=1)) == 3
    with pytest.raises(ConfigError, match=r"--seed"):
        _draw(1, seed=-1)


# ---------------------------------------------------------------------- files
def _split_paths(tiny_xlsa17, n: int = 3, seed: int = 0) -> tuple[Path, list[Path]]:
    root = tiny_xlsa17()
    return root, write_splits(root, "TINY", n=n, seed=seed, out=root / "splits")


def test_written_files_read_back_as_the_drawn_splits(tiny_xlsa17):
    root, paths = _split_paths(tiny_xlsa17)
    assert [p.name for p in paths] == [f"TINY_seed0_split{k}.mat" for k in (1, 2, 3)]
    proposed = load_xlsa17(root, "TINY")
    again = draw_splits(
        proposed.labels,
        proposed.trainval,
        proposed.test_seen,
        proposed.test_unseen,
        n_val=len(proposed.val_classes),
        n=3,
        seed=0,
    )
    for path, drawn in zip(paths, again, strict=True):
        ds = load_xlsa17(root, "TINY", splits=path)
        assert np.array_equal(np.sort(ds.trainval), drawn.trainval)
        assert np.array_equal(np.sort(ds.test_seen), drawn.test_seen)
        assert np.array_equal(np.sort(ds.test_unseen), drawn.test_unseen)
        assert np.array_equal(ds.val_classes, drawn.val)
        assert np.array_equal(ds.unseen_classes, drawn.unseen)
        # same classes, semantics and features as the dataset; the quirk names the file
        assert ds.class_names == proposed.class_names
        assert np.array_equal(ds.semantics, proposed.semantics)
        assert np.array_equal(ds.features, proposed.features)
        assert str(path) in ds.quirks[0] and "split" in ds.quirks[0]
        assert not np.array_equal(ds.unseen_classes, proposed.unseen_classes)


def test_existing_files_are_never_replaced(tiny_xlsa17):
    root, paths = _split_paths(tiny_xlsa17, n=2)
    before = {p: p.read_bytes() for p in paths}
    with pytest.raises(OutputExistsError, match=r"TINY_seed0_split1\.mat already exists"):
        write_splits(root, "TINY", n=3, seed=0, out=root / "splits")
    assert not (root / "splits" / "TINY_seed0_split3.mat").exists()  # nothing written
    assert {p: p.read_bytes() for p in paths} == before
    user = root / "mine"
    user.write_text("not a folder")
    with pytest.raises(OutputExistsError, match="is a file"):
        write_splits(root, "TINY", n=1, seed=0, out=user)


def test_split_file_must_exist_and_belong_to_the_dataset(tiny_xlsa17):
    root, paths = _split_paths(tiny_xlsa17, n=1)
    with pytest.raises(DataError, match=r"split file .*nope\.mat does not exist"):
        load_xlsa17(root, "TINY", splits=root / "nope.mat")
    other = tiny_xlsa17(name="OTHER", att_splits={"allclasses_names": [f"k{i}" for i in range(6)]})
    with pytest.raises(DataError, match="drawn for another dataset"):
        load_xlsa17(other, "OTHER", splits=paths[0])


def test_command_writes_files_and_refuses_bad_input_with_exit_2(tiny_xlsa17, capsys):
    root = tiny_xlsa17()
    out = root / "sp"
    args = ["splits", "TINY", "--data-root", str(root), "--n", "2", "--seed", "5", "--out"]
    assert main([*args, str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / f"TINY_seed5_split{k}.mat") for k in (1, 2)]
    for bad, says in (
        ([*args, str(out)], "already exists"),  # the files of the first call
        (["splits", "NOPE", "--data-root", str(root), "--n", "1", "--out", str(out)], "'NOPE'"),
        (["splits", "TINY", "--data-root", str(root), "--n", "0", "--out", str(out)], "got 0"),
    ):
        assert main(bad) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1  # one paragraph


# ---------------------------------------------------------------------- runs
def _cfg(root: Path, split: Path | None, out_dataset: str = "TINY"):
    sets = {
        "data": {"splits": str(split)} if split else {},
        "classifier": {"kind": "method"},
        "selection": {"health": False},
    }
    return resolve_run_config("eszsl", out_dataset, data_root=str(root), overrides=sets, seeds=[0])


def _t1_classes(out: Path) -> set[int]:
    res = json.loads((out / "results.json").read_text())
    return {int(c) for c in res["seeds"]["0"]["result"]["extra"]["per_class"]["t1"]}


def test_a_run_on_a_drawn_split_tests_its_unseen_classes(tiny_xlsa17, tmp_path):
    root, paths = _split_paths(tiny_xlsa17, n=1)
    cfg = _cfg(root, paths[0])
    assert cfg.data.splits == str(paths[0]) and cfg.to_dict()["data"]["splits"] == str(paths[0])
    ds = load_xlsa17(root, "TINY", splits=cfg.data.splits)
    run(cfg, tmp_path / "r", echo=False, dataset=ds)
    assert _t1_classes(tmp_path / "r") == set(ds.unseen_classes.tolist())


def test_the_runner_reads_data_splits(tiny_xlsa17, tmp_path):
    root, paths = _split_paths(tiny_xlsa17, n=1)
    run(_cfg(root, paths[0]), tmp_path / "r", echo=False)
    drawn = load_xlsa17(root, "TINY", splits=paths[0]).unseen_classes
    assert _t1_classes(tmp_path / "r") == set(drawn.tolist())


def test_data_splits_is_refused_where_there_is_no_att_splits_file():
    with pytest.raises(ConfigError, match=r"data\.splits .*'demo'"):
        resolve_run_config("eszsl", "demo", overrides={"data": {"splits": "x.mat"}})
