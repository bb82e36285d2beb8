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

Two batchings of Eq. 2-3 (the paper says only that g_r and g_s are "approximated over sample
batches" and must be computed over samples "of the same class"):

* :func:`gradient_matching_loss`: one mixed batch; every class present in both halves gets a
  term, the terms are averaged (ours). With B = 128 and 62 classes that is ~2 samples per
  class per estimate.
* :func:`grouped_gradient_matching`: per-class batches, shaped ``(C, R, d)`` and
  ``(C, S, d)`` (the official code: R = 60 real and S = 120 synthetic samples of each of a
  few classes on CUB); one term per group, returned per group for the caller to sum. The
  Grams are per group (batched matrix products), so the cost is C (R + S)^2 (d + d_a)
  rather than (C (R + S))^2 (d + d_a).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unseen.errors import ConfigError

__all__ = [
    "bilinear_logits",
    "class_gradients",
    "gradient_matching_loss",
    "grouped_gradient_matching",
    "residual_embedding",
]

_EPS = 1e-12


def bilinear_logits(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, semantics: torch.Tensor
) -> torch.Tensor:
    """``(N, K)`` compatibilities ``(x^T W + b^T) a_k`` (Eq. 6); ``weight`` is ``(d, d_a)``.

    The product order is picked from the shapes: with fewer classes than semantic dimensions
    (FLO: 62-82 seen classes, 1024-d) ``x (W A^T)`` is several times cheaper than
    ``(x W) A^T``; the two are equal up to rounding.
    """
    n, (d, d_a), k = x.shape[0], weight.shape, semantics.shape[0]
    if d * d_a * k + n * d * k < n * d * d_a + n * d_a * k:
        out = x @ (weight @ semantics.T)
        return out if bias is None else out + semantics @ bias
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
    dist = _distance(rs, rr, ss, per_row, lp_weight)
    loss = dist[present].mean() if bool(present.any()) else dist.sum() * 0
    if return_per_class:
        return loss, torch.where(present, dist, torch.full_like(dist, float("nan")))
    return loss


def grouped_gradient_matching(
    x_real: torch.Tensor,
    x_fake: torch.Tensor,
    classes: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    semantics: torch.Tensor,
    *,
    real_mask: torch.Tensor | None = None,
    per_row: bool = False,
    lp_weight: float = 0.0,
) -> torch.Tensor:
    """Eq. 4's cosine distance at one theta, once per per-class batch (the official batching).

    Group ``c`` holds real and synthetic samples of class ``classes[c]`` only; its term is
    the distance between the mean cross-entropy gradient over its real samples and over its
    synthetic ones (Eq. 2-3), exactly as :func:`gradient_matching_loss` computes it for one
    class. The official code sums these terms over the classes drawn in an iteration, each
    weighted by beta; the caller does that (``gm_weight * terms.sum()``).

    Args:
        x_real: ``(C, R, d)`` real features, group c all of class ``classes[c]``.
        x_fake: ``(C, S, d)`` synthetic features of the same classes; gradients flow into
            them.
        classes: ``(C,)`` class positions (rows of ``semantics``), one per group; a class
            may appear in several groups.
        weight, bias, semantics: as :func:`gradient_matching_loss` (constants).
        real_mask: ``(C, R)`` bool, ``False`` for padding rows of groups whose class has
            fewer than R real samples (they get zero weight); ``None`` = all real rows count.
        per_row, lp_weight: as :func:`gradient_matching_loss`.

    Returns:
        ``(C,)`` distances, one per group (each in [0, 2], or [0, 4] with ``per_row``, plus
        the l_2 term).
    """
    if x_real.dim() != 3 or x_fake.dim() != 3 or len(x_real) != len(x_fake):
        raise ConfigError(
            f"grouped GM needs (C, R, d) real and (C, S, d) synthetic batches, got "
            f"{tuple(x_real.shape)} and {tuple(x_fake.shape)}"
        )
    if x_real.shape[2] != x_fake.shape[2] or x_real.shape[2] != weight.shape[0]:
        raise ConfigError(
            f"feature sizes differ: real {x_real.shape[2]}, synthetic {x_fake.shape[2]}, "
            f"classifier {weight.shape[0]}"
        )
    c, r, d = x_real.shape
    s = x_fake.shape[1]
    m_r = residual_embedding(
        x_real.reshape(c * r, d), classes.repeat_interleave(r), weight, bias, semantics
    ).view(c, r, -1)
    m_s = residual_embedding(
        x_fake.reshape(c * s, d), classes.repeat_interleave(s), weight, bias, semantics
    ).view(c, s, -1)
    if real_mask is None:
        w_r = x_real.new_full((c, r), 1.0 / r)
    else:
        mask = real_mask.to(x_real.dtype)
        w_r = mask / mask.sum(1, keepdim=True).clamp_min(1)
    w_s = x_fake.new_full((c, s), 1.0 / s)

    # Per group, one joint Gram over [real; synthetic], as in gradient_matching_loss but with
    # batched products: nothing is computed across groups.
    xs = torch.cat([x_real, x_fake], 1)
    ms = torch.cat([m_r, m_s], 1)
    ws = torch.cat([w_r, w_s], 1)
    wij = ws[:, :, None] * ws[:, None, :]
    kx = torch.bmm(xs, xs.transpose(1, 2)) * wij
    km = torch.bmm(ms, ms.transpose(1, 2))

    def blocks(v: torch.Tensor):
        """(rs, rr, ss) sums of a (C, N, N, ...) per-pair value over its three blocks."""
        return (
            v[:, :r, r:].sum((1, 2)),
            v[:, :r, :r].sum((1, 2)),
            v[:, r:, r:].sum((1, 2)),
        )

    if not per_row:
        rs, rr, ss = blocks((kx + wij) * km)
    else:
        # Row j of dL/dW: sum_i w_i m_ij x_i, so <row_j^r, row_j^s> = sum_i m_ij (K_x m)_ij.
        p_r = torch.bmm(kx[:, :, :r], m_r)  # (C, N, d_a): rows against the real columns
        p_s = torch.bmm(kx[:, :, r:], m_s)
        w_rows = (
            (m_r * p_s[:, :r]).sum(1),
            (m_r * p_r[:, :r]).sum(1),
            (m_s * p_s[:, r:]).sum(1),
        )
        b_rows = blocks(wij * km)
        rs, rr, ss = ((w, b) for w, b in zip(w_rows, b_rows))
    return _distance(rs, rr, ss, per_row, lp_weight)


def _distance(rs, rr, ss, per_row: bool, lp_weight: float) -> torch.Tensor:
    """Cosine distance (plus ``lp_weight`` times the l_2 distance) from inner products.

    ``rs``, ``rr``, ``ss`` are <g_r, g_s>, |g_r|^2, |g_s|^2 per class; with ``per_row`` each
    is a pair (W rows ``(..., d_a)``, b ``(...)``): one cosine per row of W, averaged, plus
    the cosine of b (the official code's sum over parameter tensors).
    """
    if not per_row:
        dist = 1 - rs / (rr.clamp_min(_EPS).sqrt() * ss.clamp_min(_EPS).sqrt())
        sq = rr + ss - 2 * rs
    else:
        dist_w = 1 - rs[0] / (rr[0].clamp_min(_EPS).sqrt() * ss[0].clamp_min(_EPS).sqrt())
        dist_b = 1 - rs[1] / (rr[1].clamp_min(_EPS).sqrt() * ss[1].clamp_min(_EPS).sqrt())
        dist = dist_w.mean(-1) + dist_b
        sq = rr[0].sum(-1) + rr[1] + ss[0].sum(-1) + ss[1] - 2 * (rs[0].sum(-1) + rs[1])
    if lp_weight:
        dist = dist + lp_weight * sq.clamp_min(_EPS).sqrt()
    return dist
