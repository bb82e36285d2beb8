"""The bench report: per dataset, T1 and S/U/H (mean ± std over seeds) per grid row beside the
papers' numbers, where each row came from, and the same as CSV and a figure.

Files written into the bench folder:

* ``report.md``: one table per dataset (our rows; the paper's U/S/H/T1 beside, from the grid's
  ``papers`` file), the features note of the dataset in bold above it, and a provenance table
  (source folder, date, code version, seeds) below.
* ``summary.csv``: one line per (dataset, row) with mean and std of every metric.
* ``runs.csv``: one line per (row, seed), the store's rows without the JSON columns.
* ``h_<DATASET>.png``: H (and calibrated H) per row with the paper's H as a marker.

A grid with a ``layout`` (a paper's study, ``configs/studies/``) gets its rows drawn in the
paper's layout instead of the per-dataset table and figure (:mod:`unseen.bench.study`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml

from unseen.bench.grid import Grid
from unseen.bench.robustness import robustness_lines
from unseen.bench.store import METRICS, Store
from unseen.eval.results import format_mean_std, mean_std

__all__ = ["summarize_rows", "write_report"]

SHOWN = ("t1", "s", "u", "h", "h_cal", "ausuc")


def synthetic_dataset(name: str) -> bool:
    """Whether a dataset's features are synthetic: ``demo``, ``toy``, ``NAME-synthetic``, or a
    native ``.npz`` whose ``synthetic`` flag says so (figures and reports must say it)."""
    if name in ("demo", "toy") or name.lower().endswith("-synthetic"):
        return True
    if name.endswith(".npz") and Path(name).is_file():
        import numpy as np

        try:
            with np.load(name, allow_pickle=False) as z:
                return bool(z["synthetic"]) if "synthetic" in z.files else False
        except (OSError, ValueError):
            return False
    return False


def summarize_rows(grid: Grid, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per grid job (in grid order) its seeds' metrics as mean/std, with provenance."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault(r["key"], []).append(r)
    out = []
    for job in grid.jobs:
        mine = [r for r in by_key.get(job.key, []) if r["seed"] in job.config.seeds]
        if not mine:
            continue
        stats = {}
        for m in METRICS:
            values = [r[m] for r in mine if r[m] is not None]
            if values:
                stats[m] = mean_std(values)
        out.append(
            {
                "label": job.label,
                "dataset": job.dataset,
                "split": job.split,
                "method": job.method,
                "paper": job.paper,
                "seeds": sorted(r["seed"] for r in mine),
                "stats": stats,
                "sources": sorted({r["source"] for r in mine}),
                "run_dirs": sorted({r["run_dir"] for r in mine}),
                "finished": max(r["finished"] for r in mine),
                "code_versions": sorted({r["code_version"] for r in mine}),
                "total_seconds": sum(r["total_seconds"] or 0 for r in mine),
                "devices": sorted({r["device"] or "?" for r in mine}),
                "health": _health_of(mine[0]),
                "budget_end": _budget_end_of(mine[0]),
            }
        )
    return out


def _budget_end_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """:func:`unseen.selection.budget_end` of a stored row's validation choice: from the choice
    itself, or (runs made before the choice recorded it) from the run folder's validation
    records."""
    import json

    from unseen.selection import budget_end

    try:
        choice = json.loads(row["validation"] or "{}")
    except (TypeError, ValueError):
        choice = {}
    if "budget_end" in choice:
        return choice["budget_end"]
    path = Path(row.get("run_dir") or "") / "validation" / "records.json"
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return budget_end(records, choice.get("criterion", "h_cal"))


def _health_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """The generator health (:mod:`unseen.eval.health`) on the pseudo-unseen classes of the
    validation problem at the chosen point, from a stored row's validation choice."""
    import json

    try:
        return json.loads(row["validation"] or "{}").get("health", {}).get("unseen")
    except (TypeError, ValueError, AttributeError):
        return None


HEALTH_HEAD = (
    "| row | synthetic-only T1 (chance) | class means nearest own | mean error ratio | "
    "spread ratio | real-vs-synthetic probe |"
)


