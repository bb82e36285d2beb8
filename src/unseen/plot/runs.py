"""What the figures are drawn from: finished run folders of ``unseen run``.

A run folder (see :mod:`unseen.runner`) holds ``run.yaml`` (the resolved config),
``results.json`` (per-seed metrics and training history, the validation choice) and
``seed_<s>/model.pt`` (the trained method). Figures that need features or test scores
(t-SNE, confusion matrix, seen-unseen curve) rebuild the run's test task from ``run.yaml``,
load the saved method, and retrain the final classifier exactly as the runner did
(:func:`unseen.runner.train_and_evaluate`, same seeds). The reproduced metrics are compared
with the ones in ``results.json`` and the difference is reported, never hidden.

Nothing here chooses anything: the run's validation choice (synthetic count, classifier
epochs, gamma) is read from ``results.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from unseen.config import RunConfig
from unseen.data.dataset import ZSLDataset
from unseen.data.preprocess import make_feature_transform
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError, DataError
from unseen.eval.metrics import SeenUnseenCurve, seen_unseen_curve
from unseen.eval.results import EvalResult
from unseen.methods.base import GenerativeMethod

__all__ = [
    "GZSLScores",
    "Rebuilt",
    "RunFolder",
    "boundary_points",
    "expand_runs",
    "rebuild",
    "sample_points",
    "score_test_images",
]

# Dataset names whose features are always synthetic (see unseen.data.synthetic).
_SYNTHETIC_NAMES = ("demo", "toy")


@dataclass
class RunFolder:
    """A finished ``unseen run`` output folder."""

    path: Path
    results: dict[str, Any]
    config: RunConfig

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """Read ``run.yaml`` and ``results.json``; clear errors for anything else."""
        path = Path(path)
        if not path.is_dir():
            raise DataError(f"run folder {path} does not exist (give the --out of `unseen run`)")
        res_file, cfg_file = path / "results.json", path / "run.yaml"
        if not cfg_file.exists():
            subs = _sub_runs(path)
            hint = f"; it holds the runs {', '.join(p.name for p in subs)}" if subs else ""
            raise DataError(f"{path} is not an unseen run folder (no run.yaml){hint}")
        if not res_file.exists():
            raise DataError(
                f"{path} holds no results.json: the run is unfinished or was --validate-only; "
                "rerun the same `unseen run` command to finish it"
            )
        try:
            results = json.loads(res_file.read_text())
            raw = yaml.safe_load(cfg_file.read_text())
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise DataError(f"{path}: results.json or run.yaml is not readable: {exc}") from None
        for key in ("method", "dataset", "summary", "seeds", "validation"):
            if key not in results:
                raise DataError(f"{res_file} has no '{key}' entry: not written by `unseen run`")
        return cls(path=path, results=results, config=_run_config(raw, cfg_file))

    @property
    def method(self) -> str:
        return str(self.results["method"])

    @property
    def dataset(self) -> str:
        return str(self.results["dataset"])

    @property
    def synthetic(self) -> bool:
        """Whether the run's features are synthetic (recorded by the runner)."""
        if "synthetic_features" in self.results:
            return bool(self.results["synthetic_features"])
        name = self.config.data.dataset.lower()
        return name in _SYNTHETIC_NAMES or name.endswith("-synthetic")

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.results["seeds"])

    @property
    def choice(self) -> dict[str, Any]:
        return self.results["validation"]["choice"]

    def label(self) -> str:
        """Folder name, prefixed with the method when the name does not say it."""
        name = self.path.name
        return name if name.startswith(self.method) else f"{self.method} {name}"

    def check_seed(self, seed: int | None) -> int:
        """The seed to draw (default: the first one), checked against the run's seeds."""
        if seed is None:
            return self.seeds[0]
        if seed not in self.seeds:
            raise ConfigError(
                f"--seed {seed}: {self.path} has seeds {', '.join(map(str, self.seeds))}"
            )
        return seed


