"""Alternative seen/unseen class splits, written as ``att_splits.mat``-layout files.

A benchmark's ranking can flip on another class split (Rossi et al. 2024, the grabzsl
toolkit): ``unseen splits DATASET --n K --seed S --out FOLDER`` draws K alternative splits of
an xlsa17 benchmark with the proposed split's class counts and writes each one where
``data.splits`` (and ``load_xlsa17(..., splits=FILE)``) reads it back.

How a split is drawn (:func:`draw_splits`; split ``k`` of seed ``S`` comes from
``numpy.random.default_rng([S, k])``, so it does not depend on K):

* the images are those of the proposed split (``trainval_loc`` + ``test_seen_loc`` +
  ``test_unseen_loc``), with their labels from the features file;
* as many unseen classes as the proposed split has are drawn uniformly, every image of them
  becomes ``test_unseen_loc``; a draw equal to the proposed unseen set or to an earlier split's
  is drawn again (the command refuses K larger than the number of other class sets);
* every image of a seen class is in ``trainval_loc`` or ``test_seen_loc``: each seen class's
  images are shuffled and the proposed split's test-seen fraction of them (rounded, at least
  one and not all, for a class of two or more images) is ``test_seen_loc``;
* inside the seen classes, as many validation classes as the proposed split has (its
  ``val_loc`` classes; 20% of the seen classes, the runner's rule, when it has none) are
  drawn; ``train_loc`` / ``val_loc`` are the ``trainval_loc`` images of the other seen
  classes / of the validation classes (so, unlike the released files, they never overlap
  ``test_seen_loc``).

The file holds the fields of xlsa17's ``att_splits.mat`` -- the five ``*_loc`` index vectors
(1-based, N x 1) and ``att``, ``original_att``, ``allclasses_names`` copied from the dataset's
own file (a field that file lacks, e.g. FLO's ``original_att``, is left out as there) -- plus
``split_info``, a sentence saying how it was drawn. A random split may put ImageNet classes
among the unseen ones, which the proposed splits avoid on purpose (Xian et al., TPAMI 2018):
compare methods with each other on these splits, not with proposed-split numbers.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unseen.config import check_number
from unseen.errors import ConfigError, OutputExistsError
from unseen.files import file_mode

__all__ = ["ClassSplit", "draw_splits", "split_file_name", "write_splits"]

#: fraction of the seen classes made validation classes when the dataset has no val split
#: (ZSLTask.validation's default)
VAL_FRACTION = 0.2
_MAX_TRIES = 1000


@dataclass(frozen=True)
class ClassSplit:
    """One drawn split (0-based image indices and class ids).

    Attributes:
        index: its number, 1..K.
        seed: the seed it was drawn with.
        seen, unseen, val: class ids (``val`` is a subset of ``seen``).
        trainval, test_seen, test_unseen, train, val_images: image indices.
    """

    index: int
    seed: int
    seen: np.ndarray
    unseen: np.ndarray
    val: np.ndarray
    trainval: np.ndarray
    test_seen: np.ndarray
    test_unseen: np.ndarray
    train: np.ndarray
    val_images: np.ndarray


def draw_splits(
    labels: np.ndarray,
    trainval: np.ndarray,
    test_seen: np.ndarray,
    test_unseen: np.ndarray,
    *,
    n_val: int,
    n: int,
    seed: int,
) -> list[ClassSplit]:
    """K = ``n`` alternative splits of the images of a proposed split (module doc).

    Args:
        labels: ``(N,)`` class id of every image.
        trainval, test_seen, test_unseen: the proposed split's image indices (0-based).
        n_val: validation classes to draw inside each seen set.
        n: number of splits (>= 1).
        seed: seeds every draw (0 .. 2**32 - 1).

    Raises:
        ConfigError: ``n`` < 1, a bad seed, or more splits asked than other class sets exist.
    """
    check_number("--n", n, lo=1, integer=True)
    check_number("--seed", seed, lo=0, hi=2**32 - 1, integer=True)
    labels = np.asarray(labels)
    pool = np.concatenate([trainval, test_seen, test_unseen])
    classes = np.unique(labels[pool])
    proposed = np.unique(labels[test_unseen])
    n_unseen, n_seen = len(proposed), len(classes) - len(proposed)
    if not 0 < n_val < n_seen:
        raise ConfigError(
            f"{n_val} validation classes cannot be drawn among {n_seen} seen classes "
            "(need at least one validation and one training class)"
        )
    others = math.comb(len(classes), n_unseen) - 1
    if n > others:
        raise ConfigError(
            f"--n {n}: only {others} class split(s) other than the proposed one exist "
            f"({n_unseen} unseen of {len(classes)} classes); ask for at most {others}"
        )
    n_ts, n_tv = len(test_seen), len(trainval)
    fraction = n_ts / max(1, n_ts + n_tv)  # the proposed split's test-seen share
    taken = {tuple(proposed.tolist())}
    out = []
    for k in range(1, n + 1):
        rng = np.random.default_rng([seed, k])
        for _ in range(_MAX_TRIES):
            unseen = np.sort(rng.choice(classes, n_unseen, replace=False))
            if tuple(unseen.tolist()) not in taken:
                break
        else:  # only reachable when nearly every class set is taken
            raise ConfigError(
                f"--n {n}: could not draw split {k} distinct from the earlier ones in "
                f"{_MAX_TRIES} tries; ask for fewer splits"
            )
        taken.add(tuple(unseen.tolist()))
        out.append(_assign(k, seed, rng, labels, pool, classes, unseen, n_val, fraction))
    return out


def _assign(
    k: int,
    seed: int,
    rng: np.random.Generator,
    labels: np.ndarray,
    pool: np.ndarray,
    classes: np.ndarray,
    unseen: np.ndarray,
    n_val: int,
    fraction: float,
) -> ClassSplit:
    """The images of one drawn class split (see the module doc)."""
    seen = np.setdiff1d(classes, unseen)
    val = np.sort(rng.choice(seen, n_val, replace=False))
    pool = np.sort(pool)
    trainval, test_seen = [], []
    for c in seen:
        idx = pool[labels[pool] == c]
        idx = idx[rng.permutation(len(idx))]
        n_test = 0
        if len(idx) >= 2:  # at least one test and one training image
            n_test = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        test_seen.append(idx[:n_test])
        trainval.append(idx[n_test:])
    tv = np.sort(np.concatenate(trainval))
    return ClassSplit(
        index=k,
        seed=seed,
        seen=seen,
        unseen=unseen,
        val=val,
        trainval=tv,
        test_seen=np.sort(np.concatenate(test_seen)),
        test_unseen=pool[np.isin(labels[pool], unseen)],
        train=tv[~np.isin(labels[tv], val)],
        val_images=tv[np.isin(labels[tv], val)],
    )


def split_file_name(dataset: str, seed: int, k: int) -> str:
    """``FLO_seed0_split1.mat``: the file of split ``k`` drawn with ``seed``."""
    return f"{dataset}_seed{seed}_split{k}.mat"


def write_splits(
    root: str | Path,
    dataset: str,
    *,
    features: str = "res101.mat",
    n: int,
    seed: int,
    out: str | Path,
) -> list[Path]:
    """Draw ``n`` splits of ``dataset`` (under ``root``) and write them into ``out``.

    Nothing is written when any target file exists (a file is never replaced) or any value
    is refused. Returns the written files, split 1 first.

    Raises:
        ConfigError: ``n`` < 1, a bad seed, or more splits than exist.
        DataError: an unknown dataset or unreadable files (as :func:`load_xlsa17`).
        OutputExistsError: a target file exists, or ``out`` is a file.
    """
    from unseen import __version__
    from unseen.data.matfile import read_mat
    from unseen.data.xlsa17 import _resolve, load_xlsa17

    check_number("--n", n, lo=1, integer=True)
    check_number("--seed", seed, lo=0, hi=2**32 - 1, integer=True)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file; give a folder for the split files")
    name, folder = _resolve(root, dataset)
    paths = [out / split_file_name(name, seed, k) for k in range(1, n + 1)]
    _refuse_existing(paths)
    ds = load_xlsa17(root, name, features=features)
    n_seen = len(ds.seen_classes)
    n_val = len(ds.val_classes) if ds.val_classes is not None else round(VAL_FRACTION * n_seen)
    splits = draw_splits(
        ds.labels,
        ds.trainval,
        ds.test_seen,
        ds.test_unseen,
        n_val=max(1, n_val),
        n=n,
        seed=seed,
    )
    kept = read_mat(
        folder / "att_splits.mat",
        ["att", "trainval_loc"],
        optional=["original_att", "allclasses_names"],
    )
    loc_dtype = kept.pop("trainval_loc").dtype
    for split, path in zip(splits, paths, strict=True):
        info = (
            f"unseen splits {name} --n {n} --seed {seed} (unseen {__version__}): split "
            f"{split.index} of {n}; {len(split.seen)} seen classes ({len(split.val)} of them "
            f"validation), {len(split.unseen)} unseen; features {features}"
        )
        locs = {
            "trainval_loc": split.trainval,
            "test_seen_loc": split.test_seen,
            "test_unseen_loc": split.test_unseen,
            "train_loc": split.train,
            "val_loc": split.val_images,
        }
        variables = {k: _matlab_index(v, loc_dtype) for k, v in locs.items()}
        _write_new(path, {**kept, **variables, "split_info": info})
    return paths


def _refuse_existing(paths: list[Path]) -> None:
    there = [p for p in paths if p.exists() or p.is_symlink()]
    if there:
        more = f" (and {len(there) - 1} more of the {len(paths)} files)" if len(there) > 1 else ""
        raise OutputExistsError(
            f"{there[0]} already exists{more}; unseen splits never replaces a file: choose "
            "another --out folder or --seed, or remove the files yourself"
        )


def _matlab_index(idx: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """0-based indices -> 1-based N x 1 column, in the source file's integer type when it
    holds them (FLO's uint16), else MATLAB's double."""
    one = np.asarray(idx, dtype=np.int64)[:, None] + 1
    if dtype.kind in "ui" and (one.size == 0 or one.max() <= np.iinfo(dtype).max):
        return one.astype(dtype)
    return one.astype(np.float64)


def _write_new(path: Path, variables: dict[str, Any]) -> None:
    """Write a MATLAB v5 file at ``path``, which must not exist: written to a temporary
    file beside it, then linked into place (``os.link`` fails rather than replace a file
    that appeared meanwhile), so a kill never leaves half a file under the name."""
    import scipy.io

    out = {}
    for key, value in variables.items():
        if isinstance(value, list):  # a cell array of strings (allclasses_names)
            cell = np.empty((len(value), 1), dtype=object)
            cell[:, 0] = value
            value = cell
        out[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            scipy.io.savemat(f, out)
        os.chmod(tmp, file_mode())  # the umask's mode, not mkstemp's 0600
        try:
            os.link(tmp, path)
        except FileExistsError:
            _refuse_existing([path])
        except OSError:  # a file system without hard links: check, then rename
            _refuse_existing([path])
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
