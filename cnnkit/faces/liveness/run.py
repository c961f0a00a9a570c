"""`check_liveness`: the liveness check on a clip, for the person whose face is largest."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...runtime.device import resolve_device
from ..recognizer import detect
from ..settings import MIN_FACE_SIZE, DetectorSettings
from .check import LivenessCheck, LivenessResult, LivenessSettings


@torch.inference_mode()
def check_liveness(frames, *, settings: LivenessSettings = LivenessSettings(), fps: float = 25.0,
                   batch_size: int = 8, min_face_size: float = MIN_FACE_SIZE,
                   device: str | torch.device | None = None) -> LivenessResult:
    """Is the largest face in `frames` live? Stops as soon as it is decided.

    `frames`: a video path, image folder or camera (see video.open_source), a
    FrameSource, or a sequence of RGB uint8 arrays played at `fps`. Frames
    without a face are skipped (they still count against the time limit).
    """
    from ..video.sources import ArraySource, FrameSource, open_source

    if isinstance(frames, FrameSource):
        source, owned = frames, False
    elif isinstance(frames, (list, tuple, np.ndarray)):
        source, owned = ArraySource(frames, fps=fps), True
    else:
        source, owned = open_source(frames), True
    dev = resolve_device(device)
    check = LivenessCheck(settings)
    detector = DetectorSettings(min_face_size=min_face_size)
    try:
        batch = []
        for frame in source:
            batch.append(frame)
            if len(batch) == batch_size:
                if _feed(check, batch, detector, settings, dev) is not None:
                    return check.finish()
                batch = []
        if batch:
            _feed(check, batch, detector, settings, dev)
        return check.finish()
    finally:
        if owned:
            source.close()


def _feed(check: LivenessCheck, batch: Sequence, detector: DetectorSettings, settings: LivenessSettings,
          device: torch.device) -> LivenessResult | None:
    for frame, faces in zip(batch, detect([f.image for f in batch], settings=detector, device=device)):
        if not faces:
            if check.tick(frame.time) is not None:
                return check.result
            continue
        face = max(faces, key=lambda f: f.width * f.height)
        eyes = mouth = None
        if settings.needs_mesh:
            from .iris import eyes_and_mouth

            eye_points, mouth_points = eyes_and_mouth(frame.image, [face], device=device)
            eyes, mouth = eye_points[0], mouth_points[0]
        if check.add(frame.time, face.landmarks, eyes, mouth) is not None:
            return check.result
    return None
