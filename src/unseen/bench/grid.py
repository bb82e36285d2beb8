"""Grid files: methods x datasets x variants x seeds, expanded into runner jobs.

A grid file is YAML; every value that is not given falls back to the runner's own resolution
(method defaults, the shipped ``configs/<method>/<DATASET>.yaml``, a ``config`` file, ``set``)::

    name: flo                       # default output folder runs/bench-<name>
    data_root: ../shared/data/xlsa17
    datasets: [FLO]
    seeds: [0, 1, 2]
    set: {data.features: effnet_lite0.mat}     # applied to every entry
    import: [runs]                  # folders searched for finished `unseen run` outputs
    features_note: {FLO: "EfficientNet-Lite0 features, the papers use ResNet-101"}
    entries:
      - {label: f-CLSWGAN, method: clswgan, config: "configs/clswgan/{dataset}-fast.yaml",
         paper: f-CLSWGAN}
      - label: TL-Coupling
        method: tlcoupling
        variants:                   # one job per variant, each a set of overrides
          S1: {method.alpha1: 0.0, method.gamma: 0.0}
          S4: {method.coupled_features: true}

Adding a method to a grid is one entry line. A job is one ``unseen run`` (validation selection
once with the first seed, then every seed on test), exactly what the runner does by hand, so
runner folders made by hand and bench jobs are interchangeable (:func:`config_key`).

Relative paths in a grid or sweep file (``config``, ``data_root``, ``import``, ``papers``)
are taken from the file's own folder, never from the current one (:func:`path_anchors`): a
grid behaves the same whichever folder ``unseen bench`` starts in. A file inside a
``configs/`` tree (the shipped grids under ``configs/bench/``) may also name paths from the
folder holding that ``configs/`` folder, the project root (``configs/clswgan/FLO-fast.yaml``,
``../shared/data/xlsa17``, ``runs``); the first place where the path exists wins. A
``config`` file found nowhere is an error, as is a method that is not registered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unseen.config import (
    ClassifierConfig,
    DataConfig,
    RunConfig,
    SelectionConfig,
    parse_set,
    resolve_run_config,
)
from unseen.errors import ConfigError

__all__ = [
    "Grid",
    "Job",
    "config_key",
    "expand",
    "load_grid",
    "normalized_config",
    "path_anchors",
    "read_run_folder",
    "resolve_path",
    "run_config_from_dict",
]

_GRID_KEYS = {
    "name",
    "description",
    "data_root",
    "datasets",
    "seeds",
    "device",
    "set",
    "import",
    "features_note",
    "papers",
    "entries",
}
_ENTRY_KEYS = {
    "label",
    "method",
    "config",
    "set",
    "variants",
    "paper",
    "paper_variants",  # only these variants get the paper's numbers beside (the full model)
    "datasets",
    "import_only",
}


@dataclass
class Job:
    """One runner invocation of a grid: a resolved config over its seeds."""

    label: str  # report row name (entry label + variant)
    method: str
    dataset: str
    variant: str
    config: RunConfig
    key: str  # identity of the config without its seeds (see config_key)
    paper: str | None = None  # row name in the papers' table to show beside
    import_only: bool = False

    @property
    def slug(self) -> str:
        safe = "".join(c if c.isalnum() or c in "+-." else "_" for c in self.label)
        return f"{safe}-{self.dataset}-{self.key[:8]}"


@dataclass
class Grid:
    name: str
    path: Path | None
    jobs: list[Job]
    skipped: list[str] = field(default_factory=list)  # entries that could not be expanded
    import_dirs: list[Path] = field(default_factory=list)
    features_note: dict[str, str] = field(default_factory=dict)
    papers: Path | None = None
    description: str = ""


def normalized_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A resolved config (``RunConfig.to_dict()`` or a runner's ``run.yaml``) with every
    default filled in, the data root dropped (a path spelling, not the data) and the seed list
    replaced by the validation seed (the first): what decides one seed's result."""
    from unseen.methods.base import get_method

    out = json.loads(json.dumps(cfg))
    defaults = {
        "data": dataclasses.asdict(DataConfig()),
        "classifier": dataclasses.asdict(ClassifierConfig()),
        "selection": dataclasses.asdict(SelectionConfig()),
    }
    for section, values in defaults.items():
        out[section] = {**values, **(out.get(section) or {})}
    out["data"].pop("root", None)
    try:
        method_defaults = dataclasses.asdict(get_method(out["method"]).config_class())
    except ConfigError:
        method_defaults = {}
    out["method_params"] = {**method_defaults, **(out.get("method_params") or {})}
    seeds = out.pop("seeds", None) or [0]
    out["validation_seed"] = seeds[0]
    out.setdefault("device", "cpu")
    return out


