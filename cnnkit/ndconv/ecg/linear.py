"""Linear discriminants (de Chazal et al. 2004) as a small torch module.

Linear discriminant analysis with a pooled covariance: class k scores

    g_k(x) = mu_k' S^-1 z - mu_k' S^-1 mu_k / 2 + log prior_k,   z = (x - mean) / scale

and softmax(g) is the posterior of the Gaussian model with a shared covariance.
As in the 2004 paper, the training beats are weighted so that every class
counts alike (weights (n / n_k) ** weight_power; 1: equal priors and an equally
weighted covariance), otherwise 90 % N beats would swamp S. A small ridge
(`shrinkage` x the mean variance on the diagonal) keeps S invertible when
features are nearly collinear (neighbouring morphology samples are).

The result is an `rr_logistic.RRLogistic` (same weights layout: mean, scale,
one linear layer), so the ensemble can hold either model.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import SettingsError
from .rr_logistic import RRLogistic


def fit_lda(features: np.ndarray, labels: np.ndarray, *, classes: int, weight_power: float = 1.0,
            shrinkage: float = 1e-3) -> RRLogistic:
    """Fit on (n, f) features and labels in [0, classes); absent classes get a score of -inf (never chosen)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise SettingsError(f"need (n, f) features and n labels, got {x.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= classes:
        raise SettingsError(f"labels must be in [0, {classes})")
    mean = x.mean(0)
    scale = np.maximum(x.std(0), 1e-6)
    z = (x - mean) / scale
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    present = counts > 0
    class_weight = np.zeros(classes)
    class_weight[present] = (len(y) / (present.sum() * counts[present])) ** weight_power
    w = class_weight[y]
    mu = np.zeros((classes, x.shape[1]))
    for k in np.flatnonzero(present):
        mu[k] = z[y == k].mean(0)
    centred = z - mu[y]
    cov = (centred * w[:, None]).T @ centred / w.sum()
    cov += shrinkage * np.trace(cov) / len(cov) * np.eye(len(cov))
    inv_mu = np.linalg.solve(cov, mu.T).T  # (classes, f): S^-1 mu_k
    prior = class_weight * counts
    prior = prior / prior.sum()
    bias = -0.5 * np.einsum("kf,kf->k", mu, inv_mu) + np.log(np.where(present, prior, 1.0))
    bias[~present] = -1e4
    model = RRLogistic(x.shape[1], classes)
    with torch.no_grad():
        model.mean.copy_(torch.from_numpy(mean).float())
        model.scale.copy_(torch.from_numpy(scale).float())
        model.linear.weight.copy_(torch.from_numpy(inv_mu).float())
        model.linear.bias.copy_(torch.from_numpy(bias).float())
    return model.eval()
