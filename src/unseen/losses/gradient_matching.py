"""Gradient matching (GM) loss of GMN, for a bilinear compatibility classifier.

Reference:
    Sariyildiz & Cinbis, "Gradient Matching Generative Networks for Zero-Shot Learning",
    CVPR 2019, Sec. 3.2, Eq. 2-6.

The classifier is f(x, a_k) = (x^T W + b^T) a_k over the K classes whose semantics are the
rows of ``A`` (Eq. 6, with GMN's "semantic" bias b in R^{d_a}), trained with cross-entropy.
For one sample, with p = softmax(logits) and e = p - onehot(y), the gradients are

    dL/dW = x m^T,   dL/db = m,   where m = A^T e  (a d_a vector).

The per-class mean gradient over the samples i of class c is g_c = sum_i w_i [x_i; 1] m_i^T
(w_i = 1 / n_c), a (d + 1) x d_a matrix. Materialising it for every class of a batch costs
C * d * d_a floats (150 x 2048 x 312 = 384 MB on CUB), so the loss never does: inner products
of such sums of outer products reduce to Gram matrices of the batch,

    <g_c^r, g_c^s>_F = sum_{i in c (real), j in c (synthetic)} w_i w_j (x_i . x_j + 1)(m_i . m_j),

which costs O(B^2 (d + d_a)) for a batch of B and handles every class of the batch in one
pass (no Python loop over classes). :func:`class_gradients` materialises g_c explicitly, for
tests and small problems.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unseen.errors import ConfigError

__all__ = [
    "bilinear_logits",
    "class_gradients",
    "gradient_matching_loss",
    "residual_embedding",
]

_EPS = 1e-12


def bilinear_logits(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, semantics: torch.Tensor
) -> torch.Tensor:
    """``(N, K)`` compatibilities ``(x^T W + b^T) a_k`` (Eq. 6); ``weight`` is ``(d, d_a)``."""
    proj = x @ weight
    if bias is not None:
        proj = proj + bias
    return proj @ semantics.T


def residual_embedding(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    semantics: torch.Tensor,
) -> torch.Tensor:
    """``(N, d_a)`` rows ``m_i = A^T (softmax(f(x_i)) - onehot(y_i))``.

    ``y`` holds positions in the rows of ``semantics`` (0..K-1). The cross-entropy gradient
    of sample i is ``x_i m_i^T`` for ``W`` and ``m_i`` for ``b``.
    """
    p = torch.softmax(bilinear_logits(x, weight, bias, semantics), dim=1)
    e = p - F.one_hot(y, semantics.shape[0]).to(p.dtype)
    return e @ semantics


def _class_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    counts = torch.bincount(y, minlength=n_classes).to(torch.get_default_dtype())
    return 1.0 / counts.clamp_min(1)[y]


def class_gradients(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    semantics: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit per-class mean cross-entropy gradients (Eq. 2-3 on one batch).

    Returns ``(grad_W, grad_b)`` of shapes ``(K, d, d_a)`` and ``(K, d_a)``: row ``k`` is the
    gradient of the mean cross-entropy over the samples of class ``k`` (zeros for classes
    without samples). Memory ``K * d * d_a``: meant for tests and small problems;
    :func:`gradient_matching_loss` never builds these tensors.
    """
    k = semantics.shape[0]
    m = residual_embedding(x, y, weight, bias, semantics)
    w = _class_weights(y, k).to(x.dtype)
    onehot = F.one_hot(y, k).to(x.dtype) * w[:, None]  # (N, K), columns average a class
    grad_w = torch.einsum("nk,nd,ne->kde", onehot, x, m)
    grad_b = onehot.T @ m
    return grad_w, grad_b


