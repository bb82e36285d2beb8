"""``unseen plot``: figures of finished run folders (PNG + SVG).

Sub-commands: ``tsne`` (one run, or GSMFlow Fig. 9's panels for several), ``boundary``
(GSMFlow Fig. 8), ``confusion``, ``seen-unseen``, ``curves``, ``bars``. ``tsne``, ``boundary``,
``confusion`` and ``seen-unseen`` reload a run's data and saved model (``seed_<s>/model.pt``;
the last two retrain its final classifier exactly as the runner did); ``curves`` and
``bars`` read ``results.json`` only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unseen.cli import _check_device
from unseen.commands import add_command
from unseen.errors import ConfigError

__all__ = ["register"]

_DESCRIPTION = """\
Figures of finished `unseen run` folders, written as OUT.png and OUT.svg. Every title names
the dataset, whether its features are REAL or SYNTHETIC (as recorded by the run), the method
and the seed(s). Colours: Okabe-Ito and Paul Tol's palettes, viridis for heat maps.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="figures of run folders: t-SNE, boundary samples, confusion, seen-unseen curve, "
        "curves, bars",
        description=_DESCRIPTION,
    )
    ps = p.add_subparsers(dest="figure", required=True, metavar="FIGURE")

    t = _figure(ps, "tsne", _cmd_tsne, "tsne-<classes>-seed<S>", several=True, model=True)
    t.add_argument("run", nargs="+", help="run folder(s) (the --out of `unseen run`)")
    t.add_argument("--classes", default="unseen", choices=["unseen", "seen", "all"])
    t.add_argument("--panels", action="store_true", help="Fig. 9's panels for a single run")
    _points_args(t, 100, "real and generated per class")

    n = _figure(ps, "boundary", _cmd_boundary, "boundary-seed<S>", model=True)
    n.add_argument("run", help="run folder of a GSMFlow run")
    _points_args(n, 60, "training features per class")

    c = _figure(ps, "confusion", _cmd_confusion, "confusion-<rows>-seed<S>", model=True)
    c.add_argument("run", help="run folder")
    c.add_argument(
        "--rows",
        default="unseen",
        choices=["unseen", "seen", "all"],
        help="unseen: unseen classes vs unseen + 'any seen class' (default); seen: the "
        "converse; all: every class, seen first",
    )
    c.add_argument(
        "--calibrated", action="store_true", help="apply the validation gamma (calibrated)"
    )

    s = _figure(
        ps, "seen-unseen", _cmd_seen_unseen, "seen-unseen-seed<S>", several=True, model=True
    )
    s.add_argument("runs", nargs="+", help="run folder(s), same dataset")

    k = _figure(ps, "curves", _cmd_curves, "curves")
    k.add_argument("run", help="run folder")

    b = _figure(ps, "bars", _cmd_bars, "bars", several=True)
    b.add_argument("runs", nargs="+", help="run folder(s)")
    b.add_argument(
        "--metrics",
        nargs="+",
        default=["t1", "s", "u", "h", "h_cal", "ausuc"],
        help="of t1 s u h s_cal u_cal h_cal ausuc (default t1 s u h h_cal ausuc)",
    )
    b.add_argument("--labels", nargs="+", help="one label per run (default: folder names)")


def _figure(
    ps: argparse._SubParsersAction,
    name: str,
    handler: Any,
    out: str,
    several: bool = False,
    model: bool = False,
) -> argparse.ArgumentParser:
    """A figure's command with the options of every figure: --out (default RUN/figures/``out``,
    none for ``several`` runs) and --force; a figure redrawn from a run's saved ``model`` also
    takes the --seed of that model, --data-root and --device."""
    q = add_command(ps, name, handler, device=model)
    out = f"RUN/figures/{out}" + (" (one run); required for several" if several else "")
    q.add_argument("--out", help=f"output path without suffix (default: {out}); .png + .svg")
    q.add_argument("--force", action="store_true", help="replace existing figure files")
    if model:
        q.add_argument("--seed", type=int, help="which seed's model (default: the run's first)")
        q.add_argument("--data-root", help="data folder, if it moved since the run (run.yaml)")
    return q


