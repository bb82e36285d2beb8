"""Progress that a terminal and a cluster log can both show.

On a terminal, training shows tqdm bars (``--quiet`` hides them). Without one (``nohup``,
a batch job, ``| tee``), bars print nothing useful, so :class:`Progress` prints timestamped
lines instead: one per epoch, at most one every ``UNSEEN_PROGRESS_SECONDS`` seconds (default
10) plus the last epoch of every stage; a line every ``UNSEEN_PROGRESS_SECONDS * 3`` seconds
during long steps without epochs (a method's set-up, e.g. GSMFlow's boundary mining; the
final classifiers) saying what is still running; and, for a whole run, an estimate of the
time left (:class:`RunPlan`: validation grid, then every seed). ``log.txt`` gets every line,
timestamped, whether or not a terminal is attached.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Progress",
    "RunPlan",
    "format_seconds",
    "log_line",
    "progress_seconds",
    "timestamp",
]


def timestamp() -> str:
    """Local time as ``2026-11-27 17:05:03``."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


def format_seconds(seconds: float) -> str:
    """``42 s``, ``7 min``, ``1 h 05 min``."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours, minutes = divmod(round(minutes), 60)
    return f"{hours} h {minutes:02d} min"


def progress_seconds() -> float:
    """Seconds between progress lines without a terminal (``UNSEEN_PROGRESS_SECONDS``)."""
    try:
        return max(0.0, float(os.environ.get("UNSEEN_PROGRESS_SECONDS", "10")))
    except ValueError:
        return 10.0


def log_line(folder: Path | None, msg: str, echo: bool) -> None:
    """A timestamped line in ``folder/log.txt`` and, when ``echo``, on stdout (timestamped
    when stdout is not a terminal, as in a cluster job's log); stdout only without a folder."""
    if folder is not None:
        Progress(folder / "log.txt", echo=echo).line(msg)
    elif echo:
        print(msg, flush=True)


@dataclass
class RunPlan:
    """What a run still has to do, and the measured cost of each kind of work: the basis of
    its time estimate. Counts are set by the runner; times are measured as the run goes.

    Attributes:
        val_epochs: generator epochs of the validation fit.
        val_points: classifier trainings on validation (evaluation epochs x synthetic counts).
        seeds: seeds still to train on all seen data.
        seed_epochs: generator epochs per seed (the validation choice; ``val_epochs`` until
            it is known).
        test_scale: test training set size / validation training set size (an epoch on the
            test task costs about that much more).
    """

    val_epochs: int = 0
    val_points: int = 0
    seeds: int = 0
    seed_epochs: int = 0
    test_scale: float = 1.0
    done: dict[str, int] = field(default_factory=lambda: {"val": 0, "point": 0, "seed": 0})
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def measured(self, kind: str, seconds: float) -> None:
        self.seconds.setdefault(kind, []).append(float(seconds))

    def _mean(self, kind: str) -> float | None:
        v = self.seconds.get(kind)
        return sum(v) / len(v) if v else None

    def eta(self, stage: str = "", epoch: int = 0) -> float | None:
        """Seconds left for the whole run, or ``None`` before anything was measured."""
        t_val = self._mean("epoch:validation")
        if t_val is None and self._mean("epoch:test") is None:
            return None
        t_test = self._mean("epoch:test") or (t_val or 0.0) * self.test_scale
        t_val = t_val if t_val is not None else t_test / max(self.test_scale, 1e-9)
        t_point = self._mean("point") or 0.0
        t_setup = self._mean("setup") or 0.0
        t_final = self._mean("final") or t_point * self.test_scale
        val_left = self.val_epochs - (epoch if stage == "validation" else self.done["val"])
        points_left = max(0, self.val_points - self.done["point"])
        seeds_left = self.seeds - self.done["seed"]
        epochs_left = seeds_left * self.seed_epochs
        if stage == "test" and seeds_left > 0:
            epochs_left -= epoch
            setups = seeds_left - 1 if epoch > 0 else seeds_left
        else:
            setups = seeds_left
        return (
            max(0, val_left) * t_val
            + points_left * t_point
            + max(0, epochs_left) * t_test
            + max(0, setups) * t_setup * self.test_scale
            + seeds_left * t_final
        )


class Progress:
    """Timestamped progress lines to ``log.txt`` (always) and stdout (without a terminal).

    Args:
        log_file: the run's ``log.txt`` (``None``: stdout only).
        echo: print lines to stdout at all (the runner's ``echo``).
        terminal: whether stdout is a terminal (then per-epoch lines stay out of stdout,
            where progress bars show the same); default: ``sys.stdout.isatty()``.
        every: seconds between per-epoch lines on stdout (default
            :func:`progress_seconds`).
    """

    def __init__(
        self,
        log_file: Path | None = None,
        *,
        echo: bool = True,
        terminal: bool | None = None,
        every: float | None = None,
    ) -> None:
        self.log_file = log_file
        self.echo = echo
        self.terminal = sys.stdout.isatty() if terminal is None else terminal
        self.every = progress_seconds() if every is None else every
        self.plan: RunPlan | None = None
        self._last_print = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lines
    def line(self, msg: str, *, echo: bool = True, log: bool = True) -> None:
        """Write one line: timestamped in the log; on stdout too (timestamped without a
        terminal) when ``echo``."""
        stamp = timestamp()
        with self._lock:
            if log and self.log_file is not None:
                with open(self.log_file, "a") as f:
                    f.write(f"{stamp} {msg}\n")
            if echo and self.echo:
                print(msg if self.terminal else f"{stamp} {msg}", flush=True)
                self._last_print = time.monotonic()

    def epoch(
        self,
        what: str,
        epoch: int,
        total: int,
        seconds: float,
        losses: dict[str, float],
        *,
        stage: str = "",
    ) -> None:
        """One epoch done: a log line, and a stdout line when due (see the class doc)."""
        parts = [f"{what}: epoch {epoch}/{total} ({seconds:.1f} s)"]
        if losses:
            parts.append(" ".join(f"{k} {v:.4g}" for k, v in list(losses.items())[:4]))
        if self.plan is not None and stage:
            self.plan.measured(f"epoch:{stage}", seconds)
            eta = self.plan.eta(stage, epoch)
            if eta is not None:
                parts.append(f"about {format_seconds(eta)} left for the whole run")
        msg = " | ".join(parts)
        due = time.monotonic() - self._last_print >= self.every or epoch == total
        self.line(msg, echo=due and not self.terminal)

    @contextlib.contextmanager
    def busy(self, what: str, *, kind: str = "") -> Iterator[None]:
        """A step without epochs: a line when it starts, a line every ``3 * every`` seconds
        while it runs (without a terminal), a line with its duration when it ends. ``kind``
        names the measured time in :attr:`plan` (``setup``, ``point``, ``final``)."""
        t0 = time.monotonic()
        self.line(f"{what} ...", echo=not self.terminal)
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(3 * self.every):
                self.line(
                    f"{what}: still running ({format_seconds(time.monotonic() - t0)})",
                    echo=not self.terminal,
                )

        thread = None
        if self.every > 0:
            thread = threading.Thread(target=beat, daemon=True)
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join()
        seconds = time.monotonic() - t0
        if self.plan is not None and kind:
            self.plan.measured(kind, seconds)
        self.line(f"{what}: done in {format_seconds(seconds)}", echo=False)
