"""The settings of a style transfer: typed, frozen, checked, light enough for the command line to import."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import SettingsError
from .layers import LAYER_CHANNELS, LAYER_NAMES

INIT_CHOICES = ("content", "noise", "mix")
OPTIMIZER_CHOICES = ("lbfgs", "adam")
#: Allowed values of `preserve_color` (see cnnkit.style.color).
PRESERVE_COLOR_CHOICES = ("luminance", "match")

#: Gatys et al.'s layers: the content at conv4_2, the style at the first conv of every block.
DEFAULT_CONTENT_LAYER = "conv4_2"
DEFAULT_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def default_style_layer_weights() -> dict[str, float]:
    """lambda_l of the default style layers.

    Departure from the course (lambda_l = 0.2 each): lambda_l is proportional to
    1 / n_C^2 and sums to 1, i.e. 0.74, 0.19, 0.047, 0.012, 0.012 for conv1_1 ...
    conv5_1. With equal weights the deep layers, whose activations and hence
    J_l are orders of magnitude larger, drown the fine brush-stroke texture of
    conv1_1 and conv2_1; 1 / n_C^2 is the weighting pastiche and other
    implementations use (Gatys et al. leave lambda_l free).
    """
    raw = {name: 1.0 / LAYER_CHANNELS[name] ** 2 for name in DEFAULT_STYLE_LAYERS}
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()}


@dataclass(frozen=True)
class StyleSettings:
    """Everything `stylize` can be told. Build with keywords; `check()` raises ValueError naming the choices."""

    #: Long edge of the output in pixels (the aspect ratio of the content is kept).
    size: int = 512
    #: Optimizer steps of the last (full-size) pass; one step = one forward and backward pass.
    steps: int = 300
    #: alpha, the weight of the content cost.
    content_weight: float = 1.0
    #: beta, the weight of the style cost. 0.33 with the default lambda_l is pastiche's balance
    #: (0.04 J_content + sum_l 40/n_C^2 J_l); beta = 1 lets the painting wipe out the photo.
    style_weight: float = 0.33
    #: lambda_l per style layer (layer name -> weight); None: `default_style_layer_weights()`.
    style_layer_weights: Mapping[str, float] | None = None
    content_layer: str = DEFAULT_CONTENT_LAYER
    #: Weight of the total-variation cost (0: off, as in the paper).
    tv_weight: float = 0.0
    #: Start from the content image, white noise, or the course's mix of both.
    init: str = "content"
    optimizer: str = "lbfgs"
    #: Step size; None: 1.0 for L-BFGS (its own scaling does the rest), 0.02 for Adam (pixels in 0-1).
    learning_rate: float | None = None
    #: Weights of the style images (normalised to sum 1); None: equal.
    style_blend: Sequence[float] | None = None
    #: None, "luminance" or "match" (see cnnkit.style.color).
    preserve_color: str | None = None
    #: Size of the style images relative to the output (1: the same number of pixels).
    style_scale: float = 1.0
    #: Number of coarse-to-fine passes, each at twice the size of the one before (1: one pass).
    multiscale: int = 1
    #: Steps of each coarser pass; None: the same as `steps`.
    coarse_steps: int | None = None
    device: str = "auto"
    #: Seeds the noise of init "noise" and "mix" (the rest is deterministic on CPU).
    seed: int | None = 0
    #: Largest memory the transfer may use, bytes; None: what the machine has available now.
    max_memory: int | None = None
    #: L-BFGS history (pairs of image-sized vectors kept).
    history_size: int = 50

    def check(self) -> StyleSettings:
        """Return self after checking every value; ValueError with the allowed values otherwise."""
        _positive_int("size", self.size, minimum=16)
        _positive_int("steps", self.steps, minimum=0)
        _positive_int("multiscale", self.multiscale, minimum=1)
        _positive_int("history_size", self.history_size, minimum=1)
        if self.coarse_steps is not None:
            _positive_int("coarse_steps", self.coarse_steps, minimum=0)
        for name in ("content_weight", "style_weight", "tv_weight"):
            _finite(name, getattr(self, name), minimum=0.0)
        _finite("style_scale", self.style_scale, minimum=1e-3)
        if self.learning_rate is not None:
            _finite("learning_rate", self.learning_rate, minimum=1e-12)
        if self.content_layer not in LAYER_CHANNELS:
            raise SettingsError(f"unknown content layer {self.content_layer!r}; choose from {', '.join(LAYER_NAMES)}")
        weights = self.layer_weights
        if not weights:
            raise SettingsError("style_layer_weights is empty; name at least one layer, e.g. conv1_1=1")
        for name, value in weights.items():
            if name not in LAYER_CHANNELS:
                raise SettingsError(f"unknown style layer {name!r}; choose from {', '.join(LAYER_NAMES)}")
            _finite(f"style layer weight of {name}", value, minimum=0.0)
        if self.init not in INIT_CHOICES:
            raise SettingsError(f"unknown init {self.init!r}; choose from {', '.join(INIT_CHOICES)}")
        if self.optimizer not in OPTIMIZER_CHOICES:
            raise SettingsError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZER_CHOICES)}")
        if self.preserve_color is not None and self.preserve_color not in PRESERVE_COLOR_CHOICES:
            raise SettingsError(f"unknown preserve_color {self.preserve_color!r}; "
                             f"choose from {', '.join(PRESERVE_COLOR_CHOICES)} or None")
        if self.style_blend is not None:
            if not self.style_blend or any(not math.isfinite(w) or w < 0 for w in self.style_blend) \
                    or sum(self.style_blend) <= 0:
                raise SettingsError("style_blend needs one weight >= 0 per style image, not all 0")
        if self.max_memory is not None:
            _positive_int("max_memory", self.max_memory, minimum=1)
        return self

    @property
    def layer_weights(self) -> dict[str, float]:
        """lambda_l by layer, in network order."""
        weights = default_style_layer_weights() if self.style_layer_weights is None else dict(self.style_layer_weights)
        return {name: float(weights[name]) for name in sorted(weights, key=_layer_order)}

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 1.0 if self.optimizer == "lbfgs" else 0.02

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able values (the style layer weights resolved)."""
        out = asdict(self)
        out["style_layer_weights"] = self.layer_weights
        out["learning_rate"] = self.lr
        if out["style_blend"] is not None:
            out["style_blend"] = list(out["style_blend"])
        return out


SETTING_NAMES = tuple(f.name for f in fields(StyleSettings))


def make_settings(**settings: Any) -> StyleSettings:
    """StyleSettings from keywords; an unknown keyword is a ValueError listing the known ones."""
    unknown = sorted(set(settings) - set(SETTING_NAMES))
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTING_NAMES)}")
    return StyleSettings(**settings).check()


def parse_layer_weights(text: str) -> dict[str, float]:
    """'conv1_1=0.2,conv2_1=0.2' -> {"conv1_1": 0.2, "conv2_1": 0.2}; ValueError on bad input."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.replace(" ", ",").split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise SettingsError(f"style layer weight {item!r} is not LAYER=WEIGHT (e.g. conv1_1=0.2)")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise SettingsError(f"style layer weight {item!r}: {value!r} is not a number") from None
    return out


def _layer_order(name: str) -> int:
    return LAYER_NAMES.index(name) if name in LAYER_NAMES else len(LAYER_NAMES)


def _positive_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingsError(f"{name} must be an integer >= {minimum}; got {value!r}")


def _finite(name: str, value: object, *, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{name} must be a finite number >= {minimum}; got {value!r}")

