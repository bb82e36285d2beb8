"""The bench grid's class-split axis (``splits``): jobs per alternative split, the split files
drawn once and never replaced, the robustness table and its ranking sentence."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from unseen.bench.executors import LocalExecutor
from unseen.bench.grid import expand
from unseen.bench.harness import run_grid
from unseen.bench.report import write_report
from unseen.bench.robustness import rank, robustness_lines
from unseen.bench.store import Store
from unseen.errors import ConfigError

ENTRIES = [
    {"label": "ESZSL", "method": "eszsl", "set": {"classifier.kind": "method"}},
    {"label": "MeanReg", "method": "meanreg", "set": {"method.epochs": 2, "method.hidden": 8}},
]


def _grid(root: Path, folder: Path, **extra) -> dict:
    return {
        "name": "robust",
        "data_root": str(root),
        "datasets": ["TINY"],
        "seeds": [0],
        "set": {"selection.health": False, "classifier.epochs": 2},
        "entries": ENTRIES,
        "splits": {"n": 2, "seed": 0, "folder": str(folder)},
        **extra,
    }


def test_the_split_axis_expands_jobs_per_split(tmp_path):
    grid = expand(_grid(tmp_path, tmp_path / "splits"), base=tmp_path)
    assert [(j.label, j.split) for j in grid.jobs] == [
        ("ESZSL", ""),
        ("ESZSL", "split1"),
        ("ESZSL", "split2"),
        ("MeanReg", ""),
        ("MeanReg", "split1"),
        ("MeanReg", "split2"),
    ]
    files = grid.split_files("TINY")
    assert [f.name for f in files] == ["TINY_seed0_split1.mat", "TINY_seed0_split2.mat"]
    assert grid.jobs[1].config.data.splits == str(files[0])
    assert grid.jobs[0].config.data.splits == ""
    assert len({j.key for j in grid.jobs}) == 6  # each split is its own run
    # --splits N adds the axis to a grid without one (default folder runs/splits)
    raw = _grid(tmp_path, tmp_path)
    del raw["splits"]
    assert len(expand(raw, base=tmp_path).jobs) == 2
    assert len(expand(raw, base=tmp_path, splits=3).jobs) == 8


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"n": 0}, "splits.n"),
        ({"n": 2, "seed": -1}, "splits.seed"),
        ({"n": 2, "count": 3}, "keys"),
        ("three", "mapping"),
    ],
)
def test_bad_split_axes_are_refused(tmp_path, bad, match):
    raw = _grid(tmp_path, tmp_path)
    raw["splits"] = bad
    with pytest.raises(ConfigError, match=match):
        expand(raw, base=tmp_path)


def test_a_study_table_refuses_splits(tmp_path):
    raw = _grid(tmp_path, tmp_path, layout={"kind": "table", "metrics": ["h"]})
    with pytest.raises(ConfigError, match="study"):
        expand(raw, base=tmp_path)


def test_bench_runs_every_split_and_reports_the_spread(tiny_xlsa17, tmp_path):
    root = tiny_xlsa17()
    folder = tmp_path / "splits"
    grid = expand(_grid(root, folder), base=tmp_path)
    out = tmp_path / "bench"
    with Store(out / "results.sqlite") as store:
        status = run_grid(grid, out, store, LocalExecutor(workers=1), echo=False)
        assert not status.failed and len(status.ran) == 6
        report = write_report(grid, store, out).read_text()
    drawn = sorted(p.name for p in folder.iterdir())
    assert drawn == ["TINY_seed0_split1.mat", "TINY_seed0_split2.mat"]
    assert "### TINY: across class splits" in report
    table = [ln for ln in report.splitlines() if ln.startswith("| ESZSL | ")]
    # one main-table row (the proposed split), one robustness row, one row of the pairs
    # table, one provenance row per split
    assert len(table) == 6 and "2 of 2" in table[1]
    assert sum("| TINY split" in ln for ln in table) == 2
    assert "Ranking by calibrated H over the 2 rows" in report
    with open(out / "summary.csv") as f:
        splits = sorted(r["split"] for r in csv.DictReader(f))
    assert splits == ["proposed"] * 2 + ["split1"] * 2 + ["split2"] * 2
    # a second run draws nothing (the files exist) and a partial set is refused
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    with Store(out / "results.sqlite") as store:
        assert len(run_grid(grid, out, store, LocalExecutor(workers=1), echo=False).stored) == 6
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    (folder / "TINY_seed0_split2.mat").unlink()
    fresh = expand(_grid(root, folder), base=tmp_path)
    with Store(tmp_path / "other.sqlite") as store, pytest.raises(ConfigError, match="split2"):
        run_grid(fresh, tmp_path / "other", store, LocalExecutor(workers=1), echo=False)


def _row(label: str, split: str, h: float) -> dict:
    return {
        "label": label,
        "dataset": "D",
        "split": split,
        "stats": {"h_cal": {"mean": h, "std": 0.0, "values": [h]}, "t1": {"mean": h, "std": 0.0}},
    }


def test_robustness_table_by_hand():
    summary = [
        _row("A", "", 60.0),
        _row("A", "split1", 50.0),
        _row("A", "split2", 54.0),
        _row("B", "", 58.0),
        _row("B", "split1", 56.0),
        _row("B", "split2", 40.0),
        _row("C", "", 10.0),  # no alternative split: shown, not ranked
    ]
    text = "\n".join(robustness_lines(summary, "D", 2))
    # A: 52.0 ± std(50, 54) = 2.8; B: 48.0 ± std(56, 40) = 11.3
    assert "| A | 60.0 | 52.0 ± 2.8 | 50.0, 54.0 | 60.0 | 52.0 ± 2.8 | 2 of 2 |" in text
    assert "| B | 58.0 | 48.0 ± 11.3 | 56.0, 40.0 |" in text
    assert "| C | 10.0 | - | -, - |" in text and "0 of 2" in text
    # proposed A > B; split1 B > A, split2 A > B; the mean keeps A > B
    assert "proposed split A > B; mean over splits A > B (the same order)" in text
    assert "holds on 1 of 2 alternative splits; its best row (A) is best on 1 of 2" in text
    # pairs: A above B on split2 only (1 of 2), B above A on split1 (1 of 2)
    assert "| row is above column on k of 2 splits | A | B |" in text
    assert "| A | - | 1 |" in text and "| B | 1 | - |" in text
    assert "do not hold on every alternative split: A > B." in text
    assert rank({"x": 1.0, "y": 3.0, "z": 2.0}) == ["y", "z", "x"]
    assert robustness_lines([_row("A", "", 1.0)], "D", 2) == []
    assert "Generator health across splits" not in text  # no row carries health


def test_robustness_health_table_by_hand():
    def healthy(label: str, split: str, t1: float, hit: float) -> dict:
        row = _row(label, split, 50.0)
        row["health"] = {"synthetic_only_t1": t1, "mean_hit_rate": hit, "chance": 2.0}
        return row

    summary = [
        healthy("A", "", 40.0, 50.0),
        healthy("A", "split1", 30.0, 40.0),
        healthy("A", "split2", 34.0, 60.0),
        _row("B", "", 50.0),  # no health anywhere: no health row
        healthy("C", "split1", 20.0, 10.0),  # the proposed split's health is missing
    ]
    text = "\n".join(robustness_lines(summary, "D", 2))
    # A: T1 mean(30, 34) = 32.0, std 2.8; hit mean(40, 60) = 50.0, std 14.1
    assert "| A | 40.0 | 32.0 ± 2.8 | 2.0 | 50% | 50.0 ± 14.1% | 2 of 2 |" in text
    assert "| C | - | 20.0 | 2.0 | - | 10.0% | 1 of 2 |" in text
    assert "| B | 50.0 |" in text and "| B | - |" not in text
