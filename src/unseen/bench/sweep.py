"""Validation-only hyper-parameter search, then one retrain of the best setting and one test.

A sweep file (YAML) names the method, the data, a base config and the search space::

    name: clswgan-flo-cls
    method: clswgan
    dataset: FLO
    data_root: ../shared/data/xlsa17
    config: configs/clswgan/FLO-fast.yaml
    set: {data.features: effnet_lite0.mat}
    seeds: [0, 1, 2]           # the first is the validation seed; all are used for the test
    sampler: tpe               # or grid (every combination of `choices`)
    trials: 20                 # tpe only
    space:
      method.cls_weight: {log: [0.001, 1.0]}      # log-uniform float
      method.lr: {choices: [1.0e-4, 3.0e-4, 1.0e-3]}
      method.hidden_g: {int: [256, 2048]}           # uniform integer
      classifier.lr: {float: [1.0e-4, 1.0e-2]}     # uniform float

Every trial is ``unseen run --validate-only`` (the runner's validation problem, built from
seen training data only; the test split is never scored) in ``OUT/trials/<n>``; its score is
the validation criterion of the runner's selection (``h_cal``: validation H at the best
calibration gamma, or ``h``), at the epochs / synthetic count / classifier schedule the runner
chose for it. Trials are stored in the results store's ``trials`` table as they finish; a
killed sweep resumes (finished trials are told to the sampler again, not rerun). Then the best
setting is run through the full protocol in its own trial folder (the validation selection is
reused from the folder, every seed is retrained on all seen training data and tested once)
and stored in ``runs``. ``OUT/best.yaml`` holds the chosen values with the command and date
that produced them, ready to be copied into ``configs/<method>/<DATASET>.yaml``.

Samplers: ``grid`` enumerates the Cartesian product of ``choices`` lists; ``tpe`` is Optuna's
Tree-structured Parzen Estimator (``pip install optuna``), seeded, asked for ``jobs`` trials
at a time so that trials run in parallel on the executor.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from unseen.bench.grid import config_key, path_anchors, resolve_path
from unseen.bench.harness import code_version
from unseen.bench.store import Store
from unseen.config import parse_set, read_yaml_mapping, resolve_run_config
from unseen.errors import ConfigError

__all__ = ["Sweep", "load_sweep", "run_sweep"]

_KEYS = {
    "name",
    "method",
    "dataset",
    "data_root",
    "config",
    "set",
    "seeds",
    "device",
    "sampler",
    "trials",
    "seed",
    "space",
    "description",
}
_KINDS = ("choices", "log", "float", "int")


@dataclass
class Sweep:
    name: str
    method: str
    dataset: str
    data_root: str
    config: str | None
    base: dict[str, Any]  # nested overrides (parse_set form)
    seeds: list[int]
    device: str | None
    sampler: str
    trials: int
    seed: int
    space: dict[str, tuple[str, list[Any]]]  # "section.key" -> (kind, values/bounds)
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # said once when the sweep starts

    def config_for(self, params: dict[str, Any]):
        """The resolved RunConfig of a trial's parameter values."""
        over = json.loads(json.dumps(self.base))
        for key, value in parse_set([f"{k}={json.dumps(v)}" for k, v in params.items()]).items():
            over.setdefault(key, {}).update(value)
        return resolve_run_config(
            self.method,
            self.dataset,
            data_root=self.data_root,
            config_file=self.config,
            overrides=over,
            seeds=self.seeds,
            device=self.device,
        )


def load_sweep(path: str | Path, base: Path | None = None, data_root: str | None = None) -> Sweep:
    """Read a sweep file; its relative paths are taken from its own folder (as a grid's,
    :func:`unseen.bench.grid.path_anchors`) or from ``base``; ``data_root`` replaces its."""
    from unseen.config import find_config_file

    path = find_config_file(path, "sweep file")
    raw = read_yaml_mapping(path, "sweep file")
    anchors = [Path(base)] if base is not None else path_anchors(path)
    return parse_sweep(raw, str(path), anchors=anchors, data_root=data_root)


