"""A paper's study in its own layout: the report section of a grid with a ``layout`` key.

The rows of a study are its jobs' rows (variants or sweep points), its columns the grid's
``columns``; the layout says how they are drawn (``configs/studies/*.yaml``)::

    layout:
      kind: table          # table (test, mean ± std over seeds; run --validate-only: the
                           # chosen validation point), or on the validation problem
                           # (validate_only grids): sweep, counts, epochs
      title: "IZF Tab. 3: component analysis"
      paper: IZF Tab. 3    # table: the published numbers in the papers file, by dataset
      rows: {key: title}   # optional display names (and order) of the rows
      metrics: [s, u, h, h_cal, t1]
      per_task: true       # table: GMN's per-task-count rows (marked ‡) under each row
      flags: {transductive: data.transductive}   # table: a column per config value
      titles: {method.alpha1: "(a) alpha_1"}     # sweep: panel titles
      log_x: true          # sweep, counts: logarithmic x axis

* ``table``: one line per row, for each column the metrics (test, mean ± sample std over
  seeds), then the paper's numbers of that row and column when the papers file has the
  dataset (``papers[paper][DATASET][row][column]``, or ``[row]`` without columns).
* ``sweep`` (IZF Fig. 5, GSMFlow Fig. 7, TL-Coupling Fig. 2a-c): one panel per swept
  parameter; each point is the configuration the runner chose on validation (its epochs,
  synthetic count, classifier epochs and gamma), plotted against the parameter's value.
* ``counts`` (GMN Fig. 3, TL-Coupling Fig. 2f): one panel per row; the validation records at
  the chosen generator and classifier epochs, against the synthetic count per class.
* ``epochs`` (GMN Fig. 5): one line per row; the best validation value of each metric at each
  generator epoch (over synthetic counts and classifier epochs).

Each figure is ``OUT/<grid>_<DATASET>.png`` with its numbers in ``.json`` beside it; the
markdown goes into ``report.md``. The paper's figures plot test numbers; here the
pseudo-unseen classes of the validation problem stand in for the unseen ones, so a
sensitivity study never touches test data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unseen.bench.grid import Grid, Job
from unseen.errors import ConfigError
from unseen.eval.results import format_mean_std, mean_std

__all__ = ["KINDS", "check_layout", "render_study"]

KINDS = ("table", "sweep", "counts", "epochs")
_KEYS = {"kind", "title", "paper", "rows", "metrics", "per_task", "flags", "titles", "log_x"}
_NAMES = {
    "t1": "T1",
    "s": "S",
    "u": "U",
    "h": "H",
    "h_cal": "H_cal",
    "s_cal": "S_cal",
    "u_cal": "U_cal",
    "ausuc": "AUSUC",
    "gamma": "gamma",
}
_DEFAULT_METRICS = {
    "table": ["t1", "s", "u", "h", "h_cal"],
    "sweep": ["h", "h_cal", "t1"],
    "counts": ["t1", "u", "s", "h"],
    "epochs": ["u"],
}


def check_layout(layout: dict[str, Any], validate_only: bool, where: str) -> None:
    """Refuse a layout this module cannot draw (when the grid is read, before any job)."""
    if not layout:
        return
    bad = sorted(set(layout) - _KEYS)
    if bad:
        raise ConfigError(f"{where}: unknown layout key(s) {bad}; valid: {sorted(_KEYS)}")
    kind = layout.get("kind", "table")
    if kind not in KINDS:
        raise ConfigError(f"{where}: layout kind {kind!r}; valid: {', '.join(KINDS)}")
    if kind != "table" and not validate_only:  # a table may show validation numbers too
        raise ConfigError(f"{where}: layout kind {kind} needs validate_only: true")


def render_study(
    grid: Grid,
    dataset: str,
    store: Any,
    out: Path,
    papers: dict[str, Any],
    references: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """The markdown of ``grid``'s study on ``dataset`` (figures and numbers written to
    ``out``)."""
    layout = grid.layout
    kind = layout.get("kind", "table")
    jobs = [j for j in grid.jobs if j.dataset == dataset]
    metrics = list(layout.get("metrics") or _DEFAULT_METRICS[kind])
    lines = [f"### {layout.get('title', grid.name)}", ""]
    if kind == "table":
        return lines + _table(jobs, store, layout, metrics, papers, dataset, references or {})
    found = store.validations([j.key for j in jobs])
    done = [j for j in jobs if j.key in found]
    missing = [j.label for j in jobs if j.key not in found]
    if done:
        draw = {"sweep": _sweep, "counts": _counts, "epochs": _epochs}[kind]
        data = draw(done, {j.key: found[j.key]["selection"] for j in done}, metrics)
        stem = out / f"{grid.name}_{dataset}"
        stem.with_suffix(".json").write_text(json.dumps(data, indent=2))
        _figure(kind, data, metrics, layout, f"{layout.get('title', grid.name)}: {dataset}", stem)
        lines += [f"![{grid.name} on {dataset}]({stem.name}.png)", ""]
        lines += [*_points_table(kind, data, metrics), ""]
    if missing:
        lines += [f"Not in this report (no validation run yet): {', '.join(missing)}.", ""]
    return lines


# ---------------------------------------------------------------------- test tables
def _table(
    jobs: list[Job],
    store: Any,
    layout: dict[str, Any],
    metrics: list[str],
    papers: dict[str, Any],
    dataset: str,
    references: dict[str, dict[str, Any]],
) -> list[str]:
    titles = layout.get("rows") or {}
    rows = list(dict.fromkeys([r for r in titles if any(j.row == r for j in jobs)]))
    rows += [r for r in dict.fromkeys(j.row for j in jobs) if r not in rows]
    cols = list(dict.fromkeys(j.column for j in jobs))
    by_cell = {(j.row, j.column): j for j in jobs}
    stats = _chosen_stats(store, jobs) if jobs[0].validate_only else _seed_stats(store, jobs)
    paper = (papers.get(layout.get("paper") or "") or {}).get(dataset) or {}
    flags = layout.get("flags") or {}
    head = ["row", "seeds"] + [f"{c} {_NAMES[m]}".strip() for c in cols for m in metrics]
    head += list(flags)
    paper_metrics = _paper_metrics(paper, metrics, bool(cols[0]))
    if paper:
        head += [
            f"paper {c} {' / '.join(_NAMES[m] for m in paper_metrics)}".replace("  ", " ")
            for c in cols
        ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    missing = []
    for row in rows:
        cells_of = [stats.get(by_cell[(row, c)].key) if (row, c) in by_cell else None for c in cols]
        if not any(cells_of):
            missing.append(titles.get(row, row))
        seeds = min((len(s["seeds"]) for s in cells_of if s), default=0)
        cells = [format_mean_std((s or {}).get(m)) for s in cells_of for m in metrics]
        job = next(by_cell[(row, c)] for c in cols if (row, c) in by_cell)
        cells += [_flag(job, path) for path in flags.values()]
        if paper:
            cells += [_paper_cell(paper.get(row), c, paper_metrics) for c in cols]
        lines.append(f"| {titles.get(row, row)} | {seeds} | " + " | ".join(cells) + " |")
        if layout.get("per_task") and any(s and s.get("per_task") for s in cells_of):
            pt = [(s or {}).get("per_task") or {} for s in cells_of]
            cells = [format_mean_std(p.get(m)) for p in pt for m in metrics]
            cells += [_flag(job, path) for path in flags.values()] + ["-"] * len(cols) * bool(paper)
            lines.append(
                f"| {titles.get(row, row)} ‡ (per-task counts) | {seeds} | "
                + " | ".join(cells)
                + " |"
            )
    for label, summary in references.items():
        cells = [format_mean_std(summary.get(m)) for m in metrics]
        cells += ["-"] * (len(head) - 2 - len(cells))
        n = len((summary.get("h") or {}).get("values", []))
        lines.append(f"| reference: {label} | {n} | " + " | ".join(cells) + " |")
    lines.append("")
    if layout.get("per_task"):
        lines += [
            "‡: one model per task, as the paper's rows: T1, U and S each from the classifier "
            "trained with that task's own synthetic count chosen on validation "
            "(selection.per_task_counts); H = 2US / (U + S).",
            "",
        ]
    if missing:
        lines += [f"Not in this report (no finished run yet): {', '.join(missing)}.", ""]
    if not paper and layout.get("paper"):
        lines += [f"The paper's {layout['paper']} has no {dataset} column.", ""]
    return lines


def _seed_stats(store: Any, jobs: list[Job]) -> dict[str, dict[str, Any]]:
    """Per job key: mean/std over its seeds of every metric, and of the per-task numbers."""
    from unseen.bench.store import METRICS

    rows = store.rows([j.key for j in jobs])
    out: dict[str, dict[str, Any]] = {}
    for job in jobs:
        mine = [r for r in rows if r["key"] == job.key and r["seed"] in job.config.seeds]
        if not mine:
            continue
        stats: dict[str, Any] = {"seeds": [r["seed"] for r in mine]}
        for m in METRICS:
            values = [r[m] for r in mine if r[m] is not None]
            if values:
                stats[m] = mean_std(values)
        per_task = [json.loads(r["per_task"]) for r in mine if r.get("per_task")]
        if per_task:
            keys = ("t1", "u", "s", "h")
            stats["per_task"] = {k: mean_std([p[k] for p in per_task]) for k in keys}
        out[job.key] = stats
    return out


def _chosen_stats(store: Any, jobs: list[Job]) -> dict[str, dict[str, Any]]:
    """Per job key: the validation numbers of the point the runner chose (``--validate-only``
    tables: one value each, the first seed's validation problem)."""
    out = {}
    for key, v in store.validations([j.key for j in jobs]).items():
        chosen = v["selection"]["choice"]["validation"]
        stats: dict[str, Any] = {"seeds": [0]}
        for m in ("t1", "s", "u", "h", "ausuc", "h_cal"):
            value = _value(chosen, m)
            stats[m] = {"mean": value, "std": 0.0, "values": [value]}
        out[key] = stats
    return out


def _paper_metrics(paper: dict[str, Any], metrics: list[str], columns: bool) -> list[str]:
    """The metrics the paper gives for this table, in the layout's order."""
    given: set[str] = set()
    for cell in paper.values():
        for values in cell.values() if columns else [cell]:
            given |= set(values)
    return [m for m in metrics if m in given]


def _paper_cell(cell: dict[str, Any] | None, column: str, metrics: list[str]) -> str:
    values = ((cell or {}).get(column) if column else cell) or {}
    if not values:
        return "-"
    return " / ".join(f"{values[m]:.1f}" if m in values else "-" for m in metrics)


def _flag(job: Job, path: str) -> str:
    section, key = path.split(".", 1)
    value = getattr(getattr(job.config, section), key)
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------------- validation figures
def _value(record: dict[str, Any], metric: str) -> float:
    """A validation record's metric; ``h_cal``: H at the best calibration gamma."""
    if metric in ("h_cal", "h_cal_best"):
        return record.get("h_cal_best", record.get("extra", {}).get("h_at_best_gamma", record["h"]))
    return record[metric]


def _sweep(jobs: list[Job], selections: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    """{parameter: [{value, metrics of the chosen point, epochs}]}, in the grid's order."""
    data: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        if not job.sweep:
            raise ConfigError(f"{job.label}: a sweep layout needs sweep entries")
        choice = selections[job.key]["choice"]
        for param, value in job.sweep:
            point = {"value": value, **choice["validation"], "epochs": choice["epochs"]}
            point["h_cal"] = _value(choice["validation"], "h_cal")
            data.setdefault(param, []).append(point)
    for points in data.values():
        points.sort(key=lambda p: p["value"])
    return data


def _counts(jobs: list[Job], selections: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    """{row: {epoch, classifier_epochs, n: [...], metric: [...]}} at the chosen schedule."""
    data = {}
    for job in jobs:
        sel = selections[job.key]
        choice = sel["choice"]
        at = [
            r
            for r in sel["records"]
            if r["epoch"] == choice["epochs"]
            and r["classifier_epochs"] == choice["classifier_epochs"]
        ]
        at.sort(key=lambda r: r["n_synthetic"])
        data[job.row] = {
            "epoch": choice["epochs"],
            "classifier_epochs": choice["classifier_epochs"],
            "n": [r["n_synthetic"] for r in at],
            **{m: [_value(r, m) for r in at] for m in metrics},
        }
    return data


def _epochs(jobs: list[Job], selections: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    """{row: {epoch: [...], metric: [best over counts and classifier epochs]}}."""
    data = {}
    for job in jobs:
        best: dict[str, dict[int, float]] = {m: {} for m in metrics}
        for r in selections[job.key]["records"]:
            for m in metrics:
                best[m][r["epoch"]] = max(best[m].get(r["epoch"], -1.0), _value(r, m))
        epochs = sorted(best[metrics[0]])
        data[job.row] = {"epoch": epochs, **{m: [best[m][e] for e in epochs] for m in metrics}}
    return data


def _points_table(kind: str, data: dict[str, Any], metrics: list[str]) -> list[str]:
    """The plotted numbers as markdown (validation, %)."""
    names = [_NAMES[m] for m in metrics]
    if kind == "sweep":
        lines = ["| parameter | value | " + " | ".join(names) + " | epochs |"]
        lines.append("|" + "---|" * (len(names) + 3))
        for param, points in data.items():
            for p in points:
                cells = " | ".join(f"{p[m]:.1f}" for m in metrics)
                lines.append(f"| {param} | {p['value']} | {cells} | {p['epochs']} |")
        return lines
    x = "n" if kind == "counts" else "epoch"
    lines = [f"| row | {x} | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 2)]
    for row, d in data.items():
        for i, xv in enumerate(d[x]):
            lines.append(
                f"| {row} | {xv} | " + " | ".join(f"{d[m][i]:.1f}" for m in metrics) + " |"
            )
    return lines


def _figure(
    kind: str,
    data: dict[str, Any],
    metrics: list[str],
    layout: dict[str, Any],
    title: str,
    stem: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = layout.get("titles") or {}
    rows = layout.get("rows") or {}
    panels = list(data) if kind != "epochs" else [""]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if kind == "sweep":
            xs = [p["value"] for p in data[panel]]
            for m in metrics:
                ax.plot(xs, [p[m] for p in data[panel]], marker="o", label=_NAMES[m])
            ax.set_xlabel(panel.split(".", 1)[-1])
            ax.set_title(titles.get(panel, panel), fontsize=9)
        elif kind == "counts":
            for m in metrics:
                ax.plot(data[panel]["n"], data[panel][m], marker="o", label=_NAMES[m])
            ax.set_xlabel("synthetic features per class")
            ax.set_title(f"{rows.get(panel, panel)} (epoch {data[panel]['epoch']})", fontsize=9)
        else:
            for row, d in data.items():
                for m in metrics:
                    name = rows.get(row, row) + (f" {_NAMES[m]}" if len(metrics) > 1 else "")
                    ax.plot(d["epoch"], d[m], marker=".", label=name)
            ax.set_xlabel("generator epoch")
        if layout.get("log_x") and kind != "epochs":
            ax.set_xscale("symlog", linthresh=_smallest_positive(ax))
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title} (validation problem)", fontsize=10)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)
    plt.close(fig)


def _smallest_positive(ax: Any) -> float:
    xs = [x for line in ax.get_lines() for x in line.get_xdata() if x > 0]
    return min(xs or [1.0])
