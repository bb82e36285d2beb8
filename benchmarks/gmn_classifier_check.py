"""GMN's final classifier, on the VALIDATION problem only: is it the classifier or the generator?

``seen`` -- the bilinear classifier on REAL seen features alone, against the softmax. The
pseudo-seen training features of ``ZSLTask.validation()`` are split per class
(``--holdout``, seeded) into a fit part and a held-out part; each classifier setting is
trained on the fit part over the pseudo-seen classes and its per-class top-1 on the held-out
part is printed after each of ``--epochs``. No generator, no test image. Also prints the
spectrum of the class-semantic Gram matrix, which sets how fast SGD trains a bilinear W.

``synthetic RUN`` -- the generator that a finished ``unseen run`` trained on the validation
problem (``RUN/validation/model.pt``, the last validation epoch) with other final
classifiers: same validation task (seed, holdout), same synthetic features
(``runner.train_and_evaluate``), T1 / S / U / H / H at the best gamma per classifier epoch.

Each setting is ``kind[:key=value,...]``: in ``seen`` the classifier's constructor
arguments over GMN's FLO values (``bilinear:lr=0.1,bias="class"``, ``softmax``), in
``synthetic`` fields of the run's ``classifier`` config section (``bilinear:lr=0.1``,
``softmax:lr=1e-3,batch_size=64,beta1=0.5``).

Example:
    python benchmarks/gmn_classifier_check.py seen --data-root ../shared/data/xlsa17 \
        --features effnet_lite0.mat --epochs 10 20 50 -- bilinear bilinear:lr=0.1 softmax
    python benchmarks/gmn_classifier_check.py synthetic runs/gmn-flo-fast/cwgan+gm \
        --n-synthetic 100 300 --epochs 20 50 -- bilinear:lr=0.1 softmax:lr=1e-3,batch_size=64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from unseen.classifiers import make_classifier
from unseen.data import load_xlsa17
from unseen.data.task import ZSLTask
from unseen.eval.metrics import per_class_accuracy

# GMN's FLO config (configs/gmn/FLO.yaml classifier block) as the bilinear default.
DEFAULTS = {
    "bilinear": {
        "lr": 1e-2,
        "lr_decay": 0.97,
        "momentum": 0.9,
        "weight_decay": 1e-3,
        "batch_size": 256,
    },
    "softmax": {"lr": 1e-3, "batch_size": 64, "beta1": 0.5},
}


def parse_setting(text: str) -> tuple[str, dict]:
    """``kind:key=value,...`` -> (kind, constructor kwargs over the defaults)."""
    kind, _, rest = text.partition(":")
    params = dict(DEFAULTS.get(kind, {}))
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return kind, params


def seen_split(task: ZSLTask, holdout: float, seed: int):
    """Per-class split of the (validation) task's training features: fit / held out."""
    data = task.train
    rng = np.random.default_rng(seed)
    labels = data.labels.numpy()
    fit_idx, held_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_held = max(1, round(holdout * len(idx)))
        held_idx.append(idx[:n_held])
        fit_idx.append(idx[n_held:])
    fit_idx, held_idx = np.concatenate(fit_idx), np.concatenate(held_idx)
    return (data.features[fit_idx], data.labels[fit_idx]), (
        data.features[held_idx],
        data.labels[held_idx],
    )


def check_seen(args) -> list[dict]:
    ds = load_xlsa17(args.data_root, args.dataset, features=args.features, semantics=args.semantics)
    task = ZSLTask(
        ds, feature_transform=args.feature_transform, semantic_transform=args.semantic_transform
    ).validation()
    (x, y), (xh, yh) = seen_split(task, args.holdout, args.seed)
    classes = task.seen_classes
    sem = task.train.semantics[classes]
    eig = torch.linalg.eigvalsh(sem @ sem.T)
    cen = sem - sem.mean(0)
    eig_c = torch.linalg.eigvalsh(cen @ cen.T)
    off = (sem @ sem.T)[~torch.eye(len(sem), dtype=torch.bool)]
    print(
        f"{task.name}: {len(classes)} pseudo-seen classes, fit {len(y)}, held out {len(yh)}; "
        f"feature transform {args.feature_transform}, semantics {args.semantic_transform}"
    )
    print(
        f"class semantics: mean pairwise cosine {off.mean():.3f}; Gram eigenvalues max "
        f"{eig[-1]:.3g}, min {eig[0]:.3g}; centred Gram max {eig_c[-1]:.3g}, smallest "
        f"non-zero {eig_c[1]:.3g}"
    )
    wanted = sorted(set(args.epochs))
    rows = []
    for text in args.settings:
        kind, params = parse_setting(text)
        accs: dict[int, float] = {}
        yh_np, classes_np = yh.numpy(), classes.numpy()

        def record(epoch: int, clf, accs=accs, yh_np=yh_np, classes_np=classes_np) -> None:
            if epoch in wanted:
                pred = clf.predict(xh).numpy()
                accs[epoch] = 100 * per_class_accuracy(yh_np, pred, classes_np)

        t0 = time.perf_counter()
        clf = make_classifier(kind, epochs=max(wanted), seed=args.seed, **params)
        clf.fit(x, y, classes, sem, epoch_callback=record)
        secs = time.perf_counter() - t0
        line = "  ".join(f"ep{e} {accs[e]:5.1f}" for e in wanted)
        print(f"{text:45s} {line}  ({secs:.0f} s)", flush=True)
        rows.append({"setting": text, "params": params, "acc": accs, "seconds": secs})
    return rows