def parse_sweep(
    raw: dict[str, Any],
    where: str = "sweep",
    base: Path | None = None,
    *,
    anchors: list[Path] | None = None,
    data_root: str | None = None,
) -> Sweep:
    """Check and expand a parsed sweep file (relative paths from ``anchors``, else ``base``,
    else the current folder)."""
    anchors = anchors or [Path(base) if base is not None else Path.cwd()]
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {sorted(_KEYS)}")
    for key in ("method", "dataset", "space"):
        if key not in raw:
            raise ConfigError(f"{where}: '{key}' is required")
    space: dict[str, tuple[str, list[Any]]] = {}
    if not isinstance(raw["space"], dict):
        raise ConfigError(f"{where}: 'space' must map section.key names to ranges")
    for name, spec in raw["space"].items():
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in _KINDS:
            raise ConfigError(
                f"{where}: space.{name} must be one of {{choices: [...]}}, {{log: [lo, hi]}}, "
                f"{{float: [lo, hi]}}, {{int: [lo, hi]}}; got {spec!r}"
            )
        kind, values = next(iter(spec.items()))
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: space.{name}.{kind} must be a non-empty list")
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if kind != "choices" and (len(values) != 2 or not numeric or values[0] >= values[1]):
            raise ConfigError(f"{where}: space.{name}.{kind} must be [low, high] with low < high")
        if kind == "log" and values[0] <= 0:
            raise ConfigError(f"{where}: space.{name}.log needs positive bounds")
        space[str(name)] = (kind, values)
    if not space:
        raise ConfigError(f"{where}: empty search space")
    sampler = str(raw.get("sampler", "grid"))
    if sampler not in ("grid", "tpe"):
        raise ConfigError(f"{where}: sampler must be 'grid' or 'tpe', got {sampler!r}")
    if sampler == "grid":
        ranged = [k for k, (kind, _) in space.items() if kind != "choices"]
        if ranged:
            raise ConfigError(f"{where}: the grid sampler needs 'choices' lists, not {ranged}")
    notes = []
    if sampler == "grid" and "trials" in raw:
        n_points = math.prod(len(v) for _, v in space.values())
        notes.append(
            f"trials: {raw['trials']} is ignored by the grid sampler, which runs every one of "
            f"the {n_points} combinations (trials applies to sampler: tpe)"
        )
    base_set = raw.get("set") or {}
    if not isinstance(base_set, dict):
        raise ConfigError(f"{where}: 'set' must be a mapping of section.key: value")
    items = [f"{k}={json.dumps(v)}" for k, v in base_set.items()]
    config = None
    if raw.get("config"):
        found = resolve_path(raw["config"], anchors)
        if not found.is_file():
            raise ConfigError(
                f"{where}: config file {raw['config']} does not exist (relative paths are "
                f"taken from the sweep file's folder; looked at "
                f"{', '.join(str(a / str(raw['config'])) for a in anchors)})"
            )
        config = str(found)
    if data_root is None and raw.get("data_root"):
        data_root = str(resolve_path(raw["data_root"], anchors))
    for key in ("trials", "seed"):
        if key in raw and (not isinstance(raw[key], int) or isinstance(raw[key], bool)):
            raise ConfigError(f"{where}: '{key}' must be a whole number, got {raw[key]!r}")
    if int(raw.get("trials", 20)) < 1:
        raise ConfigError(f"{where}: 'trials' must be >= 1, got {raw['trials']}")
    sw = Sweep(
        name=str(raw.get("name") or f"{raw['method']}-{raw['dataset']}"),
        method=str(raw["method"]),
        dataset=str(raw["dataset"]),
        data_root=data_root or "",
        config=config,
        base=parse_set(items),
        seeds=list(raw.get("seeds") or [0, 1, 2]),
        device=raw.get("device"),
        sampler=sampler,
        trials=int(raw.get("trials", 20)),
        seed=int(raw.get("seed", 0)),
        space=space,
        source=where,
        notes=notes,
    )
    # Fail on bad keys now, before any training: resolve the space's first point.
    sw.config_for({k: v[0] for k, (_, v) in space.items()})
    return sw


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _score(selection: dict[str, Any]) -> float:
    """The runner's own selection criterion at its chosen point (h_cal_best or h)."""
    choice = selection["choice"]
    key = "h_cal_best" if choice["criterion"] == "h_cal" else "h"
    return float(choice["validation"][key])


