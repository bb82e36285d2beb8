"""``unseen diagnose RUN``: the generator health check of a run, on validation data only."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unseen.commands import add_command, open_validation
from unseen.errors import ConfigError

__all__ = ["diagnose_run", "register"]


def register(sub: argparse._SubParsersAction) -> None:
    d = add_command(sub, "diagnose", _cmd_diagnose, device=True)
    d.add_argument("run_dir", help="output folder of `unseen run` (validation finished)")
    d.add_argument("--data-root", help="replaces data.root of run.yaml (the data moved)")
    d.add_argument("--n-per-class", type=int, default=200, help="generated features per class")
    d.add_argument("--json", dest="json_out", help="also write the report to this JSON file")


def diagnose_run(
    run_dir: str | Path,
    *,
    data_root: str | None = None,
    n_per_class: int = 200,
    device: str = "cpu",
):
    """The :class:`~unseen.eval.health.HealthReport` of a run's validation generator, and the
    health records logged during its validation (``[]`` for runs made before they were)."""
    if n_per_class < 2:
        raise ConfigError(f"--n-per-class must be >= 2, got {n_per_class}")
    cfg, method, val = open_validation(run_dir, device, data_root)
    report = val.health(method, n_per_class=n_per_class, seed=cfg.seeds[0])
    logged_file = Path(run_dir) / "validation" / "health.json"
    logged = json.loads(logged_file.read_text()) if logged_file.exists() else []
    return report, logged, method.epoch_


def _cmd_diagnose(args: argparse.Namespace) -> int:
    """generator health of a run on its validation problem (before any test run)

    Load the generator a run chose on validation (RUN/validation/model.pt, trained on the
    validation problem's training part only) and measure, on the held-out validation images,
    for the pseudo-seen and pseudo-unseen classes: the accuracy of a softmax trained on
    synthetic features alone, the share of generated class means nearest their own real class
    mean (and their error relative to the distance between classes), the within-class spread
    ratio, a real-vs-synthetic linear probe, the input dimensions a flow leaves untouched, and
    the method's own numbers. Prints warnings for class-agnostic, misplaced, fingerprinted or
    partly untouched generators, and the health logged at every validation point of the run.
    Works on unfinished and --validate-only runs; never touches test data.
    """
    from unseen.files import atomic_write_json

    report, logged, epoch = diagnose_run(
        args.run_dir, data_root=args.data_root, n_per_class=args.n_per_class, device=args.device
    )
    print(f"{args.run_dir}: validation generator after {epoch} epochs")
    print(format_report(report))
    if logged:
        print("\nlogged at the validation points of the run:")
        for h in logged:
            from unseen.eval.health import HealthReport

            print(f"  epoch {h['epoch']:4d}: {HealthReport.from_dict(h).line()}")
    warnings = report.warnings()
    print("\n" + ("\n".join(f"WARNING: {w}" for w in warnings) if warnings else "no warnings"))
    if args.json_out:
        atomic_write_json(
            Path(args.json_out), {"epoch": epoch, **report.to_dict(), "logged": logged}
        )
    return 0


def format_report(report) -> str:
    """A small table: one column per class group, one row per number."""
    rows = [
        ("classes", "n_classes", "{:d}"),
        ("synthetic-only T1 (%)", "synthetic_only_t1", "{:.1f}"),
        ("chance (%)", "chance", "{:.1f}"),
        ("class-mean hit rate (%)", "mean_hit_rate", "{:.0f}"),
        ("mean error / between-class distance", "mean_error_ratio", "{:.2f}"),
        ("spread ratio (generated / real)", "spread_ratio", "{:.2f}"),
        ("real-vs-synthetic probe (%)", "probe_accuracy", "{:.1f}"),
    ]
    groups = [("unseen", report.unseen)] + ([("seen", report.seen)] if report.seen else [])
    width = max(len(r[0]) for r in rows) + 2
    lines = [" " * width + "".join(f"{name:>10}" for name, _ in groups)]
    for label, key, fmt in rows:
        lines.append(
            f"{label:<{width}}" + "".join(f"{fmt.format(getattr(g, key)):>10}" for _, g in groups)
        )
    if report.untouched_dims is not None:
        lines.append(f"untouched flow dimensions: {report.untouched_dims} of {report.feature_dim}")
    for k, v in report.extra.items():
        lines.append(f"{k}: {v:.4g}")
    return "\n".join(lines)
