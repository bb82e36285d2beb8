"""One-file artefact of a trained model: method + final classifier + preprocessing + classes.

An artefact is what a finished benchmark run leaves behind for use on new data: everything
``unseen predict`` needs to turn raw feature vectors into class names, and to add new classes
later from their semantic vectors (the method synthesizes their features and the classifier
is refit, see :mod:`unseen.predict`).

It is a single ``torch.save`` file holding only tensors, numbers, strings, lists and dicts,
read back with ``torch.load(..., weights_only=True)``: loading an artefact never executes
pickled code. Contents (format ``unseen-artifact-v1``):

===================  ==================================================================
key                  meaning
===================  ==================================================================
method               name, config, seed, sizes, history and weights of the generative
                     method (what :meth:`GenerativeMethod.save` writes, less the
                     optimizer and RNG states, which only resuming training needs)
classifier           kind, hyper-parameters and learned tensors of the final classifier
                     (``None`` for ``classifier.kind: method``: the method's own one is
                     rebuilt from the class semantics when loaded)
classifier_config    the run's :class:`~unseen.config.ClassifierConfig` with the chosen
                     epochs, so that a refit over new classes trains the same way
n_synthetic          synthetic features per class chosen on validation
gamma                calibrated-stacking gamma chosen on validation (or ``None``)
feature_transform    name and fitted statistics (min-max) of the feature preprocessing
semantic_transform   ``none`` or ``l2``, applied to class vectors given later
class_names          names of all classes, in global-id order
semantics            ``(C, d_a)`` class semantics as the method saw them (transformed)
seen / classes       global ids of the seen classes / of the classifier's columns
semantics_source     what the semantic vectors are (e.g. ``FLO att``); text embeddings
                     are allowed for new classes only when this names the same embedder
text_embedder        ``None``, or ``{"name", "dim"}`` of the sentence-embedding model whose
                     embeddings the class semantics ARE (see :mod:`unseen.predict`)
provenance           run folder, dataset, seed, unseen version, torch version
===================  ==================================================================

:func:`export_run` builds one from a finished ``unseen run`` folder: it reloads the seed's
``model.pt``, refits the preprocessing on the same training features, and refits the final
classifier exactly as the runner did (same synthetic features, same seed), so the artefact
scores test data as the run's reported classifier did.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from unseen import __version__
from unseen.config import ClassifierConfig, DataConfig
from unseen.data.dataset import ZSLDataset
from unseen.data.preprocess import (
    FeatureTransform,
    MinMaxScaler,
    make_feature_transform,
    transform_semantics,
)
from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError, DataError, OutputExistsError
from unseen.files import atomic_save, load_torch_file
from unseen.methods.base import GenerativeMethod, config_from_dict, get_method

__all__ = [
    "FORMAT",
    "Artifact",
    "export_run",
    "fit_final_classifier",
    "load_artifact",
]

FORMAT = "unseen-artifact-v1"


# ---------------------------------------------------------------------- preprocessing
def transform_state(t: FeatureTransform, name: str) -> dict[str, Any]:
    """A fitted feature transform as tensors (weights-only serialisable)."""
    state: dict[str, Any] = {"name": name}
    if isinstance(t, MinMaxScaler):
        state["min"] = torch.from_numpy(np.asarray(t.min_, dtype=np.float32))
        state["scale"] = torch.from_numpy(np.asarray(t.scale_, dtype=np.float32))
    return state


def transform_from_state(state: dict[str, Any]) -> FeatureTransform:
    """The inverse of :func:`transform_state`."""
    t = make_feature_transform(state["name"])
    if isinstance(t, MinMaxScaler):
        t.min_ = state["min"].numpy()
        t.scale_ = state["scale"].numpy()
    return t


# ---------------------------------------------------------------------- classifier state
def classifier_state(clf: Any) -> dict[str, Any]:
    """Hyper-parameters and learned state (every attribute ending in ``_``) of a classifier."""
    learned = {
        k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v)
        for k, v in vars(clf).items()
        if k.endswith("_") and not k.startswith("_")
    }
    params = {
        k: (str(v) if isinstance(v, torch.device) else v) for k, v in clf.get_params().items()
    }
    return {"class": type(clf).__name__, "params": params, "learned": learned}


def classifier_from_state(state: dict[str, Any], device: str) -> Any:
    from unseen.classifiers import CLASSIFIERS

    by_class = {cls.__name__: name for name, cls in CLASSIFIERS.items()}
    if state["class"] not in by_class:
        raise DataError(f"artefact holds an unknown classifier type {state['class']!r}")
    from unseen.classifiers import make_classifier

    clf = make_classifier(by_class[state["class"]], **{**state["params"], "device": device})
    for k, v in state["learned"].items():
        setattr(clf, k, v.to(device) if isinstance(v, torch.Tensor) and k != "classes_" else v)
    return clf


class TransformedScorer:
    """Scores ``classifier(method.transform_features(x))`` (identity for most methods)."""

    def __init__(self, classifier: Any, method: GenerativeMethod) -> None:
        self.classifier = classifier
        self.method = method
        self.classes_ = classifier.classes_

    @torch.no_grad()
    def predict_scores(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.method.device)
        return self.classifier.predict_scores(self.method.transform_features(x))


# ---------------------------------------------------------------------- the final classifier
def fit_final_classifier(
    data: SeenTrainData,
    method: GenerativeMethod,
    classes: torch.Tensor,
    n_synthetic: int,
    cfg: ClassifierConfig,
    *,
    seed: int,
    device: str = "cpu",
) -> Any:
    """The runner's GZSL classifier over ``classes``: real seen + synthetic unseen features.

    The runner's own synthesize and classify stages (:func:`unseen.runner.train_and_evaluate`:
    same RNG seeding, same synthesis, same batch size rule), so the classifier is the one the
    run evaluated.
    """
    from unseen.runner import classify, synthesize

    if cfg.kind == "method":
        return method.own_classifier(classes, data.semantics[classes])
    if cfg.batch_equals_n_synthetic:
        cfg = dataclasses.replace(cfg, batch_size=n_synthetic)
    with torch.random.fork_rng(devices=[] if method.device.type != "cuda" else [method.device]):
        torch.manual_seed(10_007 * seed + 17)
        inputs = synthesize(method, data, data.unseen_classes, n_synthetic, cfg)
        fitted = classify(
            method,
            inputs,
            classes,
            data.unseen_classes,
            data.semantics,
            cfg,
            seed=seed,
            device=device,
        )
    return next(iter(fitted.values())).gzsl.classifier


# ---------------------------------------------------------------------- the artefact
@dataclass
class Artifact:
    """A trained method + final classifier + preprocessing + classes, ready to predict.

    Build one with :func:`export_run` (from a finished run) or :meth:`from_parts`; read one
    with :func:`load_artifact`; classify with :mod:`unseen.predict`.
    """

    method: GenerativeMethod
    classifier: Any  # a fitted classifier, or None for classifier.kind == "method"
    classifier_config: ClassifierConfig
    n_synthetic: int
    gamma: float | None
    feature_transform: FeatureTransform
    feature_transform_name: str
    semantic_transform: str
    class_names: list[str]
    semantics: torch.Tensor
    seen: torch.Tensor
    classes: torch.Tensor
    semantics_source: str = ""
    text_embedder: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ views
    @property
    def feature_dim(self) -> int:
        return int(self.method.dims_["feature_dim"])

    @property
    def semantic_dim(self) -> int:
        return int(self.semantics.shape[1])

    def scorer(self) -> Any:
        """A fitted scorer over :attr:`classes` taking *preprocessed* features."""
        if self.classifier_config.kind == "method":
            return self.method.own_classifier(self.classes, self.semantics[self.classes])
        return TransformedScorer(self.classifier, self.method)

    def preprocess(self, x: np.ndarray) -> torch.Tensor:
        """Apply the training preprocessing to raw ``(N, d)`` features."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.feature_dim:
            raise DataError(
                f"features of shape {x.shape} given, but this model takes (N, "
                f"{self.feature_dim}) vectors"
            )
        return torch.from_numpy(np.ascontiguousarray(self.feature_transform.transform(x)))

    def describe(self) -> dict[str, Any]:
        seen = set(self.seen.tolist())
        return {
            "method": self.method.name,
            "classifier": self.classifier_config.kind,
            "feature_dim": self.feature_dim,
            "semantic_dim": self.semantic_dim,
            "semantics_source": self.semantics_source,
            "text_embedder": self.text_embedder,
            "n_classes": len(self.classes),
            "n_seen": sum(int(c) in seen for c in self.classes),
            "n_synthetic": self.n_synthetic,
            "gamma": self.gamma,
            "feature_transform": self.feature_transform_name,
            "semantic_transform": self.semantic_transform,
            "provenance": self.provenance,
        }

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        m = self.method
        method_state = {
            "method": m.name,
            "config": dataclasses.asdict(m.config),
            "seed": m.seed,
            "dims": m.dims_,
            "epoch": m.epoch_,
            "history": m.history_,
            "nets": {k: v.detach().cpu() for k, v in m.nets_.state_dict().items()},
        }
        return {
            "format": FORMAT,
            "unseen_version": __version__,
            "method": method_state,
            "classifier": None if self.classifier is None else classifier_state(self.classifier),
            "classifier_config": dataclasses.asdict(self.classifier_config),
            "n_synthetic": int(self.n_synthetic),
            "gamma": None if self.gamma is None else float(self.gamma),
            "feature_transform": transform_state(
                self.feature_transform, self.feature_transform_name
            ),
            "semantic_transform": self.semantic_transform,
            "class_names": list(self.class_names),
            "semantics": self.semantics.detach().cpu().float(),
            "seen": self.seen.cpu().long(),
            "classes": self.classes.cpu().long(),
            "semantics_source": self.semantics_source,
            "text_embedder": self.text_embedder,
            "provenance": json.loads(json.dumps(self.provenance)),  # plain types only
        }

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the artefact atomically; refuses to replace a file without ``overwrite``."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path} already exists; pass --force to replace it")
        atomic_save(self.state(), path)
        return path


