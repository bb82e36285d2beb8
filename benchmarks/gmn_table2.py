"""GMN's Table 2 on one dataset: the generator objectives and the real-only baseline.

Every row goes through the same protocol as ``unseen run`` (choices on validation built from
seen training data, then seeds on test): one runner output folder per row under ``--out``,
and the table (mean ± std over seeds) in ``OUT/table2.md`` and ``OUT/table2.json``. As in
the paper's Table 2, separate synthetic counts per task (n_zsl, n_gzsl-u, n_gzsl-s) are chosen
on validation (rows marked ‡) beside the single all-task model (unmarked rows); turn that off
with ``--set selection.per_task_counts=false``.

    python benchmarks/gmn_table2.py --dataset FLO --data-root ../shared/data/xlsa17 \\
        --config configs/gmn/FLO-fast.yaml --set data.features=effnet_lite0.mat \\
        --seeds 0 1 2 --out runs/gmn-table2-flo

Rows (``--variants``; default all of Table 2):

    real-only    bilinear classifier on real seen features only (no generator)
    wgan+cls     L^S_WGAN + L_CLS (pre-trained classifier loss)
    cwgan        L^S_cWGAN
    wgan+gm      L^S_WGAN + L_GM
    cwgan+gm     L^S_cWGAN + L_GM  (GMN)
    wgan-su+gm   L^{S+U}_WGAN + L_GM  (TRANSDUCTIVE: uses unlabeled test features)
    cwgan+cls    L^S_cWGAN + L_CLS (Table 3's f-CLSWGAN-style baseline; not in the default)

Rows finished earlier are read back, not recomputed (the runner resumes unfinished ones), so
several invocations with disjoint ``--variants`` may share one ``--out`` and run in parallel;
``--table-only`` prints the table of what is there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from unseen.config import RunConfig, parse_set, resolve_run_config
from unseen.data.task import ZSLTask
from unseen.eval.results import EvalResult, summarize
from unseen.methods.gmn import VARIANTS
from unseen.runner import build_classifier, load_dataset, run

TABLE2 = ["real-only", "wgan+cls", "cwgan", "wgan+gm", "cwgan+gm", "wgan-su+gm"]
ROWS = {
    "real-only": "Train only with real samples (D_s)",
    "wgan+cls": "L^S_WGAN + L_CLS",
    "cwgan": "L^S_cWGAN",
    "wgan+gm": "L^S_WGAN + L_GM",
    "cwgan+gm": "L^S_cWGAN + L_GM",
    "wgan-su+gm": "L^{S+U}_WGAN + L_GM (transductive)",
    "cwgan+cls": "L^S_cWGAN + L_CLS",
    "wgan": "L^S_WGAN",
    "gm": "L_GM",
}


def variant_config(variant: str, args: argparse.Namespace, **extra: dict) -> RunConfig:
    """The run config of one row: the user's config + --set, then the row's objective."""
    overrides = {"selection": {"per_task_counts": True}}  # Table 2 reports per-task models
    for section, values in parse_set(args.set).items():
        overrides.setdefault(section, {}).update(values)
    for section, values in extra.items():
        overrides.setdefault(section, {}).update(values)
    if variant in VARIANTS:
        overrides.setdefault("method", {}).update(VARIANTS[variant])
        overrides.setdefault("data", {})["transductive"] = variant == "wgan-su+gm"
    return resolve_run_config(
        "gmn",
        args.dataset,
        data_root=args.data_root,
        config_file=args.config,
        overrides=overrides,
        seeds=args.seeds,
        device=args.device,
    )


def real_only(cfg: RunConfig, out: Path, echo: bool = True) -> dict[str, Any]:
    """Row 1: the bilinear classifier on real seen features; its schedule and gamma chosen on
    validation exactly as for the generative rows, then one fit per seed, scored on test."""
    if (out / "results.json").exists():
        return json.loads((out / "results.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(cfg.data)
    task = ZSLTask(
        ds,
        feature_transform=cfg.data.feature_transform,
        semantic_transform=cfg.data.semantic_transform,
    )
    ccfg, sel = cfg.classifier, cfg.selection
    seed0 = cfg.seeds[0]
    val = task.validation(holdout=sel.holdout, seed=seed0)
    wanted = sorted(sel.classifier_epochs) or [ccfg.epochs]
    records: dict[int, EvalResult] = {}

    def record(epoch: int, clf) -> None:
        if epoch in wanted:
            records[epoch] = val.evaluate(clf)

    data = val.train
    run_cfg = type(ccfg)(**{**ccfg.__dict__, "epochs": max(wanted)})
    build_classifier(run_cfg, cfg.device, seed0).fit(
        data.features, data.labels, val.classes, data.semantics[val.classes], epoch_callback=record
    )
    key = (
        (lambda r: r.extra.get("h_at_best_gamma", r.h))
        if sel.criterion == "h_cal"
        else (lambda r: r.h)
    )
    best_epochs = max(records, key=lambda e: key(records[e]))
    gamma = records[best_epochs].best_gamma if sel.calibrate else None
    final = type(ccfg)(**{**ccfg.__dict__, "epochs": best_epochs})
    per_seed = {}
    for seed in cfg.seeds:
        clf = build_classifier(final, cfg.device, seed).fit(
            task.train.features,
            task.train.labels,
            task.classes,
            task.train.semantics[task.classes],
        )
        res = task.evaluate(clf, gamma=gamma)  # CZSL from the unseen columns of the same f
        per_seed[str(seed)] = {"seed": seed, "result": res.to_dict()}
        if echo:
            print(f"[real-only seed {seed}] {res.line()}", flush=True)
    report = {
        "method": "real-only (bilinear on real seen features)",
        "dataset": ds.name,
        "task": task.describe(),
        "config": cfg.to_dict(),
        "validation": {
            "choice": {"classifier_epochs": best_epochs, "gamma": gamma},
            "records": {e: r.to_dict() for e, r in records.items()},
        },
        "seeds": per_seed,
        "summary": summarize([EvalResult.from_dict(e["result"]) for e in per_seed.values()]),
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    return report


def table(out: Path, variants: list[str]) -> str:
    rows, payload = [], {}
    head = "| objective | T1 | U | S | H | H (calibrated) | transductive |"
    rows += [head, "|---|---|---|---|---|---|---|"]
    for v in variants:
        path = out / v / "results.json"
        if not path.exists():
            continue
        rep = json.loads(path.read_text())
        s = rep["summary"]

        def f(k: str, s=s) -> str:
            return f"{s[k]['mean']:.1f} ± {s[k]['std']:.1f}" if k in s else "-"

        trans = bool(rep.get("task", {}).get("transductive"))
        n = len(s["h"]["values"])
        rows.append(
            f"| {ROWS.get(v, v)} | {f('t1')} | {f('u')} | {f('s')} | {f('h')} | {f('h_cal')} "
            f"| {'yes' if trans else 'no'} |"
        )
        if "per_task" in s:  # the paper's double-dagger rows: one model per task
            pt = s["per_task"]

            def g(k: str, pt=pt) -> str:
                return f"{pt[k]['mean']:.1f} ± {pt[k]['std']:.1f}"

            rows.append(
                f"| {ROWS.get(v, v)} ‡ (per-task counts) | {g('t1')} | {g('u')} | {g('s')} "
                f"| {g('h')} | - | {'yes' if trans else 'no'} |"
            )
        payload[v] = {"summary": s, "seeds": n, "transductive": trans}
    text = "\n".join(rows)
    (out / "table2.md").write_text(text + "\n")
    (out / "table2.json").write_text(json.dumps(payload, indent=2))
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", default="")
    p.add_argument("--config", help="extra YAML on top of configs/gmn/<DATASET>.yaml")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", nargs="+", default=TABLE2, choices=["real-only", *VARIANTS])
    p.add_argument("--out", help="default runs/gmn-table2-<dataset>")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out or f"runs/gmn-table2-{Path(args.dataset).stem}")
    if not args.table_only:
        for v in args.variants:
            t0 = time.time()
            print(f"== {v}: {ROWS.get(v, v)}", flush=True)
            cfg = variant_config(v, args)
            if v == "real-only":
                real_only(cfg, out / v)
            elif not (out / v / "results.json").exists():
                run(cfg, out / v)
            print(f"== {v} done in {time.time() - t0:.0f} s", flush=True)
    print(table(out, [v for v in [*TABLE2, "cwgan+cls", "wgan", "gm"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
