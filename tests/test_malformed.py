"""Malformed input, as a new user types it: every case ends with exit code 2, one paragraph
naming the culprit, no traceback, and nothing the user owns changed or deleted.

Each case is ``(id, argv, needle)``: ``argv`` may use ``{tmp}`` (a scratch folder),
``{run}`` (a finished tiny run folder, shared and never modified by a case), ``{art}`` (an
artefact exported from it) and ``{feats}`` (a features file that fits it). ``needle`` must
appear in the message. After every case the scratch folder's user files are compared with
their contents before the command.
"""

# ruff: noqa: E501  (the case tables read best one case per line)
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from unseen.cli import main

DEMO = ["run", "clswgan", "--dataset", "demo", "--out", "{tmp}/o"]

# ---------------------------------------------------------------------- config values
CONFIG_CASES = [
    ("epochs=0", [*DEMO, "--set", "method.epochs=0"], "method.epochs"),
    ("epochs=-1", [*DEMO, "--set", "method.epochs=-1"], "method.epochs"),
    ("epochs=2.5", [*DEMO, "--set", "method.epochs=2.5"], "'epochs' expects a whole number"),
    ("epochs=true", [*DEMO, "--set", "method.epochs=true"], "'epochs' expects"),
    ("epochs=abc", [*DEMO, "--set", "method.epochs=abc"], "'epochs' expects"),
    ("lr=-1", [*DEMO, "--set", "method.lr=-1"], "method.lr"),
    ("lr=0", [*DEMO, "--set", "method.lr=0"], "method.lr"),
    ("lr=nan", [*DEMO, "--set", "method.lr=nan"], "method.lr must be a finite number"),
    ("lr=.nan", [*DEMO, "--set", "method.lr=.nan"], "method.lr must be a finite number"),
    ("lr=inf", [*DEMO, "--set", "method.lr=.inf"], "method.lr must be a finite number"),
    ("lr=abc", [*DEMO, "--set", "method.lr=abc"], "'lr' expects a number"),
    ("batch_size=0", [*DEMO, "--set", "method.batch_size=0"], "method.batch_size"),
    ("hidden_g=0", [*DEMO, "--set", "method.hidden_g=0"], "method.hidden_g"),
    ("critic_steps=0", [*DEMO, "--set", "method.critic_steps=0"], "method.critic_steps"),
    ("beta1=1", [*DEMO, "--set", "method.beta1=1.0"], "method.beta1"),
    ("pretrain_lr=-1", [*DEMO, "--set", "method.pretrain_lr=-1"], "method.pretrain_lr"),
    ("noise_dim=-3", [*DEMO, "--set", "method.noise_dim=-3"], "method.noise_dim"),
    ("gmn critic", ["run", "gmn", "--dataset", "demo", "--set", "method.critic=x"], "critic"),
    ("izf kernel", ["run", "izf", "--dataset", "demo", "--set", "method.kernel=rbf"], "kernel"),
    ("gsmflow variant", ["run", "gsmflow", "--dataset", "demo", "--set", "method.variant=z"], "z"),
    (
        "gmn hidden_g",
        ["run", "gmn", "--dataset", "demo", "--set", "method.hidden_g=[0]"],
        "hidden_g",
    ),
    ("n_synthetic=abc", [*DEMO, "--set", "selection.n_synthetic=abc"], "selection.n_synthetic"),
    ("n_synthetic=[]", [*DEMO, "--set", "selection.n_synthetic=[]"], "selection.n_synthetic"),
    ("n_synthetic=0", [*DEMO, "--set", "selection.n_synthetic=[0]"], "selection.n_synthetic"),
    ("n_synthetic=1.5", [*DEMO, "--set", "selection.n_synthetic=[1.5]"], "n_synthetic"),
    ("holdout=0", [*DEMO, "--set", "selection.holdout=0"], "selection.holdout"),
    ("holdout=1", [*DEMO, "--set", "selection.holdout=1"], "selection.holdout"),
    ("holdout=nan", [*DEMO, "--set", "selection.holdout=nan"], "selection.holdout"),
    ("eval_every=0", [*DEMO, "--set", "selection.eval_every=0"], "selection.eval_every"),
    ("calibrate=maybe", [*DEMO, "--set", "selection.calibrate=maybe"], "'calibrate' expects"),
    ("classifier lr=0", [*DEMO, "--set", "classifier.lr=0"], "classifier.lr"),
    ("classifier epochs=0", [*DEMO, "--set", "classifier.epochs=0"], "classifier.epochs"),
    ("classifier batch=-1", [*DEMO, "--set", "classifier.batch_size=-1"], "classifier.batch"),
    ("classifier wd<0", [*DEMO, "--set", "classifier.weight_decay=-1"], "weight_decay"),
    ("classifier lr_decay=2", [*DEMO, "--set", "classifier.lr_decay=2"], "classifier.lr_decay"),
    ("zsl_train", [*DEMO, "--set", "classifier.zsl_train=test"], "zsl_train"),
    ("feature_transform", [*DEMO, "--set", "data.feature_transform=zscore"], "feature_transform"),
    ("semantic_transform", [*DEMO, "--set", "data.semantic_transform=pca"], "semantic_transform"),
    ("seeds -1", [*DEMO, "--seeds", "-1"], "seed"),
    ("seeds 2**40", [*DEMO, "--seeds", str(2**40)], "seed"),
    ("seeds twice", [*DEMO, "--seeds", "0", "0"], "twice"),
    ("run.seeds=abc", [*DEMO, "--set", "run.seeds=[a]"], "seed"),
]


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _run_case(capsys, tmp_path: Path, argv: list[str], needle: str, **paths: Path) -> str:
    user = tmp_path / "user"
    user.mkdir(exist_ok=True)
    (user / "notes.txt").write_text("mine")
    before = _snapshot(tmp_path)
    args = [a.format(tmp=tmp_path, **paths) for a in argv]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}: {err}"
    assert "Traceback" not in err
    assert needle in err, err
    assert err.strip().count("\n") == 0, f"not one paragraph: {err}"
    after = _snapshot(tmp_path)
    lost = {k: v for k, v in before.items() if after.get(k) != v}
    assert not lost, f"changed or deleted: {sorted(lost)}"
    assert not (tmp_path / "o").exists(), "a refused run left an output folder"
    return err