def _health_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The health table under a dataset's results: what the generator knows of the classes,
    measured on validation before any test run (README, "Generator health")."""
    known = [s for s in rows if s.get("health")]
    if not known:
        return []
    lines = [
        "Generator health on the validation problem at the chosen point (pseudo-unseen "
        "classes, first seed; `unseen diagnose RUN`): a softmax trained on synthetic features "
        "alone scored on real ones, the share of generated class means nearest their own real "
        "class mean, mean error relative to the real class spread, generated/real spread, and "
        "how well a linear probe tells generated from real features (50% = indistinguishable).",
        "",
        HEALTH_HEAD,
        "|" + "---|" * (HEALTH_HEAD.count("|") - 1),
    ]
    for s in known:
        h = s["health"]
        lines.append(
            f"| {s['label']} | {h['synthetic_only_t1']:.1f} ({h['chance']:.1f}) | "
            f"{h['mean_hit_rate']:.0f}% | {h['mean_error_ratio']:.2f} | "
            f"{h['spread_ratio']:.2f} | {h['probe_accuracy']:.1f}% |"
        )
    return [*lines, ""]


def _budget_end_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The footnote of the rows marked ‡: validation chose the last epoch it scored."""
    ends = [
        f"{s['label']} (epoch {e['epoch']}: {e['previous_score']:.1f} at epoch "
        f"{e['previous_epoch']} -> {e['score']:.1f})"
        for s in rows
        if (e := s.get("budget_end"))
    ]
    if not ends:
        return []
    return [
        "",
        "‡ Validation chose the last generator epoch it scored, its criterion still rising "
        "where the budget (method.epochs) stopped it, so the budget may set these numbers; a "
        "longer budget, chosen on validation again, may do better: " + "; ".join(ends) + ".",
    ]


def _features_note(grid: Grid, dataset: str) -> str:
    """For a study: which features its rows use when they are not the papers' ResNet-101."""
    if not grid.layout:
        return ""
    used = sorted({j.config.data.features for j in grid.jobs if j.dataset == dataset})
    if used == ["res101.mat"] or synthetic_dataset(dataset):
        return ""
    return (
        f"Features: {', '.join(used)}; the papers' are ResNet-101 (res101.mat): compare the "
        "rows with each other, not with the paper's columns."
    )


def _summary_of(folder: Path) -> dict[str, Any]:
    """The test summary of a finished run folder (a study's reference row)."""
    import json

    from unseen.errors import ConfigError

    try:
        return json.loads((folder / "results.json").read_text())["summary"]
    except (OSError, ValueError, KeyError):
        raise ConfigError(f"--reference {folder}: no finished run there (results.json)") from None


def _cell(stats: dict[str, Any], key: str) -> str:
    return format_mean_std(stats.get(key))


def _paper(papers: dict[str, Any], name: str | None, dataset: str) -> dict[str, Any]:
    if not name:
        return {}
    return (papers.get(name) or {}).get(dataset) or {}


