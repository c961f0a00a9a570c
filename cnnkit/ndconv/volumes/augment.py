"""Augmentation that respects 3-D: the volume's symmetries and small shifts, on (N, C, D, H, W) batches.

- "flips": each of the three axes flipped with probability 1/2 (8 variants);
- "cube": the 48 symmetries of the cube: a random permutation of the three axes
  (90-degree rotations and reflections combined) and random flips;
- "none".

Every mode also shifts each volume by up to `shift` voxels per axis (zero fill).
A 2-D augmentation applied slice by slice would rotate slices independently and
break the anatomy across slices; these transforms move the whole volume.
"""

from __future__ import annotations

from itertools import permutations
from typing import Literal

import numpy as np
import torch

from ...errors import SettingsError

Mode = Literal["none", "flips", "cube"]
MODES = ("none", "flips", "cube")
_PERMS = list(permutations((0, 1, 2)))


def augment(batch: torch.Tensor, rng: np.random.Generator, *, mode: Mode = "flips", shift: int = 0) -> torch.Tensor:
    """A new tensor: each volume of `batch` transformed by its own random draw."""
    if mode not in MODES:
        raise SettingsError(f"unknown augmentation {mode!r}; use one of {MODES}")
    if batch.dim() != 5:
        raise SettingsError(f"augment takes (N, C, D, H, W), got shape {tuple(batch.shape)}")
    out = []
    for v in batch:
        if mode == "cube":
            p = _PERMS[rng.integers(len(_PERMS))]
            v = v.permute(0, *(a + 1 for a in p))
        if mode in ("flips", "cube"):
            axes = [a + 1 for a in range(3) if rng.random() < 0.5]
            if axes:
                v = torch.flip(v, axes)
        if shift:
            v = _shift(v, rng.integers(-shift, shift + 1, size=3))
        out.append(v)
    return torch.stack(out)


def _shift(v: torch.Tensor, offsets: np.ndarray) -> torch.Tensor:
    out = torch.zeros_like(v)
    src, dst = [slice(None)], [slice(None)]
    for o, n in zip(offsets, v.shape[1:]):
        o = int(o)
        src.append(slice(max(0, -o), n - max(0, o)))
        dst.append(slice(max(0, o), n - max(0, -o)))
    out[tuple(dst)] = v[tuple(src)]
    return out


def symmetry_views(batch: torch.Tensor, mode: Mode) -> list[torch.Tensor]:
    """The deterministic views used for test-time augmentation: identity only, 8 flips, or 48 cube symmetries."""
    if mode == "none":
        return [batch]
    flips = [[a + 2 for a in range(3) if (k >> a) & 1] for k in range(8)]
    perms = _PERMS if mode == "cube" else [(0, 1, 2)]
    views = []
    for p in perms:
        b = batch.permute(0, 1, *(a + 2 for a in p))
        for axes in flips:
            views.append(torch.flip(b, axes) if axes else b)
    return views
