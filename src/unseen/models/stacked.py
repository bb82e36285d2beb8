"""Several seeds' copies of one network as one stacked network (``--batch-seeds``).

K networks of the same architecture (one per seed, each initialised under its own seed)
become one module whose every :class:`torch.nn.Linear` is a :class:`StackedLinear` holding
the K weight matrices as one ``(K, out, in)`` tensor. Its input carries a leading seed
dimension, ``(K, batch, in)``, and each seed's rows meet only that seed's weights (a batched
matrix product, ``torch.baddbmm``), so one forward/backward trains the K networks at once:
on a GPU, K small matrix products become one larger kernel; on a CPU the arithmetic is the
same and the gain is only fewer Python-level calls. Elementwise layers (LeakyReLU, ReLU,
Sigmoid) work on the stacked input unchanged. Other layers with parameters or per-seed
buffers (e.g. a flow's coupling layers and random permutations) join through
:func:`register_stacker`, which names how K of them become one and how seed k comes back.

:func:`stack_modules` builds the stacked module from the K networks (their values copied,
so each seed starts from exactly its sequential initialisation); :func:`unstack_into` copies
seed k's weights back into a plain network. Adam and the other elementwise optimizers update
each slice exactly as they would update that seed's own tensor.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["StackedLinear", "register_stacker", "stack_modules", "unstack_into"]

#: plain layer type -> how K of them become one stacked layer
_STACKERS: dict[type, Callable[[list], nn.Module]] = {}
#: stacked layer type -> how seed k of it is copied into a plain layer
_UNSTACKERS: dict[type, Callable[[nn.Module, nn.Module, int], None]] = {}


def register_stacker(
    plain: type,
    stacked: type,
    stack: Callable[[list], nn.Module],
    unstack: Callable[[nn.Module, nn.Module, int], None],
) -> None:
    """Teach :func:`stack_modules` a layer type: ``stack(layers)`` makes the ``stacked``
    module of K ``plain`` layers, ``unstack(stacked_module, plain_module, k)`` copies seed k
    back. Its own descendants are then left to it."""
    _STACKERS[plain] = stack
    _UNSTACKERS[stacked] = unstack


class StackedLinear(nn.Module):
    """K linear layers applied to their own slice of a ``(K, batch, in)`` input.

    The weights are stored transposed, ``weight_t`` of shape ``(K, in, out)``, so that the
    batched products of the forward and backward passes read contiguous matrices: with
    ``nn.Linear``'s ``(K, out, in)`` layout the product takes a transposed view, whose
    backward ran 2.5-3x slower than K plain products on this project's CPU (one thread,
    K = 3, 64 x 2304 @ 2304 x 1024: 90-100 ms against 27-31 ms; this layout: 32-41 ms).
    ``weight`` is the ``(K, out, in)`` view, as ``nn.Linear``'s.
    """

    def __init__(self, weight_t: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight_t = nn.Parameter(weight_t)  # (K, in, out)
        self.bias = None if bias is None else nn.Parameter(bias)  # (K, out)
        self.in_features = weight_t.shape[1]
        self.out_features = weight_t.shape[2]

    @property
    def weight(self) -> torch.Tensor:
        """``(K, out, in)``: each seed's weight as ``nn.Linear`` holds it (a view)."""
        return self.weight_t.transpose(1, 2)

    @classmethod
    def from_linears(cls, layers: list[nn.Linear]) -> StackedLinear:
        weight_t = torch.stack([layer.weight.detach().t() for layer in layers]).contiguous()
        bias = None
        if layers[0].bias is not None:
            bias = torch.stack([layer.bias.detach() for layer in layers]).clone()
        return cls(weight_t, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[0] != self.weight_t.shape[0]:
            raise ValueError(
                f"a stacked layer of {self.weight_t.shape[0]} seeds takes (seeds, batch, "
                f"{self.in_features}) inputs, got {tuple(x.shape)}"
            )
        if self.bias is None:
            return torch.bmm(x, self.weight_t)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight_t)

    def extra_repr(self) -> str:
        k, out, inp = self.weight.shape
        return f"seeds={k}, in_features={inp}, out_features={out}, bias={self.bias is not None}"


