"""The runner: config -> validation -> fit -> synthesize -> classifier -> metrics -> files.

Protocol (see ``docs``/README "Protocol"):

1. **Validation** (once, first seed): on the validation problem built from seen training data
   only, the generator is trained for ``method.epochs``; every ``selection.eval_every`` epochs
   (and at the last) it synthesizes each candidate number of features per pseudo-unseen
   class, a classifier is trained on real pseudo-seen + synthetic pseudo-unseen features, and
   validation S/U/H is measured at each candidate classifier epoch count. The best
   (generator epochs, synthetic count, classifier epochs) by ``selection.criterion`` is kept,
   with the calibrated-stacking gamma that maximises validation H.
2. **Test** (every seed): the method is retrained on all seen training data for the chosen
   number of epochs, features are synthesized for the unseen classes, the classifier is
   trained with the chosen schedule and evaluated once on test (last epoch, no peeking).

Output folder layout::

    run.yaml               resolved config (a rerun with another config is refused)
    manifest.json          every file unseen wrote here (``--force`` removes only these)
    run.lock               held while a run writes here (a second run is refused)
    log.txt                what happened, with timestamps
    validation/records.json, health.json, selection.json (the choice), model.pt
    seed_<s>/model.pt, seed_<s>/metrics.json
    results.json           per-seed metrics, mean ± std, the validation choice

``validation/checkpoint.pt`` and ``seed_<s>/checkpoint.pt`` (weights + optimizer and RNG
states, written after every epoch) exist while their stage runs, so that a killed run resumes
where it stopped; they are deleted when the stage is done unless ``keep_checkpoints``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from unseen import __version__
from unseen.classifiers import make_classifier
from unseen.config import (
    ClassifierConfig,
    DataConfig,
    RunConfig,
    SelectionConfig,
    validate_run_config,
)
from unseen.data.dataset import ZSLDataset
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError, OutputExistsError
from unseen.eval.results import EvalResult, format_summary, mean_std, summarize
from unseen.files import atomic_write_json, atomic_write_text
from unseen.methods.base import GenerativeMethod, config_from_dict, get_method
from unseen.progress import Progress, RunPlan
from unseen.rundir import LOCK, Manifest, RunFolder

__all__ = ["build_classifier", "load_dataset", "run", "train_and_evaluate"]


def load_dataset(cfg: DataConfig) -> ZSLDataset:
    """Load the dataset a :class:`DataConfig` names (xlsa17, native .npz, synthetic)."""
    from unseen.data import (
        DATASETS,
        demo_dataset,
        load_native,
        load_xlsa17,
        synthetic_like,
        toy_dataset,
    )

    name = cfg.dataset
    if name == "demo":
        return demo_dataset()
    if name == "toy":
        return toy_dataset()
    if name.endswith(".npz"):
        return load_native(name)
    if name.lower().endswith("-synthetic"):
        base = name[: -len("-synthetic")]
        _need_root(cfg, base)
        return synthetic_like(cfg.root, base)
    _need_root(cfg, name)
    if name.upper() not in DATASETS and not (Path(cfg.root) / name).is_dir():
        raise ConfigError(
            f"unknown dataset '{name}': expected one of {', '.join(DATASETS)}, 'demo', 'toy', "
            f"'<NAME>-synthetic', a native .npz file, or a folder under {cfg.root}"
        )
    return load_xlsa17(
        cfg.root,
        name,
        features=cfg.features,
        semantics=cfg.semantics,
        repair_labels=cfg.repair_labels,
    )


def _need_root(cfg: DataConfig, name: str) -> None:
    if not cfg.root:
        raise ConfigError(f"dataset '{name}' needs --data-root (the folder holding {name}/)")


def build_classifier(cfg: ClassifierConfig, device: str, seed: int):
    """The final classifier of a config (softmax, bilinear or nearest prototype)."""
    if cfg.kind == "prototype":
        return make_classifier("prototype", device=device)
    common = {
        "lr": cfg.lr,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "weight_decay": cfg.weight_decay,
        "device": device,
        "seed": seed,
    }
    if cfg.kind == "softmax":
        return make_classifier("softmax", beta1=cfg.beta1, **common)
    if cfg.kind == "bilinear":
        return make_classifier("bilinear", momentum=cfg.momentum, lr_decay=cfg.lr_decay, **common)
    return make_classifier(cfg.kind)  # raises ConfigError naming the valid kinds


def seen_top_up(
    method: GenerativeMethod, data, n_per_class: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic features for the seen classes with fewer than ``n_per_class`` real training
    features, as many as each one lacks (GMN's seen-class synthesis on AWA)."""
    counts = torch.bincount(data.labels.cpu(), minlength=data.n_classes)
    seen = data.seen_classes.cpu()
    deficit = (n_per_class - counts[seen]).clamp_min(0)
    most = int(deficit.max()) if len(deficit) else 0
    if most == 0:
        return data.features.new_zeros(0, data.feature_dim).cpu(), data.labels.new_zeros(0).cpu()
    x, y = method.synthesize(seen, data.semantics, most)
    keep = (torch.arange(most).repeat(len(seen)) < deficit.repeat_interleave(most)).cpu()
    return x[keep], y[keep]


