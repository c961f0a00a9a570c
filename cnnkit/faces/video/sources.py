"""Where frames come from: a video file, an image sequence or a camera, as RGB uint8 arrays.

    with open_source("door.mp4") as source:
        for frame in source:              # Frame(index, time, image)
            ...

A video file and a camera are decoded with PyAV (FFmpeg). An image sequence is
a folder of images (sorted by name) or a glob pattern such as "shots/*.png",
timed at `fps`. A camera is named "/dev/videoN" (Linux, v4l2), "camera:N" or
"webcam:N" (v4l2 on Linux, avfoundation on macOS, dshow on Windows).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import SettingsError, VideoSourceError
from ...images import IMAGE_SUFFIXES, load_image
from ...runtime.extras import require

log = logging.getLogger(__name__)

_CAMERA = re.compile(r"^(?:camera|webcam|cam):(\d+)$")



@dataclass(frozen=True)
class Frame:
    """One decoded frame: its number in the source (0-based), its time in seconds, RGB uint8 pixels."""

    index: int
    time: float
    image: np.ndarray = field(repr=False)


class FrameSource:
    """An iterable of Frames; `live` sources (cameras) run on the wall clock and cannot be paused."""

    name: str = ""
    fps: float = 25.0
    live: bool = False
    size: tuple[int, int] | None = None  # (width, height) when known before decoding

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AVSource(FrameSource):
    """A video file, stream URL or camera device decoded by PyAV."""

    def __init__(self, url: str, *, format: str | None = None, options: dict | None = None,
                 live: bool = False) -> None:
        av = require("av", extra="video", purpose="reading and writing video")

        self.name = url
        self.live = live
        try:
            self._container = av.open(url, format=format, options=options or {})
        except (av.error.FFmpegError, OSError) as exc:
            what = "camera" if live else "video"
            raise VideoSourceError(f"{url}: cannot open this {what} ({exc}); check the path or device "
                                   "and that FFmpeg can read it") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoSourceError(f"{url}: has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 25.0
        ctx = self._stream.codec_context
        self.size = (ctx.width, ctx.height) if ctx.width else None

    def __iter__(self) -> Iterator[Frame]:
        av = require("av", extra="video", purpose="reading and writing video")

        index = 0
        start: float | None = None
        try:
            for frame in self._container.decode(self._stream):
                if frame.pts is not None and frame.time_base is not None:
                    t = float(frame.pts * frame.time_base)
                    start = t if start is None else start
                    t -= start
                else:
                    t = index / self.fps
                yield Frame(index, t, frame.to_ndarray(format="rgb24"))
                index += 1
        except av.error.FFmpegError as exc:
            raise VideoSourceError(f"{self.name}: decoding stopped at frame {index} ({exc})") from None

    def close(self) -> None:
        self._container.close()


class ImageSequence(FrameSource):
    """Still images in name order, played at `fps`."""

    def __init__(self, paths: list[Path], *, fps: float = 25.0, name: str = "") -> None:
        if not paths:
            raise VideoSourceError(f"{name or 'image sequence'}: no images found "
                                   f"(looked for {', '.join(IMAGE_SUFFIXES)})")
        if fps <= 0:
            raise SettingsError(f"fps must be positive, got {fps}")
        self.paths = paths
        self.fps = fps
        self.name = name or str(paths[0].parent)

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.paths):
            yield Frame(i, i / self.fps, load_image(path))


class ArraySource(FrameSource):
    """Frames already in memory (a list or an (N, H, W, 3) array), played at `fps`."""

    def __init__(self, frames, *, fps: float = 25.0, name: str = "<frames>") -> None:
        if fps <= 0:
            raise SettingsError(f"fps must be positive, got {fps}")
        self.frames = frames
        self.fps = fps
        self.name = name

    def __iter__(self) -> Iterator[Frame]:
        for i, image in enumerate(self.frames):
            yield Frame(i, i / self.fps, load_image(np.asarray(image)))


def open_source(source: str | os.PathLike, *, fps: float | None = None) -> FrameSource:
    """A FrameSource for a video file, an image folder or glob pattern, or a camera device.

    `fps` sets the frame rate of an image sequence (default 25) and asks a camera for that rate.
    """
    text = str(source)
    camera = _CAMERA.match(text)
    if camera or text.startswith("/dev/video"):
        return _open_camera(text if not camera else int(camera.group(1)), fps)
    if any(ch in text for ch in "*?["):
        paths = sorted(Path(p) for p in glob.glob(text) if p.lower().endswith(IMAGE_SUFFIXES))
        return ImageSequence(paths, fps=fps or 25.0, name=text)
    path = Path(text)
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return ImageSequence(paths, fps=fps or 25.0, name=text)
    if not path.exists() and "://" not in text:
        raise VideoSourceError(f"{text}: no such file, folder or camera; give a video file, a folder of "
                               "images, a pattern like 'frames/*.png', or a camera as /dev/video0 or camera:0")
    return AVSource(text)


def _open_camera(device: str | int, fps: float | None) -> AVSource:
    options = {"framerate": str(int(fps))} if fps else {}
    if sys.platform.startswith("linux"):
        url = device if isinstance(device, str) else f"/dev/video{device}"
        return AVSource(url, format="v4l2", options=options, live=True)
    if sys.platform == "darwin":
        return AVSource(str(device if isinstance(device, int) else 0), format="avfoundation",
                        options={"framerate": str(int(fps or 30)), **options}, live=True)
    if sys.platform.startswith("win"):
        return AVSource(f"video={device}", format="dshow", options=options, live=True)
    raise VideoSourceError(f"cameras are not supported on {sys.platform}; record a file and watch that")
