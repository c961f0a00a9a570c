"""cnnkit: special applications of convolutional networks as real tools.

The public verbs are importable from here; their modules (and PyTorch) load on
first use, so `import cnnkit` stays cheap and loads no weights.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_VERBS = {
    "load_image": "cnnkit.images",
    "detect_faces": "cnnkit.faces.api",
    "align_faces": "cnnkit.faces.api",
    "encode_faces": "cnnkit.faces.api",
    "face_distance": "cnnkit.faces.api",
    "compare_faces": "cnnkit.faces.api",
    "compare_photos": "cnnkit.faces.api",
    "Face": "cnnkit.faces.types",
    "Gallery": "cnnkit.faces.gallery",
    "stylize": "cnnkit.style.transfer",
    "CnnkitError": "cnnkit.errors",
    "ImageError": "cnnkit.errors",
    "NoFaceError": "cnnkit.errors",
    "WeightsError": "cnnkit.errors",
}

__all__ = ["__version__", *_VERBS]

if TYPE_CHECKING:
    from .errors import CnnkitError, ImageError, NoFaceError, WeightsError
    from .faces.api import align_faces, compare_faces, compare_photos, detect_faces, encode_faces, face_distance
    from .faces.gallery import Gallery
    from .faces.types import Face
    from .images import load_image
    from .style.transfer import stylize


def __getattr__(name: str) -> Any:
    if name in _VERBS:
        value = getattr(importlib.import_module(_VERBS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
