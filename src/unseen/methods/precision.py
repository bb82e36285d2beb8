"""Mixed precision: one run-level setting (``precision: fp32 | bf16 | fp16``) for every method.

Where the low precision applies, and why:

* :meth:`MixedPrecision.autocast` -- ``torch.autocast(device_type, dtype)``, the same code path
  on CPU and CUDA -- wraps a method's set-up (``_prepare``), every training epoch and
  synthesis; :class:`~unseen.methods.base.GenerativeMethod` enters it, so no method's loop is
  written twice. Inside it, matrix products run in bf16/fp16 (2-3x the fp32 rate on CPUs with
  AVX-512 BF16 or AMX, and on tensor-core GPUs).
* Everything whose error would grow stays fp32: parameters and optimizer states (autocast never
  changes them), the outputs of every network (:func:`cast_outputs_hook`: a bf16 loss summed
  over a batch loses digits, and CPU autocast puts only a list of library losses, not the
  hand-written ones, in fp32), the flows' log-scales and log-determinants (cast back inside
  the coupling blocks, :mod:`unseen.models.flows`), and the losses that are numerically
  delicate as a whole -- gradient penalties (a double backward through the critic), MMD
  kernels (differences of large kernel sums), Sinkhorn and gradient matching (cosines of
  gradient sums) -- which the methods call through :func:`full_precision`.
* Backward passes and optimizer steps go through :meth:`MixedPrecision.step`, outside autocast
  (PyTorch's advice: the backward of an fp32 region then stays fp32), with a
  ``GradScaler`` for fp16: fp16's 5 exponent bits underflow small gradients, bf16's 8 do not.

Autocast runs with its weight-cast cache off: the cache keeps the low-precision copy of a
weight for the whole ``with`` block, and an epoch steps the optimizers inside one block, so a
cached copy would be stale after the first step (measured: a layer trained that way never
changes its output). A cache cleared at every optimizer step would save little: between two
steps most weights are used once.

fp16 is refused on the CPU (:func:`check_precision`): CPU autocast has no loss scaling and few
CPUs compute fp16 faster than fp32; bf16 is the CPU's low precision.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import nn

from unseen.errors import ConfigError

__all__ = [
    "LOW_PRECISION_DTYPES",
    "PRECISIONS",
    "MixedPrecision",
    "cast_outputs_hook",
    "check_precision",
    "fp32_region",
    "full_precision",
]

#: the accepted values of ``precision`` (run config ``run.precision``, ``--precision``)
PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
LOW_PRECISION_DTYPES = (torch.bfloat16, torch.float16)
#: device types whose autocast is switched off inside :func:`fp32_region`
_AUTOCAST_DEVICES = ("cpu", "cuda")

F = TypeVar("F", bound=Callable[..., Any])


def check_precision(precision: Any, device: str | torch.device = "cpu") -> str:
    """Return ``precision`` if it is usable on ``device``, else raise one paragraph.

    Raises:
        ConfigError: an unknown value (named in the message); fp16 on a device other than
            CUDA; bf16/fp16 on a device type without autocast here (only cpu and cuda); bf16
            on a CUDA GPU without bf16 support (before Ampere).
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ConfigError(
            f"precision must be one of {', '.join(PRECISIONS)} (run.precision or "
            f"--precision), got {precision!r}"
        )
    if precision == "fp32":
        return precision
    dev = torch.device(device)
    if dev.type not in _AUTOCAST_DEVICES:
        raise ConfigError(
            f"precision {precision} runs on cpu or cuda devices, not {str(dev)!r}; use fp32"
        )
    if precision == "fp16" and dev.type != "cuda":
        raise ConfigError(
            f"precision fp16 needs a CUDA device, the device is {str(dev)!r}: CPU autocast has "
            "no loss scaling and few CPUs compute fp16 faster than fp32; use bf16 on the CPU "
            "(fast on CPUs with AVX-512 BF16 or AMX) or fp32"
        )
    if precision == "bf16" and dev.type == "cuda" and _cuda_major(dev) < 8:
        raise ConfigError(
            f"precision bf16 needs a GPU that computes in bf16 (compute capability 8.0 or "
            f"newer; {str(dev)!r} is {_cuda_major(dev)}.x and would emulate it, slower than "
            "fp32); use fp16 or fp32 on this GPU"
        )
    return precision


