"""Malformed input, as a new user types it: every case ends with exit code 2, one paragraph
naming the culprit, no traceback, and nothing the user owns changed or deleted.

Each case is ``(id, argv, needle)``: ``argv`` may use ``{tmp}`` (a scratch folder),
``{run}`` (a finished tiny run folder, shared and never modified by a case), ``{art}`` (an
artefact exported from it) and ``{feats}`` (a features file that fits it). ``needle`` must
appear in the message. After every case the scratch folder's user files are compared with
their contents before the command.
"""

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
