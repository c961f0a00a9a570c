"""The pretrained face models, loaded once per device on first use (never at import)."""

from __future__ import annotations

import functools

import torch

from ..weights import load_state_dict

#: The encoder every gallery and threshold in cnnkit refers to by default.
DEFAULT_ENCODER = "dlib-resnet-v1"
DEFAULT_DETECTOR = "mtcnn"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` or "auto" picks CUDA when present, else the CPU; bad names raise ValueError."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but PyTorch sees no CUDA GPU; use --device cpu")
    return resolved


@functools.lru_cache(maxsize=4)
def load_detector(device: str | torch.device | None = None):
    """The MTCNN detector on `device`, in eval mode."""
    from .mtcnn import MTCNN

    dev = resolve_device(device)
    model = MTCNN()
    model.load_state_dict(load_state_dict(DEFAULT_DETECTOR))
    return model.eval().to(dev)


@functools.lru_cache(maxsize=4)
def load_encoder(device: str | torch.device | None = None):
    """The dlib ResNet encoder on `device`, in eval mode."""
    from .encoder import DlibResNet

    dev = resolve_device(device)
    model = DlibResNet()
    model.load_state_dict(load_state_dict(DEFAULT_ENCODER))
    return model.eval().to(dev)
