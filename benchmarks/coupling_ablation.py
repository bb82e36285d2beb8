"""Table 2 of the TL-Coupling paper: the ablation S1..S4, each through the full protocol.

    python benchmarks/coupling_ablation.py --dataset FLO --data-root ../shared/data/xlsa17 \\
        --set data.features=effnet_lite0.mat --config configs/tlcoupling/FLO-fast.yaml \\
        --out runs/tlc-ablation-flo [--reference runs/clswgan-flo-fast/results.json]

Each variant is one ``unseen run tlcoupling`` (validation selection on seen-class data, then
every seed on test) into ``OUT/S1`` .. ``OUT/S4``; finished variants are reused, killed ones
resume. Variants (paper Sec. 5):

* S1 generative module only (alpha1 = alpha2 = gamma = 0, recognition on x);
* S2 S1 + inference module + joint maximisation (gamma = 0, recognition on x);
* S3 S2 + coupled features [x, h_hat, f] in the recognition module (gamma = 0);
* S4 S3 + Wasserstein alignment (the config's gamma, the full model).

The table (markdown, also written to ``OUT/table.md``) gives T1, S, U, H, calibrated H and
AUSUC as mean ± std over seeds, beside an optional reference ``results.json`` (f-CLSWGAN).
``--validate-only`` runs only the validation selections (test never touched) and tabulates the
chosen validation numbers instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unseen.config import parse_set, resolve_run_config
from unseen.runner import run

VARIANTS: dict[str, dict[str, object]] = {
    "S1": {"alpha1": 0.0, "alpha2": 0.0, "gamma": 0.0, "coupled_features": False},
    "S2": {"gamma": 0.0, "coupled_features": False},
    "S3": {"gamma": 0.0, "coupled_features": True},
    "S4": {"coupled_features": True},
}
LABELS = {
    "S1": "S1 generative module only",
    "S2": "S2 = S1 + inference module + joint max.",
    "S3": "S3 = S2 + coupled features in recognition",
    "S4": "S4 = S3 + Wasserstein alignment",
}
KEYS = ("t1", "s", "u", "h", "h_cal", "ausuc")


def _cell(summary: dict, key: str) -> str:
    if key not in summary:
        return "-"
    m = summary[key]
    return f"{m['mean']:.1f} ± {m['std']:.1f}"


def table(rows: list[tuple[str, dict]], validation: bool = False) -> str:
    head = "| model | " + " | ".join(k.upper() for k in KEYS) + " |"
    lines = [head, "|" + "---|" * (len(KEYS) + 1)]
    for label, summary in rows:
        if validation:
            cells = [f"{summary[k]:.1f}" if k in summary else "-" for k in KEYS]
        else:
            cells = [_cell(summary, k) for k in KEYS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", default="")
    p.add_argument("--config", help="YAML overrides on top of configs/tlcoupling/<DATASET>.yaml")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", required=True)
    p.add_argument("--reference", help="a results.json to show beside (e.g. f-CLSWGAN's)")
    p.add_argument("--validate-only", action="store_true")
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)

    out = Path(args.out)
    rows: list[tuple[str, dict]] = []
    for name in args.variants:
        overrides = parse_set(args.set)
        overrides.setdefault("method", {}).update(VARIANTS[name])
        cfg = resolve_run_config(
            "tlcoupling",
            args.dataset,
            data_root=args.data_root,
            config_file=args.config,
            overrides=overrides,
            seeds=args.seeds,
        )
        vdir = out / name
        done = vdir / ("validation/selection.json" if args.validate_only else "results.json")
        if done.exists() and not args.force:
            report = json.loads(done.read_text())
            print(f"{name}: reusing {done}", flush=True)
        else:
            print(f"{name}: running into {vdir}", flush=True)
            report = run(cfg, vdir, force=args.force, validate_only=args.validate_only)
        if args.validate_only:
            selection = report.get("validation", report)
            choice = selection["choice"]
            chosen = choice["validation"]
            rows.append((LABELS[name], {**chosen, "h_cal": chosen["h_cal_best"]}))
        else:
            rows.append((LABELS[name], report["summary"]))
    if args.reference and not args.validate_only:
        if Path(args.reference).exists():
            ref = json.loads(Path(args.reference).read_text())
            rows.append((f"reference: {ref['method']}", ref["summary"]))
        else:
            print(f"reference {args.reference} does not exist (yet): not shown")
    text = table(rows, validation=args.validate_only)
    what = "validation (chosen point)" if args.validate_only else "test, mean ± std over seeds"
    text = f"TL-Coupling ablation (Table 2) on {args.dataset}, {what}\n\n{text}\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / ("table-validation.md" if args.validate_only else "table.md")).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