def _run_config(raw: Any, where: Path) -> RunConfig:
    if not isinstance(raw, dict) or "method" not in raw or "data" not in raw:
        raise DataError(f"{where} is not a run.yaml written by `unseen run`")
    return RunConfig.from_dict(raw)


def _sub_runs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and (p / "results.json").exists())


def expand_runs(paths: list[str | Path]) -> list[RunFolder]:
    """Open run folders; a folder holding several runs (``runs/tlc-ablation-flo-fast/S1..S4``)
    stands for all of them, in name order."""
    out: list[RunFolder] = []
    for p in map(Path, paths):
        if p.is_dir() and not (p / "run.yaml").exists() and _sub_runs(p):
            out.extend(RunFolder.open(s) for s in _sub_runs(p))
        else:
            out.append(RunFolder.open(p))
    return out


# ---------------------------------------------------------------------- rebuilding a run
@dataclass
class Rebuilt:
    """A run's test task and one seed's trained method, loaded back."""

    run: RunFolder
    seed: int
    dataset: ZSLDataset
    task: ZSLTask
    method: GenerativeMethod


def rebuild(
    run: RunFolder, seed: int | None = None, *, data_root: str | None = None, device: str = "cpu"
) -> Rebuilt:
    """Reload the dataset of ``run.yaml`` and ``seed_<seed>/model.pt``.

    Args:
        run: the run folder.
        seed: which seed's model (default the first).
        data_root: replaces ``data.root`` of ``run.yaml`` (a run made from another folder).
        device: where the method runs.
    """
    from unseen.runner import build_task, load_dataset

    seed = run.check_seed(seed)
    data_cfg = run.config.data
    if data_root is not None:
        data_cfg = dataclasses.replace(data_cfg, root=data_root)
    model_file = run.path / f"seed_{seed}" / "model.pt"
    if not model_file.exists():
        raise DataError(f"{model_file} does not exist: the run saved no model for seed {seed}")
    try:
        ds = load_dataset(data_cfg)
    except DataError as exc:
        raise DataError(
            f"{exc}\n(the data of {run.path}/run.yaml; if it moved, pass --data-root)"
        ) from None
    if ds.synthetic != run.synthetic:
        raise DataError(
            f"{run.path}: results.json says synthetic_features={run.synthetic}, but the data "
            f"loaded from run.yaml ({ds.name}) has synthetic={ds.synthetic}"
        )
    task = build_task(data_cfg, ds)
    method = GenerativeMethod.load(model_file, device=device)
    if method.name != run.method:
        raise DataError(f"{model_file} holds a '{method.name}' model, the run is '{run.method}'")
    return Rebuilt(run=run, seed=seed, dataset=ds, task=task, method=method)


def _preprocessed(rb: Rebuilt, idx: np.ndarray) -> torch.Tensor:
    """Features of images ``idx`` preprocessed as the task does (transform fitted on the
    training images only), checked against the task's own training features."""
    ds, cfg = rb.dataset, rb.run.config.data
    tf = make_feature_transform(cfg.feature_transform).fit(ds.features[ds.trainval])
    if not np.allclose(tf.transform(ds.features[ds.trainval]), rb.task.train.features.numpy()):
        raise RuntimeError("preprocessing differs from the task's; unseen.plot is out of date")
    return torch.from_numpy(np.ascontiguousarray(tf.transform(ds.features[idx])))


