"""The gradient matching loss (GMN Eq. 2-6), mixed and per-class batches, against explicit
per-class autograd loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unseen.errors import ConfigError
from unseen.losses.gradient_matching import (
    bilinear_logits,
    class_gradients,
    gradient_matching_loss,
    grouped_gradient_matching,
)


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def problem(seed=0, n=40, d=7, d_a=5, k=4):
    g = torch.Generator().manual_seed(seed)
    A = torch.rand(k, d_a, generator=g)
    W = 0.5 * torch.randn(d, d_a, generator=g)
    b = 0.1 * torch.randn(d_a, generator=g)
    y = torch.arange(n) % k
    x = torch.rand(n, d, generator=g) + A[y] @ torch.randn(d_a, d, generator=g)
    return x, y, W, b, A


def loop_gradients(x, y, W, b, A, classes=None):
    """One autograd pass per class: the definition of g_c (Eq. 2-3) on a batch."""
    gw, gb = [], []
    for c in range(A.shape[0]) if classes is None else classes:
        Wc, bc = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
        sel = y == c
        loss = F.cross_entropy(bilinear_logits(x[sel], Wc, bc, A), y[sel])
        dw, db = torch.autograd.grad(loss, (Wc, bc), create_graph=True)
        gw.append(dw)
        gb.append(db)
    return torch.stack(gw), torch.stack(gb)


def loop_loss(x_r, y_r, x_s, y_s, W, b, A, per_row=False, lp_weight=0.0, classes=None):
    """Eq. 4 at one theta, one class at a time, from explicit autograd gradients; the mean
    over ``classes`` (default: all rows of ``A``)."""
    classes = list(range(A.shape[0])) if classes is None else classes
    gw_r, gb_r = loop_gradients(x_r, y_r, W, b, A, classes)
    gw_s, gb_s = loop_gradients(x_s, y_s, W, b, A, classes)
    out = []
    for c in range(len(classes)):
        if per_row:  # rows of W as nn.Linear stores it: one per semantic dimension
            dist = (1 - F.cosine_similarity(gw_r[c].T, gw_s[c].T, dim=1)).mean()
            dist = dist + 1 - F.cosine_similarity(gb_r[c], gb_s[c], dim=0)
        else:
            v_r = torch.cat([gw_r[c].flatten(), gb_r[c]])
            v_s = torch.cat([gw_s[c].flatten(), gb_s[c]])
            dist = 1 - F.cosine_similarity(v_r, v_s, dim=0)
        if lp_weight:
            v_r = torch.cat([gw_r[c].flatten(), gb_r[c]])
            v_s = torch.cat([gw_s[c].flatten(), gb_s[c]])
            dist = dist + lp_weight * (v_r - v_s).norm()
        out.append(dist)
    return torch.stack(out).mean()


def test_class_gradients_equal_autograd_loop():
    x, y, W, b, A = problem()
    gw, gb = class_gradients(x, y, W, b, A)
    lw, lb = loop_gradients(x, y, W, b, A)
    torch.testing.assert_close(gw, lw)
    torch.testing.assert_close(gb, lb)


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("lp_weight", [0.0, 0.3])
def test_vectorised_loss_and_its_gradient_equal_per_class_loop(per_row, lp_weight):
    x_r, y_r, W, b, A = problem(0)
    x_s, _, _, _, _ = problem(1)
    y_s = y_r.flip(0)  # different order and per-class counts equal: still every class present
    x_s = x_s.requires_grad_(True)
    fast = gradient_matching_loss(x_r, y_r, x_s, y_s, W, b, A, per_row=per_row, lp_weight=lp_weight)
    (g_fast,) = torch.autograd.grad(fast, x_s)
    slow = loop_loss(x_r, y_r, x_s, y_s, W, b, A, per_row=per_row, lp_weight=lp_weight)
    (g_slow,) = torch.autograd.grad(slow, x_s)
    torch.testing.assert_close(fast, slow)
    torch.testing.assert_close(g_fast, g_slow)
    assert fast > 0.01


def test_unequal_class_counts_and_absent_classes():
    x_r, y_r, W, b, A = problem(0, n=30, k=5)
    x_s, _, _, _, _ = problem(2, n=12, k=5)
    y_s = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 0, 1])  # classes 3, 4 absent
    loss, per_class = gradient_matching_loss(x_r, y_r, x_s, y_s, W, b, A, return_per_class=True)
    assert torch.isnan(per_class[3:]).all() and torch.isfinite(per_class[:3]).all()
    gw_r, gb_r = class_gradients(x_r, y_r, W, b, A)
    gw_s, gb_s = class_gradients(x_s, y_s, W, b, A)
    cos = [
        F.cosine_similarity(
            torch.cat([gw_r[c].flatten(), gb_r[c]]), torch.cat([gw_s[c].flatten(), gb_s[c]]), 0
        )
        for c in range(3)
    ]
    torch.testing.assert_close(loss, torch.stack([1 - v for v in cos]).mean())


def test_zero_when_synthetic_equals_real_positive_otherwise():
    x, y, W, b, A = problem()
    assert gradient_matching_loss(x, y, x.clone(), y, W, b, A).abs() < 1e-10
    # the class-mean gradient ignores the order of samples within a class
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    assert gradient_matching_loss(x, y, x[perm], y[perm], W, b, A).abs() < 1e-10
    for per_row in (False, True):
        assert gradient_matching_loss(x, y, x, y, W, b, A, per_row=per_row, lp_weight=1.0) < 1e-5
        noisy = x + 0.5 * torch.randn_like(x)
        assert gradient_matching_loss(x, y, noisy, y, W, b, A, per_row=per_row) > 1e-3
    # a synthetic set that swaps two classes' samples is penalised
    swapped = y.clone()
    swapped[y == 0], swapped[y == 1] = 1, 0
    assert gradient_matching_loss(x, y, x, swapped, W, b, A) > 1e-3


def test_float32_batch_of_cub_size_is_cheap_in_memory():
    # 256 samples of 2048-d against 150 classes of 312-d semantics: the loss builds only
    # B x B Gram matrices, never the 150 x 2048 x 312 per-class gradients.
    torch.set_default_dtype(torch.float32)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 2048, generator=g)
    y = torch.randint(150, (256,), generator=g)
    A = F.normalize(torch.rand(150, 312, generator=g), dim=1)
    W = 0.02 * torch.randn(2048, 312, generator=g)
    fake = (x + 0.1 * torch.randn(256, 2048, generator=g)).requires_grad_(True)
    loss = gradient_matching_loss(x, y, fake, y, W, torch.zeros(312), A)
    loss.backward()
    assert torch.isfinite(fake.grad).all() and 0 < loss < 1


def group_problem(counts=(6, 9, 4), s=5, seed=3):
    """Per-class groups of real (unequal counts, padded) and synthetic samples."""
    g = torch.Generator().manual_seed(seed)
    x, _, W, b, A = problem(seed, n=60, k=4)
    classes = torch.tensor([2, 0, 2])  # a class may be drawn twice (two groups)
    r = max(counts)
    x_real = torch.rand(len(classes), r, x.shape[1], generator=g) + A[classes][:, None] @ (
        torch.randn(A.shape[1], x.shape[1], generator=g)
    )
    mask = torch.arange(r)[None] < torch.tensor(counts)[:, None]
    x_fake = torch.rand(len(classes), s, x.shape[1], generator=g)
    return x_real, mask, x_fake.requires_grad_(True), classes, W, b, A


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("lp_weight", [0.0, 0.3])
def test_grouped_terms_equal_one_autograd_loop_per_group(per_row, lp_weight):
    x_real, mask, x_fake, classes, W, b, A = group_problem()
    terms = grouped_gradient_matching(
        x_real, x_fake, classes, W, b, A, real_mask=mask, per_row=per_row, lp_weight=lp_weight
    )
    assert terms.shape == (len(classes),)  # one term per group
    expected = []
    for c in range(len(classes)):  # Eq. 2-4 from autograd, on this group's samples only
        xr, xs = x_real[c][mask[c]], x_fake[c]
        yr = classes[c].repeat(len(xr))
        ys = classes[c].repeat(len(xs))
        one = [int(classes[c])]
        expected.append(loop_loss(xr, yr, xs, ys, W, b, A, per_row, lp_weight, classes=one))
    expected = torch.stack(expected)
    torch.testing.assert_close(terms, expected)
    (g_fast,) = torch.autograd.grad(terms.sum(), x_fake)
    (g_slow,) = torch.autograd.grad(expected.sum(), x_fake)
    torch.testing.assert_close(g_fast, g_slow)
    assert (terms > 0.01).all()


def test_grouped_padding_rows_carry_no_weight():
    x_real, mask, x_fake, classes, W, b, A = group_problem()
    junk = x_real.masked_fill(~mask[:, :, None], 1e3)  # padding rows: any values
    base = grouped_gradient_matching(x_real, x_fake, classes, W, b, A, real_mask=mask)
    torch.testing.assert_close(
        grouped_gradient_matching(junk, x_fake, classes, W, b, A, real_mask=mask), base
    )
    # without a mask every row counts: the same as a group cut to its rows
    full = grouped_gradient_matching(x_real[:1, :6], x_fake[:1], classes[:1], W, b, A)
    torch.testing.assert_close(full[0], base[0])
    # a synthetic group equal to its real rows (any order, any repetition pattern that
    # keeps the class mean gradient) matches exactly
    same = x_real[1:2, :9].repeat(1, 2, 1)
    zero = grouped_gradient_matching(x_real[1:2, :9], same, classes[1:2], W, b, A)
    assert zero.abs().max() < 1e-10


def test_grouped_shapes_are_checked():
    x_real, _, x_fake, classes, W, b, A = group_problem()
    with pytest.raises(ConfigError, match="grouped GM"):
        grouped_gradient_matching(x_real[0], x_fake, classes, W, b, A)
    with pytest.raises(ConfigError, match="feature sizes"):
        grouped_gradient_matching(x_real[..., :3], x_fake, classes, W, b, A)


@pytest.mark.parametrize("k", [3, 40])  # fewer classes than semantic dims, and more
def test_bilinear_logits_either_product_order_is_the_definition(k):
    g = torch.Generator().manual_seed(0)
    x, W, b = torch.randn(20, 16, generator=g), torch.randn(16, 8, generator=g), torch.randn(8)
    A = torch.randn(k, 8, generator=g)
    torch.testing.assert_close(bilinear_logits(x, W, b, A), (x @ W + b) @ A.T)
    torch.testing.assert_close(bilinear_logits(x, W, None, A), x @ W @ A.T)
