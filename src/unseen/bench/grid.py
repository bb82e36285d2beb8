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

A paper's study table or sensitivity figure is a grid too (``configs/studies/``), with these
keys on top (rendered by :mod:`unseen.bench.study`)::

    validate_only: true             # every job stops after the validation choice (figures)
    columns:                        # every row once per column, e.g. IZF's Tab. 3
      NBC: {classifier.kind: method}
      Softmax: {classifier.kind: softmax}
    layout: {kind: table, paper: IZF Tab. 3, metrics: [s, u, h]}    # see unseen.bench.study
    entries:
      - method: izf
        sweep:                      # one job per value, one parameter at a time (Fig. 5)
          method.lambda_c: [0.1, 0.5, 1.0]
      - method: cvae
        borrow:                     # values of another method's config for the same dataset
          method: izf
          sections: [data, classifier, selection]
          keys: [epochs, batch_size]            # or {this_key: its_key}
      - method: gmn
        runner: real-only           # a named row runner (unseen.bench.runners.RUNNERS)

Robustness across class splits (Rossi et al. 2024): ``splits`` adds a split axis. Every job
then runs on the proposed split and on ``n`` alternative class splits drawn by ``unseen
splits`` (:func:`unseen.data.splits.write_splits`: the proposed split's counts, ``seed``),
each as ``data.splits`` = ``<folder>/<DATASET>_seed<seed>_split<k>.mat``; the files are drawn
before the first job that needs them (never replaced), and the report adds a table of each
row's proposed-split number beside its mean ± std over the alternative splits::

    splits: {n: 3, seed: 0, folder: runs/splits}     # or: unseen bench GRID --splits 3

Every job's row is its variant (or sweep point) name, its column the column's name.

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
    read_yaml_mapping,
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
    "split_files",
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
    "columns",
    "validate_only",
    "layout",
    "splits",
}
_SPLITS_KEYS = {"n", "seed", "folder"}
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
    "sweep",
    "runner",
    "borrow",
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
    row: str = ""  # a study's row: the variant or sweep point (the entry label without one)
    column: str = ""  # a study's column (grid ``columns``), "" without
    # ("section.key", value) of the sweep points this job is (the values a sweep shares
    # with its base config are one job: e.g. each parameter's default value)
    sweep: list[tuple[str, Any]] = field(default_factory=list)
    runner: str = "protocol"  # how the job runs (unseen.bench.runners.RUNNERS)
    validate_only: bool = False  # stop after the validation choice
    split: str = ""  # "" = the dataset's proposed split, else "split<k>" (grid ``splits``)

    @property
    def where(self) -> str:
        """``label / DATASET`` (``label / DATASET split<k>`` on an alternative split), for logs."""
        return f"{self.label} / {self.dataset}" + (f" {self.split}" if self.split else "")

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
    layout: dict[str, Any] = field(default_factory=dict)  # a study's (unseen.bench.study)
    # the split axis (grid ``splits``): {"n", "seed", "folder"}; empty without one
    splits: dict[str, Any] = field(default_factory=dict)

    def split_files(self, dataset: str) -> list[Path]:
        """The alternative split files of ``dataset`` (split 1 first); none without a split
        axis."""
        return split_files(self.splits, dataset)


def split_files(axis: dict[str, Any], dataset: str) -> list[Path]:
    """``<folder>/<DATASET>_seed<seed>_split<k>.mat`` for k = 1..n of a split ``axis``
    (the grid's ``splits``); none for an empty axis."""
    from unseen.data.splits import split_file_name

    if not axis:
        return []
    n, seed, folder = axis["n"], axis["seed"], axis["folder"]
    return [folder / split_file_name(dataset, seed, k) for k in range(1, n + 1)]


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
    if out.get("runner", "protocol") == "protocol":  # keys of protocol runs stay as they were
        out.pop("runner", None)
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


def resolve_path(value: Any, anchors: list[Path], *, missing_from: int = 0) -> Path:
    """A path of a grid or sweep file: absolute as is; relative, from the first anchor where
    it exists (a ``configs/...`` path also among the shipped configs); else from the anchor
    ``missing_from`` (the first, where an error message will say it is missing; the last,
    the project root, for folders that may not exist yet such as ``import: [runs]``)."""
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
    return anchors[missing_from] / path


def load_grid(path: str | Path, *, base: Path | None = None, **options: Any) -> Grid:
    """Read and expand a grid file. Its relative paths are taken from its own folder (see
    :func:`path_anchors`), or from ``base`` when given. ``options``: the command line's
    values of :func:`expand` (``device``, ``seeds``, ``data_root``, ``datasets``, ``sets``,
    ``config``, ``rows``), which replace or add to the file's."""
    from unseen.config import find_config_file

    path = find_config_file(path, "grid file")
    raw = read_yaml_mapping(path, "grid file")
    return expand(raw, path=path, base=base, **options)


