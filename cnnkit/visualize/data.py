"""Which images a run reads, how each becomes the picture the network sees, and patch cropping.

A *preparer* turns an original image into the network's view of it (a square
crop of a resized image, or an aligned face chip) plus the 2 x 3 affine map
from view pixels to original pixels. The map is kept per image (6 numbers), so
a patch can be cut again later and located in the original photo without
running detection twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import ImageTooSmallError


@dataclass(frozen=True)
class ResizeCrop:
    """Scale the shorter side to `size` and cut the central `size` x `size` square."""

    size: int = 224
    min_side: int = 1  # originals with a shorter side below this are refused (see TopPatches)

    def prepare(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray] | None]:
        out: list[tuple[np.ndarray, np.ndarray] | None] = []
        for image, name in zip(images, names):
            h, w = image.shape[:2]
            if min(h, w) < self.min_side:
                raise ImageTooSmallError(
                    f"{name}: {w}x{h} pixels is smaller than the receptive field of the layers asked for "
                    f"({self.min_side} pixels); use larger images or shallower layers")
            scale = self.size / min(h, w)
            nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
            top, left = (nh - self.size) // 2, (nw - self.size) // 2
            out.append((self._view(image, nh, nw, top, left), self._map(h, w, nh, nw, top, left)))
        return out

    def _view(self, image: np.ndarray, nh: int, nw: int, top: int, left: int) -> np.ndarray:
        resized = image if (nh, nw) == image.shape[:2] else np.asarray(
            Image.fromarray(image).resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0))
        return np.ascontiguousarray(resized[top: top + self.size, left: left + self.size])

    @staticmethod
    def _map(h: int, w: int, nh: int, nw: int, top: int, left: int) -> np.ndarray:
        # view pixel centre x -> original: (x + left + 0.5) * w / nw - 0.5
        sx, sy = w / nw, h / nh
        return np.array([[sx, 0.0, (left + 0.5) * sx - 0.5], [0.0, sy, (top + 0.5) * sy - 0.5]])

    def reproduce(self, image: np.ndarray, view_to_image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        nw, nh = round(w / view_to_image[0, 0]), round(h / view_to_image[1, 1])
        return self._view(image, nh, nw, (nh - self.size) // 2, (nw - self.size) // 2)


@dataclass(frozen=True)
class FaceChips:
    """The aligned chip of the face nearest the image centre (cnnkit.faces: MTCNN + 5-point alignment).

    Images without a face are skipped (`prepare` returns None for them).
    """

    size: int = 150
    device: str = "cpu"

    def prepare(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray] | None]:
        from ..faces.align import chip_transforms
        from ..faces.recognizer import detect, select_faces

        out: list[tuple[np.ndarray, np.ndarray] | None] = []
        for image, faces in zip(images, detect(list(images), device=self.device)):
            faces = select_faces(faces, (image.shape[1], image.shape[0]), "center")
            if not faces:
                out.append(None)
                continue
            matrix = chip_transforms(faces[0].landmarks[None], size=self.size)[0]
            out.append((self.reproduce(image, matrix), matrix))
        return out

    def reproduce(self, image: np.ndarray, view_to_image: np.ndarray) -> np.ndarray:
        from ..faces.align import image_to_tensor, warp_chips

        chip = warp_chips(image_to_tensor(image), np.asarray(view_to_image)[None], self.size)[0]
        return chip.floor().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def crop_box(image: np.ndarray, box: tuple[int, int, int, int], fill: tuple[int, int, int]) -> np.ndarray:
    """The pixels of `image` (H, W, 3) inside ``box = (top, left, bottom, right)``; outside the image is `fill`."""
    top, left, bottom, right = box
    h, w = image.shape[:2]
    out = np.empty((bottom - top, right - left, 3), dtype=image.dtype)
    out[:] = np.asarray(fill, dtype=image.dtype)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    if y0 < y1 and x0 < x1:
        out[y0 - top: y1 - top, x0 - left: x1 - left] = image[y0:y1, x0:x1]
    return out


def box_in_original(box: tuple[int, int, int, int], view_to_image: np.ndarray) -> tuple[float, float, float, float]:
    """The bounding box ``(x0, y0, x1, y1)`` in original-image pixels of a view box ``(top, left, bottom, right)``."""
    top, left, bottom, right = box
    corners = np.array([[left - 0.5, top - 0.5], [right - 0.5, top - 0.5],
                        [left - 0.5, bottom - 0.5], [right - 0.5, bottom - 0.5]])
    mapped = corners @ np.asarray(view_to_image)[:, :2].T + np.asarray(view_to_image)[:, 2]
    x0, y0 = mapped.min(0)
    x1, y1 = mapped.max(0)
    return float(x0), float(y0), float(x1), float(y1)
