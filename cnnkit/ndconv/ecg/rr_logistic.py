"""A linear model of the RR features alone: multinomial logistic regression, class-weighted.

It is the second voice of the ECG classifier (`ensemble.EcgEnsemble`): the
networks read the beat's shape and learn patient-specific detail, and in
patient-wise cross-validation inside DS1 they miss or over-call S beats of
unseen patients; a linear model of rhythm features cannot fit a patient's beat
shapes and moves less between patients (the linear discriminants of de Chazal
et al. 2004 rest on the same idea). Averaging the two raised the cross-validated
S F1 (bench/ndconv/ndconv_ecg_select.py).

Fitted by full-batch L-BFGS on standardised features (deterministic; a convex
problem, so no seed), with class k weighted (n / n_k) ** weight_power.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...errors import SettingsError
from ...runtime.training import class_weights


class RRLogistic(nn.Module):
    """logits = W ((rr - mean) / scale) + b; mean and scale are stored with the weights."""

    mean: torch.Tensor  # buffers
    scale: torch.Tensor

    def __init__(self, features: int, classes: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.linear = nn.Linear(features, classes)

    def forward(self, rr: torch.Tensor) -> torch.Tensor:
        return self.linear((rr - self.mean) / self.scale)


def fit_rr_logistic(rr: np.ndarray, labels: np.ndarray, *, classes: int, weight_power: float = 0.5,
                    l2: float = 1e-3, max_iter: int = 200) -> RRLogistic:
    """Fit on (n, f) features and labels in [0, classes); classes without examples get weight 0."""
    if rr.ndim != 2 or len(rr) != len(labels) or len(rr) == 0:
        raise SettingsError(f"need (n, f) features and n labels, got {rr.shape} and {labels.shape}")
    x = torch.as_tensor(rr, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.int64)
    weights = torch.from_numpy(class_weights(labels, weight_power, classes))
    model = RRLogistic(rr.shape[1], classes)
    with torch.no_grad():
        model.mean.copy_(x.mean(0))
        model.scale.copy_(x.std(0).clamp_min(1e-6))
        model.linear.weight.zero_()
        model.linear.bias.zero_()
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    opt = torch.optim.LBFGS(model.linear.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(model(x), y) + l2 * model.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model.eval()
