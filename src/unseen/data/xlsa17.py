"""Loader for the xlsa17 benchmark layout (Xian et al., TPAMI 2018) and the FLO release.

Layout, one folder per dataset under a data root::

    <root>/<DS>/att_splits.mat   att (d_a x C), original_att, trainval_loc, test_seen_loc,
                                 test_unseen_loc, train_loc, val_loc, allclasses_names
    <root>/<DS>/res101.mat       features (d x N), labels (N x 1)  -- users bring this file
    <root>/<DS>/sent_splits.mat  CUB only: 1024-d sentence embeddings ``att`` (+ locs)
    <root>/<DS>/splits/*.txt     class lists (allclasses, trainvalclasses, testclasses,
                                 valclasses1, ...); the original release has them in <DS>/

MATLAB indices are 1-based; everything returned here is 0-based. ``train_loc``/``val_loc``
overlap ``test_seen_loc`` in the released files, so they are used only to decide which seen
classes are the pseudo-unseen validation classes, never as image sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unseen.data.dataset import ZSLDataset
from unseen.data.label_names import check_label_names
from unseen.data.matfile import read_mat
from unseen.errors import DataError

__all__ = [
    "DATASETS",
    "SEMANTICS",
    "DatasetReport",
    "discover",
    "feature_files",
    "inspect_xlsa17",
    "load_xlsa17",
]

DATASETS = ("AWA1", "AWA2", "CUB", "SUN", "APY", "FLO")
SEMANTICS = ("att", "original_att", "sent", "att+sent")

_SPLIT_KEYS = ("trainval_loc", "test_seen_loc", "test_unseen_loc")
_SIDE_FILES = ("att_splits.mat", "sent_splits.mat")


@dataclass
class DatasetReport:
    """What :func:`inspect_xlsa17` found about one dataset folder.

    Attributes:
        name: dataset name (``"AWA2"``).
        root: the data root.
        n_classes: number of classes (columns of ``att``).
        semantic_dim: dimension of ``att``.
        semantic_sources: available class semantics, e.g. ``["att 85-d", "original_att 85-d"]``.
        n_trainval: images in ``trainval_loc``.
        n_test_seen: images in ``test_seen_loc``.
        n_test_unseen: images in ``test_unseen_loc``.
        n_seen_classes: seen classes (from labels or the split lists; ``None`` if unknown).
        n_unseen_classes: unseen classes (same sources).
        features_file: where the features file is expected.
        features_present: whether that file exists.
        feature_dim: feature dimension when the file was read.
        n_images: images in the features file when it was read.
        quirks: oddities found in the files.
    """

    name: str
    root: str
    n_classes: int
    semantic_dim: int
    semantic_sources: list[str]
    n_trainval: int
    n_test_seen: int
    n_test_unseen: int
    n_seen_classes: int | None
    n_unseen_classes: int | None
    features_file: str
    features_present: bool
    feature_dim: int | None
    n_images: int | None
    quirks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)


# ---------------------------------------------------------------------------- public API


def discover(root: str | Path) -> list[str]:
    """Dataset folders under ``root`` that hold an ``att_splits.mat``.

    Known benchmarks come first in :data:`DATASETS` order, then any other folder, sorted.
    """
    root = _check_root(root)
    found = [p.name for p in root.iterdir() if p.is_dir() and (p / "att_splits.mat").is_file()]
    known = {n.upper(): n for n in found if n.upper() in DATASETS}
    first = [known[d] for d in DATASETS if d in known]
    return first + sorted(n for n in found if n not in first)


def feature_files(root: str | Path, name: str) -> list[str]:
    """The features files present in ``ROOT/<name>/``: every ``.mat`` other than the
    semantic files, ``res101.mat`` (the papers' ResNet-101) first."""
    folder = Path(root) / name
    found = sorted(
        p.name for p in folder.glob("*.mat") if p.is_file() and p.name not in _SIDE_FILES
    )
    return sorted(found, key=lambda n: n != "res101.mat")


def inspect_xlsa17(
    root: str | Path,
    name: str,
    features: str | Path = "res101.mat",
    *,
    repair_labels: bool = False,
) -> DatasetReport:
    """Describe a dataset folder from its semantic files (and the features file if present).

    A missing features file is not an error here: the report says ``features_present=False``.
    A features file that cannot be used is reported as a quirk. Labels that disagree with the
    class folders of the file's ``image_files`` are an error, as in :func:`load_xlsa17`
    (``repair_labels`` as there), since every number computed from them would be wrong.
    """
    side = _read_side(root, name)
    fpath = _features_path(side.folder, features)
    quirks = list(side.quirks)
    for src in side.matrices:
        quirks += side.source_quirks.get(src, [])
    feature_dim = n_images = None
    labels = None
    present = fpath.is_file()
    if present:
        try:
            feats, labels, fq, image_files = _read_features(side, fpath)
        except DataError as exc:
            quirks.append(f"features file unusable: {exc}")
        else:
            n_images, feature_dim = (int(s) for s in feats.shape)
            quirks += fq
            labels, nq = _check_names(side, labels, image_files, fpath, repair_labels)
            quirks += nq
    seen, unseen = _seen_unseen(side, labels)
    att = side.matrices["att"]
    return DatasetReport(
        name=side.name,
        root=str(side.folder.parent),
        n_classes=int(att.shape[0]),
        semantic_dim=int(att.shape[1]),
        semantic_sources=[f"{k} {v.shape[1]}-d" for k, v in side.matrices.items()],
        n_trainval=int(side.trainval.size),
        n_test_seen=int(side.test_seen.size),
        n_test_unseen=int(side.test_unseen.size),
        n_seen_classes=None if seen is None else int(seen.size),
        n_unseen_classes=None if unseen is None else int(unseen.size),
        features_file=str(fpath),
        features_present=present,
        feature_dim=feature_dim,
        n_images=n_images,
        quirks=quirks,
    )


def load_xlsa17(
    root: str | Path,
    name: str,
    *,
    features: str | Path = "res101.mat",
    semantics: str = "att",
    repair_labels: bool = False,
    splits: str | Path | None = None,
) -> ZSLDataset:
    """Load one xlsa17 benchmark into a :class:`ZSLDataset` (0-based, float32).

    Args:
        root: data root holding ``<name>/att_splits.mat``.
        name: ``AWA1``, ``AWA2``, ``CUB``, ``SUN``, ``APY``, ``FLO`` (any case), or any folder
            under ``root`` that holds an ``att_splits.mat``.
        features: features file, a name inside ``<root>/<name>/`` or a path
            (e.g. ``"effnet_lite0.mat"`` for the FLO features shipped in ``shared/data``).
        semantics: ``"att"`` (L2-normalised attributes), ``"original_att"`` (raw), or
            ``"sent"`` (CUB's ``sent_splits.mat`` sentence embeddings, not normalised), or
            ``"att+sent"`` (GMN's CUB setting: the L2-normalised attributes and the
            L2-normalised sentence embeddings of each class, concatenated).
        repair_labels: where the features file's ``image_files`` show that its labels index
            another class order of ``att_splits.mat`` (whole classes moved to other
            columns), relabel each image with the column whose class name matches its image
            folder, and say so in the quirks. Off: such labels are an error.
        splits: an ``att_splits.mat``-layout file read INSTEAD of ``<name>/att_splits.mat``
            (its class split, ``att`` and class names), e.g. one drawn by ``unseen splits``
            (:mod:`unseen.data.splits`); the features and ``sent_splits.mat`` still come from
            the dataset folder. Refused when its class count or names differ from the
            dataset's own file. ``None``: the proposed split.

    Raises:
        DataError: a file is missing or unreadable, or the files disagree (the message names
            the file, the variable and the value at fault), including labels whose class
            names disagree with their images' folders in ``image_files``
            (:mod:`unseen.data.label_names`).
    """
    if semantics not in SEMANTICS:
        raise DataError(
            f"unknown semantics {semantics!r}; choose one of {', '.join(SEMANTICS)} "
            "('sent' = CUB's sent_splits.mat sentence embeddings)"
        )
    side = _read_side(root, name, splits)
    parts = semantics.split("+")
    for part in parts if len(parts) > 1 else []:
        if part not in side.matrices:
            raise DataError(
                f"{side.name}: semantics={semantics!r} needs {part!r}, which is not available; "
                f"available semantics: {', '.join(side.matrices)}"
            )
    if len(parts) > 1:
        side.matrices[semantics] = np.concatenate(
            [
                side.matrices[p]
                / np.maximum(np.linalg.norm(side.matrices[p], axis=1, keepdims=True), 1e-12)
                for p in parts
            ],
            axis=1,
        ).astype(side.matrices[parts[0]].dtype)
    if semantics not in side.matrices:
        if semantics == "sent":
            raise DataError(
                f"{side.name}: semantics='sent' needs {side.folder / 'sent_splits.mat'}, which "
                f"is not there (only CUB ships sentence embeddings); available semantics: "
                f"{', '.join(side.matrices)}"
            )
        raise DataError(
            f"{side.att_path}: no usable variable {semantics!r}; available semantics: "
            f"{', '.join(side.matrices)}"
        )
    fpath = _features_path(side.folder, features)
    if not fpath.is_file():
        raise _missing_features(side, fpath, features)
    feats, labels, fq, image_files = _read_features(side, fpath)
    # Before the class-split check: labels that index another class order usually mix seen
    # and unseen classes, and the name check says why far more clearly.
    labels, nq = _check_names(side, labels, image_files, fpath, repair_labels)
    _check_class_split(side, labels, fpath)
    quirks = [*side.quirks, *(q for p in parts for q in side.source_quirks.get(p, [])), *fq, *nq]
    if splits is not None:
        how = f" ({side.split_info})" if side.split_info else ""
        quirks.insert(0, f"class split from {side.att_path}{how}, not the proposed split")
    seen = np.unique(labels[side.trainval])
    val, vq = _val_classes(side, labels, seen)
    quirks += vq
    if side.seen_txt is not None and not np.array_equal(np.sort(side.seen_txt), seen):
        quirks.append(
            f"{side.txt_files['seen']} lists {side.seen_txt.size} seen classes but the labels "
            f"of trainval_loc give {seen.size}; the labels are used"
        )
    sources = [str(side.att_path), str(fpath)]
    if "sent" in parts:
        sources.insert(1, str(side.sent_path))
    try:
        return ZSLDataset(
            name=side.name,
            features=feats,
            labels=labels,
            semantics=side.matrices[semantics],
            class_names=side.class_names,
            trainval=side.trainval,
            test_seen=side.test_seen,
            test_unseen=side.test_unseen,
            val_classes=val,
            quirks=quirks,
            synthetic=False,
            source=" + ".join(sources),
        )
    except DataError as exc:
        raise DataError(f"{side.att_path} with {fpath}: {exc}") from exc


# ---------------------------------------------------------------------------- semantic side


@dataclass
class _Side:
    """Everything read from att_splits.mat (+ sent_splits.mat and the class-list txt files)."""

    name: str
    folder: Path
    att_path: Path
    sent_path: Path | None
    matrices: dict[str, np.ndarray]
    source_quirks: dict[str, list[str]]
    class_names: list[str]
    names_source: str | None
    trainval: np.ndarray
    test_seen: np.ndarray
    test_unseen: np.ndarray
    train_loc: np.ndarray | None
    val_loc: np.ndarray | None
    locs_file: Path | None
    seen_txt: np.ndarray | None
    unseen_txt: np.ndarray | None
    val_txt: np.ndarray | None
    txt_files: dict[str, str]
    quirks: list[str]
    split_info: str = ""


def _check_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"data root {root} not found: expected a folder holding one sub-folder per dataset "
            "(AWA1/, AWA2/, CUB/, ...), each with an att_splits.mat"
        )
    return root


