"""Exceptions a user can cause. Each message says what went wrong and what to do.

The command line turns any `CnnkitError` into one line on stderr and a non-zero
exit status; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CnnkitError(Exception):
    """Base class of the errors a user can cause and fix."""


class ImageError(CnnkitError, ValueError):
    """An image could not be read: missing, unreadable, truncated, too large or of an unsupported kind."""


class WeightsError(CnnkitError):
    """A pretrained weight is missing, corrupt or unknown."""


class NoFaceError(CnnkitError):
    """No face was found where one was required."""
