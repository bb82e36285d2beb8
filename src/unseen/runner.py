"""The runner: one ``unseen run``, read top to bottom as the stages of the protocol.

======================  ==============================  =========================================
stage                   function                        in -> out
======================  ==============================  =========================================
config, data            :func:`prepare`                 RunConfig -> :class:`Problem`
validation choice       :func:`choose`                  Problem -> selection (the choice)
fit                     :func:`fit_method`              seen training data -> GenerativeMethod
synthesize              :func:`synthesize`              method -> :class:`ClassifierData`
classify                :func:`classify`                ClassifierData -> :class:`Classifiers`
evaluate                :func:`evaluate`                Classifiers -> EvalResult
======================  ==============================  =========================================

:func:`train_and_evaluate` is synthesize -> classify -> evaluate at one point (the validation
loop of :mod:`unseen.selection` scores every candidate with it); :func:`test_seed` is fit ->
synthesize -> classify -> evaluate for one seed on test; :func:`run` does the stages in order
inside the run folder. Protocol (README "Protocol"):

1. **Validation** (once, first seed): :func:`unseen.selection.select_on_validation` chooses the
   generator epochs, the synthetic count, the classifier epochs and the calibration gamma on
   the validation problem built from seen training data only.
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

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unseen import __version__
from unseen.classifiers import build_classifier
from unseen.config import ClassifierConfig, DataConfig, RunConfig, validate_run_config
from unseen.data.dataset import ZSLDataset
from unseen.data.task import SeenTrainData, ZSLTask
from unseen.errors import ConfigError, OutputExistsError
from unseen.eval.results import EvalResult, format_summary, mean_std, summarize
from unseen.files import atomic_write_json
from unseen.methods.base import GenerativeMethod, config_from_dict, get_method
from unseen.progress import Progress, RunPlan, log_line
from unseen.rundir import Manifest, RunFolder, code_version
from unseen.selection import select_on_validation

__all__ = [
    "ClassifierData",
    "Classifiers",
    "Problem",
    "build_classifier",
    "build_task",
    "choose",
    "classify",
    "evaluate",
    "fit_method",
    "load_dataset",
    "method_config",
    "prepare",
    "run",
    "seen_top_up",
    "synthesize",
    "test_seed",
    "train_and_evaluate",
]


# ---------------------------------------------------------------------- config, data
@dataclass
class Problem:
    """What the config and data stages hand on: the run's config, its data and the task
    that holds the test split privately (reachable only through ``task.evaluate``)."""

    cfg: RunConfig
    dataset: ZSLDataset
    task: ZSLTask


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
        splits=cfg.splits or None,
    )


def _need_root(cfg: DataConfig, name: str) -> None:
    if not cfg.root:
        raise ConfigError(f"dataset '{name}' needs --data-root (the folder holding {name}/)")


def build_task(cfg: DataConfig, dataset: ZSLDataset) -> ZSLTask:
    """The protocol's task on ``dataset``: its preprocessing (fitted on training features
    only) and, for transductive configs, the unlabeled test features."""
    return ZSLTask(
        dataset,
        feature_transform=cfg.feature_transform,
        semantic_transform=cfg.semantic_transform,
        transductive=cfg.transductive,
    )


def method_config(cfg: RunConfig, **changes: Any) -> Any:
    """The method's config dataclass: its defaults, then ``cfg.method_params``, then
    ``changes`` (e.g. the chosen ``epochs``)."""
    method_cls = get_method(cfg.method)
    values = {**method_cls.config_class().__dict__, **cfg.method_params, **changes}
    return config_from_dict(method_cls.config_class, values, "method")


def prepare(cfg: RunConfig, dataset: ZSLDataset | None = None) -> Problem:
    """The config and data stages: everything a run can be refused for is checked here,
    before any file is written (the config, the data, the method's sizes for this data,
    ``classifier.kind: method`` for a method without its own classifier)."""
    validate_run_config(cfg)
    ds = dataset if dataset is not None else load_dataset(cfg.data)
    task = build_task(cfg.data, ds)
    method_cls = get_method(cfg.method)
    probe = method_cls(method_config(cfg))
    probe.check_config(probe.dims_from(task.train))
    if cfg.classifier.kind == "method" and (
        method_cls.own_classifier is GenerativeMethod.own_classifier
    ):
        probe.own_classifier(task.classes, task.train.semantics)  # raises its ConfigError
    return Problem(cfg, ds, task)


# ---------------------------------------------------------------------- validation choice
def choose(
    problem: Problem,
    out: Path,
    *,
    progress: bool,
    echo: bool,
    keep: bool,
    reporter: Progress,
) -> dict[str, Any]:
    """The validation choice (:func:`unseen.selection.select_on_validation`), or the one an
    earlier run of this folder saved (same config): a run that adds seeds, or a full run after
    ``--validate-only``, never repeats validation."""
    saved = out / "validation" / "selection.json"
    if saved.exists():
        log_line(out, "[validation] reusing the choice in validation/selection.json", echo)
        return json.loads(saved.read_text())
    if (out / "results.json").exists():  # a finished run from before selection.json
        log_line(out, "[validation] reusing the choice in results.json", echo)
        return json.loads((out / "results.json").read_text())["validation"]
    selection = select_on_validation(
        problem.task, problem.cfg, out, progress=progress, echo=echo, reporter=reporter
    )
    atomic_write_json(saved, selection)
    if not keep:
        _remove_checkpoints([out / "validation" / "checkpoint.pt"])
    return selection


def final_classifier_config(cfg: RunConfig, choice: dict[str, Any]) -> ClassifierConfig:
    """The run's classifier section with the classifier epochs chosen on validation."""
    if not choice["classifier_epochs"]:
        return cfg.classifier
    return dataclasses.replace(cfg.classifier, epochs=int(choice["classifier_epochs"]))


