"""Reproducible test clips made from still photos (what the tests, benchmarks and docs use).

There is no real video of faces among the project's data, so clips are built
from LFW photos, and each builder says what it does to them:

- `still_clip`: the same photo repeated (a photo held perfectly still).
- `moving_clip`: the photo moved, scaled and slightly rotated across frames on a
  640x480 canvas (a photo held up by hand).
- `tilting_clip`: the photo squashed vertically and back (a photo tilted away from
  the camera and back: what fools a plain eye-aspect-ratio blink test).
- `blink_clip`: the photo with the eyes painted shut and opened again (frames
  *edited* so the eyes close; not real footage of a blink).
- `people_clip`: several people one after another, and two side by side (for tracking).

Every clip is a list of RGB uint8 frames; `write_clip` encodes them with PyAV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import SettingsError
from ...runtime.extras import require

CANVAS = (640, 480)


def _canvas(background: int = 40) -> Image.Image:
    return Image.new("RGB", CANVAS, (background, background, background + 10))


def place(photo: np.ndarray, *, cx: float, cy: float, scale: float = 1.0, angle: float = 0.0,
          squash: float = 1.0, canvas: Image.Image | None = None) -> np.ndarray:
    """The photo pasted on a 640x480 canvas, centred at (cx, cy), scaled, rotated (degrees), squashed vertically."""
    img = Image.fromarray(photo)
    w, h = img.size
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale * squash))), Image.Resampling.BILINEAR)
    if angle:
        img = img.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(40, 40, 50))
    out = canvas.copy() if canvas is not None else _canvas()
    out.paste(img, (round(cx - img.size[0] / 2), round(cy - img.size[1] / 2)))
    return np.asarray(out)


def still_clip(photo: np.ndarray, *, frames: int = 75, scale: float = 1.6) -> list[np.ndarray]:
    frame = place(photo, cx=CANVAS[0] / 2, cy=CANVAS[1] / 2, scale=scale)
    return [frame.copy() for _ in range(frames)]


def moving_clip(photo: np.ndarray, *, frames: int = 75, seed: int = 0) -> list[np.ndarray]:
    """A hand-held photo: drifting position, scale between 1.2x and 2x, small rotations, a little jitter."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        cx = 320 + 120 * math.sin(2 * math.pi * t) + rng.normal(0, 2)
        cy = 240 + 40 * math.sin(4 * math.pi * t) + rng.normal(0, 2)
        scale = 1.2 + 0.8 * (0.5 - 0.5 * math.cos(2 * math.pi * t))
        angle = 6 * math.sin(3 * math.pi * t) + rng.normal(0, 0.5)
        out.append(place(photo, cx=cx, cy=cy, scale=scale, angle=angle))
    return out


def tilting_clip(photo: np.ndarray, *, frames: int = 75, tilt_degrees: float = 55.0) -> list[np.ndarray]:
    """The photo tilted back about a horizontal axis and back again (a vertical squash by cos(tilt))."""
    out = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        angle = math.radians(tilt_degrees) * (0.5 - 0.5 * math.cos(2 * math.pi * t))
        out.append(place(photo, cx=320, cy=240, scale=1.6, squash=math.cos(angle)))
    return out