def expand(
    raw: dict[str, Any],
    *,
    path: Path | None = None,
    base: Path | None = None,
    device: str | None = None,
    seeds: list[int] | None = None,
    data_root: str | None = None,
    datasets: list[str] | None = None,
    sets: list[str] | None = None,
    config: str | None = None,
    rows: list[str] | None = None,
    validate_only: bool = False,
    splits: int | None = None,
) -> Grid:
    """Expand a parsed grid into jobs (entries x datasets x variants or sweep points x
    columns).

    Relative paths are taken from ``base`` when given, else from the grid file's folder
    (:func:`path_anchors`). From the command line: ``data_root`` and ``datasets`` replace the
    grid's, ``sets`` (``section.key=value``) add to its ``set`` (an entry's, a variant's and a
    column's own settings still win; a ``method.`` key reaches the entries whose method has
    it), ``config`` is the config file of every entry that names
    none, ``rows`` keeps the jobs whose row or label matches one of these shell patterns,
    ``validate_only`` stops every job after its validation choice, and ``splits`` (a count)
    adds or replaces the number of alternative class splits of the grid's ``splits``.

    Raises:
        ConfigError: for unknown keys, an entry whose method is not registered or whose
            ``config`` file exists nowhere, or entries that resolve to the same config.
    """
    where = str(path or "grid")
    unknown = sorted(set(raw) - _GRID_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {sorted(_GRID_KEYS)}")
    anchors = [Path(base)] if base is not None else path_anchors(path)
    entries = raw.get("entries") or []
    if not entries or not isinstance(entries, list):
        raise ConfigError(f"{where}: no 'entries' (a list of {{method: ...}} mappings)")
    datasets = datasets or raw.get("datasets") or []
    if not datasets:
        raise ConfigError(f"{where}: no datasets: give them in the file or with --dataset")
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        raise ConfigError(f"{where}: 'datasets' must be a list of names, got {datasets!r}")
    if data_root is None and raw.get("data_root"):
        data_root = str(resolve_path(raw["data_root"], anchors))
    common = _merge(_sets(raw.get("set"), where), parse_set(list(sets or [])))
    columns = raw.get("columns") or {"": {}}
    if not isinstance(columns, dict):
        raise ConfigError(f"{where}: 'columns' must map column names to settings")
    split_axis = _split_axis(raw.get("splits"), splits, anchors, where)
    ctx = _Context(
        where=where,
        anchors=anchors,
        data_root=data_root or "",
        seeds=seeds or raw.get("seeds"),
        device=device or raw.get("device"),
        config=config,
        validate_only=bool(validate_only or raw.get("validate_only", False)),
        splits=split_axis,
    )
    jobs: list[Job] = []
    for i, entry in enumerate(entries):
        for dataset in _entry_datasets(entry, datasets, f"{where}: entries[{i}]"):
            jobs += _entry_jobs(
                entry, i, dataset, _for_method(common, entry["method"]), columns, ctx
            )
    known = set().union(*(_method_keys(e["method"]) for e in entries))
    unknown = sorted(set(common.get("method", {})) - known)
    if unknown:
        raise ConfigError(f"{where}: no method of the grid has the key(s) method.{unknown}")
    if rows:
        jobs = _only_rows(jobs, rows)
        if not jobs:
            raise ConfigError(f"{where}: no row matches --rows {' '.join(rows)}")
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        dup = sorted({j.label for j in jobs if keys.count(j.key) > 1})
        raise ConfigError(f"{where}: entries {dup} resolve to the same config")
    papers = raw.get("papers")
    layout = raw.get("layout") or {}
    if not isinstance(layout, dict):
        raise ConfigError(f"{where}: 'layout' must be a mapping (see unseen.bench.study)")
    from unseen.bench.study import check_layout

    check_layout(layout, ctx.validate_only, where)
    if layout and split_axis:
        raise ConfigError(
            f"{where}: 'splits' (or --splits) is for report grids; a study table "
            "('layout') has no place for split rows"
        )
    return Grid(
        name=str(raw.get("name") or (path.stem if path else "grid")),
        path=path,
        jobs=jobs,
        import_dirs=[resolve_path(p, anchors, missing_from=-1) for p in raw.get("import") or []],
        features_note=dict(raw.get("features_note") or {}),
        papers=_papers_file(papers, anchors, where) if papers else None,
        description=str(raw.get("description", "")),
        layout=layout,
        splits=split_axis,
    )


def _split_axis(value: Any, count: int | None, anchors: list[Path], where: str) -> dict[str, Any]:
    """The grid's ``splits`` mapping checked and completed (``--splits N`` sets ``n``)."""
    if value is None and not count:
        return {}
    if value is None:
        value = {}
    if not isinstance(value, dict) or set(value) - _SPLITS_KEYS:
        raise ConfigError(
            f"{where}: 'splits' must be a mapping with keys {sorted(_SPLITS_KEYS)}, e.g. "
            f"{{n: 3, seed: 0, folder: runs/splits}}; got {value!r}"
        )
    n = count if count else value.get("n")
    seed = value.get("seed", 0)
    for key, v, lo in (("n", n, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ConfigError(f"{where}: splits.{key} must be an integer >= {lo}, got {v!r}")
    folder = resolve_path(value.get("folder", "runs/splits"), anchors, missing_from=-1)
    return {"n": n, "seed": seed, "folder": folder}


def _only_rows(jobs: list[Job], patterns: list[str]) -> list[Job]:
    """The jobs whose row, label or one of whose sweep points (``key=value``, with or
    without the entry label before it) matches a shell pattern; a job shared by several
    sweep points keeps only the points that match."""
    import fnmatch

    def hit(*names: str) -> bool:
        return any(fnmatch.fnmatch(n, p) for p in patterns for n in names)

    kept = []
    for job in jobs:
        prefix = job.label[: job.label.index(job.row)] if job.row in job.label else ""
        names = {p: f"{p[0].split('.', 1)[1]}={p[1]}" for p in job.sweep}
        points = [p for p in job.sweep if hit(names[p], prefix + names[p])]
        if points:
            job.sweep = points
            kept.append(job)
        elif hit(job.row, job.label):
            kept.append(job)
    return kept


def _method_keys(method: str) -> set[str]:
    from unseen.methods.base import get_method

    return {f.name for f in dataclasses.fields(get_method(method).config_class)}


def _for_method(common: dict[str, Any], method: str) -> dict[str, Any]:
    """The grid's common settings for one entry: its ``method.`` keys that this entry's
    method has (a study may mix methods, e.g. IZF's Tab. 3 with its CVAE baseline)."""
    if "method" not in common:
        return common
    keys = _method_keys(method)
    return {**common, "method": {k: v for k, v in common["method"].items() if k in keys}}


@dataclass
class _Context:
    """What every entry of one grid expansion shares."""

    where: str
    anchors: list[Path]
    data_root: str
    seeds: list[int] | None
    device: str | None
    config: str | None
    validate_only: bool
    splits: dict[str, Any] = field(default_factory=dict)

    def dataset_splits(self, dataset: str) -> list[tuple[str, dict[str, Any]]]:
        """("", {}) for the proposed split, then ("split<k>", {"data": {"splits": file}})."""
        files = split_files(self.splits, dataset)
        alternatives = [
            (f"split{k}", {"data": {"splits": str(f)}}) for k, f in enumerate(files, start=1)
        ]
        return [("", {}), *alternatives]


def _entry_datasets(entry: Any, datasets: list[str], where: str) -> list[str]:
    from unseen.methods import available_methods

    if not isinstance(entry, dict) or "method" not in entry:
        raise ConfigError(f"{where} must be a mapping with at least 'method'")
    bad = sorted(set(entry) - _ENTRY_KEYS)
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {bad}; valid: {sorted(_ENTRY_KEYS)}")
    registered = available_methods()
    if entry["method"] not in registered:
        raise ConfigError(
            f"{where} ({entry.get('label', entry['method'])}): method '{entry['method']}' is "
            f"not registered; available: {', '.join(registered)}. A method of your own is "
            "loaded with --plugin MODULE or by installing its package (entry point group "
            "'unseen.methods')"
        )
    return list(entry.get("datasets") or datasets)


def _entry_points(entry: dict[str, Any], where: str) -> list[tuple[str, Any, tuple | None]]:
    """(row name, settings, sweep point) of an entry: its variants, or one per sweep value."""
    sweep = entry.get("sweep")
    if sweep is None:
        variants = entry.get("variants") or {"": {}}
        if not isinstance(variants, dict):
            raise ConfigError(f"{where}: 'variants' must map names to settings")
        return [(str(name), vset, None) for name, vset in variants.items()]
    if entry.get("variants") or not isinstance(sweep, dict):
        raise ConfigError(
            f"{where}: 'sweep' maps section.key to a list of values (and replaces 'variants')"
        )
    points = []
    for key, values in sweep.items():
        if not isinstance(values, list) or "." not in str(key):
            raise ConfigError(f"{where}: sweep {key!r} must be section.key: [values]")
        short = str(key).split(".", 1)[1]
        points += [(f"{short}={v}", {key: v}, (str(key), v)) for v in values]
    return points


def _entry_jobs(
    entry: dict[str, Any],
    i: int,
    dataset: str,
    common: dict[str, Any],
    columns: dict[str, Any],
    ctx: _Context,
) -> list[Job]:
    """The jobs of one entry on one dataset."""
    from unseen.bench.runners import RUNNERS

    method = entry["method"]
    label = str(entry.get("label", method))
    where = f"{ctx.where}: entries[{i}]"
    runner = str(entry.get("runner", "protocol"))
    if runner not in RUNNERS:
        raise ConfigError(f"{where}: runner {runner!r} unknown; valid: {', '.join(RUNNERS)}")
    config_file = _config_file(entry.get("config") or ctx.config, dataset, label, where, ctx)
    borrowed = _borrowed(entry.get("borrow"), dataset, where, ctx)
    jobs: list[Job] = []
    by_key: dict[str, Job] = {}
    points = [
        (point, column, split)
        for point in _entry_points(entry, where)
        for column in columns.items()
        for split in ctx.dataset_splits(dataset)
    ]
    for (vname, vset, sweep), (cname, cset), (split, split_set) in points:
        overrides = _merge(
            borrowed,
            common,
            _sets(entry.get("set"), where),
            _sets(vset, f"{where}.{vname}"),
            _sets(cset, f"{ctx.where}: columns.{cname}"),
            split_set,
        )
        cfg = resolve_run_config(
            method,
            dataset,
            data_root=ctx.data_root,
            config_file=config_file,
            overrides=overrides,
            seeds=ctx.seeds,
            device=ctx.device,
        )
        spec = cfg.to_dict()
        if runner != "protocol":
            spec["runner"] = runner
        key = config_key(spec)
        if sweep is not None and key in by_key:  # another point of the same run
            by_key[key].sweep.append(sweep)
            by_key[key].label += f" = {vname}"
            continue
        in_paper = vname in entry.get("paper_variants", [vname])
        jobs.append(
            Job(
                label=" ".join(x for x in (label, vname, cname and f"[{cname}]") if x),
                method=method,
                dataset=dataset,
                variant=vname,
                config=cfg,
                key=key,
                paper=entry.get("paper") if in_paper else None,
                import_only=bool(entry.get("import_only", False)),
                row=vname or label,
                column=str(cname),
                sweep=[sweep] if sweep is not None else [],
                runner=runner,
                validate_only=ctx.validate_only,
                split=split,
            )
        )
        by_key[key] = jobs[-1]
    return jobs


def _config_file(value: Any, dataset: str, label: str, where: str, ctx: _Context) -> str | None:
    """An entry's config file for ``dataset`` (``{dataset}`` filled in), found or an error."""
    if not value:
        return None
    try:
        named = str(value).format(dataset=dataset)
    except (KeyError, IndexError, ValueError):
        raise ConfigError(f"{where}: config {value!r} may only use the field {{dataset}}") from None
    found = resolve_path(named, ctx.anchors)
    if not found.is_file():
        looked = ", ".join(str(a / named) for a in ctx.anchors)
        raise ConfigError(
            f"{where} ({label} / {dataset}): config file {named} does not exist (relative paths "
            f"are taken from the grid file's folder; looked at {looked})"
        )
    return str(found)


def _borrowed(value: Any, dataset: str, where: str, ctx: _Context) -> dict[str, Any]:
    """``borrow``: whole sections and method keys of another method's per-dataset config
    (its shipped ``<method>/<DATASET>.yaml``), as the lowest-priority overrides. Only values
    that config sets are taken: a key it leaves at its default is not borrowed."""
    if not value:
        return {}
    if not isinstance(value, dict) or "method" not in value:
        raise ConfigError(f"{where}: 'borrow' needs 'method' (and 'sections' and/or 'keys')")
    other = resolve_run_config(str(value["method"]), dataset, data_root=ctx.data_root)
    keys = value.get("keys") or {}
    if isinstance(keys, list):
        keys = {k: k for k in keys}
    out: dict[str, Any] = {}
    for section in value.get("sections") or []:
        if section not in ("data", "classifier", "selection"):
            raise ConfigError(f"{where}: borrow section {section!r}: data, classifier, selection")
        values = dataclasses.asdict(getattr(other, section))
        if section == "data":  # the dataset and its root are the job's own
            values = {k: v for k, v in values.items() if k not in ("dataset", "root")}
        out[section] = values
    params = other.method_params
    method = {mine: params[theirs] for mine, theirs in keys.items() if theirs in params}
    if method:
        out["method"] = method
    return out


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
