"""A bounded top-k per unit, merged batch by batch: memory O(units x k), whatever the dataset size.

Like Zeiler & Fergus, each image contributes at most one patch per unit: the
position of the unit's strongest response in that image. The k best images
per unit are kept; ties go to the image seen first, so results do not depend
on the batch size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import SettingsError


class TopK:
    """The `k` strongest (activation, image index, row, col) of each of `units` units."""

    def __init__(self, units: int, k: int) -> None:
        if units < 1 or k < 1:
            raise SettingsError(f"units and k must be positive, got {units} and {k}")
        self.units, self.k = units, k
        self.values = torch.full((units, 0), float("-inf"))
        self.images = torch.zeros((units, 0), dtype=torch.int64)
        self.rows = torch.zeros((units, 0), dtype=torch.int64)
        self.cols = torch.zeros((units, 0), dtype=torch.int64)

    def update(self, activations: Tensor, image_ids: Tensor) -> None:
        """Merge a batch of feature maps (N, units, H, W) of the images numbered `image_ids` (N,)."""
        n, c, h, w = activations.shape
        if c != self.units or len(image_ids) != n:
            raise SettingsError(f"expected {self.units} channels and {n} image ids, got {c} and {len(image_ids)}")
        best, where = activations.detach().reshape(n, c, h * w).float().max(dim=2)  # (N, C)
        where = where.cpu()
        values = torch.cat([self.values, best.cpu().T], dim=1)
        images = torch.cat([self.images, torch.as_tensor(image_ids, dtype=torch.int64).cpu().expand(c, n)], dim=1)
        rows = torch.cat([self.rows, (where // w).T], dim=1)
        cols = torch.cat([self.cols, (where % w).T], dim=1)
        # Stable: among equal values the earlier column (an earlier image) stays ahead.
        order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, : self.k]
        self.values = values.gather(1, order)
        self.images = images.gather(1, order)
        self.rows = rows.gather(1, order)
        self.cols = cols.gather(1, order)

    def state(self) -> dict[str, np.ndarray]:
        return {"values": self.values.numpy(), "images": self.images.numpy(),
                "rows": self.rows.numpy(), "cols": self.cols.numpy()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], k: int) -> TopK:
        values = np.asarray(state["values"], dtype=np.float32)
        out = cls(values.shape[0], k)
        out.values = torch.from_numpy(values.copy())
        for key in ("images", "rows", "cols"):
            setattr(out, key, torch.from_numpy(np.asarray(state[key], dtype=np.int64).copy()))
        return out
