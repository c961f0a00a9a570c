"""Plain results of the face verbs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import SettingsError


@dataclass(frozen=True, eq=False)
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

    # The arrays make the generated __eq__ ambiguous and __hash__ impossible: compare their values,
    # hash the box and score (equal faces have equal ones).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Face):
            return NotImplemented
        same_embedding = (self.embedding is None and other.embedding is None) or (
            self.embedding is not None and other.embedding is not None
            and np.array_equal(self.embedding, other.embedding))
        return (tuple(self.box) == tuple(other.box) and self.score == other.score
                and np.array_equal(self.landmarks, other.landmarks) and same_embedding)

    def __hash__(self) -> int:
        return hash((tuple(self.box), self.score))

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    @property
    def css_box(self) -> tuple[int, int, int, int]:
        """The box as face_recognition writes it: (top, right, bottom, left), whole pixels."""
        x1, y1, x2, y2 = self.box
        return round(y1), round(x2), round(y2), round(x1)

    @property
    def xywh(self) -> dict[str, int]:
        """The box as DeepFace writes it: {"x", "y", "w", "h"} (corner, width, height), whole pixels."""
        x1, y1, x2, y2 = (round(v) for v in self.box)
        return {"x": x1, "y": y1, "w": x2 - x1, "h": y2 - y1}

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


def embedding_of(face: Face) -> np.ndarray:
    """The embedding of an encoded face; SettingsError for a face that was never encoded."""
    if face.embedding is None:
        raise SettingsError("the face has no embedding; encode it first")
    return face.embedding
