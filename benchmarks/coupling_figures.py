"""Figures of the TL-Coupling paper's analysis (Fig. 2 a-c, 2d right, 2f), on validation data.

Hyper-parameter sweeps (Fig. 2a alpha1, 2b alpha2, 2c gamma): one ``unseen run tlcoupling
--validate-only`` per value (the test split is never scored), plotting the validation S, U and
H of the point the protocol selects (epochs, classifier epochs) against the value::

    python benchmarks/coupling_figures.py sweep --param alpha2 --values 0.1 1 10 \\
        --dataset FLO --data-root ../shared/data/xlsa17 --set data.features=effnet_lite0.mat \\
        --config configs/tlcoupling/FLO-fast.yaml --out runs/tlc-fig2b-flo

Number of synthetic features (Fig. 2f): ONE validation run whose ``selection.n_synthetic``
lists the counts; S, U, H per count at the selected generator and classifier epochs::

    python benchmarks/coupling_figures.py nsyn --values 50 150 300 600 1200 --dataset FLO ...

Training loss curves (Fig. 2d right) from the per-epoch losses every run stores
(``seed_*/metrics.json`` "history", or a validation checkpoint)::

    python benchmarks/coupling_figures.py curves runs/tlc-ablation-flo-fast/S4 --out fig.png

Each command writes a PNG and the plotted numbers as JSON next to it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unseen.config import parse_set, resolve_run_config
from unseen.runner import run

PARAMS = {"alpha1": "Fig. 2a", "alpha2": "Fig. 2b", "gamma": "Fig. 2c"}


def _plot(xs, series: dict[str, list[float]], xlabel: str, title: str, path: Path, logx=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, ys in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    if logx:
        ax.set_xscale("symlog", linthresh=min([x for x in xs if x > 0] or [1.0]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)" if "H" in series else "loss")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    path.with_suffix(".json").write_text(json.dumps({"x": xs, **series}, indent=2))
    print(f"wrote {path} and {path.with_suffix('.json')}")


def _validate(args, overrides: dict, out: Path) -> dict:
    cfg = resolve_run_config(
        "tlcoupling",
        args.dataset,
        data_root=args.data_root,
        config_file=args.config,
        overrides=overrides,
        seeds=[args.seed],
    )
    done = out / "validation" / "selection.json"
    if done.exists():
        return json.loads(done.read_text())
    return run(cfg, out, validate_only=True, echo=False)["validation"]


def cmd_sweep(args) -> None:
    rows = []
    for v in args.values:
        overrides = parse_set(args.set)
        overrides.setdefault("method", {})[args.param] = v
        sel = _validate(args, overrides, Path(args.out) / f"{args.param}={v:g}")
        val = sel["choice"]["validation"]
        rows.append(val)
        print(
            f"{args.param}={v:g}: S {val['s']:.1f} U {val['u']:.1f} H {val['h']:.1f} "
            f"(H at best gamma {val['h_cal_best']:.1f})",
            flush=True,
        )
    series = {
        "S": [r["s"] for r in rows],
        "U": [r["u"] for r in rows],
        "H": [r["h"] for r in rows],
        "H (calibrated)": [r["h_cal_best"] for r in rows],
    }
    title = f"{PARAMS[args.param]}: {args.param} on {args.dataset} (validation)"
    _plot(list(args.values), series, args.param, title, Path(args.out) / "figure.png", True)


def cmd_nsyn(args) -> None:
    overrides = parse_set(args.set)
    overrides.setdefault("selection", {})["n_synthetic"] = [int(v) for v in args.values]
    sel = _validate(args, overrides, Path(args.out))
    ch = sel["choice"]
    recs = [
        r
        for r in sel["records"]
        if r["epoch"] == ch["epochs"] and r["classifier_epochs"] == ch["classifier_epochs"]
    ]
    recs.sort(key=lambda r: r["n_synthetic"])
    xs = [r["n_synthetic"] for r in recs]
    series = {
        "S": [r["s"] for r in recs],
        "U": [r["u"] for r in recs],
        "H": [r["h"] for r in recs],
        "H (calibrated)": [r["extra"].get("h_at_best_gamma", r["h"]) for r in recs],
    }
    title = (
        f"Fig. 2f: synthetic features per unseen class, {args.dataset} (validation, "
        f"epoch {ch['epochs']})"
    )
    _plot(xs, series, "synthetic features per class", title, Path(args.out) / "figure.png", True)


def _history(path: Path) -> list[dict]:
    if path.is_file() and path.suffix == ".pt":
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)["history"]
    if path.is_file():
        return json.loads(path.read_text())["history"]
    for cand in sorted(path.glob("seed_*/metrics.json")):
        return json.loads(cand.read_text())["history"]
    # validation/model.pt stays after a run; checkpoint.pt only with --keep-checkpoints
    for ckpt in (path / "validation" / "model.pt", path / "validation" / "checkpoint.pt"):
        if ckpt.exists():
            return _history(ckpt)
    raise SystemExit(f"no training history under {path}")


def cmd_curves(args) -> None:
    keys = args.keys
    series: dict[str, list[float]] = {}
    xs: list[int] = []
    for run_path in args.runs:
        hist = _history(Path(run_path))
        xs = [h["epoch"] for h in hist]
        tag = Path(run_path).name if len(args.runs) > 1 else ""
        for k in keys:
            if k in hist[0]:
                series[f"{tag} {k}".strip()] = [h[k] for h in hist]
    _plot(xs, series, "epoch", "Fig. 2d right: training losses per epoch", Path(args.out))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("sweep", "nsyn"):
        s = sub.add_parser(name)
        s.add_argument("--dataset", required=True)
        s.add_argument("--data-root", default="")
        s.add_argument("--config")
        s.add_argument("--set", action="append", default=[])
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--values", type=float, nargs="+", required=True)
        s.add_argument("--out", required=True)
        if name == "sweep":
            s.add_argument("--param", required=True, choices=list(PARAMS))
    c = sub.add_parser("curves")
    c.add_argument("runs", nargs="+", help="run folders, metrics.json or checkpoint files")
    c.add_argument("--keys", nargs="+", default=["total", "w_gen", "w_inf", "w_joint", "align"])
    c.add_argument("--out", required=True, help="the PNG to write")
    args = p.parse_args(argv)
    {"sweep": cmd_sweep, "nsyn": cmd_nsyn, "curves": cmd_curves}[args.cmd](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