def _resolve(root: str | Path, name: str) -> tuple[str, Path]:
    root = _check_root(root)
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"dataset name must be a non-empty string, got {name!r}")
    wanted = name.strip()
    known = wanted.upper() in DATASETS
    folder = root / wanted
    if not folder.is_dir():
        same = [p for p in root.iterdir() if p.is_dir() and p.name.lower() == wanted.lower()]
        folder = same[0] if same else None
    if folder is not None and (folder / "att_splits.mat").is_file():
        return (wanted.upper() if known else folder.name), folder
    if known:
        expected = (folder or root / wanted.upper()) / "att_splits.mat"
        raise DataError(
            f"{wanted.upper()}: missing att_splits.mat: expected {expected}. Copy the xlsa17 "
            f"release's {wanted.upper()}/ folder (att_splits.mat, and your features file) "
            f"under {root}."
        )
    present = discover(root)
    raise DataError(
        f"unknown dataset {name!r}: known datasets are {', '.join(DATASETS)}; folders under "
        f"{root} holding an att_splits.mat: {', '.join(present) if present else 'none'}"
    )


def _read_side(root: str | Path, name: str, split_file: str | Path | None = None) -> _Side:
    canonical, folder = _resolve(root, name)
    att_path = folder / "att_splits.mat" if split_file is None else _split_file(split_file, folder)
    m = read_mat(
        att_path,
        ["att", *_SPLIT_KEYS],
        optional=["original_att", "train_loc", "val_loc", "allclasses_names", "split_info"],
    )
    quirks: list[str] = []
    source_quirks: dict[str, list[str]] = {s: [] for s in SEMANTICS}
    att = _semantic_matrix(m["att"], att_path, "att")
    n_classes = att.shape[0]
    matrices = {"att": att}
    if "original_att" in m:
        orig = _semantic_matrix(m["original_att"], att_path, "original_att")
        if orig.shape != att.shape:
            quirks.append(
                f"original_att is {orig.shape[1]} x {orig.shape[0]} but att is "
                f"{att.shape[1]} x {att.shape[0]}; original_att is ignored"
            )
        else:
            matrices["original_att"] = orig
    norms = np.linalg.norm(att, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-3):
        source_quirks["att"].append(
            f"att class vectors are not L2-normalised (norms {norms.min():.3g}-{norms.max():.3g})"
        )

    sent_path = folder / "sent_splits.mat"
    sent: dict[str, Any] = {}
    if sent_path.is_file():
        sent = read_mat(sent_path, ["att"], optional=[*_SPLIT_KEYS, "train_loc", "val_loc"])
        emb = _semantic_matrix(sent["att"], sent_path, "att")
        if emb.shape[0] != n_classes:
            quirks.append(
                f"{sent_path.name}: att has {emb.shape[0]} class columns but att_splits.mat "
                f"has {n_classes}; sentence embeddings ignored"
            )
        else:
            matrices["sent"] = emb
            norms = np.linalg.norm(emb, axis=1)
            if not np.allclose(norms, 1.0, atol=1e-3):
                source_quirks["sent"].append(
                    f"sent embeddings are not L2-normalised (class norms {norms.min():.3g}-"
                    f"{norms.max():.3g}); use transform_semantics(s, 'l2') where a method "
                    "expects unit vectors"
                )
    else:
        sent_path = None

    splits = {k: _locs(m[k], att_path, k) for k in _SPLIT_KEYS}
    for k in _SPLIT_KEYS:  # (a split file's locs differ from sent_splits.mat's by design)
        if sent_path is not None and k in sent and split_file is None:
            other = _locs(sent[k], sent_path, k)
            if not np.array_equal(np.sort(other), np.sort(splits[k])):
                quirks.append(
                    f"{k} differs between att_splits.mat and sent_splits.mat; "
                    "using att_splits.mat's"
                )
    _check_disjoint_images(splits, att_path)

    train_loc = val_loc = locs_file = None
    if "train_loc" in m and "val_loc" in m:
        locs_file = att_path
        train_loc, val_loc = (_locs(m[k], att_path, k) for k in ("train_loc", "val_loc"))
    elif "train_loc" in sent and "val_loc" in sent and split_file is None:
        locs_file = sent_path
        train_loc, val_loc = (_locs(sent[k], sent_path, k) for k in ("train_loc", "val_loc"))
        quirks.append(
            f"att_splits.mat has no train_loc/val_loc (the {canonical} re-save in circulation "
            f"lacks them); taken from sent_splits.mat (train_loc {train_loc.size}, val_loc "
            f"{val_loc.size} images)"
        )
    if train_loc is not None and val_loc is not None:
        quirks += _train_val_quirks(train_loc, val_loc, splits)

    class_names, names_source, name_quirk = _class_names(
        m.get("allclasses_names"), folder, n_classes, att_path
    )
    if name_quirk:
        quirks.append(name_quirk)
    if split_file is not None:
        _check_split_file(att_path, folder, att, class_names)
    txt_files: dict[str, str] = {}
    lists = {}
    for role, fname in (
        ("seen", "trainvalclasses.txt"),
        ("unseen", "testclasses.txt"),
        ("val", "valclasses1.txt"),
    ):
        # the class lists describe the proposed split, not a split file's
        path = _find_txt(folder, fname) if split_file is None else None
        lists[role] = None
        if path is not None:
            txt_files[role] = str(path.relative_to(folder))
            lists[role] = _names_to_indices(_read_lines(path), class_names, path, quirks)

    if train_loc is None:
        lone = [k for k in ("train_loc", "val_loc") if k in m]
        msg = "att_splits.mat has no train_loc/val_loc" + (f" (only {lone[0]})" if lone else "")
        if lists["val"] is not None:
            msg += (
                f"; validation classes are taken by name from {txt_files['val']} "
                f"({lists['val'].size} classes)"
            )
        else:
            msg += " and there is no valclasses1.txt; val_classes is left to the protocol"
        quirks.append(msg)
    if "original_att" in matrices:
        quirks += _missing_value_quirks(matrices, class_names, source_quirks)

    return _Side(
        name=canonical,
        folder=folder,
        att_path=att_path,
        sent_path=sent_path,
        matrices=matrices,
        source_quirks=source_quirks,
        class_names=class_names,
        names_source=names_source,
        trainval=splits["trainval_loc"],
        test_seen=splits["test_seen_loc"],
        test_unseen=splits["test_unseen_loc"],
        train_loc=train_loc,
        val_loc=val_loc,
        locs_file=locs_file,
        seen_txt=lists["seen"],
        unseen_txt=lists["unseen"],
        val_txt=lists["val"],
        txt_files=txt_files,
        quirks=quirks,
        split_info=m["split_info"] if isinstance(m.get("split_info"), str) else "",
    )


