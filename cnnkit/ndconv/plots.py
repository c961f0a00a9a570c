"""PNG figures: confusion matrices and ROC curves (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def new_figure(width: float, height: float, dpi: int = 100):
    """A matplotlib Figure not tied to pyplot (thread-safe, no display)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def save_figure(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def save_confusion(path: str | Path, cm: np.ndarray, names: Sequence[str], *, title: str = "",
                   normalize: bool = True) -> Path:
    """Counts in each cell; colour by row-normalised rate (sensitivity on the diagonal)."""
    cm = np.asarray(cm)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.75 * len(names)
    fig = new_figure(size + 0.8, size)
    ax = fig.add_subplot()
    im = ax.imshow(rates if normalize else cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            dark = (rates[i, j] if normalize else cm[i, j] / max(cm.max(), 1)) > 0.5
            ax.text(j, i, f"{cm[i, j]}\n{100 * rates[i, j]:.1f}%", ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true class" if normalize else "count")
    return save_figure(fig, path)


def save_roc(path: str | Path, curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], *, title: str = "") -> Path:
    """One line per curve name -> (fpr, tpr, auc)."""
    fig = new_figure(4.2, 4.0)
    ax = fig.add_subplot()
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, lw=1.4, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
