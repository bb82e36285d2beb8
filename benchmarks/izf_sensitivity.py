"""IZF's hyper-parameter sensitivity (Fig. 5 a-d) as a grid on the VALIDATION problem.

Each point is one ``unseen run --validate-only`` (the test split is never scored) with one
value changed from ``configs/izf/<DATASET>.yaml``: lambda_1, lambda_2, lambda_3 over
{0.1, 0.5, 1, 1.5, 2} (Fig. 5a-c) and the number of permutation-coupling blocks (Fig. 5d).
Every point has its own folder under ``--out`` (resumable; finished points are skipped).
The validation H (and CZSL T1) of the configuration the runner selects is plotted, one panel
per hyper-parameter, to ``fig5.png``; the numbers go to ``fig5.json``.

    .venv/bin/python benchmarks/izf_sensitivity.py --dataset FLO \\
        --data-root ../shared/data/xlsa17 --set data.features=effnet_lite0.mat \\
        --out runs/izf-fig5-flo [--classifier method]   # method = IZF-NBC
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unseen.config import parse_set, resolve_run_config
from unseen.studies.grid import plot_validation_grid, validation_point

GRID = {
    "lambda_flow": [0.1, 0.5, 1.0, 1.5, 2.0],
    "lambda_c": [0.1, 0.5, 1.0, 1.5, 2.0],
    "lambda_immd": [0.1, 0.5, 1.0, 1.5, 2.0],
    "n_blocks": [1, 2, 3, 4, 5, 6],
}
TITLES = {
    "lambda_flow": "(a) lambda_1 (L_Flow)",
    "lambda_c": "(b) lambda_2 (L_C)",
    "lambda_immd": "(c) lambda_3 (L_iMMD)",
    "n_blocks": "(d) permutation-coupling blocks",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", default="")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--classifier", default="softmax", choices=["softmax", "method"])
    p.add_argument("--params", nargs="+", default=list(GRID), choices=list(GRID))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    results: dict[str, list[dict]] = {}
    for param in args.params:
        results[param] = []
        for value in GRID[param]:
            overrides = parse_set(args.set)
            overrides.setdefault("method", {})[param] = value
            overrides.setdefault("classifier", {})["kind"] = args.classifier
            cfg = resolve_run_config(
                "izf",
                args.dataset,
                data_root=args.data_root,
                overrides=overrides,
                seeds=[args.seed],
            )
            folder = out / f"{param}={value}"
            results[param].append(validation_point(cfg, folder, value, param))
    out.mkdir(parents=True, exist_ok=True)
    (out / "fig5.json").write_text(json.dumps(results, indent=2))
    _plot(out / "fig5.png", results, args)
    print(f"figure: {out / 'fig5.png'}   numbers: {out / 'fig5.json'}")


def _plot(path: Path, results: dict[str, list[dict]], args) -> None:
    name = "IZF-NBC" if args.classifier == "method" else "IZF-Softmax"
    suptitle = f"{name} on the {args.dataset} validation problem (Fig. 5)"
    plot_validation_grid(path, results, TITLES, suptitle)


if __name__ == "__main__":
    main()