def _split_file(splits: str | Path, folder: Path) -> Path:
    """The split file of ``load_xlsa17(splits=...)``, which must exist."""
    path = Path(splits).expanduser()
    if not path.is_file():
        where = "is a folder" if path.is_dir() else "does not exist"
        raise DataError(
            f"split file {path} {where}: data.splits names an att_splits.mat-layout file "
            f"(e.g. drawn by `unseen splits {folder.name} ...`) that replaces "
            f"{folder / 'att_splits.mat'}"
        )
    return path


def _check_split_file(path: Path, folder: Path, att: np.ndarray, names: list[str]) -> None:
    """A split file must describe the dataset's own classes (same count, names, att)."""
    own = read_mat(folder / "att_splits.mat", ["att"], optional=["allclasses_names"])
    own_att = _semantic_matrix(own["att"], folder / "att_splits.mat", "att")
    own_names, _, _ = _class_names(
        own.get("allclasses_names"), folder, own_att.shape[0], folder / "att_splits.mat"
    )
    if own_att.shape != att.shape or own_names != names:
        what = (
            f"{att.shape[0]} classes x {att.shape[1]}-d att"
            if own_att.shape != att.shape
            else "other class names"
        )
        raise DataError(
            f"split file {path} has {what}, but {folder / 'att_splits.mat'} has "
            f"{own_att.shape[0]} classes x {own_att.shape[1]}-d att: it was drawn for "
            f"another dataset than {folder.name}; draw one with `unseen splits {folder.name}`"
        )


