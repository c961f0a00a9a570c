"""Distances between embeddings, as objects that know whether larger means closer.

`pairwise(x, y)` gives the (N, M) matrix, `paired(x, y)` the N values of
matching rows. A similarity (cosine) has `larger_is_closer = True`; losses and
miners use `margin_violation` so they never need to know which kind they hold.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import SettingsError

DISTANCE_CHOICES = ("squared-l2", "l2", "cosine")


class Distance:
    larger_is_closer = False
    name = "distance"

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def paired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def margin_violation(self, positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
        """How far (positive, negative) fall short of being `margin` apart: d(A,P) - d(A,N) + margin."""
        if self.larger_is_closer:
            return negative - positive + margin
        return positive - negative + margin

    def closer(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Elementwise: is `a` a closer value than `b`?"""
        return a > b if self.larger_is_closer else a < b

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class L2Distance(Distance):
    """Euclidean distance, or its square (FaceNet's triplet loss uses the square)."""

    def __init__(self, *, squared: bool = False) -> None:
        self.squared = squared
        self.name = "squared-l2" if squared else "l2"

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # |x|^2 + |y|^2 - 2 x.y, clamped: rounding can make it slightly negative.
        sq = (x * x).sum(1, keepdim=True) + (y * y).sum(1)[None] - 2.0 * x @ y.T
        sq = sq.clamp_min(0.0)
        if self.squared:
            return sq
        # sqrt has an infinite gradient at 0 (an embedding compared with itself).
        return torch.where(sq > 1e-12, sq.clamp_min(1e-12).sqrt(), torch.zeros_like(sq))

    def paired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        sq = ((x - y) ** 2).sum(1)
        if self.squared:
            return sq
        return torch.where(sq > 1e-12, sq.clamp_min(1e-12).sqrt(), torch.zeros_like(sq))

    def __repr__(self) -> str:
        return f"L2Distance(squared={self.squared})"


class CosineSimilarity(Distance):
    """cos(x, y): larger means closer."""

    larger_is_closer = True
    name = "cosine"

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(y, dim=1).T

    def paired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (F.normalize(x, dim=1) * F.normalize(y, dim=1)).sum(1)


def make_distance(name: str) -> Distance:
    if name == "squared-l2":
        return L2Distance(squared=True)
    if name == "l2":
        return L2Distance()
    if name == "cosine":
        return CosineSimilarity()
    raise SettingsError(f"distance must be one of {DISTANCE_CHOICES}, got {name!r}")
