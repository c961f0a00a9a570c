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


#: Faces smaller than this share of a photo's side (the geometric mean of width and height) are
#: not looked for either: detection runs on a copy scaled so that such a face is MIN_FACE_SIZE
#: pixels, at most (MIN_FACE_SIZE / MIN_FACE_FRACTION)^2 = 2000 x 2000 pixels however large the
#: photo. So a 40-megapixel upload costs what a 4-megapixel one does, and the faces still
#: looked for in it are at least 126 px (12 MP: 69 px; up to 4 MP: 40 px, as before).
#: 0 searches the full resolution (the cost then grows with the pixels).
MIN_FACE_FRACTION = 0.02


@dataclass(frozen=True)
class DetectorSettings:
    min_face_size: float = MIN_FACE_SIZE
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    scale_factor: float = 0.709
    min_face_fraction: float = MIN_FACE_FRACTION

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_face_fraction < 1.0:
            raise ValueError(f"min_face_fraction must be in [0, 1), got {self.min_face_fraction}")
