"""Which device to run on: "auto" picks CUDA when PyTorch sees a GPU, else the CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SettingsError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "cpu, cuda, cuda:N or auto (CUDA when a GPU is present, else cpu; the default)"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` or "auto" picks CUDA when present, else the CPU; unknown names raise SettingsError."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise SettingsError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU; use the device 'cpu' "
                            "or 'auto'")
    return resolved
