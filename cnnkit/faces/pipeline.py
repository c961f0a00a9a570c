"""The face pipeline over many images: load -> detect -> align -> encode, batched.

`embed_images` is what the command line, the evaluation and (later) the
gallery use on many files: images are decoded by a small thread pool while the
models run, detection runs on batches of images, and all chips of a batch go
through the encoder together.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice

import numpy as np
import torch

from ..errors import CnnkitError, SettingsError
from ..images import ImageInput, load_image
from .align import CHIP_SIZE, chip_transforms, image_to_tensor, warp_chips
from .models import DEFAULT_ENCODER, encoder_spec, load_detector, load_encoder, resolve_device
from .settings import DetectorSettings
from .types import Face

log = logging.getLogger(__name__)

#: Which faces of an image to keep: all of them, the one nearest the centre
#: (LFW's convention: the face of interest is centred), or the largest.
SELECT_CHOICES = ("all", "center", "largest")


@dataclass
class ImageResult:
    """What the pipeline found in one input: its faces, or the error that stopped it."""

    source: str
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    size: tuple[int, int] | None = None  # (width, height)

    def to_dict(self) -> dict:
        out: dict = {"image": self.source}
        if self.error is not None:
            out["error"] = self.error
        else:
            out["faces"] = [f.to_dict() for f in self.faces]
        return out


def detect_batch(images: Sequence[np.ndarray], *, settings: DetectorSettings = DetectorSettings(),
                 device: str | torch.device | None = None) -> list[list[Face]]:
    """Detect faces in a batch of RGB uint8 images; faces sorted by score, best first."""
    if not images:
        return []
    detector = load_detector(resolve_device(device))
    found = detector.detect(list(images), min_face_size=settings.min_face_size,
                            thresholds=settings.thresholds, scale_factor=settings.scale_factor)
    return [faces_from_detections(det) for det in found]


def faces_from_detections(det) -> list[Face]:
    """MTCNN's detections as Faces, best score first.

    MTCNN works in continuous coordinates (pixel (i, j) covers [j, j+1) x [i, i+1));
    cnnkit, like numpy, OpenCV, dlib and matplotlib, puts pixel centres on integers,
    so everything moves by half a pixel.
    """
    order = np.argsort(-np.asarray(det.scores), kind="stable")
    return [Face(box=tuple(float(v) - 0.5 for v in det.boxes[i]), score=float(det.scores[i]),
                 landmarks=np.asarray(det.landmarks[i], dtype=np.float32) - 0.5)
            for i in order]


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


def chips_for_faces(image: np.ndarray, faces: Sequence[Face], *, device: str | torch.device | None = None,
                    size: int = CHIP_SIZE) -> torch.Tensor:
    """Aligned float chips (N, 3, size, size), 0-255 truncated as dlib's, for the faces of one image."""
    dev = resolve_device(device)
    if not faces:
        return torch.zeros((0, 3, size, size), device=dev)
    landmarks = np.stack([f.landmarks for f in faces])
    return warp_chips(image_to_tensor(image, dev), chip_transforms(landmarks, size=size), size).floor()


@torch.inference_mode()
def encode_chips(chips: torch.Tensor | np.ndarray, *, flip: bool = True, batch_size: int = 64,
                 device: str | torch.device | None = None, encoder: str = DEFAULT_ENCODER) -> np.ndarray:
    """Embeddings (N, D) float32 of aligned chips (D = 128 for the default encoder).

    `chips`: uint8 (N, H, W, 3) numpy, or float (N, 3, H, W) 0-255. With `flip`,
    each embedding is the mean of the chip's and its mirror image's (test-time
    augmentation; dlib's own "jitter" averaging is the same idea).
    """
    dev = resolve_device(device)
    dim = encoder_spec(encoder).dim
    model = load_encoder(dev, encoder)
    if isinstance(chips, np.ndarray):
        if chips.ndim != 4 or chips.shape[3] != 3:
            raise SettingsError(f"chips must be (N, H, W, 3) uint8, got {chips.shape}")
        chips = torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float()
    if len(chips) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    out = []
    for start in range(0, len(chips), batch_size):
        batch = chips[start:start + batch_size].to(dev, torch.float32)
        if flip:
            both = model(torch.cat([batch, batch.flip(-1)]))
            emb = (both[: len(batch)] + both[len(batch):]) / 2
        else:
            emb = model(batch)
        out.append(emb.float().cpu())
    return torch.cat(out).numpy()


def describe(item: ImageInput) -> str:
    """A short name of an image input for messages and reports."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if isinstance(item, (bytes, bytearray)):
        return "<bytes>"
    if isinstance(item, np.ndarray):
        return f"<array {'x'.join(map(str, item.shape))}>"
    return str(getattr(item, "name", f"<{type(item).__name__}>"))


def _load(item: ImageInput) -> tuple[str, np.ndarray | None, str | None]:
    name = describe(item)
    try:
        return name, load_image(item), None
    except CnnkitError as exc:
        return name, None, str(exc)


def embed_images(
    images: Iterable[ImageInput],
    *,
    select: str = "all",
    flip: bool = True,
    batch_size: int = 32,
    settings: DetectorSettings = DetectorSettings(),
    fallback: Callable[[np.ndarray], list[Face]] | None = None,
    device: str | torch.device | None = None,
    encoder: str = DEFAULT_ENCODER,
    threads: int = 2,
    on_image: Callable[[ImageResult], None] | None = None,
) -> Iterator[ImageResult]:
    """Detect, align and encode every face of every image, yielding results in input order.

    Unreadable images yield a result with `error` set and never stop the run.
    `fallback(image)` is called when no face is found and may return faces to
    encode anyway (the LFW evaluation uses it: its faces are known to be centred).
    """
    if select not in SELECT_CHOICES:
        raise SettingsError(f"select must be one of {SELECT_CHOICES}, got {select!r}")
    dev = resolve_device(device)
    iterator = iter(images)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        # Decode the next batch while the current one is on the models.
        pending = [pool.submit(_load, item) for item in islice(iterator, batch_size)]
        while pending:
            loaded = [f.result() for f in pending]
            pending = [pool.submit(_load, item) for item in islice(iterator, batch_size)]
            for result in _process_batch(loaded, select=select, flip=flip, settings=settings,
                                         fallback=fallback, device=dev, encoder=encoder):
                if on_image is not None:
                    on_image(result)
                yield result


def _process_batch(loaded, *, select, flip, settings, fallback, device, encoder) -> list[ImageResult]:
    results = [ImageResult(source=name, error=error,
                           size=None if img is None else (img.shape[1], img.shape[0]))
               for name, img, error in loaded]
    ok = [i for i, (_, img, _) in enumerate(loaded) if img is not None]
    detections = detect_batch([loaded[i][1] for i in ok], settings=settings, device=device)
    chips, owners = [], []
    for i, faces in zip(ok, detections):
        image = loaded[i][1]
        if not faces and fallback is not None:
            faces = fallback(image)
        faces = select_faces(faces, results[i].size, select)
        results[i].faces = faces
        if faces:
            chips.append(chips_for_faces(image, faces, device=device, size=encoder_spec(encoder).chip_size))
            owners.extend((i, k) for k in range(len(faces)))
    if chips:
        embeddings = encode_chips(torch.cat(chips), flip=flip, device=device, encoder=encoder)
        for (i, k), emb in zip(owners, embeddings):
            results[i].faces[k] = replace(results[i].faces[k], embedding=emb)
    return results
