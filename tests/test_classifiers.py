"""Tests of the final classifiers (softmax, nearest prototype, bilinear compatibility)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unseen.classifiers import (
    CLASSIFIERS,
    BilinearClassifier,
    NearestPrototypeClassifier,
    SoftmaxClassifier,
    list_classifiers,
    make_classifier,
)
from unseen.errors import ConfigError

# Deliberately unsorted global ids: the column order must follow `classes`, not sorting.
CLASSES = torch.tensor([13, 2, 7, 5])
D, D_A = 8, 6

FAST = {
    "softmax": {"lr": 1e-2, "epochs": 15, "batch_size": 16},
    "prototype": {},
    "bilinear": {"lr": 0.05, "epochs": 15, "batch_size": 16},
}
TRAINED = ["softmax", "bilinear"]  # the ones with a seed and an optimiser
PROBABILISTIC = ["softmax", "bilinear"]


def blobs(n_per_class: int = 30, seed: int = 0, spread: float = 0.5):
    """Gaussian blobs whose means are a linear map of the class semantics (so all three fit)."""
    g = torch.Generator().manual_seed(seed)
    sem = F.normalize(torch.randn(len(CLASSES), D_A, generator=torch.Generator().manual_seed(1)))
    proj = torch.randn(D_A, D, generator=torch.Generator().manual_seed(2))
    means = 4.0 * sem @ proj
    idx = torch.arange(len(CLASSES)).repeat_interleave(n_per_class)
    X = means[idx] + spread * torch.randn(len(idx), D, generator=g)
    return X, CLASSES[idx], sem


def fitted(name: str, seed: int = 0, **over) -> object:
    X, y, sem = blobs()
    params = {**FAST[name], **over}
    if name in TRAINED:
        params["seed"] = seed
    return make_classifier(name, **params).fit(X, y, CLASSES, sem)


# ---------------------------------------------------------------------- shared contract
@pytest.mark.parametrize("name", list_classifiers())
def test_separable_blobs_high_accuracy(name):
    clf = fitted(name)
    X_test, y_test, _ = blobs(n_per_class=50, seed=123)
    assert (clf.predict(X_test) == y_test).float().mean() >= 0.95


@pytest.mark.parametrize("name", list_classifiers())
def test_scores_shape_and_column_order_follow_classes(name):
    clf = fitted(name)
    X_test, y_test, _ = blobs(n_per_class=10, seed=5)
    scores = clf.predict_scores(X_test)
    assert scores.shape == (len(X_test), len(CLASSES))
    assert scores.dtype == torch.float32 and scores.device.type == "cpu"
    assert torch.equal(clf.classes_, CLASSES)
    # The column of a sample's true class is the argmax: columns are in `classes` order.
    col_of_true = torch.tensor([CLASSES.tolist().index(c) for c in y_test.tolist()])
    assert (scores.argmax(1) == col_of_true).float().mean() >= 0.95
    assert set(clf.predict(X_test).tolist()) <= set(CLASSES.tolist())


def test_permuting_classes_permutes_prototype_columns():
    X, y, _ = blobs()
    perm = torch.tensor([2, 0, 3, 1])
    a = NearestPrototypeClassifier().fit(X, y, CLASSES).predict_scores(X)
    b = NearestPrototypeClassifier().fit(X, y, CLASSES[perm]).predict_scores(X)
    torch.testing.assert_close(b, a[:, perm])


@pytest.mark.parametrize("name", TRAINED)
def test_same_seed_same_scores_other_seed_different(name):
    X, _, _ = blobs(n_per_class=5, seed=9)
    s0 = fitted(name, seed=0).predict_scores(X)
    assert torch.equal(s0, fitted(name, seed=0).predict_scores(X))
    assert not torch.equal(s0, fitted(name, seed=1).predict_scores(X))


@pytest.mark.parametrize("name", list_classifiers())
def test_fit_leaves_global_rng_untouched_and_ignores_it(name):
    X, _, _ = blobs(n_per_class=5, seed=9)
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    s1 = fitted(name).predict_scores(X)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)
    assert torch.equal(s1, fitted(name).predict_scores(X))


@pytest.mark.parametrize("name", list_classifiers())
def test_labels_outside_classes_raise_config_error_naming_them(name):
    X, y, sem = blobs(n_per_class=3)
    y = y.clone()
    y[0], y[1] = 99, 42
    with pytest.raises(ConfigError, match=r"42, 99"):
        make_classifier(name, **FAST[name]).fit(X, y, CLASSES, sem)


@pytest.mark.parametrize("name", PROBABILISTIC)
def test_probabilities_sum_to_one(name):
    X, _, _ = blobs(n_per_class=10, seed=3)
    p = fitted(name).predict_scores(X)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(1), torch.ones(len(X)))


@pytest.mark.parametrize("name", list_classifiers())
def test_batched_scores_equal_one_batch(name):
    clf = fitted(name)
    X, _, _ = blobs(n_per_class=25, seed=4)
    whole = clf.predict_scores(X)
    torch.testing.assert_close(clf.predict_scores(X, batch_size=7), whole, rtol=0, atol=1e-6)
    assert torch.equal(clf.predict(X, batch_size=7), clf.predict(X))


@pytest.mark.parametrize("name", list_classifiers())
def test_estimator_contract(name):
    cls = CLASSIFIERS[name]
    clf = cls(**FAST[name])
    # __init__ only stores hyper-parameters; nothing learned before fit.
    assert not [k for k in vars(clf) if k.endswith("_")]
    assert clf.get_params() == {**cls().get_params(), **FAST[name]}
    with pytest.raises(RuntimeError, match="not fitted"):
        clf.predict(torch.zeros(2, D))
    X, y, sem = blobs(n_per_class=5)
    assert clf.fit(X.double(), y.int(), CLASSES, sem) is clf
    with pytest.raises(ConfigError, match="features"):
        clf.predict(torch.zeros(2, D + 1))


@pytest.mark.parametrize("name", list_classifiers())
def test_fit_works_inside_no_grad(name):
    X, y, sem = blobs(n_per_class=5)
    with torch.no_grad():
        clf = make_classifier(name, **FAST[name]).fit(X, y, CLASSES, sem)
    assert clf.predict_scores(X).shape == (len(X), len(CLASSES))


def test_bad_shapes_raise_config_error():
    X, y, sem = blobs(n_per_class=5)
    with pytest.raises(ConfigError, match="rows"):
        SoftmaxClassifier().fit(X, y[:-1], CLASSES)
    with pytest.raises(ConfigError, match="distinct"):
        SoftmaxClassifier().fit(X, y, torch.tensor([13, 2, 7, 5, 2]))
    with pytest.raises(ConfigError, match="aligned"):
        BilinearClassifier().fit(X, y, CLASSES, sem[:3])


# ---------------------------------------------------------------------- epoch callback
@pytest.mark.parametrize("name", TRAINED)
def test_epoch_callback_sees_each_epoch_and_matches_shorter_training(name):
    X, y, sem = blobs(n_per_class=10)
    X_val, _, _ = blobs(n_per_class=3, seed=7)
    seen: dict[int, torch.Tensor] = {}

    def record(epoch, clf):
        seen[epoch] = clf.predict_scores(X_val)

    make_classifier(name, **FAST[name]).fit(X, y, CLASSES, sem, epoch_callback=record)
    assert sorted(seen) == list(range(1, FAST[name]["epochs"] + 1))
    short = make_classifier(name, **{**FAST[name], "epochs": 4}).fit(X, y, CLASSES, sem)
    assert torch.equal(seen[4], short.predict_scores(X_val))
    assert not torch.equal(seen[4], seen[FAST[name]["epochs"]])


# ---------------------------------------------------------------------- prototype
def test_prototype_fit_uses_class_means():
    X = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    y = torch.tensor([3, 3, 8])
    clf = NearestPrototypeClassifier().fit(X, y, torch.tensor([8, 3]))
    torch.testing.assert_close(clf.prototypes_, torch.tensor([[10.0, 10.0], [1.0, 0.0]]))


def test_prototype_needs_samples_of_every_class():
    X, y, sem = blobs(n_per_class=3)
    with pytest.raises(ConfigError, match=r"\[99\]"):
        classes = torch.cat([CLASSES, torch.tensor([99])])
        NearestPrototypeClassifier().fit(X, y, classes, torch.cat([sem, sem[:1]]))


def test_from_prototypes_euclidean_and_cosine():
    protos = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    classes = torch.tensor([40, 30])
    x = torch.tensor([[3.0, 4.0], [1.0, 0.5]])
    clf = NearestPrototypeClassifier.from_prototypes(protos, classes)
    # |(3,4)-(1,0)| = sqrt(4+16); |(3,4)-(0,2)| = sqrt(9+4); |(1,.5)-(1,0)| = .5; ... = sqrt(1+2.25)
    expected = -torch.tensor([[20.0, 13.0], [0.25, 3.25]]).sqrt()
    torch.testing.assert_close(clf.predict_scores(x), expected)
    assert clf.predict(x).tolist() == [30, 40]
    cos = NearestPrototypeClassifier.from_prototypes(protos, classes, metric="cosine")
    # cos((3,4),(1,0)) = 3/5, cos((3,4),(0,1)) = 4/5; cos((1,.5),.) = (1, .5)/sqrt(1.25)
    expected = torch.tensor([[0.6, 0.8], [1.0, 0.5]]) / torch.tensor([[1.0], [1.25**0.5]])
    torch.testing.assert_close(cos.predict_scores(x), expected)
    with pytest.raises(ConfigError, match="aligned"):
        NearestPrototypeClassifier.from_prototypes(protos, torch.tensor([1, 2, 3]))
    with pytest.raises(ConfigError, match="metric"):
        NearestPrototypeClassifier.from_prototypes(protos, classes, metric="manhattan")


# ---------------------------------------------------------------------- bilinear
def test_bilinear_requires_class_semantics():
    X, y, _ = blobs(n_per_class=3)
    with pytest.raises(ConfigError, match="class_semantics"):
        BilinearClassifier().fit(X, y, CLASSES)


@pytest.mark.parametrize("bias", ["semantic", "class", "none"])
def test_bilinear_logits_match_definition(bias):
    clf = fitted("bilinear", bias=bias)
    X, _, sem = blobs(n_per_class=5, seed=8)
    expected = X @ clf.weight_ @ sem.T
    if bias == "semantic":
        expected = expected + sem @ clf.bias_
    elif bias == "class":
        expected = expected + clf.bias_
    torch.testing.assert_close(clf.logits(X), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(clf.predict_scores(X), torch.softmax(expected, 1))
    # A subset of the training classes, by id, in the caller's order.
    torch.testing.assert_close(clf.logits(X, classes=torch.tensor([5, 13])), expected[:, [3, 0]])


def test_bilinear_class_bias_is_zero_for_new_classes():
    clf = fitted("bilinear", bias="class")
    X, _, sem = blobs(n_per_class=5, seed=8)
    new_sem = torch.randn(2, D_A)
    got = clf.logits(X, torch.cat([sem[1:2], new_sem]), classes=torch.tensor([2, 99, 100]))
    # Class 2 (column 1 of training) keeps its bias; 99 and 100 are new: bias 0.
    expected = X @ clf.weight_ @ torch.cat([sem[1:2], new_sem]).T
    expected[:, 0] += clf.bias_[1]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_bilinear_scores_unseen_classes_from_semantics():
    """Zero-shot: trained on the 8 classes +-e_i, it recognises 3 new ones from semantics."""
    g = torch.Generator().manual_seed(0)
    unseen = F.normalize(torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1], [1, -1, -1, 1]]))
    sem = torch.cat([torch.eye(4), -torch.eye(4), unseen])
    idx = torch.arange(len(sem)).repeat_interleave(40)
    X = 4.0 * sem[idx] @ torch.randn(4, 16, generator=g) + 0.3 * torch.randn(
        len(idx), 16, generator=g
    )
    ids = torch.arange(100, 100 + len(sem))
    seen = idx < 8
    clf = BilinearClassifier(lr=0.05, epochs=30, batch_size=32).fit(
        X[seen], ids[idx[seen]], ids[:8], sem[:8]
    )
    logits = clf.logits(X[~seen], sem[8:], classes=ids[8:])
    assert logits.shape == (int((~seen).sum()), 3)
    acc = (ids[8:][logits.argmax(1)] == ids[idx[~seen]]).float().mean()
    assert acc >= 0.9


# ---------------------------------------------------------------------- registry
def test_make_classifier_builds_registered_classes():
    assert list_classifiers() == ["bilinear", "prototype", "softmax"]
    clf = make_classifier("softmax", lr=0.5, epochs=3)
    assert isinstance(clf, SoftmaxClassifier) and clf.lr == 0.5 and clf.epochs == 3
    assert isinstance(make_classifier("bilinear"), BilinearClassifier)


def test_make_classifier_rejects_bad_name_param_and_value():
    with pytest.raises(ConfigError, match=r"'svm'.*bilinear.*prototype.*softmax"):
        make_classifier("svm")
    with pytest.raises(ConfigError, match=r"'momentum'.*beta1"):
        make_classifier("softmax", momentum=0.9)
    with pytest.raises(ConfigError, match="metric"):
        make_classifier("prototype", metric="manhattan")
    with pytest.raises(ConfigError, match="epochs"):
        make_classifier("bilinear", epochs=0)
    with pytest.raises(ConfigError, match="bias"):
        make_classifier("bilinear", bias="per-class")