def train_and_evaluate(
    task: ZSLTask,
    method: GenerativeMethod,
    n_synthetic: int,
    cfg: ClassifierConfig,
    *,
    seed: int,
    device: str = "cpu",
    gamma: float | None = None,
    classifier_epochs: list[int] | None = None,
) -> dict[int, EvalResult]:
    """Synthesize, train the final classifiers, evaluate. Returns {classifier epochs: result}.

    With ``classifier_epochs`` the classifiers are evaluated at each of those epoch counts
    along one run (used on validation); otherwise only after their last epoch. T1 has ONE
    definition on validation and test: with ``zsl_train: synthetic`` it comes from a CZSL
    classifier trained on synthetic unseen features only, at the same epoch count as the
    GZSL classifier; with ``all``, from the GZSL classifier's unseen columns.
    """
    data = task.train
    if cfg.batch_equals_n_synthetic:  # f-CLSWGAN's code: batch = synthetic count per class
        cfg = config_from_dict(
            ClassifierConfig, {**cfg.__dict__, "batch_size": n_synthetic}, "classifier"
        )
    # Evaluation must not disturb the method's training RNG stream (validation callbacks).
    with torch.random.fork_rng(devices=[] if method.device.type != "cuda" else [method.device]):
        torch.manual_seed(10_007 * seed + 17)
        x_u, y_u = method.synthesize(task.unseen_classes, data.semantics, n_synthetic)
        real_x, real_y = data.features, data.labels
        if cfg.seen_top_up:  # GMN on AWA: seen classes topped up to n_synthetic features
            x_t, y_t = seen_top_up(method, data, n_synthetic)
            real_x, real_y = torch.cat([real_x, x_t.to(real_x)]), torch.cat([real_y, y_t])
        y = torch.cat([real_y, y_u])
        sem = data.semantics
        results: dict[int, EvalResult] = {}
        if cfg.kind == "method":
            gzsl = method.own_classifier(task.classes, sem[task.classes])
            zsl = method.own_classifier(task.unseen_classes, sem[task.unseen_classes])
            results[0] = task.evaluate(gzsl, zsl, gamma=gamma)
            return results
        # The classifier sees method.transform_features(.) of real seen, synthetic unseen and
        # (through _TransformedScorer) test features; identity for most methods.
        x_u = method.transform_features(x_u)
        x = torch.cat([method.transform_features(real_x), x_u])

        def wrap(clf):
            return None if clf is None else _TransformedScorer(clf, method.transform_features)

        if cfg.kind == "prototype":
            gzsl = build_classifier(cfg, device, seed).fit(x, y, task.classes, sem[task.classes])
            zsl = build_classifier(cfg, device, seed).fit(
                x_u, y_u, task.unseen_classes, sem[task.unseen_classes]
            )
            results[0] = task.evaluate(wrap(gzsl), wrap(zsl), gamma=gamma)
            return results
        if classifier_epochs:
            wanted = set(classifier_epochs)
            run_cfg = config_from_dict(
                ClassifierConfig, {**cfg.__dict__, "epochs": max(wanted)}, "classifier"
            )
            zsl_at: dict[int, Any] = {}  # CZSL classifier snapshots at the wanted epochs
            if cfg.zsl_train == "synthetic":

                def keep(epoch: int, clf) -> None:
                    if epoch in wanted:  # the classifiers hold copies: a shallow copy is safe
                        zsl_at[epoch] = copy.copy(clf)

                build_classifier(run_cfg, device, seed).fit(
                    x_u, y_u, task.unseen_classes, sem[task.unseen_classes], epoch_callback=keep
                )

            def record(epoch: int, clf) -> None:
                if epoch in wanted:
                    results[epoch] = task.evaluate(wrap(clf), wrap(zsl_at.get(epoch)), gamma=gamma)

            build_classifier(run_cfg, device, seed).fit(
                x, y, task.classes, sem[task.classes], epoch_callback=record
            )
            return results
        gzsl = build_classifier(cfg, device, seed).fit(x, y, task.classes, sem[task.classes])
        # CZSL uses a classifier over unseen classes trained on synthetic features only, as
        # f-CLSWGAN does (zsl_train "synthetic"), or the GZSL classifier's unseen columns
        # (zsl_train "all", GMN); GZSL one over all classes on real seen + synthetic unseen.
        zsl = None
        if cfg.zsl_train == "synthetic":
            zsl = build_classifier(cfg, device, seed).fit(
                x_u, y_u, task.unseen_classes, sem[task.unseen_classes]
            )
        results[cfg.epochs] = task.evaluate(wrap(gzsl), wrap(zsl), gamma=gamma)
        return results