def _rel(path: str, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return path


def write_report(
    grid: Grid,
    store: Store,
    out: Path,
    status_line: str = "",
    references: dict[str, Path] | None = None,
) -> Path:
    """Write report.md, summary.csv, runs.csv and the figures into ``out``; return report.md.
    ``references``: label -> finished run folder, shown under a study table."""
    from unseen.bench.study import render_study

    out.mkdir(parents=True, exist_ok=True)
    papers = yaml.safe_load(grid.papers.read_text()) if grid.papers else {}
    rows = store.rows([j.key for j in grid.jobs])
    summary = summarize_rows(grid, rows)
    refs = {name: _summary_of(Path(folder)) for name, folder in (references or {}).items()}
    cwd = Path.cwd()
    validation = any(j.validate_only for j in grid.jobs)
    lines = [f"# Bench report: {grid.name}", ""]
    if grid.description:
        lines += [grid.description, ""]
    if validation:
        lines += [
            "Validation numbers: per-class top-1 (%) on the validation problem (pseudo-unseen "
            "classes from the seen training classes, held-out pseudo-seen images; first seed) "
            "at the point the runner chose (generator epochs, synthetic count, classifier "
            "epochs, calibration gamma). The test split is never scored. H_cal: H at the best "
            "calibration gamma.",
            "",
        ]
    else:
        lines += [
            "Test numbers: per-class top-1 (%), mean ± sample std over seeds; each seed is one "
            "retrain on all seen training data with the epochs, synthetic count, classifier "
            "schedule and calibration gamma chosen once on the validation problem (first seed). "
            "H_cal: H with calibrated stacking at the validation gamma. Paper columns: the "
            "published numbers of the row's method or table "
            f"({_rel(str(grid.papers), cwd) if grid.papers else 'no papers file'}).",
            "",
        ]
    if status_line:
        lines += [f"This regeneration: {status_line}.", ""]
    for dataset in dict.fromkeys(j.dataset for j in grid.jobs):
        # the main tables show the proposed split; other splits go to the robustness table
        mine = [s for s in summary if s["dataset"] == dataset and not s["split"]]
        lines += [f"## {dataset}", ""]
        synthetic = synthetic_dataset(dataset)
        if synthetic:
            lines += [
                "**SYNTHETIC features: a smoke test of the code, not benchmark results.**",
                "",
            ]
        note = grid.features_note.get(dataset) or _features_note(grid, dataset)
        if note:
            lines += [f"**{note.strip()}**", ""]
        if grid.layout:
            lines += render_study(grid, dataset, store, out, papers, refs)
            continue
        head = "| row | seeds | T1 | S | U | H | H_cal | AUSUC | paper U / S / H | paper T1 |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for s in mine:
            p = _paper(papers, s["paper"], dataset)
            pu = " / ".join(f"{p[k]:.1f}" if k in p else "-" for k in ("u", "s", "h"))
            pt = f"{p['t1']:.1f}" if "t1" in p else "-"
            if not p:
                pu = "not published" if s["paper"] else "-"
            cells = " | ".join(_cell(s["stats"], k) for k in SHOWN)
            label = s["label"] + (" ‡" if s.get("budget_end") else "")
            lines.append(f"| {label} | {len(s['seeds'])} | {cells} | {pu} | {pt} |")
        missing = [j.label for j in grid.jobs if j.dataset == dataset and not j.split]
        missing = [m for m in missing if m not in {s["label"] for s in mine}]
        if missing:
            lines += ["", f"Not in this report (no finished run yet): {', '.join(missing)}."]
        lines += _budget_end_lines(mine)
        lines += ["", *_health_lines(mine)]
        fig = _figure(mine, papers, dataset, out, bool(note), synthetic=synthetic)
        if fig:
            lines += [f"![H per row on {dataset}]({fig.name})", ""]
        if grid.splits:
            lines += robustness_lines(summary, dataset, grid.splits["n"])
    if grid.skipped:
        lines += ["Grid entries not expanded: " + "; ".join(grid.skipped) + ".", ""]
    lines += [
        "## Where each row came from",
        "",
        "| row | dataset | source | folder | finished (UTC) | code | device | hours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        where = f"{s['dataset']} {s['split']}" if s["split"] else s["dataset"]
        lines.append(
            f"| {s['label']} | {where} | {', '.join(s['sources'])} | "
            f"{', '.join(_rel(d, cwd) for d in s['run_dirs'])} | {s['finished']} | "
            f"{'; '.join(s['code_versions'])} | {', '.join(s['devices'])} | "
            f"{s['total_seconds'] / 3600:.2f} |"
        )
    found = store.validations([j.key for j in grid.jobs if j.validate_only])
    for job in grid.jobs:
        v = found.get(job.key)
        if v is not None:
            hours = v["selection"]["choice"].get("seconds", 0) / 3600
            lines.append(
                f"| {job.label} | {job.dataset} | {v['source']} | {_rel(v['run_dir'], cwd)} | "
                f"{v['finished']} | {v['code_version']} | - | {hours:.2f} (validation) |"
            )
    lines += [
        "",
        "`import`: a finished `unseen run` folder whose resolved config equals the row's "
        "(same config + seed = same run), not rerun. `bench`: run by `unseen bench`. "
        "hours: wall time of the seeds' retrain + test (validation selection not included).",
        "",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    _write_csv(summary, rows, out)
    return report


def _write_csv(summary: list[dict[str, Any]], rows: list[dict[str, Any]], out: Path) -> None:
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["dataset", "split", "row", "method", "n_seeds"]
            + [f"{m}_{x}" for m in METRICS for x in ("mean", "std")]
            + ["source", "run_dirs", "finished", "code_version"]
        )
        for s in summary:
            vals = []
            for m in METRICS:
                st = s["stats"].get(m)
                vals += [st["mean"], st["std"]] if st else ["", ""]
            w.writerow(
                [
                    s["dataset"],
                    s["split"] or "proposed",
                    s["label"],
                    s["method"],
                    len(s["seeds"]),
                    *vals,
                    ";".join(s["sources"]),
                    ";".join(s["run_dirs"]),
                    s["finished"],
                    ";".join(s["code_versions"]),
                ]
            )
    skip = {"config", "validation", "history", "per_task"}
    with open(out / "runs.csv", "w", newline="") as f:
        cols = [k for k in (rows[0] if rows else {}) if k not in skip]
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def _figure(
    summary: list[dict[str, Any]],
    papers: dict[str, Any],
    dataset: str,
    out: Path,
    features_differ: bool = False,
    *,
    synthetic: bool = False,
) -> Path | None:
    if not summary:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(summary) + 2), 3.6))
    xs = range(len(summary))
    for offset, key, name in ((-0.2, "h", "H"), (0.2, "h_cal", "H calibrated")):
        means = [s["stats"].get(key, {}).get("mean", 0) for s in summary]
        stds = [s["stats"].get(key, {}).get("std", 0) for s in summary]
        ax.bar([x + offset for x in xs], means, 0.4, yerr=stds, capsize=3, label=f"ours: {name}")
    px = [(x, _paper(papers, s["paper"], dataset).get("h")) for x, s in zip(xs, summary)]
    px = [(x, h) for x, h in px if h is not None]
    if px:
        ax.scatter(*zip(*px), marker="*", s=120, color="k", zorder=3, label="paper H")
    ax.set_xticks(list(xs), [s["label"] for s in summary], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("%")
    from unseen.plot.style import features_word

    title = f"{dataset} ({features_word(synthetic)}): GZSL H, mean ± std over seeds"
    if features_differ:
        title += " (paper H: other features, see report)"
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / f"h_{dataset}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
