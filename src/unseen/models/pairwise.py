r"""Scores of a one-hidden-layer MLP on every (row, class) pair, without materialising the pairs.

CE-GZSL's comparator F([h, a]) (:class:`unseen.methods.cegzsl.Comparator`) scores every
embedding of a batch against every seen class. Its first layer splits into ``u = W_h h + b``
and ``v = W_a a``, so the scores are

.. math::

    s_{ic} = \sum_j w_j \, \mathrm{LeakyReLU}(u_{ij} + v_{cj}),

a reduction over an ``n x K x hidden`` broadcast (2048 x 82 x 2048 = 344M values at the official
FLO batch). Written as torch operations, autograd materialises that broadcast several times
(1.4 GB each in fp32) and one comparator call (forward + backward) took 8-9 s on one CPU thread,
almost all of it memory traffic. :func:`pair_mlp_scores` is a custom autograd function with
closed-form gradients,

.. math::

    \partial s / \partial u_{ij} = w_j \sum_c g_{ic} \sigma'(u_{ij} + v_{cj}), \quad
    \partial s / \partial v_{cj} = w_j \sum_i g_{ic} \sigma'(u_{ij} + v_{cj}), \quad
    \partial s / \partial w_j = \sum_{ic} g_{ic} \sigma(u_{ij} + v_{cj}),

whose forward and backward reductions are each one ``torch.compile``-d (fused, never
materialised) kernel where compilation works, and a row-chunked eager loop (broadcasts of at most
``_CHUNK_VALUES`` values, so they stay in cache, and in-place element-wise steps) where it does
not. Measured at the FLO shape on one CPU thread (the other core busy), forward + backward took
0.32-0.40 s compiled and 1.65 s chunked, against 8.9-9.6 s for the plain broadcast
(``OMP_NUM_THREADS=1 python benchmarks/pairwise.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

__all__ = ["pair_mlp_scores", "pair_mlp_scores_reference"]

_log = logging.getLogger(__name__)

#: most values of one row chunk's broadcast in the eager path (2M fp32 = 8 MB: cache-sized)
_CHUNK_VALUES = 1 << 21

#: "auto" (compile, falling back to the chunked loop if compilation fails), "compile",
#: "eager" (the chunked loop); UNSEEN_PAIRWISE overrides it, e.g. where no C++ compiler exists
BACKEND = os.environ.get("UNSEEN_PAIRWISE", "auto")


def pair_mlp_scores_reference(
    u: torch.Tensor, v: torch.Tensor, w: torch.Tensor, slope: float
) -> torch.Tensor:
    """The plain broadcast (autograd through a materialised ``(..., n, K, hidden)`` tensor):
    the definition :func:`pair_mlp_scores` is tested against."""
    return (
        F.leaky_relu(u[..., :, None, :] + v[..., None, :, :], slope) * w[..., None, None, :]
    ).sum(-1)


def _backward_kernel(
    u: torch.Tensor, v: torch.Tensor, w: torch.Tensor, g: torch.Tensor, slope: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three gradients of the module docstring, for all rows of ``u`` at once (compiled:
    one fused kernel) or for one row chunk (eager: in-place steps on a cache-sized chunk)."""
    pre = u[..., :, None, :] + v[..., None, :, :]
    g = g[..., None]
    dw = F.leaky_relu(pre, slope).mul_(g).sum((-3, -2))
    # sigma'(x) = slope + (1 - slope) [x > 0], times the upstream gradient
    gated = (pre > 0).to(pre.dtype).mul_(1.0 - slope).add_(slope).mul_(g)
    return gated.sum(-2) * w[..., None, :], gated.sum(-3) * w[..., None, :], dw