class _TransformedScorer:
    """A fitted classifier scoring ``transform(X)``: test features reach the final classifier
    through the same ``method.transform_features`` as its training features."""

    def __init__(self, classifier, transform) -> None:
        self.classifier = classifier
        self.transform = transform
        self.classes_ = classifier.classes_

    def predict_scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.predict_scores(self.transform(x))


# ---------------------------------------------------------------------- files
def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj)


def _start(folder: RunFolder, cfg: RunConfig, force: bool) -> tuple[str, list[int]]:
    """Decide what this run does in its (locked) folder, clean it for ``--force``, and write
    ``run.yaml``. Returns the mode (``new``, ``resume``, ``extend``, ``replace``) and the
    seeds that were finished before (``extend``).

    Refused (:class:`OutputExistsError`, nothing touched): finished results of the same
    config, an unfinished run of another config that made progress, without ``--force``.
    """
    out = folder.root
    resolved = cfg.to_dict()
    mode, before = "new", []
    if (out / "run.yaml").exists():
        if force:
            kept = folder.clean_for_force()
            if kept:
                _log(out, f"--force kept folders holding your files: {', '.join(kept)}", False)
        else:
            previous = _read_run_yaml(out / "run.yaml")
            finished = (out / "results.json").exists()
            if previous == resolved:
                if finished:
                    raise OutputExistsError(
                        f"output folder {out} already holds finished results (results.json) "
                        "of this config; pass --force to replace them, list more --seeds to "
                        "add seeds, or choose another --out"
                    )
                mode = "resume"
            elif _adds_seeds(previous, resolved):
                mode, before = "extend", list(previous["seeds"])
            elif not folder.has_progress():  # nothing to lose: a start that never trained
                folder.clean_for_force()
                mode = "replace"
            else:
                what = "finished results" if finished else "an unfinished run"
                raise OutputExistsError(
                    f"output folder {out} holds {what} of another config (run.yaml differs: "
                    f"{_config_diff(previous, resolved)}); pass --force to start over or "
                    "choose another --out"
                )
    # Record every file this run may write before writing any (see Manifest.add).
    folder.record("run.yaml", "log.txt", "results.json", LOCK)
    folder.record(*(f"validation/{n}" for n in _VALIDATION_FILES))
    for seed in cfg.seeds:
        folder.record(*(f"seed_{seed}/{n}" for n in _SEED_FILES))
    atomic_write_text(out / "run.yaml", yaml.safe_dump(resolved, sort_keys=False))
    return mode, before


_VALIDATION_FILES = ("records.json", "health.json", "checkpoint.pt", "model.pt", "selection.json")
_SEED_FILES = ("checkpoint.pt", "model.pt", "metrics.json")


def _read_run_yaml(path: Path) -> dict[str, Any]:
    try:
        previous = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        previous = None
    if not isinstance(previous, dict):
        raise OutputExistsError(
            f"{path} is not a readable run.yaml; pass --force to start over in that folder"
        )
    return _with_new_defaults(previous)


def _adds_seeds(previous: dict[str, Any], resolved: dict[str, Any]) -> bool:
    """Same config, same validation seed (the first), and more seeds than before."""
    old, new = list(previous.get("seeds") or []), list(resolved["seeds"])
    same = {k: v for k, v in previous.items() if k != "seeds"} == {
        k: v for k, v in resolved.items() if k != "seeds"
    }
    return same and bool(old) and old[0] == new[0] and set(old) < set(new)


