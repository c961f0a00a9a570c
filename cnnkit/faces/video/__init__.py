"""Faces on video: frame sources, tracking, identification once per track, liveness, annotated output."""

from .sources import Frame, FrameSource, VideoSourceError, open_source
from .tracker import FaceTracker, Track, TrackerSettings
from .watch import Watcher, WatchSettings, WatchStats, watch

__all__ = [
           "FaceTracker",
           "Frame",
           "FrameSource",
           "Track",
           "TrackerSettings",
           "VideoSourceError",
           "WatchSettings",
           "WatchStats",
           "Watcher",
           "open_source",
           "watch",
]
