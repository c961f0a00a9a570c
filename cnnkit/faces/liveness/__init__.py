"""Liveness: is a live person in front of the camera, not a photo? An active check over video frames.

`check_liveness(frames)` runs it on a clip; `LivenessCheck` is the frame-by-frame
form the video watcher uses. See docs/video.md for what it catches and what not.
"""

from .check import CHECK_CHOICES, LivenessCheck, LivenessResult, LivenessSettings
from .run import check_liveness

__all__ = ["CHECK_CHOICES", "LivenessCheck", "LivenessResult", "LivenessSettings", "check_liveness"]