def _cuda_major(dev: torch.device) -> int:
    """Compute capability (major) of a CUDA device; 99 where it cannot be asked (no CUDA
    here, an index torch does not see, ROCm): those cases are left to torch to report."""
    if torch.version.hip or not torch.cuda.is_available():
        return 99
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        return 99
    return torch.cuda.get_device_properties(index).major


@contextlib.contextmanager
def fp32_region() -> Iterator[None]:
    """Autocast off (on every device type where it is on) inside the block."""
    with contextlib.ExitStack() as stack:
        for device_type in _AUTOCAST_DEVICES:
            if torch.is_autocast_enabled(device_type):
                stack.enter_context(torch.autocast(device_type, enabled=False))
        yield


def _to_fp32(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.dtype in LOW_PRECISION_DTYPES:
        return value.float()
    return value


def full_precision(fn: F) -> F:
    """``fn`` run in fp32 even inside autocast: its low-precision tensor arguments are cast to
    fp32 and autocast is off while it runs (also for the networks it calls, e.g. the critic
    inside a gradient penalty). Outside autocast it is ``fn`` with one check added."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not any(torch.is_autocast_enabled(d) for d in _AUTOCAST_DEVICES):
            return fn(*args, **kwargs)
        with fp32_region():
            return fn(*(_to_fp32(a) for a in args), **{k: _to_fp32(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.dtype in LOW_PRECISION_DTYPES else value
    if isinstance(value, tuple | list):
        return type(value)(_cast(v, dtype) for v in value)
    return value


def cast_outputs_hook(dtype: torch.dtype) -> Callable[[nn.Module, Any, Any], Any]:
    """A forward hook returning the module's low-precision outputs (tensors, or tuples and
    lists of them) in ``dtype``, the dtype of its parameters: a network computes in autocast's
    dtype inside but answers in its own, so the losses built on its outputs are fp32."""

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        return _cast(output, dtype)

    return hook


class MixedPrecision:
    """The numeric precision of one method's training and synthesis.

    Args:
        precision: ``fp32`` (no autocast: the code path of before), ``bf16`` or ``fp16``.
        device: the method's device; its type picks the autocast (``cpu`` or ``cuda``).

    Raises:
        ConfigError: see :func:`check_precision`.
    """

    def __init__(self, precision: str = "fp32", device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.precision = check_precision(precision, self.device)
        self.dtype: torch.dtype | None = _DTYPES.get(self.precision)
        self.scaler: torch.amp.GradScaler | None = (
            torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        )

    @property
    def enabled(self) -> bool:
        """True for bf16/fp16: autocast regions, output casts and fp32 backward are active."""
        return self.dtype is not None

    def __repr__(self) -> str:
        return f"MixedPrecision({self.precision!r}, device={str(self.device)!r})"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The low-precision region (a no-op for fp32); see the module docstring."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False)

    def step(
        self, loss: torch.Tensor, *optimizers: torch.optim.Optimizer, clip: float = 0.0
    ) -> None:
        """One update of ``optimizers`` on ``loss``: zero their gradients, back-propagate
        outside autocast (scaled for fp16), clip the joint gradient norm of their parameters
        when ``clip > 0`` (unscaled first), step (a scaled step whose gradients overflowed is
        skipped and the scale lowered, as ``GradScaler`` does)."""
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        scaler = self.scaler
        with fp32_region():
            (scaler.scale(loss) if scaler is not None else loss).backward()
        if clip > 0:
            if scaler is not None:
                for opt in optimizers:
                    scaler.unscale_(opt)
            params = [p for opt in optimizers for g in opt.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, clip)
        for opt in optimizers:
            if scaler is None:
                opt.step()
            elif any(p.grad is not None for g in opt.param_groups for p in g["params"]):
                scaler.step(opt)  # (GradScaler refuses an optimizer without gradients)
        if scaler is not None:
            scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The loss scaler's state (fp16; empty otherwise), for checkpoints: a resumed fp16
        run continues with the scale it had reached."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
