"""dlib's ResNet face encoder (``dlib_face_recognition_resnet_model_v1``) as a PyTorch module.

The network is dlib's ``anet_type`` (``examples/dnn_face_recognition_ex.cpp``):
a 7x7/2 convolution and a 3x3/2 max pool, then 14 residual blocks of two 3x3
convolutions (32, 64, 128, 256 and 256 filters), a global average pool and a
128-way fully connected layer without bias.  It maps a 150 x 150 aligned face
chip to a 128-D embedding; two chips show the same person when the Euclidean
distance between their embeddings is below 0.6.  The output is *not*
L2-normalised: dlib does not normalise it either (norms are about 1.4 on LFW),
and its 0.6 threshold applies to these raw vectors.

Conversion folds each of dlib's ``affine_`` layers (a frozen batch norm,
``y = gamma * x + beta`` per channel) into the convolution before it, so the
module is only conv(+bias) / relu / pooling / add.

Details of dlib's layers reproduced here:

* padding: dlib's convolutions and pools pad ``size // 2`` when their stride
  is 1 and nothing otherwise, so the strided 7x7, 3x3 and pooling layers here
  have no padding (an input of 150 gives 72, 35, 17, 8, 4 and 2 pixels);
* the shortcut of a down-sampling block is a 2x2/2 average pool of its input;
  where the block and the shortcut differ in channels *or in size* (a 3x3
  output plus a 4x4 shortcut at 256 channels), dlib's ``add_prev`` adds them
  as if the smaller one were padded with zeros at the end of each dimension;
* the input is ``(rgb - mean) / 256`` with dlib's per-channel means
  (122.782, 117.001, 104.298), stored in the file and kept as the buffer
  ``input_mean``;
* dlib's fc layer computes ``x @ W`` with ``W`` stored as (inputs, outputs);
  ``nn.Linear`` wants its transpose.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SettingsError
from ..weights.dlib_format import DlibNetwork, LayerRecord, parse_network

__all__ = ["CHIP_SIZE", "DlibResNet", "dlib_resnet_from_state_dict", "state_dict_from_dlib"]

log = logging.getLogger(__name__)

#: The side of the aligned face chip the encoder takes (dlib's get_face_chip(img, shape, 150, 0.25)).
CHIP_SIZE = 150
#: dlib's input_rgb_image_sized defaults (the values in the released file).
DLIB_RGB_MEANS = (122.782, 117.001, 104.298)
#: (filters, down-sampling) of the 14 residual blocks, input to output.
BLOCKS: tuple[tuple[int, bool], ...] = (
    ((32, False),) * 3
    + ((64, True),) + ((64, False),) * 3
    + ((128, True),) + ((128, False),) * 2
    + ((256, True),) + ((256, False),) * 2
    + ((256, True),)
)
EMBEDDING_DIM = 128


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b`` where the smaller of each channel/height/width dimension counts as zero-padded at its end.

    This is dlib's ``add_prev``; it matters for the down-sampling blocks, whose
    shortcut has fewer channels, and for the last two, whose shortcut is one
    pixel larger than the strided convolution's output.
    """
    if a.shape == b.shape:
        return a + b
    _, ca, ha, wa = a.shape
    _, cb, hb, wb = b.shape
    c, h, w = max(ca, cb), max(ha, hb), max(wa, wb)
    a = F.pad(a, (0, w - wa, 0, h - ha, 0, c - ca)) if (ca, ha, wa) != (c, h, w) else a
    b = F.pad(b, (0, w - wb, 0, h - hb, 0, c - cb)) if (cb, hb, wb) != (c, h, w) else b
    return a + b


class _Residual(nn.Module):
    """relu(add_prev(block(x), shortcut(x))): dlib's ``ares`` / ``ares_down``."""

    def __init__(self, in_channels: int, out_channels: int, down: bool) -> None:
        super().__init__()
        stride = 2 if down else 1
        # dlib pads a strided convolution by 0, not by 1 as torchvision's ResNets do.
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=0 if down else 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_zero_padded(y, shortcut))


