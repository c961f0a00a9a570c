"""Metric-learning losses, each a module called as `loss(embeddings, labels, indices_tuple=None)`.

* `TripletMarginLoss`: mean over triplets of max(0, d(A,P) - d(A,N) + alpha)
  (FaceNet, Schroff et al. 2015). `indices_tuple` is a miner's (a, p, n);
  None means every valid triplet of the batch.
* `ContrastiveLoss`: max(0, d - m_pos)^2 for same-person pairs plus
  max(0, m_neg - d)^2 for different ones, each averaged over its pairs
  (Hadsell, Chopra & LeCun 2006; m_pos = 0 is their form). `indices_tuple` is
  (a1, p, a2, n) pairs, or a miner's triplets (their (A,P) and (A,N) pairs);
  None means all pairs of the batch.

After each call `loss.stats` holds plain floats for the training log: how
many triplets (or pairs) were used and the fraction with a non-zero loss.
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import SettingsError
from .distances import Distance, L2Distance
from .miners import AllTripletsMiner

REDUCTION_CHOICES = ("mean", "mean-nonzero", "sum")


def _reduce(values: torch.Tensor, reduction: str, anchor: torch.Tensor) -> torch.Tensor:
    if len(values) == 0:
        return anchor.sum() * 0.0  # zero, but still part of the graph
    if reduction == "sum":
        return values.sum()
    if reduction == "mean-nonzero":
        nonzero = values > 0
        return values[nonzero].mean() if nonzero.any() else values.sum() * 0.0
    return values.mean()


class TripletMarginLoss(nn.Module):
    def __init__(self, *, margin: float = 0.2, distance: Distance | None = None, reduction: str = "mean") -> None:
        super().__init__()
        if margin < 0:
            raise SettingsError(f"margin must be >= 0, got {margin}")
        if reduction not in REDUCTION_CHOICES:
            raise SettingsError(f"reduction must be one of {REDUCTION_CHOICES}, got {reduction!r}")
        self.margin = margin
        self.distance = distance or L2Distance(squared=True)
        self.reduction = reduction
        self.stats: dict[str, float] = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices_tuple: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        if indices_tuple is None:
            indices_tuple = AllTripletsMiner(self.distance)(embeddings, labels)
        if len(indices_tuple) != 3:
            raise SettingsError("the triplet loss needs (anchor, positive, negative) indices")
        a, p, n = indices_tuple
        d_ap = self.distance.paired(embeddings[a], embeddings[p])
        d_an = self.distance.paired(embeddings[a], embeddings[n])
        losses = torch.relu(self.distance.margin_violation(d_ap, d_an, self.margin))
        self.stats = {"triplets": float(len(a)),
                      "active": float((losses > 0).float().mean()) if len(a) else 0.0}
        return _reduce(losses, self.reduction, embeddings)


def _pairs(indices_tuple: tuple[torch.Tensor, ...] | None, labels: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if indices_tuple is None:
        i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=labels.device)
        same = labels[i] == labels[j]
        return i[same], j[same], i[~same], j[~same]
    if len(indices_tuple) == 3:
        a, p, n = indices_tuple
        return a, p, a, n
    if len(indices_tuple) == 4:
        a1, p, a2, n = indices_tuple
        return a1, p, a2, n
    raise SettingsError("indices_tuple must be (a, p, n) triplets or (a1, p, a2, n) pairs")


class ContrastiveLoss(nn.Module):
    """For a similarity (cosine) the margins flip: max(0, m_pos - s)^2 and max(0, s - m_neg)^2."""

    def __init__(self, *, pos_margin: float | None = None, neg_margin: float | None = None,
                 distance: Distance | None = None) -> None:
        super().__init__()
        self.distance = distance or L2Distance()
        closer = self.distance.larger_is_closer
        self.pos_margin = (1.0 if closer else 0.0) if pos_margin is None else pos_margin
        self.neg_margin = (0.0 if closer else 1.0) if neg_margin is None else neg_margin
        self.stats: dict[str, float] = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices_tuple: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        a1, p, a2, n = _pairs(indices_tuple, labels.to(embeddings.device))
        d_pos = self.distance.paired(embeddings[a1], embeddings[p])
        d_neg = self.distance.paired(embeddings[a2], embeddings[n])
        if self.distance.larger_is_closer:
            pos, neg = torch.relu(self.pos_margin - d_pos), torch.relu(d_neg - self.neg_margin)
        else:
            pos, neg = torch.relu(d_pos - self.pos_margin), torch.relu(self.neg_margin - d_neg)
        pos, neg = pos**2, neg**2
        total = len(pos) + len(neg)
        self.stats = {"pairs": float(total),
                      "active": float(((pos > 0).sum() + (neg > 0).sum()) / total) if total else 0.0}
        return _reduce(pos, "mean", embeddings) + _reduce(neg, "mean", embeddings)


def triplet_active_fraction(embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float,
                            distance: Distance) -> float:
    """The fraction of *all* valid triplets of the batch with a non-zero triplet loss.

    A miner-independent measure of how much of the batch the model still gets
    wrong by the margin; logged every step whatever the miner.
    """
    from .miners import valid_triplets

    with torch.no_grad():
        d = distance.pairwise(embeddings.detach(), embeddings.detach())
        valid = valid_triplets(labels.to(embeddings.device))
        violation = distance.margin_violation(d[:, :, None], d[:, None, :], margin) > 0
        count = int(valid.sum())
        return float((violation & valid).sum()) / count if count else 0.0