def _grid_points(sw: Sweep) -> list[dict[str, Any]]:
    names = list(sw.space)
    return [
        dict(zip(names, values)) for values in itertools.product(*(sw.space[n][1] for n in names))
    ]


def _optuna_distributions(sw: Sweep) -> dict[str, Any]:
    import optuna

    d: dict[str, Any] = {}
    for name, (kind, v) in sw.space.items():
        if kind == "choices":
            d[name] = optuna.distributions.CategoricalDistribution(v)
        elif kind == "log":
            d[name] = optuna.distributions.FloatDistribution(v[0], v[1], log=True)
        elif kind == "float":
            d[name] = optuna.distributions.FloatDistribution(v[0], v[1])
        else:
            d[name] = optuna.distributions.IntDistribution(int(v[0]), int(v[1]))
    return d


def run_sweep(
    sw: Sweep,
    out: Path,
    store: Store,
    executor: Any,
    *,
    jobs: int = 1,
    command: str = "",
    echo: bool = True,
) -> dict[str, Any]:
    """Search on validation, retrain + test the best; returns the summary (also sweep.json)."""
    from unseen.bench.executors import run_job
    from unseen.methods.base import loaded_plugins

    def say(msg: str) -> None:
        if echo:
            print(msg, flush=True)

    done = {t["number"]: t for t in store.trials(sw.name) if t["state"] == "complete"}

    def spec(number: int, params: dict[str, Any]) -> dict[str, Any]:
        cfg = sw.config_for(params)
        return {
            "config": cfg.to_dict(),
            "out": str(out / "trials" / f"{number:04d}"),
            "validate_only": True,
            "label": f"trial {number}",
            "plugins": loaded_plugins(),
        }

    def record(number: int, params: dict[str, Any], result: Any) -> float | None:
        """Store a finished trial: its validation score and choice, or why it failed."""
        value, state = None, "failed"
        validation = {"error": f"{type(result).__name__}: {result}"}
        if not isinstance(result, BaseException):
            value, state = _score(result["validation"]), "complete"
            validation = result["validation"]["choice"]
        store.add_trial(
            sw.name,
            number,
            sampler=sw.sampler,
            params=params,
            value=value,
            validation=validation,
            state=state,
            finished=_now(),
        )
        if value is None:
            say(f"[sweep] trial {number} {params}: FAILED: {result}")
            return None
        done[number] = {"number": number, "params": params, "value": value}
        say(f"[sweep] trial {number} {params}: validation {value:.2f}")
        return value

    if sw.sampler == "grid":
        points = _grid_points(sw)
        todo = [(i, p) for i, p in enumerate(points) if i not in done]
        for i, result in executor.map([spec(n, p) for n, p in todo]):
            record(todo[i][0], todo[i][1], result)
    else:
        try:
            import optuna
        except ImportError:
            raise ConfigError(
                "sampler 'tpe' needs Optuna: pip install 'unseen[sweep]' (or pip install optuna)"
            ) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dists = _optuna_distributions(sw)
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=sw.seed)
        )
        for t in sorted(done.values(), key=lambda t: t["number"]):  # resume: tell the past
            study.add_trial(
                optuna.trial.create_trial(params=t["params"], distributions=dists, value=t["value"])
            )
        number = max(done, default=-1) + 1
        while len(done) < sw.trials:
            batch = []
            for _ in range(min(max(1, jobs), sw.trials - len(done))):
                trial = study.ask(dists)
                batch.append((number, trial))
                number += 1
            specs = [spec(n, dict(t.params)) for n, t in batch]
            for i, result in executor.map(specs):
                n, trial = batch[i]
                value = record(n, dict(trial.params), result)
                if value is None or math.isnan(value):
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
            if all(n not in done for n, _ in batch):
                raise ConfigError(f"sweep {sw.name}: every trial of a batch failed; stopping")
    if not done:
        raise ConfigError(f"sweep {sw.name}: no trial finished")
    # Best on validation; ties go to the earlier trial.
    best = max(done.values(), key=lambda t: (t["value"], -t["number"]))
    params = best["params"]
    cfg = sw.config_for(params)
    folder = out / "trials" / f"{best['number']:04d}"
    say(f"[sweep] best on validation: trial {best['number']} {params} ({best['value']:.2f})")
    say(f"[sweep] retraining it on all seen training data, seeds {cfg.seeds}, test once")
    if (folder / "results.json").exists():  # a rerun of a finished sweep
        results = json.loads((folder / "results.json").read_text())
    else:
        results = run_job(
            {"config": cfg.to_dict(), "out": str(folder), "plugins": loaded_plugins()}
        )
    key = config_key(cfg.to_dict())
    store.add_results(
        key,
        json.loads(json.dumps(results)),
        label=f"sweep {sw.name}: best",
        variant=json.dumps(params, sort_keys=True),
        source="bench",
        run_dir=str(folder),
        code_version=code_version(),
        finished=_now(),
    )
    summary = {
        "sweep": sw.name,
        "method": sw.method,
        "dataset": sw.dataset,
        "sampler": sw.sampler,
        "n_trials": len(done),
        "best_trial": best["number"],
        "best_params": params,
        "best_validation": best["value"],
        "test_summary": {
            k: results["summary"][k]
            for k in ("t1", "s", "u", "h", "h_cal")
            if k in results["summary"]
        },
        "run_dir": str(folder),
        "command": command,
        "finished": _now(),
    }
    _write_outputs(sw, out, store, summary, cfg)
    return summary


