"""How much memory a style transfer needs, checked before anything heavy runs.

The peak comes from the last (full-size) pass: VGG19's activations up to the
deepest layer used, kept for the backward pass, plus the optimizer's history.
Both grow with the number of output pixels; the estimate is linear in it, with
coefficients measured on CPU (`bench/style/style_memory.py`) and a safety margin.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..errors import OutputTooLargeError
from .vgg import LAYER_CHANNELS, LAYER_NAMES

MiB = 1 << 20
GiB = 1 << 30

#: What is there before any image: Python, PyTorch, the VGG19 weights (80 MiB).
#: `bench/style/style_memory.py` measured about 500 MiB at the smallest output.
BASE_BYTES = 512 * MiB

#: Peak bytes per output pixel beyond the activations' own count (gradients in flight,
#: allocator slack), as a factor on `_activation_floats`. The measured slope
#: (bench/results/style_memory.json: 2,400-2,800 bytes per pixel with 3 history pairs)
#: corresponds to about 1.3-1.4; 1.6 keeps the estimate 7-16 % above every measurement (256-1024 px).
ACTIVATION_FACTOR = 1.6



@dataclass(frozen=True)
class MemoryEstimate:
    bytes: int
    available: int | None

    @property
    def fits(self) -> bool:
        return self.available is None or self.bytes <= self.available


def _activation_floats(deepest: str) -> float:
    """Floats per input pixel that one forward pass keeps for its backward pass, up to `deepest`."""
    floats = 3.0  # the normalised input
    used = LAYER_NAMES[: LAYER_NAMES.index(deepest) + 1]
    for index, name in enumerate(used):
        block = int(name[4])
        floats += LAYER_CHANNELS[name] / 4 ** (block - 1)
        if index + 1 < len(used) and used[index + 1].endswith("_1"):
            # the max-pool's output, and its int64 indices (two floats' worth)
            floats += 3 * LAYER_CHANNELS[name] / 4**block
    return floats


def estimate_bytes(height: int, width: int, *, deepest: str = "conv5_1", history: int = 0,
                   style_ratio: float = 1.0) -> int:
    """Peak bytes of a transfer to (height, width) using layers up to `deepest`.

    `history`: L-BFGS history pairs (two image-sized vectors each); `style_ratio`:
    pixels of the largest style image per output pixel (its targets are computed
    without gradients, two conv1 activations at a time).
    """
    per_pixel = 4 * (ACTIVATION_FACTOR * _activation_floats(deepest) + 2 * 3 * history + 3 * 6
                     + 2 * 64 * style_ratio)
    return int(BASE_BYTES + per_pixel * height * width)


def available_bytes(device: str = "cpu") -> int | None:
    """Memory the transfer may use on `device`: free GPU memory, or MemAvailable of the machine."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(height: int, width: int, *, limit: int | None, what: str = "output", **estimate) -> MemoryEstimate:
    """Raise `OutputTooLargeError` naming the largest long edge that fits when (height, width) does not."""
    need = estimate_bytes(height, width, **estimate)
    result = MemoryEstimate(need, limit)
    if limit is None or result.fits:  # no known limit fits anything
        return result
    # Largest long edge with the same aspect ratio whose estimate fits the limit.
    per_pixel = (need - BASE_BYTES) / (height * width)
    room = max(0.0, limit - BASE_BYTES)
    scale = math.sqrt(room / per_pixel / (height * width)) if per_pixel > 0 else 0.0
    fit = int(max(height, width) * scale) // 16 * 16
    advice = f"use a size of {fit} px or less (long edge)" if fit >= 64 else "free some memory"
    raise OutputTooLargeError(
        f"a {width}x{height} px {what} needs about {need / GiB:.1f} GiB for style transfer but "
        f"{limit / GiB:.1f} GiB is available; {advice}"
    )
