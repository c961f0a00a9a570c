"""Triplet miners: which (anchor, positive, negative) triplets of a batch the loss sees.

Each miner is called as `miner(embeddings, labels)` and returns three int64
index tensors, computed without gradients. A triplet is valid when the anchor
and positive are two different images of one person and the negative shows
someone else.

* `AllTripletsMiner` - every valid triplet.
* `RandomTripletsMiner` - every anchor-positive pair with one negative drawn at random.
* `BatchHardMiner` - per anchor, its farthest positive and its closest negative
  (Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss").
* `SemiHardMiner` - FaceNet's choice (Schroff et al. 2015): every anchor-positive
  pair with the closest negative that is still farther than the positive but
  within the margin, d(A,P) < d(A,N) < d(A,P) + alpha. Pairs without one are
  dropped (FaceNet leaves this case open; we do not fall back to hard ones,
  which is what makes the method "semi"-hard).
"""

from __future__ import annotations

import torch

from ...errors import SettingsError
from .distances import Distance, L2Distance

MINER_CHOICES = ("semihard", "batch-hard", "random", "all")

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) boolean (N, N) masks; the diagonal is in neither."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _empty(device: torch.device) -> Triplets:
    e = torch.zeros(0, dtype=torch.long, device=device)
    return e, e.clone(), e.clone()


def valid_triplets(labels: torch.Tensor) -> torch.Tensor:
    """Boolean (N, N, N) mask: [a, p, n] is a valid triplet."""
    pos, neg = _masks(labels)
    return pos[:, :, None] & neg[:, None, :]


class Miner:
    def __init__(self, distance: Distance | None = None) -> None:
        self.distance = distance or L2Distance()

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        with torch.no_grad():
            return self.mine(embeddings.detach(), labels.to(embeddings.device))

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        raise NotImplementedError


class AllTripletsMiner(Miner):
    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        a, p, n = torch.nonzero(valid_triplets(labels), as_tuple=True)
        return a, p, n


class RandomTripletsMiner(Miner):
    """Each anchor-positive pair with one negative drawn uniformly from the anchor's negatives."""

    def __init__(self, distance: Distance | None = None, *, generator: torch.Generator | None = None) -> None:
        super().__init__(distance)
        self.generator = generator

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        pos, neg = _masks(labels)
        a, p = torch.nonzero(pos, as_tuple=True)
        if len(a) == 0:
            return _empty(embeddings.device)
        weights = neg[a].float()
        has_negative = weights.sum(1) > 0
        a, p, weights = a[has_negative], p[has_negative], weights[has_negative]
        if len(a) == 0:
            return _empty(embeddings.device)
        gen = self.generator
        if gen is not None and gen.device != weights.device:
            weights = weights.cpu()
        n = torch.multinomial(weights, 1, generator=gen).squeeze(1).to(embeddings.device)
        return a, p, n


class BatchHardMiner(Miner):
    """Per anchor: the hardest positive (farthest) and the hardest negative (closest)."""

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        pos, neg = _masks(labels)
        d = self.distance.pairwise(embeddings, embeddings)
        usable = pos.any(1) & neg.any(1)
        if self.distance.larger_is_closer:
            # hardest positive = least similar; hardest negative = most similar
            p = torch.where(pos, d, torch.full_like(d, float("inf"))).argmin(1)
            n = torch.where(neg, d, torch.full_like(d, float("-inf"))).argmax(1)
        else:
            p = torch.where(pos, d, torch.full_like(d, float("-inf"))).argmax(1)
            n = torch.where(neg, d, torch.full_like(d, float("inf"))).argmin(1)
        a = torch.nonzero(usable, as_tuple=True)[0]
        return a, p[a], n[a]


class SemiHardMiner(Miner):
    """Every anchor-positive pair with its closest negative among d(A,P) < d(A,N) < d(A,P) + margin."""

    def __init__(self, distance: Distance | None = None, *, margin: float = 0.2) -> None:
        super().__init__(distance)
        if margin <= 0:
            raise SettingsError(f"margin must be positive, got {margin}")
        self.margin = margin

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        pos, neg = _masks(labels)
        d = self.distance.pairwise(embeddings, embeddings)
        a, p = torch.nonzero(pos, as_tuple=True)
        if len(a) == 0:
            return _empty(embeddings.device)
        d_ap = d[a, p][:, None]   # (T, 1)
        d_an = d[a]               # (T, N)
        farther = ~self.distance.closer(d_an, d_ap) & (d_an != d_ap)   # strictly farther than the positive
        # ... but still violating the margin: the loss is positive
        within = self.distance.margin_violation(d_ap, d_an, self.margin) > 0
        candidates = neg[a] & farther & within
        keep = candidates.any(1)
        if self.distance.larger_is_closer:
            scores = torch.where(candidates, d_an, torch.full_like(d_an, float("-inf")))
            n = scores.argmax(1)
        else:
            scores = torch.where(candidates, d_an, torch.full_like(d_an, float("inf")))
            n = scores.argmin(1)
        return a[keep], p[keep], n[keep]


def make_miner(name: str, *, distance: Distance | None = None, margin: float = 0.2,
               generator: torch.Generator | None = None) -> Miner:
    if name == "semihard":
        return SemiHardMiner(distance, margin=margin)
    if name == "batch-hard":
        return BatchHardMiner(distance)
    if name == "random":
        return RandomTripletsMiner(distance, generator=generator)
    if name == "all":
        return AllTripletsMiner(distance)
    raise SettingsError(f"miner must be one of {MINER_CHOICES}, got {name!r}")