class DlibResNet(nn.Module):
    """dlib's 29-conv face ResNet.

    Input: float tensor (N, 3, 150, 150), RGB, values 0..255 (dlib's uint8
    chips as floats), any device.  Output: (N, 128) float32 embeddings, exactly
    as dlib's network outputs them (not normalised).
    """

    input_mean: torch.Tensor  # a buffer: dlib's mean pixel

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(DLIB_RGB_MEANS, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        blocks: list[nn.Module] = []
        channels = 32
        for filters, down in BLOCKS:
            blocks.append(_Residual(channels, filters, down))
            channels = filters
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, EMBEDDING_DIM, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise SettingsError(f"DlibResNet wants (N, 3, {CHIP_SIZE}, {CHIP_SIZE}) RGB 0-255, got {tuple(x.shape)}")
        # channels_last is the faster layout for oneDNN's CPU convolutions (see bench/faces/encoder_speed.py).
        x = ((x.float() - self.input_mean) * (1.0 / 256.0)).contiguous(memory_format=torch.channels_last)
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


# ----------------------------------------------------------------------------------------
# Conversion from dlib's file


#: A layer as `check_architecture` expects it: (kind, hyper-parameters to check).
_Layer = tuple[str, dict[str, object]]


def _expected_layers() -> list[_Layer]:
    """dlib's anet_type as (kind, hyper-parameters to check), input to output, in the file's terms."""
    def con(n: int, k: int, s: int) -> _Layer:
        p = k // 2 if s == 1 else 0  # dlib's default padding
        return "con_", {"num_filters": n, "nr": k, "nc": k, "stride_y": s, "stride_x": s,
                        "padding_y": p, "padding_x": p}

    def pool(kind: str, k: int, s: int) -> _Layer:
        return kind, {"nr": k, "nc": k, "stride_y": s, "stride_x": s, "padding_y": 0, "padding_x": 0}

    affine: _Layer = ("affine_", {"mode": "CONV"})
    relu: _Layer = ("relu_", {})
    marker: _Layer = ("tag_or_skip", {})
    seq: list[_Layer] = [("input_rgb_image_sized", {"nr": CHIP_SIZE, "nc": CHIP_SIZE}), con(32, 7, 2), affine, relu,
                         pool("max_pool_", 3, 2)]
    for filters, down in BLOCKS:
        body = [marker, con(filters, 3, 2 if down else 1), affine, relu, con(filters, 3, 1), affine]
        if down:  # add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<tag1<...>>>>>>
            seq += [*body, marker, marker, pool("avg_pool_", 2, 2), ("add_prev_", {}), relu]
        else:     # add_prev1<block<tag1<...>>>
            seq += [*body, ("add_prev_", {}), relu]
    seq += [pool("avg_pool_", 0, 1),  # avg_pool_everything
            ("fc_", {"num_inputs": 256, "num_outputs": EMBEDDING_DIM, "bias_mode": "FC_NO_BIAS"}),
            ("loss_metric_", {})]
    return seq


def check_architecture(net: DlibNetwork) -> None:
    """Raise ValueError unless `net` is dlib's face ResNet (anet_type) layer for layer."""
    expected = _expected_layers()
    if len(net.layers) != len(expected):
        raise SettingsError(f"{net.source}: {len(net.layers)} layers, dlib's face ResNet has {len(expected)}")
    for i, (layer, (kind, hyper)) in enumerate(zip(net.layers, expected)):
        if layer.kind != kind:
            raise SettingsError(f"{net.source}: layer {i} is {layer.version!r}, expected {kind!r}")
        for key, value in hyper.items():
            if layer.hyper.get(key) != value:
                raise SettingsError(f"{net.source}: layer {i} ({layer.version}) has {key}="
                                 f"{layer.hyper.get(key)!r}, expected {value!r}")
        if layer.hyper.get("disabled"):
            raise SettingsError(f"{net.source}: layer {i} ({layer.version}) is disabled")


def _fold(con: LayerRecord, affine: LayerRecord) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight and bias with the following affine_ layer folded in (in float64, then float32)."""
    w = con.arrays["weight"].astype(np.float64)
    b = con.arrays.get("bias", np.zeros(w.shape[0])).astype(np.float64)
    gamma = affine.arrays["gamma"].astype(np.float64)
    beta = affine.arrays["beta"].astype(np.float64)
    weight = w * gamma[:, None, None, None]
    bias = b * gamma + beta
    return torch.from_numpy(weight.astype(np.float32)), torch.from_numpy(bias.astype(np.float32))


def state_dict_from_dlib(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Convert ``dlib_face_recognition_resnet_model_v1.dat`` to a `DlibResNet` state dict.

    Raises `cnnkit.weights.dlib_format.DlibFormatError` for an unreadable or
    corrupt file, ValueError for a dlib network of another architecture.
    """
    net = parse_network(path)
    check_architecture(net)
    layers = net.layers
    cons = [i for i, layer in enumerate(layers) if layer.kind == "con_"]
    folded: Iterator[tuple[torch.Tensor, torch.Tensor]] = iter(_fold(layers[i], layers[i + 1]) for i in cons)

    inp = net.input.hyper
    out: dict[str, torch.Tensor] = {
        "input_mean": torch.tensor([inp["avg_red"], inp["avg_green"], inp["avg_blue"]],
                                   dtype=torch.float32).view(1, 3, 1, 1),
    }
    out["stem.weight"], out["stem.bias"] = next(folded)
    for i in range(len(BLOCKS)):
        for conv in ("conv1", "conv2"):
            out[f"blocks.{i}.{conv}.weight"], out[f"blocks.{i}.{conv}.bias"] = next(folded)
    out["fc.weight"] = torch.from_numpy(np.ascontiguousarray(net.of_kind("fc_")[0].arrays["weight"].T))
    log.debug("converted %s: %d tensors", path, len(out))
    return out


def dlib_resnet_from_state_dict(state_dict: dict[str, torch.Tensor],
                                device: str | torch.device = "cpu") -> DlibResNet:
    """A `DlibResNet` holding `state_dict`, on `device`, in eval mode with gradients off."""
    model = DlibResNet()
    model.load_state_dict(state_dict)
    model.requires_grad_(False)
    return model.eval().to(device)
