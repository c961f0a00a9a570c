"""The public face verbs: plain data in, plain data out.

    image = load_image("alice.jpg")
    faces = detect_faces(image)                  # [Face(box, score, landmarks)]
    faces = encode_faces(image, faces)           # the same faces, with .embedding
    face_distance(known_embeddings, faces[0].embedding)
    compare_faces(known_embeddings, faces[0].embedding)   # built on face_distance

Each verb takes one image, or a list of images for a batch (then it returns one
list per image). Models load on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import NoFaceError
from ..images import ImageInput, as_batch, load_image
from .models import DEFAULT_ENCODER
from .pipeline import describe
from .recognizer import Recognizer, detect
from .settings import MIN_FACE_SIZE, DetectorSettings
from .thresholds import default_threshold
from .types import Face, embedding_of


def detect_faces(images: ImageInput | Sequence[ImageInput], *, min_face_size: float = MIN_FACE_SIZE,
                 device: str | torch.device | None = None) -> list[Face] | list[list[Face]]:
    """Faces (box, score, 5 landmarks), best score first; for a list of images, one list per image.

    Faces smaller than `min_face_size` pixels are not looked for (the detector
    itself works down to 20 px, but recognition needs more).
    """
    batch, is_batch = as_batch(images)
    found = detect([load_image(im) for im in batch], settings=DetectorSettings(min_face_size=min_face_size),
                   device=device)
    return found if is_batch else found[0]


def align_faces(image: ImageInput, faces: Sequence[Face], *, size: int | None = None,
                device: str | torch.device | None = None, encoder: str = DEFAULT_ENCODER) -> np.ndarray:
    """Aligned chips (N, S, S, 3) uint8 RGB, cut as `encoder` sees them (S: its chip size, unless `size`)."""
    chips = Recognizer(encoder, device=device).chips(load_image(image), faces, size=size)
    return chips.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def encode_faces(images: ImageInput | Sequence[ImageInput], faces: Sequence | None = None, *,
                 flip: bool = True, device: str | torch.device | None = None,
                 encoder: str = DEFAULT_ENCODER) -> list[Face] | list[list[Face]]:
    """The faces of the image(s) with their embeddings (128-D for the default encoder).

    `faces`: the faces to encode (from `detect_faces`); detected when omitted.
    For a batch, `faces` is one list per image.
    """
    batch, is_batch = as_batch(images)
    recognizer = Recognizer(encoder, device=device, flip=flip)
    loaded = [load_image(im) for im in batch]
    per_image: Sequence[Sequence[Face]]
    if faces is None:
        per_image = recognizer.detect(loaded)
    else:
        per_image = faces if is_batch else [faces]
    encoded = recognizer.embed(loaded, per_image)
    return encoded if is_batch else encoded[0]


@dataclass(frozen=True)
class Comparison:
    """Are two photos of the same person? Their largest faces' distance against the encoder's 1:1 threshold."""

    same: bool
    distance: float
    threshold: float
    face_a: Face
    face_b: Face
    encoder: str

    def to_dict(self) -> dict:
        return {"same": self.same, "distance": round(self.distance, 4), "threshold": self.threshold,
                "encoder": self.encoder, "box_a": [round(float(v), 1) for v in self.face_a.box],
                "box_b": [round(float(v), 1) for v in self.face_b.box]}


def compare_photos(photo_a: ImageInput, photo_b: ImageInput, *, threshold: float | None = None,
                   encoder: str = DEFAULT_ENCODER, device: str | torch.device | None = None) -> Comparison:
    """Is the (largest) face of `photo_a` the same person as that of `photo_b`? No gallery needed.

    `NoFaceError` names the photo without a face. The threshold is the encoder's 1:1
    threshold (chosen on LFW View 1) unless given.
    """
    recognizer = Recognizer(encoder, device=device)
    images = [load_image(photo_a), load_image(photo_b)]
    found = recognizer.detect(images)
    for photo, faces in zip((photo_a, photo_b), found):
        if not faces:
            raise NoFaceError(f"{describe(photo)}: no face found")
    largest = [[max(faces, key=lambda f: f.width * f.height)] for faces in found]
    (a,), (b,) = recognizer.embed(images, largest)
    distance = float(np.linalg.norm(embedding_of(a) - embedding_of(b)))
    if threshold is None:
        threshold = default_threshold(recognizer.spec.ref, flip=recognizer.flip)
    return Comparison(distance <= threshold, distance, threshold, a, b, recognizer.spec.ref)


def face_distance(known: np.ndarray | Sequence[np.ndarray], candidate: np.ndarray) -> np.ndarray:
    """Euclidean distance from `candidate` (D,) to each row of `known` (N, D)."""
    known = np.asarray(known, dtype=np.float32)
    candidate = np.asarray(candidate, dtype=np.float32)
    if known.size == 0:
        return np.zeros((0,), dtype=np.float32)
    known = known.reshape(-1, candidate.shape[-1])
    return np.linalg.norm(known - candidate[None, :], axis=1)


def compare_faces(known: np.ndarray | Sequence[np.ndarray], candidate: np.ndarray, *,
                  threshold: float | None = None) -> np.ndarray:
    """True where `known[i]` is the same person as `candidate`: distance <= threshold."""
    if threshold is None:
        threshold = default_threshold()
    return face_distance(known, candidate) <= threshold
