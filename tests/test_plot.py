"""``unseen plot``: every figure from a tiny finished run, titles, reproduction, bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from tinydata import tiny_dataset
from unseen.cli import main
from unseen.config import resolve_run_config
from unseen.data.native import save_native
from unseen.eval.metrics import calibrated_predict
from unseen.plot.figures import confusion_view, tsne_embedding
from unseen.plot.runs import RunFolder, rebuild, score_test_images
from unseen.runner import run

matplotlib.use("Agg")

# Small, but trained enough for non-zero S and AUSUC (so reproduction checks can fail).
TINY = {
    "method": dict(
        epochs=20,
        batch_size=16,
        hidden_g=32,
        hidden_d=32,
        critic_steps=2,
        pretrain_epochs=5,
        lr=1e-3,
        cls_weight=0.1,
    ),
    "classifier": dict(epochs=10, batch_size=32, lr=1e-2),
    "selection": dict(eval_every=10, n_synthetic=[10, 20], classifier_epochs=[5, 10]),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two finished tiny runs whose data say REAL and SYNTHETIC features respectively.

    One run is trained; the other is its copy on the same data saved with the other flag
    (run.yaml and results.json rewritten accordingly), which keeps the fixture fast.
    """
    base = tmp_path_factory.mktemp("plot-runs")
    ds = tiny_dataset(n_per_class=20)
    real_npz = save_native(dataclasses.replace(ds, synthetic=False), base / "tiny-real.npz")
    synth_npz = save_native(dataclasses.replace(ds, synthetic=True), base / "tiny-synth.npz")
    cfg = resolve_run_config("clswgan", str(real_npz), overrides=TINY, seeds=[0, 1])
    real = base / "run-real"
    run(cfg, real, echo=False)
    synth = base / "run-synthetic"
    shutil.copytree(real, synth)
    text = (synth / "run.yaml").read_text()
    (synth / "run.yaml").write_text(text.replace(str(real_npz), str(synth_npz)))
    res = json.loads((synth / "results.json").read_text())
    res["synthetic_features"] = True
    (synth / "results.json").write_text(json.dumps(res))
    return {"real": real, "synthetic": synth}


def _plot(*args: str) -> int:
    return main(["plot", *map(str, args)])


def _check_files(stem: Path, must_say: list[str]) -> str:
    png, svg = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "</svg>" in text
    for words in must_say:
        assert words in text, f"{words!r} missing from {svg.name}"
    return text


FIGURES = [
    ("tsne", ["--per-class", "10", "--classes", "all"]),
    ("tsne", ["--per-class", "10"]),
    ("confusion", []),
    ("confusion", ["--rows", "all", "--calibrated"]),
    ("seen-unseen", []),
    ("curves", []),
    ("bars", []),
]


@pytest.mark.parametrize(("figure", "extra"), FIGURES)
@pytest.mark.parametrize("kind", ["real", "synthetic"])
def test_each_figure_writes_png_and_svg_with_an_honest_title(runs, tmp_path, figure, extra, kind):
    stem = tmp_path / f"{figure}-{kind}"
    assert _plot(figure, runs[kind], *extra, "--out", stem) == 0
    word = "REAL features" if kind == "real" else "SYNTHETIC features"
    other = "SYNTHETIC features" if kind == "real" else "REAL features"
    text = _check_files(stem, [f"tiny ({word})", "clswgan", "seed"])
    assert other not in text


def test_default_output_goes_into_the_run_folder_and_is_never_overwritten(runs, capsys):
    run_dir = runs["real"]
    assert _plot("curves", run_dir) == 0
    _check_files(run_dir / "figures" / "curves", ["REAL features", "seeds 0, 1"])
    before = (run_dir / "figures" / "curves.png").read_bytes()
    assert _plot("curves", run_dir) == 2
    assert "--force" in capsys.readouterr().err
    assert (run_dir / "figures" / "curves.png").read_bytes() == before
    assert _plot("curves", run_dir, "--force") == 0