def _points_args(q: argparse.ArgumentParser, per_class: int, what: str) -> None:
    q.add_argument("--max-classes", type=int, default=8, help="classes drawn at most (<= 9)")
    q.add_argument("--per-class", type=int, default=per_class, help=what)


# ---------------------------------------------------------------------- handlers
def _save(args: argparse.Namespace, fig: Any, run_path: Path | None, name: str) -> int:
    """Write the figure to --out, or to ``run_path/figures/name`` (one run's figure)."""
    from unseen.plot.style import save_figure

    if not args.out and run_path is None:
        raise ConfigError("several runs: pass --out for the figure's path")
    out = Path(args.out) if args.out else run_path / "figures" / name
    for path in save_figure(fig, out, force=args.force):
        print(f"wrote {path}")
    return 0


def _title(what: str, runs: list[Any], seed: str) -> str:
    """:func:`unseen.plot.style.title` of the runs (one dataset, one kind of features)."""
    from unseen.plot.style import title

    method = ", ".join(dict.fromkeys(r.method for r in runs))
    return title(
        what, dataset=runs[0].dataset, synthetic=runs[0].synthetic, method=method, seed=seed
    )


def _check_points(args: argparse.Namespace) -> None:
    from unseen.config import check_number
    from unseen.plot.style import TOL_MUTED

    check_number("--max-classes", args.max_classes, lo=1, hi=len(TOL_MUTED), integer=True)
    check_number("--per-class", args.per_class, lo=1, integer=True)
    _check_device(args.device)


def _cmd_tsne(args: argparse.Namespace) -> int:
    """t-SNE of real vs generated features per class (one run, or several side by side)

    t-SNE (scikit-learn, after PCA to 50 dims) of real image features (dots) and features
    generated by the run's saved model (crosses), colour per class. Real features of unseen
    classes are their test images; of seen classes, training images. With several runs (or
    --panels), GSMFlow's Fig. 9: panel (a) the real features alone, then one panel per run with
    its generated features of the same classes embedded jointly with the real ones (the runs
    must draw the same classes: one dataset, one seed).
    """
    import numpy as np

    from unseen.plot.figures import tsne_embedding, tsne_figure, tsne_panels_figure
    from unseen.plot.runs import RunFolder, rebuild, sample_points

    _check_points(args)
    runs = [RunFolder.open(r) for r in args.run]
    _same(runs, "dataset", "t-SNE panels compare runs on one dataset")
    _same(runs, "synthetic", "REAL and SYNTHETIC features are never mixed in one figure")
    rebuilt = [rebuild(r, args.seed, data_root=args.data_root, device=args.device) for r in runs]
    points = [sample_points(rb, args.classes, args.max_classes, args.per_class) for rb in rebuilt]
    run, rb, pts = runs[0], rebuilt[0], points[0]
    real_what = {
        "unseen": "real: test images",
        "seen": "real: training images",
        "all": "real: training / test images",
    }[args.classes]
    what = (
        f"{len(pts['classes'])} of {pts['n_pool']} "
        f"{'' if args.classes == 'all' else args.classes + ' '}classes"
    )
    if len(runs) > 1 or args.panels:
        if any(not np.array_equal(p["classes"], pts["classes"]) for p in points):
            raise ConfigError("the runs draw different classes (their seeds differ): pass --seed")
        fig = tsne_panels_figure(
            pts["real"],
            pts["real_labels"],
            [(r.label(), p["fake"], p["fake_labels"]) for r, p in zip(runs, points)],
            pts["classes"],
            _title(
                f"t-SNE of real and synthesized features (GSMFlow Fig. 9 style): {what}; "
                "crosses = synthesized, light dots = real",
                runs,
                f"seed {rb.seed}",
            ),
            seed=rb.seed,
            real_what=real_what,
        )
        one = run.path if len(runs) == 1 else None
        return _save(args, fig, one, f"tsne-panels-{args.classes}-seed{rb.seed}")
    emb = tsne_embedding(np.concatenate([pts["real"], pts["fake"]]), seed=rb.seed)
    n_real = len(pts["real"])
    fig = tsne_figure(
        emb[:n_real],
        pts["real_labels"],
        emb[n_real:],
        pts["fake_labels"],
        pts["classes"],
        pts["names"],
        _title(f"t-SNE of real vs generated features: {what}", runs, f"seed {rb.seed}"),
        real_what=real_what,
        fake_what=f"generated by {run.method}",
    )
    return _save(args, fig, run.path, f"tsne-{args.classes}-seed{rb.seed}")


