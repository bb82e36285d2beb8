"""Read MATLAB ``.mat`` files, v5 (scipy) and v7.3 (HDF5, h5py), into one representation.

Both formats give the same result for the same data:

* numeric and logical arrays come back as numpy arrays with MATLAB's shape and dtype (at
  least 2-D; logicals as ``uint8``, as :func:`scipy.io.loadmat` returns them), so a
  ``features`` matrix stored ``d x N`` is ``(d, N)`` whichever format it was saved in;
* a char array comes back as ``str`` (a multi-row one as ``list[str]``);
* a cell array comes back as a ``list`` of its elements in MATLAB (column-major) order, so a
  cell array of strings such as ``allclasses_names`` is a ``list[str]``.

Structs, sparse matrices and MATLAB objects are not supported (the xlsa17 files hold none).
Every problem with the file itself raises :class:`~unseen.errors.DataError` naming the file.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unseen.errors import DataError

__all__ = ["mat_variables", "read_mat"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 looks for its superblock at 0, 512, 1024, 2048, ...; MATLAB puts it at 512.
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)
_INTERNAL_H5 = ("#refs#", "#subsystem#")
# Exceptions scipy / h5py / zlib raise on damaged input (scipy even raises IndexError).
_READ_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    AttributeError,
    zlib.error,
)


def read_mat(
    path: str | Path,
    keys: Sequence[str] | None = None,
    *,
    optional: Sequence[str] = (),
) -> dict[str, Any]:
    """Read variables from a MATLAB v5 or v7.3 file.

    Args:
        path: the ``.mat`` file.
        keys: variables that must be present (``None``: every variable in the file).
        optional: further variables to read when present; absent ones are left out.

    Returns:
        A dict from variable name to value (see the module docstring for the types).

    Raises:
        DataError: the file is missing, is not a MATLAB v5/v7.3 file, is damaged, or lacks one
            of ``keys`` (the message lists the variables it holds).
    """
    path = Path(path)
    fmt = _detect_format(path)
    wanted = None if keys is None else list(dict.fromkeys([*keys, *optional]))
    if fmt == "v5":
        raw = _read_v5(path, wanted)
    else:
        raw = _read_h5(path, wanted)
    if keys is not None:
        missing = [k for k in keys if k not in raw]
        if missing:
            present = sorted(mat_variables(path))
            raise DataError(
                f"{path}: variable {missing[0]!r} not found"
                + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else "")
                + f"; the file holds: {', '.join(present) if present else 'no variables'}. "
                "Is this the right file for that role?"
            )
    return raw


def mat_variables(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Names and MATLAB shapes of the variables in a ``.mat`` file, without reading the data.

    Raises:
        DataError: the file is missing, not a MATLAB v5/v7.3 file, or damaged.
    """
    path = Path(path)
    fmt = _detect_format(path)
    try:
        if fmt == "v5":
            import scipy.io

            return {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(str(path))}
        import h5py

        with h5py.File(path, "r") as f:
            out: dict[str, tuple[int, ...]] = {}
            for name, obj in f.items():
                if name in _INTERNAL_H5:
                    continue
                shape = obj.shape[::-1] if isinstance(obj, h5py.Dataset) else (1, 1)
                if isinstance(obj, h5py.Dataset) and obj.attrs.get("MATLAB_empty", 0):
                    shape = tuple(int(x) for x in np.asarray(obj[()]).ravel())
                out[name] = tuple(int(s) for s in shape)
            return out
    except _READ_ERRORS as exc:
        raise _damaged(path, fmt, exc) from exc


# ---------------------------------------------------------------------------- format


def _detect_format(path: Path) -> str:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a MATLAB .mat file")
    try:
        with path.open("rb") as f:
            head = f.read(4096 + 8)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from exc
    if head.startswith(b"MATLAB 7.3") or any(
        head[o : o + 8] == _HDF5_SIGNATURE for o in _HDF5_OFFSETS
    ):
        return "h5"
    if head.startswith(b"MATLAB 5.0"):
        return "v5"
    shown = head[:40].decode("latin-1").encode("unicode_escape").decode("ascii")
    raise DataError(
        f"{path}: not a MATLAB .mat file: it starts with {shown!r} instead of the "
        "'MATLAB 5.0 MAT-file' text header (v5) or 'MATLAB 7.3' / an HDF5 signature (v7.3). "
        "Save it from MATLAB with save(..., '-v7') or '-v7.3', or with scipy.io.savemat."
    )


def _damaged(path: Path, fmt: str, exc: BaseException) -> DataError:
    kind = "MATLAB v5" if fmt == "v5" else "MATLAB v7.3 (HDF5)"
    return DataError(
        f"{path}: looks like a {kind} file but cannot be read; it is probably truncated or "
        f"corrupt (an interrupted download or copy?). Reader said: {type(exc).__name__}: {exc}"
    )


