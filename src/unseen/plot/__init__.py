"""Figures of runs: t-SNE of real vs generated features, confusion matrices, training curves,
the seen-unseen accuracy curve behind AUSUC, bar charts of results (``unseen plot``).

Every figure is written as PNG and SVG, uses colour-blind-safe colours, and its title names
the dataset, whether its features are REAL or SYNTHETIC, the method and the seed(s).
"""

from __future__ import annotations

from unseen.plot.runs import Rebuilt, RunFolder, expand_runs, rebuild, score_test_images
from unseen.plot.style import features_word, save_figure, title

__all__ = [
    "Rebuilt",
    "RunFolder",
    "expand_runs",
    "features_word",
    "rebuild",
    "save_figure",
    "score_test_images",
    "title",
]
