"""The report's robustness table: each row on the proposed class split beside its mean ± std
over alternative class splits (grid ``splits``, :mod:`unseen.bench.grid`), and whether the
ranking of the rows holds across splits.

Why: a ranking measured on one proposed split can flip on another (Rossi et al. 2024, the
grabzsl toolkit). Each split's number is the mean over that split's seeds; the spread is the
sample std over splits (not over seeds), so it measures how much the split moves a row.
"""

from __future__ import annotations

from typing import Any

from unseen.eval.results import format_mean_std, mean_std

__all__ = ["rank", "robustness_lines"]


def rank(scores: dict[str, float]) -> list[str]:
    """Labels ordered best first (higher score first; ties keep the given order)."""
    return sorted(scores, key=lambda k: -scores[k])


def _split_means(rows: list[dict[str, Any]], metric: str) -> dict[str, float]:
    """split name -> the seeds' mean of ``metric`` for one label's summary rows."""
    return {r["split"]: r["stats"][metric]["mean"] for r in rows if metric in r["stats"]}


def robustness_lines(
    summary: list[dict[str, Any]], dataset: str, n_splits: int, metric: str = "h_cal"
) -> list[str]:
    """Markdown lines of the robustness section of ``dataset`` (none without split rows).

    Args:
        summary: :func:`unseen.bench.report.summarize_rows` rows (``split`` "" = proposed).
        n_splits: the number of alternative splits of the grid.
        metric: the ranking metric (calibrated H by default).
    """
    by_label: dict[str, list[dict[str, Any]]] = {}
    for s in summary:
        if s["dataset"] == dataset:
            by_label.setdefault(s["label"], []).append(s)
    if not any(r["split"] for rows in by_label.values() for r in rows):
        return []
    alt = [f"split{k}" for k in range(1, n_splits + 1)]
    head = (
        "| row | proposed H_cal | splits H_cal (mean ± std) | H_cal per split | proposed T1 | "
        "splits T1 (mean ± std) | splits done |"
    )
    lines = [
        f"### {dataset}: across class splits",
        "",
        f"Each row on the proposed split and on {n_splits} alternative class splits with its "
        "counts (`unseen splits`); a split's number is its seeds' mean, ± is the std over "
        "splits.",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    complete: dict[str, dict[str, float]] = {}
    for label, rows in by_label.items():
        h = _split_means(rows, metric)
        t1 = _split_means(rows, "t1")
        h_alt = [h[s] for s in alt if s in h]
        t1_alt = [t1[s] for s in alt if s in t1]
        per_split = ", ".join(f"{h[s]:.1f}" if s in h else "-" for s in alt)
        cells = [
            label,
            f"{h['']:.1f}" if "" in h else "-",
            format_mean_std(mean_std(h_alt) if h_alt else None),
            per_split,
            f"{t1['']:.1f}" if "" in t1 else "-",
            format_mean_std(mean_std(t1_alt) if t1_alt else None),
            f"{len(h_alt)} of {n_splits}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if "" in h and len(h_alt) == n_splits:
            complete[label] = h
    lines += ["", *_ranking_lines(complete, alt), ""]
    if len(complete) >= 2:
        lines += [*_pairwise_lines(complete, alt), ""]
    return [*lines, *_health_lines(by_label, alt)]


def _health_lines(by_label: dict[str, list[dict[str, Any]]], alt: list[str]) -> list[str]:
    """Generator health (:mod:`unseen.eval.health`, validation problem of each split, first
    seed) on the proposed split beside its mean ± std over the alternative splits.

    Why: when a row moves with the split, this says whether its generator knew the new split's
    classes less well (synthetic-only T1, class means nearest their own) or whether the loss
    came after the generator (classifier, calibration); no test number enters it.
    """
    head = (
        "| row | synthetic-only T1: proposed | splits (mean ± std) | chance | class means "
        "nearest own: proposed | splits (mean ± std) | splits with health |"
    )
    lines = []
    for label, rows in by_label.items():
        health = {r["split"]: r["health"] for r in rows if r.get("health")}
        if not health:
            continue
        prop = health.get("")
        t1 = [health[s]["synthetic_only_t1"] for s in alt if s in health]
        hit = [health[s]["mean_hit_rate"] for s in alt if s in health]
        chance = (prop or health[next(iter(health))])["chance"]
        cells = [
            label,
            f"{prop['synthetic_only_t1']:.1f}" if prop else "-",
            format_mean_std(mean_std(t1) if t1 else None),
            f"{chance:.1f}",
            f"{prop['mean_hit_rate']:.0f}%" if prop else "-",
            format_mean_std(mean_std(hit) if hit else None) + ("%" if hit else ""),
            f"{len(t1)} of {len(alt)}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if not lines:
        return []
    return [
        "Generator health across splits (validation problem of each split, pseudo-unseen "
        "classes, first seed; `unseen diagnose RUN`): a softmax trained on synthetic features "
        "alone scored on real ones, and the share of generated class means nearest their own "
        "real class mean.",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
        *lines,
        "",
    ]


def _ranking_lines(complete: dict[str, dict[str, float]], alt: list[str]) -> list[str]:
    """Whether the order of the rows on the proposed split holds on each alternative split
    and on the mean over splits (rows with every split only)."""
    if len(complete) < 2:
        return ["Ranking: fewer than two rows have every split; not compared."]
    proposed = rank({k: v[""] for k, v in complete.items()})
    mean = rank({k: sum(v[s] for s in alt) / len(alt) for k, v in complete.items()})
    same = sum(rank({k: v[s] for k, v in complete.items()}) == proposed for s in alt)
    top = sum(rank({k: v[s] for k, v in complete.items()})[0] == proposed[0] for s in alt)
    verdict = "the same order" if mean == proposed else "a different order"
    return [
        f"Ranking by calibrated H over the {len(complete)} rows with every split: proposed "
        f"split {' > '.join(proposed)}; mean over splits {' > '.join(mean)} ({verdict}). "
        f"The proposed split's order holds on {same} of {len(alt)} alternative splits; its "
        f"best row ({proposed[0]}) is best on {top} of {len(alt)}."
    ]


def _pairwise_lines(complete: dict[str, dict[str, float]], alt: list[str]) -> list[str]:
    """A table of pairs: cell (A, B) = on how many alternative splits row A's score is above
    row B's. Rows and columns in the proposed split's order, so above the diagonal a cell
    below ``len(alt)`` is a pair whose proposed order flips on some split.

    Why: a whole ranking rarely survives a split (one swap anywhere breaks it); the question
    a user asks is narrower, "is method A still above method B on another split?".
    """
    order = rank({k: v[""] for k, v in complete.items()})
    wins = {(a, b): sum(complete[a][s] > complete[b][s] for s in alt) for a in order for b in order}
    head = "| row is above column on k of " + f"{len(alt)} splits | " + " | ".join(order) + " |"
    lines = [head, "|" + "---|" * (len(order) + 1)]
    for a in order:
        cells = ["-" if a == b else str(wins[a, b]) for b in order]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    flips = [
        f"{a} > {b}" for i, a in enumerate(order) for b in order[i + 1 :] if wins[a, b] < len(alt)
    ]
    return [
        *lines,
        "",
        "Pairs in the proposed split's order that do not hold on every alternative split: "
        + (", ".join(flips) if flips else "none")
        + ".",
    ]