def _config_diff(previous: dict[str, Any], resolved: dict[str, Any]) -> str:
    """``method_params.epochs 30 -> 5, seeds [0] -> [1]`` (at most a few)."""
    diffs = []
    for key in sorted(set(previous) | set(resolved)):
        a, b = previous.get(key), resolved.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    diffs.append(f"{key}.{k} {a.get(k)!r} -> {b.get(k)!r}")
        elif a != b:
            diffs.append(f"{key} {a!r} -> {b!r}")
    more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
    return ", ".join(diffs[:3]) + more


def _method_defaults(method: str) -> dict[str, Any]:
    return dataclasses.asdict(get_method(method).config_class())


def _remove_checkpoints(out: Path, paths: list[Path]) -> None:
    """Checkpoints exist to resume a killed run; once their stage is finished they only take
    disk (a model's optimizer states make them ~3x its weights)."""
    for p in paths:
        if p.is_file():
            p.unlink()


def _with_new_defaults(previous: dict[str, Any]) -> dict[str, Any]:
    """Fill keys that a newer unseen added to a config section with their defaults, so an
    unfinished run written before the key existed still resumes (its behaviour is the
    default's)."""
    defaults = {
        "data": dataclasses.asdict(DataConfig()),
        "classifier": dataclasses.asdict(ClassifierConfig()),
        "selection": dataclasses.asdict(SelectionConfig()),
    }
    out = dict(previous)
    for section, values in defaults.items():
        if isinstance(out.get(section), dict):
            out[section] = {**values, **out[section]}
    return out


def _log(out: Path, msg: str, echo: bool) -> None:
    """A timestamped line in ``OUT/log.txt``; on stdout too when ``echo`` (timestamped when
    stdout is not a terminal, as in a cluster job's log)."""
    Progress(out / "log.txt", echo=echo).line(msg)