def stack_modules(modules: list[nn.Module]) -> nn.Module:
    """One module computing the K ``modules`` (same architecture) on a leading seed axis.

    Raises:
        ValueError: the modules differ in structure, or hold parameters, or buffers that
            differ between them, outside :class:`torch.nn.Linear` layers and the layers of
            :func:`register_stacker` (which this stacking does not cover).
    """
    if not modules:
        raise ValueError("stack_modules needs at least one module")
    first = modules[0]
    names = [n for n, _ in first.named_modules()]
    for m in modules[1:]:
        if [n for n, _ in m.named_modules()] != names:
            raise ValueError("stack_modules: the modules differ in structure")
    replaced = _replaced(first)
    if "" in replaced:
        return _stack_one(first, modules)
    all_subs = [dict(m.named_modules()) for m in modules]
    for name, sub in first.named_modules():
        if any(name == r or name.startswith(r + ".") for r in replaced):
            continue
        if [p for p, _ in sub.named_parameters(recurse=False)]:
            raise ValueError(
                f"stack_modules: {name or 'the module'} ({type(sub).__name__}) has parameters "
                "outside nn.Linear layers and registered layers; it cannot be stacked"
            )
        for buf, value in sub.named_buffers(recurse=False):
            if any(not torch.equal(value, subs[name].get_buffer(buf)) for subs in all_subs[1:]):
                raise ValueError(
                    f"stack_modules: buffer {name}.{buf} ({type(sub).__name__}) differs between "
                    "the seeds; register a stacker for that layer"
                )
    stacked = copy.deepcopy(first)
    for name in replaced:
        _set_submodule(stacked, name, _stack_one(all_subs[0][name], [s[name] for s in all_subs]))
    return stacked


def _replaced(module: nn.Module) -> list[str]:
    """Names of the outermost submodules that are stacked as a whole (linear layers and
    registered layers)."""

    def stackable(sub: nn.Module) -> bool:
        return isinstance(sub, nn.Linear) or type(sub) in _STACKERS

    if stackable(module):
        return [""]
    out: list[str] = []
    for name, sub in module.named_modules():
        if stackable(sub) and not any(name.startswith(r + ".") for r in out):
            out.append(name)
    return out


def _stack_one(first: nn.Module, layers: list[nn.Module]) -> nn.Module:
    if type(first) in _STACKERS:
        return _STACKERS[type(first)](layers)
    return StackedLinear.from_linears(layers)  # type: ignore[arg-type]


def unstack_into(stacked: nn.Module, target: nn.Module, k: int) -> nn.Module:
    """Copy seed ``k``'s weights of ``stacked`` into ``target`` (a plain module of the same
    architecture, e.g. one of the modules given to :func:`stack_modules`); returns it."""
    plain = dict(target.named_modules())
    per_seed: list[str] = []  # modules holding one slice per seed
    with torch.no_grad():
        for name, sub in stacked.named_modules():
            if isinstance(sub, StackedLinear):
                layer = plain[name]
                layer.weight.copy_(sub.weight_t[k].t())
                if sub.bias is not None:
                    layer.bias.copy_(sub.bias[k])
                per_seed.append(name)
            elif type(sub) in _UNSTACKERS:
                _UNSTACKERS[type(sub)](sub, plain[name], k)
                per_seed.append(name)
        # Buffers elsewhere are shared by the seeds (equal when stacked), but may have been
        # set since (e.g. GSMFlow's semantic anchors, set in the set-up): copy them too.
        for name, buf in stacked.named_buffers():
            if not any(r == "" or name.startswith(r + ".") for r in per_seed):
                target.get_buffer(name).copy_(buf)
    return target


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    if not name:
        raise ValueError("stack_modules: the root module is replaced, not set")
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)
