"""``unseen compare A B``: per-class paired differences of two finished runs, over seeds."""

from __future__ import annotations

import argparse

from unseen.commands import add_command, refuse_existing

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    c = add_command(sub, "compare", _cmd_compare)
    c.add_argument("run_a", help="run folder A (the reference)")
    c.add_argument("run_b", help="run folder B")
    c.add_argument("--top", type=int, default=3, help="gains and losses listed per metric")
    c.add_argument("--json", dest="json_out", help="also write the comparison to this file")
    c.add_argument("--force", action="store_true", help="replace an existing --json file")


def _cmd_compare(args: argparse.Namespace) -> int:
    """paired per-class comparison of two finished runs (B - A, over shared seeds)

    For each of CZSL T1, GZSL S and U (and their calibrated forms), the accuracy of every test
    class in run B minus run A, averaged over the seeds both runs have; summarised by the mean
    difference, the classes that gained and lost, the largest gains and losses, the Wilcoxon
    signed-rank test over classes, and the per-seed differences. Reads results.json only
    (per-class accuracies are recorded in every seed's metrics.json).
    """
    from pathlib import Path

    from unseen.config import check_number
    from unseen.eval.compare import compare_runs, format_comparison
    from unseen.files import atomic_write_json
    from unseen.plot.runs import RunFolder

    check_number("--top", args.top, lo=0, integer=True)
    refuse_existing(args.json_out, force=args.force)
    a, b = RunFolder.open(args.run_a), RunFolder.open(args.run_b)
    names = (str(a.path), str(b.path))
    comp = compare_runs(a.results, b.results, names=names)
    print(f"{a.dataset} ({'SYNTHETIC' if a.synthetic else 'REAL'} features), test split")
    print(format_comparison(comp, names, top=args.top))
    if args.json_out:
        atomic_write_json(
            Path(args.json_out),
            {"a": names[0], "b": names[1], "metrics": {k: c.to_dict() for k, c in comp.items()}},
        )
        print(f"wrote {args.json_out}")
    return 0
