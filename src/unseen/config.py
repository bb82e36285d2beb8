"""Run configuration: typed dataclasses, YAML files and ``--set key=value`` overrides.

Resolution order (later wins): the method's defaults, the per-dataset file
``<method>/<DATASET>.yaml`` (when one exists), the user's ``--config FILE``, then ``--set``
values. A YAML file holds only the values that differ, grouped by section::

    method:      {cls_weight: 0.1}        # the method's config dataclass
    data:        {features: effnet_lite0.mat}
    classifier:  {lr: 0.001, epochs: 25}
    selection:   {eval_every: 5, n_synthetic: [300, 1200]}

Where ``<method>/<DATASET>.yaml`` is found (:func:`config_search_dirs`, first match wins):
the folders of the environment variable ``UNSEEN_CONFIG_PATH`` (``os.pathsep``-separated, a
user's own per-dataset files), then the configs shipped with unseen: the ``unseen.configs``
package data of an installed wheel (the repository's top-level ``configs/`` folder, packaged
by setup.py), or that folder itself when unseen runs from a source checkout. A relative path
``configs/...`` given as ``--config`` (or as a grid / sweep file) that does not exist in the
current folder is looked up in the same folders, so the README's commands work from anywhere.
"""

from __future__ import annotations

import dataclasses
import math
import os
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
    "check_number",
    "config_search_dirs",
    "find_config_file",
    "load_yaml",
    "parse_set",
    "per_dataset_config",
    "read_yaml_mapping",
    "resolve_run_config",
    "shipped_config_dir",
    "validate_run_config",
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
        repair_labels: an xlsa17 features file whose ``image_files`` show that its labels
            index another class order of ``att_splits.mat`` is refused; with this on, each
            image is relabelled with the column whose class name matches its image folder,
            and the dataset's quirks say so. Off.
        splits: an ``att_splits.mat``-layout file replacing the dataset's
            ``<DATASET>/att_splits.mat`` (its class split and semantics; features and
            ``sent_splits.mat`` still come from the dataset folder), e.g. one drawn by
            ``unseen splits`` (:mod:`unseen.data.splits`). A path, relative to the current
            folder; xlsa17 datasets only. Empty: the proposed split.
    """

    dataset: str = "demo"
    root: str = ""
    features: str = "res101.mat"
    semantics: str = "att"
    feature_transform: str = "minmax"
    semantic_transform: str = "none"
    transductive: bool = False
    repair_labels: bool = False
    splits: str = ""


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
    #: autocast dtype of the generator's training and synthesis: fp32 (default until the
    #: accuracy cost of the others is measured on validation), bf16, or fp16 (CUDA only);
    #: see unseen.methods.precision. The final classifiers always train in fp32.
    precision: str = "fp32"
    #: train the test seeds as one batched model (unseen.methods.seedbatch) where the method
    #: supports it; the same numbers as one after another up to floating-point rounding
    seed_batch: bool = False
    #: torch.compile every network of the generator (nn.Module.compile); measured per method
    #: in docs/speed.md
    compile: bool = False
    #: where the values came from (defaults, per-dataset file, --config, --set), for logs;
    #: not part of the config itself (run.yaml, config keys)
    sources: list[str] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (``run.yaml``, bench job specs and their keys).

        ``precision`` appears only when it is not fp32: the files and job keys of every run
        from before the option (all fp32) stay those of the same run made today.
        """
        out = {
            "method": self.method,
            "seeds": list(self.seeds),
            "device": self.device,
            "data": dataclasses.asdict(self.data),
            "method_params": dict(self.method_params),
            "classifier": dataclasses.asdict(self.classifier),
            "selection": dataclasses.asdict(self.selection),
        }
        if self.precision != "fp32":
            out["precision"] = self.precision
        if self.seed_batch:  # as precision: absent when off, so older keys stay the same
            out["seed_batch"] = True
        if self.compile:
            out["compile"] = True
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """The config of :meth:`to_dict` (a run's ``run.yaml``, a bench job's spec); missing
        sections take their defaults, unknown keys are a :class:`ConfigError`."""
        return cls(
            method=d["method"],
            data=_build(DataConfig, d.get("data") or {}, "data"),
            method_params=dict(d.get("method_params") or {}),
            classifier=_build(ClassifierConfig, d.get("classifier") or {}, "classifier"),
            selection=_build(SelectionConfig, d.get("selection") or {}, "selection"),
            seeds=list(d.get("seeds") or [0]),
            device=d.get("device", "cpu"),
            precision=d.get("precision", "fp32"),
            seed_batch=bool(d.get("seed_batch", False)),
            compile=bool(d.get("compile", False)),
        )


