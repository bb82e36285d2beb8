"""Check per-image labels against the class folders named in a features file's ``image_files``.

xlsa17's ``res101.mat`` stores, beside ``features`` and ``labels``, the path of every image
(``image_files``, an N x 1 cell array of strings), and the path's folder is the image's class:
``.../CUB_200_2011/images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg``.
The labels, however, are column indices into ``att``/``allclasses_names`` of *one particular*
``att_splits.mat``. Re-saves of ``att_splits.mat`` in circulation list the classes in another
order (the CUB one lists the 150 trainval classes first), and a features file paired with
another re-save gives labels that silently point at the wrong classes' semantics: every
number computed on it is wrong, and nothing crashes. Comparing each label's class name with
its image's folder catches that at load time.

Names are compared after :func:`class_key` (case, separators and CUB's ``001.`` prefix do not
matter), and a class folder may span several path components (SUN's ``b/bakery/shop`` is the
class ``bakery_shop``). A disagreement that is a permutation of whole classes (every image of
label ``a`` lies in the folder of class ``b``, one-to-one) can be repaired by name, but only
when the user asks for it (``data.repair_labels: true``); any other disagreement is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unseen.errors import DataError

__all__ = ["check_label_names", "class_key", "folder_columns"]

# SUN's class folders are nested up to two levels below its letter folder
# (``images/b/bakery/shop``); three components cover that with one to spare.
_MAX_FOLDER_DEPTH = 3
_NUMBER_PREFIX = re.compile(r"^\d+[.\s_-]+(?=[^\W\d_])")
_SEPARATORS = re.compile(r"[^0-9a-z]+")
_REPAIR_HINT = "--set data.repair_labels=true (or repair_labels: true in a config's data section)"


def class_key(name: str) -> str:
    """The form in which class names and image folders are compared.

    Lower case; a numeric prefix such as CUB's ``001.`` dropped (re-saves and image folders
    differ in whether they carry it); every run of characters other than letters and digits
    (``_``, ``+``, ``-``, space, ``/``) made one ``_``. So AWA's ``grizzly+bear``, SUN's
    ``bakery/shop`` and ``bakery_shop``, and ``Black-footed Albatross`` match their folders.
    """
    text = _NUMBER_PREFIX.sub("", name.strip().lower())
    return _SEPARATORS.sub("_", text).strip("_")


def _folder(path: str) -> str:
    """The directory part of an image path, ``/``-separated (Windows paths too)."""
    return path.replace("\\", "/").rpartition("/")[0]


def _match_folder(folder: str, keys: dict[str, int]) -> int:
    """Column of the class a folder names, or -1.

    The longest matching suffix of the folder's components wins, so SUN's ``bakery/shop`` is
    the class ``bakery_shop`` even if a class ``shop`` existed. Empty components (AWA2's
    ``Animals_with_Attributes2//JPEGImages``) are dropped.
    """
    parts = [p for p in folder.split("/") if p and p != "."]
    for depth in range(min(_MAX_FOLDER_DEPTH, len(parts)), 0, -1):
        col = keys.get(class_key("_".join(parts[-depth:])))
        if col is not None:
            return col
    return -1


def folder_columns(image_files: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Per image, the column of the class its folder names (``-1``: no class).

    Raises:
        ValueError: two class names have the same :func:`class_key` (the message names both).
    """
    keys: dict[str, int] = {}
    for col, name in enumerate(class_names):
        key = class_key(name)
        if key in keys:
            raise ValueError(f"{class_names[keys[key]]!r} and {name!r}")
        keys[key] = col
    # Thousands of images share a few hundred folders: match each folder once.
    folder_ids: dict[str, int] = {}
    index = np.fromiter(
        (folder_ids.setdefault(_folder(p), len(folder_ids)) for p in image_files),
        dtype=np.int64,
        count=len(image_files),
    )
    cols = np.array([_match_folder(f, keys) for f in folder_ids], dtype=np.int64)
    return cols[index] if index.size else index


def _as_paths(value: Any, n: int) -> tuple[list[str] | None, str]:
    """``image_files`` as read by :func:`~unseen.data.matfile.read_mat` -> N strings, or
    ``None`` and why not."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        what = type(value).__name__
        if isinstance(value, list):
            what = "a cell array holding non-strings"
        elif isinstance(value, np.ndarray):
            what = f"a {value.dtype} array"
        return None, f"'image_files' is {what}, not a cell array of paths"
    if len(value) != n:
        return None, f"'image_files' has {len(value)} entries for {n} images"
    # A MATLAB char matrix pads shorter rows with blanks.
    return [p.strip() for p in value], ""


def check_label_names(
    labels: np.ndarray,
    image_files: Any,
    class_names: Sequence[str],
    *,
    names_source: str | None,
    features_path: Path,
    repair: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """Compare every image's label with the class its ``image_files`` folder names.

    Args:
        labels: 0-based ``(N,)`` labels from the features file.
        image_files: the file's ``image_files`` as :func:`read_mat` returns it (``None``:
            absent, nothing is checked and nothing is said).
        class_names: the names of the semantic matrix's columns.
        names_source: where ``class_names`` came from, for messages (``"allclasses_names
            in att_splits.mat"``); ``None`` when they are placeholders (FLO has no names):
            the check is then skipped, with a quirk saying so.
        features_path: the features file, for messages.
        repair: relabel a permutation of whole classes by name instead of refusing it.

    Returns:
        The labels to use (``labels`` itself unless repaired) and quirk lines for the
        dataset: the check's result, why it was skipped, or the repair.

    Raises:
        DataError: a label disagrees with its image's folder and ``repair`` is off or cannot
            fix it. The message names the first such image, its label, the two class names
            and whether a repair by name is possible.
    """
    if image_files is None:
        return labels, []
    fname = features_path.name
    n = labels.size
    files, why = _as_paths(image_files, n)
    if files is None:
        return labels, [f"{fname}: {why}; the labels are not checked against image folders"]
    if names_source is None:
        return labels, [
            f"{fname}: the labels are not checked against the image folders of image_files: "
            "att_splits.mat gives no class names to compare them with"
        ]
    try:
        cols = folder_columns(files, class_names)
    except ValueError as exc:
        return labels, [
            f"{fname}: the labels are not checked against the image folders of image_files: "
            f"the class names {exc} ({names_source}) are the same once case, separators and "
            "number prefixes are ignored"
        ]
    if n and not (cols >= 0).any():
        return labels, [
            f"{fname}: image_files' folders name no class (e.g. {files[0]!r}), so the labels "
            "are not checked against them"
        ]
    bad = np.flatnonzero(cols != labels)
    if not bad.size:
        used = np.unique(labels).size
        return labels, [
            f"{fname}: labels checked by name: the folder in image_files of each of the {n} "
            f"images names its label's class ({names_source}; {used} classes)"
        ]
    mapping = _class_permutation(labels, cols)
    if mapping is not None and repair:
        moved = {a: b for a, b in mapping.items() if a != b}
        a, b = next(iter(moved.items()))
        return cols, [
            f"{fname}: labels REPAIRED by class name (data.repair_labels: true): the labels of "
            f"{bad.size} of {n} images ({len(moved)} classes) pointed at other columns than "
            f"their image folders' classes (another class order of att_splits.mat); each image "
            f"now has the column whose name ({names_source}) matches its folder, e.g. label "
            f"{a + 1} -> column {b + 1} ({class_names[b]!r})"
        ]
    raise DataError(
        _mismatch_message(
            labels, cols, files, bad, class_names, names_source, features_path, mapping, repair
        )
    )


def _class_permutation(labels: np.ndarray, cols: np.ndarray) -> dict[int, int] | None:
    """``{label: column}`` when the disagreement is whole classes moved one-to-one to other
    columns (every image's folder names a class; each label has one folder class; no two
    labels share one), else ``None``."""
    if (cols < 0).any():
        return None
    pairs = np.unique(np.stack([labels, cols], axis=1), axis=0)
    if np.unique(pairs[:, 0]).size != len(pairs) or np.unique(pairs[:, 1]).size != len(pairs):
        return None
    return {int(a): int(b) for a, b in pairs}


def _mismatch_message(
    labels: np.ndarray,
    cols: np.ndarray,
    files: list[str],
    bad: np.ndarray,
    class_names: Sequence[str],
    names_source: str,
    features_path: Path,
    mapping: dict[int, int] | None,
    repair: bool,
) -> str:
    i = int(bad[0])
    label, col = int(labels[i]), int(cols[i])
    folder = _folder(files[i]).rsplit("/", 1)[-1]
    if col >= 0:
        folder_says = f"its folder {folder!r} is the class {class_names[col]!r} (column {col + 1})"
    else:
        folder_says = f"its folder {folder!r} names no class"
    head = (
        f"{features_path}: the labels disagree with the class folders of image_files: image "
        f"{i + 1} ({files[i]!r}) has label {label + 1}, the class {class_names[label]!r} "
        f"(column {label + 1} of {names_source}), but {folder_says}; {bad.size} of "
        f"{labels.size} images disagree."
    )
    if mapping is not None:
        moved = [(a, b) for a, b in mapping.items() if a != b]
        shown = ", ".join(f"label {a + 1} -> column {b + 1}" for a, b in moved[:3])
        more = f" and {len(moved) - 3} more" if len(moved) > 3 else ""
        return (
            f"{head} The disagreement is whole classes moved to other columns ({shown}{more}): "
            "the labels index another class order of att_splits.mat (another re-save of it?). "
            f"Using them would pair images with the wrong class semantics. {_REPAIR_HINT} "
            "relabels each image with the column whose class name matches its folder, and "
            "says so in the dataset's quirks; or pair the features file with its own "
            "att_splits.mat."
        )
    why = (
        "some folders name no class"
        if (cols < 0).any()
        else "it is not whole classes moved one-to-one to other columns"
    )
    asked = " (data.repair_labels: true was set)" if repair else ""
    return (
        f"{head} This cannot be repaired by name{asked}: {why}. The labels, image_files or "
        "the class names are wrong; pair the features file with the att_splits.mat it was "
        "made for."
    )
