"""A run folder's bookkeeping: the manifest of what unseen wrote, the lock, and a start that
either succeeds or leaves the folder as it was.

* ``manifest.json`` lists every file and folder unseen wrote into the run folder (the runner's
  files, and figures ``unseen plot`` adds later). ``--force`` removes exactly those entries,
  nothing else: a ``seed_analysis.ipynb`` or ``notes.txt`` the user put there stays, and so
  does a folder that still holds a user file. Folders written before manifests existed are
  cleaned by name (``run.yaml``, ``results.json``, ``log.txt``, ``manifest.json``, and the
  files unseen writes inside ``validation/``, ``seed_<integer>/`` and ``figures/``).
* ``run.lock`` is held (``flock``) while a run writes to the folder: a second ``unseen run``
  into the same folder is refused instead of interleaving ``log.txt``. The kernel releases
  the lock when its process dies, so a killed run never blocks the next one.
* :class:`RunFolder` records the folder's state before a run starts; if the run fails before
  it made any progress (no checkpoint, record, model or metrics written or changed), it is
  put back as it was: the files this run created are removed, ``run.yaml`` and the manifest
  get their old text back, and a folder the run created is removed. A corrected command then
  starts cleanly, without ``--force``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from unseen import __version__
from unseen.errors import OutputExistsError
from unseen.files import atomic_write_text

__all__ = [
    "LOCK",
    "MANIFEST",
    "SEED_FILES",
    "VALIDATION_FILES",
    "Manifest",
    "RunFolder",
    "RunLock",
    "code_version",
    "record_written",
]

MANIFEST = "manifest.json"
LOCK = "run.lock"
_FORMAT = "unseen-manifest-v1"
#: files whose appearance or change means a run made progress worth resuming
PROGRESS_FILES = (
    "checkpoint.pt",
    "batch_checkpoint.pt",
    "model.pt",
    "records.json",
    "health.json",
    "metrics.json",
    "selection.json",
    "results.json",
)
_SEED_DIR = re.compile(r"seed_\d+$")
#: the files the runner may write into ``validation/`` and into each ``seed_<s>/``
VALIDATION_FILES = ("records.json", "health.json", "checkpoint.pt", "model.pt", "selection.json")
# batch_checkpoint.pt: the seeds trained as one batched model (--batch-seeds), kept in the
# folder of the first of them while they train
SEED_FILES = ("checkpoint.pt", "model.pt", "metrics.json", "batch_checkpoint.pt")
#: what unseen wrote into a folder made before manifests existed (used by --force there)
_LEGACY_TOP = ("run.yaml", "results.json", "log.txt", MANIFEST, LOCK)
_LEGACY_INNER = {
    "validation": VALIDATION_FILES,
    "seed": SEED_FILES,
}


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _repo() -> Path:
    # the checkout holding this package's source (src/unseen/rundir.py -> the root), not the
    # current folder: a run started elsewhere still names the code it ran
    return Path(__file__).resolve().parents[2]


def code_version() -> str:
    """``unseen <version> git <commit>[+dirty]`` of the code running now (the checkout its
    source lives in; ``+dirty``: uncommitted edits under ``src/``)."""
    commit = _git(["rev-parse", "--short", "HEAD"], _repo())
    if commit is None:
        return f"unseen {__version__}"
    dirty = _git(["status", "--porcelain", "--untracked-files=no", "--", "src"], _repo())
    return f"unseen {__version__} git {commit}{'+dirty' if dirty else ''}"


class Manifest:
    """The files and folders unseen wrote into ``root``, relative, in ``root/manifest.json``."""

    def __init__(self, root: Path, files: set[str] | None = None, dirs: set[str] | None = None):
        self.root = Path(root)
        self.files: set[str] = set(files or ())
        self.dirs: set[str] = set(dirs or ())

    @classmethod
    def read(cls, root: str | Path) -> Manifest | None:
        """The manifest of ``root``, or ``None`` when there is none (or it is not ours)."""
        root = Path(root)
        try:
            data = json.loads((root / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return None
        return cls(root, set(data.get("files", [])), set(data.get("dirs", [])))

    def _rel(self, path: str | Path) -> str:
        path = Path(path)
        if path.is_absolute():
            path = path.relative_to(self.root)
        return path.as_posix()

    def add(self, *paths: str | Path) -> None:
        """Record files (and the folders between them and the root) and save if anything
        was new. Call it *before* writing the file: a crash between the two then leaves a
        recorded file that does not exist, never an unrecorded one of ours."""
        before = (len(self.files), len(self.dirs))
        for p in paths:
            rel = self._rel(p)
            self.files.add(rel)
            parent = Path(rel).parent
            while str(parent) not in ("", "."):
                self.dirs.add(parent.as_posix())
                parent = parent.parent
        if (len(self.files), len(self.dirs)) != before:
            self.save()

    def discard(self, *paths: str | Path) -> None:
        """Forget files unseen removed itself (e.g. checkpoints after a successful run)."""
        n = len(self.files)
        for p in paths:
            self.files.discard(self._rel(p))
        if len(self.files) != n:
            self.save()

    def save(self) -> None:
        data = {
            "format": _FORMAT,
            "note": "files and folders written by unseen; `unseen run --force` removes these "
            "and nothing else",
            "files": sorted(self.files | {MANIFEST}),
            "dirs": sorted(self.dirs),
        }
        atomic_write_text(self.root / MANIFEST, json.dumps(data, indent=1))

    def remove_all(self) -> list[str]:
        """Delete every recorded file (with interrupted writes' temporary files), then every
        recorded folder left empty. Returns the paths kept because they hold user files."""
        for rel in sorted(self.files | {MANIFEST}):
            path = self.root / rel
            _remove_file(path)
            _remove_temporaries(path)
        kept = []
        for rel in sorted(self.dirs, key=lambda r: -len(Path(r).parts)):
            folder = self.root / rel
            if folder.is_dir():
                try:
                    folder.rmdir()
                except OSError:  # not empty: a user file lives there
                    kept.append(rel)
        self.files, self.dirs = set(), set()
        return kept


def _remove_file(path: Path) -> None:
    if path.is_file() or path.is_symlink():
        path.unlink()


def _remove_temporaries(path: Path) -> None:
    """``.name.XXXX.tmp`` files of :func:`unseen.files.atomic_write` killed mid-write."""
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            _remove_file(tmp)


def remove_legacy(root: Path) -> list[str]:
    """``--force`` in a run folder written before manifests: remove unseen's files by name.
    Returns the folders kept because they hold other files."""
    for name in _LEGACY_TOP:
        _remove_file(root / name)
        _remove_temporaries(root / name)
    kept = []
    for sub in sorted(root.iterdir()):
        if not sub.is_dir():
            continue
        if sub.name == "validation":
            names = _LEGACY_INNER["validation"]
        elif _SEED_DIR.match(sub.name):
            names = _LEGACY_INNER["seed"]
        elif sub.name == "figures":
            names = tuple(p.name for p in sub.iterdir() if p.suffix in (".png", ".svg"))
        else:
            continue
        for name in names:
            _remove_file(sub / name)
            _remove_temporaries(sub / name)
        try:
            sub.rmdir()
        except OSError:
            kept.append(sub.name)
    return kept


def record_written(paths: list[Path], levels: int = 3) -> None:
    """Add ``paths`` to the manifest of the run folder they lie in (the nearest of their
    ``levels`` ancestors holding a manifest), if any: figures ``unseen plot`` writes into a
    run folder are unseen's, and ``--force`` removes them with the rest."""
    for path in paths:
        path = Path(path).resolve()
        for folder in list(path.parents)[:levels]:
            manifest = Manifest.read(folder)
            if manifest is not None:
                manifest.add(path)
                break


class RunLock:
    """An exclusive ``flock`` on ``root/run.lock`` while a run writes into ``root``."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / LOCK
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`OutputExistsError` naming the holder."""
        try:
            import fcntl
        except ImportError:  # no flock (Windows): run unlocked
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputExistsError(
                    f"another unseen run is writing to {self.path.parent} ({holder}); wait for "
                    "it to finish, or choose another --out"
                ) from None
            except OSError:  # a file system without locks (some network mounts): unlocked
                os.close(fd)
                return
            # The previous holder may have removed the file between our open and flock:
            # then we locked a deleted file, and must lock the one at the path instead.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%c')}\n"
        os.ftruncate(fd, 0)
        os.write(fd, info.encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "its process id is unknown"


class RunFolder:
    """A run's output folder: state before the run, lock, manifest, restore on a failed start.

    Use as a context manager around a run; :meth:`open` inspects and prepares the folder.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.created = False
        self.lock = RunLock(self.root)
        self.manifest: Manifest | None = None
        self._files_before: set[str] = set()
        self._texts_before: dict[str, str | None] = {}
        self._log_size: int | None = None
        self._progress_before: dict[str, int] = {}
        self._dirs_before: set[str] = set()

    # ------------------------------------------------------------------ state
    def files(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()}

    def progress(self) -> dict[str, int]:
        """Training-state files and their modification times (ns)."""
        out = {}
        for rel in self.files():
            if Path(rel).name in PROGRESS_FILES:
                try:
                    out[rel] = (self.root / rel).stat().st_mtime_ns
                except FileNotFoundError:
                    continue
        return out

    def has_progress(self) -> bool:
        return bool(self.progress())

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Create the folder if needed, take the lock, remember the state to restore."""
        if self.root.exists() and not self.root.is_dir():
            raise OutputExistsError(f"output path {self.root} exists and is not a folder")
        if not self.root.exists():
            self.root.mkdir(parents=True)
            self.created = True
        try:
            self.lock.acquire()
        except BaseException:
            if self.created:
                shutil.rmtree(self.root, ignore_errors=True)
            raise
        self._files_before = self.files()
        self._dirs_before = {
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_dir()
        }
        for name in ("run.yaml", MANIFEST):
            p = self.root / name
            self._texts_before[name] = p.read_text() if p.is_file() else None
        log = self.root / "log.txt"
        self._log_size = log.stat().st_size if log.is_file() else None
        self._progress_before = self.progress()
        self.manifest = Manifest.read(self.root) or Manifest(self.root)

    def record(self, *paths: str | Path) -> None:
        """Add paths to the manifest (before writing them)."""
        assert self.manifest is not None
        self.manifest.add(*paths)

    def clean_for_force(self) -> list[str]:
        """``--force``: remove what unseen wrote (manifest entries, or legacy names)."""
        existing = Manifest.read(self.root)
        kept = existing.remove_all() if existing is not None else remove_legacy(self.root)
        self.manifest = Manifest(self.root)
        self._files_before = self.files()
        return kept

    def start(self, resolved: dict[str, Any], force: bool) -> tuple[str, list[int], list[str]]:
        """Decide what a run of the config ``resolved`` (``RunConfig.to_dict()``) does in this
        (locked) folder, clean it for ``force``, record the runner's files in the manifest and
        write ``run.yaml``.

        Returns the mode (``new``, ``resume``, ``extend``, ``replace``), the seeds finished
        before (``extend``) and the folders ``force`` kept because they hold user files.

        Raises:
            OutputExistsError: nothing touched, for finished results of the same config, or an
                unfinished run of another config that made progress, without ``force``.
        """
        import yaml

        out = self.root
        mode, before, kept = "new", [], []
        if (out / "run.yaml").exists():
            if force:
                kept = self.clean_for_force()
            else:
                previous = _read_run_yaml(out / "run.yaml")
                finished = (out / "results.json").exists()
                if previous == resolved:
                    if finished:
                        raise OutputExistsError(
                            f"output folder {out} already holds finished results (results.json) "
                            "of this config; pass --force to replace them, list more --seeds to "
                            "add seeds, or choose another --out"
                        )
                    mode = "resume"
                elif _adds_seeds(previous, resolved):
                    mode, before = "extend", list(previous["seeds"])
                elif not self.has_progress():  # nothing to lose: a start that never trained
                    self.clean_for_force()
                    mode = "replace"
                else:
                    what = "finished results" if finished else "an unfinished run"
                    raise OutputExistsError(
                        f"output folder {out} holds {what} of another config (run.yaml differs: "
                        f"{_config_diff(previous, resolved)}); pass --force to start over or "
                        "choose another --out"
                    )
        # Record every file this run may write before writing any (see Manifest.add).
        self.record("run.yaml", "log.txt", "results.json", LOCK)
        self.record(*(f"validation/{n}" for n in VALIDATION_FILES))
        for seed in resolved["seeds"]:
            self.record(*(f"seed_{seed}/{n}" for n in SEED_FILES))
        atomic_write_text(out / "run.yaml", yaml.safe_dump(resolved, sort_keys=False))
        return mode, before, kept

    def restore(self) -> None:
        """Undo a start that made no progress: the folder is as it was before :meth:`open`."""
        created_files = self.files() - self._files_before
        for rel in created_files:
            if Path(rel).name != LOCK:
                _remove_file(self.root / rel)
        for name, text in self._texts_before.items():
            if text is not None:
                atomic_write_text(self.root / name, text)
        log = self.root / "log.txt"
        if self._log_size is not None and log.is_file():
            with open(log, "r+b") as f:
                f.truncate(self._log_size)
        for folder in sorted(
            (p for p in self.root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
        ):
            if folder.relative_to(self.root).as_posix() not in self._dirs_before:
                try:
                    folder.rmdir()
                except OSError:
                    pass

    def close(self, failed: bool) -> None:
        try:
            if failed and self.progress() == self._progress_before:
                self.restore()
        finally:
            self.lock.release()
            if self.created and failed and not any(self.root.iterdir()):
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> RunFolder:
        self.open()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(failed=exc_type is not None)


def _read_run_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        previous = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        previous = None
    if not isinstance(previous, dict):
        raise OutputExistsError(
            f"{path} is not a readable run.yaml; pass --force to start over in that folder"
        )
    return _with_new_defaults(previous)


def _with_new_defaults(previous: dict[str, Any]) -> dict[str, Any]:
    """Fill keys that a newer unseen added to a config section with their defaults, so an
    unfinished run written before the key existed still resumes (its behaviour is the
    default's)."""
    import dataclasses

    from unseen.config import ClassifierConfig, DataConfig, SelectionConfig

    defaults = {
        "data": dataclasses.asdict(DataConfig()),
        "classifier": dataclasses.asdict(ClassifierConfig()),
        "selection": dataclasses.asdict(SelectionConfig()),
    }
    out = dict(previous)
    for section, values in defaults.items():
        if isinstance(out.get(section), dict):
            out[section] = {**values, **out[section]}
    return out


def _adds_seeds(previous: dict[str, Any], resolved: dict[str, Any]) -> bool:
    """Same config, same validation seed (the first), and more seeds than before."""
    old, new = list(previous.get("seeds") or []), list(resolved["seeds"])
    same = {k: v for k, v in previous.items() if k != "seeds"} == {
        k: v for k, v in resolved.items() if k != "seeds"
    }
    return same and bool(old) and old[0] == new[0] and set(old) < set(new)


def _config_diff(previous: dict[str, Any], resolved: dict[str, Any]) -> str:
    """``method_params.epochs 30 -> 5, seeds [0] -> [1]`` (at most a few)."""
    diffs = []
    for key in sorted(set(previous) | set(resolved)):
        a, b = previous.get(key), resolved.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    diffs.append(f"{key}.{k} {a.get(k)!r} -> {b.get(k)!r}")
        elif a != b:
            diffs.append(f"{key} {a!r} -> {b!r}")
    more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
    return ", ".join(diffs[:3]) + more
