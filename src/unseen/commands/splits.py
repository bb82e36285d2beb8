"""``unseen splits``: alternative seen/unseen class splits (logic: unseen.data.splits)."""

from __future__ import annotations

import argparse

from unseen.commands import add_command


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "splits", _cmd_splits)
    p.add_argument("dataset", help="AWA1 AWA2 CUB SUN APY FLO, or a folder under --data-root")
    p.add_argument("--data-root", required=True, help="folder holding <DATASET>/att_splits.mat")
    p.add_argument("--features", default="res101.mat", help="its labels (default res101.mat)")
    p.add_argument("--n", type=int, required=True, help="number of splits to draw (>= 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    p.add_argument("--out", required=True, help="folder for <DATASET>_seed<S>_split<k>.mat")


def _cmd_splits(args: argparse.Namespace) -> int:
    """draw K alternative seen/unseen class splits as att_splits.mat-layout files

    Each keeps the proposed split's unseen/validation class counts and test-seen fraction; run
    on one with --set data.splits=FILE (docs/data.md). An existing file is never replaced.
    """
    from unseen.data.splits import write_splits

    kw = {"features": args.features, "n": args.n, "seed": args.seed, "out": args.out}
    for path in write_splits(args.data_root, args.dataset, **kw):
        print(path)
    return 0
