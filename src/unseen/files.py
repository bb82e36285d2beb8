"""Writing and reading the files unseen owns: atomic, umask-respecting, safely loaded.

Every file unseen writes goes through :func:`atomic_write` (or a helper built on it): the
data land in a temporary file in the target's folder, which is renamed over the target, so a
kill mid-write leaves the previous file intact. ``tempfile.mkstemp`` creates that temporary
file with mode 0600 whatever the umask is; :func:`atomic_write` gives it the mode a plain
``open()`` would (``0666 & ~umask``) before the rename, so results, models and artefacts are
as readable by a colleague as ``run.yaml`` and the figures are.

:func:`load_torch_file` reads ``torch.save`` files with ``weights_only=True`` (no pickled
code runs) and turns every failure into one :class:`~unseen.errors.DataError` sentence:
PyTorch's own messages advise retrying with ``weights_only=False``, i.e. executing the file,
which is never the right advice for a model file of unknown origin.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from unseen.errors import DataError

__all__ = [
    "atomic_save",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "current_umask",
    "file_mode",
    "load_torch_file",
]


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # the portable way reads by setting: put it straight back
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under the current umask."""
    return 0o666 & ~current_umask()


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file, then rename it over ``path``.

    The folder is created when missing; the file gets :func:`file_mode` (not mkstemp's
    0600). On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically with the umask's mode."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically with the umask's mode."""
    return atomic_write_text(path, json.dumps(obj, indent=2))


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` atomically with the umask's mode: a kill mid-write keeps the old file."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


def load_torch_file(path: str | Path, what: str = "model file") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with unseen's own error messages.

    Args:
        path: the file to read.
        what: how messages name the file (``"model file"``, ``"artefact"``, ...).

    Raises:
        DataError: one sentence naming the file and what is wrong with it (missing, a folder,
            unreadable, holding Python objects a weights-only load refuses, truncated or
            corrupt); never the advice to disable ``weights_only``.
    """
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"{what} {path} is a folder, not a file") from None
    except PermissionError:
        raise DataError(
            f"{what} {path} cannot be read: permission denied (its owner can make it "
            "readable with chmod a+r)"
        ) from None
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # no object reference: not a pickle at all
            raise DataError(_corrupt(path, what)) from None
        # torch's text here suggests weights_only=False, which would run the file's code.
        raise DataError(
            f"{what} {path} holds Python objects other than tensors, numbers, strings and "
            "plain containers; unseen reads model files without running any code they "
            "contain, so it refuses this one (it was not written by unseen, or was altered "
            "since). Recreate it with unseen"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError):
        raise DataError(_corrupt(path, what)) from None


def _corrupt(path: Path, what: str) -> str:
    size = path.stat().st_size if path.is_file() else 0
    return (
        f"{what} {path} is not a readable torch file: truncated or corrupt ({size} bytes "
        "that do not form a complete file); recreate it, e.g. rerun the command that wrote it"
    )
