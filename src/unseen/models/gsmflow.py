r"""GSMFlow's networks besides the flow: relative positioning and the contrastive network.

* :func:`semantic_anchors` and :class:`RelativePositioning` -- Sec. III-C, Eq. 8-10: the
  global semantic vector :math:`a^g = h_{max}(a - a_{max}) + h_{min}(a - a_{min}) +
  h_{med}(a - a_{med})` relative to three anchor classes of the seen semantic graph.
* :class:`ContrastiveNet` -- Sec. III-B, Eq. 1-2: :math:`g(x, a) \in (0, 1)`, the matching
  probability of a visual-semantic pair.
* :func:`prediction_entropy` and :func:`mine_boundary_samples` -- Eq. 3-4: features moved by
  gradient steps on the input toward the decision boundaries of the frozen ``g``.

The flow itself is :class:`unseen.models.flows.ConditionalCouplingFlow`.

References:
    Chen, Luo, Wang, Li, Huang, "GSMFlow: Generation Shifts Mitigating Flow for Generalized
    Zero-Shot Learning", IEEE TMM 2022 (conference version: "Mitigating Generation Shifts
    for Generalized Zero-Shot Learning", ACM MM 2021).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "ContrastiveNet",
    "RelativePositioning",
    "contrastive_loss",
    "mine_boundary_samples",
    "prediction_entropy",
    "semantic_anchors",
]


def semantic_anchors(semantics: torch.Tensor) -> torch.Tensor:
    r"""Row indices of the max, min and median anchors (Eq. 8-9).

    :math:`E_{ij}` is the cosine similarity of class vectors ``i`` and ``j`` (Eq. 8) and
    :math:`d_i = \sum_j E_{ij}` (Eq. 9). The anchors are the classes with the highest, the
    lowest and the median :math:`d_i` (for an even count, the lower median: the
    :math:`\lfloor (C-1)/2 \rfloor`-th smallest).

    Args:
        semantics: ``(C, d_a)`` class vectors (the seen classes').

    Returns:
        ``tensor([i_max, i_min, i_med])``.
    """
    a = nn.functional.normalize(semantics.double(), dim=1)
    d = (a @ a.t()).sum(1)
    order = torch.argsort(d, stable=True)
    return torch.stack([order[-1], order[0], order[(len(d) - 1) // 2]])


class RelativePositioning(nn.Module):
    r"""Eq. 10: :math:`a^g = \sum_{k \in \{max, min, med\}} \mathrm{ReLU}(W_k (a - a_k) + b_k)`.

    The anchors are a buffer (saved with the weights) set once from the seen semantics by
    :meth:`set_anchors`; the three FC + ReLU maps are trained with the flow.

    Args:
        semantic_dim: ``d_a``.
        out_dim: dimension of :math:`a^g` (paper: 1024; Fig. 7d varies it).
    """

    def __init__(self, semantic_dim: int, out_dim: int = 1024) -> None:
        super().__init__()
        self.h = nn.ModuleList(nn.Linear(semantic_dim, out_dim) for _ in range(3))
        self.register_buffer("anchors", torch.zeros(3, semantic_dim))

    @torch.no_grad()
    def set_anchors(self, seen_semantics: torch.Tensor) -> torch.Tensor:
        """Store :math:`a_{max}, a_{min}, a_{med}` of the seen classes; returns their rows."""
        idx = semantic_anchors(seen_semantics)
        self.anchors.copy_(seen_semantics[idx].to(self.anchors))
        return idx

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return sum(nn.functional.relu(h(a - anchor)) for h, anchor in zip(self.h, self.anchors))


class ContrastiveNet(nn.Module):
    r"""The contrastive network :math:`g(x, a)` (Eq. 1-2, Sec. IV-B): two linear layers,
    ReLU then sigmoid, on the pair :math:`[x, a]`.

    :meth:`scores` evaluates ``g`` for every sample against every class vector. The first
    layer is split as :math:`W_x x + W_a a + b`, so the ``(n, K)`` pairs cost one product
    for the ``n`` samples and one for the ``K`` classes, not ``n K`` products of width
    ``d + d_a``; the sum, ReLU and the last layer (a dot product) stay per pair.
    """

    def __init__(
        self, feature_dim: int, semantic_dim: int, hidden: int = 2048, n_classes: int = 0
    ) -> None:
        super().__init__()
        self.fc_x = nn.Linear(feature_dim, hidden)
        self.fc_a = nn.Linear(semantic_dim, hidden, bias=False)
        self.out = nn.Linear(hidden, 1)
        # nn.Linear's default bounds for the joint first layer (fan-in d + d_a).
        bound = (feature_dim + semantic_dim) ** -0.5
        for w in (self.fc_x.weight, self.fc_x.bias, self.fc_a.weight):
            nn.init.uniform_(w, -bound, bound)
        if n_classes > 1:
            # Start at the one-hot targets' base rate, sigmoid(b) = 1 / n_classes. From the
            # default 0.5, Eq. 2's MSE (one positive among n_classes) first drives every
            # output to 0 and saturates the sigmoid: measured on FLO validation (62 classes,
            # Adam 1e-3, 5 epochs) g ended at chance (2.8% train accuracy, outputs ~1e-6)
            # and mining could not move the entropy; from the base rate, 71% after 4 epochs.
            nn.init.constant_(self.out.bias, -math.log(n_classes - 1))

    def scores(
        self,
        x: torch.Tensor,
        class_semantics: torch.Tensor | None = None,
        class_part: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(n, K)`` matching probabilities :math:`g(x_i, a_k)`.

        ``class_part`` (:meth:`class_part`) may be passed instead of ``class_semantics`` when
        ``g`` is frozen and the same classes are scored many times (boundary mining)."""
        if class_part is None:
            class_part = self.class_part(class_semantics)
        logits = _PairLogits.apply(self.fc_x(x), class_part, self.out.weight.view(-1))
        return torch.sigmoid(logits + self.out.bias)

    def class_part(self, class_semantics: torch.Tensor) -> torch.Tensor:
        """``(K, hidden)``: :math:`W_a a_k`, the classes' share of the first layer."""
        return self.fc_a(class_semantics)


class _PairLogits(torch.autograd.Function):
    r""":math:`l_{ik} = \sum_j w_j \mathrm{ReLU}(u_{ij} + v_{kj})` for all pairs, with a
    hand-written backward.

    Autograd's version of ``relu(u[:, None] + v[None]) @ w`` keeps the ``(n, K, hidden)``
    ReLU output, then writes an ``(n, K, hidden)`` gradient of it and another of the sum
    before reducing; here the backward turns the kept activations into the 0/1 ReLU mask in
    one pass and reduces it with two batched products: :math:`\partial u_{ij} = w_j \sum_k
    \partial l_{ik} 1[\cdot > 0]` (and the same over ``i`` for ``v``), :math:`\partial w_j =
    \sum_{ik} \partial l_{ik} \mathrm{ReLU}(\cdot)`. Measured in
    ``benchmarks/gsmflow_speed.py --mining``.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        act = (u[:, None, :] + v[None, :, :]).relu_()  # (n, K, hidden)
        ctx.save_for_backward(act, w)
        return act @ w

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        act, w = ctx.saved_tensors
        n, k, h = act.shape
        gw = None
        if ctx.needs_input_grad[2]:
            gw = grad.reshape(1, n * k) @ act.reshape(n * k, h)
            gw = gw.view(h)
        if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
            return None, None, gw
        # 0/1: the ReLU's derivative at u + v (out of place: a retained graph may run again)
        mask = act.sign()
        gu = gv = None
        if ctx.needs_input_grad[0]:
            gu = torch.bmm(grad[:, None, :], mask).squeeze(1) * w  # (n, hidden)
        if ctx.needs_input_grad[1]:
            gv = torch.einsum("ik,ikh->kh", grad, mask) * w  # (K, hidden)
        return gu, gv, gw


def contrastive_loss(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 2 per sample: mean over classes of :math:`(g(x, a_i) - \\mathrm{OneHot}(x, a_i))^2`
    (the official code's MSE), ``(n,)``; ``target`` holds each sample's class column."""
    onehot = nn.functional.one_hot(target, scores.shape[1]).to(scores.dtype)
    return (scores - onehot).pow(2).mean(1)


def prediction_entropy(scores: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    r"""Eq. 3 with the sign of an entropy: :math:`-\sum_i p_i \log p_i`, ``(n,)``, where
    :math:`p_i = g(x, a_i) / \sum_k g(x, a_k)` is ``g``'s probability vector over the seen
    classes. (Eq. 3 prints :math:`\sum g \log g`, the negative entropy; maximising the
    entropy -- the text's intent -- means minimising Eq. 4's :math:`L_{con} - \lambda_1 H`.)"""
    p = scores / scores.sum(1, keepdim=True).clamp_min(eps)
    return -(p * p.clamp_min(eps).log()).sum(1)


def mine_boundary_samples(
    g: ContrastiveNet,
    x: torch.Tensor,
    target: torch.Tensor,
    class_semantics: torch.Tensor,
    steps: int,
    lr: float,
    entropy_weight: float,
    batch_size: int = 256,
    trace: list[float] | None = None,
    chunk: int = 64,
    class_groups: int = 0,
) -> torch.Tensor:
    r"""Boundary samples :math:`x^+` (Eq. 4): ``steps`` gradient steps on the input features
    that minimise :math:`L_{con}(x) - \lambda_1 H(x)` with ``g`` frozen -- the entropy of
    ``g``'s prediction rises (toward the decision boundaries) while the contrastive loss is
    kept low.

    The loss of a batch is the mean over a batch of ``batch_size`` (as the official code's
    ``MSELoss`` with its ``aug_lr``), so ``lr`` is the official value; a smaller last batch
    is scaled as a full one, giving every sample the same step.

    Args:
        g: the trained contrastive network (its parameters are not updated).
        x: ``(n, d)`` features; target: ``(n,)`` column of each sample's class in
            ``class_semantics``.
        class_semantics: ``(K, d_a)`` seen class vectors.
        steps: K of Eq. 4 (paper: 20 or 30; Fig. 7f).
        lr: :math:`\eta` (official: 20-100).
        entropy_weight: :math:`\lambda_1` (paper: 1-20; Fig. 7a).
        trace: if given, receives the mean entropy of every step (``steps + 1`` values,
            the first before any step), for tests and figures.
        chunk: samples computed at a time (the same result for any value: each sample's
            step depends on that sample only). ``g`` materialises ``(chunk, K, hidden)``
            pair activations; small chunks stay in cache and avoid the allocator's page
            faults (measured on FLO: 236 s wall, 103 s of it system time, in chunks of 256).
        class_groups: 0 (Eq. 1-3): every sample against all ``K`` classes. ``m > 0`` (the
            official code's way): the samples in random groups of ``m`` (torch's global RNG),
            each scored only against the classes present in its group.

    Returns:
        ``(n, d)`` moved copies of ``x`` (detached).
    """
    sums = torch.zeros(steps + 1, dtype=torch.float64)
    with torch.no_grad():  # g is frozen: its class side is the same at every step
        class_part = g.class_part(class_semantics)
    if class_groups > 0:
        out = torch.empty_like(x)
        order = torch.randperm(len(x), device=x.device)
        for group in order.split(class_groups):
            classes, local = torch.unique(target[group], return_inverse=True)
            part = class_part[classes]
            out[group] = _mine(
                g, x[group], local, part, steps, lr, entropy_weight, batch_size, sums, chunk
            )
    else:
        out = _mine(g, x, target, class_part, steps, lr, entropy_weight, batch_size, sums, chunk)
    if trace is not None:
        trace.extend((sums / max(len(x), 1)).tolist())
    return out


def _mine(
    g: ContrastiveNet,
    x: torch.Tensor,
    target: torch.Tensor,
    class_part: torch.Tensor,
    steps: int,
    lr: float,
    entropy_weight: float,
    batch_size: int,
    sums: torch.Tensor,
    chunk: int,
) -> torch.Tensor:
    """Eq. 4's steps for samples scored against the classes of ``class_part``; adds each
    step's summed entropy to ``sums``."""
    out = []
    for xb, yb in zip(x.split(chunk), target.split(chunk)):
        xk = xb.detach().clone()
        for k in range(steps + 1):
            xk.requires_grad_(True)
            with torch.enable_grad():
                s = g.scores(xk, class_part=class_part)
                ent = prediction_entropy(s)
                sums[k] += float(ent.detach().sum())
                if k == steps:
                    break
                loss = (contrastive_loss(s, yb) - entropy_weight * ent).sum() / batch_size
                (grad,) = torch.autograd.grad(loss, xk)
            xk = (xk - lr * grad).detach()
        out.append(xk.detach())
    return torch.cat(out) if out else x.new_zeros(0, x.shape[1])
