"""The figures: pure drawing functions on plain arrays and dicts, each returning a Figure.

Data comes from :mod:`unseen.plot.runs`; these functions compute nothing that a result
depends on, except the t-SNE embedding (:func:`tsne_embedding`).

t-SNE is scikit-learn's :class:`~sklearn.manifold.TSNE` after a PCA to 50 dimensions (the
usual speed-up; FLO's features are 1280-d). openTSNE was measured as an alternative on this
project's machine (1 thread, 1280-d blobs, PCA to 50, perplexity 30): 1000 / 2000 / 4000
points took 4.0 / 11.6 / 25.7 s with scikit-learn and 4.9 / 8.1 / 19.4 s with openTSNE.
At the figure's default size (8 classes x 2 x 100 = 1600 points) the gain would be about a
third, which does not pay for a second dependency (openTSNE itself depends on scikit-learn).
Measured with ``benchmarks/tsne_speed.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from unseen.eval.metrics import SeenUnseenCurve, harmonic_mean
from unseen.plot.style import OKABE_ITO, TOL_MUTED, new_figure, styled

__all__ = [
    "bars_figure",
    "confusion_figure",
    "confusion_view",
    "curves_figure",
    "seen_unseen_figure",
    "tsne_embedding",
    "tsne_figure",
    "tsne_panels_figure",
]

METRIC_LABELS = {
    "t1": "CZSL T1",
    "s": "S",
    "u": "U",
    "h": "H",
    "s_cal": "S cal.",
    "u_cal": "U cal.",
    "h_cal": "H cal.",
    "ausuc": "AUSUC",
}


# ---------------------------------------------------------------------- t-SNE
def tsne_embedding(x: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of the rows of ``x`` (PCA to 50 dimensions first when wider)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float32)
    if len(x) < 5:
        raise ValueError(f"t-SNE needs at least 5 points, got {len(x)}")
    if x.shape[1] > 50 and len(x) > 50:
        x = PCA(50, random_state=seed).fit_transform(x)
    perplexity = min(perplexity, (len(x) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


@styled
def tsne_figure(
    emb_real: np.ndarray,
    y_real: np.ndarray,
    emb_fake: np.ndarray,
    y_fake: np.ndarray,
    classes: Sequence[int],
    names: Sequence[str],
    title: str,
    *,
    real_what: str = "real",
    fake_what: str = "generated",
) -> Figure:
    """Real (dots) and generated (crosses) features per class (colour), in one embedding."""
    if len(classes) > len(TOL_MUTED):
        raise ValueError(f"at most {len(TOL_MUTED)} classes can get distinct colours")
    fig = new_figure(9.5, 6.4)
    ax = fig.add_subplot()
    handles = []
    for k, c in enumerate(classes):
        colour = TOL_MUTED[k]
        r, f = emb_real[y_real == c], emb_fake[y_fake == c]
        ax.scatter(r[:, 0], r[:, 1], s=12, color=colour, alpha=0.75, linewidths=0)
        ax.scatter(f[:, 0], f[:, 1], s=16, color=colour, alpha=0.75, marker="x", linewidths=0.9)
        handles.append(Line2D([], [], color=colour, marker="s", ls="", ms=8, label=names[k]))
    handles.append(Line2D([], [], ls="", label=" "))
    handles.append(Line2D([], [], color="0.3", marker="o", ls="", ms=5, label=real_what))
    handles.append(Line2D([], [], color="0.3", marker="x", ls="", ms=6, label=fake_what))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    fig.suptitle(title)
    return fig


@styled
def tsne_panels_figure(
    real: np.ndarray,
    y_real: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
    classes: Sequence[int],
    title: str,
    *,
    seed: int = 0,
    real_what: str = "real unseen test features",
) -> Figure:
    """GSMFlow's Fig. 9 layout: panel (a) the real features alone, then one panel per
    ``(label, generated features, their labels)`` embedded jointly with the real ones (light
    dots: real, crosses: generated), one colour per class throughout."""
    if len(classes) > len(TOL_MUTED):
        raise ValueError(f"at most {len(TOL_MUTED)} classes can get distinct colours")
    fig = new_figure(4.2 * (len(panels) + 1), 4.6)
    axes = fig.subplots(1, len(panels) + 1, squeeze=False)[0]
    emb = tsne_embedding(real, seed=seed)
    for k, c in enumerate(classes):
        m = y_real == c
        axes[0].scatter(emb[m, 0], emb[m, 1], s=8, color=TOL_MUTED[k], linewidths=0)
    axes[0].set_title(f"(a) {real_what}", fontsize=10)
    for i, (label, fake, y_fake) in enumerate(panels, start=1):
        emb = tsne_embedding(np.concatenate([real, fake]), seed=seed)
        er, ef = emb[: len(real)], emb[len(real) :]
        for k, c in enumerate(classes):
            colour = TOL_MUTED[k]
            m = y_real == c
            axes[i].scatter(er[m, 0], er[m, 1], s=6, color=colour, alpha=0.2, linewidths=0)
            m = y_fake == c
            axes[i].scatter(ef[m, 0], ef[m, 1], s=10, color=colour, marker="x", linewidths=0.8)
        axes[i].set_title(f"({chr(97 + i)}) synthesized: {label}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------- confusion
def confusion_view(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    seen_classes: np.ndarray,
    unseen_classes: np.ndarray,
    names: dict[int, str],
    rows: str = "all",
) -> tuple[np.ndarray, list[str], list[str], int]:
    """Row-normalised confusion (fraction of each true class's images) for a view.

    ``rows``: ``all`` (seen classes first, then unseen), ``unseen`` (unseen rows; columns are
    the unseen classes plus "any seen class") or ``seen`` (seen rows; unseen columns plus
    "any unseen class"). Returns ``(matrix, row names, column names, block)`` where ``block``
    is the index of the first unseen row/column in the ``all`` view (else -1).
    """
    seen, unseen = np.sort(seen_classes), np.sort(unseen_classes)
    if rows == "all":
        order = np.concatenate([seen, unseen])
        cols, extra, block = order, None, len(seen)
    elif rows == "unseen":
        order, cols, extra, block = unseen, unseen, ("any seen class", seen), -1
    elif rows == "seen":
        order, cols, extra, block = seen, seen, ("any unseen class", unseen), -1
    else:
        raise ValueError(f"rows must be all, seen or unseen, got {rows!r}")
    m = np.zeros((len(order), len(cols) + (extra is not None)))
    for i, c in enumerate(order):
        pred = y_pred[y_true == c]
        if len(pred) == 0:
            continue
        m[i, : len(cols)] = [np.mean(pred == k) for k in cols]
        if extra is not None:
            m[i, -1] = np.mean(np.isin(pred, extra[1]))
    col_names = [names[int(c)] for c in cols] + ([extra[0]] if extra else [])
    return m, [names[int(c)] for c in order], col_names, block


@styled
def confusion_figure(
    matrix: np.ndarray,
    row_names: Sequence[str],
    col_names: Sequence[str],
    title: str,
    *,
    block: int = -1,
    xlabel: str = "predicted class",
) -> Figure:
    """Heat map of a row-normalised confusion matrix (viridis: perceptually uniform and
    readable with colour-vision deficiencies); values printed when the matrix is small."""
    n_r, n_c = matrix.shape
    small = max(n_r, n_c) <= 25
    side = min(14.0, max(6.0, 0.32 * n_c + 3.5))
    fig = new_figure(side + 1.5, min(14.0, max(5.0, 0.32 * n_r + 2.8)))
    ax = fig.add_subplot()
    im = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true class's test images")
    step_r = 1 if n_r <= 40 else int(np.ceil(n_r / 40))
    step_c = 1 if n_c <= 40 else int(np.ceil(n_c / 40))
    fs = 9 if max(n_r, n_c) <= 25 else 7
    ax.set_yticks(np.arange(0, n_r, step_r), [row_names[i] for i in range(0, n_r, step_r)])
    ax.set_xticks(np.arange(0, n_c, step_c), [col_names[i] for i in range(0, n_c, step_c)])
    ax.tick_params(axis="both", labelsize=fs)
    ax.tick_params(axis="x", labelrotation=90)
    if block > 0:
        for pos in (block - 0.5,):
            ax.axhline(pos, color="white", lw=1.5)
            ax.axvline(pos, color="white", lw=1.5)
    elif n_c == n_r + 1:
        ax.axvline(n_c - 1.5, color="white", lw=1.5)
    if small:
        for i in range(n_r):
            for j in range(n_c):
                v = matrix[i, j]
                if v >= 0.005:
                    ax.text(
                        j,
                        i,
                        f"{100 * v:.0f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="black" if v > 0.6 else "white",
                    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("true class")
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------- training curves
@styled
def curves_figure(
    histories: dict[int, list[dict[str, float]]],
    title: str,
    *,
    records: list[dict[str, Any]] | None = None,
    choice: dict[str, Any] | None = None,
) -> Figure:
    """One panel per logged loss (mean per epoch, one line per seed), and the validation
    criterion over generator epochs (one line per synthetic count) with the choice marked."""
    keys: list[str] = []
    for hist in histories.values():
        for row in hist:
            keys.extend(k for k in row if k != "epoch" and k not in keys)
    if not keys:
        raise ValueError("the run's history holds no losses")
    n = len(keys) + (1 if records else 0)
    ncols = min(3, n)
    nrows = int(np.ceil(n / ncols))
    fig = new_figure(4.2 * ncols, 3.1 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        for k, (seed, hist) in enumerate(sorted(histories.items())):
            pts = [(r["epoch"], r[key]) for r in hist if key in r]
            if pts:
                e, v = zip(*pts)
                ax.plot(e, v, color=OKABE_ITO[k % len(OKABE_ITO)], lw=1.4, label=f"seed {seed}")
        ax.set_title(f"loss: {key}")
        ax.set_xlabel("generator epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    if records:
        ax = axes[len(keys)]
        crit = "h_cal_best" if (choice or {}).get("criterion", "h_cal") == "h_cal" else "h"
        ce = (choice or {}).get("classifier_epochs")
        for k, n_syn in enumerate(sorted({r["n_synthetic"] for r in records})):
            rows = sorted(
                (r["epoch"], r.get(crit, r["h"]))
                for r in records
                if r["n_synthetic"] == n_syn and (ce is None or r["classifier_epochs"] == ce)
            )
            if rows:
                e, v = zip(*rows)
                colour = OKABE_ITO[k % len(OKABE_ITO)]
                ax.plot(e, v, marker="o", ms=3.5, color=colour, label=f"{n_syn} synthetic/class")
        if choice:
            best = choice["validation"].get(crit, choice["validation"]["h"])
            ax.plot(choice["epochs"], best, marker="*", ms=14, color="black", ls="", label="chosen")
        label = "H at best gamma" if crit == "h_cal_best" else "H"
        ax.set_title(f"validation {label} (seen training data only)")
        ax.set_xlabel("generator epoch")
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------- seen-unseen curve
def _index_at(curve: SeenUnseenCurve, gamma: float) -> int:
    return int(np.searchsorted(curve.gammas, gamma, side="right") - 1)


@styled
def seen_unseen_figure(
    curves: Sequence[tuple[str, SeenUnseenCurve, float | None]],
    title: str,
) -> Figure:
    """Seen accuracy against unseen accuracy as calibrated stacking's gamma sweeps (AUSUC is
    the area under each curve); circles at gamma = 0, squares at the validation gamma; grey
    lines of constant H."""
    fig = new_figure(7.6, 6.6)
    ax = fig.add_subplot()
    u = np.linspace(0.0, 100.0, 401)
    for h in (20, 40, 60, 80):
        ok = u > h / 2 + 1e-9
        s = h * u[ok] / (2 * u[ok] - h)
        keep = s <= 100
        ax.plot(u[ok][keep], s[keep], color="0.8", lw=0.8, ls="--", zorder=0)
        ax.text(
            100, h * 100 / (200 - h), f"H={h}", color="0.5", fontsize=8, ha="right", va="bottom"
        )
    for k, (label, curve, gamma) in enumerate(curves):
        colour = OKABE_ITO[k % len(OKABE_ITO)]
        x, y = 100 * curve.acc_unseen, 100 * curve.acc_seen
        ax.plot(x, y, color=colour, lw=1.8, label=f"{label} (AUSUC {100 * curve.auc():.1f})")
        i0 = _index_at(curve, 0.0)
        h0 = 100 * harmonic_mean(curve.acc_seen[i0], curve.acc_unseen[i0])
        ax.plot(x[i0], y[i0], "o", color=colour, ms=8, mec="black", label=f"  gamma 0: H {h0:.1f}")
        if gamma is not None:
            ig = _index_at(curve, gamma)
            hg = 100 * harmonic_mean(curve.acc_seen[ig], curve.acc_unseen[ig])
            ax.plot(
                x[ig],
                y[ig],
                "s",
                color=colour,
                ms=8,
                mec="black",
                label=f"  gamma {gamma:.3g} (validation): H {hg:.1f}",
            )
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect("equal")
    ax.set_xlabel("U: accuracy on unseen-class test images (%)")
    ax.set_ylabel("S: accuracy on seen-class test images (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------- bar chart
@styled
def bars_figure(
    entries: Sequence[tuple[str, dict[str, dict[str, Any]]]],
    metrics: Sequence[str],
    title: str,
    groups: Sequence[str] | None = None,
) -> Figure:
    """Grouped bars: mean over seeds per metric and run, error bars one standard deviation,
    one dot per seed. ``entries`` are ``(label, summary)`` with ``summary[metric] =
    {"mean", "std", "values"}`` as in results.json.

    ``groups`` (e.g. each run's dataset) puts every group in its own panel, so numbers of
    different datasets never share an axis; a label keeps its colour in every panel. Beyond
    the palette's colours, hatching tells runs apart (a colour is never reused alone).
    """
    if not entries:
        raise ValueError("no runs to draw")
    groups = list(groups) if groups is not None else [""] * len(entries)
    order = list(dict.fromkeys(groups))
    labels = list(dict.fromkeys(label for label, _ in entries))
    hatches = ["", "//", "..", "xx", "\\\\", "++"]
    style = {
        label: (OKABE_ITO[k % len(OKABE_ITO)], hatches[(k // len(OKABE_ITO)) % len(hatches)])
        for k, label in enumerate(labels)
    }
    most = max(groups.count(g) for g in order)
    width = 0.8 / most
    fig = new_figure(
        min(16.0, max(7.0, len(metrics) * (0.28 * most + 0.5) + 3.0)), 1.0 + 4.0 * len(order)
    )
    axes = fig.subplots(len(order), 1, squeeze=False)[:, 0]
    x = np.arange(len(metrics))
    top = max(
        (s[m]["mean"] + s[m]["std"] for _, s in entries for m in metrics if m in s), default=100
    )
    for ax, group in zip(axes, order):
        mine = [e for e, g in zip(entries, groups) if g == group]
        n = len(mine)
        for k, (label, summary) in enumerate(mine):
            colour, hatch = style[label]
            pos = x - 0.4 + width * (k + 0.5)
            means = [summary[m]["mean"] if m in summary else np.nan for m in metrics]
            stds = [summary[m]["std"] if m in summary else 0.0 for m in metrics]
            ax.bar(
                pos,
                means,
                width * 0.92,
                yerr=stds,
                capsize=3,
                color=colour,
                hatch=hatch,
                edgecolor="white" if hatch else None,
                label=label,
            )
            for p, m in zip(pos, metrics):
                vals = summary.get(m, {}).get("values", [])
                ax.plot([p] * len(vals), vals, "o", ms=3, color="black", alpha=0.6)
            if n <= 4:
                for p, v, sd in zip(pos, means, stds):
                    if np.isfinite(v):
                        ax.text(p, v + sd + 1.0, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, [METRIC_LABELS.get(m, m) for m in metrics])
        ax.set_ylabel("per-class top-1 accuracy / AUSUC (%)")
        ax.set_ylim(0, min(105, top + 10))
        ax.grid(axis="y", alpha=0.3)
        if group:
            ax.set_title(group, loc="left", fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(title)
    return fig
