"""Shared look of every figure: colour-blind-safe palettes, titles, PNG + SVG output.

Figures are built with :class:`matplotlib.figure.Figure` directly (no ``pyplot``): no global
state and no interactive backend, so the same code runs on a headless server, in tests and
in a notebook.

References:
    Okabe & Ito, "Color Universal Design" (2008): the 8-colour palette for data series.
    Paul Tol, "Colour schemes" (https://personal.sron.nl/~pault/): the 9-colour "muted"
    palette for many categories (t-SNE classes), distinct under the common colour-vision
    deficiencies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib
from matplotlib.figure import Figure

from unseen.errors import ConfigError, OutputExistsError

__all__ = [
    "OKABE_ITO",
    "TOL_MUTED",
    "features_word",
    "new_figure",
    "output_paths",
    "save_figure",
    "styled",
    "title",
]

P = ParamSpec("P")
R = TypeVar("R")

#: Okabe-Ito, yellow left out (unreadable as a thin line on white), black last.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000"]
#: Paul Tol's "muted" qualitative palette (9 colours).
TOL_MUTED = [
    "#332288",
    "#88CCEE",
    "#44AA99",
    "#117733",
    "#999933",
    "#DDCC77",
    "#CC6677",
    "#882255",
    "#AA4499",
]

_RC = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    # Text stays text in the SVG (searchable, editable), not glyph outlines.
    "svg.fonttype": "none",
}


def features_word(synthetic: bool) -> str:
    """``"SYNTHETIC features"`` or ``"REAL features"``: every title says which."""
    return "SYNTHETIC features" if synthetic else "REAL features"


def title(what: str, *, dataset: str, synthetic: bool, method: str, seed: str) -> str:
    """Two-line title: what is shown, then dataset, REAL/SYNTHETIC features, method, seed."""
    return f"{what}\n{dataset} ({features_word(synthetic)}) | {method} | {seed}"


def styled(draw: Callable[P, R]) -> Callable[P, R]:
    """Run a drawing function under the shared style (matplotlib reads rcParams when each
    artist is created, so the whole drawing runs inside the context)."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(_RC):
            return draw(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float) -> Figure:
    """A figure with constrained layout (call inside a :func:`styled` function)."""
    return Figure(figsize=(width, height), layout="constrained")


def output_paths(out: str | Path) -> tuple[Path, Path]:
    """``(PNG, SVG)`` paths of an output stem; a ``.png``/``.svg`` suffix is dropped."""
    out = Path(out)
    if out.suffix.lower() in (".png", ".svg"):
        out = out.with_suffix("")
    if not out.name:
        raise ConfigError(f"--out {out!s} names no file")
    return out.with_name(out.name + ".png"), out.with_name(out.name + ".svg")


def save_figure(fig: Figure, out: str | Path, *, force: bool = False) -> list[Path]:
    """Write ``OUT.png`` (150 dpi) and ``OUT.svg``; refuse to overwrite without ``force``."""
    paths = output_paths(out)
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise OutputExistsError(
            f"{', '.join(map(str, existing))} already exist(s); pass --force to replace, or "
            "choose another --out"
        )
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    from unseen.rundir import record_written

    record_written(list(paths))  # inside a run folder: unseen's, removed by run --force
    with matplotlib.rc_context(_RC):
        fig.savefig(paths[0], dpi=150)
        fig.savefig(paths[1])
    return list(paths)