def _unsupported(path: Path, key: str, what: str) -> DataError:
    return DataError(
        f"{path}: variable {key!r} is a MATLAB {what}; unseen reads numeric arrays, strings and "
        "cell arrays only"
    )


# ---------------------------------------------------------------------------- v5


def _read_v5(path: Path, wanted: list[str] | None) -> dict[str, Any]:
    import scipy.io

    try:
        raw = scipy.io.loadmat(str(path), variable_names=wanted)
    except _READ_ERRORS as exc:
        raise _damaged(path, "v5", exc) from exc
    return {k: _from_v5(path, k, v) for k, v in raw.items() if not k.startswith("__")}


def _from_v5(path: Path, key: str, value: Any) -> Any:
    if not isinstance(value, np.ndarray):
        raise _unsupported(path, key, type(value).__name__)
    if value.dtype.names is not None:
        raise _unsupported(path, key, "struct")
    if value.dtype == object:
        return [_from_v5(path, key, v) for v in value.ravel(order="F")]
    if value.dtype.kind == "U":
        strings = [str(s) for s in value.ravel()]
        if value.size == 0:
            return ""
        return strings[0] if len(strings) == 1 else strings
    if value.dtype.kind not in "biufc":
        raise _unsupported(path, key, f"value of dtype {value.dtype}")
    return value


# ---------------------------------------------------------------------------- v7.3


def _read_h5(path: Path, wanted: list[str] | None) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            names = [k for k in f if k not in _INTERNAL_H5]
            if wanted is not None:
                names = [k for k in wanted if k in names]
            return {k: _from_h5(path, k, f, f[k]) for k in names}
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise _damaged(path, "h5", exc) from exc


def _from_h5(path: Path, key: str, f: Any, obj: Any) -> Any:
    import h5py

    if not isinstance(obj, h5py.Dataset):
        raise _unsupported(path, key, "struct or object (HDF5 group)")
    cls = obj.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    if obj.attrs.get("MATLAB_sparse", 0):
        raise _unsupported(path, key, "sparse matrix")
    if obj.attrs.get("MATLAB_empty", 0):
        dims = tuple(int(x) for x in np.asarray(obj[()]).ravel())
        if cls == "char":
            return ""
        if cls == "cell":
            return []
        return np.zeros(dims, dtype=_H5_EMPTY_DTYPES.get(cls, np.float64))
    # MATLAB is column-major and HDF5 row-major: the stored array is the transpose.
    data = np.asarray(obj[()]).T
    if h5py.check_dtype(ref=obj.dtype) is h5py.Reference:
        out = []
        for ref in data.ravel(order="F"):
            text = _h5_char_fast(f, ref)
            out.append(text if text is not None else _from_h5(path, key, f, f[ref]))
        return out
    if data.dtype.kind in "OSU" or h5py.check_string_dtype(obj.dtype) is not None:
        # Strings written by non-MATLAB tools (h5py, hdf5storage) rather than as char codes.
        texts = [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in data.ravel("F")]
        return texts[0] if len(texts) == 1 else texts
    if cls == "char":
        rows = ["".join(chr(c) for c in row) for row in data.astype(np.uint32)]
        return rows[0] if len(rows) == 1 else rows
    if data.dtype.names is not None and {"real", "imag"} <= set(data.dtype.names):
        return data["real"] + 1j * data["imag"]
    if data.dtype.kind not in "biufc":
        raise _unsupported(path, key, f"value of dtype {data.dtype}")
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    return data


def _h5_char_fast(f: Any, ref: Any) -> str | None:
    """A cell element that is a one-row MATLAB char array, read through h5py's low-level API;
    ``None`` for anything else (the caller then takes the general path).

    A features file's ``image_files`` is a cell of N strings, each its own HDF5 dataset, and
    h5py's high-level objects cost ~170 us per dataset (CUB's 11,788 paths: 2 s); this reads
    them in about half that. The result is what :func:`_from_h5` gives for the same element.
    """
    from h5py import h5a, h5d, h5r, h5s

    try:
        did = h5r.dereference(ref, f.id)
        if not isinstance(did, h5d.DatasetID) or len(did.shape) != 2 or did.shape[1] != 1:
            return None
        # An empty array is stored as its dims vector, which must not be read as char codes.
        if did.dtype.kind not in "ui" or h5a.exists(did, b"MATLAB_empty"):
            return None
        attr = h5a.open(did, b"MATLAB_class")  # KeyError when absent: general path
        cls = np.empty(attr.shape, dtype=attr.dtype)
        attr.read(cls)
        if cls.item() not in (b"char", "char"):
            return None
        codes = np.empty(did.shape, dtype=did.dtype)
        did.read(h5s.ALL, h5s.ALL, codes)
    except _READ_ERRORS:
        return None
    # HDF5 holds the 1 x L MATLAB row transposed (L x 1); one UTF-16 code unit per char.
    return "".join(map(chr, codes[:, 0].tolist()))


_H5_EMPTY_DTYPES = {
    "double": np.float64,
    "single": np.float32,
    "logical": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
}
