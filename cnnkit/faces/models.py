"""The pretrained face models, loaded once per device on first use (never at import)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..weights import load_state_dict

if TYPE_CHECKING:
    import torch

#: The encoder every gallery and threshold in cnnkit refers to by default.
DEFAULT_ENCODER = "dlib-resnet-v1"
DEFAULT_DETECTOR = "mtcnn"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` or "auto" picks CUDA when present, else the CPU; bad names raise ValueError."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but PyTorch sees no CUDA GPU; use --device cpu")
    return resolved


def load_detector(device: str | torch.device | None = None):
    """The MTCNN detector on `device`, in eval mode (loaded once per device)."""
    return _load_detector(str(resolve_device(device)))


def load_encoder(device: str | torch.device | None = None):
    """The dlib ResNet encoder on `device`, in eval mode (loaded once per device)."""
    return _load_encoder(str(resolve_device(device)))


@functools.lru_cache(maxsize=4)
def _load_detector(device: str):
    from .mtcnn import MTCNN

    model = MTCNN()
    model.load_state_dict(load_state_dict(DEFAULT_DETECTOR))
    return model.eval().to(device)


@functools.lru_cache(maxsize=4)
def _load_encoder(device: str):
    from .encoder import DlibResNet

    model = DlibResNet()
    model.load_state_dict(load_state_dict(DEFAULT_ENCODER))
    return model.eval().to(device)


@dataclass(frozen=True)
class EmbeddingModel:
    """What made an embedding: galleries store it and refuse to mix embeddings of two models.

    `id` names the encoder and how it is used (flip averaging changes the vectors);
    `version` pins the weights (their sha256) and the alignment template.
    """

    encoder: str
    version: str
    dim: int
    flip: bool

    @property
    def id(self) -> str:
        return f"{self.encoder}+flip" if self.flip else self.encoder


#: Bumped whenever the alignment (template, sampling) changes the chips.
ALIGNMENT_VERSION = "align1"


def embedding_model(flip: bool = True, encoder: str = DEFAULT_ENCODER) -> EmbeddingModel:
    from ..weights import get_spec

    spec = get_spec(encoder)
    return EmbeddingModel(encoder=encoder, version=f"{spec.members[0].sha256[:12]}-{ALIGNMENT_VERSION}",
                          dim=spec.embedding_size or 128, flip=flip)