# ---------------------------------------------------------------------- t-SNE points
def sample_points(
    rb: Rebuilt, which: str = "unseen", max_classes: int = 8, per_class: int = 100
) -> dict[str, Any]:
    """Real and generated features of up to ``max_classes`` classes, ``per_class`` each.

    ``which``: ``unseen`` (real = test-unseen images), ``seen`` (real = training images of
    seen classes) or ``all``. Classes and images are drawn with the run's seed.
    """
    if which not in ("unseen", "seen", "all"):
        raise ConfigError(f"--classes must be unseen, seen or all, got {which!r}")
    if max_classes < 1 or per_class < 1:
        raise ConfigError("--max-classes and --per-class must be at least 1")
    ds, task = rb.dataset, rb.task
    pool = {
        "unseen": task.unseen_classes.numpy(),
        "seen": task.seen_classes.numpy(),
        "all": task.classes.numpy(),
    }[which]
    rng = np.random.default_rng(rb.seed)
    classes = np.sort(rng.choice(pool, size=min(max_classes, len(pool)), replace=False))
    images = np.concatenate([ds.trainval, ds.test_unseen])
    real_idx = []
    for c in classes:
        own = images[ds.labels[images] == c]
        real_idx.append(rng.choice(own, size=min(per_class, len(own)), replace=False))
    real_idx = np.concatenate(real_idx)
    real = _preprocessed(rb, real_idx).numpy()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rb.seed)
        fake, fake_y = rb.method.synthesize(
            torch.as_tensor(classes), task.train.semantics, per_class
        )
    unseen = set(task.unseen_classes.tolist())
    return {
        "real": real,
        "real_labels": ds.labels[real_idx],
        "fake": fake.numpy(),
        "fake_labels": fake_y.numpy(),
        "classes": classes,
        "names": [_class_name(ds, int(c), int(c) in unseen) for c in classes],
        "n_pool": len(pool),
    }


def boundary_points(rb: Rebuilt, max_classes: int = 8, per_class: int = 60) -> dict[str, Any]:
    """GSMFlow's Fig. 8: seen training features of up to ``max_classes`` classes and their
    boundary samples x+ mined by the run's trained contrastive network g (Eq. 4), with the
    entropy of g over the mining steps. Training data only; classes and images drawn with the
    run's seed.

    Raises:
        ConfigError: for a run whose model mines no boundary samples (not GSMFlow, or a
            variant without them).
    """
    from unseen.models.gsmflow import mine_boundary_samples

    method = rb.method
    if "g" not in (method.nets_ or {}):
        raise ConfigError(
            f"{rb.run.path}: its {method.name} model mines no boundary samples (GSMFlow's "
            "full or no-vp variant does)"
        )
    c = method.config
    train = rb.task.train
    x, y = train.features, train.labels
    rng = np.random.default_rng(rb.seed)
    seen = rb.task.seen_classes.numpy()
    classes = np.sort(rng.choice(seen, size=min(max_classes, len(seen)), replace=False))
    yn = y.numpy()
    pick = np.concatenate(
        [
            rng.choice(
                np.nonzero(yn == k)[0], size=min(per_class, int((yn == k).sum())), replace=False
            )
            for k in classes
        ]
    )
    # Mining moves every sample on its own (Eq. 4): mining the shown samples only gives the
    # same x+ as mining the whole training set.
    col = torch.full((train.n_classes,), -1, dtype=torch.long)
    col[rb.task.seen_classes] = torch.arange(len(seen))
    trace: list[float] = []
    with torch.enable_grad():
        x_plus = mine_boundary_samples(
            method.nets_["g"],
            x[pick],
            col[y[pick]],
            train.semantics[rb.task.seen_classes],
            c.mining_steps,
            c.mining_lr,
            c.entropy_weight,
            c.batch_size,
            trace=trace,
        )
    return {
        "real": x[pick].numpy(),
        "boundary": x_plus.detach().numpy(),
        "labels": yn[pick],
        "classes": classes,
        "names": [_class_name(rb.dataset, int(k), False) for k in classes],
        "entropy": trace,
    }


def _class_name(ds: ZSLDataset, c: int, unseen: bool) -> str:
    # Releases without names (FLO) get the loader's "class_NNN" (1-based), kept as is.
    name = ds.class_names[c] if ds.class_names else f"class_{c + 1:03d}"
    return f"{name} ({'unseen' if unseen else 'seen'})"


