"""Run configuration: typed dataclasses, YAML files and ``--set key=value`` overrides.

Resolution order (later wins): the method's defaults, ``configs/<method>/<DATASET>.yaml``
shipped with unseen (when it exists), the user's ``--config FILE``, then ``--set`` values.
A YAML file holds only the values that differ, grouped by section::

    method:      {cls_weight: 0.1}        # the method's config dataclass
    data:        {features: effnet_lite0.mat}
    classifier:  {lr: 0.001, epochs: 25}
    selection:   {eval_every: 5, n_synthetic: [300, 1200]}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from unseen.errors import ConfigError

__all__ = [
    "ClassifierConfig",
    "DataConfig",
    "RunConfig",
    "SelectionConfig",
    "config_search_dirs",
    "load_yaml",
    "parse_set",
    "resolve_run_config",
]


@dataclass
class DataConfig:
    """Which data, and how it is preprocessed (transforms fitted on training data only).

    Attributes:
        dataset: xlsa17 dataset name, ``demo`` (built-in synthetic), a native ``.npz`` path,
            or ``<NAME>-synthetic`` (synthetic features on NAME's real semantics and splits).
        root: folder holding ``<DATASET>/att_splits.mat`` and the features file.
        features: features file name inside the dataset folder.
        semantics: ``att``, ``original_att``, ``sent`` (CUB sentence embeddings) or ``att+sent``
            (both, each L2-normalised, concatenated: GMN's CUB setting).
        feature_transform: ``minmax``, ``l2`` or ``none``.
        semantic_transform: ``none`` or ``l2``.
        transductive: expose unlabeled test features to ``fit`` (GMN's L^{S+U}); off.
    """

    dataset: str = "demo"
    root: str = ""
    features: str = "res101.mat"
    semantics: str = "att"
    feature_transform: str = "minmax"
    semantic_transform: str = "none"
    transductive: bool = False


@dataclass
class ClassifierConfig:
    """The final classifier trained on real seen + synthetic unseen features.

    ``kind``: ``softmax``, ``bilinear``, ``prototype`` (class means of real seen + synthetic
    unseen features) or ``method`` (the method's own classifier, e.g. IZF-NBC).
    ``zsl_train``: what the CZSL classifier is trained on: ``synthetic`` (a classifier over
    the unseen classes on synthetic unseen features only, f-CLSWGAN) or ``all`` (the GZSL
    classifier trained on real seen + synthetic unseen, scored on unseen columns only, GMN
    Sec. 3.4).
    ``seen_top_up``: add synthetic seen-class features so every seen class has at least as
    many training features as each unseen class gets (GMN on AWA).
    ``batch_equals_n_synthetic``: the minibatch size is the number of synthetic features per
    unseen class, as f-CLSWGAN's official code (``batch_size`` is then ignored).
    """

    kind: str = "softmax"
    lr: float = 1e-3
    epochs: int = 25
    batch_size: int = 64
    beta1: float = 0.5
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_decay: float = 1.0
    zsl_train: str = "synthetic"
    seen_top_up: bool = False
    batch_equals_n_synthetic: bool = False


@dataclass
class SelectionConfig:
    """What is chosen on the validation problem, and from which candidates.

    Attributes:
        holdout: fraction of pseudo-seen training images held out as validation-seen.
        eval_every: evaluate the generator on validation every this many epochs; the epoch
            count used for the final fit is the best of these (and the last epoch).
        n_synthetic: candidate numbers of synthetic features per unseen class.
        classifier_epochs: candidate classifier epoch counts (each <= classifier.epochs),
            evaluated along one classifier run; empty = use classifier.epochs.
        criterion: ``h_cal`` (default: validation H at the best calibration gamma, a smoother
            criterion than the raw H, which a slight seen bias can drive to 0) or ``h``
            (uncalibrated harmonic mean).
        calibrate: choose calibrated stacking's gamma on validation and report it.
        health: measure the generator's health (:mod:`unseen.eval.health`) at every
            validation point, log it with warnings, and keep it in
            ``validation/health.json`` (a few seconds per point).
        per_task_counts: also choose separate synthetic counts per task on validation (GMN's
            n_zsl, n_gzsl-u, n_gzsl-s: at the chosen generator epoch and classifier schedule,
            the counts with the best validation T1, U and S) and report, besides the single
            all-task model, T1 / U / S from those three models (``extra.per_task``; H is then
            the harmonic mean of U and S taken from two different models, as in the paper).
    """

    holdout: float = 0.2
    eval_every: int = 5
    n_synthetic: list[int] = field(default_factory=lambda: [300])
    classifier_epochs: list[int] = field(default_factory=list)
    criterion: str = "h_cal"
    calibrate: bool = True
    per_task_counts: bool = False
    health: bool = True


@dataclass
class RunConfig:
    method: str
    data: DataConfig = field(default_factory=DataConfig)
    method_params: dict[str, Any] = field(default_factory=dict)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seeds": list(self.seeds),
            "device": self.device,
            "data": dataclasses.asdict(self.data),
            "method_params": dict(self.method_params),
            "classifier": dataclasses.asdict(self.classifier),
            "selection": dataclasses.asdict(self.selection),
        }


SECTIONS = ("method", "data", "classifier", "selection", "run")


def config_search_dirs() -> list[Path]:
    """Folders searched for shipped ``<method>/<DATASET>.yaml`` files."""
    here = Path(__file__).resolve()
    return [p for p in (here.parents[2] / "configs", here.parent / "configs") if p.is_dir()]


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {data!r}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown section(s) {unknown}; valid: {', '.join(SECTIONS)}"
        )
    for key, value in data.items():
        if not isinstance(value, dict):
            raise ConfigError(f"config file {path}: section '{key}' must be a mapping")
    return data


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["method.epochs=10", "classifier.lr=1e-3"]`` -> nested overrides (YAML-typed values)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(
                f"--set '{item}' must look like section.key=value, e.g. method.epochs=10 "
                f"(sections: {', '.join(SECTIONS)})"
            )
        key, raw = item.split("=", 1)
        section, name = key.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(f"--set '{item}': unknown section '{section}'; valid: {SECTIONS}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        out.setdefault(section, {})[name] = value
    return out


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for section, values in src.items():
        dst.setdefault(section, {}).update(values)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    from unseen.methods.base import config_from_dict

    return config_from_dict(cls, values, where)


def resolve_run_config(
    method: str,
    dataset: str,
    *,
    data_root: str = "",
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    seeds: list[int] | None = None,
    device: str | None = None,
) -> RunConfig:
    """Merge defaults, the shipped per-dataset config, a user file and overrides."""
    from unseen.methods.base import get_method

    method_cls = get_method(method)
    merged: dict[str, dict[str, Any]] = {}
    shipped = [d / method / f"{dataset}.yaml" for d in config_search_dirs()]
    for path in shipped[:1] if shipped and shipped[0].exists() else []:
        _merge(merged, load_yaml(path))
    if config_file:
        _merge(merged, load_yaml(config_file))
    _merge(merged, overrides or {})
    run = merged.get("run", {})
    unknown = sorted(set(run) - {"seeds", "device"})
    if unknown:
        raise ConfigError(f"unknown run key(s) {unknown}; valid: seeds, device")
    data_values = {"dataset": dataset, "root": data_root, **merged.get("data", {})}
    if data_root:
        data_values["root"] = data_root
    data_values["dataset"] = dataset
    cfg = RunConfig(
        method=method,
        data=_build(DataConfig, data_values, "data"),
        classifier=_build(ClassifierConfig, merged.get("classifier", {}), "classifier"),
        selection=_build(SelectionConfig, merged.get("selection", {}), "selection"),
        seeds=list(seeds if seeds is not None else run.get("seeds", [0, 1, 2])),
        device=device or run.get("device", "cpu"),
    )
    # Validate the method params now (unknown keys fail before any work is done).
    params = merged.get("method", {})
    defaults = dataclasses.asdict(method_cls.config_class())
    _build(method_cls.config_class, {**defaults, **params}, "method")
    cfg.method_params = dict(params)
    if cfg.selection.criterion not in ("h", "h_cal"):
        raise ConfigError(
            f"selection.criterion must be 'h' or 'h_cal', got {cfg.selection.criterion!r}"
        )
    if not cfg.selection.n_synthetic or any(n <= 0 for n in cfg.selection.n_synthetic):
        raise ConfigError(
            f"selection.n_synthetic must be positive counts, got {cfg.selection.n_synthetic}"
        )
    if any(e > cfg.classifier.epochs or e <= 0 for e in cfg.selection.classifier_epochs):
        raise ConfigError(
            f"selection.classifier_epochs {cfg.selection.classifier_epochs} must lie in "
            f"[1, classifier.epochs={cfg.classifier.epochs}]"
        )
    if cfg.classifier.zsl_train not in ("synthetic", "all"):
        raise ConfigError(
            f"classifier.zsl_train must be 'synthetic' or 'all', got {cfg.classifier.zsl_train!r}"
        )
    kinds = ("softmax", "bilinear", "prototype", "method")
    if cfg.classifier.kind not in kinds:
        raise ConfigError(f"unknown classifier.kind {cfg.classifier.kind!r}; valid: {kinds}")
    if not cfg.seeds:
        raise ConfigError("at least one seed is needed")
    return cfg
