"""Training-time augmentation of aligned chips, on whole batches of tensors (no per-image Python).

Mirror image (p = 0.5), a small random crop (scale and shift, resampled back to
the chip size by one affine grid) and colour jitter (brightness, contrast,
saturation). Chips are float (B, 3, S, S), 0-255, as the encoders take them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...errors import SettingsError


@dataclass(frozen=True)
class Augment:
    flip: bool = True
    min_scale: float = 0.9      # crop side as a fraction of the chip side
    max_shift: float = 0.05     # crop centre offset, fraction of the side
    brightness: float = 0.2     # multiply by 1 +- this
    contrast: float = 0.2
    saturation: float = 0.2

    def __post_init__(self) -> None:
        if not 0.5 <= self.min_scale <= 1.0:
            raise SettingsError(f"min_scale must be in [0.5, 1], got {self.min_scale}")
        for name in ("max_shift", "brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise SettingsError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def __call__(self, chips: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = len(chips)
        if n == 0:
            return chips

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(n, generator=generator)

        scale = uniform(self.min_scale, 1.0)
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if self.flip else torch.ones(n)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = scale * sign          # the mirror image is a negative x scale
        theta[:, 1, 1] = scale
        theta[:, 0, 2] = uniform(-self.max_shift, self.max_shift) * 2
        theta[:, 1, 2] = uniform(-self.max_shift, self.max_shift) * 2
        theta = theta.to(chips.device, chips.dtype)
        grid = F.affine_grid(theta, list(chips.shape), align_corners=False)
        out = F.grid_sample(chips, grid, mode="bilinear", padding_mode="border", align_corners=False)

        view = (n, 1, 1, 1)
        b = uniform(1 - self.brightness, 1 + self.brightness).to(chips).view(view)
        c = uniform(1 - self.contrast, 1 + self.contrast).to(chips).view(view)
        s = uniform(1 - self.saturation, 1 + self.saturation).to(chips).view(view)
        out = out * b
        grey = out.mean(dim=1, keepdim=True)
        out = grey + (out - grey) * s
        mean = grey.mean(dim=(2, 3), keepdim=True)
        out = mean + (out - mean) * c
        return out.clamp(0.0, 255.0)