def _semantic_matrix(value: Any, path: Path, key: str) -> np.ndarray:
    """``d_a x C`` MATLAB matrix -> ``(C, d_a)`` float32."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "buif" or value.ndim != 2:
        what = type(value).__name__ if not isinstance(value, np.ndarray) else value.dtype
        raise DataError(f"{path}: {key!r} must be a numeric d x C matrix, got {what}")
    if value.size == 0:
        raise DataError(f"{path}: {key!r} is empty (shape {value.shape})")
    out = np.ascontiguousarray(value.T, dtype=np.float32)
    if not np.all(np.isfinite(out)):
        bad = np.unique(np.nonzero(~np.isfinite(out))[0])
        raise DataError(
            f"{path}: {key!r} holds NaN or inf values in {bad.size} class columns "
            f"(1-based: {(bad[:5] + 1).tolist()})"
        )
    return out


def _locs(value: Any, path: Path, key: str) -> np.ndarray:
    """1-based MATLAB index vector -> 0-based int64 array."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "uif":
        raise DataError(
            f"{path}: {key!r} must be a numeric index vector, got {type(value).__name__}"
        )
    if value.ndim > 2 or (value.ndim == 2 and 1 not in value.shape and value.size):
        raise DataError(f"{path}: {key!r} must be an N x 1 index vector, got shape {value.shape}")
    flat = value.ravel()
    if flat.dtype.kind == "f" and not np.all(np.isfinite(flat) & (flat == np.round(flat))):
        raise DataError(f"{path}: {key!r} holds non-integer values; it must list image indices")
    idx = flat.astype(np.int64)
    if idx.size and idx.min() < 1:
        raise DataError(
            f"{path}: {key!r} holds the index {idx.min()}, but MATLAB indices are 1-based "
            "(smallest valid index is 1); was the file saved with 0-based indices?"
        )
    return idx - 1


