"""GSMFlow's hyper-parameter sensitivity (Fig. 7 a-f) as grids on the VALIDATION problem.

Each point is one ``unseen run --validate-only`` (the test split is never scored) with one
value changed from ``configs/gsmflow/<DATASET>.yaml`` (+ ``--config``, ``--set``), over the
paper's grids: (a) entropy weight lambda_1, (b) perturbation weight lambda_2, (c) prototype
weight lambda_3, (d) dimension of a^g, (e) coupling blocks, (f) mining steps. Every point has
its own folder under ``--out`` (resumable; finished points are skipped). The validation H,
calibrated H and CZSL T1 of the configuration the runner selects are plotted, one panel per
hyper-parameter, to ``fig7.png``; the numbers go to ``fig7.json``. ``--values`` replaces a
grid (with a single ``--params``) to keep a CPU run short.

    /work/heavy .venv/bin/python benchmarks/gsmflow_sensitivity.py --dataset FLO \\
        --data-root ../shared/data/xlsa17 --set data.features=effnet_lite0.mat \\
        --config configs/gsmflow/FLO-fast.yaml --params perturbation --out runs/gsmflow-fig7-flo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unseen.config import parse_set, resolve_run_config
from unseen.studies.grid import plot_validation_grid, validation_point

GRID = {
    "entropy_weight": [0.1, 1.0, 5.0, 10.0, 20.0],
    "perturbation": [0.02, 0.05, 0.15, 0.3, 0.5],
    "lambda_proto": [1.0, 3.0, 10.0, 20.0, 30.0],
    "semantic_out": [128, 256, 512, 1024, 2048],
    "n_blocks": [1, 3, 5, 10, 20],
    "mining_steps": [5, 10, 20, 30, 40],
}
TITLES = {
    "entropy_weight": "(a) entropy weight lambda_1",
    "perturbation": "(b) perturbation weight lambda_2",
    "lambda_proto": "(c) prototype loss weight lambda_3",
    "semantic_out": "(d) a^g dimension",
    "n_blocks": "(e) coupling blocks",
    "mining_steps": "(f) mining steps",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", default="")
    p.add_argument("--config", default=None)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--params", nargs="+", default=list(GRID), choices=list(GRID))
    p.add_argument("--values", nargs="+", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.values is not None and len(args.params) != 1:
        p.error("--values needs exactly one --params")
    out = Path(args.out)
    results: dict[str, list[dict]] = {}
    for param in args.params:
        results[param] = []
        grid = args.values if args.values is not None else GRID[param]
        for value in grid:
            if isinstance(GRID[param][0], int):
                value = int(value)
            overrides = parse_set(args.set)
            overrides.setdefault("method", {})[param] = value
            cfg = resolve_run_config(
                "gsmflow",
                args.dataset,
                data_root=args.data_root,
                config_file=args.config,
                overrides=overrides,
                seeds=[args.seed],
            )
            folder = out / f"{param}={value}"
            results[param].append(validation_point(cfg, folder, value, param))
    out.mkdir(parents=True, exist_ok=True)
    (out / "fig7.json").write_text(json.dumps(results, indent=2))
    _plot(out / "fig7.png", results, args)
    print(f"figure: {out / 'fig7.png'}   numbers: {out / 'fig7.json'}")


def _plot(path: Path, results: dict[str, list[dict]], args) -> None:
    plot_validation_grid(
        path, results, TITLES, f"GSMFlow on the {args.dataset} validation problem (Fig. 7)"
    )


if __name__ == "__main__":
    main()
