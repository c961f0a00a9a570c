"""The pretrained face models, loaded once per device on first use (never at import)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..runtime.device import resolve_device
from ..weights import load_model
from .settings import DEFAULT_ENCODER
from .templates import DLIB_CHIP_TEMPLATE

if TYPE_CHECKING:
    import torch

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
    if ref not in registry_encoders():
        from .saved_encoder import load_saved_encoder

        return load_saved_encoder(ref, device)
    return load_model(ref, device)


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
    #: Scale embeddings to unit length after flip averaging (encoders trained with a cosine loss).
    unit_length: bool = False
    #: A fusion: (part encoder, weight) pairs whose embeddings are concatenated (see catalog.FusionInfo).
    parts: tuple[tuple[str, float], ...] = ()

    @property
    def template_array(self) -> np.ndarray:
        return np.asarray(self.template, dtype=np.float64)


def registry_encoders() -> list[str]:
    """The names of the pretrained face encoders: weights in the registry, and fusions of them."""
    from .catalog import ENCODERS, FUSIONS

    return [*ENCODERS, *FUSIONS]


@functools.lru_cache(maxsize=16)
def encoder_spec(encoder: str = DEFAULT_ENCODER) -> EncoderSpec:
    """How to use `encoder`: a pretrained one by name, or a saved encoder's folder."""
    from ..errors import WeightsError
    from ..weights import get_spec
    from .catalog import ENCODERS, FUSIONS
    from .saved_encoder import is_saved_encoder, read_config
    from .templates import TEMPLATES

    if encoder in FUSIONS:
        parts = FUSIONS[encoder].parts
        specs = [encoder_spec(name) for name, _ in parts]
        return EncoderSpec(encoder, "+".join(s.version for s in specs), sum(s.dim for s in specs),
                           specs[0].chip_size, specs[0].template, parts=parts)
    if encoder in ENCODERS:
        info, spec = ENCODERS[encoder], get_spec(encoder)
        return EncoderSpec(encoder, f"{spec.members[0].sha256[:12]}-{ALIGNMENT_VERSION}", info.dim, info.chip_size,
                           tuple(map(tuple, TEMPLATES[info.template].tolist())), info.unit_length)
    if is_saved_encoder(encoder):
        config = read_config(encoder)
        return EncoderSpec(str(config.path), f"{config.sha256[:12]}-{ALIGNMENT_VERSION}", config.embedding_dim,
                           config.chip_size)
    raise WeightsError(f"unknown encoder {encoder!r}: give one of {', '.join([*ENCODERS, *FUSIONS])} or the "
                       "folder of a saved "
                       "encoder (with config.json and model.safetensors)")


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
        name = (self.encoder if "/" not in self.encoder and self.encoder in registry_encoders()
                else f"saved:{self.encoder.rstrip('/').rsplit('/', 1)[-1]}")
        return f"{name}+flip" if self.flip else name


#: Bumped whenever the alignment (template, sampling) changes the chips.
ALIGNMENT_VERSION = "align1"


def embedding_model(flip: bool = True, encoder: str = DEFAULT_ENCODER) -> EmbeddingModel:
    spec = encoder_spec(encoder)
    return EmbeddingModel(encoder=spec.ref, version=spec.version, dim=spec.dim, flip=flip)
