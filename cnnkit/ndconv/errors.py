"""Errors a user of ndconv can cause (bad records, volumes, videos, checkpoints).

All are `cnnkit.errors.CnnkitError`, so the command line prints one line and exits 2.
"""

from __future__ import annotations

from ..errors import CnnkitError


class SignalError(CnnkitError, ValueError):
    """An ECG record is missing, unreadable, too short, lacks the lead asked for, or has an unusable rate."""


class VolumeError(CnnkitError, ValueError):
    """A volume (or a folder of them) is missing, unreadable, empty, or of the wrong rank or dtype."""


class VideoError(CnnkitError, ValueError):
    """A video file is missing, corrupt, undecodable or too short for one clip."""


class CheckpointError(CnnkitError, ValueError):
    """A model checkpoint is missing, not a cnnkit ndconv checkpoint, or for another task."""