# ---------------------------------------------------------------------- protocol
def select_on_validation(
    task: ZSLTask,
    cfg: RunConfig,
    out: Path | None,
    *,
    progress: bool = False,
    echo: bool = True,
    reporter: Progress | None = None,
) -> dict[str, Any]:
    """Step 1 of the protocol: choose epochs, synthetic count, classifier epochs, gamma.

    ``reporter`` gets a line per generator epoch and per classifier training, and learns
    their times for the whole run's estimate (its :attr:`~unseen.progress.Progress.plan`).
    """
    method_cls = get_method(cfg.method)
    mcfg = config_from_dict(
        method_cls.config_class,
        {**method_cls.config_class().__dict__, **cfg.method_params},
        "method",
    )
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
        msg = f"[validation] WARNING: {w}"
        if out is not None:
            _log(out, msg, echo)
        elif echo:
            print(msg, flush=True)
    records_path = out / "validation" / "records.json" if out else None
    records: list[dict[str, Any]] = []
    if records_path and records_path.exists():
        records = json.loads(records_path.read_text())
    done = {(r["epoch"], r["n_synthetic"], r["classifier_epochs"]) for r in records}
    eval_epochs = sorted(
        {e for e in range(sel.eval_every, mcfg.epochs + 1, max(1, sel.eval_every))} | {mcfg.epochs}
    )
    cl_epochs = sorted(sel.classifier_epochs) or [cfg.classifier.epochs]
    if cfg.classifier.kind in ("prototype", "method"):
        cl_epochs = [0]
    plan = reporter.plan if reporter is not None else None
    if plan is not None:
        plan.val_epochs = mcfg.epochs
        plan.val_points = len(eval_epochs) * len(sel.n_synthetic)
        plan.done["point"] = len({(e, n) for e, n, _ in done})
        plan.test_scale = len(task.train.labels) / max(1, len(val.train.labels))

    health_path = out / "validation" / "health.json" if out else None
    health: list[dict[str, Any]] = []
    if health_path and health_path.exists():
        health = json.loads(health_path.read_text())

    def on_epoch(epoch: int, method: GenerativeMethod) -> None:
        if epoch not in eval_epochs:
            return
        if sel.health and all(h["epoch"] != epoch for h in health):
            report = val.health(method, seed=seed)
            health.append({"epoch": epoch, **report.to_dict()})
            _log_health(out, epoch, report, echo)
            if health_path:
                _write_json(health_path, health)
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
                res = train_and_evaluate(
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
                _write_json(records_path, records)

    t0 = time.time()
    method = method_cls(mcfg, device=cfg.device, seed=seed)
    ckpt = out / "validation" / "checkpoint.pt" if out else None
    method.fit(
        val.train,
        callback=on_epoch,
        checkpoint=ckpt,
        progress=progress,
        reporter=reporter,
        stage="validation",
        label=f"[validation] {cfg.method}",
    )
    if plan is not None:
        plan.done["val"] = mcfg.epochs
    if out is not None:  # for `unseen diagnose RUN`: the generator the choice was made with
        method.save(out / "validation" / "model.pt")
    key = "h_cal_best" if sel.criterion == "h_cal" else "h"
    for r in records:
        r["h_cal_best"] = r["extra"].get("h_at_best_gamma", r["h"])
    best = max(records, key=lambda r: (r[key], r["epoch"] * -1))
    choice = {
        "epochs": best["epoch"],
        "n_synthetic": best["n_synthetic"],
        "classifier_epochs": best["classifier_epochs"],
        "gamma": best["best_gamma"] if sel.calibrate else None,
        "criterion": sel.criterion,
        "validation": {k: best[k] for k in ("t1", "s", "u", "h", "ausuc", "h_cal_best")},
        "validation_task": val.describe(),
        "seconds": round(time.time() - t0, 1),
    }
    if warnings:
        choice["warnings"] = warnings
    at_choice = [h for h in health if h["epoch"] == best["epoch"]]
    if at_choice:
        choice["health"] = at_choice[0]
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
    return {"choice": choice, "records": records, "health": health}


def per_task_result(
    task: ZSLTask,
    method: GenerativeMethod,
    counts: dict[str, int],
    cfg: ClassifierConfig,
    *,
    seed: int,
    device: str = "cpu",
    known: dict[int, EvalResult] | None = None,
) -> dict[str, Any]:
    """T1, U and S from separate classifiers trained with ``counts`` = {zsl, gzsl_u, gzsl_s}
    synthetic features per unseen class (GMN's per-task models); H = 2US / (U + S)."""
    cache = dict(known or {})
    for n in set(counts.values()) - set(cache):
        res = train_and_evaluate(task, method, n, cfg, seed=seed, device=device)
        cache[n] = next(iter(res.values()))
    t1, u, s = cache[counts["zsl"]].t1, cache[counts["gzsl_u"]].u, cache[counts["gzsl_s"]].s
    h = 2 * u * s / (u + s) if u + s > 0 else 0.0
    return {"t1": t1, "u": u, "s": s, "h": h, "counts": dict(counts)}


def _log_health(out: Path | None, epoch: int, report, echo: bool) -> None:
    """The generator's health at a validation point, and a WARNING line per problem."""
    lines = [f"[validation] epoch {epoch:4d} {report.line()}"]
    lines += [f"[validation] WARNING epoch {epoch}: {w}" for w in report.warnings()]
    for msg in lines:
        if out is not None:
            _log(out, msg, echo)
        elif echo:
            print(msg, flush=True)


def _log_val(out, epoch, n, ce, r: EvalResult, echo: bool) -> None:
    msg = (
        f"[validation] epoch {epoch:4d} n_syn {n:5d} clf_epochs {ce:3d}: "
        f"T1 {r.t1:5.1f} S {r.s:5.1f} U {r.u:5.1f} H {r.h:5.1f} "
        f"(H {r.extra.get('h_at_best_gamma', r.h):5.1f} at gamma {r.best_gamma:.3g})"
    )
    if out is not None:
        _log(out, msg, echo)
    elif echo:
        print(msg, flush=True)


def run(
    cfg: RunConfig,
    out: str | Path,
    *,
    force: bool = False,
    progress: bool = False,
    echo: bool = True,
    dataset: ZSLDataset | None = None,
    validate_only: bool = False,
    keep_checkpoints: bool = False,
) -> dict[str, Any]:
    """Run the whole protocol for every seed; resumable; returns the results dict.

    With ``validate_only`` only step 1 runs (the test split is never scored) and the
    validation records and choice are written to ``OUT/validation/selection.json``.

    The folder (see :mod:`unseen.rundir`): refused if another run holds its lock, if it holds
    files unseen did not write and no run, or finished results of the same config (unless
    ``force``, which removes only what unseen wrote); a rerun of the same command resumes; a
    longer ``seeds`` list with the same first seed adds seeds to a run, reusing its
    validation choice. A start that fails before any progress leaves the folder as it was.
    Checkpoints are deleted once their stage is done unless ``keep_checkpoints``;
    ``validation/model.pt`` and every ``seed_<s>/model.pt`` stay.
    """
    out = Path(out)
    # Everything that can be refused is checked before the first file is written.
    validate_run_config(cfg)
    ds = dataset if dataset is not None else load_dataset(cfg.data)
    task = ZSLTask(
        ds,
        feature_transform=cfg.data.feature_transform,
        semantic_transform=cfg.data.semantic_transform,
        transductive=cfg.data.transductive,
    )
    method_cls = get_method(cfg.method)
    probe = method_cls(
        config_from_dict(
            method_cls.config_class,
            {**method_cls.config_class().__dict__, **cfg.method_params},
            "method",
        )
    )
    probe.check_config(probe.dims_from(task.train))
    if cfg.classifier.kind == "method" and (
        method_cls.own_classifier is GenerativeMethod.own_classifier
    ):
        probe.own_classifier(task.classes, task.train.semantics)  # raises its ConfigError
    if (
        out.is_dir()
        and any(out.iterdir())
        and not (out / "run.yaml").exists()
        and Manifest.read(out) is None  # a start killed before run.yaml: still ours
    ):
        raise OutputExistsError(
            f"output folder {out} is not empty and holds no unseen run (no run.yaml); "
            "choose an empty or new folder"
        )
    with RunFolder(out) as folder:
        mode, before = _start(folder, cfg, force)
        return _protocol(
            out,
            cfg,
            ds,
            task,
            mode=mode,
            seeds_before=before,
            progress=progress,
            echo=echo,
            validate_only=validate_only,
            keep_checkpoints=keep_checkpoints,
        )


def _selection(
    out: Path,
    task: ZSLTask,
    cfg: RunConfig,
    *,
    progress: bool,
    echo: bool,
    keep: bool,
    reporter: Progress,
) -> dict[str, Any]:
    """Step 1, or its result saved by an earlier run of this folder (same config): a run
    that adds seeds, or a full run after ``--validate-only``, never repeats validation."""
    saved = out / "validation" / "selection.json"
    if saved.exists():
        _log(out, "[validation] reusing the choice in validation/selection.json", echo)
        return json.loads(saved.read_text())
    if (out / "results.json").exists():  # a finished run from before selection.json
        _log(out, "[validation] reusing the choice in results.json", echo)
        return json.loads((out / "results.json").read_text())["validation"]
    selection = select_on_validation(
        task, cfg, out, progress=progress, echo=echo, reporter=reporter
    )
    _write_json(saved, selection)
    if not keep:
        _remove_checkpoints(out, [out / "validation" / "checkpoint.pt"])
    return selection


def _protocol(
    out: Path,
    cfg: RunConfig,
    ds: ZSLDataset,
    task: ZSLTask,
    *,
    mode: str,
    seeds_before: list[int],
    progress: bool,
    echo: bool,
    validate_only: bool,
    keep_checkpoints: bool,
) -> dict[str, Any]:
    """Steps 1 and 2 in a prepared folder (see :func:`run`)."""
    reporter = Progress(out / "log.txt", echo=echo)
    todo = [s for s in cfg.seeds if not (out / f"seed_{s}" / "metrics.json").exists()]
    epochs = int({**_method_defaults(cfg.method), **cfg.method_params}["epochs"])
    reporter.plan = RunPlan(seeds=0 if validate_only else len(todo), seed_epochs=epochs)
    if mode == "extend":
        added = [s for s in cfg.seeds if s not in seeds_before]
        _log(out, f"adding seed(s) {added} to the run of seeds {seeds_before}", echo)
    elif mode == "replace":
        _log(out, "replacing an unfinished run of another config that had made no progress", echo)
    if cfg.sources:
        _log(out, f"config: {' + '.join(cfg.sources)}", False)
    if ds.synthetic:
        _log(out, f"NOTE: {ds.name} has SYNTHETIC features; these are not benchmark results.", echo)
    for q in ds.quirks:
        _log(out, f"data quirk: {q}", echo)
    reporter.line(
        f"plan: validation ({epochs} generator epochs, classifiers every "
        f"{cfg.selection.eval_every}), then {len(todo)} seed(s) of at most {epochs} epochs; "
        "a time estimate follows the first epoch"
        if not validate_only
        else f"plan: validation only ({epochs} generator epochs)",
        echo=echo,
    )
    selection = _selection(
        out,
        task,
        cfg,
        progress=progress,
        echo=echo,
        keep=keep_checkpoints,
        reporter=reporter,
    )
    reporter.plan.seed_epochs = int(selection["choice"]["epochs"])
    choice = selection["choice"]
    _log(out, f"[validation] chosen: {json.dumps({k: choice[k] for k in list(choice)[:5]})}", echo)
    for w in choice.get("health", {}).get("warnings", []):
        _log(out, f"WARNING: the generator chosen on validation is unhealthy: {w}", echo)
    if validate_only:
        return {"validation": selection, "config": cfg.to_dict(), "dataset": ds.name}

    method_cls = get_method(cfg.method)
    mcfg = config_from_dict(
        method_cls.config_class,
        {**method_cls.config_class().__dict__, **cfg.method_params, "epochs": choice["epochs"]},
        "method",
    )
    ccfg = cfg.classifier
    if choice["classifier_epochs"]:
        ccfg = config_from_dict(
            ClassifierConfig,
            {**cfg.classifier.__dict__, "epochs": choice["classifier_epochs"]},
            "classifier",
        )
    per_seed: dict[str, Any] = {}
    for seed in cfg.seeds:
        sdir = out / f"seed_{seed}"
        mpath = sdir / "metrics.json"
        if mpath.exists():
            per_seed[str(seed)] = json.loads(mpath.read_text())
            done = EvalResult.from_dict(per_seed[str(seed)]["result"])
            _log(out, f"[seed {seed}] already done: {done.line()}", echo)
            continue
        t0 = time.time()
        method = method_cls(mcfg, device=cfg.device, seed=seed)
        method.fit(
            task.train,
            checkpoint=sdir / "checkpoint.pt",
            progress=progress,
            reporter=reporter,
            stage="test",
            label=f"[seed {seed}] {cfg.method}",
        )
        t_fit = time.time() - t0
        method.save(sdir / "model.pt")
        with reporter.busy(
            f"[seed {seed}] final classifier(s) on {choice['n_synthetic']} synthetic features "
            "per unseen class",
            kind="final",
        ):
            res = train_and_evaluate(
                task,
                method,
                choice["n_synthetic"],
                ccfg,
                seed=seed,
                device=cfg.device,
                gamma=choice["gamma"],
            )
        result = next(iter(res.values()))
        if choice.get("n_per_task"):
            result.extra["per_task"] = per_task_result(
                task,
                method,
                choice["n_per_task"],
                ccfg,
                seed=seed,
                device=cfg.device,
                known={choice["n_synthetic"]: result},
            )
        entry = {
            "seed": seed,
            "result": result.to_dict(),
            "fit_seconds": round(t_fit, 1),
            "total_seconds": round(time.time() - t0, 1),
            "history": method.history_,
        }
        _write_json(mpath, entry)
        if not keep_checkpoints:
            _remove_checkpoints(out, [sdir / "checkpoint.pt"])
        per_seed[str(seed)] = entry
        reporter.plan.done["seed"] += 1
        _log(out, f"[seed {seed}] test: {result.line()}", echo)
    results = [EvalResult.from_dict(e["result"]) for e in per_seed.values()]
    summary = summarize(results)
    per_task = [r.extra["per_task"] for r in results if "per_task" in r.extra]
    if per_task:
        summary["per_task"] = {k: mean_std([p[k] for p in per_task]) for k in ("t1", "u", "s", "h")}
    report = {
        "unseen_version": __version__,
        "method": cfg.method,
        "dataset": ds.name,
        "synthetic_features": ds.synthetic,
        "task": task.describe(),
        "config": cfg.to_dict(),
        "config_sources": list(cfg.sources),
        "validation": selection,
        "seeds": per_seed,
        "summary": summary,
        "device": cfg.device,
        "torch": torch.__version__,
    }
    _write_json(out / "results.json", report)
    if not keep_checkpoints:  # also those left by a kill between a stage's end and cleanup
        _remove_checkpoints(
            out,
            [out / "validation" / "checkpoint.pt"]
            + [out / f"seed_{s}" / "checkpoint.pt" for s in cfg.seeds],
        )
    _log(
        out,
        f"{cfg.method} on {ds.name} (test, {task.describe()['n_unseen_classes']} unseen classes) "
        + format_summary(summary),
        echo,
    )
    return report