def load_artifact(path: str | Path, device: str = "cpu") -> Artifact:
    """Read an artefact written by :meth:`Artifact.save` (``weights_only=True``: no pickle)."""
    path = Path(path)
    st = load_torch_file(path, "model artefact")
    if not isinstance(st, dict) or st.get("format") != FORMAT:
        got = st.get("format") if isinstance(st, dict) else type(st).__name__
        hint = ""
        if got == "unseen-method-v1":
            hint = " (it is a method checkpoint; build an artefact with `unseen export RUN_DIR`)"
        raise DataError(f"{path} is not an unseen artefact (format {got!r}){hint}")
    ms = st["method"]
    klass = get_method(ms["method"])
    method = klass(
        config_from_dict(klass.config_class, ms["config"]), device=device, seed=ms["seed"]
    )
    method.dims_ = ms["dims"]
    torch.manual_seed(method.seed)
    method._build(method.dims_)
    method.nets_.load_state_dict(ms["nets"])
    method.nets_.to(method.device)
    method.nets_.eval()
    method.epoch_ = ms["epoch"]
    method.history_ = list(ms["history"])
    ccfg = config_from_dict(ClassifierConfig, st["classifier_config"], "classifier")
    clf = None if st["classifier"] is None else classifier_from_state(st["classifier"], device)
    ft = transform_from_state(st["feature_transform"])
    return Artifact(
        method=method,
        classifier=clf,
        classifier_config=ccfg,
        n_synthetic=int(st["n_synthetic"]),
        gamma=st["gamma"],
        feature_transform=ft,
        feature_transform_name=st["feature_transform"]["name"],
        semantic_transform=st["semantic_transform"],
        class_names=list(st["class_names"]),
        semantics=st["semantics"],
        seen=st["seen"],
        classes=st["classes"],
        semantics_source=st["semantics_source"],
        text_embedder=st["text_embedder"],
        provenance=dict(st["provenance"]),
    )


