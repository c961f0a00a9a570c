"""The pretrained face models, loaded once per device on first use (never at import)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..runtime.device import resolve_device
from ..weights import load_model
from .templates import DLIB_CHIP_TEMPLATE

if TYPE_CHECKING:
    import torch

#: The encoder every gallery and threshold in cnnkit refers to by default.
DEFAULT_ENCODER = "dlib-resnet-v1"
DEFAULT_DETECTOR = "mtcnn"



def load_detector(device: str | torch.device | None = None):
    """The MTCNN detector on `device`, in eval mode (loaded once per device)."""
    return _load_detector(str(resolve_device(device)))


def load_encoder(device: str | torch.device | None = None, encoder: str = DEFAULT_ENCODER):
    """An encoder on `device`, in eval mode, loaded once per device.

    `encoder` is a registry name (default: dlib's ResNet) or the path of a saved
    encoder folder (see saved_encoder.py).
    """
    return _load_encoder(str(resolve_device(device)), encoder_spec(encoder).ref)


@functools.lru_cache(maxsize=4)
def _load_detector(device: str):
    return load_model(DEFAULT_DETECTOR, device)


@functools.lru_cache(maxsize=8)
def _load_encoder(device: str, ref: str):
    if ref != DEFAULT_ENCODER:
        from .saved_encoder import load_saved_encoder

        return load_saved_encoder(ref, device)
    return load_model(DEFAULT_ENCODER, device)


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder, in a form galleries can store: `ref` is the registry name or the saved folder's path.

    `chip_size` and `template` say how the recognizer cuts its chips: a square of
    `chip_size` pixels where the five landmarks (left eye, right eye, nose, mouth
    corners) land on `template` (fractions of chip_size - 1).
    """

    ref: str
    version: str  # the weights' sha256 (first 12 hex digits) and the alignment version
    dim: int
    chip_size: int
    template: tuple[tuple[float, float], ...] = tuple(map(tuple, DLIB_CHIP_TEMPLATE.tolist()))

    @property
    def template_array(self) -> np.ndarray:
        return np.asarray(self.template, dtype=np.float64)


@functools.lru_cache(maxsize=16)
def encoder_spec(encoder: str = DEFAULT_ENCODER) -> EncoderSpec:
    from ..errors import WeightsError
    from ..weights import get_spec
    from .saved_encoder import is_saved_encoder, read_config

    if encoder == DEFAULT_ENCODER:
        spec = get_spec(encoder)
        return EncoderSpec(encoder, f"{spec.members[0].sha256[:12]}-{ALIGNMENT_VERSION}", spec.embedding_size or 128,
                           (spec.input_size or (3, 150, 150))[-1])
    if is_saved_encoder(encoder):
        config = read_config(encoder)
        return EncoderSpec(str(config.path), f"{config.sha256[:12]}-{ALIGNMENT_VERSION}", config.embedding_dim,
                           config.chip_size)
    raise WeightsError(f"unknown encoder {encoder!r}: give {DEFAULT_ENCODER!r} or the folder of a saved encoder "
                       "(with config.json and model.safetensors)")


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
        name = (self.encoder if self.encoder == DEFAULT_ENCODER
                else f"saved:{self.encoder.rstrip('/').rsplit('/', 1)[-1]}")
        return f"{name}+flip" if self.flip else name


#: Bumped whenever the alignment (template, sampling) changes the chips.
ALIGNMENT_VERSION = "align1"


def embedding_model(flip: bool = True, encoder: str = DEFAULT_ENCODER) -> EmbeddingModel:
    spec = encoder_spec(encoder)
    return EmbeddingModel(encoder=spec.ref, version=spec.version, dim=spec.dim, flip=flip)
