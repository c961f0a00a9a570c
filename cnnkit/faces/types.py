"""Plain results of the face verbs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face.

    box: (x1, y1, x2, y2) in pixels; score: detector confidence in [0, 1];
    landmarks: (5, 2) x, y of left eye, right eye, nose, left and right mouth
    corner (as seen in the image); embedding: (128,) float32 once encoded.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(repr=False)
    embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def to_dict(self) -> dict:
        """JSON-ready form (lists and floats)."""
        out = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }
        if self.embedding is not None:
            out["embedding"] = [float(v) for v in self.embedding]
        return out