SECTIONS = ("method", "data", "classifier", "selection", "run")
#: keys of a config file's ``run`` section (and of ``--set run.KEY=VALUE``)
RUN_KEYS = ("seeds", "device", "precision", "seed_batch", "compile")


CONFIG_PATH_ENV = "UNSEEN_CONFIG_PATH"


def shipped_config_dir() -> Path | None:
    """The configs shipped with unseen: package data of an installed wheel, or the
    checkout's top-level ``configs/`` folder when unseen runs from its source tree."""
    import importlib.resources

    try:
        shipped = Path(str(importlib.resources.files("unseen.configs")))
    except (ModuleNotFoundError, TypeError):
        shipped = None
    if shipped is not None and shipped.is_dir():
        return shipped
    here = Path(__file__).resolve()
    checkout = here.parents[2]  # <checkout>/src/unseen/config.py
    if here.parents[1].name == "src" and (checkout / "pyproject.toml").is_file():
        if (checkout / "configs").is_dir():
            return checkout / "configs"
    return None


def config_search_dirs() -> list[Path]:
    """Folders searched for ``<method>/<DATASET>.yaml``, first match wins: the user's
    ``UNSEEN_CONFIG_PATH`` folders, then :func:`shipped_config_dir`."""
    user = [Path(p).expanduser() for p in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep)]
    dirs = [p for p in user if str(p) not in ("", ".") and p.is_dir()]
    shipped = shipped_config_dir()
    return dirs + ([shipped] if shipped is not None else [])


def per_dataset_config(method: str, dataset: str) -> Path | None:
    """The ``<method>/<DATASET>.yaml`` that applies, or ``None`` (method defaults only)."""
    for d in config_search_dirs():
        path = d / method / f"{dataset}.yaml"
        if path.is_file():
            return path
    return None


def find_config_file(path: str | Path, what: str = "config file") -> Path:
    """``path`` if it exists; else, for a relative ``configs/...`` path, the same file in
    :func:`config_search_dirs` (a shipped grid or config named as in the README).

    Raises:
        ConfigError: when neither exists, naming every place looked at.
    """
    path = Path(path).expanduser()
    if path.exists() or path.is_absolute() or not path.parts or path.parts[0] != "configs":
        return path
    rest = Path(*path.parts[1:])
    tried = [path.resolve()]
    for d in config_search_dirs():
        candidate = d / rest
        if candidate.is_file():
            return candidate
        tried.append(candidate)
    raise ConfigError(f"{what} {path} does not exist (looked at {', '.join(map(str, tried))})")


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file holding a mapping (a config, grid or sweep file), or a
    :class:`ConfigError` naming ``what`` it is and why not."""
    path = Path(path)
    text = read_text_file(path, what)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A config file: a mapping of sections (method, data, classifier, selection, run)."""
    data = read_yaml_mapping(path, "config file")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown section(s) {unknown}; valid: {', '.join(SECTIONS)}"
        )
    for key, value in data.items():
        if not isinstance(value, dict):
            raise ConfigError(f"config file {path}: section '{key}' must be a mapping")
    return data


