"""The cost curves of a style transfer as a PNG (matplotlib, no display needed)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def save_cost_plot(log: Mapping[str, Any], path: str | Path, *, title: str = "") -> Path:
    """Draw alpha*J_content, beta*J_style, tv_weight*J_tv and the total per step (log scale) from a
    `StyleResult.to_log()` dict; passes of a multiscale run are separated by dotted lines."""
    from matplotlib.figure import Figure

    settings = log["settings"]
    steps = log["steps"]
    x = [s["step"] for s in steps]
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    curves = [("total", 1.0, "total"), ("content", settings["content_weight"], "alpha J_content"),
              ("style", settings["style_weight"], "beta J_style"), ("tv", settings["tv_weight"], "tv J_tv")]
    for key, weight, label in curves:
        y = [s[key] * weight for s in steps]
        if any(v > 0 for v in y):
            ax.plot(x, [v if v > 0 else float("nan") for v in y], label=label, linewidth=1.2)
    for before, after in itertools.pairwise(steps):
        if after["pass"] != before["pass"]:
            ax.axvline(after["step"] - 0.5, color="grey", linestyle=":", linewidth=1)
            ax.text(after["step"], ax.get_ylim()[1], f" {after['size'][1]}x{after['size'][0]}",
                    va="top", fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("step (one forward and backward pass each)")
    ax.set_ylabel("cost")
    ax.set_title(title or "style transfer costs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
