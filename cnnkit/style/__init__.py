"""Neural style transfer (Gatys et al.): VGG19 features, the course's costs, and `stylize`.

Nothing heavy loads at import: the names below load their modules (and PyTorch)
on first use, so `cnnkit.style.settings` stays light enough for the command line;
VGG19's weights load on the first transfer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the submodule that defines it
_EXPORTS = {
    "LAYER_NAMES": "layers",
    "OutputTooLargeError": "memory",
    "Step": "transfer",
    "StyleResult": "transfer",
    "StyleSettings": "settings",
    "VGG19Features": "vgg",
    "content_cost": "costs",
    "gram_matrix": "costs",
    "layer_style_cost": "costs",
    "load_vgg19": "vgg",
    "style_cost": "costs",
    "style_transfer": "transfer",
    "stylize": "transfer",
    "total_cost": "costs",
    "total_variation_cost": "costs",
}

__all__ = ["LAYER_NAMES", "OutputTooLargeError", "Step", "StyleResult", "StyleSettings", "VGG19Features",
           "content_cost", "gram_matrix", "layer_style_cost", "load_vgg19", "style_cost", "style_transfer",
           "stylize", "total_cost", "total_variation_cost"]

if TYPE_CHECKING:
    from .costs import (
        content_cost,
        gram_matrix,
        layer_style_cost,
        style_cost,
        total_cost,
        total_variation_cost,
    )
    from .layers import LAYER_NAMES
    from .memory import OutputTooLargeError
    from .settings import StyleSettings
    from .transfer import Step, StyleResult, style_transfer, stylize
    from .vgg import VGG19Features, load_vgg19


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