def read_text_file(path: Path, what: str) -> str:
    """The text of a file the user named, or a :class:`ConfigError` saying why not."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder; give a YAML file") from None
    except PermissionError:
        raise ConfigError(f"{what} {path} cannot be read: permission denied") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not a text (UTF-8 YAML) file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


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
    precision: str | None = None,
    seed_batch: bool | None = None,
    compile: bool | None = None,
) -> RunConfig:
    """Merge defaults, the shipped per-dataset config, a user file and overrides.

    ``seeds``, ``device`` and ``precision`` (the command line's) win over the ``run``
    section of the files and ``--set run.KEY=...``.
    """
    from unseen.methods.base import get_method

    method_cls = get_method(method)
    merged: dict[str, dict[str, Any]] = {}
    sources = [f"{method} defaults"]
    per_dataset = per_dataset_config(method, dataset)
    if per_dataset is not None:
        _merge(merged, load_yaml(per_dataset))
        sources.append(str(per_dataset))
    if config_file:
        found = find_config_file(config_file)
        _merge(merged, load_yaml(found))
        sources.append(f"--config {found}")
    _merge(merged, overrides or {})
    if overrides:
        sources.append("--set " + " ".join(f"{s}.{k}" for s, v in overrides.items() for k in v))
    run = merged.get("run", {})
    unknown = sorted(set(run) - set(RUN_KEYS))
    if unknown:
        raise ConfigError(f"unknown run key(s) {unknown}; valid: {', '.join(RUN_KEYS)}")
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
        precision=precision or run.get("precision", "fp32"),
        seed_batch=seed_batch if seed_batch is not None else run.get("seed_batch", False),
        compile=compile if compile is not None else run.get("compile", False),
    )
    # Validate the method params now (unknown keys fail before any work is done).
    params = merged.get("method", {})
    defaults = dataclasses.asdict(method_cls.config_class())
    _build(method_cls.config_class, {**defaults, **params}, "method")
    cfg.method_params = dict(params)
    cfg.sources = sources
    validate_run_config(cfg)
    return cfg


_FEATURE_TRANSFORMS = ("minmax", "l2", "none")
_SEMANTIC_TRANSFORMS = ("none", "l2")
_CLASSIFIER_KINDS = ("softmax", "bilinear", "prototype", "method")
#: seeds feed numpy's and torch's generators: non-negative and below 2**32
MAX_SEED = 2**32 - 1


def check_number(
    where: str,
    value: Any,
    *,
    lo: float | None = None,
    lo_open: bool = False,
    hi: float | None = None,
    hi_open: bool = False,
    integer: bool = False,
) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite number in the given range.

    ``where`` names the value as the user gave it (``classifier.lr``, ``--top-k``).
    """
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and integer and not isinstance(value, int):
        ok = False
    if ok and not math.isfinite(value):
        ok = False
    if ok and lo is not None and (value <= lo if lo_open else value < lo):
        ok = False
    if ok and hi is not None and (value >= hi if hi_open else value > hi):
        ok = False
    if not ok:
        fmt = "d" if integer else "g"
        lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo:{fmt}}"
        hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi:{fmt}}"
        want = " and ".join(x for x in (lo_s, hi_s) if x)
        raise ConfigError(f"{where} must be {kind}{' ' + want if want else ''}, got {value!r}")


def _counts(where: str, values: Any) -> list[int]:
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise ConfigError(
            f"{where} must be a list of whole numbers, e.g. [300, 1200], got {values!r}"
        )
    return values