# ---------------------------------------------------------------------- fit
def fit_method(
    cfg: RunConfig,
    data: SeenTrainData,
    *,
    seed: int,
    epochs: int,
    checkpoint: Path,
    progress: bool = False,
    reporter: Progress | None = None,
) -> GenerativeMethod:
    """The generator trained on ``data`` (all seen training data) for the chosen ``epochs``,
    resuming from ``checkpoint`` when it exists."""
    method = get_method(cfg.method)(
        method_config(cfg, epochs=epochs),
        device=cfg.device,
        seed=seed,
        precision=cfg.precision,
        compile=cfg.compile,
    )
    return method.fit(
        data,
        checkpoint=checkpoint,
        progress=progress,
        reporter=reporter,
        stage="test",
        label=f"[seed {seed}] {cfg.method}",
    )


BATCH_FILE = "batch_checkpoint.pt"


def fit_seeds_together(
    problem: Problem,
    choice: dict[str, Any],
    seeds: list[int],
    out: Path,
    *,
    progress: bool = False,
    reporter: Progress,
) -> None:
    """``--batch-seeds``: train the ``seeds`` that have not started as one batched model
    (:mod:`unseen.methods.seedbatch`), then leave each seed's trained generator as its
    ``seed_<s>/checkpoint.pt``, from which :func:`test_seed` continues as after a sequential
    fit (synthesis from the seed's own random stream, classifiers, test). A kill while they
    train resumes from ``seed_<first>/batch_checkpoint.pt``. A method that cannot train
    seeds together trains them one after another (said in the log)."""
    from unseen.methods.seedbatch import fit_seeds, restore_rng

    cfg = problem.cfg
    fresh = [s for s in seeds if not (out / f"seed_{s}" / "checkpoint.pt").exists()]
    if len(fresh) < 2:
        return
    if not get_method(cfg.method).supports_seed_batch:
        log_line(
            out,
            f"--batch-seeds: {cfg.method} trains its seeds one after another (its training is "
            "not written for a seed axis yet)",
            reporter.echo,
        )
        return
    batch_file = out / f"seed_{fresh[0]}" / BATCH_FILE
    batch_file.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    members = fit_seeds(
        cfg.method,
        method_config(cfg, epochs=choice["epochs"]),
        fresh,
        problem.task.train,
        device=cfg.device,
        precision=cfg.precision,
        compile=cfg.compile,
        checkpoint=batch_file,
        progress=progress,
        reporter=reporter,
        stage="test",
        label=f"[seeds {' '.join(map(str, fresh))}] {cfg.method}",
    )
    for seed, member in zip(fresh, members, strict=True):
        restore_rng(member)  # the checkpoint records the seed's own stream for synthesis
        member.save(out / f"seed_{seed}" / "checkpoint.pt", optimizers=True)
    _remove_checkpoints([batch_file])
    log_line(
        out,
        f"[seeds {' '.join(map(str, fresh))}] trained together as one batched model in "
        f"{time.time() - t0:.0f} s",
        reporter.echo,
    )


