"""Detection settings, in a module light enough for the command line to import."""

from __future__ import annotations

from dataclasses import dataclass

#: Faces smaller than this (pixels) are not looked for. A 40-pixel face already has
#: to be enlarged almost 4x into the 150-pixel chip, and smaller ones carry too little
#: detail to recognise; skipping them also makes detection about 1.5x faster.
#: (face_recognition's default HOG detector, with one upsampling, stops near 40 px too.)
MIN_FACE_SIZE = 40.0


@dataclass(frozen=True)
class DetectorSettings:
    min_face_size: float = MIN_FACE_SIZE
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    scale_factor: float = 0.709
