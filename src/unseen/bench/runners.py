"""How a grid job runs: the named row runners a grid entry can pick with ``runner: NAME``.

``protocol`` (the default) is ``unseen run``. The others are rows of a paper's table that no
config variant expresses, kept here as small functions with the runner's signature instead of
per-study scripts. Each writes a run folder (``run.yaml`` with its ``runner`` name, whose
config key then differs from a protocol run's, and ``results.json``) that the bench store
imports like any run.

* ``real-only``: GMN's Table 2, first row, "Train only with real samples (D_s)": the final
  classifier on the real seen training features alone, no generator. Its classifier epochs
  and calibration gamma are chosen on the validation problem exactly as for the generative
  rows (the same pseudo-unseen classes and held-out images), then it is fitted once per seed
  on all seen training data and scored on test once; T1 comes from the unseen columns of the
  same classifier.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from unseen.config import RunConfig
from unseen.errors import ConfigError
from unseen.eval.results import EvalResult, summarize
from unseen.files import atomic_write_json, atomic_write_text

__all__ = ["RUNNERS", "run_real_only"]


def _protocol(cfg: RunConfig, out: str | Path, **kw: Any) -> dict[str, Any]:
    from unseen.runner import run

    return run(cfg, out, **kw)


def run_real_only(cfg: RunConfig, out: str | Path, **options: Any) -> dict[str, Any]:
    """GMN Table 2's real-only row (see the module doc); a finished folder is read back.
    ``options`` as :func:`unseen.runner.run`'s: ``echo``; no ``validate_only`` form, and no
    checkpoints (nothing is trained that one could resume)."""
    from unseen.classifiers import build_classifier
    from unseen.runner import prepare

    echo = options.get("echo", True)
    if options.get("validate_only"):
        raise ConfigError("runner real-only has no validate-only form (it trains no generator)")
    out = Path(out)
    if (out / "results.json").exists():
        return json.loads((out / "results.json").read_text())
    problem = prepare(cfg)
    task, ccfg, sel = problem.task, cfg.classifier, cfg.selection
    seed0 = cfg.seeds[0]
    val = task.validation(holdout=sel.holdout, seed=seed0)
    wanted = sorted(sel.classifier_epochs) or [ccfg.epochs]
    records: dict[int, EvalResult] = {}

    def record(epoch: int, clf: Any) -> None:
        if epoch in wanted:
            records[epoch] = val.evaluate(clf)

    data = val.train
    longest = dataclasses.replace(ccfg, epochs=max(wanted))
    build_classifier(longest, cfg.device, seed0).fit(
        data.features, data.labels, val.classes, data.semantics[val.classes], epoch_callback=record
    )

    def criterion(r: EvalResult) -> float:
        return r.extra.get("h_at_best_gamma", r.h) if sel.criterion == "h_cal" else r.h

    best = max(records, key=lambda e: criterion(records[e]))
    gamma = records[best].best_gamma if sel.calibrate else None
    final = dataclasses.replace(ccfg, epochs=best)
    per_seed = {}
    for seed in cfg.seeds:
        clf = build_classifier(final, cfg.device, seed).fit(
            task.train.features, task.train.labels, task.classes, task.train.semantics[task.classes]
        )
        res = task.evaluate(clf, gamma=gamma)  # CZSL from the unseen columns of the same f
        per_seed[str(seed)] = {"seed": seed, "result": res.to_dict()}
        if echo:
            print(f"[real-only seed {seed}] {res.line()}", flush=True)
    spec = {**cfg.to_dict(), "runner": "real-only"}
    report = {
        "method": cfg.method,
        "runner": "real-only",
        "dataset": problem.dataset.name,
        "task": task.describe(),
        "config": spec,
        "validation": {
            "choice": {"classifier_epochs": best, "gamma": gamma},
            "records": {e: r.to_dict() for e, r in records.items()},
        },
        "seeds": per_seed,
        "summary": summarize([EvalResult.from_dict(e["result"]) for e in per_seed.values()]),
        "device": cfg.device,
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "run.yaml", yaml.safe_dump(spec, sort_keys=False))
    atomic_write_json(out / "results.json", report)
    return report


#: name -> ``runner(cfg, out, *, echo, validate_only, keep_checkpoints) -> results``
RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "protocol": _protocol,
    "real-only": run_real_only,
}