def test_rebuilt_classifier_reproduces_the_recorded_test_metrics(runs):
    folder = RunFolder.open(runs["real"])
    for seed in folder.seeds:
        sc = score_test_images(rebuild(folder, seed))
        assert sc.recorded.s > 0 and sc.recorded.ausuc > 0  # a check with something to check
        for key in ("t1", "s", "u", "h", "ausuc", "h_cal"):
            assert getattr(sc.reproduced, key) == pytest.approx(getattr(sc.recorded, key))
        # The curve's gamma = 0 point is the uncalibrated S and U of the evaluation.
        curve = sc.curve()
        i = int(np.searchsorted(curve.gammas, 0.0, side="right") - 1)
        assert 100 * curve.acc_seen[i] == pytest.approx(sc.recorded.s)
        assert 100 * curve.acc_unseen[i] == pytest.approx(sc.recorded.u)


def test_confusion_views_are_row_normalised_and_their_diagonals_give_s_and_u(runs):
    sc = score_test_images(rebuild(RunFolder.open(runs["synthetic"])))
    y = np.concatenate([sc.labels_seen, sc.labels_unseen])
    pred = calibrated_predict(
        np.concatenate([sc.scores_seen, sc.scores_unseen]), sc.classes, sc.seen_classes, 0.0
    )
    names = dict(zip(sc.classes.tolist(), sc.class_names))
    for rows, metric in (("unseen", sc.recorded.u), ("seen", sc.recorded.s)):
        m, row_names, col_names, _ = confusion_view(
            y, pred, sc.seen_classes, sc.unseen_classes, names, rows
        )
        assert m.shape == (len(row_names), len(col_names)) and m.shape[1] == m.shape[0] + 1
        np.testing.assert_allclose(m.sum(axis=1), 1.0)
        assert 100 * np.mean(np.diag(m)) == pytest.approx(metric)
    m, row_names, _, block = confusion_view(
        y, pred, sc.seen_classes, sc.unseen_classes, names, "all"
    )
    assert block == len(sc.seen_classes) and m.shape == (len(sc.classes),) * 2
    assert all("(seen)" in n for n in row_names[:block])
    assert all("(unseen)" in n for n in row_names[block:])


def test_tsne_embedding_keeps_one_point_per_row():
    x = np.random.default_rng(0).normal(size=(40, 60)).astype(np.float32)
    emb = tsne_embedding(x, seed=0)
    assert emb.shape == (40, 2) and np.all(np.isfinite(emb))


