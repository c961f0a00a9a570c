"""Errors a user of `cnnkit visualize` can cause; each message says what to do."""

from __future__ import annotations

from ..errors import CnnkitError
from .receptive import UntraceableModelError

__all__ = ["LayerNotFoundError", "NoImagesError", "ImageTooSmallError", "UntraceableModelError", "StateMismatchError"]


class LayerNotFoundError(CnnkitError, ValueError):
    """A layer name the model does not have; the message lists the valid ones."""


class NoImagesError(CnnkitError):
    """No image files where images were expected."""


class ImageTooSmallError(CnnkitError):
    """An image smaller than the receptive field it would have to fill."""


class StateMismatchError(CnnkitError):
    """A saved run to resume was made with other settings, model or images."""