# ---------------------------------------------------------------------- test scores
@dataclass
class GZSLScores:
    """GZSL scores of the test images under the run's final classifier (reproduced)."""

    classes: np.ndarray
    seen_classes: np.ndarray
    unseen_classes: np.ndarray
    class_names: list[str]
    scores_seen: np.ndarray
    labels_seen: np.ndarray
    scores_unseen: np.ndarray
    labels_unseen: np.ndarray
    gamma: float | None
    reproduced: EvalResult
    recorded: EvalResult

    def curve(self) -> SeenUnseenCurve:
        return seen_unseen_curve(
            self.scores_seen,
            self.labels_seen,
            self.scores_unseen,
            self.labels_unseen,
            self.classes,
            self.seen_classes,
        )

    def reproduction_note(self) -> str:
        """How the reproduced H compares with results.json (float order may differ)."""
        a, b = self.reproduced, self.recorded
        out = f"reproduced H {a.h:.1f} (results.json {b.h:.1f})"
        if a.h_cal is not None and b.h_cal is not None:
            out += f", calibrated H {a.h_cal:.1f} ({b.h_cal:.1f})"
        return out + f", AUSUC {a.ausuc:.1f} ({b.ausuc:.1f})"


class _CapturingTask:
    """Stands in for the task in :func:`unseen.runner.train_and_evaluate` and keeps the
    GZSL classifier that reaches ``evaluate`` (everything else is forwarded)."""

    def __init__(self, task: ZSLTask) -> None:
        self._task = task
        self.classifier: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def evaluate(self, classifier: Any, zsl_classifier: Any = None, **kw: Any) -> EvalResult:
        self.classifier = classifier
        return self._task.evaluate(classifier, zsl_classifier, **kw)


def score_test_images(rb: Rebuilt) -> GZSLScores:
    """Retrain the run's final classifier for ``rb.seed`` (the runner's code, the run's
    validation choice) and score every test image with it."""
    from unseen.runner import train_and_evaluate

    run, task, ds = rb.run, rb.task, rb.dataset
    choice = run.choice
    ccfg = run.config.classifier
    if choice.get("classifier_epochs"):
        ccfg = dataclasses.replace(ccfg, epochs=int(choice["classifier_epochs"]))
    proxy = _CapturingTask(task)
    res = train_and_evaluate(
        proxy,  # type: ignore[arg-type]
        rb.method,
        int(choice["n_synthetic"]),
        ccfg,
        seed=rb.seed,
        device=str(rb.method.device),
        gamma=choice.get("gamma"),
    )
    reproduced = next(iter(res.values()))
    clf = proxy.classifier
    classes = task.classes.numpy()
    cols = {int(c): i for i, c in enumerate(clf.classes_.cpu().numpy())}
    order = [cols[int(c)] for c in classes]

    def score(idx: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            s = clf.predict_scores(_preprocessed(rb, idx).to(rb.method.device))
        return s.detach().cpu().numpy()[:, order]

    out = GZSLScores(
        classes=classes,
        seen_classes=task.seen_classes.numpy(),
        unseen_classes=task.unseen_classes.numpy(),
        class_names=[
            _class_name(ds, int(c), int(c) in set(task.unseen_classes.tolist())) for c in classes
        ],
        scores_seen=score(ds.test_seen),
        labels_seen=ds.labels[ds.test_seen],
        scores_unseen=score(ds.test_unseen),
        labels_unseen=ds.labels[ds.test_unseen],
        gamma=choice.get("gamma"),
        reproduced=reproduced,
        recorded=EvalResult.from_dict(run.results["seeds"][str(rb.seed)]["result"]),
    )
    # Same scores as task.evaluate saw: the curve must give its AUSUC exactly.
    if abs(100 * out.curve().auc() - reproduced.ausuc) > 1e-6:
        raise RuntimeError("test scores differ from the evaluation's; unseen.plot is out of date")
    return out