def _check_disjoint_images(splits: dict[str, np.ndarray], path: Path) -> None:
    keys = list(splits)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            common = np.intersect1d(splits[a], splits[b])
            if common.size:
                raise DataError(
                    f"{path}: {a} and {b} share {common.size} images (1-based: "
                    f"{(common[:5] + 1).tolist()}); the proposed-split sets must be disjoint"
                )


def _train_val_quirks(
    train_loc: np.ndarray, val_loc: np.ndarray, splits: dict[str, np.ndarray]
) -> list[str]:
    tv, ts = splits["trainval_loc"], splits["test_seen_loc"]
    n_tr = np.intersect1d(train_loc, ts).size
    n_va = np.intersect1d(val_loc, ts).size
    out = []
    if train_loc.size + val_loc.size != tv.size:
        out.append(
            f"train_loc ({train_loc.size}) + val_loc ({val_loc.size}) = "
            f"{train_loc.size + val_loc.size} images, but trainval_loc has {tv.size}"
        )
    if n_tr + n_va:
        out.append(
            f"train_loc/val_loc overlap test_seen_loc in {n_tr + n_va} images ({n_tr} train_loc, "
            f"{n_va} val_loc); only their class split is used"
        )
    if np.intersect1d(train_loc, val_loc).size:
        out.append("train_loc and val_loc share images")
    return out


