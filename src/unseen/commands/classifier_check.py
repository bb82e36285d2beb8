"""``unseen classifier-check RUN SETTING...``: is it the final classifier or the generator?

Other final classifiers on a run's validation problem (never on test): on the generator the
run trained there (``RUN/validation/model.pt``), with the runner's own synthesis and scoring,
or with ``--seen-only`` on real pseudo-seen features alone (no generator). docs/gmn.md has
the tables this made.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from unseen.commands import add_command, open_validation

__all__ = ["parse_setting", "register"]


def register(sub: argparse._SubParsersAction) -> None:
    c = add_command(sub, "classifier-check", _cmd_check, device=True)
    c.add_argument("run_dir", help="an `unseen run` folder whose validation finished")
    c.add_argument(
        "settings",
        nargs="+",
        metavar="SETTING",
        help="kind[:key=value,...], before the options: the run's classifier section with "
        "these fields changed (bilinear:lr=1.0, softmax:lr=0.001,batch_size=64); with "
        '--seen-only also any parameter of the classifier (bilinear:bias="class")',
    )
    c.add_argument("--seen-only", action="store_true", help="real seen features, no generator")
    c.add_argument("--epochs", type=int, nargs="+", default=[10, 20, 50])
    c.add_argument("--n-synthetic", type=int, nargs="+", default=[100, 300])
    c.add_argument("--holdout", type=float, default=0.2, help="--seen-only: held out per class")
    c.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="data.KEY=VALUE",
        help="--seen-only: change the run's data section (data.feature_transform=minmax)",
    )
    c.add_argument("--data-root", help="replaces data.root of run.yaml (the data moved)")
    c.add_argument("--json", dest="json_out", help="also write the rows to this JSON file")


def parse_setting(text: str) -> tuple[str, dict[str, Any]]:
    """``kind:key=value,...`` -> (kind, {key: value}); values are JSON, else strings."""
    kind, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return kind, params


def _cmd_check(args: argparse.Namespace) -> int:
    """other final classifiers on a run's validation generator, or on real seen features alone
    (validation only)

    Train other final classifiers on the validation problem of a run (never on test).
    Default: the generator the run chose on validation (RUN/validation/model.pt), the runner's
    synthetic features and scoring: T1, S, U, H and H at the best gamma per synthetic count and
    classifier epoch (n = 0: real seen features only). --seen-only: no generator; the
    pseudo-seen training features are split per class into a fit and a held-out part and each
    classifier's per-class top-1 on the held-out part is printed per epoch, with the spectrum
    of the class semantics' Gram matrix (it sets how fast SGD trains a bilinear model).
    """
    from unseen.config import ClassifierConfig, check_number, parse_set
    from unseen.errors import ConfigError
    from unseen.files import atomic_write_json

    data = parse_set(args.set)
    if set(data) - {"data"} or (data and not args.seen_only):
        raise ConfigError("--set changes the data section (data.KEY=VALUE), with --seen-only")
    check_number("--holdout", args.holdout, lo=0, hi=1, lo_open=True, hi_open=True)
    for e in args.epochs:
        check_number("--epochs", e, lo=1, integer=True)
    device = None if args.seen_only else args.device  # --seen-only: no generator
    cfg, method, val = open_validation(args.run_dir, device, args.data_root, data.get("data"))
    seed = cfg.seeds[0]
    settings = []
    for text in args.settings:
        kind, params = parse_setting(text)
        fields = {k: v for k, v in params.items() if k in ClassifierConfig.__dataclass_fields__}
        ccfg = dataclasses.replace(cfg.classifier, kind=kind, **fields)
        settings.append((text, ccfg, {k: v for k, v in params.items() if k not in fields}))
    epochs = sorted(set(args.epochs))
    if method is None:
        rows = _seen_only(args, val, settings, seed, epochs)
    else:
        rows = _on_generator(args, method, val, settings, seed, epochs)
    if args.json_out:
        atomic_write_json(Path(args.json_out), {"args": vars(args) | {"func": None}, "rows": rows})
    return 0


def _seen_only(args, val, settings, seed, epochs) -> list[dict[str, Any]]:
    import numpy as np
    import torch

    from unseen.classifiers import build_classifier, make_classifier
    from unseen.eval.metrics import per_class_accuracy

    rng = np.random.default_rng(seed)
    labels = val.train.labels.numpy()
    parts = []
    for c in np.unique(labels):  # per class: the first `holdout` of a seeded permutation
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = max(1, round(args.holdout * len(idx)))
        parts.append((idx[n:], idx[:n]))
    fit, held = (np.concatenate(p) for p in zip(*parts))
    x, y = val.train.features, val.train.labels
    classes = val.seen_classes
    sem = val.train.semantics[classes]
    gram, centred = sem @ sem.T, (sem - sem.mean(0)) @ (sem - sem.mean(0)).T
    eig, eig_c = torch.linalg.eigvalsh(gram), torch.linalg.eigvalsh(centred)
    print(
        f"{val.name}: {len(classes)} pseudo-seen classes, fit {len(fit)}, held out "
        f"{len(held)}; features {val.feature_transform_name}, semantics "
        f"{val.semantic_transform_name}\nclass semantics: mean "
        f"pairwise cosine {gram[~torch.eye(len(sem), dtype=torch.bool)].mean():.3f}; Gram "
        f"eigenvalues max {eig[-1]:.3g}, min {eig[0]:.3g}; centred Gram max {eig_c[-1]:.3g}, "
        f"smallest non-zero {eig_c[1]:.3g}"
    )
    rows = []
    for text, ccfg, extra in settings:
        accs: dict[int, float] = {}

        def record(epoch: int, clf: Any, accs: dict[int, float] = accs) -> None:
            if epoch in epochs:
                pred = clf.predict(x[held]).numpy()
                accs[epoch] = 100 * per_class_accuracy(labels[held], pred, classes.numpy())

        t0 = time.perf_counter()
        clf = build_classifier(dataclasses.replace(ccfg, epochs=max(epochs)), args.device, seed)
        clf = make_classifier(ccfg.kind, **{**clf.get_params(), **extra})
        clf.fit(x[fit], y[fit], classes, sem, epoch_callback=record)
        secs = time.perf_counter() - t0
        print(f"{text:45s} " + "  ".join(f"ep{e} {accs[e]:5.1f}" for e in epochs), flush=True)
        rows.append({"setting": text, "params": clf.get_params(), "acc": accs, "seconds": secs})
    return rows


def _on_generator(args, method, val, settings, seed, epochs) -> list[dict[str, Any]]:
    from unseen.errors import ConfigError
    from unseen.runner import train_and_evaluate

    run = Path(args.run_dir)
    print(f"{run}: validation generator at epoch {method.epoch_}; task {val.describe()}")
    rows = []
    for text, ccfg, extra in settings:
        if extra:
            raise ConfigError(f"{text}: {sorted(extra)} are no classifier config fields")
        for n in args.n_synthetic:
            t0 = time.perf_counter()
            res = train_and_evaluate(
                val, method, n, ccfg, seed=seed, device=args.device, classifier_epochs=epochs
            )
            secs = time.perf_counter() - t0
            for ce, r in res.items():
                print(
                    f"{text:42s} n {n:4d} ep {ce:3d}: T1 {r.t1:5.1f} S {r.s:5.1f} U {r.u:5.1f} "
                    f"H {r.h:5.1f} H@best-gamma {r.extra.get('h_at_best_gamma', r.h):5.1f} "
                    f"(gamma {r.best_gamma:.3g})  ({secs:.0f} s)",
                    flush=True,
                )
                rows.append({"setting": text, "n_synthetic": n, "classifier_epochs": ce})
                rows[-1].update(r.to_dict())
    return rows
