"""Download the public benchmark archives and unpack them into the layout the loaders read.

Two archives hold the data every generative ZSL paper uses (addresses as the authors'
READMEs give them):

* ``xlsa17`` -- Xian et al., "Zero-Shot Learning -- A Comprehensive Evaluation of the Good,
  the Bad and the Ugly" (TPAMI 2018): ``xlsa17/data/<DS>/res101.mat`` and ``att_splits.mat``
  for AWA1, AWA2, CUB, SUN and APY;
* ``cvpr18xian`` -- the f-CLSWGAN release (Xian et al., CVPR 2018), which adds FLO (Oxford
  Flowers, 1024-d sentence-embedding class semantics) as ``.../data/FLO/``.

:func:`fetch` downloads with resume (an interrupted download keeps its ``.part`` file and the
next call asks the server for the rest with an HTTP ``Range`` header), checks the size
against the server's and the expected size, checks the sha256 when one is known (else prints
the computed one so the user can record it), and unpacks only the wanted dataset folders into
``ROOT/<DS>/`` (safe member paths only; existing files are kept unless ``force``). When the
download fails, the error says exactly which files to place where by hand.

The archives' sizes and checksums were not known when this was written (no copy could be
downloaded here): :data:`ARCHIVES` leaves them ``None`` and ``ROOT/.downloads/fetch.json``
records the size and sha256 of every archive actually fetched.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from unseen import __version__
from unseen.errors import ConfigError, DataError
from unseen.files import atomic_write

__all__ = [
    "ARCHIVES",
    "DATASET_ARCHIVE",
    "Archive",
    "download",
    "fetch",
    "manual_instructions",
    "sha256_file",
    "unpack",
]


@dataclass(frozen=True)
class Archive:
    """One downloadable archive and the dataset folders it holds.

    Attributes:
        name: short name (also the downloaded file's stem).
        url: where to download it.
        datasets: dataset folder names inside it (matched case-insensitively).
        size: expected size in bytes, when known.
        sha256: expected sha256 (hex), when known.
        source: the paper / release it belongs to.
    """

    name: str
    url: str
    datasets: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    source: str = ""

    @property
    def filename(self) -> str:
        return f"{self.name}.zip"


ARCHIVES: dict[str, Archive] = {
    "xlsa17": Archive(
        name="xlsa17",
        url="https://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip",
        datasets=("AWA1", "AWA2", "CUB", "SUN", "APY"),
        source="Xian et al., TPAMI 2018 (proposed splits + ResNet-101 features)",
    ),
    "cvpr18xian": Archive(
        name="cvpr18xian",
        url="https://datasets.d2.mpi-inf.mpg.de/xian/cvpr18xian.zip",
        datasets=("FLO",),
        source="Xian et al., CVPR 2018, f-CLSWGAN release (FLO features and sentences)",
    ),
}

DATASET_ARCHIVE: dict[str, str] = {ds: a.name for a in ARCHIVES.values() for ds in a.datasets}

#: files each dataset folder must hold for ``unseen run`` (CUB's sent_splits.mat is optional)
NEEDED = ("att_splits.mat", "res101.mat")

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def manual_instructions(datasets: list[str], root: str | Path) -> str:
    """What to download and where to put it, for a user whose machine cannot download."""
    root = Path(root)
    lines = ["Download by hand and place the files like this:"]
    for name in sorted({DATASET_ARCHIVE.get(d, "") for d in datasets} - {""}):
        arch = ARCHIVES[name]
        wanted = [d for d in datasets if DATASET_ARCHIVE.get(d) == name]
        lines.append(f"  {arch.url}  (unzip it anywhere), then for each dataset copy")
        for d in wanted:
            files = ", ".join(NEEDED) + (" (and sent_splits.mat if present)" if d == "CUB" else "")
            lines.append(f"    .../data/{d}/{{{files}}}  ->  {root / d}/")
    lines.append(
        "or run `unseen data fetch DATASET --root ROOT --archive PATH/TO/ARCHIVE.zip` to unpack "
        "an archive you downloaded elsewhere."
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------- download
def _parse_total(content_range: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` -> (START, TOTAL); missing parts are None."""
    m = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", content_range or "")
    if not m:
        m2 = re.match(r"bytes\s+\*/(\d+)", content_range or "")
        return (None, int(m2.group(1))) if m2 else (None, None)
    return int(m.group(1)), None if m.group(2) == "*" else int(m.group(2))


def download(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> str:
    """Download ``url`` to ``dest`` with resume; return the file's sha256.

    A partial download lives in ``dest.part``; calling again continues it (HTTP ``Range``).
    The complete file is checked against ``size`` and the server's total size, and against
    ``sha256`` when given; a mismatching file is deleted so the next call starts over.

    Raises:
        DataError: the server cannot be reached, the transfer broke off (the ``.part`` file
            is kept: call again to resume), or the size / checksum does not match.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        return _verify(dest, size, sha256, url, delete=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"unseen/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    total: int | None = None
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to send: the .part may be complete
            _, total = _parse_total(exc.headers.get("Content-Range"))
            if total is not None and total == start:
                part.replace(dest)
                return _verify(dest, size, sha256, url, delete=True)
            part.unlink()
            raise DataError(
                f"{url}: the server refused to resume ({exc}); the partial file was removed, "
                "run the command again to download from the start"
            ) from None
        raise DataError(f"{url}: HTTP error {exc.code} ({exc.reason})") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot download {url}: {reason}") from None
    with resp:
        if start and resp.status == 206:
            got_start, total = _parse_total(resp.headers.get("Content-Range"))
            if got_start != start:
                raise DataError(
                    f"{url}: asked to resume at byte {start}, the server answered "
                    f"{resp.headers.get('Content-Range')!r}; delete {part} and retry"
                )
            mode = "ab"
        else:  # a fresh download, or a server that ignores Range: start over
            start, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if size is not None and total is not None and total != size:
            raise DataError(
                f"{url}: the server says the file has {total} bytes, expected {size}; "
                "the archive changed or the address is wrong (nothing was written)"
            )
        done = start
        bar = tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            desc=dest.name,
            disable=not progress,
            leave=False,
        )
        try:
            with open(part, mode) as f:
                while True:
                    block = resp.read(_CHUNK)
                    if not block:
                        break
                    f.write(block)
                    done += len(block)
                    bar.update(len(block))
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise DataError(
                f"download of {url} broke off at {done} of {total or '?'} bytes ({exc}); the "
                f"partial file {part} is kept: run the same command again to resume"
            ) from None
        finally:
            bar.close()
    if total is not None and done != total:
        raise DataError(
            f"download of {url} stopped at {done} of {total} bytes; the partial file {part} is "
            "kept: run the same command again to resume"
        )
    part.replace(dest)
    return _verify(dest, size, sha256, url, delete=True)


def _verify(path: Path, size: int | None, sha256: str | None, url: str, delete: bool) -> str:
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        if delete:
            path.unlink()
        raise DataError(
            f"{path} has {got_size} bytes, expected {size} (from {url})"
            + ("; it was deleted, run again to download it afresh" if delete else "")
        )
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256.lower():
        if delete:
            path.unlink()
        raise DataError(
            f"checksum mismatch for {path}: sha256 {digest}, expected {sha256.lower()} (from "
            f"{url})" + ("; the file was deleted" if delete else "; delete it and run again")
        )
    return digest


# ---------------------------------------------------------------------- unpack
def _target(member: str, wanted: dict[str, str]) -> tuple[str, PurePosixPath] | None:
    """(dataset, path inside its folder) for an archive member in a wanted dataset folder."""
    p = PurePosixPath(member)
    if p.is_absolute() or ".." in p.parts or "__MACOSX" in p.parts:
        raise DataError(f"archive member {member!r} has an unsafe path; refusing to unpack")
    for i, part in enumerate(p.parts[:-1]):
        ds = wanted.get(part.upper())
        if ds is not None:
            return ds, PurePosixPath(*p.parts[i + 1 :])
    return None


def unpack(
    archive: str | Path, root: str | Path, datasets: list[str], *, force: bool = False
) -> dict[str, list[str]]:
    """Unpack the folders of ``datasets`` from a zip ``archive`` into ``root/<DS>/``.

    A member ``any/prefix/<DS>/x/y`` lands at ``root/<DS>/x/y``. Existing files are kept
    (and reported) unless ``force``; identical ones are skipped.

    Returns:
        ``{"written": [...], "kept": [...], "same": [...]}`` (paths as strings).
    """
    archive, root = Path(archive), Path(root)
    wanted = {d.upper(): d for d in datasets}
    report: dict[str, list[str]] = {"written": [], "kept": [], "same": []}
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive} is not a readable zip archive ({exc})") from None
    with zf:
        found: set[str] = set()
        for info in zf.infolist():
            if info.is_dir():
                continue
            hit = _target(info.filename, wanted)
            if hit is None:
                continue
            ds, rel = hit
            found.add(ds)
            dest = root / ds / rel
            if dest.exists():
                if dest.stat().st_size == info.file_size and _same(zf, info, dest):
                    report["same"].append(str(dest))
                    continue
                if not force:
                    report["kept"].append(str(dest))
                    continue
            with zf.open(info) as src:
                atomic_write(dest, lambda out, src=src: shutil.copyfileobj(src, out, _CHUNK))
            report["written"].append(str(dest))
    missing = [d for d in datasets if d not in found]
    if missing:
        raise DataError(
            f"{archive} holds no folder for {', '.join(missing)}; it holds "
            f"{sorted({PurePosixPath(n).parts[0] for n in zf.namelist()})[:5]} ..."
        )
    return report


def _same(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bool:
    h = hashlib.sha256()
    with zf.open(info) as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest() == sha256_file(path)


# ---------------------------------------------------------------------- the command
def resolve_datasets(names: list[str]) -> list[str]:
    """``all`` or dataset names (case-insensitive) -> canonical names; unknown ones fail."""
    if any(n.lower() == "all" for n in names):
        return list(DATASET_ARCHIVE)
    out = []
    for n in names:
        canon = next((d for d in DATASET_ARCHIVE if d.upper() == n.upper()), None)
        if canon is None:
            raise ConfigError(
                f"unknown dataset {n!r}; fetchable: {', '.join(DATASET_ARCHIVE)} or 'all'"
            )
        out.append(canon)
    return out


def fetch(
    datasets: list[str],
    root: str | Path,
    *,
    archive_file: str | Path | None = None,
    archives: dict[str, Archive] | None = None,
    url: str | None = None,
    sha256: str | None = None,
    keep_archive: bool = False,
    force: bool = False,
    progress: bool = True,
    log=print,
) -> dict[str, dict]:
    """Download (or take ``archive_file``), verify and unpack the archives of ``datasets``.

    Args:
        datasets: canonical dataset names (see :func:`resolve_datasets`).
        root: the data root (``ROOT/<DS>/`` is what ``--data-root`` expects).
        archive_file: an archive downloaded elsewhere (only with datasets of one archive).
        archives: the archive table (tests pass one pointing at a local server).
        url, sha256: override the address / expected checksum (one archive only).
        keep_archive: keep the downloaded zip after unpacking.
        force: replace existing files in ``ROOT/<DS>/``.

    Returns:
        Per archive: url, size, sha256 and the unpack report. Also written, merged, to
        ``ROOT/.downloads/fetch.json``.
    """
    table = archives or ARCHIVES
    ds_arch = {d: a.name for a in table.values() for d in a.datasets}
    groups: dict[str, list[str]] = {}
    for d in datasets:
        if d not in ds_arch:
            raise ConfigError(f"no archive holds dataset {d!r}")
        groups.setdefault(ds_arch[d], []).append(d)
    if (archive_file or url or sha256) and len(groups) > 1:
        raise ConfigError(
            "--archive/--url/--sha256 apply to one archive; fetch the datasets of "
            f"{' and '.join(groups)} separately"
        )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    downloads = root / ".downloads"
    record_path = downloads / "fetch.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    out: dict[str, dict] = {}
    for name, wanted in groups.items():
        arch = table[name]
        if url:
            arch = replace(arch, url=url, size=None)
        if sha256:
            arch = replace(arch, sha256=sha256)
        if archive_file is not None:
            path = Path(archive_file)
            if not path.is_file():
                raise DataError(f"--archive {path} does not exist")
            digest = _verify(path, arch.size, arch.sha256, str(path), delete=False)
        else:
            path = downloads / arch.filename
            log(f"downloading {arch.url} -> {path}")
            try:
                digest = download(
                    arch.url, path, size=arch.size, sha256=arch.sha256, progress=progress
                )
            except DataError as exc:
                raise DataError(f"{exc}\n{manual_instructions(wanted, root)}") from None
        size = path.stat().st_size
        if arch.sha256 is None:
            log(f"{path.name}: {size} bytes, sha256 {digest} (no checksum known to compare with)")
        else:
            log(f"{path.name}: {size} bytes, sha256 verified")
        report = unpack(path, root, wanted, force=force)
        for d in wanted:
            absent = [f for f in NEEDED if not (root / d / f).exists()]
            if absent:
                raise DataError(
                    f"after unpacking {path.name}, {root / d} lacks {', '.join(absent)}\n"
                    + manual_instructions([d], root)
                )
        for p in report["kept"]:
            log(f"kept existing {p} (differs from the archive; --force replaces it)")
        log(
            f"unpacked {', '.join(wanted)} into {root}: {len(report['written'])} file(s) written, "
            f"{len(report['same'])} already identical, {len(report['kept'])} kept"
        )
        if archive_file is None and not keep_archive:
            path.unlink()
        out[name] = {
            "url": arch.url,
            "size": size,
            "sha256": digest,
            "datasets": wanted,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "report": report,
        }
        record[name] = {k: v for k, v in out[name].items() if k != "report"}
        downloads.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=2))
    return out