def validate_run_config(cfg: RunConfig) -> None:
    """Check every value of a resolved config (types, ranges, finiteness, known names).

    Called by :func:`resolve_run_config` and by :func:`unseen.runner.run` before anything is
    written, so a bad value ends the command with one sentence naming the key and value
    instead of a crash in the middle of training.

    Raises:
        ConfigError: naming the ``section.key`` at fault, its value and what is accepted.
    """
    from unseen.methods.base import check_method_values, config_from_dict, get_method

    d, c, s = cfg.data, cfg.classifier, cfg.selection
    for key in ("dataset", "features"):
        if not isinstance(getattr(d, key), str) or not getattr(d, key):
            raise ConfigError(f"data.{key} must be a non-empty name, got {getattr(d, key)!r}")
    if not isinstance(d.splits, str):
        raise ConfigError(f"data.splits must be a file path, got {d.splits!r}")
    if d.splits and (
        d.dataset in ("demo", "toy")
        or d.dataset.endswith(".npz")
        or d.dataset.lower().endswith("-synthetic")
    ):
        raise ConfigError(
            f"data.splits ({d.splits}) replaces an xlsa17 dataset's att_splits.mat; dataset "
            f"{d.dataset!r} has none (use AWA1, AWA2, CUB, SUN, APY, FLO or a folder under "
            "--data-root)"
        )
    if d.feature_transform not in _FEATURE_TRANSFORMS:
        raise ConfigError(
            f"data.feature_transform must be one of {', '.join(_FEATURE_TRANSFORMS)}, "
            f"got {d.feature_transform!r}"
        )
    if d.semantic_transform not in _SEMANTIC_TRANSFORMS:
        raise ConfigError(
            f"data.semantic_transform must be one of {', '.join(_SEMANTIC_TRANSFORMS)}, "
            f"got {d.semantic_transform!r}"
        )
    if c.kind not in _CLASSIFIER_KINDS:
        raise ConfigError(f"unknown classifier.kind {c.kind!r}; valid: {_CLASSIFIER_KINDS}")
    if c.zsl_train not in ("synthetic", "all"):
        raise ConfigError(f"classifier.zsl_train must be 'synthetic' or 'all', got {c.zsl_train!r}")
    check_number("classifier.lr", c.lr, lo=0, lo_open=True)
    check_number("classifier.epochs", c.epochs, lo=1, integer=True)
    check_number("classifier.batch_size", c.batch_size, lo=1, integer=True)
    check_number("classifier.beta1", c.beta1, lo=0, hi=1, hi_open=True)
    check_number("classifier.momentum", c.momentum, lo=0, hi=1, hi_open=True)
    check_number("classifier.weight_decay", c.weight_decay, lo=0)
    check_number("classifier.lr_decay", c.lr_decay, lo=0, lo_open=True, hi=1)
    check_number("selection.holdout", s.holdout, lo=0, lo_open=True, hi=1, hi_open=True)
    check_number("selection.eval_every", s.eval_every, lo=1, integer=True)
    if s.criterion not in ("h", "h_cal"):
        raise ConfigError(f"selection.criterion must be 'h' or 'h_cal', got {s.criterion!r}")
    n_syn = _counts("selection.n_synthetic", s.n_synthetic)
    if not n_syn or any(n <= 0 for n in n_syn):
        raise ConfigError(f"selection.n_synthetic must be positive counts, got {n_syn}")
    ce = _counts("selection.classifier_epochs", s.classifier_epochs)
    if any(e > c.epochs or e <= 0 for e in ce):
        raise ConfigError(
            f"selection.classifier_epochs {ce} must lie in [1, classifier.epochs={c.epochs}]"
        )
    if not cfg.seeds:
        raise ConfigError("at least one seed is needed")
    for seed in cfg.seeds:
        check_number("a seed (--seeds)", seed, lo=0, hi=MAX_SEED, integer=True)
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"--seeds lists a seed twice: {cfg.seeds}")
    if not isinstance(cfg.device, str) or not cfg.device:
        raise ConfigError(f"device must be a name such as cpu or cuda, got {cfg.device!r}")
    import torch

    try:
        torch.device(cfg.device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"unknown device {cfg.device!r}; use cpu, cuda or cuda:N (or mps)"
        ) from None
    from unseen.methods.precision import check_precision

    check_precision(cfg.precision, cfg.device)
    for key in ("seed_batch", "compile"):
        if not isinstance(getattr(cfg, key), bool):
            raise ConfigError(f"run.{key} must be true or false, got {getattr(cfg, key)!r}")
    method_cls = get_method(cfg.method)
    defaults = dataclasses.asdict(method_cls.config_class())
    mcfg = config_from_dict(method_cls.config_class, {**defaults, **cfg.method_params}, "method")
    check_method_values(mcfg)
