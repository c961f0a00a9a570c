"""An annotated copy of the video: each face's box, track id, name (or "unknown") and liveness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ...runtime.extras import require
from .sources import Frame, VideoSourceError
from .watch import TrackState

KNOWN, UNKNOWN, PENDING = (60, 200, 80), (230, 70, 60), (230, 200, 60)


def label(state: TrackState) -> tuple[str, tuple[int, int, int]]:
    text = f"#{state.track.id} {state.name or 'unknown'}"
    if state.distance is not None:
        text += f" {state.distance:.2f}"
    colour = KNOWN if state.name else UNKNOWN
    if state.liveness is not None:
        result = state.liveness.result
        if result is None:
            text, colour = text + " liveness?", PENDING
        else:
            text += " live" if result.live else " NOT LIVE"
            colour = colour if result.live else UNKNOWN
    return text, colour


def draw(image: np.ndarray, states: list[TrackState]) -> np.ndarray:
    img = Image.fromarray(image)
    pen = ImageDraw.Draw(img)
    for state in states:
        x1, y1, x2, y2 = state.track.box
        text, colour = label(state)
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=3)
        tw = pen.textlength(text)
        pen.rectangle([x1, y1 - 14, x1 + tw + 6, y1], fill=colour)
        pen.text((x1 + 3, y1 - 13), text, fill=(0, 0, 0))
    return np.asarray(img)


class AnnotatedWriter:
    """Writes processed frames, annotated, to an H.264 file at the source's frame rate (dropped frames are left out)."""

    def __init__(self, path: str | Path, *, fps: float = 25.0, crf: int = 23) -> None:
        av = require("av", extra="video", purpose="reading and writing video")

        self.path = Path(path)
        try:
            self._container = av.open(str(self.path), mode="w")
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoSourceError(f"{self.path}: cannot write video ({exc})") from None
        self._fps = max(1, round(fps))
        self._crf = crf
        self._stream: Any = None  # the PyAV video stream, added with the first frame (its size)

    def write(self, frame: Frame, states: list[TrackState]) -> None:
        av = require("av", extra="video", purpose="reading and writing video")

        image = draw(frame.image, states)
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=self._fps)
            self._stream.height, self._stream.width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self._crf), "preset": "veryfast"}
        h, w = self._stream.height, self._stream.width
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="rgb24")
        for packet in self._stream.encode(out):
            self._container.mux(packet)

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> AnnotatedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
