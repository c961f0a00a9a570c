"""Detection settings and the default encoder, in a module light enough for the command line to import."""

from __future__ import annotations

from dataclasses import dataclass

#: Faces smaller than this (pixels) are not looked for. A 40-pixel face already has
#: to be enlarged almost 4x into the 150-pixel chip, and smaller ones carry too little
#: detail to recognise; skipping them also makes detection about 1.5x faster.
#: (face_recognition's default HOG detector, with one upsampling, stops near 40 px too.)
MIN_FACE_SIZE = 40.0

#: The encoder of new galleries and of every verb that is not told another: SFace (Apache-2.0),
#: chosen on LFW View 1 among the encoders anyone may use (bench/results/dev_encoders.json,
#: bench/results/dev_openset.json). Galleries keep the encoder they were made with.
DEFAULT_ENCODER = "sface-2021dec"


@dataclass(frozen=True)
class DetectorSettings:
    min_face_size: float = MIN_FACE_SIZE
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    scale_factor: float = 0.709
