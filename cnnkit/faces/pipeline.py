"""The face pipeline over many image files: load -> Recognizer (detect -> chips -> encode), batched.

`embed_images` is what the command line, the evaluation and the gallery use
on many files: images are decoded by a small thread pool while the models
run, and each batch goes through one `Recognizer.process` call (one detector
call, one encoder call).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import torch

from ..errors import CnnkitError, SettingsError
from ..images import ImageInput, load_image
from .models import DEFAULT_ENCODER
from .recognizer import SELECT_CHOICES, Recognizer
from .settings import DetectorSettings
from .types import Face

log = logging.getLogger(__name__)


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
    recognizer: Recognizer | None = None,
) -> Iterator[ImageResult]:
    """Detect, align and encode every face of every image, yielding results in input order.

    Unreadable images yield a result with `error` set and never stop the run.
    `fallback(image)` is called when no face is found and may return faces to
    encode anyway (the LFW evaluation uses it: its faces are known to be centred).
    `recognizer` replaces `flip`, `settings`, `device` and `encoder` when given.
    """
    if select not in SELECT_CHOICES:
        raise SettingsError(f"select must be one of {SELECT_CHOICES}, got {select!r}")
    if batch_size < 1:
        raise SettingsError(f"batch_size must be at least 1, got {batch_size}")
    if recognizer is None:
        recognizer = Recognizer(encoder, device=device, flip=flip, detector=settings)
    iterator = iter(images)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        # Decode the next batch while the current one is on the models.
        pending = [pool.submit(_load, item) for item in islice(iterator, batch_size)]
        while pending:
            loaded = [f.result() for f in pending]
            pending = [pool.submit(_load, item) for item in islice(iterator, batch_size)]
            for result in _process_batch(recognizer, loaded, select=select, fallback=fallback):
                if on_image is not None:
                    on_image(result)
                yield result


def _process_batch(recognizer: Recognizer, loaded, *, select, fallback) -> list[ImageResult]:
    results = [ImageResult(source=name, error=error,
                           size=None if img is None else (img.shape[1], img.shape[0]))
               for name, img, error in loaded]
    ok = [i for i, (_, img, _) in enumerate(loaded) if img is not None]
    found = recognizer.process([loaded[i][1] for i in ok], select=select, fallback=fallback)
    for i, faces in zip(ok, found):
        results[i].faces = faces
    return results
