"""A small ResNet-style classifier for 1D, 2D or 3D inputs, from one config.

    ResNetConfig(dim=1, in_channels=2, num_classes=4, widths=(16, 32, 64))
    ResNetConfig(dim=3, in_channels=1, num_classes=2, widths=(16, 32, 64, 128))

Stem (conv -> norm -> ReLU, optional stride / max-pool), one stage per width
(stage i>0 halves every spatial axis, or the axes in `stage_stride`), global
average pooling, optional side features (e.g. RR intervals of a heartbeat)
through a small MLP concatenated before the head, dropout, linear head.

`PerFrame2D` applies a 2D network to every frame of a clip and averages the
frames' logits: the image baseline for video (it cannot see the order of frames).
`FramesAsChannels2D` stacks the frames as channels of one 2D network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from ..errors import SettingsError
from .layers import NormKind, ResidualBlock, check_dim, conv_norm_act, count_parameters, global_pool, pool


@dataclass(frozen=True)
class ResNetConfig:
    dim: int
    in_channels: int
    num_classes: int
    widths: tuple[int, ...] = (16, 32, 64)
    blocks: tuple[int, ...] | None = None  # residual blocks per stage (default 1 each)
    kernel_size: int = 3
    stem_kernel: int = 3
    stem_stride: int = 1
    stem_pool: bool = False
    stage_stride: tuple[int, ...] | None = None  # per-axis stride of stages 2.. (default 2 on every axis)
    norm: NormKind = "batch"
    dropout: float = 0.0
    block_dropout: float = 0.0
    side_features: int = 0
    side_width: int = 32

    def __post_init__(self) -> None:
        check_dim(self.dim)
        if not self.widths:
            raise SettingsError("widths must name at least one stage")
        if self.blocks is not None and len(self.blocks) != len(self.widths):
            raise SettingsError(f"blocks {self.blocks} must have one entry per width {self.widths}")
        if self.stage_stride is not None and len(self.stage_stride) != self.dim:
            raise SettingsError(f"stage_stride needs {self.dim} entries, got {self.stage_stride}")
        if self.num_classes < 1 or self.in_channels < 1:
            raise SettingsError("num_classes and in_channels must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResNetConfig:
        known = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        return cls(**kw)


class ResNetND(nn.Module):
    """See the module docstring; forward(x, side=None) -> logits (N, num_classes)."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = c = config
        stem: list[nn.Module] = [conv_norm_act(c.dim, c.in_channels, c.widths[0], c.stem_kernel,
                                               stride=c.stem_stride, norm_kind=c.norm)]
        if c.stem_pool:
            stem.append(pool(c.dim, kind="max", kernel_size=3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        blocks = c.blocks or (1,) * len(c.widths)
        stages = []
        in_ch = c.widths[0]
        stride2 = c.stage_stride or (2,) * c.dim
        for i, (width, n) in enumerate(zip(c.widths, blocks)):
            layers = []
            for j in range(n):
                stride = stride2 if (i > 0 and j == 0) else 1
                layers.append(ResidualBlock(c.dim, in_ch, width, kernel_size=c.kernel_size, stride=stride,
                                            norm_kind=c.norm, drop=c.block_dropout))
                in_ch = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = global_pool(c.dim)
        head_in = in_ch
        if c.side_features:
            self.side: nn.Module | None = nn.Sequential(nn.Linear(c.side_features, c.side_width), nn.ReLU(inplace=True))
            head_in += c.side_width
        else:
            self.side = None
        self.drop = nn.Dropout(c.dropout) if c.dropout > 0 else nn.Identity()
        self.head = nn.Linear(head_in, c.num_classes)

    def features(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        expected = self.config.dim + 2
        if x.dim() != expected:
            axes = {1: "L", 2: "H, W", 3: "D, H, W"}[self.config.dim]
            raise SettingsError(f"a {self.config.dim}D network takes (N, C, {axes}) tensors, "
                                f"got shape {tuple(x.shape)}")
        h = self.pool(self.stages(self.stem(x)))
        if self.side is not None:
            if side is None:
                raise SettingsError("this network also takes side features (e.g. RR intervals); none were given")
            h = torch.cat([h, self.side(side)], dim=1)
        return h

    def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.drop(self.features(x, side)))


class PerFrame2D(nn.Module):
    """A 2D network applied to each frame of (N, C, T, H, W); the frames' logits are averaged.

    Averaging makes it blind to the order of frames, like classifying a video from
    its frames one at a time.
    """

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        if config.dim != 2:
            raise SettingsError("PerFrame2D needs a 2D config")
        self.config = config
        self.net = ResNetND(config)

    def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 5:
            raise SettingsError(f"PerFrame2D takes clips (N, C, T, H, W), got shape {tuple(x.shape)}")
        n, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        return self.net(frames).reshape(n, t, -1).mean(dim=1)


class FramesAsChannels2D(nn.Module):
    """A 2D network that takes a clip's T frames as T input channels ("early fusion").

    Unlike PerFrame2D it sees all frames at once, so its first layer can compare
    them: time is modelled, only without weight sharing along it.
    """

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        if config.dim != 2:
            raise SettingsError("FramesAsChannels2D needs a 2D config (in_channels = frames)")
        self.config = config
        self.net = ResNetND(config)

    def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != 1:
            raise SettingsError(f"FramesAsChannels2D takes one-channel clips (N, 1, T, H, W), got {tuple(x.shape)}")
        if x.shape[2] != self.config.in_channels:
            raise SettingsError(f"this network takes clips of {self.config.in_channels} frames, got {x.shape[2]}")
        return self.net(x[:, 0])


ARCHITECTURES = {"resnet": ResNetND, "perframe2d": PerFrame2D, "frames2d": FramesAsChannels2D}


def build_model(config: ResNetConfig, *, architecture: str = "resnet") -> nn.Module:
    """The network named `architecture` ('resnet', 'perframe2d' or 'frames2d') for `config`."""
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise SettingsError(f"unknown architecture {architecture!r}; use one of {sorted(ARCHITECTURES)}") from None
    return cls(config)


__all__ = [
    "ARCHITECTURES",
    "FramesAsChannels2D",
    "PerFrame2D",
    "ResNetConfig",
    "ResNetND",
    "build_model",
    "count_parameters",
]