def _class_names(
    raw: Any, folder: Path, n_classes: int, att_path: Path
) -> tuple[list[str], str | None, str | None]:
    """The class names, where they came from (``None``: placeholders), and a quirk."""
    if raw is not None:
        names = [raw] if isinstance(raw, str) else list(raw)
        if all(isinstance(n, str) for n in names) and len(names) == n_classes:
            return [n.strip() for n in names], f"allclasses_names in {att_path.name}", None
        problem = (
            f"allclasses_names in {att_path.name} has {len(names)} entries for {n_classes} classes"
        )
    else:
        problem = f"no allclasses_names in {att_path.name}"
    path = _find_txt(folder, "allclasses.txt")
    if path is not None:
        names = _read_lines(path)
        if len(names) == n_classes:
            where = str(path.relative_to(folder))
            return names, where, f"{problem}; class names from {where}"
        problem += f"; {path.relative_to(folder)} has {len(names)} lines"
    generic = [f"class_{i + 1:03d}" for i in range(n_classes)]
    return (
        generic,
        None,
        (
            f"{problem} and no usable allclasses.txt; classes are named class_001..class_"
            f"{n_classes:03d} after the columns of att"
        ),
    )


def _find_txt(folder: Path, fname: str) -> Path | None:
    for path in (folder / "splits" / fname, folder / fname):
        if path.is_file():
            return path
    return None


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as a UTF-8 class list ({exc})") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _names_to_indices(
    names: Sequence[str], class_names: list[str], path: Path, quirks: list[str]
) -> np.ndarray | None:
    index = {n: i for i, n in enumerate(class_names)}
    unknown = [n for n in names if n not in index]
    if unknown:
        quirks.append(
            f"{path.parent.name}/{path.name} names {len(unknown)} classes that are not in the "
            f"class names (e.g. {unknown[0]!r}); the file is ignored"
        )
        return None
    return np.array(sorted(index[n] for n in set(names)), dtype=np.int64)