def close_eyes(photo: np.ndarray, eye_points: np.ndarray, closed: float) -> np.ndarray:
    """The photo with each eye's upper lid lowered by `closed` (0 open .. 1 shut).

    `eye_points`: (2, 6, 2) the six contour points of each eye (p1..p6 of the eye
    aspect ratio). The part of the eye the lid covers is filled, column by column,
    with a vertical blend between the skin just above the eye and the skin just
    below it (so no eyebrow or iris is dragged in), its edge gets a dark line (the
    lashes), and the edit is blended in with a soft oval mask. An edit of a
    photograph, not a photograph of closed eyes.
    """
    if not 0.0 <= closed <= 1.0:
        raise SettingsError(f"closed must be in [0, 1], got {closed}")
    if closed == 0:
        return photo.copy()
    out = photo.astype(np.float32).copy()
    height, width_img = photo.shape[:2]
    for eye in np.asarray(eye_points, dtype=np.float64):
        x0, x1 = float(eye[:, 0].min()), float(eye[:, 0].max())
        w = x1 - x0
        top, bottom = float(eye[:, 1].min()), float(eye[:, 1].max())
        margin = max(2.0, 0.12 * w)
        left, right = int(np.floor(x0 - 0.15 * w)), int(np.ceil(x1 + 0.15 * w))
        y_up, y_down = int(np.floor(top - margin)), int(np.ceil(bottom + margin))
        if left < 0 or right >= width_img or y_up < 0 or y_down >= height or right - left < 4:
            continue
        edge = top - 0.3 * margin + closed * (bottom - top + 0.6 * margin)  # the lid's lower edge
        rows = np.arange(y_up, y_down + 1)
        t = ((rows - y_up) / max(1, y_down - y_up))[:, None, None]
        upper = photo[y_up, left:right + 1].astype(np.float32)[None]
        lower = photo[y_down, left:right + 1].astype(np.float32)[None]
        lid = (1 - t) * upper + t * lower
        # The soft mask: inside an oval around the eye, above the lid's edge.
        yy, xx = np.mgrid[y_up:y_down + 1, left:right + 1].astype(np.float32)
        cx, cy = (x0 + x1) / 2, (top + bottom) / 2
        oval = ((xx - cx) / (0.5 * w + 0.15 * w)) ** 2 + ((yy - cy) / ((y_down - y_up) / 2)) ** 2
        inside = np.clip((1.0 - oval) * 4, 0, 1) * np.clip((edge - yy) + 0.5, 0, 1)
        region = out[y_up:y_down + 1, left:right + 1]
        region[:] = region * (1 - inside[..., None]) + lid * inside[..., None]
        # Lashes: a dark curve along the edge, thickest in the middle.
        lash = np.clip(1 - np.abs(yy - (edge + 0.08 * w * (1 - ((xx - cx) / (0.5 * w)) ** 2))) / max(1.0, w / 16), 0, 1)
        lash *= (np.abs(xx - cx) <= 0.5 * w) * min(1.0, closed * 1.5)
        region[:] = region * (1 - 0.6 * lash[..., None])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def blink_schedule(frames: int, *, blinks: Sequence[int] = (30,), length: int = 7) -> list[float]:
    """How closed the eyes are per frame: 0, with each blink a ramp 0 -> 1 -> 0 over `length` frames from its start."""
    closed = [0.0] * frames
    half = length // 2
    for start in blinks:
        for k in range(length):
            if 0 <= start + k < frames:
                closed[start + k] = max(closed[start + k], 1.0 - abs(k - half) / max(1, half))
    return closed


def blink_clip(photo: np.ndarray, eye_points: np.ndarray, *, frames: int = 75, blinks: Sequence[int] = (30,),
               length: int = 7, moving: bool = False, seed: int = 0) -> list[np.ndarray]:
    """The photo (optionally moving as in moving_clip) with its eyes closing and opening on a schedule."""
    schedule = blink_schedule(frames, blinks=blinks, length=length)
    cache: dict[float, np.ndarray] = {}
    edited = [cache.setdefault(c, close_eyes(photo, eye_points, c)) for c in schedule]
    if not moving:
        return [place(e, cx=320, cy=240, scale=1.6) for e in edited]
    rng = np.random.default_rng(seed)
    out = []
    for i, e in enumerate(edited):
        t = i / max(1, frames - 1)
        out.append(place(e, cx=320 + 60 * math.sin(2 * math.pi * t) + rng.normal(0, 1.5),
                         cy=240 + 20 * math.sin(4 * math.pi * t), scale=1.4 + 0.4 * t))
    return out


def people_clip(photos: Sequence[np.ndarray], *, frames_each: int = 40, together: int = 40,
                seed: int = 0) -> tuple[list[np.ndarray], list[list[int]]]:
    """Each person walks across the frame in turn; then the first two stand side by side.

    Returns the frames and, per frame, which people (indices into `photos`) are in it.
    """
    rng = np.random.default_rng(seed)
    frames, truth = [], []
    for k, photo in enumerate(photos):
        for i in range(frames_each):
            t = i / max(1, frames_each - 1)
            frames.append(place(photo, cx=200 + 240 * t + rng.normal(0, 1.5), cy=240 + rng.normal(0, 1.5),
                                scale=1.3 + 0.3 * t))
            truth.append([k])
        # a short empty gap between people, as when a door closes
        for _ in range(5):
            frames.append(np.asarray(_canvas()))
            truth.append([])
    if len(photos) >= 2 and together:
        for i in range(together):
            t = i / max(1, together - 1)
            canvas = Image.fromarray(place(photos[0], cx=170 + 20 * t, cy=240, scale=1.1))
            frames.append(place(photos[1], cx=470 - 20 * t, cy=240, scale=1.1, canvas=canvas))
            truth.append([0, 1])
    return frames, truth


def write_clip(frames: Sequence[np.ndarray], path: str | Path, *, fps: int = 25, crf: int = 20) -> Path:
    """Encode RGB frames to an H.264 (yuv420p) file with PyAV."""
    av = require("av", extra="video", purpose="reading and writing video")

    path = Path(path)
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: stream.height, : stream.width]),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