@pytest.mark.parametrize(
    ("argv", "needle"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES]
)
def test_bad_config_values(capsys, tmp_path, argv, needle):
    _run_case(capsys, tmp_path, argv, needle)


# ---------------------------------------------------------------------- paths
PATH_CASES = [
    ("config is a folder", [*DEMO, "--config", "{tmp}/user"], "is a folder"),
    ("config is binary", [*DEMO, "--config", "{tmp}/user/blob.yaml"], "not a text"),
    ("config missing", [*DEMO, "--config", "{tmp}/nope.yaml"], "does not exist"),
    ("config is a list", [*DEMO, "--config", "{tmp}/user/list.yaml"], "mapping"),
    ("out under a file", [*DEMO[:-1], "{tmp}/user/notes.txt/o"], "notes.txt"),
    ("out is a file", [*DEMO[:-1], "{tmp}/user/notes.txt"], "not a folder"),
    ("grid is a folder", ["bench", "{tmp}/user", "--list"], "is a folder"),
    ("grid missing", ["bench", "{tmp}/nope.yaml", "--list"], "does not exist"),
    ("sweep is a folder", ["sweep", "{tmp}/user"], "is a folder"),
    ("sweep is binary", ["sweep", "{tmp}/user/blob.yaml"], "not a text"),
]


@pytest.fixture
def user_files(tmp_path: Path) -> Path:
    user = tmp_path / "user"
    user.mkdir()
    (user / "blob.yaml").write_bytes(bytes(range(256)))
    (user / "list.yaml").write_text("- 1\n- 2\n")
    return user


@pytest.mark.parametrize(
    ("argv", "needle"), [c[1:] for c in PATH_CASES], ids=[c[0] for c in PATH_CASES]
)
def test_bad_paths(capsys, tmp_path, user_files, argv, needle):
    _run_case(capsys, tmp_path, argv, needle)


