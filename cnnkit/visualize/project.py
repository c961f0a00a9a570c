"""Projections of a unit's activation back to pixel space: Zeiler & Fergus's deconvnet, or guided backpropagation.

Both are the gradient of the unit with respect to the input pixels, with the
backward pass through each ReLU changed:

* ``"gradient"``: unchanged (the plain saliency of Simonyan et al.);
* ``"deconvnet"`` (Zeiler & Fergus 2014): the signal going down is passed
  through a ReLU and the forward pass's mask is ignored. Max pooling passes the
  signal to the position that won in the forward pass (their "switches") and a
  convolution applies its transposed filters, which is what autograd does
  anyway;
* ``"guided"`` (Springenberg et al. 2015): both masks, the forward pass's and
  the ReLU of the signal going down.

The change is made by a `TorchDispatchMode` that rewrites ATen's
``threshold_backward`` (the backward of ``relu`` and ``relu_``), so it applies
to ReLUs used as modules or as functions alike. Other activations (leaky ReLU,
GELU) keep their ordinary gradient.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import SettingsError
from .hooks import capture, forward_until
from .models import VisualModel

PROJECTION_CHOICES = ("deconvnet", "guided", "gradient")

aten = torch.ops.aten


class _ReluBackward(TorchDispatchMode):
    def __init__(self, method: str) -> None:
        super().__init__()
        self.method = method

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten.threshold_backward.default and self.method != "gradient":
            grad, forward_value, threshold = args
            down = torch.relu(grad)  # the ReLU applied to the signal going down
            if self.method == "deconvnet":
                return down
            return func(down, forward_value, threshold)  # guided: and the forward mask
        return func(*args, **kwargs)


def project(model: VisualModel, layer: str, unit: int, views: np.ndarray, positions, *,
            method: str = "deconvnet", device: str | torch.device = "cpu") -> np.ndarray:
    """The projection (N, H, W, 3) float32 of `unit` of `layer` at ``positions[i] = (row, col)`` of each view.

    `views`: (N, H, W, 3) uint8, the network's views of N images (of one size).
    The N images share one forward and one backward pass; they do not interact.
    """
    if method not in PROJECTION_CHOICES:
        raise SettingsError(f"projection must be one of {PROJECTION_CHOICES}, got {method!r}")
    modules = model.modules_for([layer])
    pixels = torch.from_numpy(np.ascontiguousarray(views)).to(device).permute(0, 3, 1, 2).float()
    pixels.requires_grad_(True)
    rows = torch.tensor([int(r) for r, _ in positions], device=pixels.device)
    cols = torch.tensor([int(c) for _, c in positions], device=pixels.device)
    with torch.enable_grad(), capture(modules) as outputs, _ReluBackward(method):
        found = forward_until(model.run, model.to_input(pixels), outputs)
        act: Tensor = model.activation(layer, found[layer])
        picked = act[torch.arange(len(rows), device=act.device), unit, rows, cols]
        (grad,) = torch.autograd.grad(picked.sum(), pixels)
    return grad.permute(0, 2, 3, 1).float().cpu().numpy()


def to_picture(projection: np.ndarray, *, clip_percentile: float = 99.5) -> np.ndarray:
    """A projection as an RGB uint8 picture: zero is mid-gray, the `clip_percentile`-th percentile of the
    magnitudes reaches 0 or 255 (a few stronger values are clipped, so faint structure stays visible)."""
    magnitude = np.abs(projection)
    scale = float(np.percentile(magnitude[magnitude > 0], clip_percentile)) if (magnitude > 0).any() else 0.0
    if scale == 0.0:
        return np.full(projection.shape, 128, dtype=np.uint8)
    return np.clip(128 + 127 * projection / scale, 0, 255).astype(np.uint8)
