"""``compile=True`` (``unseen run --compile``): the networks are compiled in place, so state
dicts, checkpoints and saved models are those of the eager method, and the numbers agree."""

from __future__ import annotations

import torch

from tinydata import tiny_dataset
from unseen.config import resolve_run_config
from unseen.data.task import ZSLTask
from unseen.methods.base import GenerativeMethod
from unseen.methods.meanreg import MeanReg

TINY = dict(epochs=2, batch_size=16, hidden=8)


def test_a_compiled_method_trains_as_the_eager_one_and_saves_the_same_file(tmp_path):
    task = ZSLTask(tiny_dataset(n_per_class=12))
    eager = MeanReg(seed=0, **TINY).fit(task.train)
    compiled = MeanReg(seed=0, compile=True, **TINY).fit(task.train)
    assert set(compiled.nets_.state_dict()) == set(eager.nets_.state_dict())
    for key, value in eager.nets_.state_dict().items():
        torch.testing.assert_close(compiled.nets_.state_dict()[key], value, atol=1e-5, rtol=1e-5)
    compiled.save(tmp_path / "model.pt")
    loaded = GenerativeMethod.load(tmp_path / "model.pt")
    assert not loaded.compile  # a saved model loads eager; its weights are the same
    for key, value in compiled.nets_.state_dict().items():
        torch.testing.assert_close(loaded.nets_.state_dict()[key], value)


def test_the_run_config_records_compile_only_when_on():
    assert "compile" not in resolve_run_config("meanreg", "toy").to_dict()
    cfg = resolve_run_config("meanreg", "toy", compile=True)
    assert cfg.to_dict()["compile"] is True
    assert resolve_run_config("meanreg", "toy", overrides={"run": {"compile": True}}).compile
