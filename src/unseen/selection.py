"""The validation choice: the selection loop of ``unseen run`` (step 1 of the protocol).

On the validation problem built from seen training data only (pseudo-unseen classes from the
dataset's train/val class split, part of each pseudo-seen class's training images held out),
the generator is trained for ``method.epochs``. Every ``selection.eval_every`` epochs (and at
the last) its health is measured and logged, then for each candidate number of synthetic
features per pseudo-unseen class a classifier is trained on real pseudo-seen + synthetic
pseudo-unseen features and scored at each candidate classifier epoch count
(:func:`unseen.runner.train_and_evaluate`, the same code as the test stage). The best point
(generator epochs, synthetic count, classifier epochs) by ``selection.criterion`` is the
choice, with the calibrated-stacking gamma that maximises its validation H.

A killed selection resumes: the method from ``validation/checkpoint.pt``, the points already
scored from ``validation/records.json`` and the health from ``validation/health.json``.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from unseen.config import RunConfig, SelectionConfig
from unseen.data.task import ZSLTask
from unseen.eval.results import EvalResult
from unseen.files import atomic_write_json
from unseen.methods.base import GenerativeMethod, get_method
from unseen.progress import Progress, log_line

__all__ = ["budget_end", "choose", "evaluation_epochs", "select_on_validation"]


def evaluation_epochs(sel: SelectionConfig, epochs: int) -> list[int]:
    """The generator epochs at which validation points are scored: every ``eval_every``
    epochs and the last."""
    return sorted({e for e in range(sel.eval_every, epochs + 1, max(1, sel.eval_every))} | {epochs})


def select_on_validation(
    task: ZSLTask,
    cfg: RunConfig,
    out: Path | None,
    *,
    progress: bool = False,
    echo: bool = True,
    reporter: Progress | None = None,
) -> dict[str, Any]:
    """Choose epochs, synthetic count, classifier epochs and gamma on ``task``'s validation
    problem; returns ``{"choice", "records", "health"}`` (``validation/selection.json``).

    ``reporter`` gets a line per generator epoch and per classifier training, and learns
    their times for the whole run's estimate (its :attr:`~unseen.progress.Progress.plan`).
    """
    from unseen import runner  # the stages; looked up at call time (tests replace them)

    mcfg = runner.method_config(cfg)
    sel = cfg.selection
    seed = cfg.seeds[0]
    val = task.validation(holdout=sel.holdout, seed=seed)
    warnings = []
    if len(val.unseen_classes) < 2:
        warnings.append(
            "the validation problem has a single pseudo-unseen class: its T1 is 100 by "
            "construction and the calibration gamma is chosen on one class, so the choice is "
            "weak; give the dataset more seen classes or a train/val class split (val_classes) "
            "with at least 2 validation classes"
        )
    for w in warnings:
        log_line(out, f"[validation] WARNING: {w}", echo)
    records_path = out / "validation" / "records.json" if out else None
    health_path = out / "validation" / "health.json" if out else None
    records: list[dict[str, Any]] = _read_list(records_path)
    health: list[dict[str, Any]] = _read_list(health_path)
    done = {(r["epoch"], r["n_synthetic"], r["classifier_epochs"]) for r in records}
    eval_epochs = evaluation_epochs(sel, mcfg.epochs)
    cl_epochs = sorted(sel.classifier_epochs) or [cfg.classifier.epochs]
    if cfg.classifier.kind in ("prototype", "method"):
        cl_epochs = [0]
    plan = reporter.plan if reporter is not None else None
    if plan is not None:
        plan.val_epochs = mcfg.epochs
        plan.val_points = len(eval_epochs) * len(sel.n_synthetic)
        plan.done["point"] = len({(e, n) for e, n, _ in done})
        plan.test_scale = len(task.train.labels) / max(1, len(val.train.labels))

    def on_epoch(epoch: int, method: GenerativeMethod) -> None:
        if epoch not in eval_epochs:
            return
        if sel.health and all(h["epoch"] != epoch for h in health):
            report = val.health(method, seed=seed)
            health.append({"epoch": epoch, **report.to_dict()})
            _log_health(out, epoch, report, echo)
            if health_path:
                atomic_write_json(health_path, health)
        for n in sel.n_synthetic:
            if all((epoch, n, ce) in done for ce in cl_epochs):
                continue
            busy = (
                reporter.busy(
                    f"[validation] epoch {epoch}: classifiers on {n} synthetic features per "
                    "pseudo-unseen class",
                    kind="point",
                )
                if reporter is not None
                else contextlib.nullcontext()
            )
            with busy:
                res = runner.train_and_evaluate(
                    val,
                    method,
                    n,
                    cfg.classifier,
                    seed=seed,
                    device=cfg.device,
                    classifier_epochs=None if cl_epochs == [0] else cl_epochs,
                )
            if plan is not None:
                plan.done["point"] += 1
            for ce, r in sorted(res.items()):
                records.append(
                    {"epoch": epoch, "n_synthetic": n, "classifier_epochs": ce, **r.to_dict()}
                )
                done.add((epoch, n, ce))
                _log_val(out, epoch, n, ce, r, echo)
            if records_path:
                atomic_write_json(records_path, records)

    t0 = time.time()
    method = get_method(cfg.method)(
        mcfg, device=cfg.device, seed=seed, precision=cfg.precision, compile=cfg.compile
    )
    method.fit(
        val.train,
        callback=on_epoch,
        checkpoint=out / "validation" / "checkpoint.pt" if out else None,
        progress=progress,
        reporter=reporter,
        stage="validation",
        label=f"[validation] {cfg.method}",
    )
    if plan is not None:
        plan.done["val"] = mcfg.epochs
    if out is not None:  # for `unseen diagnose RUN`: the generator the choice was made with
        method.save(out / "validation" / "model.pt")
    choice = choose(records, health, sel)
    choice["validation_task"] = val.describe()
    choice["seconds"] = round(time.time() - t0, 1)
    if warnings:
        choice["warnings"] = warnings
    at_choice = [h for h in health if h["epoch"] == choice["epochs"]]
    if at_choice:
        choice["health"] = at_choice[0]
    return {"choice": choice, "records": records, "health": health}


def choose(
    records: list[dict[str, Any]], health: list[dict[str, Any]], sel: SelectionConfig
) -> dict[str, Any]:
    """The best validation point by ``sel.criterion`` (ties: the earlier generator epoch),
    with its gamma and, for ``per_task_counts``, each task's own best synthetic count at the
    chosen schedule. Adds ``h_cal_best`` (H at the best gamma) to every record."""
    for r in records:
        r["h_cal_best"] = _score(r, "h_cal")
    best = max(records, key=lambda r: (_score(r, sel.criterion), r["epoch"] * -1))
    choice: dict[str, Any] = {
        "epochs": best["epoch"],
        "n_synthetic": best["n_synthetic"],
        "classifier_epochs": best["classifier_epochs"],
        "gamma": best["best_gamma"] if sel.calibrate else None,
        "criterion": sel.criterion,
        "validation": {k: best[k] for k in ("t1", "s", "u", "h", "ausuc", "h_cal_best")},
    }
    end = budget_end(records, sel.criterion)
    if end is not None:
        choice["budget_end"] = end
    if sel.per_task_counts:
        same = [
            r
            for r in records
            if r["epoch"] == best["epoch"] and r["classifier_epochs"] == best["classifier_epochs"]
        ]
        # ties go to the smaller count (cheaper); each task's own validation metric decides
        choice["n_per_task"] = {
            task_name: max(same, key=lambda r, m=metric: (r[m], -r["n_synthetic"]))["n_synthetic"]
            for task_name, metric in (("zsl", "t1"), ("gzsl_u", "u"), ("gzsl_s", "s"))
        }
    return choice


def budget_end(records: list[dict[str, Any]], criterion: str = "h_cal") -> dict[str, Any] | None:
    """Whether validation chose the LAST generator epoch it scored, i.e. the score was still
    rising where the budget (``method.epochs``) stopped it: ``{"epoch", "previous_epoch",
    "score", "previous_score"}`` (best criterion score over synthetic counts and classifier
    schedules at each epoch), or None (chosen earlier, or one epoch scored).

    Why: a choice at the budget's end says the budget, not the method, may set the row's
    number; the mission's rule is that "under-trained" is claimed only next to a longer run,
    and this is what tells a user that such a run is worth making.
    """
    if not records:
        return None
    by_epoch: dict[int, float] = {}
    for r in records:
        by_epoch[r["epoch"]] = max(by_epoch.get(r["epoch"], float("-inf")), _score(r, criterion))
    epochs = sorted(by_epoch)
    # ties go to the earlier epoch (as in choose), so "chosen last" = strictly above all before
    if len(epochs) < 2 or by_epoch[epochs[-1]] <= max(by_epoch[e] for e in epochs[:-1]):
        return None
    return {
        "epoch": epochs[-1],
        "previous_epoch": epochs[-2],
        "score": by_epoch[epochs[-1]],
        "previous_score": by_epoch[epochs[-2]],
    }


def _score(record: dict[str, Any], criterion: str) -> float:
    """A validation record's score by ``criterion``: H at the best calibration gamma
    (``h_cal``; a record scored without calibration falls back to its H) or the raw H."""
    if criterion == "h_cal":
        return float((record.get("extra") or {}).get("h_at_best_gamma", record["h"]))
    return float(record["h"])


def _read_list(path: Path | None) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path and path.exists() else []


def _log_health(out: Path | None, epoch: int, report, echo: bool) -> None:
    """The generator's health at a validation point, and a WARNING line per problem."""
    log_line(out, f"[validation] epoch {epoch:4d} {report.line()}", echo)
    for w in report.warnings():
        log_line(out, f"[validation] WARNING epoch {epoch}: {w}", echo)


def _log_val(out: Path | None, epoch: int, n: int, ce: int, r: EvalResult, echo: bool) -> None:
    log_line(
        out,
        f"[validation] epoch {epoch:4d} n_syn {n:5d} clf_epochs {ce:3d}: "
        f"T1 {r.t1:5.1f} S {r.s:5.1f} U {r.u:5.1f} H {r.h:5.1f} "
        f"(H {r.extra.get('h_at_best_gamma', r.h):5.1f} at gamma {r.best_gamma:.3g})",
        echo,
    )
