"""The encoders `cnnkit faces train` can train (their modules live in faces/architectures.py)."""

from __future__ import annotations

from torch import nn

from ..architectures import ARCHITECTURES, ProjectedEncoder, SmallResNet

ARCHITECTURE_CHOICES = tuple(ARCHITECTURES)

__all__ = ["ARCHITECTURE_CHOICES", "ProjectedEncoder", "SmallResNet", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