def check_synthetic(args) -> list[dict]:
    from unseen.config import ClassifierConfig, RunConfig, resolve_run_config
    from unseen.methods.base import GenerativeMethod, config_from_dict
    from unseen.runner import load_dataset, train_and_evaluate

    run_dir = Path(args.run)
    saved = yaml.safe_load((run_dir / "run.yaml").read_text())
    cfg: RunConfig = resolve_run_config(
        saved["method"],
        saved["data"]["dataset"],
        data_root=saved["data"]["root"],
        overrides={
            "method": saved["method_params"],
            "data": saved["data"],
            "classifier": saved["classifier"],
            "selection": saved["selection"],
        },
        seeds=saved["seeds"],
    )
    task = ZSLTask(
        load_dataset(cfg.data),
        feature_transform=cfg.data.feature_transform,
        semantic_transform=cfg.data.semantic_transform,
        transductive=cfg.data.transductive,
    )
    seed = cfg.seeds[0]
    val = task.validation(holdout=cfg.selection.holdout, seed=seed)
    model = run_dir / "validation" / "model.pt"  # kept; checkpoint.pt is deleted after a run
    if not model.exists():
        model = run_dir / "validation" / "checkpoint.pt"
    method = GenerativeMethod.load(model)
    print(f"{run_dir}: validation generator at epoch {method.epoch_}; task {val.describe()}")
    wanted = sorted(set(args.epochs))
    rows = []
    for text in args.settings:
        kind, _, rest = text.partition(":")
        over = {"kind": kind}
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            over[key] = json.loads(value)
        ccfg = config_from_dict(ClassifierConfig, {**cfg.classifier.__dict__, **over}, "classifier")
        for n in args.n_synthetic:
            t0 = time.perf_counter()
            res = train_and_evaluate(
                val, method, n, ccfg, seed=seed, device="cpu", classifier_epochs=wanted
            )
            secs = time.perf_counter() - t0
            for ce, r in sorted(res.items()):
                hb = r.extra.get("h_at_best_gamma", r.h)
                print(
                    f"{text:42s} n {n:4d} ep {ce:3d}: T1 {r.t1:5.1f} S {r.s:5.1f} U {r.u:5.1f} "
                    f"H {r.h:5.1f} H@best-gamma {hb:5.1f} (gamma {r.best_gamma:.3g})  "
                    f"({secs:.0f} s)",
                    flush=True,
                )
                rows.append(
                    {"setting": text, "n_synthetic": n, "classifier_epochs": ce, **r.to_dict()}
                )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="mode", required=True)
    ps = sub.add_parser("seen", help="classifiers on real seen features alone")
    ps.add_argument("--dataset", default="FLO")
    ps.add_argument("--data-root", required=True)
    ps.add_argument("--features", default="res101.mat")
    ps.add_argument("--semantics", default="att")
    ps.add_argument("--feature-transform", default="none")
    ps.add_argument("--semantic-transform", default="l2")
    ps.add_argument("--holdout", type=float, default=0.2)
    ps.add_argument("--seed", type=int, default=0)
    pz = sub.add_parser("synthetic", help="other final classifiers on a run's generator")
    pz.add_argument("run", help="a finished `unseen run` folder (validation/model.pt)")
    pz.add_argument("--n-synthetic", type=int, nargs="+", default=[100, 300])
    for q in (ps, pz):
        q.add_argument("settings", nargs="+", help="kind[:key=value,...] per classifier")
        q.add_argument("--epochs", type=int, nargs="+", default=[10, 20, 50])
        q.add_argument("--threads", type=int, default=1)
        q.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = check_seen(args) if args.mode == "seen" else check_synthetic(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.out.write_text(json.dumps({"args": meta, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
