"""Files unseen writes respect the umask; model files of unknown origin get our own message."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from tinydata import tiny_dataset
from unseen.artifact import export_run, load_artifact
from unseen.config import resolve_run_config
from unseen.errors import DataError
from unseen.files import atomic_save, atomic_write_text, current_umask, load_torch_file
from unseen.methods.base import GenerativeMethod
from unseen.runner import run

TINY = {
    "method": {"epochs": 2, "batch_size": 16, "hidden": 8},
    "classifier": {"epochs": 2, "batch_size": 32},
    "selection": {"eval_every": 2, "n_synthetic": [5], "classifier_epochs": [], "health": False},
}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_current_umask_reads_without_changing(umask_022):
    assert current_umask() == 0o022
    assert current_umask() == 0o022


def test_atomic_writes_follow_the_umask(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_save({"w": torch.zeros(2)}, tmp_path / "m.pt")
    assert _modes(tmp_path) == {"a.txt": 0o644, "m.pt": 0o644}
    os.umask(0o077)
    atomic_write_text(tmp_path / "b.txt", "x")
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_every_file_of_a_run_and_its_artefact_is_readable_by_others(tmp_path, umask_022):
    ds = tiny_dataset(n_per_class=10)
    cfg = resolve_run_config("meanreg", "tiny", overrides=TINY, seeds=[0])
    run(cfg, tmp_path / "r", echo=False, dataset=ds)
    export_run(tmp_path / "r", tmp_path / "r.unseen", dataset=ds)
    modes = _modes(tmp_path)
    assert "r/results.json" in modes and "r/seed_0/model.pt" in modes and "r.unseen" in modes
    assert {k: m for k, m in modes.items() if m != 0o644} == {}


def _corrupt_files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.pt"
    torch.save({"format": "unseen-method-v1", "x": torch.ones(100)}, good)
    data = good.read_bytes()
    files = {
        "zeros": tmp_path / "zeros.pt",
        "truncated": tmp_path / "truncated.pt",
        "empty": tmp_path / "empty.pt",
        "text": tmp_path / "text.pt",
        "pickle": tmp_path / "pickle.pt",
    }
    files["zeros"].write_bytes(b"\0" * 4096)
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"].write_bytes(b"")
    files["text"].write_bytes(b"not a torch file")
    torch.save({"obj": Path("/etc")}, files["pickle"])  # a pickled object: code would run
    return files


@pytest.mark.parametrize("kind", ["zeros", "truncated", "empty", "text", "pickle"])
def test_untrusted_or_broken_model_files_get_our_message(tmp_path, kind):
    path = _corrupt_files(tmp_path)[kind]
    for load in (GenerativeMethod.load, load_artifact):  # the text case: not a pickle
        with pytest.raises(DataError) as err:
            load(path)
        text = str(err.value)
        assert str(path) in text
        assert "weights_only" not in text and "file an issue" not in text.lower()
        assert "Errno" not in text
        if kind == "pickle":
            assert "without running any code" in text
        else:
            assert "truncated or corrupt" in text


def test_folder_and_missing_model_files(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        load_torch_file(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_torch_file(tmp_path / "nope.pt")


def test_unreadable_model_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    p = tmp_path / "m.pt"
    torch.save({"a": 1}, p)
    p.chmod(0)
    with pytest.raises(DataError, match="permission denied"):
        load_torch_file(p)
