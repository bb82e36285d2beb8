"""Tests of the GZSL metrics, mostly on small cases worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from unseen.eval.metrics import (
    calibrated_predict,
    confusion_matrix,
    harmonic_mean,
    per_class_accuracy,
    seen_unseen_curve,
)


# ---------------------------------------------------------------------- per-class accuracy
def test_per_class_accuracy_differs_from_overall_on_imbalanced_set():
    # 8 samples of class 0 (all right), 2 of class 1 (both predicted 0).
    # Overall: 8/10 = 0.8. Per class: (8/8 + 0/2) / 2 = 0.5.
    y_true = np.array([0] * 8 + [1] * 2)
    y_pred = np.zeros(10, dtype=int)
    assert np.mean(y_true == y_pred) == pytest.approx(0.8)
    assert per_class_accuracy(y_true, y_pred) == pytest.approx(0.5)


def test_per_class_accuracy_mean_over_given_classes_ignoring_absent_ones():
    # Class 5: 2/3 right; class 9: 1/1 right; class 7 has no sample -> ignored.
    y_true = np.array([5, 5, 5, 9])
    y_pred = np.array([5, 5, 9, 9])
    assert per_class_accuracy(y_true, y_pred) == pytest.approx((2 / 3 + 1) / 2)
    assert per_class_accuracy(y_true, y_pred, classes=np.array([9, 7, 5])) == pytest.approx(
        (2 / 3 + 1) / 2
    )
    # Restricted to class 5 only: 2/3.
    assert per_class_accuracy(y_true, y_pred, classes=np.array([5])) == pytest.approx(2 / 3)


# ---------------------------------------------------------------------- harmonic mean
def test_harmonic_mean_by_hand():
    # 2 * 0.5 * 0.25 / 0.75 = 0.25 / 0.75 = 1/3.
    assert harmonic_mean(0.5, 0.25) == pytest.approx(1 / 3)
    assert harmonic_mean(0.25, 0.5) == pytest.approx(1 / 3)
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(0.7, 0.0) == 0.0
    assert harmonic_mean(0.6, 0.6) == pytest.approx(0.6)


# ---------------------------------------------------------------------- calibrated stacking
def test_calibrated_stacking_flips_once_gamma_passes_the_score_gap():
    # Seen class 10 scores 0.6, unseen class 20 scores 0.35: the gap is 0.25.
    scores = np.array([[0.6, 0.35]])
    classes = np.array([10, 20])
    seen = np.array([10])
    for gamma, expected in [(-1.0, 10), (0.0, 10), (0.2, 10), (0.3, 20), (1.0, 20)]:
        assert calibrated_predict(scores, classes, seen, gamma).tolist() == [expected]
    # Same problem with the columns in the other order: ids, not positions, come back.
    swapped = calibrated_predict(scores[:, ::-1], classes[::-1], seen, 0.2)
    assert swapped.tolist() == [10]
    assert calibrated_predict(scores[:, ::-1], classes[::-1], seen, 0.3).tolist() == [20]


def test_calibrated_stacking_only_shifts_seen_columns():
    # Two seen classes (1, 2) and one unseen (3); gamma = 0.5 lowers 1 and 2 only.
    # Row 0: [0.9, 0.8, 0.1] -> [0.4, 0.3, 0.1]: still class 1 (seen ranking kept).
    # Row 1: [0.5, 0.2, 0.4] -> [0.0, -0.3, 0.4]: class 3.
    scores = np.array([[0.9, 0.8, 0.1], [0.5, 0.2, 0.4]])
    out = calibrated_predict(scores, np.array([1, 2, 3]), np.array([1, 2]), 0.5)
    assert out.tolist() == [1, 3]


# ---------------------------------------------------------------------- the S/U curve
# Classes [0, 1, 2]; seen {0, 1}, unseen {2}. Scores are dyadic so every difference is exact.
# A sample goes to its best unseen class once gamma > switch = max_seen - max_unseen.
#   seen test   s1: label 0, [0.75, 0,     0.25 ]  best seen 0 (right),  switch 0.5
#               s2: label 1, [0.5,  0.375, 0.125]  best seen 0 (wrong),  switch 0.375
#               s3: label 1, [0,    0.5,   0.25 ]  best seen 1 (right),  switch 0.25
#   unseen test u1: label 2, [0.25, 0,     0.5  ]  best unseen 2 (right), switch -0.25
#               u2: label 2, [0.5625, 0,   0.125]  best unseen 2 (right), switch 0.4375
# Per-class weights: class 0 has 1 seen-test sample, class 1 has 2, class 2 has 2.
#   gamma in (-inf, -0.25):   S = (1 + 1/2)/2 = 0.75, U = 0
#   gamma in (-0.25, 0.25):   u1 turns unseen:  S = 0.75, U = 0.5
#   gamma in (0.25, 0.375):   s3 turns unseen:  S = (1 + 0)/2 = 0.5, U = 0.5
#   gamma in (0.375, 0.4375): s2 turns (wrong anyway): S = 0.5, U = 0.5
#   gamma in (0.4375, 0.5):   u2 turns unseen:  S = 0.5, U = 1
#   gamma in (0.5, inf):      s1 turns unseen:  S = 0, U = 1
# Curve (U, S): (0,.75) (.5,.75) (.5,.5) (1,.5) (1,0)
# AUSUC = 0.5 * 0.75 + 0.5 * 0.5 = 0.625 (the vertical steps add no area).
# H: 0, 2*.75*.5/1.25 = 0.6, 0.5, 2*.5*1/1.5 = 2/3, 0 -> best H = 2/3 for gamma in (0.4375, 0.5).
TINY_CLASSES = np.array([0, 1, 2])
TINY_SEEN = np.array([0, 1])
TINY_SCORES_S = np.array([[0.75, 0, 0.25], [0.5, 0.375, 0.125], [0, 0.5, 0.25]])
TINY_LABELS_S = np.array([0, 1, 1])
TINY_SCORES_U = np.array([[0.25, 0, 0.5], [0.5625, 0, 0.125]])
TINY_LABELS_U = np.array([2, 2])
TINY_INTERVALS = [  # (a gamma inside the interval, S, U)
    (-1.0, 0.75, 0.0),
    (0.0, 0.75, 0.5),
    (0.3, 0.5, 0.5),
    (0.4, 0.5, 0.5),
    (0.46875, 0.5, 1.0),
    (2.0, 0.0, 1.0),
]


def tiny_curve():
    return seen_unseen_curve(
        TINY_SCORES_S, TINY_LABELS_S, TINY_SCORES_U, TINY_LABELS_U, TINY_CLASSES, TINY_SEEN
    )


def su_at(gamma, scores_s, labels_s, scores_u, labels_u, classes, seen):
    """S and U at one gamma, straight from calibrated_predict + per_class_accuracy."""
    s = per_class_accuracy(labels_s, calibrated_predict(scores_s, classes, seen, gamma))
    u = per_class_accuracy(labels_u, calibrated_predict(scores_u, classes, seen, gamma))
    return s, u


def test_tiny_example_by_hand_pointwise():
    for gamma, s, u in TINY_INTERVALS:
        got = su_at(
            gamma, TINY_SCORES_S, TINY_LABELS_S, TINY_SCORES_U, TINY_LABELS_U, TINY_CLASSES,
            TINY_SEEN,
        )  # fmt: skip
        assert got == pytest.approx((s, u)), gamma


def test_tiny_example_whole_curve_auc_and_best():
    curve = tiny_curve()
    assert np.all(np.diff(curve.gammas) > 0)
    # Distinct consecutive (U, S) points of the curve, in gamma order.
    points = [(float(u), float(s)) for u, s in zip(curve.acc_unseen, curve.acc_seen)]
    distinct = [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]
    expected = [(0, 0.75), (0.5, 0.75), (0.5, 0.5), (1, 0.5), (1, 0)]
    np.testing.assert_allclose(np.array(distinct), np.array(expected), atol=1e-12)
    assert curve.auc() == pytest.approx(0.625)
    gamma, s, u, h = curve.best()
    assert (s, u, h) == pytest.approx((0.5, 1.0, 2 / 3))
    assert 0.4375 < gamma < 0.5
    # The returned gamma really gives that S and U.
    assert su_at(
        gamma, TINY_SCORES_S, TINY_LABELS_S, TINY_SCORES_U, TINY_LABELS_U, TINY_CLASSES, TINY_SEEN
    ) == pytest.approx((s, u))


def random_problem(seed, n_seen_cls=4, n_unseen_cls=3, n=60, quantum=None):
    """Random scores; classes in a shuffled, non-sorted column order."""
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.arange(10, 10 + n_seen_cls + n_unseen_cls))
    seen = np.arange(10, 10 + n_seen_cls)
    unseen = np.arange(10 + n_seen_cls, 10 + n_seen_cls + n_unseen_cls)
    k = len(classes)
    scores_s, scores_u = rng.random((n, k)), rng.random((n, k))
    if quantum is not None:
        scores_s, scores_u = (
            np.round(scores_s / quantum) * quantum,
            np.round(scores_u / quantum) * quantum,
        )
    labels_s, labels_u = rng.choice(seen, n), rng.choice(unseen, n)
    # Make the classifier better than chance: boost the true class of most samples.
    for scores, labels in ((scores_s, labels_s), (scores_u, labels_u)):
        cols = np.searchsorted(np.sort(classes), labels)
        cols = np.argsort(classes)[cols]
        boost = rng.random(n) < 0.6
        scores[np.arange(n)[boost], cols[boost]] += 0.5
    return scores_s, labels_s, scores_u, labels_u, classes, seen


@pytest.mark.parametrize("seed", range(3))
def test_curve_matches_calibrated_predict_inside_every_interval(seed):
    problem = random_problem(seed)
    curve = seen_unseen_curve(*problem)
    assert np.all(np.diff(curve.gammas) > 0)
    assert np.all(np.diff(curve.acc_seen) <= 1e-12)
    assert np.all(np.diff(curve.acc_unseen) >= -1e-12)
    finite = curve.gammas[np.isfinite(curve.gammas)]
    edges = np.concatenate([[finite[0] - 1.0], finite, [finite[-1] + 1.0]])
    mids = (edges[:-1] + edges[1:]) / 2
    assert len(mids) == len(curve.acc_seen)
    su = np.array([su_at(gamma, *problem) for gamma in mids])
    np.testing.assert_allclose(curve.acc_seen, su[:, 0], atol=1e-12)
    np.testing.assert_allclose(curve.acc_unseen, su[:, 1], atol=1e-12)
    # AUSUC recomputed from those points: trapezoids of S over U, from (0, S_max) to (U_max, 0).
    s_pts, u_pts = su[:, 0], su[:, 1]
    area = np.sum(np.diff(u_pts) * (s_pts[1:] + s_pts[:-1]) / 2)
    assert u_pts[0] == 0 and s_pts[-1] == 0
    assert curve.auc() == pytest.approx(area)


def test_curve_end_points():
    problem = random_problem(7)
    scores_s, labels_s, scores_u, labels_u, classes, seen = problem
    curve = seen_unseen_curve(*problem)
    is_seen = np.isin(classes, seen)
    # gamma -> -inf: everything predicted seen, so U = 0 and S = accuracy among seen columns.
    s_max = per_class_accuracy(labels_s, classes[is_seen][scores_s[:, is_seen].argmax(1)])
    assert su_at(-1e6, *problem) == pytest.approx((s_max, 0.0))
    assert (curve.acc_seen[0], curve.acc_unseen[0]) == pytest.approx((s_max, 0.0))
    # gamma -> +inf: everything predicted unseen, so S = 0 and U = accuracy among unseen columns.
    u_max = per_class_accuracy(labels_u, classes[~is_seen][scores_u[:, ~is_seen].argmax(1)])
    assert su_at(1e6, *problem) == pytest.approx((0.0, u_max))
    assert (curve.acc_seen[-1], curve.acc_unseen[-1]) == pytest.approx((0.0, u_max))
    assert 0 < s_max < 1 and 0 < u_max < 1


def test_auc_of_a_curve_with_a_perfect_operating_point_is_the_rectangle():
    # Every unseen sample switches (at 0.1 or 0.2) before any seen one (at 0.5 or 0.6), so
    # for gamma in (0.2, 0.5) S = S_max and U = U_max at once: the area is S_max * U_max.
    # Seen: class 0 right (switch .5), class 1 wrong (switch .6) -> S_max = 1/2.
    # Unseen: class 2 right, class 3 right -> U_max = 1.
    classes = np.array([0, 1, 2, 3])
    scores_s = np.array([[0.9, 0.1, 0.4, 0.0], [0.9, 0.2, 0.0, 0.3]])
    scores_u = np.array([[0.5, 0.0, 0.4, 0.0], [0.0, 0.6, 0.0, 0.4]])
    curve = seen_unseen_curve(
        scores_s, np.array([0, 1]), scores_u, np.array([2, 3]), classes, np.array([0, 1])
    )
    assert curve.auc() == pytest.approx(0.5)
    assert curve.best()[1:] == pytest.approx((0.5, 1.0, 2 / 3))


@pytest.mark.parametrize("seed", range(3))
def test_best_equals_brute_force_grid(seed):
    # Scores on a 1/8 grid: every switch point is a multiple of 1/8, so a gamma grid at odd
    # multiples of 1/16 visits every interval of the curve and must find the same best H.
    problem = random_problem(seed, quantum=1 / 8)
    curve = seen_unseen_curve(*problem)
    grid = np.arange(-3, 3, 1 / 8) + 1 / 16
    h_grid = [harmonic_mean(*su_at(g, *problem)) for g in grid]
    gamma, s, u, h = curve.best()
    assert h == pytest.approx(max(h_grid))
    assert harmonic_mean(s, u) == pytest.approx(h)
    assert su_at(gamma, *problem) == pytest.approx((s, u))


@pytest.mark.parametrize("seed", range(2))
def test_best_beats_any_grid_gamma_on_continuous_scores(seed):
    problem = random_problem(seed + 10, n=150)
    gamma, s, u, h = seen_unseen_curve(*problem).best()
    grid = np.linspace(-2, 2, 2001)  # resolution 0.002
    h_grid = max(harmonic_mean(*su_at(g, *problem)) for g in grid)
    assert h >= h_grid - 1e-12
    assert su_at(gamma, *problem) == pytest.approx((s, u))


# ---------------------------------------------------------------------- confusion matrix
def test_confusion_matrix_by_hand_and_row_sums():
    # classes in the order [7, 3, 5]; rows = true class, columns = predicted class.
    # true 7: predicted 7, 7, 3     -> row [2, 1, 0]
    # true 3: predicted 5           -> row [0, 0, 1]
    # true 5: predicted 5, 5, 7, 3  -> row [1, 1, 2]
    y_true = np.array([7, 7, 7, 3, 5, 5, 5, 5])
    y_pred = np.array([7, 7, 3, 5, 5, 5, 7, 3])
    classes = np.array([7, 3, 5])
    cm = confusion_matrix(y_true, y_pred, classes)
    assert cm.tolist() == [[2, 1, 0], [0, 0, 1], [1, 1, 2]]
    assert np.issubdtype(cm.dtype, np.integer)
    assert cm.sum(1).tolist() == [3, 1, 4]
    # Per-class accuracy is the mean of diagonal / row sums: (2/3 + 0 + 2/4) / 3.
    assert per_class_accuracy(y_true, y_pred) == pytest.approx(np.mean(np.diag(cm) / cm.sum(1)))


def test_confusion_rows_sum_to_class_counts_on_random_labels():
    rng = np.random.default_rng(0)
    classes = np.array([4, 1, 9, 6, 2])
    y_true, y_pred = rng.choice(classes, 200), rng.choice(classes, 200)
    cm = confusion_matrix(y_true, y_pred, classes)
    assert cm.shape == (5, 5)
    assert cm.sum(1).tolist() == [int(np.sum(y_true == c)) for c in classes]
    assert cm.sum(0).tolist() == [int(np.sum(y_pred == c)) for c in classes]
    assert per_class_accuracy(y_true, y_pred) == pytest.approx(np.mean(np.diag(cm) / cm.sum(1)))