def test_read_only_output_folder(capsys, tmp_path, monkeypatch):
    """``--out`` inside a folder the user cannot write to (simulated: tests may run as root)."""
    import errno
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    real_mkdir = os.mkdir

    def mkdir(path, *a, **kw):
        if str(path).startswith(str(ro)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_mkdir(path, *a, **kw)

    monkeypatch.setattr(os, "mkdir", mkdir)
    err = _run_case(capsys, tmp_path, [*DEMO[:-1], "{tmp}/ro/o"], "permission denied")
    assert str(ro / "o") in err


def test_unexpected_errors_are_one_paragraph_and_debug_shows_them(capsys, monkeypatch):
    import unseen.cli as cli

    def boom(args):
        raise ValueError("line one\n\nline two")

    monkeypatch.setitem(cli.COMMANDS, "methods", boom)
    assert main(["methods"]) == 2
    err = capsys.readouterr().err
    assert "internal error (ValueError: line one line two)" in err and "UNSEEN_DEBUG" in err
    assert err.strip().count("\n") == 0
    monkeypatch.setenv("UNSEEN_DEBUG", "1")
    with pytest.raises(ValueError):
        main(["methods"])


# ---------------------------------------------------------------------- data files
def _native(path: Path, **changes) -> Path:
    """A valid native dataset (the tiny synthetic one) with ``changes`` applied."""
    import numpy as np

    from tinydata import tiny_dataset

    ds = tiny_dataset(n_per_class=10)
    data = {
        "features": ds.features,
        "labels": ds.labels,
        "semantics": ds.semantics,
        "class_names": np.array(ds.class_names, dtype=str),
        "trainval": ds.trainval,
        "test_seen": ds.test_seen,
        "test_unseen": ds.test_unseen,
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value(data) if callable(value) else value
    np.savez(path, **data)
    return path


def _bad_data(folder: Path) -> None:
    import numpy as np

    empty = np.array([], dtype=np.int64)
    _native(folder / "no_test_seen.npz", test_seen=empty)
    _native(folder / "no_test_unseen.npz", test_unseen=empty)
    _native(folder / "no_trainval.npz", trainval=empty)
    _native(folder / "zero_dim.npz", features=lambda d: d["features"][:, :0])
    _native(
        folder / "dup_index.npz",
        trainval=lambda d: np.concatenate([d["trainval"], d["trainval"][:2]]),
    )
    _native(
        folder / "overlap.npz",
        test_seen=lambda d: np.concatenate([d["test_seen"], d["trainval"][:1]]),
    )
    _native(folder / "constant.npz", features=lambda d: np.ones_like(d["features"]))
    _native(
        folder / "nan.npz",
        features=lambda d: np.where(
            np.arange(d["features"].size).reshape(d["features"].shape) == 7, np.nan, d["features"]
        ),
    )
    _native(folder / "labels_range.npz", labels=lambda d: d["labels"] + 100)
    _native(folder / "sem_nan.npz", semantics=lambda d: d["semantics"] * np.nan)
    _native(folder / "names.npz", class_names=lambda d: d["class_names"][:-1])
    _native(folder / "no_features.npz", features=None)
    _native(folder / "feat_3d.npz", features=lambda d: d["features"][:, :, None])
    _native(folder / "split_range.npz", test_unseen=lambda d: d["test_unseen"] + 1000)
    _native(
        folder / "seen_unseen.npz",
        test_unseen=lambda d: np.concatenate([d["test_unseen"], d["test_seen"][:1]]),
    )
    (folder / "text.npz").write_text("features,labels\n")
    np.save(folder / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)


DATA = ["run", "meanreg", "--out", "{tmp}/o", "--dataset"]
DATA_CASES = [
    ("empty test_seen", [*DATA, "{tmp}/data/no_test_seen.npz"], "test_seen' is empty"),
    ("empty test_unseen", [*DATA, "{tmp}/data/no_test_unseen.npz"], "test_unseen' is empty"),
    ("empty trainval", [*DATA, "{tmp}/data/no_trainval.npz"], "trainval' is empty"),
    ("0-d features", [*DATA, "{tmp}/data/zero_dim.npz"], "0 dimensions"),
    ("duplicated index", [*DATA, "{tmp}/data/dup_index.npz"], "more than once"),
    ("splits overlap", [*DATA, "{tmp}/data/overlap.npz"], "share 1 image"),
    ("constant features", [*DATA, "{tmp}/data/constant.npz"], "constant"),
    ("NaN features", [*DATA, "{tmp}/data/nan.npz"], "NaN"),
    ("labels out of range", [*DATA, "{tmp}/data/labels_range.npz"], "labels range"),
    ("NaN semantics", [*DATA, "{tmp}/data/sem_nan.npz"], "NaN"),
    ("class names count", [*DATA, "{tmp}/data/names.npz"], "class_names"),
    ("no features", [*DATA, "{tmp}/data/no_features.npz"], "features"),
    ("3-d features", [*DATA, "{tmp}/data/feat_3d.npz"], "2-D"),
    ("split out of range", [*DATA, "{tmp}/data/split_range.npz"], "indexes image"),
    ("seen class unseen", [*DATA, "{tmp}/data/seen_unseen.npz"], "disjoint"),
    ("not an npz", [*DATA, "{tmp}/data/text.npz"], "text.npz"),
    ("npz missing", [*DATA, "{tmp}/data/nope.npz"], "nope.npz"),
    ("xlsa17 root missing", [*DATA, "FLO", "--data-root", "{tmp}/nope"], "nope"),
    ("xlsa17 root is a file", [*DATA, "FLO", "--data-root", "{tmp}/data/text.npz"], "text.npz"),
    ("xlsa17 name unknown", [*DATA, "MARS", "--data-root", "{tmp}/data"], "MARS"),
    ("synthetic unknown", [*DATA, "MARS-synthetic", "--data-root", "{tmp}/data"], "MARS"),
    ("datasets root missing", ["datasets", "--data-root", "{tmp}/nope"], "nope"),
    ("datasets root empty", ["datasets", "--data-root", "{tmp}/data"], "no dataset"),
    ("convert root missing", ["convert", "--data-root", "{tmp}/nope", "--dataset", "FLO",
                              "--out", "{tmp}/x.npz"], "nope"),
]  # fmt: skip


@pytest.fixture
def bad_data(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    _bad_data(tmp_path / "data")
    return tmp_path / "data"


@pytest.mark.parametrize(
    ("argv", "needle"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES]
)
def test_bad_data(capsys, tmp_path, bad_data, argv, needle):
    _run_case(capsys, tmp_path, argv, needle)


def test_one_pseudo_unseen_class_is_warned_about(capsys, tmp_path):
    import numpy as np

    path = _native(tmp_path / "one.npz", val_classes=np.array([0]))
    argv = ["run", "meanreg", "--dataset", str(path), "--out", str(tmp_path / "o"), "--seeds",
            "0", "--set", "method.epochs=1", "--set", "selection.eval_every=1", "--set",
            "selection.n_synthetic=[5]", "--set", "classifier.epochs=1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "single pseudo-unseen class" in out
    results = (tmp_path / "o" / "results.json").read_text()
    assert "single pseudo-unseen class" in results


# ---------------------------------------------------------------------- a finished run
@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict[str, Path]:
    """A tiny finished run on the demo problem, its artefact and a fitting features file."""
    import numpy as np

    root = tmp_path_factory.mktemp("finished")
    run = root / "run"
    argv = ["run", "meanreg", "--dataset", "demo", "--out", str(run), "--seeds", "0",
            "--set", "method.epochs=2", "--set", "selection.eval_every=2", "--set",
            "selection.n_synthetic=[20]", "--set", "classifier.epochs=2", "--set",
            "selection.health=false", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert main(["export", str(run), "--out", str(root / "m.unseen")]) == 0
    np.save(root / "x.npy", np.random.default_rng(0).random((5, 64)).astype(np.float32))
    return {"run": run, "art": root / "m.unseen", "feats": root / "x.npy"}


def _broken_copies(tmp: Path, finished: dict[str, Path]) -> None:
    import shutil

    import numpy as np

    shutil.copytree(finished["run"], tmp / "corrupt")
    (tmp / "corrupt" / "results.json").write_text('{"method": "meanreg", "summ')
    shutil.copytree(finished["run"], tmp / "noyaml")
    (tmp / "noyaml" / "run.yaml").unlink()
    shutil.copytree(finished["run"], tmp / "badyaml")
    (tmp / "badyaml" / "run.yaml").write_text("method: [unclosed\n")
    shutil.copytree(finished["run"], tmp / "nomodel")
    (tmp / "nomodel" / "seed_0" / "model.pt").unlink()
    data = finished["art"].read_bytes()
    (tmp / "half.unseen").write_bytes(data[: len(data) // 2])
    (tmp / "zero.unseen").write_bytes(b"\0" * 1024)
    np.save(tmp / "x_wrong.npy", np.zeros((3, 7), dtype=np.float32))
    np.save(tmp / "x_nan.npy", np.full((3, 64), np.nan, dtype=np.float32))
    (tmp / "x.txt").write_text("1 2 3\n")
    (tmp / "new_bad.csv").write_text("okapi,1,2\n")
    (tmp / "new_dup.csv").write_text("demo_00," + ",".join(["0.1"] * 32) + "\n")
    (tmp / "new_nan.csv").write_text("okapi," + ",".join(["nan"] * 32) + "\n")
    (tmp / "texts.json").write_text('{"okapi": "a striped animal"}')


PREDICT = ["predict", "{art}", "--features", "{feats}"]
RUN_CASES = [
    ("export corrupt results", ["export", "{tmp}/corrupt", "--out", "{tmp}/a.unseen"], "results.json"),
    ("export no run.yaml", ["export", "{tmp}/noyaml", "--out", "{tmp}/a.unseen"], "run.yaml"),
    ("export bad run.yaml", ["export", "{tmp}/badyaml", "--out", "{tmp}/a.unseen"], "run.yaml"),
    ("export no model", ["export", "{tmp}/nomodel", "--out", "{tmp}/a.unseen"], "model.pt"),
    ("export unknown seed", ["export", "{run}", "--seed", "7", "--out", "{tmp}/a.unseen"], "seed"),
    ("export out exists", ["export", "{run}", "--out", "{tmp}/user/notes.txt"], "--force"),
    ("export not a run", ["export", "{tmp}/user", "--out", "{tmp}/a.unseen"], "user"),
    ("export device", ["export", "{run}", "--out", "{tmp}/a.unseen", "--device", "tpu"], "tpu"),
    ("predict n_synthetic -5", [*PREDICT, "--new-classes", "{tmp}/new_dup.csv", "--n-synthetic", "-5"], "--n-synthetic"),
    ("predict n_synthetic 0", [*PREDICT, "--n-synthetic", "0"], "--n-synthetic"),
    ("predict top-k 0", [*PREDICT, "--top-k", "0"], "--top-k"),
    ("predict top-k -2", [*PREDICT, "--top-k", "-2"], "--top-k"),
    ("predict seed -1", [*PREDICT, "--seed", "-1"], "--seed"),
    ("predict wrong dims", ["predict", "{art}", "--features", "{tmp}/x_wrong.npy"], "64"),
    ("predict NaN features", ["predict", "{art}", "--features", "{tmp}/x_nan.npy"], "NaN"),
    ("predict features missing", ["predict", "{art}", "--features", "{tmp}/nope.npy"], "nope.npy"),
    ("predict features format", ["predict", "{art}", "--features", "{tmp}/x.txt"], "x.txt"),
    ("predict half artefact", ["predict", "{tmp}/half.unseen", "--features", "{feats}"], "truncated or corrupt"),
    ("predict zero artefact", ["predict", "{tmp}/zero.unseen", "--features", "{feats}"], "truncated or corrupt"),
    ("predict model.pt", ["predict", "{run}/seed_0/model.pt", "--features", "{feats}"], "unseen export"),
    ("predict artefact folder", ["predict", "{tmp}/user", "--features", "{feats}"], "is a folder"),
    ("predict new wrong dims", [*PREDICT, "--new-classes", "{tmp}/new_bad.csv"], "32-d"),
    ("predict new taken name", [*PREDICT, "--new-classes", "{tmp}/new_dup.csv"], "demo_00"),
    ("predict new NaN", [*PREDICT, "--new-classes", "{tmp}/new_nan.csv"], "NaN"),
    ("predict text not allowed", [*PREDICT, "--new-text", "{tmp}/texts.json"], "text"),
    ("predict out exists", [*PREDICT, "--out", "{tmp}/user/notes.txt"], "--force"),
    ("predict calibrated after add", [*PREDICT, "--new-classes", "{tmp}/new_dup.csv", "--new-names", "okapi", "--calibrated"], "gamma"),
    ("plot bars metric", ["plot", "bars", "{run}", "--metrics", "acc", "--out", "{tmp}/f"], "acc"),
    ("plot bars not a run", ["plot", "bars", "{tmp}/user", "--out", "{tmp}/f"], "user"),
    ("plot curves corrupt", ["plot", "curves", "{tmp}/corrupt", "--out", "{tmp}/f"], "results.json"),
    ("plot tsne per-class 0", ["plot", "tsne", "{run}", "--per-class", "0", "--out", "{tmp}/f"], "--per-class"),
    ("plot tsne classes 0", ["plot", "tsne", "{run}", "--max-classes", "0", "--out", "{tmp}/f"], "--max-classes"),
    ("plot tsne seed", ["plot", "tsne", "{run}", "--seed", "9", "--out", "{tmp}/f"], "--seed 9"),
    ("plot out exists", ["plot", "curves", "{run}", "--out", "{tmp}/user/fig"], "--force"),
    ("diagnose not a run", ["diagnose", "{tmp}/user"], "run.yaml"),
    ("run finished again", ["run", "meanreg", "--dataset", "demo", "--out", "{run}", "--seeds", "0"], "another config"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "needle"), [c[1:] for c in RUN_CASES], ids=[c[0] for c in RUN_CASES]
)
def test_bad_use_of_a_finished_run(capsys, tmp_path, finished, argv, needle):
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "fig.png").write_bytes(b"my figure")
    _broken_copies(tmp_path, finished)
    before = _snapshot(finished["run"].parent)
    _run_case(capsys, tmp_path, argv, needle, **{k: str(v) for k, v in finished.items()})
    assert _snapshot(finished["run"].parent) == before, "the finished run was modified"


# ---------------------------------------------------------------------- other commands
OTHER_CASES = [
    ("extract batch 0", ["extract", "{tmp}/user", "--out", "{tmp}/f.npz", "--batch-size", "0"], "--batch-size"),
    ("extract image 0", ["extract", "{tmp}/user", "--out", "{tmp}/f.npz", "--image-size", "0"], "--image-size"),
    ("extract workers -1", ["extract", "{tmp}/user", "--out", "{tmp}/f.npz", "--workers", "-1"], "--workers"),
    ("extract fraction 1", ["extract", "{tmp}/user", "--out", "{tmp}/f.npz", "--test-fraction", "1"], "--test-fraction"),
    ("extract no images", ["extract", "{tmp}/user", "--out", "{tmp}/f.npz", "--backbone", "efficientnet-lite0", "--weights", "random"], "class sub-folders"),
    ("extract missing", ["extract", "{tmp}/nope", "--out", "{tmp}/f.npz"], "nope"),
    ("extract backbone", ["extract", "{tmp}/user", "--out", "{tmp}/f.npz", "--backbone", "vgg"], "vgg"),
    ("extract out exists", ["extract", "{tmp}/user", "--out", "{tmp}/user/notes.txt"], "--force"),
    ("toy epochs 0", ["toy", "--out", "{tmp}/t", "--epochs", "0"], "--epochs"),
    ("toy hidden 0", ["toy", "--out", "{tmp}/t", "--hidden", "0"], "--hidden"),
    ("toy panels", ["toy", "--out", "{tmp}/t", "--panels", "xyz"], "--panels"),
    ("toy seed -1", ["toy", "--out", "{tmp}/t", "--seed", "-1"], "--seed"),
    ("toy seeds -1", ["toy", "--out", "{tmp}/t", "--seeds", "0", "-1"], "--seed"),
    ("toy scale 0", ["toy", "--out", "{tmp}/t", "--semantic-scale", "0"], "--semantic-scale"),
    ("toy scale nan", ["toy", "--out", "{tmp}/t", "--semantic-scale", "nan"], "--semantic-scale"),
    ("bench jobs 0", ["bench", "configs/bench/tiny.yaml", "--jobs", "0", "--out", "{tmp}/b"], "--jobs"),
    ("bench threads 0", ["bench", "configs/bench/tiny.yaml", "--threads", "0", "--out", "{tmp}/b"], "--threads"),
    ("bench grid key", ["bench", "{tmp}/g_key.yaml", "--list", "--out", "{tmp}/b"], "colour"),
    ("bench grid entries", ["bench", "{tmp}/g_entries.yaml", "--list", "--out", "{tmp}/b"], "entries"),
    ("bench grid method", ["bench", "{tmp}/g_method.yaml", "--list", "--out", "{tmp}/b"], "--plugin"),
    ("bench grid config", ["bench", "{tmp}/g_config.yaml", "--list", "--out", "{tmp}/b"], "nowhere.yaml"),
    ("bench grid set", ["bench", "{tmp}/g_set.yaml", "--list", "--out", "{tmp}/b"], "no_such_key"),
    ("bench grid datasets", ["bench", "{tmp}/g_datasets.yaml", "--list", "--out", "{tmp}/b"], "datasets"),
    ("sweep space", ["sweep", "{tmp}/s_space.yaml", "--out", "{tmp}/s"], "space"),
    ("sweep range", ["sweep", "{tmp}/s_range.yaml", "--out", "{tmp}/s"], "low < high"),
    ("sweep trials 0", ["sweep", "configs/bench/sweeps/tiny.yaml", "--trials", "0", "--out", "{tmp}/s"], "--trials"),
    ("sweep grid of ranges", ["sweep", "{tmp}/s_grid.yaml", "--out", "{tmp}/s"], "choices"),
    ("sweep missing method", ["sweep", "{tmp}/s_nomethod.yaml", "--out", "{tmp}/s"], "method"),
    ("data fetch unknown", ["data", "fetch", "MARS", "--root", "{tmp}/d"], "MARS"),
    ("data fetch archive", ["data", "fetch", "FLO", "--root", "{tmp}/d", "--archive", "{tmp}/nope.zip"], "nope.zip"),
    ("data fetch bad zip", ["data", "fetch", "FLO", "--root", "{tmp}/d", "--archive", "{tmp}/user/notes.txt"], "notes.txt"),
    ("run unknown method", ["run", "nosuch", "--dataset", "demo", "--out", "{tmp}/o"], "--plugin"),
    ("run device", ["run", "meanreg", "--dataset", "demo", "--out", "{tmp}/o", "--device", "tpu"], "tpu"),
    ("run cuda missing", ["run", "meanreg", "--dataset", "demo", "--out", "{tmp}/o", "--device", "cuda:7"], "cuda:7"),
    ("demo device", ["demo", "--device", "tpu"], "tpu"),
    ("embed-texts missing", ["embed-texts", "{tmp}/nope.json", "--out", "{tmp}/e.npz"], "nope.json"),
]  # fmt: skip


def _bad_files(tmp: Path) -> None:
    import yaml

    tiny = yaml.safe_load(Path("configs/bench/tiny.yaml").read_text())
    for name, change in {
        "g_key": {"colour": "red"},
        "g_entries": {"entries": "clswgan"},
        "g_method": {"entries": [{"method": "nosuch"}]},
        "g_config": {"entries": [{"method": "cvae", "config": "nowhere.yaml"}]},
        "g_set": {"entries": [{"method": "cvae", "set": {"method.no_such_key": 1}}]},
        "g_datasets": {"datasets": "demo"},
    }.items():
        (tmp / f"{name}.yaml").write_text(yaml.safe_dump({**tiny, **change}))
    sweep = yaml.safe_load(Path("configs/bench/sweeps/tiny.yaml").read_text())
    for name, change in {
        "s_space": {"space": [1, 2]},
        "s_range": {"sampler": "tpe", "space": {"method.lr": {"log": [1.0, 0.1]}}},
        "s_grid": {"space": {"method.lr": {"log": [0.001, 0.1]}}},
        "s_nomethod": {"method": None},
    }.items():
        data = {**sweep, **change}
        (tmp / f"{name}.yaml").write_text(
            yaml.safe_dump({k: v for k, v in data.items() if v is not None})
        )


@pytest.mark.parametrize(
    ("argv", "needle"), [c[1:] for c in OTHER_CASES], ids=[c[0] for c in OTHER_CASES]
)
def test_bad_use_of_other_commands(capsys, tmp_path, monkeypatch, argv, needle):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    (tmp_path / "user").mkdir()
    _bad_files(tmp_path)
    _run_case(capsys, tmp_path, argv, needle)


# ---------------------------------------------------------------------- more of each kind
MORE_CASES = [
    ("set without =", [*DEMO, "--set", "method.epochs"], "section.key=value"),
    ("set without section", [*DEMO, "--set", ".epochs=3"], "section"),
    ("set empty key", [*DEMO, "--set", "method.=3"], "method"),
    ("set double =", [*DEMO, "--set", "method.epochs==3"], "'epochs' expects"),
    ("set data root missing", ["run", "meanreg", "--dataset", "FLO", "--out", "{tmp}/o", "--set", "data.root={tmp}/nope"], "nope"),
    ("set features missing", ["run", "meanreg", "--dataset", "FLO", "--out", "{tmp}/o", "--data-root", "{tmp}/xl", "--set", "data.features=nope.mat"], "nope.mat"),
    ("set semantics unknown", ["run", "meanreg", "--dataset", "FLO", "--out", "{tmp}/o", "--data-root", "{tmp}/xl", "--set", "data.semantics=words"], "words"),
    ("set classifier kind", [*DEMO, "--set", "classifier.kind=svm"], "svm"),
    ("set classifier kind method", ["run", "meanreg", "--dataset", "demo", "--out", "{tmp}/o", "--set", "classifier.kind=method"], "no classifier of its own"),
    ("run section list", [*DEMO, "--config", "{tmp}/user/section_list.yaml"], "must be a mapping"),
    ("config unknown section", [*DEMO, "--config", "{tmp}/user/section_bad.yaml"], "optimizer"),
    ("config tabs", [*DEMO, "--config", "{tmp}/user/tabs.yaml"], "not valid YAML"),
    ("config run key", [*DEMO, "--config", "{tmp}/user/run_key.yaml"], "gpus"),
    ("run device tpu in config", [*DEMO, "--set", "run.device=tpu"], "tpu"),
    ("bench device", ["bench", "configs/bench/tiny.yaml", "--device", "tpu", "--list", "--out", "{tmp}/b"], "tpu"),
    ("bench seeds -1", ["bench", "configs/bench/tiny.yaml", "--seeds", "-1", "--list", "--out", "{tmp}/b"], "seed"),
    ("bench data root", ["bench", "configs/bench/tiny.yaml", "--data-root", "{tmp}/nope", "--list", "--out", "{tmp}/b"], ""),
    ("toy panels empty", ["toy", "--out", "{tmp}/t", "--panels", ""], "--panels"),
    ("compare same folder missing", ["compare", "{tmp}/nope", "{tmp}/nope2"], "nope"),
]  # fmt: skip


@pytest.fixture
def more_files(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "section_list.yaml").write_text("method: [1, 2]\n")
    (user / "section_bad.yaml").write_text("optimizer: {lr: 1}\n")
    (user / "tabs.yaml").write_text("method:\n\tepochs: 3\n")
    (user / "run_key.yaml").write_text("run: {gpus: 2}\n")
    xl = tmp_path / "xl" / "FLO"
    xl.mkdir(parents=True)
    from conftest import tiny_arrays, write_mat

    arrays = tiny_arrays()
    write_mat(xl / "att_splits.mat", arrays["att_splits"], "v5")
    write_mat(xl / "res101.mat", arrays["res101"], "v5")


@pytest.mark.parametrize(
    ("argv", "needle"), [c[1:] for c in MORE_CASES], ids=[c[0] for c in MORE_CASES]
)
def test_more_bad_input(capsys, tmp_path, monkeypatch, more_files, argv, needle):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    if needle:
        _run_case(capsys, tmp_path, argv, needle)
    else:  # --list needs no data: listing with a missing --data-root is fine
        assert main([a.format(tmp=tmp_path) for a in argv]) == 0


ARGPARSE_CASES = [
    ("seeds without value", [*DEMO, "--seeds"]),
    ("seeds not a number", [*DEMO, "--seeds", "zero"]),
    ("unknown option", [*DEMO, "--epochs", "3"]),
    ("no dataset", ["run", "clswgan"]),
    ("unknown command", ["trian"]),
    ("plot rows choice", ["plot", "confusion", "{tmp}", "--rows", "diagonal"]),
    ("predict no features", ["predict", "{tmp}/m.unseen"]),
    ("top-k not a number", ["predict", "{tmp}/m.unseen", "--features", "x.npy", "--top-k", "all"]),
]


@pytest.mark.parametrize("argv", [c[1] for c in ARGPARSE_CASES], ids=[c[0] for c in ARGPARSE_CASES])
def test_command_line_syntax_errors(capsys, tmp_path, argv):
    """argparse's own errors: usage line + one error line, exit 2, nothing written."""
    with pytest.raises(SystemExit) as exc:
        main([a.format(tmp=tmp_path) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
