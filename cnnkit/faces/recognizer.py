"""The one way from a photo to face embeddings: detect -> chips cut for the encoder -> embed.

    recognizer = Recognizer("sface-2021dec", device="auto")
    faces = recognizer.process([image_a, image_b])   # per image: its faces, with embeddings
    faces = recognizer.embed([image], [faces])       # embeddings of faces found elsewhere

Every entry point that turns photos into embeddings goes through a
`Recognizer`: the files pipeline (pipeline.embed_images), the public verbs
(api.py), the gallery, the HTTP service's batching engine and the video
watcher. The chips are cut at the encoder's own size with its own landmark
template (from its `EncoderSpec`), so a gallery enrolled with any encoder gets
the same embedding for the same photo from every one of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SettingsError
from ..runtime.device import resolve_device
from .align import chip_transforms, image_to_tensor, warp_chips
from .models import (
    DEFAULT_ENCODER,
    EmbeddingModel,
    EncoderSpec,
    embedding_model,
    encoder_spec,
    load_detector,
    load_encoder,
)
from .settings import DetectorSettings
from .types import Face

#: Which faces of an image to keep: all of them, the one nearest the centre
#: (LFW's convention: the face of interest is centred), or the largest.
SELECT_CHOICES = ("all", "center", "largest")


def faces_from_detections(det) -> list[Face]:
    """MTCNN's detections as Faces, best score first.

    MTCNN works in continuous coordinates (pixel (i, j) covers [j, j+1) x [i, i+1));
    cnnkit, like numpy, OpenCV, dlib and matplotlib, puts pixel centres on integers,
    so everything moves by half a pixel.
    """
    order = np.argsort(-np.asarray(det.scores), kind="stable")
    return [Face(box=_centred_box(det.boxes[i]), score=float(det.scores[i]),
                 landmarks=np.asarray(det.landmarks[i], dtype=np.float32) - 0.5)
            for i in order]


def _centred_box(box) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) - 0.5 for v in box)
    return x1, y1, x2, y2


#: Images above this many pixels have their chips cut from a region around each face, not from a
#: float copy of the whole image (12 bytes a pixel: 480 MB for 40 MP). The chips are the same.
CROP_CHIPS_FROM = 4_000_000


def detection_copy(image: np.ndarray, settings: DetectorSettings) -> tuple[np.ndarray, float, float]:
    """(the image detection runs on, x scale, y scale back to the image): see MIN_FACE_FRACTION.

    The copy is scaled so that the smallest face wanted, max(min_face_size,
    min_face_fraction x sqrt(width x height)), is min_face_size pixels in it; an
    image already small enough is used as it is.
    """
    h, w = image.shape[:2]
    wanted = max(settings.min_face_size, settings.min_face_fraction * math.sqrt(h * w))
    scale = settings.min_face_size / wanted
    if scale >= 1.0:
        return image, 1.0, 1.0
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    # uint8 channels-last antialiased resize: no float copy of the large image is ever made.
    view = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    small = F.interpolate(view, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    return small[0].permute(1, 2, 0).contiguous().numpy(), w / nw, h / nh


def _scaled(det, sx: float, sy: float):
    """MTCNN detections on a copy, in the image's pixels (continuous coordinates scale exactly)."""
    if sx == 1.0 and sy == 1.0:
        return det
    boxes = np.asarray(det.boxes, np.float32) * np.array([sx, sy, sx, sy], np.float32)
    landmarks = np.asarray(det.landmarks, np.float32) * np.array([sx, sy], np.float32)
    return replace(det, boxes=boxes, landmarks=landmarks)


def detect(images: Sequence[np.ndarray], *, settings: DetectorSettings = DetectorSettings(),
           device: str | torch.device | None = None) -> list[list[Face]]:
    """Faces in a batch of RGB uint8 images (one detector call), best score first.

    Large images are searched on a bounded copy (`detection_copy`); boxes and
    landmarks come back in the image's own pixels.
    """
    if not images:
        return []
    detector = load_detector(resolve_device(device))
    copies = [detection_copy(np.asarray(im), settings) for im in images]
    found = detector.detect([c[0] for c in copies], min_face_size=settings.min_face_size,
                            thresholds=settings.thresholds, scale_factor=settings.scale_factor)
    return [faces_from_detections(_scaled(det, sx, sy)) for det, (_, sx, sy) in zip(found, copies)]