def _missing_value_quirks(
    matrices: dict[str, np.ndarray], class_names: list[str], source_quirks: dict[str, list[str]]
) -> list[str]:
    orig = matrices["original_att"]
    missing = orig == -1
    if not missing.any():
        return []
    rows = np.unique(np.nonzero(missing)[0])
    where = ", ".join(
        f"{class_names[r]!r} dims {(np.nonzero(missing[r])[0] + 1).tolist()}" for r in rows[:3]
    )
    n_neg = int((matrices["att"] < 0).sum())
    source_quirks["original_att"].append(
        f"semantics='original_att' keeps the {int(missing.sum())} -1 (missing) entries as they are"
    )
    return [
        f"original_att has {int(missing.sum())} entries equal to -1 (missing annotations: "
        f"{where}); att was normalised with them kept, so att has {n_neg} negative entries"
    ]


# ---------------------------------------------------------------------------- features side


def _features_path(folder: Path, features: str | Path) -> Path:
    p = Path(features).expanduser()
    if p.is_absolute() or len(p.parts) > 1:
        return p
    inside = folder / p
    if inside.exists() or not p.is_file():
        return inside
    return p


def _missing_features(side: _Side, fpath: Path, features: str | Path) -> DataError:
    others = sorted(
        p.name for p in side.folder.glob("*.mat") if p.name not in _SIDE_FILES and p != fpath
    )
    hint = (
        f" This folder holds other .mat files: {', '.join(others)}; e.g. pass "
        f"--set data.features={others[0]} (--features {others[0]} for `unseen convert`)."
        if others
        else ""
    )
    return DataError(
        f"{side.name}: features file {fpath} not found. unseen does not ship image features: "
        f"put the xlsa17 {Path(features).name} (variables 'features' d x N and 'labels' N x 1, "
        f"1-based) at {fpath}, or name a file of another name in {side.folder} (or a path) "
        f"with --set data.features=NAME.{hint}"
    )


def _labels(value: Any, path: Path, n_classes: int, att_path: Path) -> np.ndarray:
    """MATLAB ``labels`` (N x 1, 1-based) -> 0-based int64 ``(N,)``."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "uif":
        raise DataError(
            f"{path}: 'labels' must be a numeric N x 1 vector, got {type(value).__name__}"
        )
    if value.ndim > 2 or (value.ndim == 2 and 1 not in value.shape):
        raise DataError(f"{path}: 'labels' must be an N x 1 vector, got shape {value.shape}")
    flat = value.ravel()
    if flat.dtype.kind == "f" and not np.all(np.isfinite(flat) & (flat == np.round(flat))):
        raise DataError(f"{path}: 'labels' holds non-integer or NaN values; expected class ids")
    labels = flat.astype(np.int64)
    if labels.size == 0:
        raise DataError(f"{path}: 'labels' is empty")
    if labels.min() < 1:
        raise DataError(
            f"{path}: 'labels' holds the class id {labels.min()}, but xlsa17 labels are 1-based "
            "MATLAB class ids (1..C); was the file saved with 0-based labels?"
        )
    if labels.max() > n_classes:
        raise DataError(
            f"{path}: 'labels' go up to class {labels.max()} but 'att' in {att_path} has only "
            f"{n_classes} class columns; are the two files from the same dataset?"
        )
    return labels - 1


def _read_features(side: _Side, path: Path) -> tuple[np.ndarray, np.ndarray, list[str], Any]:
    """Features ``(N, d)`` float32, 0-based labels, quirks, and ``image_files`` as stored
    (``None`` when the file has none)."""
    quirks = []
    try:
        m = read_mat(path, ["features", "labels"], optional=["image_files"])
    except DataError as exc:
        # image_files only serves the name check: a form of it the reader does not support
        # must not make the features unusable (a damaged file fails again just below).
        m = read_mat(path, ["features", "labels"])
        quirks.append(
            f"{path.name}: 'image_files' cannot be read ({exc}); the labels are not checked "
            "against image folders"
        )
    raw = m["features"]
    if not isinstance(raw, np.ndarray) or raw.dtype.kind not in "buif" or raw.ndim != 2:
        what = raw.dtype if isinstance(raw, np.ndarray) else type(raw).__name__
        shape = getattr(raw, "shape", None)
        raise DataError(f"{path}: 'features' must be a numeric d x N matrix, got {what} {shape}")
    labels = _labels(m["labels"], path, side.matrices["att"].shape[0], side.att_path)
    n = labels.size
    if raw.shape[1] == n:
        feats = raw.T
    elif raw.shape[0] == n:
        feats = raw
        quirks.append(f"{path.name}: 'features' stored N x d ({raw.shape}) instead of d x N")
    else:
        raise DataError(
            f"{path}: 'labels' has {n} entries but 'features' is {raw.shape[0]} x "
            f"{raw.shape[1]}; the res101.mat layout is features d x N with one label per column"
        )
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    locs = {"trainval_loc": side.trainval, "test_seen_loc": side.test_seen}
    locs["test_unseen_loc"] = side.test_unseen
    for key, idx in locs.items():
        if idx.size and idx.max() >= n:
            raise DataError(
                f"{side.att_path}: {key!r} refers to image {idx.max() + 1} (1-based) but {path} "
                f"holds only {n} images; are the two files from the same dataset?"
            )
    for key in ("train_loc", "val_loc"):
        idx = getattr(side, key)
        if idx is not None and idx.size and idx.max() >= n:
            raise DataError(
                f"{side.locs_file}: {key!r} refers to image {idx.max() + 1} (1-based) but {path} "
                f"holds only {n} images"
            )
    finite = np.isfinite(feats).all(axis=1)
    if not finite.all():
        rows = np.nonzero(~finite)[0]
        raise DataError(
            f"{path}: 'features' holds NaN or inf values in {rows.size} images (1-based "
            f"columns: {(rows[:5] + 1).tolist()}); clean or drop them before training"
        )
    return feats, labels, quirks, m.get("image_files")


def _check_names(
    side: _Side, labels: np.ndarray, image_files: Any, fpath: Path, repair: bool
) -> tuple[np.ndarray, list[str]]:
    """:func:`~unseen.data.label_names.check_label_names` with this dataset's names."""
    return check_label_names(
        labels,
        image_files,
        side.class_names,
        names_source=side.names_source,
        features_path=fpath,
        repair=repair,
    )


