"""IZF's component analysis (Tab. 3) on any dataset, through the runner's full protocol.

Seven rows (the six baselines of Sec. 6.5 and the full model) x two classifiers (NBC =
``classifier.kind: method``, Softmax); each cell is one ``unseen run`` (validation selection,
then the seeds on test) in its own folder under ``--out``, so the command resumes where it
stopped and skips finished cells. At the end it prints Tab. 3 (S, U, H of GZSL, mean over
seeds; T1 as well) and writes ``table.md`` and ``table.json``.

Rows, as config variants on top of ``configs/izf/<DATASET>.yaml``:

    1 CVAE + L_C + L_iMMD    method cvae, lambda_c 1, lambda_immd 0.1 (same scale options)
    2 w/o L_C and L_iMMD     lambda_c 0, lambda_immd 0
    3 w/o L_C                lambda_c 0
    4 w/o L_iMMD             lambda_immd 0
    5 positive MMD           lambda_immd -1 (as the paper: "setting lambda_3 = -1")
    6 Gaussian kernel        kernel gaussian
    IZF (full model)

Example (the FLO table of the README):

    .venv/bin/python benchmarks/izf_ablation.py --dataset FLO \\
        --data-root ../shared/data/xlsa17 --set data.features=effnet_lite0.mat \\
        --seeds 0 --out runs/izf-ablation-flo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from unseen.config import parse_set, resolve_run_config
from unseen.eval.results import format_mean_std
from unseen.runner import run

ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("1 CVAE + L_C + L_iMMD", "cvae", {"lambda_c": 1.0, "lambda_immd": 0.1}),
    ("2 Without L_C and L_iMMD", "izf", {"lambda_c": 0.0, "lambda_immd": 0.0}),
    ("3 Without L_C", "izf", {"lambda_c": 0.0}),
    ("4 Without L_iMMD", "izf", {"lambda_immd": 0.0}),
    ("5 Positive MMD", "izf", {"lambda_immd": -1.0}),
    ("6 IM kernel -> Gaussian kernel", "izf", {"kernel": "gaussian"}),
    ("IZF (full model)", "izf", {}),
]

# Keys of the IZF config that the CVAE shares (the rest of configs/izf/*.yaml is IZF-only).
CVAE_SHARED = ("epochs", "batch_size", "kernel", "kernel_scale", "mmd_estimator", "loss_scale")


def cell_config(method: str, variant: dict, kind: str, args) -> Any:
    """The run config of one cell: configs/izf/<DATASET>.yaml + --set + the row's variant."""
    izf = resolve_run_config(
        "izf", args.dataset, data_root=args.data_root, overrides=parse_set(args.set)
    )
    params = dict(izf.method_params)
    if method == "cvae":
        params = {k: v for k, v in params.items() if k in CVAE_SHARED}
    params.update(variant)
    merged = {
        "method": params,
        "data": {k: v for k, v in izf.data.__dict__.items() if k not in ("dataset", "root")},
        "classifier": {**izf.classifier.__dict__, "kind": kind},
        "selection": izf.selection.__dict__,
    }
    return resolve_run_config(
        method, args.dataset, data_root=args.data_root, overrides=merged, seeds=args.seeds
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", default="")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", required=True)
    p.add_argument("--rows", default="1234567", help="which rows (1-6, 7 = full model)")
    p.add_argument(
        "--classifiers",
        nargs="+",
        default=["nbc", "softmax"],
        choices=["nbc", "softmax"],
        help="which columns to run (a column not run is read from --out if finished there)",
    )
    args = p.parse_args()
    out = Path(args.out)
    table: dict[str, dict[str, Any]] = {}
    for i, (title, method, variant) in enumerate(ROWS, start=1):
        if str(i) not in args.rows:
            continue
        table[title] = {}
        for kind, col in (("method", "NBC"), ("softmax", "Softmax")):
            cfg = cell_config(method, variant, kind, args)
            folder = out / f"row{i}-{col.lower()}"
            done = folder / "results.json"
            if done.exists():
                report = json.loads(done.read_text())
            elif col.lower() not in args.classifiers:
                continue
            else:
                print(f"== {title} / {col} -> {folder}", flush=True)
                report = run(cfg, folder, echo=False)
            s = report["summary"]
            table[title][col] = {k: s[k] for k in ("t1", "s", "u", "h", "h_cal") if k in s}
    lines = [
        f"IZF component analysis (Tab. 3) on {args.dataset}, seeds {args.seeds}; "
        "GZSL S/U/H and CZSL T1, mean ± std",
        "",
        "| baseline | NBC S | NBC U | NBC H | NBC H cal | NBC T1 "
        "| Softmax S | Softmax U | Softmax H | Softmax H cal | Softmax T1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for title, cols in table.items():
        cells = []
        for col in ("NBC", "Softmax"):
            r = cols.get(col, {})
            for k in ("s", "u", "h", "h_cal", "t1"):
                cells.append(format_mean_std(r.get(k)))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text + "\n")
    (out / "table.json").write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