def test_a_folder_of_runs_stands_for_all_of_them(runs, tmp_path):
    parent = tmp_path / "ablation"
    parent.mkdir()
    for name in ("A", "B"):
        shutil.copytree(runs["real"], parent / name)
    stem = tmp_path / "bars"
    assert _plot("bars", parent, "--out", stem) == 0
    _check_files(stem, ["clswgan A", "clswgan B", "REAL features"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["curves", "{tmp}/missing"], "does not exist"),
        (["curves", "{tmp}"], "not an unseen run folder"),
        (["curves", "{unfinished}"], "no results.json"),
        (["tsne", "{real}", "--seed", "7"], "has seeds 0, 1"),
        (["tsne", "{real}", "--max-classes", "20"], "<= 9"),
        (["bars", "{real}", "{synthetic}", "--out", "{tmp}/x"], "never mixed"),
        (["bars", "{real}", "--metrics", "h", "accuracy"], "unknown ['accuracy']"),
        (["bars", "{real}", "{real}"], "pass --out"),
        (["bars", "{real}", "--labels", "a", "b", "--out", "{tmp}/x"], "2 labels for 1 runs"),
        (["confusion", "{moved}", "--out", "{tmp}/x"], "if it moved, pass --data-root"),
    ],
)
def test_bad_input_ends_with_a_clear_message(runs, tmp_path, capsys, args, message):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(runs["real"] / "run.yaml", unfinished / "run.yaml")
    moved = tmp_path / "moved"
    shutil.copytree(runs["real"], moved)
    cfg = (moved / "run.yaml").read_text()
    (moved / "run.yaml").write_text(cfg.replace("tiny-real.npz", "gone.npz"))
    fill = {"tmp": tmp_path, "unfinished": unfinished, "moved": moved, **runs}
    assert _plot(*[a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unseen plot: error:") and message in err


def test_results_without_the_synthetic_flag_fall_back_to_the_dataset_name(runs, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(runs["real"], copy)
    res = json.loads((copy / "results.json").read_text())
    del res["synthetic_features"]
    (copy / "results.json").write_text(json.dumps(res))
    assert RunFolder.open(copy).synthetic is False
    (copy / "run.yaml").write_text(
        (copy / "run.yaml").read_text().replace(res["config"]["data"]["dataset"], "toy")
    )
    assert RunFolder.open(copy).synthetic is True


def test_reproduction_goes_through_the_runner_for_other_classifier_kinds(runs, tmp_path):
    """The nearest-prototype classifier too (no training: exact scores)."""
    npz = next(runs["real"].parent.glob("tiny-real.npz"))
    over = {
        **TINY,
        "classifier": {"kind": "prototype"},
        "selection": dict(eval_every=10, n_synthetic=[10]),
    }
    cfg = resolve_run_config("clswgan", str(npz), overrides=over, seeds=[0])
    run(cfg, tmp_path / "proto", echo=False)
    sc = score_test_images(rebuild(RunFolder.open(tmp_path / "proto")))
    assert sc.recorded.s > 0
    for key in ("t1", "s", "u", "h", "ausuc"):
        assert getattr(sc.reproduced, key) == pytest.approx(getattr(sc.recorded, key))


def test_tsne_panels_of_several_runs_are_titled_with_the_run_labels(runs, tmp_path, monkeypatch):
    """GSMFlow's Fig. 9 layout: (a) real features, then one panel per run, titled with it."""
    from unseen.plot import style

    drawn: list = []
    save = style.save_figure
    monkeypatch.setattr(
        style, "save_figure", lambda fig, *a, **k: (drawn.append(fig), save(fig, *a, **k))[1]
    )
    stem = tmp_path / "fig9"
    args = ["--max-classes", "3", "--per-class", "5", "--out", stem]
    assert _plot("tsne", runs["real"], runs["real"], *args) == 0
    _check_files(stem, ["REAL features", "Fig. 9"])
    titles = [ax.get_title() for ax in drawn[0].axes]
    label = RunFolder.open(runs["real"]).label()
    assert titles == ["(a) real: test images", *[f"({c}) synthesized: {label}" for c in "bc"]]
    assert _plot("tsne", runs["real"], runs["synthetic"], *args) == 2  # never mixed


def test_boundary_samples_of_a_gsmflow_run(tmp_path, capsys, runs):
    """GSMFlow's Fig. 8 from a finished run; a run without mining is told so."""
    ds = tiny_dataset(n_per_class=20)
    npz = save_native(dataclasses.replace(ds, synthetic=False), tmp_path / "tiny.npz")
    over = {
        "method": dict(
            epochs=1, batch_size=32, n_blocks=1, hidden=16, semantic_out=8,
            contrastive_epochs=1, mining_steps=2,
        ),
        "classifier": dict(epochs=2),
        "selection": dict(eval_every=1, n_synthetic=[5]),
    }  # fmt: skip
    run(
        resolve_run_config("gsmflow", str(npz), overrides=over, seeds=[0]),
        tmp_path / "g",
        echo=False,
    )
    stem = tmp_path / "fig8"
    assert _plot("boundary", tmp_path / "g", "--max-classes", "3", "--out", stem) == 0
    _check_files(stem, ["REAL features", "boundary x+", "Fig. 8"])
    assert "entropy trace" in capsys.readouterr().out
    assert _plot("boundary", runs["real"], "--out", tmp_path / "no") == 2
    assert "mines no boundary samples" in capsys.readouterr().err


def test_bars_one_panel_per_dataset_and_no_colour_reused_alone():
    from unseen.plot.figures import bars_figure

    summary = {m: {"mean": 50.0, "std": 1.0, "values": [49.0, 51.0]} for m in ("h", "u")}
    entries = [(f"run {k}", summary) for k in range(10)]
    groups = ["FLO"] * 6 + ["CUB"] * 4
    fig = bars_figure(entries, ["h", "u"], "t", groups=groups)
    axes = fig.get_axes()
    assert [ax.get_title(loc="left") for ax in axes] == ["FLO", "CUB"]
    styles = set()
    for ax in axes:
        for bars in ax.containers:
            if hasattr(bars, "patches") and bars.patches:
                patch = bars.patches[0]
                styles.add((bars.get_label(), patch.get_facecolor(), patch.get_hatch()))
    assert len({(c, h) for _, c, h in styles}) == 10  # ten runs, ten looks
