"""Shared pieces of the hyper-parameter sensitivity studies (IZF Fig. 5, GSMFlow Fig. 7):
one validation-only run per grid point (resumable) and the one-row figure of the curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["plot_validation_grid", "validation_point"]


def validation_point(cfg: Any, folder: Path, value: Any, label: str) -> dict[str, Any]:
    """Run (or reuse, if ``folder`` holds its selection) the validation selection of ``cfg``
    -- never the test split -- and return the chosen point's validation numbers."""
    from unseen.runner import run

    saved = folder / "validation" / "selection.json"
    if saved.exists():
        choice = json.loads(saved.read_text())["choice"]
    else:
        print(f"== {label} = {value} -> {folder}", flush=True)
        choice = run(cfg, folder, echo=False, validate_only=True)["validation"]["choice"]
    point = {"value": value, **choice["validation"], "epochs": choice["epochs"]}
    print(
        f"{label:15s} {value!s:>6}: validation H {point['h']:5.1f} "
        f"(calibrated {point['h_cal_best']:5.1f}), T1 {point['t1']:5.1f}, "
        f"epochs {point['epochs']}",
        flush=True,
    )
    return point


def plot_validation_grid(
    path: Path, results: dict[str, list[dict]], titles: dict[str, str], suptitle: str
) -> None:
    """One panel per parameter: validation H, calibrated H and T1 against its values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, (param, points) in zip(axes[0], results.items()):
        xs = [p["value"] for p in points]
        for key, label in (("h", "H"), ("h_cal_best", "H (calibrated)"), ("t1", "CZSL T1")):
            ax.plot(xs, [p[key] for p in points], marker="o", label=label)
        ax.set_title(titles[param], fontsize=10)
        ax.set_xlabel(param)
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
