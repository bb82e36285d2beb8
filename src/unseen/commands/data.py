"""``unseen data fetch``: download and unpack the public benchmark archives."""

from __future__ import annotations

import argparse
import sys

from unseen.commands import add_command

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("data", help="get the benchmark data (download, verify, unpack)")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    f = add_command(dsub, "fetch", _cmd_fetch)
    f.add_argument("datasets", nargs="+", help="AWA1 AWA2 CUB SUN APY FLO, or all")
    f.add_argument("--root", required=True, help="data root to fill (ROOT/<DATASET>/...)")
    f.add_argument("--archive", help="use this already downloaded archive instead")
    f.add_argument("--url", help="download from this address instead (a mirror)")
    f.add_argument("--sha256", help="expected sha256 of the archive")
    f.add_argument("--keep-archive", action="store_true", help="keep the zip after unpacking")
    f.add_argument("--force", action="store_true", help="replace existing files")
    f.add_argument(
        "--dry-run", action="store_true", help="print what would be fetched and placed where"
    )


def _cmd_fetch(args: argparse.Namespace) -> int:
    """download the xlsa17 / FLO archives and unpack them into ROOT/<DATASET>/

    Download the official archives (resumable; size and sha256 checked), and unpack the wanted
    dataset folders into ROOT/<DATASET>/ (res101.mat, att_splits.mat), the layout --data-root
    expects. Existing files are kept unless --force. When the download is impossible, the
    error says which files to put where.
    """
    from unseen.data.fetch import (
        ARCHIVES,
        DATASET_ARCHIVE,
        fetch,
        manual_instructions,
        resolve_datasets,
    )

    names = resolve_datasets(args.datasets)
    if args.dry_run:
        for arch in sorted({DATASET_ARCHIVE[n] for n in names}):
            a = ARCHIVES[arch]
            size = f"{a.size} bytes" if a.size else "size unknown"
            sha = a.sha256 or "sha256 unknown (printed after download)"
            print(f"{a.name}: {args.url or a.url} ({size}; {sha}) -> {a.source}")
        print(manual_instructions(names, args.root))
        return 0
    same = {name: getattr(args, name) for name in "url sha256 keep_archive force".split()}
    fetch(names, args.root, archive_file=args.archive, progress=sys.stderr.isatty(), **same)
    print(f"done: use --data-root {args.root}")
    return 0