def config_key(cfg: dict[str, Any]) -> str:
    """Hash of :func:`normalized_config`: same key + same seed = same run."""
    text = json.dumps(normalized_config(cfg), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()


def _sets(value: Any, where: str) -> dict[str, Any]:
    """``{"method.epochs": 5}`` or ``["method.epochs=5"]`` -> parse_set's nested dict."""
    if value is None:
        return {}
    if isinstance(value, dict):
        items = [f"{k}={json.dumps(v)}" for k, v in value.items()]
    elif isinstance(value, list):
        items = [str(v) for v in value]
    else:
        raise ConfigError(f"{where}: 'set' must be a mapping of section.key: value")
    return parse_set(items)


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for section, values in part.items():
            out.setdefault(section, {}).update(values)
    return out


def path_anchors(file: Path | None) -> list[Path]:
    """Folders the relative paths of a grid or sweep ``file`` are taken from, in order: its
    own folder, then the folder holding the nearest ``configs`` folder above it (the project
    root of a grid shipped in ``configs/bench/``). The current folder when there is no file.
    """
    if file is None:
        return [Path.cwd()]
    folder = Path(file).resolve().parent
    anchors = [folder]
    for parent in (folder, *folder.parents):
        if parent.name == "configs":
            anchors.append(parent.parent)
            break
    return anchors


def resolve_path(value: Any, anchors: list[Path]) -> Path:
    """A path of a grid or sweep file: absolute as is; relative, from the first anchor where
    it exists (a ``configs/...`` path also among the shipped configs); else from the first
    anchor (where an error message will say it is missing)."""
    from unseen.config import config_search_dirs

    path = Path(str(value)).expanduser()
    if path.is_absolute():
        return path
    for anchor in anchors:
        if (anchor / path).exists():
            return anchor / path
    if path.parts and path.parts[0] == "configs":
        for d in config_search_dirs():
            if (d / Path(*path.parts[1:])).exists():
                return d / Path(*path.parts[1:])
    return anchors[0] / path


def load_grid(
    path: str | Path,
    *,
    base: Path | None = None,
    device: str | None = None,
    seeds: list[int] | None = None,
    data_root: str | None = None,
) -> Grid:
    """Read and expand a grid file. Its relative paths are taken from its own folder (see
    :func:`path_anchors`), or from ``base`` when given. ``data_root`` replaces the file's."""
    from unseen.config import find_config_file

    path = find_config_file(path, "grid file")
    raw = load_yaml_any(path, "grid file")
    return expand(raw, path=path, base=base, device=device, seeds=seeds, data_root=data_root)


def load_yaml_any(path: Path, what: str = "grid file") -> dict[str, Any]:
    """A YAML file holding a mapping (grid or sweep file), or a :class:`ConfigError`."""
    import yaml

    from unseen.config import read_text_file

    text = read_text_file(path, what)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def expand(
    raw: dict[str, Any],
    *,
    path: Path | None = None,
    base: Path | None = None,
    device: str | None = None,
    seeds: list[int] | None = None,
    data_root: str | None = None,
) -> Grid:
    """Expand a parsed grid into jobs (entries x datasets x variants).

    Relative paths are taken from ``base`` when given, else from the grid file's folder
    (:func:`path_anchors`); ``data_root`` replaces the grid's ``data_root``.

    Raises:
        ConfigError: for unknown keys, an entry whose method is not registered or whose
            ``config`` file exists nowhere, or entries that resolve to the same config.
    """
    from unseen.methods import available_methods

    where = str(path or "grid")
    unknown = sorted(set(raw) - _GRID_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {sorted(_GRID_KEYS)}")
    anchors = [Path(base)] if base is not None else path_anchors(path)
    entries = raw.get("entries") or []
    if not entries or not isinstance(entries, list):
        raise ConfigError(f"{where}: no 'entries' (a list of {{method: ...}} mappings)")
    datasets = raw.get("datasets") or []
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        raise ConfigError(f"{where}: 'datasets' must be a list of names, got {datasets!r}")
    if data_root is None and raw.get("data_root"):
        data_root = str(resolve_path(raw["data_root"], anchors))
    common = _sets(raw.get("set"), where)
    registered = available_methods()
    jobs: list[Job] = []
    skipped: list[str] = []
    for i, entry in enumerate(entries):
        ewhere = f"{where}: entries[{i}]"
        if not isinstance(entry, dict) or "method" not in entry:
            raise ConfigError(f"{ewhere} must be a mapping with at least 'method'")
        bad = sorted(set(entry) - _ENTRY_KEYS)
        if bad:
            raise ConfigError(f"{ewhere}: unknown key(s) {bad}; valid: {sorted(_ENTRY_KEYS)}")
        method = entry["method"]
        label = str(entry.get("label", method))
        if method not in registered:
            raise ConfigError(
                f"{ewhere} ({label}): method '{method}' is not registered; available: "
                f"{', '.join(registered)}. A method of your own is loaded with --plugin MODULE "
                "or by installing its package (entry point group 'unseen.methods')"
            )
        variants = entry.get("variants") or {"": {}}
        if not isinstance(variants, dict):
            raise ConfigError(f"{ewhere}: 'variants' must map names to settings")
        for dataset in entry.get("datasets") or datasets:
            config_file = entry.get("config")
            if config_file:
                try:
                    named = str(config_file).format(dataset=dataset)
                except (KeyError, IndexError, ValueError):
                    raise ConfigError(
                        f"{ewhere}: config {config_file!r} may only use the field {{dataset}}"
                    ) from None
                found = resolve_path(named, anchors)
                if not found.is_file():
                    looked = ", ".join(str(a / named) for a in anchors)
                    raise ConfigError(
                        f"{ewhere} ({label} / {dataset}): config file {named} does not exist "
                        f"(relative paths are taken from the grid file's folder; looked at "
                        f"{looked})"
                    )
                config_file = str(found)
            for vname, vset in variants.items():
                overrides = _merge(
                    common, _sets(entry.get("set"), ewhere), _sets(vset, f"{ewhere}.{vname}")
                )
                cfg = resolve_run_config(
                    method,
                    dataset,
                    data_root=data_root or "",
                    config_file=config_file,
                    overrides=overrides,
                    seeds=seeds or raw.get("seeds"),
                    device=device or raw.get("device"),
                )
                jobs.append(
                    Job(
                        label=f"{label} {vname}".strip(),
                        method=method,
                        dataset=dataset,
                        variant=str(vname),
                        config=cfg,
                        key=config_key(cfg.to_dict()),
                        paper=entry.get("paper")
                        if vname in entry.get("paper_variants", [vname])
                        else None,
                        import_only=bool(entry.get("import_only", False)),
                    )
                )
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        dup = sorted({j.label for j in jobs if keys.count(j.key) > 1})
        raise ConfigError(f"{where}: entries {dup} resolve to the same config")
    papers = raw.get("papers")
    return Grid(
        name=str(raw.get("name") or (path.stem if path else "grid")),
        path=path,
        jobs=jobs,
        skipped=skipped,
        import_dirs=[resolve_path(p, anchors) for p in raw.get("import") or []],
        features_note=dict(raw.get("features_note") or {}),
        papers=_papers_file(papers, anchors, where) if papers else None,
        description=str(raw.get("description", "")),
    )


def _papers_file(value: Any, anchors: list[Path], where: str) -> Path:
    found = resolve_path(value, anchors)
    if not found.is_file():
        raise ConfigError(
            f"{where}: papers file {value} does not exist (looked at "
            f"{', '.join(str(a / str(value)) for a in anchors)})"
        )
    return found


def read_run_folder(folder: Path) -> dict[str, Any] | None:
    """The finished runner output in ``folder`` (run.yaml + results.json), or None."""
    res = folder / "results.json"
    if not (folder / "run.yaml").exists() or not res.exists():
        return None
    try:
        results = json.loads(res.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    cfg = _plain_yaml(folder / "run.yaml")
    return {"config": cfg, "results": results, "folder": folder}


def _plain_yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def run_config_from_dict(d: dict[str, Any]) -> RunConfig:
    """Rebuild a :class:`RunConfig` from ``RunConfig.to_dict()`` (the job spec's form)."""
    from unseen.methods.base import config_from_dict

    return RunConfig(
        method=d["method"],
        data=config_from_dict(DataConfig, d.get("data", {}), "data"),
        method_params=dict(d.get("method_params", {})),
        classifier=config_from_dict(ClassifierConfig, d.get("classifier", {}), "classifier"),
        selection=config_from_dict(SelectionConfig, d.get("selection", {}), "selection"),
        seeds=list(d.get("seeds", [0])),
        device=d.get("device", "cpu"),
    )
