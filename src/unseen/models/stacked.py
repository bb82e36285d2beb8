"""Several seeds' copies of one network as one stacked network (``--batch-seeds``).

K networks of the same architecture (one per seed, each initialised under its own seed)
become one module whose every :class:`torch.nn.Linear` is a :class:`StackedLinear` holding
the K weight matrices as one ``(K, out, in)`` tensor. Its input carries a leading seed
dimension, ``(K, batch, in)``, and each seed's rows meet only that seed's weights (a batched
matrix product, ``torch.baddbmm``), so one forward/backward trains the K networks at once:
on a GPU, K small matrix products become one larger kernel; on a CPU the arithmetic is the
same and the gain is only fewer Python-level calls. Elementwise layers (LeakyReLU, ReLU,
Sigmoid) work on the stacked input unchanged.

:func:`stack_modules` builds the stacked module from the K networks (their values copied,
so each seed starts from exactly its sequential initialisation); :func:`unstack_into` copies
seed k's weights back into a plain network. Adam and the other elementwise optimizers update
each slice exactly as they would update that seed's own tensor.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["StackedLinear", "stack_modules", "unstack_into"]


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
        ValueError: the modules differ in structure, or hold parameters outside
            :class:`torch.nn.Linear` layers (which this stacking does not cover).
    """
    if not modules:
        raise ValueError("stack_modules needs at least one module")
    first = modules[0]
    names = [n for n, _ in first.named_modules()]
    for m in modules[1:]:
        if [n for n, _ in m.named_modules()] != names:
            raise ValueError("stack_modules: the modules differ in structure")
    for name, sub in first.named_modules():
        own = [p for p, _ in sub.named_parameters(recurse=False)]
        if own and not isinstance(sub, nn.Linear):
            raise ValueError(
                f"stack_modules: {name or 'the module'} ({type(sub).__name__}) has parameters "
                "outside nn.Linear layers; it cannot be stacked"
            )
    if isinstance(first, nn.Linear):
        return StackedLinear.from_linears(modules)  # type: ignore[arg-type]
    stacked = copy.deepcopy(first)
    for name, sub in first.named_modules():
        if isinstance(sub, nn.Linear):
            layers = [dict(m.named_modules())[name] for m in modules]
            _set_submodule(stacked, name, StackedLinear.from_linears(layers))
    return stacked


def unstack_into(stacked: nn.Module, target: nn.Module, k: int) -> nn.Module:
    """Copy seed ``k``'s weights of ``stacked`` into ``target`` (a plain module of the same
    architecture, e.g. one of the modules given to :func:`stack_modules`); returns it."""
    plain = dict(target.named_modules())
    with torch.no_grad():
        for name, sub in stacked.named_modules():
            if isinstance(sub, StackedLinear):
                layer = plain[name]
                layer.weight.copy_(sub.weight_t[k].t())
                if sub.bias is not None:
                    layer.bias.copy_(sub.bias[k])
    return target


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)
