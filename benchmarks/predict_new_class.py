"""New classes at prediction time on real features: hold out an unseen class, add it back.

From a finished run (default ``runs/clswgan-flo-fast``, seed 0) this script

1. exports the artefact (``unseen export``) and checks that it reproduces the run's test
   S / U / H for that seed (it must: same synthetic features, same classifier seed);
2. for each held-out class c among the unseen classes: removes c from the artefact's
   classifier, adds it back as a NEW class from its semantic vector alone
   (:func:`unseen.predict.add_classes`: generator samples for every class, classifier refit),
   and reports the accuracy on c's test images among all classes, next to the benchmark
   classifier's accuracy on the same images, and the seen / other-unseen accuracy after the
   refit (the cost of refitting without real seen features).

Test images are only scored here, never used to choose anything: every setting is the run's
validation choice. Run it through /work/heavy on a shared machine (about 1-2 min per class).

    python benchmarks/predict_new_class.py --run runs/clswgan-flo-fast --classes 0 5 10 \
        --out runs/predict-flo/new_class.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from unseen.artifact import export_run, load_artifact
from unseen.config import DataConfig
from unseen.data.task import ZSLTask
from unseen.methods.base import config_from_dict
from unseen.predict import add_classes, predict
from unseen.runner import load_dataset


def per_class_acc(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]) * 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="runs/clswgan-flo-fast")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--classes",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="positions in the sorted list of unseen classes to hold out",
    )
    ap.add_argument("--n-synthetic", type=int, help="refit samples per class (default: run's)")
    ap.add_argument("--artifact", help="artefact path (default: RUN/artifact_seed<S>.unseen)")
    ap.add_argument(
        "--mode",
        choices=["predict", "export"],
        default="predict",
        help="predict: refit on generator samples only (unseen predict --new-classes); export: "
        "refit as the runner does, real seen + synthetic (unseen export --new-classes)",
    )
    ap.add_argument("--out", default="runs/predict-flo/new_class.json")
    args = ap.parse_args()

    run = Path(args.run)
    art_path = Path(args.artifact or run / f"artifact_seed{args.seed}.unseen")
    import yaml

    cfg = yaml.safe_load((run / "run.yaml").read_text())
    ds = load_dataset(config_from_dict(DataConfig, cfg["data"], "data"))
    t0 = time.time()
    if not art_path.exists():
        export_run(run, art_path, seed=args.seed, dataset=ds)
    t_export = time.time() - t0
    art = load_artifact(art_path)
    task = ZSLTask(ds, feature_transform=art.feature_transform_name)
    reported = json.loads((run / f"seed_{args.seed}" / "metrics.json").read_text())["result"]
    r = task.evaluate(art.scorer(), gamma=art.gamma)
    check = {
        "artifact": {"s": r.s, "u": r.u, "h": r.h, "h_cal": r.h_cal},
        "run": {k: reported[k] for k in ("s", "u", "h", "h_cal")},
        "export_seconds": round(t_export, 1),
    }
    print(json.dumps(check))

    ts, tu = ds.test_seen, ds.test_unseen
    x_s, y_s = ds.features[ts], ds.labels[ts]
    x_u, y_u = ds.features[tu], ds.labels[tu]
    base_u = predict(art, x_u).ids[:, 0]
    base_s = predict(art, x_s).ids[:, 0]
    unseen = np.unique(y_u)
    rows = []
    for pos in args.classes:
        c = int(unseen[pos])
        t1 = time.time()
        stripped = dataclasses.replace(art, classes=art.classes[art.classes != c])
        new_name = f"{art.class_names[c]} (new)"
        new_id = len(art.class_names)
        if args.mode == "predict":
            grown = add_classes(
                stripped,
                [new_name],
                art.semantics[c : c + 1].numpy(),
                n_synthetic=args.n_synthetic,
            )
        else:  # what `unseen export --new-classes` does, with c removed from the run's classes
            import torch

            from unseen.artifact import fit_final_classifier

            tr = task.train
            keep = tr.unseen_classes[tr.unseen_classes != c]
            train = dataclasses.replace(
                tr,
                semantics=torch.cat([tr.semantics, tr.semantics[c : c + 1]]),
                unseen_classes=torch.cat([keep, torch.tensor([new_id])]),
            )
            classes = torch.cat([art.classes[art.classes != c], torch.tensor([new_id])])
            n = args.n_synthetic or art.n_synthetic
            clf = fit_final_classifier(
                train, art.method, classes, n, art.classifier_config, seed=args.seed
            )
            grown = dataclasses.replace(
                art,
                classifier=clf,
                classes=classes,
                class_names=[*art.class_names, new_name],
                semantics=train.semantics,
                provenance={**art.provenance, "added_classes": [new_name]},
            )
        p_u = predict(grown, x_u).ids[:, 0]
        p_s = predict(grown, x_s).ids[:, 0]
        p_u = np.where(p_u == new_id, c, p_u)  # score the new class as class c
        mine = y_u == c
        others = ~mine
        rows.append(
            {
                "class": c,
                "name": art.class_names[c],
                "n_images": int(mine.sum()),
                "new_class_acc": float(np.mean(p_u[mine] == c) * 100),
                "benchmark_acc_same_images": float(np.mean(base_u[mine] == c) * 100),
                "refit_seen_S": per_class_acc(p_s, y_s),
                "benchmark_seen_S": per_class_acc(base_s, y_s),
                "refit_other_unseen_U": per_class_acc(p_u[others], y_u[others]),
                "benchmark_other_unseen_U": per_class_acc(base_u[others], y_u[others]),
                "seconds": round(time.time() - t1, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"check": check, "mode": args.mode, "held_out": rows, "run": str(run)}
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
