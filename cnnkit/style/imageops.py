"""Pixels between numpy (H x W x 3 uint8, what `load_image` returns) and tensors (1 x 3 x H x W, 0-1)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def fit_long_edge(height: int, width: int, long_edge: int) -> tuple[int, int]:
    """(h, w) with the longer side `long_edge` and the aspect ratio kept (each side >= 1)."""
    scale = long_edge / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def fit_area(height: int, width: int, area: float) -> tuple[int, int]:
    """(h, w) covering about `area` pixels with the aspect ratio kept."""
    scale = (area / (height * width)) ** 0.5
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` (H, W, 3) uint8 resized to `size` (h, w); Lanczos when shrinking, bicubic when enlarging."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrinking = h * w < image.shape[0] * image.shape[1]
    pil = Image.fromarray(image).resize((w, h), Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC)
    return np.asarray(pil)


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1] on `device`."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).to(device)
    return x.permute(2, 0, 1)[None].float().div_(255.0).contiguous()


def to_uint8(image: Tensor) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] (clipped) -> (H, W, 3) uint8."""
    x = image.detach()[0].clamp(0, 1).mul(255).round_().to(torch.uint8)
    return x.permute(1, 2, 0).contiguous().cpu().numpy()


def upsample(image: Tensor, size: tuple[int, int]) -> Tensor:
    """A (1, 3, h, w) image resized to `size` (bicubic), for the next pass of a coarse-to-fine run."""
    return torch.nn.functional.interpolate(image, size=size, mode="bicubic", align_corners=False)
