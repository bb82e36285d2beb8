"""Seeds trained as one batched model (``unseen run --batch-seeds``).

``--seeds 0 1 2`` normally trains the seeds one after another. For a method whose
``supports_seed_batch`` is true, :func:`fit_seeds` trains them together: each seed's networks
are built under its own seed exactly as a sequential fit builds them, then stacked
(:func:`unseen.models.stacked.stack_modules`: every linear layer becomes one batched matrix
product over a leading seed axis); each seed draws its minibatches and noise from its own
random stream, a copy of the global stream its sequential fit would continue from; Adam
updates each seed's slice as it would update that seed's own tensors. After training,
:func:`members` gives each seed back as a plain method holding its slice of the weights, its
per-seed loss history and its random stream, so synthesis, the final classifiers,
checkpoints and results are per seed as before.

Same numbers as sequential training up to floating-point rounding: a batched matrix product
sums in another order than a plain one, and the difference grows over the training steps
(tests/test_seedbatch.py bounds it on a tiny problem). What it buys is on GPUs, where K small
products become one larger kernel; on a CPU the arithmetic is the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.methods.base import GenerativeMethod, get_method
from unseen.models.stacked import stack_modules, unstack_into

__all__ = ["build_stacked", "fit_seeds", "members", "restore_rng", "seed_stream"]


def build_stacked(method: GenerativeMethod, dims: dict[str, int]) -> None:
    """Give ``method`` (with ``seed_batch_`` set) the stacked networks of its seeds, their
    optimizers and one random stream per seed (called by ``fit`` in place of ``_build``)."""
    seeds = method.seed_batch_ or []
    if not type(method).supports_seed_batch:
        raise ConfigError(f"{method.name} cannot train seeds as one batched model")
    built, streams, cpu_states = [], [], []
    for seed in seeds:
        torch.manual_seed(seed)  # as GenerativeMethod.fit before a sequential build
        one = type(method)(
            method.config,
            device=method.device,
            seed=seed,
            precision=method.precision,
            compile=method.compile,
        )
        one.dims_ = dict(dims)
        one._build(dims)
        built.append(one)
        cpu_states.append(torch.get_rng_state())
        streams.append(_stream_copy(method.device))
    method._members = built
    method._streams = streams
    method._cpu_states = cpu_states
    # A network the method keeps per seed (``per_seed_nets``: e.g. one trained once in the
    # set-up and then frozen) is held as a list of the seeds' own modules, not stacked.
    method.nets_ = nn.ModuleDict(
        {
            key: nn.ModuleList([m.nets_[key] for m in built])
            if key in type(method).per_seed_nets
            else stack_modules([m.nets_[key] for m in built])
            for key in built[0].nets_
        }
    )
    method.optimizers_ = method._make_optimizers()


def _device_rng_state(device: torch.device) -> torch.Tensor:
    """The state of the global random stream that draws on ``device`` use."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_device_rng_state(state: torch.Tensor, device: torch.device) -> None:
    """Set the global random stream that draws on ``device`` use."""
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


def _stream_copy(device: torch.device) -> torch.Generator:
    """A generator whose state is the global stream's that draws on ``device`` would use."""
    g = torch.Generator(device=device)
    g.set_state(_device_rng_state(device))
    return g


def members(method: GenerativeMethod) -> list[GenerativeMethod]:
    """Each stacked seed of a fitted ``method`` as a plain fitted method: its weights, its
    per-seed history, and (in ``rng_after_fit_``) the random state its sequential fit would
    have left, which :func:`restore_rng` puts back before synthesis."""
    if not method.seed_batch_ or method.nets_ is None:
        raise RuntimeError("members() needs a method fitted with seeds as one batched model")
    out = []
    for k, one in enumerate(method._members):
        for key, net in one.nets_.items():
            if key not in type(method).per_seed_nets:  # those are the seed's own modules
                unstack_into(method.nets_[key], net, k)
        one.nets_.to(method.device)
        one.nets_.eval()
        one._attach_precision()
        one.epoch_ = method.epoch_
        one.history_ = [
            {key: v[k] if isinstance(v, list) else v for key, v in h.items()}
            for h in method.history_
        ]
        one.rng_after_fit_ = (method._cpu_states[k], method._streams[k].get_state())
        out.append(one)
    return out


@contextlib.contextmanager
def seed_stream(method: GenerativeMethod, k: int) -> Iterator[None]:
    """Inside the block, the global random stream of ``method``'s device is seed ``k``'s own
    stream (and advances it): code written for one seed (``torch.randperm`` and the like) then
    draws exactly what that seed's sequential fit would draw. Used for per-seed set-up work."""
    g, dev = method._streams[k], method.device
    saved = _device_rng_state(dev)
    _set_device_rng_state(g.get_state(), dev)
    try:
        yield
    finally:
        g.set_state(_device_rng_state(dev))
        _set_device_rng_state(saved, dev)


def restore_rng(method: GenerativeMethod) -> None:
    """Set the global random streams to where ``method``'s own sequential fit would have
    left them (a member of :func:`members`); nothing for a method fitted alone."""
    state = getattr(method, "rng_after_fit_", None)
    if state is None:
        return
    cpu, stream = state
    if method.device.type == "cuda":  # a CUDA fit also advanced the CPU stream
        torch.set_rng_state(cpu)
    _set_device_rng_state(stream, method.device)


def fit_seeds(
    name: str,
    config: Any,
    seeds: list[int],
    data: SeenTrainData,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    compile: bool = False,
    checkpoint: str | Path | None = None,
    **fit_options: Any,
) -> list[GenerativeMethod]:
    """Train ``seeds`` of method ``name`` (its config dataclass, or None for the defaults)
    as one batched model; return
    one fitted plain method per seed, in the order of ``seeds``. ``checkpoint`` and
    ``fit_options`` as :meth:`GenerativeMethod.fit` (a killed fit resumes from it).

    Raises:
        ConfigError: the method cannot train seeds together, or the seeds repeat.
    """
    cls = get_method(name)
    if not cls.supports_seed_batch:
        raise ConfigError(
            f"{name} cannot train seeds as one batched model yet (its training is not written "
            "with the seed-axis helpers); train the seeds one after another"
        )
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ConfigError(f"--batch-seeds needs distinct seeds, got {seeds}")
    batched = cls(config, device=device, seed=seeds[0], precision=precision, compile=compile)
    batched.seed_batch_ = list(seeds)
    batched.fit(data, checkpoint=checkpoint, **fit_options)
    return members(batched)
