"""unseen's native dataset format: one ``.npz`` file, no pickle.

Use it for your own data, or to turn a slow-to-parse ``.mat`` benchmark into a fast-loading
file (:func:`convert_xlsa17`). The file is a plain numpy ``.npz`` archive (``numpy.savez``)
that :func:`numpy.load` opens with ``allow_pickle=False``. All indices are **0-based**.

Format version 1:

===============  ========  =========  ====================================================
key              dtype     shape      meaning
===============  ========  =========  ====================================================
features         float*    (N, d)     image features, one row per image (stored float32)
labels           int*      (N,)       class of each image, in ``[0, C)``
semantics        float*    (C, d_a)   class semantic vectors, one row per class
class_names      str       (C,)       class names (a unicode array, not objects)
trainval         int*      (n_tv,)    rows of the seen-class training images
test_seen        int*      (n_ts,)    rows of the seen-class test images
test_unseen      int*      (n_tu,)    rows of the unseen-class test images
val_classes      int*      (k,)       optional: seen classes used as pseudo-unseen ones
                                      when validating (absent: the protocol picks them)
format_version   int       ()         optional, ``1``
synthetic        bool      ()         optional, ``True`` if the features are synthetic
name             str       ()         optional dataset name (default: the file stem)
source           str       ()         optional provenance note
quirks           str       (q,)       optional notes about the data
===============  ========  =========  ====================================================

Seen classes are the classes of ``trainval``; unseen classes are those of ``test_unseen``;
the two must be disjoint, and ``test_seen`` may hold only seen classes.

Writing one from your own arrays::

    np.savez("mydata.npz", features=X.astype(np.float32), labels=y.astype(np.int64),
             semantics=S.astype(np.float32), class_names=np.array(names, dtype=str),
             trainval=tv, test_seen=ts, test_unseen=tu, format_version=1, synthetic=False)

then ``load_native("mydata.npz")`` checks it and returns a :class:`ZSLDataset`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from unseen.data.dataset import ZSLDataset
from unseen.errors import DataError, OutputExistsError
from unseen.files import atomic_write

__all__ = ["FORMAT_VERSION", "convert_xlsa17", "load_native", "save_native"]

FORMAT_VERSION = 1
_REQUIRED = (
    "features",
    "labels",
    "semantics",
    "class_names",
    "trainval",
    "test_seen",
    "test_unseen",
)
_SPLITS = ("trainval", "test_seen", "test_unseen")


def save_native(ds: ZSLDataset, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``ds`` to ``path`` in the native format (atomically).

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
        DataError: ``ds`` has no features (the format stores a full benchmark).
    """
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --force to replace it")
    if ds.features is None or ds.labels is None:
        raise DataError(f"{ds.name}: cannot save a dataset without features/labels to {path}")
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "name": np.array(ds.name, dtype=str),
        "features": np.asarray(ds.features, dtype=np.float32),
        "labels": np.asarray(ds.labels, dtype=np.int64),
        "semantics": np.asarray(ds.semantics, dtype=np.float32),
        "class_names": np.array(list(ds.class_names), dtype=str),
        "trainval": np.asarray(ds.trainval, dtype=np.int64),
        "test_seen": np.asarray(ds.test_seen, dtype=np.int64),
        "test_unseen": np.asarray(ds.test_unseen, dtype=np.int64),
        "synthetic": np.array(bool(ds.synthetic)),
        "source": np.array(ds.source, dtype=str),
        "quirks": np.array(list(ds.quirks), dtype=str).reshape(-1),
    }
    if ds.val_classes is not None:
        arrays["val_classes"] = np.asarray(ds.val_classes, dtype=np.int64)
    # A temp file in the same folder, renamed: readers never see half a file.
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load_native(path: str | Path) -> ZSLDataset:
    """Read and check a native ``.npz`` dataset.

    Raises:
        DataError: the file is missing or not an ``.npz``, a key is missing, or a value has
            the wrong dtype or shape (the message names the key).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc}); the native "
            "format is a numpy.savez file"
        ) from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single .npy array, expected an .npz archive")
    with npz:
        keys = set(npz.files)
        missing = [k for k in _REQUIRED if k not in keys]
        if missing:
            raise DataError(
                f"{path}: missing key {missing[0]!r}"
                + (f" (also: {', '.join(missing[1:])})" if len(missing) > 1 else "")
                + f"; the file holds {', '.join(sorted(keys)) or 'nothing'}. See "
                "unseen.data.native for the format."
            )
        get = _Reader(npz, path)
        version = int(get.scalar("format_version", "iu", default=FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise DataError(
                f"{path}: format_version {version} is newer than this unseen understands "
                f"({FORMAT_VERSION}); upgrade unseen"
            )
        features = get.array("features", "f", ndim=2).astype(np.float32, copy=False)
        n = features.shape[0]
        labels = get.array("labels", "iu", shape=(n,), what="one per feature row")
        semantics = get.array("semantics", "f", ndim=2).astype(np.float32, copy=False)
        c = semantics.shape[0]
        names = get.array("class_names", "US", shape=(c,), what="one per semantics row")
        splits = {k: get.array(k, "iu", ndim=1).astype(np.int64) for k in _SPLITS}
        val = get.array("val_classes", "iu", ndim=1) if "val_classes" in keys else None
        name = str(get.scalar("name", "US", default=path.stem))
        synthetic = bool(get.scalar("synthetic", "biu", default=False))
        source = str(get.scalar("source", "US", default=str(path)))
        quirks = get.array("quirks", "US", ndim=1) if "quirks" in keys else np.array([], str)
    try:
        return ZSLDataset(
            name=name,
            features=features,
            labels=labels.astype(np.int64),
            semantics=semantics,
            class_names=[_text(s) for s in names],
            trainval=splits["trainval"],
            test_seen=splits["test_seen"],
            test_unseen=splits["test_unseen"],
            val_classes=None if val is None else val.astype(np.int64),
            quirks=[_text(q) for q in quirks],
            synthetic=synthetic,
            source=source,
        )
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


def convert_xlsa17(
    root: str | Path,
    name: str,
    out_path: str | Path,
    *,
    features: str | Path = "res101.mat",
    semantics: str = "att",
    overwrite: bool = False,
) -> Path:
    """Load an xlsa17 benchmark (see :func:`~unseen.data.xlsa17.load_xlsa17`) and save it.

    Returns:
        The path written.
    """
    from unseen.data.xlsa17 import load_xlsa17

    out = Path(out_path).expanduser()
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    ds = load_xlsa17(root, name, features=features, semantics=semantics)
    return save_native(ds, out, overwrite=overwrite)


def _text(s: Any) -> str:
    return s.decode("utf-8") if isinstance(s, bytes) else str(s)


class _Reader:
    """Per-key dtype/shape checks with messages naming the file and the key."""

    _KINDS: ClassVar[dict[str, str]] = {
        "f": "floating",
        "iu": "integer",
        "US": "string",
        "biu": "boolean",
    }

    def __init__(self, npz: Any, path: Path) -> None:
        self.npz, self.path = npz, path

    def _load(self, key: str) -> np.ndarray:
        try:
            return self.npz[key]
        except ValueError as exc:  # object arrays need pickle, which we refuse
            raise DataError(
                f"{self.path}: key {key!r} is stored as a Python object array, which cannot be "
                "loaded without pickle; store it as a numeric or unicode (dtype=str) array"
            ) from exc
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"{self.path}: key {key!r} cannot be read ({exc})") from exc

    def _kind(self, key: str, arr: np.ndarray, kinds: str) -> None:
        if arr.dtype.kind not in kinds:
            raise DataError(
                f"{self.path}: key {key!r} has dtype {arr.dtype}; expected a "
                f"{self._KINDS.get(kinds, kinds)} array"
            )

    def array(
        self,
        key: str,
        kinds: str,
        *,
        ndim: int | None = None,
        shape: tuple[int, ...] | None = None,
        what: str = "",
    ) -> np.ndarray:
        arr = self._load(key)
        self._kind(key, arr, kinds)
        if shape is not None and arr.shape != shape:
            raise DataError(
                f"{self.path}: key {key!r} has shape {arr.shape}; expected {shape} ({what})"
            )
        if ndim is not None and arr.ndim != ndim:
            raise DataError(
                f"{self.path}: key {key!r} has shape {arr.shape}; expected a {ndim}-D array"
            )
        return arr

    def scalar(self, key: str, kinds: str, *, default: Any) -> Any:
        if key not in self.npz.files:
            return default
        arr = self._load(key)
        self._kind(key, arr, kinds)
        if arr.size != 1:
            raise DataError(
                f"{self.path}: key {key!r} must be a single value, got shape {arr.shape}"
            )
        return arr.reshape(()).item()