def chip_region(shape: tuple[int, ...], chip_to_image: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of an image of `shape` that one chip's sampling reads.

    With the margin `warp_chips` needs (its antialiasing downscale by an even
    factor reads 2 x factor pixels around), and x0, y0 multiples of that factor,
    so the downscaled crop lines up with the downscaled whole image.
    """
    h, w = shape[:2]
    corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], np.float64)
    xy = corners @ chip_to_image.T
    scale = float(np.sqrt(abs(np.linalg.det(chip_to_image[:, :2]))))
    factor = int(scale // 2) * 2 if scale >= 2.0 else 1
    margin = 2 * factor + 2
    x0 = max(0, (int(math.floor(xy[:, 0].min())) - margin) // factor * factor)
    y0 = max(0, (int(math.floor(xy[:, 1].min())) - margin) // factor * factor)
    x1 = min(w, int(math.ceil(xy[:, 0].max())) + margin + 1)
    y1 = min(h, int(math.ceil(xy[:, 1].max())) + margin + 1)
    return x0, y0, max(x0, x1), max(y0, y1)


def centre_face(image: np.ndarray, *, device: str | torch.device | None = None) -> list[Face]:
    """For datasets whose face of interest is centred (LFW): a face over the central region.

    The box covers the middle half of the image; the detector's last stage
    (O-Net) places the landmarks inside it.
    """
    h, w = image.shape[:2]
    box = np.array([[w * 0.25, h * 0.25, w * 0.75, h * 0.75]], dtype=np.float32)
    return faces_from_detections(load_detector(device).refine(image, box))


def select_faces(faces: list[Face], image_size: tuple[int, int], how: str) -> list[Face]:
    """Keep all faces, the one nearest the image centre, or the largest (see SELECT_CHOICES)."""
    if how not in SELECT_CHOICES:
        raise SettingsError(f"select must be one of {SELECT_CHOICES}, got {how!r}")
    if how == "all" or len(faces) <= 1:
        return faces
    if how == "largest":
        return [max(faces, key=lambda f: f.width * f.height)]
    cx, cy = image_size[0] / 2, image_size[1] / 2
    return [min(faces, key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2)]


def flip_averaged(model: torch.nn.Module, chips: torch.Tensor) -> torch.Tensor:
    """Mean of the embeddings of the chips and of their mirror images (one forward pass for both)."""
    both = model(torch.cat([chips, chips.flip(-1)]))
    return (both[: len(chips)] + both[len(chips):]) / 2


def as_chip_tensor(chips: torch.Tensor | np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 (N, S, S, 3) RGB numpy (or a list of (S, S, 3)) or float (N, 3, S, S) -> float (N, 3, S, S)."""
    if isinstance(chips, torch.Tensor):
        return chips.float()
    array = np.stack(chips) if isinstance(chips, (list, tuple)) and len(chips) else np.asarray(chips)
    if array.ndim != 4 or array.shape[3] != 3:
        raise SettingsError(f"chips must be (N, H, W, 3) uint8 RGB, got {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float()


@torch.inference_mode()
def run_encoder(model: torch.nn.Module, chips: torch.Tensor | np.ndarray | Sequence[np.ndarray], *,
                flip: bool = False, batch_size: int = 32, dim: int | None = None) -> np.ndarray:
    """Embeddings (N, D) float32 of aligned chips through an encoder module, in batches on its device.

    With `flip`, each embedding is the mean of the chip's and its mirror image's
    (test-time augmentation; dlib's own "jitter" averaging is the same idea).
    `batch_size` bounds the images of one forward pass, mirror images included:
    on a CPU, larger passes of the 112 px encoders outgrow the caches and get
    slower per image (SFace: 11.8 ms per image at 32, 17.6 at 64).
    """
    if not len(chips):
        return np.zeros((0, dim or 0), dtype=np.float32)
    tensor = as_chip_tensor(chips)
    device = next(model.parameters()).device
    out = []
    step = max(1, batch_size // 2) if flip else batch_size
    for start in range(0, len(tensor), step):
        batch = tensor[start:start + step].to(device, torch.float32)
        out.append((flip_averaged(model, batch) if flip else model(batch)).float().cpu())
    return torch.cat(out).numpy()


class Recognizer:
    """Detect faces and embed them with one encoder, on one device, in batches.

    `encoder`: a registry name (default SFace) or a saved encoder's folder.
    `flip`: each embedding is the mean of the chip's and its mirror image's (as
    galleries store them by default; it must match the gallery's `model.flip`).
    Models load on first use, once per process and device.
    """

    def __init__(self, encoder: str = DEFAULT_ENCODER, *, device: str | torch.device | None = None,
                 flip: bool = True, detector: DetectorSettings = DetectorSettings(), batch_size: int = 32) -> None:
        if batch_size < 1:
            raise SettingsError(f"batch_size must be at least 1, got {batch_size}")
        self.spec: EncoderSpec = encoder_spec(encoder)
        self.device = resolve_device(device)
        self.flip = flip
        self.detector = detector
        self.batch_size = batch_size
        # A fusion embeds with each part (its own chips) and concatenates, each scaled by sqrt(weight).
        self.parts = [(Recognizer(name, device=self.device, flip=flip, detector=detector, batch_size=batch_size),
                       float(np.sqrt(weight))) for name, weight in self.spec.parts]

    @classmethod
    def for_model(cls, model: EmbeddingModel, **kwargs) -> Recognizer:
        """The recognizer whose embeddings a gallery of `model` can be searched with."""
        return cls(model.encoder, flip=model.flip, **kwargs)

    @property
    def model(self) -> EmbeddingModel:
        return embedding_model(self.flip, self.spec.ref)

    def load(self) -> None:
        """Load the detector and the encoder now (they load on first use otherwise)."""
        load_detector(self.device)
        for part, _ in self.parts:
            part.load()
        if not self.parts:
            load_encoder(self.device, self.spec.ref)

    # -- the steps ------------------------------------------------------------------------

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        return detect(images, settings=self.detector, device=self.device)

    def chips(self, image: np.ndarray, faces: Sequence[Face], *, size: int | None = None) -> torch.Tensor:
        """Aligned float chips (N, 3, S, S) with the encoder's template, 0-255 truncated as dlib's.

        S is the encoder's chip size unless `size` asks for another (to look at, not to encode).
        """
        if self.parts and size is None:
            return self.parts[0][0].chips(image, faces)  # to look at: the first part's
        size = size or self.spec.chip_size
        if not faces:
            return torch.zeros((0, 3, size, size), device=self.device)
        landmarks = np.stack([f.landmarks for f in faces])
        transforms = chip_transforms(landmarks, size=size, template=self.spec.template_array)
        if image.shape[0] * image.shape[1] <= CROP_CHIPS_FROM:
            return warp_chips(image_to_tensor(image, self.device), transforms, size).floor()
        chips = []
        for matrix in transforms:  # a large image: only the region around each face becomes float
            x0, y0, x1, y1 = chip_region(image.shape, matrix, size)
            if x1 - x0 < 2 or y1 - y0 < 2:  # the chip lies outside the image: black, as warp_chips makes it
                chips.append(torch.zeros((1, 3, size, size), device=self.device))
                continue
            shifted = matrix.copy()
            shifted[:, 2] -= (x0, y0)
            chips.append(warp_chips(image_to_tensor(image[y0:y1, x0:x1], self.device), shifted[None], size))
        return torch.cat(chips).floor()

    def embed_chips(self, chips: torch.Tensor | np.ndarray) -> np.ndarray:
        """Embeddings (N, D) float32 of aligned chips: uint8 (N, S, S, 3) numpy, or float (N, 3, S, S) 0-255."""
        if self.parts:
            raise SettingsError(f"{self.spec.ref} fuses encoders with chips of their own; use embed() or "
                                "embed_faces()")
        out = run_encoder(load_encoder(self.device, self.spec.ref), chips, flip=self.flip,
                          batch_size=self.batch_size, dim=self.spec.dim)
        if self.spec.unit_length and len(out):
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def embed_faces(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Embeddings (N, D) of the given faces of one image."""
        return self._embeddings([image], [faces])

    def _embeddings(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> np.ndarray:
        """The embeddings of every face of every image, in order; all chips go through the encoder together."""
        if self.parts:
            return np.concatenate([scale * part._embeddings(images, faces) for part, scale in self.parts], axis=1)
        chips = [self.chips(image, fs) for image, fs in zip(images, faces) if fs]
        return self.embed_chips(torch.cat(chips)) if chips else np.zeros((0, self.spec.dim), np.float32)

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> list[list[Face]]:
        """The given faces of each image with their embeddings; all chips go through the encoder together."""
        if len(faces) != len(images):
            raise SettingsError(f"got {len(images)} images but {len(faces)} lists of faces")
        embeddings = self._embeddings(images, faces)
        out, start = [], 0
        for fs in faces:
            out.append([replace(f, embedding=e) for f, e in zip(fs, embeddings[start:start + len(fs)])])
            start += len(fs)
        return out

    def process(self, images: Sequence[np.ndarray], *, select: str = "all",
                fallback: Callable[[np.ndarray], list[Face]] | None = None) -> list[list[Face]]:
        """Detect, pick (`select`, see SELECT_CHOICES) and embed the faces of a batch of images.

        `fallback(image)` is called where no face is found and may return faces to
        embed anyway (the LFW evaluation uses `centre_face`: its faces are centred).
        """
        if select not in SELECT_CHOICES:
            raise SettingsError(f"select must be one of {SELECT_CHOICES}, got {select!r}")
        found = []
        for image, faces in zip(images, self.detect(images)):
            if not faces and fallback is not None:
                faces = fallback(image)
            found.append(select_faces(faces, (image.shape[1], image.shape[0]), select))
        return self.embed(images, found)
