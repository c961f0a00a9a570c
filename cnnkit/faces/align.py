"""Face alignment: a similarity transform from 5 landmarks to an encoder's canonical chip.

Where the landmarks should land is the encoder's template (templates.py). The
dlib encoder was trained on 150 x 150 chips cut by dlib from its own
landmarks; `DLIB_CHIP_TEMPLATE` places MTCNN's points where dlib's alignment
puts them.

Pixel convention, as dlib's: (0, 0) is the centre of the top-left pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SettingsError
from .templates import DLIB_CHIP_TEMPLATE

CHIP_SIZE = 150


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking `src` points to `dst`.

    Umeyama's closed form. `src`, `dst`: (K, 2). Returns the 2 x 3 matrix `M` with
    dst ~= M[:, :2] @ src + M[:, 2].
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise SettingsError(f"need two (K, 2) point sets with K >= 2, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(covariance)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # keep a rotation, never a reflection
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    variance = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / variance if variance > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def chip_transforms(landmarks: np.ndarray, *, size: int = CHIP_SIZE,
                    template: np.ndarray = DLIB_CHIP_TEMPLATE) -> np.ndarray:
    """For each face's (5, 2) landmarks, the 2 x 3 map from chip pixels to image pixels. Returns (N, 2, 3)."""
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, len(template), 2)
    target = template * (size - 1)
    out = np.empty((len(landmarks), 2, 3))
    for i, points in enumerate(landmarks):
        # Fit image -> chip (what the template describes), then invert it for sampling.
        forward = similarity_transform(points, target)
        out[i] = invert_affine(forward)
    return out


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    linear_inv = np.linalg.inv(matrix[:, :2])
    return np.concatenate([linear_inv, -linear_inv @ matrix[:, 2:3]], axis=1)


def warp_chips(image: torch.Tensor, chip_to_image: np.ndarray, size: int = CHIP_SIZE) -> torch.Tensor:
    """Cut chips from one image by bilinear sampling.

    `image`: float (3, H, W) on any device; `chip_to_image`: (N, 2, 3) pixel maps.
    Returns float (N, 3, size, size). Outside the image is black, as in dlib.
    dlib then truncates to uint8: `floor()` the result to get its chips exactly.
    Where a chip is much smaller than its region of the image, the image is first
    downscaled with antialiasing so the sampling does not alias (dlib uses an
    image pyramid for the same reason).
    """
    if len(chip_to_image) == 0:
        return image.new_zeros((0, 3, size, size))
    _height, _width = image.shape[-2:]
    chips = []
    for matrix in chip_to_image:
        source, m = image, matrix.copy()
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))  # image pixels per chip pixel
        factor = int(scale // 2) * 2 if scale >= 2.0 else 1
        if factor > 1:
            source = F.interpolate(image[None], scale_factor=1.0 / factor, mode="bilinear",
                                   antialias=True, align_corners=False, recompute_scale_factor=False)[0]
            # A pixel centre x in the full image sits at (x + 0.5) / factor - 0.5 in the small one.
            m = m / factor
            m[:, 2] += 0.5 / factor - 0.5
        chips.append(_sample(source, m, size))
    return torch.stack(chips)


def _sample(image: torch.Tensor, matrix: np.ndarray, size: int) -> torch.Tensor:
    height, width = image.shape[-2:]
    coords = torch.arange(size, dtype=torch.float64)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    m = torch.as_tensor(matrix, dtype=torch.float64)
    x = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    y = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    # align_corners=True: -1 and +1 are the centres of the first and last pixels.
    grid = torch.stack([2 * x / max(width - 1, 1) - 1, 2 * y / max(height - 1, 1) - 1], dim=-1)
    grid = grid.to(device=image.device, dtype=image.dtype)[None]
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]


def align_faces(image: np.ndarray | torch.Tensor, landmarks: Sequence[np.ndarray] | np.ndarray, *,
                size: int = CHIP_SIZE, device: str | torch.device = "cpu") -> np.ndarray:
    """Aligned chips (N, size, size, 3) uint8 RGB for the faces with the given (N, 5, 2) landmarks."""
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    tensor = image_to_tensor(image, device)
    chips = warp_chips(tensor, chip_transforms(landmarks, size=size), size)
    return chips.floor().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def image_to_tensor(image: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """HxWx3 uint8 (numpy or torch) -> float (3, H, W) on `device`."""
    tensor = torch.as_tensor(image)
    if tensor.ndim != 3 or tensor.shape[2] != 3:
        raise SettingsError(f"expected an H x W x 3 RGB image, got shape {tuple(tensor.shape)}")
    return tensor.to(device).permute(2, 0, 1).float()
