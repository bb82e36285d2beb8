"""The shared suite every registered method must pass (sklearn's parametrize_with_checks idea).

Each method is fitted a couple of epochs on a tiny problem with tiny networks; the sizes come
from ``TINY`` (methods without an entry use their defaults, so keep those small-capable).
The methods train on the ``device`` fixture's device: ``UNSEEN_TEST_DEVICE=cuda`` runs the
suite on a GPU (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import fit_killed
from tinydata import tiny_dataset
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError, DataError
from unseen.methods import GenerativeMethod, available_methods, get_method

# Tiny settings per method so the suite stays fast; add one line per new method.
TINY: dict[str, dict] = {
    "clswgan": dict(
        epochs=2, batch_size=16, hidden_g=16, hidden_d=16, critic_steps=2, pretrain_epochs=2
    ),
    "tlcoupling": dict(
        epochs=2,
        batch_size=16,
        hidden_g=16,
        hidden_d=16,
        hidden_i=(16,),
        hidden_d2=16,
        hidden_d3=16,
        critic_steps=2,
        pretrain_epochs=2,
    ),
    "gmn": dict(
        epochs=2, batch_size=16, noise_dim=4, hidden_g=(16,), hidden_d=(16,), critic_steps=2
    ),
    "izf": dict(epochs=2, batch_size=16, n_blocks=2, hidden=8),
    "gsmflow": dict(
        epochs=2,
        batch_size=16,
        n_blocks=2,
        hidden=8,
        semantic_out=8,
        contrastive_hidden=8,
        contrastive_epochs=1,
        mining_steps=2,
    ),
    "cvae": dict(epochs=2, batch_size=16, hidden=16, lambda_c=1.0, lambda_immd=0.1),
    "meanreg": dict(epochs=2, batch_size=16, hidden=8),
    "eszsl": dict(grid=[0.01, 1.0, 100.0]),
    "seen-softmax": dict(epochs=2, batch_size=16),
    "fvaegan": dict(
        epochs=2,
        batch_size=16,
        hidden_e=16,
        hidden_g=16,
        hidden_d=16,
        critic_steps=2,
    ),
    "cegzsl": dict(
        epochs=2,
        batch_size=16,
        hidden_g=16,
        hidden_d=16,
        embed_dim=16,
        proj_dim=8,
        hidden_f=16,
        critic_steps=2,
    ),
    "cgan-immd": dict(
        epochs=2, batch_size=16, hidden_g=16, hidden_d=16, critic_steps=2, pretrain_epochs=2
    ),
}

TINY["tfvaegan"] = TINY["fvaegan"]  # f-VAEGAN's sizes (its decoder and F are hidden_g wide)

METHODS = sorted(available_methods())


@pytest.fixture(scope="module")
def task() -> ZSLTask:
    return ZSLTask(tiny_dataset(n_per_class=12))


def make(name: str, seed: int = 0, device: str = "cpu", **kw) -> GenerativeMethod:
    return get_method(name)(seed=seed, device=device, **{**TINY.get(name, {}), **kw})


def same_result(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality on the CPU; on CUDA equality within 1e-4, because CUDA kernels that
    add with atomics (index_add, the backward of a gather) sum in a varying order."""
    if a.device.type != "cuda":
        return bool(torch.equal(a, b))
    return bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4))


def test_registry_lists_methods():
    assert "clswgan" in METHODS
    with pytest.raises(ConfigError, match="unknown method"):
        get_method("no-such-method")


@pytest.mark.parametrize("name", METHODS)
def test_fit_and_sample_shapes(name, task, device):
    m = make(name, device=device).fit(task.train)
    assert m.epoch_ == m.config.epochs and len(m.history_) == m.config.epochs
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in m.history_)
    sem = task.train.semantics[task.unseen_classes]
    x = m.sample(sem, 5)
    assert x.shape == (len(sem) * 5, task.train.feature_dim)
    assert torch.isfinite(x).all()
    xs, ys = m.synthesize(task.unseen_classes, task.train.semantics, 3)
    assert xs.shape[0] == ys.shape[0] == 3 * len(task.unseen_classes)
    assert ys.tolist() == task.unseen_classes.repeat_interleave(3).tolist()


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_result(name, task, device):
    sem = task.train.semantics[task.unseen_classes]
    out = []
    for seed in (0, 0, 1):
        m = make(name, seed=seed, device=device).fit(task.train)
        torch.manual_seed(123)
        out.append(m.sample(sem, 4))
    assert same_result(out[0], out[1])
    assert not torch.equal(out[0], out[2])


@pytest.mark.parametrize("name", METHODS)
def test_save_load_round_trip(name, task, tmp_path, device):
    m = make(name, device=device).fit(task.train)
    m.save(tmp_path / "m.pt")
    loaded = GenerativeMethod.load(tmp_path / "m.pt", device=device)
    assert type(loaded) is type(m) and loaded.config == m.config
    sem = task.train.semantics[task.unseen_classes]
    torch.manual_seed(5)
    a = m.sample(sem, 4)
    torch.manual_seed(5)
    b = loaded.sample(sem, 4)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", METHODS)
def test_resume_after_kill_equals_uninterrupted(name, task, tmp_path, device):
    full = make(name, epochs=3, device=device).fit(task.train)

    ckpt = tmp_path / "ckpt.pt"
    fit_killed(make(name, epochs=3, device=device), task.train, ckpt)
    resumed = make(name, epochs=3, device=device).fit(task.train, checkpoint=ckpt)
    assert resumed.epoch_ == 3
    for (k, a), (_, b) in zip(
        full.nets_.state_dict().items(), resumed.nets_.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=k)


def test_model_saved_before_a_config_field_existed_still_loads(task, tmp_path):
    """A field added later (its default keeps the old behaviour) is filled in on load."""
    m = make("gsmflow").fit(task.train)
    m.save(tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    del state["config"]["prior_scale"]  # as written before the field was added
    torch.save(state, tmp_path / "old.pt")
    loaded = GenerativeMethod.load(tmp_path / "old.pt")
    assert loaded.config == m.config
    state["config"]["hidden"] += 1  # a saved value that differs is still refused
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="another"):
        make("gsmflow", hidden=state["config"]["hidden"] - 1)._load_checkpoint(
            tmp_path / "other.pt", None
        )


@pytest.mark.parametrize("name", METHODS)
def test_checkpoint_from_other_config_is_refused(name, task, tmp_path, device):
    ckpt = tmp_path / "ckpt.pt"
    make(name, epochs=1, device=device).fit(task.train, checkpoint=ckpt)
    other = dataclasses.replace(make(name).config, batch_size=7)
    with pytest.raises(ConfigError, match="another"):
        get_method(name)(other, device=device).fit(task.train, checkpoint=ckpt)


@pytest.mark.parametrize("name", METHODS)
def test_contract_errors(name, task, tmp_path):
    with pytest.raises(RuntimeError, match=r"fit"):
        make(name).sample(task.train.semantics[:2], 2)
    with pytest.raises(TypeError, match="seen training data"):
        make(name).fit(task)  # the task itself is not accepted: only task.train
    with pytest.raises(ConfigError, match="unknown method config key"):
        make(name, not_a_key=1)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"bad\.pt"):
        GenerativeMethod.load(bad)


@pytest.mark.parametrize("name", METHODS)
def test_fit_twice_restarts_cleanly(name, task, device):
    # built and prepared (e.g. frozen parts)
    m = make(name, device=device).fit(task.train, epochs=0)
    m.fit(task.train)  # preparing again must not trip over what the first call froze
    assert m.epoch_ == m.config.epochs
