"""Progress a cluster log can show: timestamped lines without a terminal, heartbeats during
steps without epochs, an estimate of the whole run's time, timestamps in log.txt."""

from __future__ import annotations

import re
import time

import pytest

from tinydata import tiny_dataset
from unseen.config import resolve_run_config
from unseen.eval.results import format_mean_std, mean_std
from unseen.progress import Progress, RunPlan, format_seconds
from unseen.runner import run

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def test_format_seconds():
    assert format_seconds(42) == "42 s"
    assert format_seconds(600) == "10 min"
    assert format_seconds(6000) == "1 h 40 min"


def test_epoch_lines_without_a_terminal_are_timestamped_and_throttled(capsys, tmp_path):
    p = Progress(tmp_path / "log.txt", terminal=False, every=0)
    for e in range(1, 4):
        p.epoch("fit", e, 3, 0.5, {"loss": 1.0 / e})
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(STAMP.match(line) for line in out)
    assert "epoch 2/3 (0.5 s) | loss 0.5" in out[1]
    slow = Progress(tmp_path / "log2.txt", terminal=False, every=3600)
    slow.line("start")
    for e in range(1, 6):
        slow.epoch("fit", e, 5, 0.1, {})
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 2)[2] for line in out] == ["start", "fit: epoch 5/5 (0.1 s)"]
    assert len((tmp_path / "log2.txt").read_text().splitlines()) == 6  # the log has every epoch


def test_a_terminal_keeps_epoch_lines_in_the_log(capsys, tmp_path):
    p = Progress(tmp_path / "log.txt", terminal=True, every=0)
    p.epoch("fit", 1, 1, 0.1, {})
    assert capsys.readouterr().out == ""  # the progress bar shows it there
    assert "fit: epoch 1/1" in (tmp_path / "log.txt").read_text()


def test_busy_steps_say_they_are_still_running(capsys):
    p = Progress(None, terminal=False, every=0.05)
    with p.busy("mining boundary samples"):
        time.sleep(0.4)
    out = capsys.readouterr().out
    assert "mining boundary samples ..." in out and "still running" in out


def test_run_plan_estimates_the_time_left():
    plan = RunPlan(val_epochs=10, val_points=4, seeds=3, seed_epochs=10, test_scale=2.0)
    assert plan.eta("validation", 1) is None or plan.seconds == {}
    plan.measured("epoch:validation", 1.0)
    plan.measured("point", 5.0)
    # 9 validation epochs + 4 points + 3 seeds x 10 epochs at twice the validation epoch
    # + 3 final classifiers (a point scaled to the test task)
    assert plan.eta("validation", 1) == pytest.approx(9 + 20 + 60 + 30)
    plan.done.update(val=10, point=4, seed=1)
    plan.measured("epoch:test", 3.0)
    assert plan.eta("test", 4) == pytest.approx((2 * 10 - 4) * 3 + 2 * 10)


def test_one_seed_has_no_spread_to_print():
    assert format_mean_std(mean_std([61.23])) == "61.2"
    assert format_mean_std(mean_std([60.0, 62.0])) == "61.0 ± 1.4"


def test_a_run_without_a_terminal_logs_epochs_classifiers_and_an_estimate(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("UNSEEN_PROGRESS_SECONDS", "0")
    over = {
        "method": {"epochs": 2, "batch_size": 16, "hidden": 8},
        "classifier": {"epochs": 2, "batch_size": 32},
        "selection": {"eval_every": 1, "n_synthetic": [5], "health": False},
    }
    cfg = resolve_run_config("meanreg", "tiny", overrides=over, seeds=[0, 1])
    run(cfg, tmp_path / "r", dataset=tiny_dataset(n_per_class=10))
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert all(STAMP.match(line) for line in lines if "epoch" in line)
    assert "[validation] meanreg: epoch 1/2" in out and "[seed 1] meanreg: epoch 1/" in out
    assert "left for the whole run" in out
    assert "final classifier(s)" in out and "set-up before the first epoch" in out
    log = (tmp_path / "r" / "log.txt").read_text().splitlines()
    assert log and all(STAMP.match(line) for line in log if not line.startswith(("GZSL", "AUSUC")))