def _cmd_boundary(args: argparse.Namespace) -> int:
    """t-SNE of seen features and GSMFlow's mined boundary samples (Fig. 8)

    GSMFlow's Fig. 8: seen training features of a few classes (dots) and the boundary samples
    x+ mined from them by the run's trained contrastive network g (Eq. 4; crosses), in one
    t-SNE embedding. Training data only. The run must be a GSMFlow run with boundary mining
    (variant full or no-vp).
    """
    import numpy as np

    from unseen.plot.figures import tsne_embedding, tsne_figure
    from unseen.plot.runs import RunFolder, boundary_points, rebuild

    _check_points(args)
    run = RunFolder.open(args.run)
    rb = rebuild(run, args.seed, data_root=args.data_root, device=args.device)
    pts = boundary_points(rb, args.max_classes, args.per_class)
    emb = tsne_embedding(np.concatenate([pts["real"], pts["boundary"]]), seed=rb.seed)
    n = len(pts["real"])
    trace = pts["entropy"]
    fig = tsne_figure(
        emb[:n],
        pts["labels"],
        emb[n:],
        pts["labels"],
        pts["classes"],
        pts["names"],
        _title(
            f"Seen training features and their boundary samples (GSMFlow Fig. 8), "
            f"{len(pts['classes'])} classes; entropy of g {trace[0]:.2f} -> {trace[-1]:.2f} "
            f"over {len(trace) - 1} mining steps",
            [run],
            f"seed {rb.seed}",
        ),
        real_what="real seen (training)",
        fake_what="boundary x+",
    )
    shift = np.linalg.norm(pts["boundary"] - pts["real"], axis=1).mean()
    size = np.linalg.norm(pts["real"], axis=1).mean()
    print(f"|x+ - x| mean {shift:.3f} (|x| mean {size:.3f}); entropy trace {trace}")
    return _save(args, fig, run.path, f"boundary-seed{rb.seed}")


def _cmd_confusion(args: argparse.Namespace) -> int:
    """GZSL confusion matrix on test (row-normalised)

    Row-normalised GZSL confusion matrix of the run's final classifier on the test images
    (retrained from the saved model with the run's validation choice).
    """
    import numpy as np

    from unseen.eval.metrics import calibrated_predict
    from unseen.plot.figures import confusion_figure, confusion_view
    from unseen.plot.runs import RunFolder, rebuild, score_test_images

    _check_device(args.device)
    run = RunFolder.open(args.run)
    rb = rebuild(run, args.seed, data_root=args.data_root, device=args.device)
    sc = score_test_images(rb)
    gamma = 0.0
    if args.calibrated:
        if sc.gamma is None:
            raise ConfigError(f"{run.path} chose no gamma (selection.calibrate was off)")
        gamma = sc.gamma
    y_true = np.concatenate([sc.labels_seen, sc.labels_unseen])
    y_pred = calibrated_predict(
        np.concatenate([sc.scores_seen, sc.scores_unseen]), sc.classes, sc.seen_classes, gamma
    )
    names = dict(zip(sc.classes.tolist(), sc.class_names))
    m, rows, cols, block = confusion_view(
        y_true, y_pred, sc.seen_classes, sc.unseen_classes, names, args.rows
    )
    how = f"calibrated, gamma {gamma:.3g} from validation" if args.calibrated else "uncalibrated"
    print(sc.reproduction_note())
    what = f"GZSL confusion on test ({args.rows} classes' images, {how})"
    fig = confusion_figure(
        m,
        rows,
        cols,
        _title(what, [run], f"seed {rb.seed}") + f"\n{sc.reproduction_note()}",
        block=block,
        xlabel="predicted class (among all classes)",
    )
    suffix = "-calibrated" if args.calibrated else ""
    return _save(args, fig, run.path, f"confusion-{args.rows}{suffix}-seed{rb.seed}")


