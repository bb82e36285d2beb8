"""Synthetic zero-shot benchmarks, for tests, demos and speed measurements.

Every dataset made here has ``synthetic=True`` and a ``source`` starting with
``"synthetic:"``: numbers measured on them are not results on any real benchmark.

The generators make unseen classes *learnable*: image features are a fixed random non-linear
function of the class semantic vector (the same function for every class, seen or unseen),
with a few modes per class and Gaussian noise. A generative ZSL method that learns the map
from semantics to features on seen classes can therefore synthesise unseen-class features.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unseen.data.dataset import ZSLDataset
from unseen.errors import ConfigError, DataError

__all__ = ["demo_dataset", "synthetic_benchmark", "synthetic_like", "toy_dataset"]

_CHUNK = 8192


def toy_dataset(n_per_class: int = 200, seed: int = 0, padding: bool = True) -> ZSLDataset:
    """The 2-D toy problem of IZF (Shen et al., ECCV 2020, supplementary Listing 1.1).

    Seen classes 0, 1, 2 have semantics ``[0, 1]``, ``[0, 0]``, ``[1, 0]``; the unseen class
    3 has ``[1, 1]``. A feature is ``2c - 1 + N(0, I/9)`` (std 1/3), followed by two zero
    dimensions when ``padding`` (so ``d = 4``, as in the paper).

    Args:
        n_per_class: trainval images per seen class and test images of the unseen class;
            each seen class also gets ``n_per_class // 2`` test-seen images.
        seed: random seed.
        padding: append the two zero dimensions.

    References:
        Shen et al., "Invertible Zero-Shot Recognition Flows", ECCV 2020.
    """
    if n_per_class < 2:
        raise ConfigError(f"toy_dataset: n_per_class must be >= 2, got {n_per_class}")
    rng = np.random.default_rng(seed)
    semantics = np.array([[0, 1], [0, 0], [1, 0], [1, 1]], dtype=np.float32)
    n_ts = n_per_class // 2
    labels = np.concatenate(
        [
            np.repeat([0, 1, 2], n_per_class),
            np.repeat([0, 1, 2], n_ts),
            np.full(n_per_class, 3),
        ]
    ).astype(np.int64)
    feats = 2 * semantics[labels] - 1 + rng.standard_normal((labels.size, 2)) / 3
    if padding:
        feats = np.concatenate([feats, np.zeros((labels.size, 2))], axis=1)
    n_tv = 3 * n_per_class
    return ZSLDataset(
        name="toy",
        features=feats.astype(np.float32),
        labels=labels,
        semantics=semantics,
        class_names=["seen_(0,1)", "seen_(0,0)", "seen_(1,0)", "unseen_(1,1)"],
        trainval=np.arange(n_tv, dtype=np.int64),
        test_seen=np.arange(n_tv, n_tv + 3 * n_ts, dtype=np.int64),
        test_unseen=np.arange(n_tv + 3 * n_ts, labels.size, dtype=np.int64),
        val_classes=None,
        quirks=["synthetic toy data (IZF supplementary Listing 1.1)"],
        synthetic=True,
        source=f"synthetic: IZF toy problem, n_per_class={n_per_class}, seed={seed}, "
        f"padding={padding}",
    )


def synthetic_benchmark(
    semantics: np.ndarray,
    seen_classes: Sequence[int] | np.ndarray,
    unseen_classes: Sequence[int] | np.ndarray,
    *,
    n_trainval: int,
    n_test_seen: int,
    n_test_unseen: int,
    feature_dim: int = 64,
    n_modes: int = 2,
    noise: float = 0.5,
    seed: int = 0,
    name: str = "synthetic",
    class_names: Sequence[str] | None = None,
    val_classes: Sequence[int] | np.ndarray | None = None,
) -> ZSLDataset:
    """Synthetic features generated from given class semantics.

    Each class ``c`` with semantics ``s_c`` has ``n_modes`` feature means
    ``mu_{c,m} = g(s_c, m)``, where ``g`` is one random 2-layer tanh network (fixed by
    ``seed``) whose hidden layer is shifted by a mode-specific function of ``s_c``. An image is
    ``relu(mu_{c,m} + noise * eps)`` with a random mode ``m``: non-negative, like pooled ReLU
    CNN features. Images are spread as evenly as possible over the classes of each split and
    their order is shuffled; the split sizes are exactly the ones requested.

    Args:
        semantics: ``(C, d_a)`` class semantic vectors.
        seen_classes: classes that get trainval and test-seen images.
        unseen_classes: classes that get test-unseen images (disjoint from the seen ones).
        n_trainval: trainval images (at least one per seen class).
        n_test_seen: test-seen images.
        n_test_unseen: test-unseen images (at least one per unseen class).
        feature_dim: feature dimension ``d``.
        n_modes: feature modes per class.
        noise: standard deviation of the per-image noise (the means have unit spread).
        seed: random seed; the same arguments give the same dataset.
        name: dataset name.
        class_names: ``C`` names (default ``class_001``...).
        val_classes: seen classes to use as pseudo-unseen validation classes.
    """
    sem = np.asarray(semantics, dtype=np.float64)
    if sem.ndim != 2 or sem.shape[0] < 2 or not np.all(np.isfinite(sem)):
        raise DataError(
            f"synthetic_benchmark: semantics must be a finite (C, d_a) matrix with C >= 2, "
            f"got shape {sem.shape}"
        )
    n_classes = sem.shape[0]
    seen = _class_list(seen_classes, n_classes, "seen_classes")
    unseen = _class_list(unseen_classes, n_classes, "unseen_classes")
    if np.intersect1d(seen, unseen).size:
        raise ConfigError(
            f"synthetic_benchmark: classes {np.intersect1d(seen, unseen)[:5].tolist()} are "
            "both seen and unseen"
        )
    if n_trainval < seen.size or n_test_unseen < unseen.size or n_test_seen < 0:
        raise ConfigError(
            f"synthetic_benchmark: need n_trainval >= {seen.size} seen classes, n_test_unseen "
            f">= {unseen.size} unseen classes and n_test_seen >= 0; got {n_trainval}, "
            f"{n_test_unseen}, {n_test_seen}"
        )
    if feature_dim < 1 or n_modes < 1 or noise < 0:
        raise ConfigError(
            f"synthetic_benchmark: feature_dim and n_modes must be >= 1 and noise >= 0, got "
            f"{feature_dim}, {n_modes}, {noise}"
        )
    names = (
        [f"class_{i + 1:03d}" for i in range(n_classes)]
        if class_names is None
        else [str(n) for n in class_names]
    )
    rng = np.random.default_rng(seed)
    means = _mode_means(sem, feature_dim, n_modes, rng)

    labels = np.concatenate(
        [
            _spread(n_trainval, seen, rng),
            _spread(n_test_seen, seen, rng),
            _spread(n_test_unseen, unseen, rng),
        ]
    )
    split = np.repeat([0, 1, 2], [n_trainval, n_test_seen, n_test_unseen])
    order = rng.permutation(labels.size)
    labels, split = labels[order], split[order]
    modes = rng.integers(n_modes, size=labels.size)
    feats = np.empty((labels.size, feature_dim), dtype=np.float32)
    for start in range(0, labels.size, _CHUNK):
        stop = min(start + _CHUNK, labels.size)
        x = rng.standard_normal((stop - start, feature_dim), dtype=np.float32)
        x *= noise
        x += means[labels[start:stop], modes[start:stop]]
        np.maximum(x, 0, out=x)
        feats[start:stop] = x
    return ZSLDataset(
        name=name,
        features=feats,
        labels=labels.astype(np.int64),
        semantics=sem.astype(np.float32),
        class_names=names,
        trainval=np.flatnonzero(split == 0).astype(np.int64),
        test_seen=np.flatnonzero(split == 1).astype(np.int64),
        test_unseen=np.flatnonzero(split == 2).astype(np.int64),
        val_classes=None if val_classes is None else _class_list(val_classes, n_classes, "val"),
        quirks=["synthetic features: never report numbers on them as benchmark results"],
        synthetic=True,
        source=(
            f"synthetic: features = relu(random 2-layer tanh net of the class semantics, "
            f"{n_modes} modes/class) + N(0, {noise}^2); feature_dim={feature_dim}, seed={seed}"
        ),
    )


def synthetic_like(
    root: str | Path,
    name: str,
    *,
    feature_dim: int = 2048,
    scale: float = 1.0,
    seed: int = 0,
    semantics: str = "att",
    features: str | Path = "res101.mat",
    **kw: Any,
) -> ZSLDataset:
    """A synthetic benchmark shaped like a real xlsa17 one.

    Uses the REAL class semantics, class names, seen/unseen class split and split sizes (times
    ``scale``, at least one image per class) of dataset ``name`` under ``root``, and synthetic
    features from :func:`synthetic_benchmark`. The seen/unseen classes come from the labels of
    the features file when one is present (``features``, else any other ``.mat`` beside
    ``att_splits.mat`` with a ``labels`` variable), else from ``trainvalclasses.txt`` /
    ``testclasses.txt``. Validation classes come from ``val_loc`` (with labels) or
    ``valclasses1.txt``.

    Args:
        root: data root; name: dataset (see :func:`~unseen.data.xlsa17.load_xlsa17`).
        feature_dim: synthetic feature dimension.
        scale: multiplies the real split sizes.
        seed: random seed.
        semantics: ``"att"``, ``"original_att"`` or ``"sent"``.
        features: features file whose labels give the class split, if present.
        **kw: passed to :func:`synthetic_benchmark` (``n_modes``, ``noise``).
    """
    from unseen.data import xlsa17

    if not scale > 0:
        raise ConfigError(f"synthetic_like: scale must be > 0, got {scale}")
    if semantics not in xlsa17.SEMANTICS:
        raise DataError(
            f"unknown semantics {semantics!r}; choose one of {', '.join(xlsa17.SEMANTICS)}"
        )
    side = xlsa17._read_side(root, name)
    if semantics not in side.matrices:
        raise DataError(
            f"{side.name}: no {semantics!r} class semantics in {side.folder}; available: "
            f"{', '.join(side.matrices)}"
        )
    quirks = list(side.quirks)
    labels = _real_labels(side, features, quirks)
    if labels is not None:
        seen, unseen = np.unique(labels[side.trainval]), np.unique(labels[side.test_unseen])
    elif side.seen_txt is not None and side.unseen_txt is not None:
        seen, unseen = side.seen_txt, side.unseen_txt
    else:
        raise DataError(
            f"{side.name}: cannot tell seen from unseen classes: no labels file ({features} or "
            f"another .mat with 'labels') and no trainvalclasses.txt/testclasses.txt in "
            f"{side.folder} or {side.folder / 'splits'}"
        )
    val, vq = xlsa17._val_classes(side, labels, seen)
    sizes = {
        "n_trainval": max(round(side.trainval.size * scale), seen.size),
        "n_test_seen": max(round(side.test_seen.size * scale), seen.size),
        "n_test_unseen": max(round(side.test_unseen.size * scale), unseen.size),
    }
    ds = synthetic_benchmark(
        side.matrices[semantics],
        seen,
        unseen,
        feature_dim=feature_dim,
        seed=seed,
        name=f"{side.name}-synthetic",
        class_names=side.class_names,
        val_classes=val,
        **sizes,
        **kw,
    )
    return dataclasses.replace(
        ds,
        quirks=[*ds.quirks, *quirks, *vq],
        source=f"{ds.source}; REAL {side.name} {semantics} semantics, class split and split "
        f"sizes x {scale} from {side.folder}",
    )


def demo_dataset(seed: int = 0) -> ZSLDataset:
    """A small learnable benchmark that needs no files (used by ``unseen demo``).

    30 classes (24 seen, 6 unseen) with 32-d non-negative, L2-normalised semantics drawn from
    a rank-6 model (like attribute vectors), 64-d features, 60 trainval and 15 test images per
    seen class, 60 test images per unseen class, and 5 seen classes as validation classes.
    """
    rng = np.random.default_rng(seed)
    n_classes, n_unseen, dim, rank = 30, 6, 32, 6
    factors = rng.standard_normal((n_classes, rank)) @ rng.standard_normal((rank, dim))
    sem = np.maximum(factors / np.sqrt(rank) + 0.05 * rng.standard_normal((n_classes, dim)), 0)
    sem += 1e-3  # no all-zero class vector
    sem /= np.linalg.norm(sem, axis=1, keepdims=True)
    perm = rng.permutation(n_classes)
    unseen, seen = np.sort(perm[:n_unseen]), np.sort(perm[n_unseen:])
    val = np.sort(rng.choice(seen, size=5, replace=False))
    n_seen = seen.size
    ds = synthetic_benchmark(
        sem,
        seen,
        unseen,
        n_trainval=60 * n_seen,
        n_test_seen=15 * n_seen,
        n_test_unseen=60 * n_unseen,
        feature_dim=64,
        n_modes=2,
        noise=1.0,
        seed=seed + 1,
        name="demo",
        class_names=[f"demo_{i:02d}" for i in range(n_classes)],
        val_classes=val,
    )
    return dataclasses.replace(
        ds,
        source=f"synthetic: demo_dataset(seed={seed}); {ds.source.removeprefix('synthetic: ')}",
    )


# ---------------------------------------------------------------------------- helpers


def _class_list(classes: Any, n_classes: int, what: str) -> np.ndarray:
    arr = np.unique(np.asarray(classes, dtype=np.int64).ravel())
    if arr.size == 0:
        raise ConfigError(f"synthetic_benchmark: {what} is empty")
    if arr.min() < 0 or arr.max() >= n_classes:
        raise ConfigError(
            f"synthetic_benchmark: {what} must lie in [0, {n_classes}), got "
            f"[{arr.min()}, {arr.max()}]"
        )
    return arr


def _spread(n: int, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels spread as evenly as possible over ``classes`` (random extras)."""
    counts = np.full(classes.size, n // classes.size)
    counts[rng.permutation(classes.size)[: n % classes.size]] += 1
    return np.repeat(classes, counts)


def _mode_means(
    sem: np.ndarray, feature_dim: int, n_modes: int, rng: np.random.Generator
) -> np.ndarray:
    """``(C, n_modes, feature_dim)`` float32 feature means, a fixed function of semantics."""
    # Standardised semantics give the random net unit-scale inputs whatever the attribute scale.
    std = sem.std(axis=0)
    z = (sem - sem.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)
    d_a = z.shape[1]
    hidden = int(np.clip(2 * feature_dim, 64, 256))
    w1 = rng.standard_normal((d_a, hidden)) / np.sqrt(d_a)
    b1 = 0.1 * rng.standard_normal(hidden)
    w2 = rng.standard_normal((hidden, feature_dim)) / np.sqrt(hidden)
    pre = z @ w1 + b1
    out = np.empty((sem.shape[0], n_modes, feature_dim))
    for m in range(n_modes):
        # The mode shift depends on the class semantics, so unseen modes are predictable too.
        q = rng.standard_normal((d_a, hidden)) / np.sqrt(d_a)
        r = rng.standard_normal(hidden)
        out[:, m] = np.tanh(pre + np.tanh(z @ q + r)) @ w2
    flat = out.reshape(-1, feature_dim)
    spread = flat.std(axis=0)
    out = (out - flat.mean(axis=0)) / np.where(spread > 1e-8, spread, 1.0) + 0.5
    return out.astype(np.float32)


def _real_labels(side: Any, features: str | Path, quirks: list[str]) -> np.ndarray | None:
    """0-based labels of the real images, from the features file or another labels file."""
    from unseen.data import xlsa17
    from unseen.data.matfile import mat_variables, read_mat

    first = xlsa17._features_path(side.folder, features)
    candidates = [first] if first.is_file() else []
    candidates += sorted(
        p
        for p in side.folder.glob("*.mat")
        if p.name not in ("att_splits.mat", "sent_splits.mat") and p != first
    )
    n_needed = 1 + max(
        int(side.trainval.max()), int(side.test_seen.max()), int(side.test_unseen.max())
    )
    for path in candidates:
        try:
            if "labels" not in mat_variables(path):
                continue
            raw = read_mat(path, ["labels"])["labels"]
            labels = xlsa17._labels(raw, path, side.matrices["att"].shape[0], side.att_path)
        except DataError as exc:
            quirks.append(f"{path.name} not used for the class split: {exc}")
            continue
        if labels.size < n_needed:
            quirks.append(
                f"{path.name} has {labels.size} labels, fewer than the split indices need"
            )
            continue
        if path != first:
            quirks.append(f"seen/unseen classes from the labels in {path.name}")
        return labels
    return None
