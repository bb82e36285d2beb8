"""GMN's Fig. 3 and Fig. 5 as commands, on the VALIDATION problem (never on test).

Fig. 3 -- effect of the number of synthetic features per unseen class on T1, U and S, for
the generators trained with L^S_WGAN + L_GM and L^{S+U}_WGAN + L_GM (transductive):

    python benchmarks/gmn_figures.py fig3 --dataset FLO --data-root ../shared/data/xlsa17 \\
        --config configs/gmn/FLO-fast.yaml --set data.features=effnet_lite0.mat \\
        --counts 10 25 50 150 200 250 --out runs/gmn-fig3-flo

Fig. 5 -- unseen accuracy U over training epochs for the four generator objectives
L^S_WGAN, L_GM, L^S_WGAN + L_GM and L^{S+U}_WGAN + L_GM (the paper shows SUN):

    python benchmarks/gmn_figures.py fig5 --dataset SUN --data-root ../shared/data/xlsa17 \\
        --config my-small-sun.yaml --eval-every 1 --out runs/gmn-fig5-sun

Each objective is a ``unseen run --validate-only`` of the runner (resumable; its records land
in ``OUT/<variant>/validation/records.json``); the figure is ``OUT/fig3.png`` / ``fig5.png``
with the plotted numbers in ``OUT/fig3.json`` / ``fig5.json``. The paper plots test numbers;
here the pseudo-unseen classes of the validation problem stand in for the unseen ones, so
the figures can be made without touching test data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gmn_table2 import ROWS, variant_config
from unseen.runner import run


def _records(args, variant: str, out: Path, **sections) -> list[dict]:
    cfg = variant_config(variant, args, **sections)
    path = out / variant / "validation" / "selection.json"
    if not path.exists():
        run(cfg, out / variant, validate_only=True, force=args.force)
    return json.loads(path.read_text())["records"]


def fig3(args) -> dict:
    out = Path(args.out)
    data = {}
    for v in args.variants:
        recs = _records(args, v, out, selection={"n_synthetic": args.counts})
        # the generator epoch and classifier schedule best on validation (any count) ...
        key = "h_cal_best"
        best = max(recs, key=lambda r: r.get(key, r["h"]))
        sub = [
            r
            for r in recs
            if r["epoch"] == best["epoch"] and r["classifier_epochs"] == best["classifier_epochs"]
        ]
        # ... then the curve over the synthetic counts at that schedule
        sub.sort(key=lambda r: r["n_synthetic"])
        data[v] = {
            "epoch": best["epoch"],
            "classifier_epochs": best["classifier_epochs"],
            "n": [r["n_synthetic"] for r in sub],
            **{m: [r[m] for r in sub] for m in ("t1", "u", "s", "h")},
        }
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(data), figsize=(5 * len(data), 3.6), squeeze=False)
    for ax, (v, d) in zip(axes[0], data.items()):
        for m, label in (("t1", "ZSL T1"), ("u", "u"), ("s", "s")):
            ax.plot(d["n"], d[m], marker="o", label=label)
        ax.set_xlabel("number of synthetic features per class")
        ax.set_ylabel("accuracy on validation (%)")
        ax.set_title(f"{args.dataset}: {ROWS.get(v, v)}", fontsize=9)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "fig3.png", dpi=120)
    (out / "fig3.json").write_text(json.dumps(data, indent=2))
    return data


def fig5(args) -> dict:
    out = Path(args.out)
    data = {}
    sel = {"eval_every": args.eval_every}
    if args.counts:
        sel["n_synthetic"] = args.counts[:1]
    for v in args.variants:
        recs = _records(args, v, out, selection=sel)
        by_epoch: dict[int, float] = {}
        for r in recs:  # best classifier schedule at each generator epoch
            by_epoch[r["epoch"]] = max(by_epoch.get(r["epoch"], -1.0), r["u"])
        epochs = sorted(by_epoch)
        data[v] = {"epoch": epochs, "u": [by_epoch[e] for e in epochs]}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for v, d in data.items():
        ax.plot(d["epoch"], d["u"], marker=".", label=ROWS.get(v, v))
    ax.set_xlabel("epoch")
    ax.set_ylabel("u accuracy on validation (%)")
    ax.set_title(f"{args.dataset}: unseen (pseudo-unseen) accuracy during training", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig5.png", dpi=120)
    (out / "fig5.json").write_text(json.dumps(data, indent=2))
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("figure", choices=["fig3", "fig5"])
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", default="")
    p.add_argument("--config")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", nargs="+", help="objectives (see gmn_table2.py)")
    p.add_argument("--counts", type=int, nargs="+", help="synthetic features per class")
    p.add_argument("--eval-every", type=int, default=1, help="fig5: epochs between points")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true", help="recompute finished variants")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    args.seeds = [0]  # validation only: the first seed's problem
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.figure == "fig3":
        args.variants = args.variants or ["wgan+gm", "wgan-su+gm"]
        args.counts = args.counts or [10, 25, 50, 150, 200, 250]
        data = fig3(args)
    else:
        args.variants = args.variants or ["wgan", "gm", "wgan+gm", "wgan-su+gm"]
        data = fig5(args)
    print(json.dumps(data, indent=1))
    print(f"figure: {Path(args.out) / (args.figure + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