def _cmd_seen_unseen(args: argparse.Namespace) -> int:
    """seen-unseen accuracy curve behind AUSUC (one or more runs)

    Seen vs unseen test accuracy as calibrated stacking's gamma sweeps (the curve whose area is
    AUSUC), for one or more runs on the same dataset.
    """
    from unseen.plot.figures import seen_unseen_figure
    from unseen.plot.runs import expand_runs, rebuild, score_test_images

    _check_device(args.device)
    runs = expand_runs(args.runs)
    _same(runs, "dataset", "seen-unseen curves compare runs on one dataset")
    _same(runs, "synthetic", "REAL and SYNTHETIC features are never mixed in one figure")
    curves, seeds = [], []
    for run in runs:
        rb = rebuild(run, args.seed, data_root=args.data_root, device=args.device)
        sc = score_test_images(rb)
        print(f"{run.path}: {sc.reproduction_note()}")
        curves.append((run.label(), sc.curve(), sc.gamma))
        seeds.append(rb.seed)
    what = "Seen-unseen accuracy on test as gamma sweeps (area = AUSUC)"
    seed = "seed " + ", ".join(dict.fromkeys(map(str, seeds)))
    fig = seen_unseen_figure(curves, _title(what, runs, seed))
    one = runs[0].path if len(runs) == 1 else None
    return _save(args, fig, one, f"seen-unseen-seed{seeds[0]}")


def _cmd_curves(args: argparse.Namespace) -> int:
    """training losses per epoch (every seed) and the validation choice

    Training losses per generator epoch from results.json (one line per seed) and the
    validation criterion over epochs with the chosen point.
    """
    from unseen.plot.figures import curves_figure
    from unseen.plot.runs import RunFolder

    run = RunFolder.open(args.run)
    histories = {int(s): e.get("history") or [] for s, e in run.results["seeds"].items()}
    if not any(histories.values()):
        raise ConfigError(f"{run.path}/results.json records no training history")
    fig = curves_figure(
        histories,
        _title(
            f"Training losses (mean per generator epoch, {run.choice['epochs']} epochs chosen "
            "on validation)",
            [run],
            "seeds " + ", ".join(map(str, run.seeds)),
        ),
        records=run.results["validation"].get("records"),
        choice=run.choice,
    )
    return _save(args, fig, run.path, "curves")


def _cmd_bars(args: argparse.Namespace) -> int:
    """bar chart of results (mean ± std over seeds) of one or more runs

    Grouped bars of test metrics from results.json: mean over seeds, error bar one standard
    deviation, a dot per seed. A folder holding several runs stands for all of them. Each
    dataset gets its own panel; runs on REAL and SYNTHETIC features are never mixed in one
    chart.
    """
    from unseen.eval.results import METRIC_KEYS
    from unseen.plot.figures import bars_figure
    from unseen.plot.runs import expand_runs
    from unseen.plot.style import features_word

    bad = [m for m in args.metrics if m not in METRIC_KEYS]
    if bad:
        raise ConfigError(f"--metrics: unknown {bad}; valid: {' '.join(METRIC_KEYS)}")
    runs = expand_runs(args.runs)
    _same(runs, "synthetic", "REAL and SYNTHETIC features are never mixed in one chart")
    if args.labels and len(args.labels) != len(runs):
        raise ConfigError(f"--labels: {len(args.labels)} labels for {len(runs)} runs")
    datasets = list(dict.fromkeys(r.dataset for r in runs))
    labels = args.labels or [r.label() for r in runs]
    seeds = sorted({s for r in runs for s in r.seeds})
    text = (
        "Test results: mean ± std over seeds (dots: single seeds)\n"
        f"{', '.join(datasets)} ({features_word(runs[0].synthetic)}) | "
        f"{', '.join(dict.fromkeys(r.method for r in runs))} | "
        f"seeds {', '.join(map(str, seeds))}"
    )
    fig = bars_figure(  # one panel per dataset: their numbers never share an axis
        [(label, r.results["summary"]) for label, r in zip(labels, runs)],
        args.metrics,
        text,
        groups=[r.dataset for r in runs],
    )
    return _save(args, fig, runs[0].path if len(runs) == 1 else None, "bars")


def _same(runs: list, attr: str, why: str) -> None:
    values = {getattr(r, attr) for r in runs}
    if len(values) > 1:
        listing = "; ".join(f"{r.path}: {attr}={getattr(r, attr)}" for r in runs)
        raise ConfigError(f"{why} ({listing})")