def _rows_per_chunk(u: Tensor, v: Tensor) -> int:
    k, h = v.shape[-2:]
    return max(1, _CHUNK_VALUES // max(1, k * h * u[..., 0, 0].numel()))


def _chunked_forward(u: Tensor, v: Tensor, w: Tensor, slope: float) -> Tensor:
    rows, parts = _rows_per_chunk(u, v), []
    for i in range(0, u.shape[-2], rows):
        act = F.leaky_relu_(u[..., i : i + rows, None, :] + v[..., None, :, :], slope)
        parts.append((act @ w[..., None, :, None]).squeeze(-1))  # a matrix-vector product
    return torch.cat(parts, dim=-2)


def _chunked_backward(
    u: Tensor, v: Tensor, w: Tensor, g: Tensor, slope: float
) -> tuple[Tensor, Tensor, Tensor]:
    rows, du_parts = _rows_per_chunk(u, v), []
    dv, dw = torch.zeros_like(v), torch.zeros_like(w)
    for i in range(0, u.shape[-2], rows):
        du_i, dv_i, dw_i = _backward_kernel(
            u[..., i : i + rows, :], v, w, g[..., i : i + rows, :], slope
        )
        du_parts.append(du_i)
        dv += dv_i
        dw += dw_i
    return torch.cat(du_parts, dim=-2), dv, dw


_compiled: dict[str, Callable] = {}


def _kernels() -> tuple[Callable, Callable]:
    """The (forward, backward) pair of the configured backend; compiled lazily, once."""
    if BACKEND == "eager" or _compiled.get("failed"):
        return _chunked_forward, _chunked_backward
    if is_in_torch_dispatch_mode():
        # A compiled function first called under a dispatch mode (a FLOP counter, a tracer)
        # is left running the eager reference, the full broadcast, for the rest of the
        # process: measured 0.71-0.84 s per call afterwards instead of 0.02 s. Under a mode,
        # use the chunked kernel and leave the compiled ones untouched.
        return _chunked_forward, _chunked_backward
    if "forward" not in _compiled:
        # dynamic=False: one specialised kernel per shape (a fit sees two or three: the
        # validation and final problems' batch and class counts)
        _compiled["forward"] = torch.compile(pair_mlp_scores_reference, dynamic=False)
        _compiled["backward"] = torch.compile(_backward_kernel, dynamic=False)
    return _compiled["forward"], _compiled["backward"]


def _run(which: int, *args):
    fwd, bwd = _kernels()
    try:
        return (fwd, bwd)[which](*args)
    except Exception as exc:  # compilation needs a C++ compiler (CPU) or Triton (CUDA)
        if BACKEND == "compile" or fwd is _chunked_forward:
            raise
        _log.warning(
            "torch.compile of the pairwise comparator kernel failed (%s: %s); using the "
            "chunked eager kernel (slower, same values). Set UNSEEN_PAIRWISE=eager to skip "
            "the attempt.",
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
        )
        _compiled["failed"] = True
        return (_chunked_forward, _chunked_backward)[which](*args)


class _PairScores(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, v, w, slope):  # type: ignore[override]
        ctx.save_for_backward(u, v, w)
        ctx.slope = slope
        with torch.autocast(u.device.type, enabled=False):
            return _run(0, u, v, w, slope)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        u, v, w = ctx.saved_tensors
        with torch.autocast(u.device.type, enabled=False):
            du, dv, dw = _run(1, u, v, w, g.to(u.dtype).contiguous(), ctx.slope)
        return du, dv, dw, None


def pair_mlp_scores(
    u: torch.Tensor, v: torch.Tensor, w: torch.Tensor, slope: float
) -> torch.Tensor:
    """``s[..., i, c] = sum_j w[..., j] * leaky_relu(u[..., i, j] + v[..., c, j], slope)``.

    Args:
        u: ``(..., n, hidden)`` the rows' halves of the first layer (bias included).
        v: ``(..., K, hidden)`` the classes' halves.
        w: ``(..., hidden)`` the output layer's weights (its bias is added by the caller).
        slope: the LeakyReLU's negative slope.

    Returns:
        ``(..., n, K)`` scores (bf16/fp16 inputs are computed in fp32: the kernel has no
        matrix product, so autocast would gain nothing there). Leading dimensions (the
        stacked seeds of ``--batch-seeds``) must be the same on all three inputs.
    """
    u, v, w = (t.float() if t.dtype in (torch.bfloat16, torch.float16) else t for t in (u, v, w))
    if torch.compiler.is_compiling():  # inside a compiled network: let its graph fuse this
        return pair_mlp_scores_reference(u, v, w, slope)
    return _PairScores.apply(u, v, w, slope)