# ---------------------------------------------------------------------- export a run
def read_finished_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``run.yaml`` and ``results.json`` of a finished run, or a :class:`DataError` naming
    the file that is missing, unreadable or not written by ``unseen run``."""
    try:
        cfg = yaml.safe_load((run_dir / "run.yaml").read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{run_dir}/run.yaml is not readable YAML ({exc})") from None
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{run_dir}/results.json is not readable JSON ({exc}); it is damaged: rerun the "
            "run with --force to write it again"
        ) from None
    if not isinstance(cfg, dict) or "data" not in cfg or "classifier" not in cfg:
        raise DataError(f"{run_dir}/run.yaml was not written by `unseen run`")
    choice = results.get("validation", {}).get("choice") if isinstance(results, dict) else None
    if not isinstance(choice, dict) or "n_synthetic" not in choice:
        raise DataError(f"{run_dir}/results.json holds no validation choice: not a finished run")
    return cfg, results


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    seed: int | None = None,
    dataset: ZSLDataset | None = None,
    text_embedder: dict[str, Any] | None = None,
    semantics_source: str | None = None,
    new_names: list[str] | None = None,
    new_semantics: np.ndarray | None = None,
    device: str = "cpu",
    overwrite: bool = False,
) -> Artifact:
    """Build and save the artefact of one seed of a finished ``unseen run`` folder.

    Args:
        run_dir: the run's output folder (``run.yaml``, ``results.json``, ``seed_<s>/``).
        out: the artefact file to write.
        seed: which seed's model (default: the first seed of the run).
        dataset: the run's dataset, if it cannot be reloaded from ``run.yaml`` (a dataset
            passed to :func:`unseen.runner.run` in Python).
        text_embedder: ``{"name": ..., "dim": ...}`` when the dataset's class semantics are
            embeddings of class texts by that sentence-embedding model.
        semantics_source: a note on what the semantic vectors are (default from run.yaml).
        new_names, new_semantics: classes to add now, while the real seen training features
            are at hand: they are synthesized like the run's unseen classes and the
            classifier is trained as the runner's (real seen + synthetic unseen and new),
            so a new class costs nothing on the other classes (unlike a refit at prediction
            time, :func:`unseen.predict.add_classes`). Vectors in the dataset's raw space.
        device: where the method and classifier run.
        overwrite: replace ``out`` if it exists.
    """
    run_dir = Path(run_dir)
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    for need in ("run.yaml", "results.json"):
        if not (run_dir / need).is_file():
            raise DataError(
                f"{run_dir} holds no finished unseen run ({need} is missing); run "
                "`unseen run ... --out RUN_DIR` to the end first"
            )
    cfg, results = read_finished_run(run_dir)
    seeds = [int(s) for s in cfg.get("seeds", [])]
    seed = seeds[0] if seed is None else int(seed)
    mpath = run_dir / f"seed_{seed}" / "model.pt"
    if not mpath.is_file():
        raise DataError(f"{mpath} not found; the run's seeds are {seeds}")
    choice = results["validation"]["choice"]
    data_cfg = config_from_dict(DataConfig, cfg["data"], "data")
    from unseen.runner import build_task, load_dataset

    if dataset is None:
        dataset = load_dataset(data_cfg)
    task = build_task(data_cfg, dataset)
    method = GenerativeMethod.load(mpath, device=device)
    ccfg = config_from_dict(ClassifierConfig, cfg["classifier"], "classifier")
    if choice.get("classifier_epochs"):
        ccfg = dataclasses.replace(ccfg, epochs=int(choice["classifier_epochs"]))
    train = task.train
    classes, class_names = task.classes, list(dataset.class_names)
    if new_names:
        raw = np.asarray(new_semantics, dtype=np.float32)
        if raw.ndim != 2 or raw.shape != (len(new_names), train.semantic_dim):
            raise DataError(
                f"new classes: {len(new_names)} names and vectors of shape {raw.shape}; "
                f"expected ({len(new_names)}, {train.semantic_dim}) like {dataset.name}'s "
                "class semantics"
            )
        taken = [n for n in new_names if n in class_names]
        if taken or len(set(new_names)) != len(new_names):
            raise DataError(f"new class name {(taken or new_names)[0]!r} is not new/unique")
        sem_new = torch.from_numpy(transform_semantics(raw, data_cfg.semantic_transform))
        new_ids = torch.arange(train.n_classes, train.n_classes + len(new_names))
        train = dataclasses.replace(
            train,
            semantics=torch.cat([train.semantics, sem_new.to(train.semantics)]),
            unseen_classes=torch.cat([train.unseen_classes, new_ids]),
        )
        classes = torch.cat([classes, new_ids])
        class_names += list(new_names)
    clf = fit_final_classifier(
        train, method, classes, int(choice["n_synthetic"]), ccfg, seed=seed, device=device
    )
    # The same statistics as the task's (fitted on the same training rows): public API only.
    ft = make_feature_transform(data_cfg.feature_transform).fit(dataset.features[dataset.trainval])
    gamma = choice.get("gamma")
    if semantics_source is None:
        semantics_source = f"{dataset.name} {data_cfg.semantics}"
    if text_embedder is not None and int(text_embedder.get("dim", -1)) != train.semantic_dim:
        raise ConfigError(
            f"text embedder {text_embedder.get('name')!r} gives {text_embedder.get('dim')}-d "
            f"vectors but the class semantics of {dataset.name} are {train.semantic_dim}-d"
        )
    art = Artifact(
        method=method,
        classifier=None if ccfg.kind == "method" else clf,
        classifier_config=ccfg,
        n_synthetic=int(choice["n_synthetic"]),
        gamma=None if gamma is None or not math.isfinite(float(gamma)) else float(gamma),
        feature_transform=ft,
        feature_transform_name=data_cfg.feature_transform,
        semantic_transform=data_cfg.semantic_transform,
        class_names=class_names,
        semantics=train.semantics.cpu(),
        seen=task.seen_classes,
        classes=classes,
        semantics_source=semantics_source,
        text_embedder=text_embedder,
        provenance={
            "run_dir": str(run_dir),
            "dataset": dataset.name,
            "synthetic_features": bool(dataset.synthetic),
            "seed": seed,
            "method_file": str(mpath),
            "choice": {k: choice.get(k) for k in ("epochs", "n_synthetic", "classifier_epochs")},
            **({"added_classes": list(new_names)} if new_names else {}),
            "unseen_version": __version__,
            "torch": torch.__version__,
        },
    )
    art.save(out, overwrite=overwrite)
    return art


def prepare_semantics(art: Artifact, raw: np.ndarray, where: str) -> torch.Tensor:
    """New class vectors given in the dataset's raw semantic space -> the model's space."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 2 or raw.shape[1] != art.semantic_dim:
        raise DataError(
            f"{where}: class vectors of shape {raw.shape}, but this model was trained on "
            f"{art.semantic_dim}-d class semantics ({art.semantics_source})"
        )
    if not np.all(np.isfinite(raw)):
        raise DataError(f"{where}: class vectors contain NaN or inf values")
    return torch.from_numpy(transform_semantics(raw, art.semantic_transform))
