"""Verification metrics on pair distances (smaller distance = more alike).

`same` is a boolean array (True for a same-person pair), `distance` the pair
distances; a pair whose face could not be encoded has distance +inf, which
always predicts "different" and still counts.
"""

from __future__ import annotations

import numpy as np


def best_threshold(distance: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising accuracy on these pairs (midpoint between neighbouring distances)."""
    finite = np.sort(np.unique(distance[np.isfinite(distance)]))
    if len(finite) == 0:
        return 0.0
    candidates = np.concatenate([[finite[0] - 1e-6], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]])
    # accuracy(t) = (#same with d <= t + #different with d > t) / n, for all t at once.
    same_d = np.sort(distance[same])
    diff_d = np.sort(distance[~same])
    accepted_same = np.searchsorted(same_d, candidates, side="right")
    rejected_diff = len(diff_d) - np.searchsorted(diff_d, candidates, side="right")
    return float(candidates[np.argmax(accepted_same + rejected_diff)])


def accuracy(distance: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((distance <= threshold) == same))


def kfold_accuracy(distance: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[list[float], list[float]]:
    """LFW's protocol: for each fold, choose the threshold on the others, test on it.

    Returns the per-fold accuracies and thresholds.
    """
    accs, thresholds = [], []
    for fold in np.unique(folds):
        test = folds == fold
        t = best_threshold(distance[~test], same[~test])
        accs.append(accuracy(distance[test], same[test], t))
        thresholds.append(t)
    return accs, thresholds


def roc_curve(distance: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-accept rate, true-accept rate and thresholds, from accepting nothing to everything."""
    order = np.argsort(distance, kind="mergesort")
    d, s = distance[order], same[order]
    # One point per distinct distance, so ties move together.
    last_of_run = np.r_[d[1:] != d[:-1], True]
    tar = np.cumsum(s)[last_of_run] / max(s.sum(), 1)
    far = np.cumsum(~s)[last_of_run] / max((~s).sum(), 1)
    return np.r_[0.0, far], np.r_[0.0, tar], np.r_[-np.inf, d[last_of_run]]


def auc(distance: np.ndarray, same: np.ndarray) -> float:
    far, tar, _ = roc_curve(distance, same)
    return float(np.trapezoid(tar, far))


def eer(distance: np.ndarray, same: np.ndarray) -> float:
    """Equal error rate: where the false-accept and false-reject rates cross."""
    far, tar, _ = roc_curve(distance, same)
    frr = 1.0 - tar
    i = int(np.argmax(far >= frr))
    if i == 0:
        return float(far[0])
    # Linear interpolation between the two ROC points around the crossing.
    f0, f1, r0, r1 = far[i - 1], far[i], frr[i - 1], frr[i]
    denom = (f1 - f0) - (r1 - r0)
    w = 0.0 if denom == 0 else (r0 - f0) / denom
    return float(f0 + w * (f1 - f0))


def tar_at_far(distance: np.ndarray, same: np.ndarray, target_far: float) -> float:
    """The highest true-accept rate with a false-accept rate at most `target_far`."""
    far, tar, _ = roc_curve(distance, same)
    ok = far <= target_far
    return float(tar[ok].max()) if ok.any() else 0.0