def _check_class_split(side: _Side, labels: np.ndarray, fpath: Path) -> None:
    seen = np.unique(labels[side.trainval])
    unseen = np.unique(labels[side.test_unseen])
    both = np.intersect1d(seen, unseen)
    if both.size:
        names = [side.class_names[c] for c in both[:5]]
        raise DataError(
            f"{side.att_path} with labels from {fpath}: classes {names} have images in both "
            "trainval_loc and test_unseen_loc; seen and unseen classes must be disjoint"
        )
    stray = np.setdiff1d(np.unique(labels[side.test_seen]), seen)
    if stray.size:
        names = [side.class_names[c] for c in stray[:5]]
        raise DataError(
            f"{side.att_path} with labels from {fpath}: test_seen_loc holds classes {names} "
            "that have no trainval_loc images"
        )


def _seen_unseen(
    side: _Side, labels: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if labels is not None:
        return np.unique(labels[side.trainval]), np.unique(labels[side.test_unseen])
    return side.seen_txt, side.unseen_txt


def _val_classes(
    side: _Side, labels: np.ndarray | None, seen: np.ndarray
) -> tuple[np.ndarray | None, list[str]]:
    """Pseudo-unseen validation classes: seen classes of val_loc, else of valclasses1.txt."""
    quirks = []
    if labels is not None and side.val_loc is not None and side.train_loc is not None:
        val = np.unique(labels[side.val_loc])
        train = np.unique(labels[side.train_loc])
        kept = np.intersect1d(val, seen)
        if kept.size < val.size:
            quirks.append(f"val_loc holds {val.size - kept.size} non-seen classes; ignored")
        if np.intersect1d(kept, train).size:
            quirks.append(
                f"{np.intersect1d(kept, train).size} classes have images in both train_loc and "
                "val_loc"
            )
        if kept.size and kept.size < seen.size:
            return kept, quirks
        quirks.append("val_loc gives no usable validation classes")
    if side.val_txt is not None:
        kept = np.intersect1d(side.val_txt, seen)
        if kept.size and kept.size < seen.size:
            if side.train_loc is not None:
                quirks.append(
                    f"validation classes taken by name from {side.txt_files['val']} "
                    f"({kept.size} classes)"
                )
            return kept, quirks
    quirks.append("no validation class split found; val_classes left to the protocol")
    return None, quirks