def gradient_matching_loss(
    x_real: torch.Tensor,
    y_real: torch.Tensor,
    x_fake: torch.Tensor,
    y_fake: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    semantics: torch.Tensor,
    *,
    per_row: bool = False,
    lp_weight: float = 0.0,
    return_per_class: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """L_GM (Eq. 4) at one classifier parameter ``theta = (W, b)``, over a batch.

    For each class c present among both the real and the synthetic samples, g_r(theta) and
    g_s(theta) are the mean cross-entropy gradients over its real and its synthetic samples
    (Eq. 2-3, batch estimates); the loss is the mean over those classes of the cosine distance
    ``1 - g_r . g_s / (|g_r| |g_s|)``, plus ``lp_weight * |g_r - g_s|_2`` (the paper's optional
    l_p term, here p = 2, computable from the same Gram matrices). The expectation over theta
    is taken by the caller, which draws theta along a classifier training trajectory.

    Args:
        x_real, y_real: ``(N_r, d)`` real features and their class positions (rows of
            ``semantics``).
        x_fake, y_fake: ``(N_s, d)`` synthetic features and their class positions; gradients
            flow into ``x_fake`` (and through it into the generator).
        weight, bias: ``(d, d_a)`` and ``(d_a,)`` classifier parameters (``bias`` may be
            ``None``); treated as constants (detach them beforehand).
        semantics: ``(K, d_a)`` class embeddings of the classifier's classes.
        per_row: ``False`` (the paper): one cosine over the flattened vector theta = [W, b].
            ``True`` (the official code's variant): one cosine per row of each parameter
            tensor (per semantic dimension for W, one for b), averaged within a tensor and
            summed over tensors.
        lp_weight: weight of the l_2 distance between the gradient vectors (0 = off).
        return_per_class: also return the ``(K,)`` per-class losses (NaN for absent classes).

    Returns:
        The scalar loss (and the per-class losses). 0 when the synthetic samples equal the
        real ones class by class.
    """
    if x_real.shape[1] != x_fake.shape[1] or x_real.shape[1] != weight.shape[0]:
        raise ConfigError(
            f"feature sizes differ: real {x_real.shape[1]}, synthetic {x_fake.shape[1]}, "
            f"classifier {weight.shape[0]}"
        )
    k = semantics.shape[0]
    m_r = residual_embedding(x_real, y_real, weight, bias, semantics)
    m_s = residual_embedding(x_fake, y_fake, weight, bias, semantics)
    w_r = _class_weights(y_real, k).to(x_real.dtype)
    w_s = _class_weights(y_fake, k).to(x_fake.dtype)
    present = (torch.bincount(y_real, minlength=k) > 0) & (torch.bincount(y_fake, minlength=k) > 0)

    # One joint Gram over [real; synthetic] (fewer, larger kernels than three pairs): entry
    # (i, j) is w_i w_j [y_i = y_j] times the feature and residual inner products.
    nr = len(y_real)
    ys = torch.cat([y_real, y_fake])
    ws = torch.cat([w_r, w_s])
    xs = torch.cat([x_real, x_fake])
    ms = torch.cat([m_r, m_s])
    same = (ys[:, None] == ys[None, :]).to(xs.dtype) * (ws[:, None] * ws[None, :])
    kx = (xs @ xs.T) * same  # weighted feature Gram, zero across classes
    km = ms @ ms.T

    def by_class(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        shape = (k, *values.shape[1:])
        return values.new_zeros(shape).index_add(0, labels, values)

    def blocks(cols_r: torch.Tensor, cols_s: torch.Tensor):
        """(rs, rr, ss) per class from row values against the real / synthetic columns."""
        return (
            by_class(cols_s[:nr], y_real),
            by_class(cols_r[:nr], y_real),
            by_class(cols_s[nr:], y_fake),
        )

    if not per_row:
        gram = (kx + same) * km  # (x.x' + 1) for theta = [W; b], times m.m'
        rs, rr, ss = blocks(gram[:, :nr].sum(1), gram[:, nr:].sum(1))
    else:
        # Row j of dL/dW (one per semantic dimension) is sum_i w_i m_ij x_i; dL/db is one row.
        w_rows = blocks(ms * (kx[:, :nr] @ m_r), ms * (kx[:, nr:] @ m_s))
        gb = same * km
        b_rows = blocks(gb[:, :nr].sum(1), gb[:, nr:].sum(1))
        rs, rr, ss = ((w, b) for w, b in zip(w_rows, b_rows))
    if not per_row:
        dist = 1 - rs / (rr.clamp_min(_EPS).sqrt() * ss.clamp_min(_EPS).sqrt())
        sq = rr + ss - 2 * rs
    else:
        dist_w = 1 - rs[0] / (rr[0].clamp_min(_EPS).sqrt() * ss[0].clamp_min(_EPS).sqrt())
        dist_b = 1 - rs[1] / (rr[1].clamp_min(_EPS).sqrt() * ss[1].clamp_min(_EPS).sqrt())
        dist = dist_w.mean(1) + dist_b
        sq = rr[0].sum(1) + rr[1] + ss[0].sum(1) + ss[1] - 2 * (rs[0].sum(1) + rs[1])
    if lp_weight:
        dist = dist + lp_weight * sq.clamp_min(_EPS).sqrt()
    loss = dist[present].mean() if bool(present.any()) else dist.sum() * 0
    if return_per_class:
        return loss, torch.where(present, dist, torch.full_like(dist, float("nan")))
    return loss