def _write_outputs(sw: Sweep, out: Path, store: Store, summary: dict[str, Any], cfg) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(summary, indent=2))
    nested: dict[str, dict[str, Any]] = {}
    for k, v in summary["best_params"].items():
        section, name = k.split(".", 1)
        nested.setdefault(section, {})[name] = v
    header = (
        f"# Chosen by `unseen sweep` ({sw.sampler}, {summary['n_trials']} trials) on the "
        f"VALIDATION problem of {sw.dataset}\n# (seed {cfg.seeds[0]}; criterion "
        f"{cfg.selection.criterion}, best {summary['best_validation']:.2f}), "
        f"{summary['finished']}.\n# Command: {summary['command'] or '(API call)'}\n"
        f"# Sweep file: {sw.source}; trials in {out / 'trials'}; store table 'trials', sweep "
        f"'{sw.name}'.\n"
    )
    (out / "best.yaml").write_text(header + yaml.safe_dump(nested, sort_keys=False))
    trials = sorted(
        (t for t in store.trials(sw.name) if t["state"] == "complete"),
        key=lambda t: -t["value"],
    )
    names = list(sw.space)
    lines = [
        f"# Sweep {sw.name}: {sw.method} on {sw.dataset} ({sw.sampler})",
        "",
        "Validation only (the test split is never scored during the search); the best "
        "setting is then retrained on all seen training data and tested once per seed.",
        "",
        "| trial | " + " | ".join(names) + " | validation |",
        "|" + "---|" * (len(names) + 2),
    ]
    for t in trials:
        cells = " | ".join(
            f"{t['params'][n]:.4g}" if isinstance(t["params"][n], float) else str(t["params"][n])
            for n in names
        )
        lines.append(f"| {t['number']} | {cells} | {t['value']:.2f} |")
    ts = summary["test_summary"]
    lines += [
        "",
        f"Best: trial {summary['best_trial']} {summary['best_params']}.",
        "",
        "Test (mean ± std over seeds): "
        + ", ".join(f"{k.upper()} {v['mean']:.1f} ± {v['std']:.1f}" for k, v in ts.items()),
        "",
    ]
    (out / "sweep.md").write_text("\n".join(lines))