# ---------------------------------------------------------------------- synthesize
@dataclass
class ClassifierData:
    """What the synthesize stage hands to the classifiers: real seen training features (with
    the seen top-up, if any) and synthetic features of the classes to add."""

    real_x: torch.Tensor
    real_y: torch.Tensor
    synthetic_x: torch.Tensor
    synthetic_y: torch.Tensor

    @property
    def y(self) -> torch.Tensor:
        """Labels of the GZSL classifier's training set: real, then synthetic."""
        return torch.cat([self.real_y, self.synthetic_y])


def seen_top_up(
    method: GenerativeMethod, data: SeenTrainData, n_per_class: int
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


def synthesize(
    method: GenerativeMethod,
    data: SeenTrainData,
    classes: torch.Tensor,
    n_synthetic: int,
    cfg: ClassifierConfig,
) -> ClassifierData:
    """``n_synthetic`` generated features per class of ``classes`` (the unseen ones), beside
    the real seen training features, topped up to ``n_synthetic`` per seen class where
    ``cfg.seen_top_up`` asks (GMN on AWA). Draws from torch's global generator."""
    x_u, y_u = method.synthesize(classes, data.semantics, n_synthetic)
    real_x, real_y = data.features, data.labels
    if cfg.seen_top_up:
        x_t, y_t = seen_top_up(method, data, n_synthetic)
        real_x, real_y = torch.cat([real_x, x_t.to(real_x)]), torch.cat([real_y, y_t])
    return ClassifierData(real_x, real_y, x_u, y_u)


# ---------------------------------------------------------------------- classify
@dataclass
class Classifiers:
    """The final classifiers of one point: GZSL over all classes, and CZSL over the unseen
    classes (``None``: T1 comes from the GZSL classifier's unseen columns)."""

    gzsl: Any
    zsl: Any | None = None


def classify(
    method: GenerativeMethod,
    data: ClassifierData,
    classes: torch.Tensor,
    unseen_classes: torch.Tensor,
    semantics: torch.Tensor,
    cfg: ClassifierConfig,
    *,
    seed: int,
    device: str = "cpu",
    classifier_epochs: list[int] | None = None,
) -> dict[int, Classifiers]:
    """Train the final classifiers; returns them by classifier epoch count.

    GZSL: one classifier over ``classes`` on real seen + synthetic unseen features. CZSL (T1)
    has ONE definition on validation and test: with ``zsl_train: synthetic`` a classifier over
    ``unseen_classes`` trained on the synthetic features alone, at the same epoch count as the
    GZSL classifier (f-CLSWGAN); with ``all``, the GZSL classifier's unseen columns (GMN).
    With ``classifier_epochs`` (validation) one training is snapshotted at each of those
    counts; otherwise only its last epoch is kept. ``kind: method`` is the method's own
    classifier; ``prototype`` has no epochs (key 0).
    """
    if cfg.kind == "method":
        gzsl = method.own_classifier(classes, semantics[classes])
        return {
            0: Classifiers(gzsl, method.own_classifier(unseen_classes, semantics[unseen_classes]))
        }
    # The classifiers see method.transform_features(.) of real seen, synthetic unseen and
    # (through _TransformedScorer) test features; identity for most methods.
    x_u = method.transform_features(data.synthetic_x)
    x, y, y_u = torch.cat([method.transform_features(data.real_x), x_u]), data.y, data.synthetic_y

    def fit(c: ClassifierConfig, xs, ys, cls, **kw: Any) -> Any:
        return build_classifier(c, device, seed).fit(xs, ys, cls, semantics[cls], **kw)

    def wrap(gzsl: Any, zsl: Any | None) -> Classifiers:
        t = method.transform_features
        return Classifiers(
            _TransformedScorer(gzsl, t), None if zsl is None else _TransformedScorer(zsl, t)
        )

    zsl_too = cfg.zsl_train == "synthetic"
    if cfg.kind == "prototype":
        return {0: wrap(fit(cfg, x, y, classes), fit(cfg, x_u, y_u, unseen_classes))}
    if not classifier_epochs:
        gzsl = fit(cfg, x, y, classes)
        return {cfg.epochs: wrap(gzsl, fit(cfg, x_u, y_u, unseen_classes) if zsl_too else None)}
    wanted = set(classifier_epochs)
    longest = dataclasses.replace(cfg, epochs=max(wanted))
    snapshots: dict[str, dict[int, Any]] = {"gzsl": {}, "zsl": {}}

    def keep(which: str):
        def callback(epoch: int, clf: Any) -> None:
            if epoch in wanted:  # the classifiers hold copies: a shallow copy is safe
                snapshots[which][epoch] = copy.copy(clf)

        return callback

    if zsl_too:
        fit(longest, x_u, y_u, unseen_classes, epoch_callback=keep("zsl"))
    fit(longest, x, y, classes, epoch_callback=keep("gzsl"))
    return {e: wrap(g, snapshots["zsl"].get(e)) for e, g in snapshots["gzsl"].items()}


class _TransformedScorer:
    """A fitted classifier scoring ``transform(X)``: test features reach the final classifier
    through the same ``method.transform_features`` as its training features."""

    def __init__(self, classifier: Any, transform: Any) -> None:
        self.classifier = classifier
        self.transform = transform
        self.classes_ = classifier.classes_

    def predict_scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.predict_scores(self.transform(x))


# ---------------------------------------------------------------------- evaluate
def evaluate(task: ZSLTask, classifiers: Classifiers, gamma: float | None = None) -> EvalResult:
    """Score the classifiers on the task's evaluation split (validation or test, once)."""
    return task.evaluate(classifiers.gzsl, classifiers.zsl, gamma=gamma)


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
    """synthesize -> classify -> evaluate at one point; returns {classifier epochs: result}.

    The same code scores every validation point and every seed on test. It runs on a fork
    of torch's RNG seeded from ``seed``, so it never disturbs the method's training stream
    (validation points are scored between generator epochs).
    """
    if cfg.batch_equals_n_synthetic:  # f-CLSWGAN's code: batch = synthetic count per class
        cfg = dataclasses.replace(cfg, batch_size=n_synthetic)
    with torch.random.fork_rng(devices=[] if method.device.type != "cuda" else [method.device]):
        torch.manual_seed(10_007 * seed + 17)
        data = synthesize(method, task.train, task.unseen_classes, n_synthetic, cfg)
        fitted = classify(
            method,
            data,
            task.classes,
            task.unseen_classes,
            task.train.semantics,
            cfg,
            seed=seed,
            device=device,
            classifier_epochs=classifier_epochs,
        )
    return {e: evaluate(task, c, gamma) for e, c in sorted(fitted.items())}


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


# ---------------------------------------------------------------------- one seed on test
def test_seed(
    problem: Problem,
    choice: dict[str, Any],
    seed: int,
    out: Path,
    *,
    progress: bool = False,
    reporter: Progress,
) -> dict[str, Any]:
    """fit -> synthesize -> classify -> evaluate for one seed, with the validation choice;
    returns its ``seed_<s>/metrics.json`` entry (the model is saved beside it)."""
    cfg, task = problem.cfg, problem.task
    sdir = out / f"seed_{seed}"
    t0 = time.time()
    method = fit_method(
        cfg,
        task.train,
        seed=seed,
        epochs=choice["epochs"],
        checkpoint=sdir / "checkpoint.pt",
        progress=progress,
        reporter=reporter,
    )
    t_fit = time.time() - t0
    method.save(sdir / "model.pt")
    ccfg = final_classifier_config(cfg, choice)
    n = choice["n_synthetic"]
    with reporter.busy(
        f"[seed {seed}] final classifier(s) on {n} synthetic features per unseen class",
        kind="final",
    ):
        res = train_and_evaluate(
            task, method, n, ccfg, seed=seed, device=cfg.device, gamma=choice["gamma"]
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
            known={n: result},
        )
    return {
        "seed": seed,
        "result": result.to_dict(),
        "fit_seconds": round(t_fit, 1),
        "total_seconds": round(time.time() - t0, 1),
        "history": method.history_,
    }


# ---------------------------------------------------------------------- the whole run
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
    problem = prepare(cfg, dataset)  # everything refusable, before the first file is written
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
        mode, before, kept = folder.start(cfg.to_dict(), force)
        if kept:
            log_line(out, f"--force kept folders holding your files: {', '.join(kept)}", False)
        return _protocol(
            out,
            problem,
            mode=mode,
            seeds_before=before,
            progress=progress,
            echo=echo,
            validate_only=validate_only,
            keep_checkpoints=keep_checkpoints,
        )


def _protocol(
    out: Path,
    problem: Problem,
    *,
    mode: str,
    seeds_before: list[int],
    progress: bool,
    echo: bool,
    validate_only: bool,
    keep_checkpoints: bool,
) -> dict[str, Any]:
    """The validation choice, then every seed on test, in a prepared folder (see :func:`run`)."""
    cfg, ds, task = problem.cfg, problem.dataset, problem.task
    reporter = Progress(out / "log.txt", echo=echo)
    todo = [s for s in cfg.seeds if not (out / f"seed_{s}" / "metrics.json").exists()]
    epochs = int(method_config(cfg).epochs)
    reporter.plan = RunPlan(seeds=0 if validate_only else len(todo), seed_epochs=epochs)
    _log_start(out, problem, mode, seeds_before, epochs, len(todo), validate_only, echo)
    selection = choose(
        problem, out, progress=progress, echo=echo, keep=keep_checkpoints, reporter=reporter
    )
    choice = selection["choice"]
    reporter.plan.seed_epochs = int(choice["epochs"])
    log_line(
        out, f"[validation] chosen: {json.dumps({k: choice[k] for k in list(choice)[:5]})}", echo
    )
    for w in choice.get("health", {}).get("warnings", []):
        log_line(out, f"WARNING: the generator chosen on validation is unhealthy: {w}", echo)
    end = choice.get("budget_end")
    if end:
        log_line(
            out,
            f"WARNING: validation chose the last epoch it scored ({end['epoch']}; "
            f"{end['previous_score']:.1f} at epoch {end['previous_epoch']} -> "
            f"{end['score']:.1f}): the budget may limit this run; a longer method.epochs "
            "(chosen on validation again) may do better",
            echo,
        )
    if validate_only:
        return {"validation": selection, "config": cfg.to_dict(), "dataset": ds.name}

    if cfg.seed_batch:
        fit_seeds_together(problem, choice, todo, out, progress=progress, reporter=reporter)
    per_seed: dict[str, Any] = {}
    for seed in cfg.seeds:
        sdir = out / f"seed_{seed}"
        mpath = sdir / "metrics.json"
        if mpath.exists():
            per_seed[str(seed)] = json.loads(mpath.read_text())
            done = EvalResult.from_dict(per_seed[str(seed)]["result"])
            log_line(out, f"[seed {seed}] already done: {done.line()}", echo)
            continue
        entry = test_seed(problem, choice, seed, out, progress=progress, reporter=reporter)
        atomic_write_json(mpath, entry)
        if not keep_checkpoints:
            _remove_checkpoints([sdir / "checkpoint.pt"])
        per_seed[str(seed)] = entry
        reporter.plan.done["seed"] += 1
        line = EvalResult.from_dict(entry["result"]).line()
        log_line(out, f"[seed {seed}] test: {line}", echo)
    results = [EvalResult.from_dict(e["result"]) for e in per_seed.values()]
    summary = summarize(results)
    per_task = [r.extra["per_task"] for r in results if "per_task" in r.extra]
    if per_task:
        summary["per_task"] = {k: mean_std([p[k] for p in per_task]) for k in ("t1", "u", "s", "h")}
    report = {
        "unseen_version": __version__,
        "code_version": code_version(),  # the commit a report names beside this run's rows
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
        "precision": cfg.precision,
        "torch": torch.__version__,
    }
    atomic_write_json(out / "results.json", report)
    if not keep_checkpoints:  # also those left by a kill between a stage's end and cleanup
        _remove_checkpoints(
            [out / "validation" / "checkpoint.pt"]
            + [out / f"seed_{s}" / n for s in cfg.seeds for n in ("checkpoint.pt", BATCH_FILE)]
        )
    log_line(
        out,
        f"{cfg.method} on {ds.name} (test, {task.describe()['n_unseen_classes']} unseen classes) "
        + format_summary(summary),
        echo,
    )
    return report


def _log_start(
    out: Path,
    problem: Problem,
    mode: str,
    seeds_before: list[int],
    epochs: int,
    n_todo: int,
    validate_only: bool,
    echo: bool,
) -> None:
    """What this start does: the mode, config sources, data notes and the plan."""
    cfg, ds = problem.cfg, problem.dataset
    if mode == "extend":
        added = [s for s in cfg.seeds if s not in seeds_before]
        log_line(out, f"adding seed(s) {added} to the run of seeds {seeds_before}", echo)
    elif mode == "replace":
        log_line(
            out, "replacing an unfinished run of another config that had made no progress", echo
        )
    if cfg.sources:
        log_line(out, f"config: {' + '.join(cfg.sources)}", False)
    if cfg.precision != "fp32":
        log_line(
            out,
            f"precision: {cfg.precision} autocast for the generator's set-up, training and "
            "synthesis (losses, log-determinants, penalties and classifiers in fp32)",
            echo,
        )
    if ds.synthetic:
        log_line(
            out, f"NOTE: {ds.name} has SYNTHETIC features; these are not benchmark results.", echo
        )
    for q in ds.quirks:
        log_line(out, f"data quirk: {q}", echo)
    plan = (
        f"plan: validation ({epochs} generator epochs, classifiers every "
        f"{cfg.selection.eval_every}), then {n_todo} seed(s) of at most {epochs} epochs; "
        "a time estimate follows the first epoch"
        if not validate_only
        else f"plan: validation only ({epochs} generator epochs)"
    )
    Progress(out / "log.txt", echo=echo).line(plan, echo=echo)


def _remove_checkpoints(paths: list[Path]) -> None:
    """Checkpoints exist to resume a killed run; once their stage is finished they only take
    disk (a model's optimizer states make them ~3x its weights)."""
    for p in paths:
        if p.is_file():
            p.unlink()
