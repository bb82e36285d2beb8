"""GSMFlow's ablation (Tab. III) on any dataset, through the runner's full protocol.

Seven rows, each a ``method.variant`` (``unseen.methods.gsmflow.VARIANTS``) on top of
``configs/gsmflow/<DATASET>.yaml``, ``--config`` and ``--set``; each row is one ``unseen run``
(validation selection, then the seeds on test) in its own folder under ``--out``
(``OUT/<variant>``), so the command resumes where it stopped, skips finished rows, and
``unseen bench`` can import every row as a run. Rows whose folder already holds results from
elsewhere can be linked with ``--reuse VARIANT=FOLDER`` (e.g. the 3-seed FLO runs).

    IZF w/o constraints       izf-prior       IZF's conditioning: f(x) = [a_hat, z], prior
                                              N([s a, 0], I), s = IZF's semantic_scale for
                                              the dataset; no RP, VP, EM, L_proto
    GSMFlow w/o constraints   no-constraints  a in every coupling; no RP, VP, EM, L_proto
    GSMFlow w/o EM&VP         no-em-vp
    GSMFlow w/o EM&RP         no-em-rp
    GSMFlow w/o EM            no-em           (the conference version)
    GSMFlow w/o VP            no-vp
    GSMFlow                   full

At the end it prints the table (GZSL U, S, H, calibrated H and CZSL T1, mean ± std over the
seeds) and writes ``table.md`` and ``table.json``; ``--reference NAME=results.json`` adds
rows of other methods' finished runs.

Example (FLO, fast config):

    /work/heavy .venv/bin/python benchmarks/gsmflow_ablation.py --dataset FLO \\
        --data-root ../shared/data/xlsa17 --set data.features=effnet_lite0.mat \\
        --config configs/gsmflow/FLO-fast.yaml --seeds 0 --out runs/gsmflow-ablation-flo \\
        --reference f-CLSWGAN=runs/clswgan-flo-fast/results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from unseen.config import parse_set, resolve_run_config
from unseen.eval.results import format_mean_std
from unseen.runner import run

ROWS: list[tuple[str, str]] = [
    ("IZF w/o constraints", "izf-prior"),
    ("GSMFlow w/o constraints", "no-constraints"),
    ("GSMFlow w/o EM&VP", "no-em-vp"),
    ("GSMFlow w/o EM&RP", "no-em-rp"),
    ("GSMFlow w/o EM", "no-em"),
    ("GSMFlow w/o VP", "no-vp"),
    ("GSMFlow", "full"),
]
KEYS = ("u", "s", "h", "h_cal", "t1")


def summary_of(report: dict[str, Any]) -> dict[str, Any]:
    s = report["summary"]
    out = {k: s[k] for k in ("t1", "s", "u", "h") if k in s}
    for key in ("h_cal", "calibrated_h", "h_calibrated"):
        if key in s:
            out["h_cal"] = s[key]
    return out


def izf_semantic_scale(dataset: str) -> float:
    """IZF's ``semantic_scale`` for ``dataset`` (its shipped config, else 1): the izf-prior
    row conditions as IZF does, class vectors scaled in the prior mean."""
    return float(resolve_run_config("izf", dataset).method_params.get("semantic_scale", 1.0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", default="")
    p.add_argument("--config", default=None)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--variants", nargs="+", default=[v for _, v in ROWS])
    p.add_argument("--reuse", action="append", default=[], metavar="VARIANT=FOLDER")
    p.add_argument("--reference", action="append", default=[], metavar="NAME=RESULTS_JSON")
    args = p.parse_args()
    out = Path(args.out)
    reuse = dict(item.split("=", 1) for item in args.reuse)
    table: dict[str, dict[str, Any]] = {}
    for title, variant in ROWS:
        if variant not in args.variants:
            continue
        folder = Path(reuse.get(variant, out / variant))
        done = folder / "results.json"
        if done.exists():
            report = json.loads(done.read_text())
        else:
            extra = [f"method.variant={variant}"]
            if variant == "izf-prior":
                extra.append(f"method.prior_scale={izf_semantic_scale(args.dataset)}")
            cfg = resolve_run_config(
                "gsmflow",
                args.dataset,
                data_root=args.data_root,
                config_file=args.config,
                overrides=parse_set([*extra, *args.set]),
                seeds=args.seeds,
                device=args.device,
            )
            print(f"== {title} ({variant}) -> {folder}", flush=True)
            report = run(cfg, folder, echo=False)
        table[title] = {"variant": variant, "folder": str(folder), **summary_of(report)}
    for item in args.reference:
        name, path = item.split("=", 1)
        table[name] = {
            "variant": "reference",
            "folder": path,
            **summary_of(json.loads(Path(path).read_text())),
        }
    lines = [
        f"GSMFlow ablation (Tab. III) on {args.dataset}, seeds {args.seeds}; per-class top-1, "
        "mean ± std over seeds",
        "",
        "| method | U | S | H | calibrated H | CZSL T1 |",
        "|---|---|---|---|---|---|",
    ]
    for title, row in table.items():
        lines.append(f"| {title} | " + " | ".join(format_mean_std(row.get(k)) for k in KEYS) + " |")
    text = "\n".join(lines)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text + "\n")
    (out / "table.json").write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
