"""Video files with PyAV: writing frames (for the generated task) and decoding clips for prediction.

Frames are grayscale uint8 (T, H, W). Decoding converts any pixel format to
gray, optionally resizes to the model's size, and cuts the frames into clips
of `clip_frames` (frames x height x width). A missing, corrupt, empty or
undecodable file raises `VideoError`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...errors import SettingsError, VideoError
from ...runtime.extras import require

log = logging.getLogger(__name__)

CODECS = ("libx264", "mpeg4", "ffv1")


def _av():
    return require("av", extra="ndconv", purpose="reading and writing video")


def write_video(path: str | Path, frames: np.ndarray, *, fps: int = 25, codec: str = "libx264", crf: int = 18) -> Path:
    """Encode gray uint8 frames (T, H, W) into a video file (H and W even for libx264 / mpeg4)."""
    av = _av()
    if codec not in CODECS:
        raise SettingsError(f"unknown codec {codec!r}; use one of {CODECS}")
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise SettingsError(f"frames must be uint8 (T, H, W), got {frames.dtype} {frames.shape}")
    _t, h, w = frames.shape
    if codec != "ffv1" and (h % 2 or w % 2):
        raise SettingsError(f"{codec} needs even frame sizes, got {h}x{w}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "gray" if codec == "ffv1" else "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "medium"}
        elif codec == "mpeg4":
            stream.bit_rate = 2_000_000
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")
            container.mux(stream.encode(vf))
        container.mux(stream.encode())
    return path


def read_frames(path: str | Path, *, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """All frames (or the first `max_frames`) as gray uint8 (T, H, W), and the frame rate."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"no such video file: {path}")
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="gray"))
                if max_frames and len(frames) >= max_frames:
                    break
    except VideoError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        if not frames:
            raise VideoError(f"cannot decode {path}: not a readable video ({exc})") from None
        log.warning("%s: decoding stopped after %d frames (%s)", path, len(frames), exc)
    if not frames:
        raise VideoError(f"{path} holds no decodable video frames")
    return np.stack(frames), fps


def to_clips(frames: np.ndarray, *, clip_frames: int, size: int | None = None, stride: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Cut (T, H, W) frames into clips (n, clip_frames, S, S); returns them and each clip's first frame."""
    t = len(frames)
    if t < clip_frames:
        raise VideoError(f"the video has {t} frames; one clip needs {clip_frames}")
    if size is not None and frames.shape[1:] != (size, size):
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(frames.astype(np.float32))[:, None]
        frames = F.interpolate(x, size=(size, size), mode="area")[:, 0].round().clamp(0, 255).byte().numpy()
    stride = stride or clip_frames
    starts = np.arange(0, t - clip_frames + 1, stride)
    return np.stack([frames[s: s + clip_frames] for s in starts]), starts


def read_clips(path: str | Path, *, clip_frames: int, size: int | None = None, stride: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """Decode a video file into clips: (clips uint8 (n, T, S, S), start frame of each, fps)."""
    frames, fps = read_frames(path)
    clips, starts = to_clips(frames, clip_frames=clip_frames, size=size, stride=stride)
    return clips, starts, fps
