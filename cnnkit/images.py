"""`load_image`: anything image-like in, an RGB uint8 H x W x 3 numpy array out.

Accepts a path, bytes, a binary file object, a PIL image or a numpy array.
Honours EXIF orientation; converts grayscale, palette, RGBA (composited on
white), CMYK and 16-bit images to 8-bit RGB. Refuses decompression bombs by
reading the size from the header before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, NoImagesError

ImageInput = str | os.PathLike | bytes | bytearray | BinaryIO | np.ndarray | Image.Image

#: The files a folder of photos is searched for (what PIL reads, by name).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

#: Default pixel limit (width x height). 100 megapixels is larger than any phone photo.
MAX_PIXELS = 100_000_000


_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def describe(exc: BaseException) -> str:
    """An exception's message fit to show a user: no `<_io.BytesIO object at 0x7f...>` (memory addresses)."""
    text = _REPR.sub("the data", str(exc)).strip()
    return text or type(exc).__name__


def as_batch(images: ImageInput | Sequence[ImageInput]) -> tuple[list[ImageInput], bool]:
    """(the images, whether they came as a batch): a list or tuple holds several images, anything else is one."""
    if isinstance(images, (list, tuple)):
        return list(images), True
    # Anything but a list or tuple is one image (load_image refuses what is not); typing cannot
    # narrow "a Sequence, but not a list or tuple" away, so say it.
    return [cast(ImageInput, images)], False


def load_image(image: ImageInput, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Return `image` as a C-contiguous RGB uint8 array of shape (H, W, 3).

    Raises `ImageError` with a message naming the input when it cannot be read,
    is empty, is truncated, is not an image, or has more than `max_pixels` pixels.
    """
    if isinstance(image, np.ndarray):
        return _from_array(image, max_pixels)
    if isinstance(image, Image.Image):
        return _from_pil(image, "image", max_pixels)
    name, stream, owned = _open_stream(image)
    try:
        with warnings.catch_warnings():
            # Our own limit replaces PIL's; its bomb warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                pil = Image.open(stream)
            except Image.DecompressionBombError as exc:
                raise ImageError(f"{name}: image is too large to decode safely ({describe(exc)})") from None
            except UnidentifiedImageError:
                raise ImageError(f"{name}: not an image file, or a format that cannot be read") from None
            except OSError as exc:
                raise ImageError(f"{name}: cannot read image ({describe(exc)})") from None
            return _from_pil(pil, name, max_pixels)
    finally:
        if owned:
            stream.close()


def _open_stream(image: object) -> tuple[str, BinaryIO, bool]:
    """Return (name for messages, binary stream, whether we opened it and must close it)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        if len(image) == 0:
            raise ImageError("<bytes>: empty input (0 bytes)")
        return "<bytes>", io.BytesIO(bytes(image)), True
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageError(f"{path}: no such file") from None
        except OSError as exc:
            raise ImageError(f"{path}: cannot open ({exc.strerror})") from None
        if path.is_dir():
            raise ImageError(f"{path}: is a folder, not an image file")
        if size == 0:
            raise ImageError(f"{path}: empty file (0 bytes)")
        try:
            return str(path), open(path, "rb"), True
        except OSError as exc:
            raise ImageError(f"{path}: cannot open ({exc.strerror})") from None
    if hasattr(image, "read"):  # a file object: duck-typed, as the standard library does
        return str(getattr(image, "name", "<file>")), cast(BinaryIO, image), False
    raise ImageError(
        f"cannot load an image from a {type(image).__name__}; "
        "give a path, bytes, a binary file object, a PIL image or a numpy array"
    )


def _check_pixels(name: str, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            f"{name}: image is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,}; downscale it first or raise max_pixels"
        )


def _from_pil(pil: Image.Image, name: str, max_pixels: int) -> np.ndarray:
    _check_pixels(name, pil.width, pil.height, max_pixels)
    try:
        pil.load()
        pil = ImageOps.exif_transpose(pil)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: image data is damaged or truncated ({describe(exc)})") from None
    return _to_rgb8(pil)


#: Images above this many pixels are converted to an array a band of rows at a time, so that
#: converting a 40 MP photo costs its array (120 MB) and not two more full copies on the way.
BAND_FROM_PIXELS = 4_000_000
_BAND_ROWS = 256
_POINTWISE = ("RGB", "L", "CMYK", "YCbCr", "LAB", "HSV", "1")


def _to_rgb8(pil: Image.Image) -> np.ndarray:
    mode = pil.mode
    if pil.width * pil.height > BAND_FROM_PIXELS and mode in _POINTWISE:
        out = np.empty((pil.height, pil.width, 3), dtype=np.uint8)
        for top in range(0, pil.height, _BAND_ROWS):
            band = pil.crop((0, top, pil.width, min(pil.height, top + _BAND_ROWS)))
            out[top:top + band.height] = np.asarray(band if band.mode == "RGB" else band.convert("RGB"))
        return out
    if mode.startswith("I;16"):
        return _gray_to_rgb(np.asarray(pil, dtype=np.float64) / 257.0)
    if mode in ("I", "F"):
        # 32-bit modes: PIL uses them for 16-bit PNG/TIFF data too, so scale by the value range.
        values = np.asarray(pil, dtype=np.float64)
        return _gray_to_rgb(values / 257.0 if values.max() > 255 else values)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in pil.info):
        rgba = pil.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        pil = Image.alpha_composite(white, rgba)
    return np.array(pil.convert("RGB"), dtype=np.uint8)  # a writable copy, unlike np.asarray


def _gray_to_rgb(values: np.ndarray) -> np.ndarray:
    gray = np.round(np.clip(values, 0, 255)).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _from_array(array: np.ndarray, max_pixels: int) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(
            f"array of shape {array.shape} is not an image; expected (H, W), (H, W, 3) or (H, W, 4)"
        )
    _check_pixels("array", array.shape[1], array.shape[0], max_pixels)
    array = _to_uint8(array)
    if array.ndim == 2:
        return _gray_to_rgb(array)
    if array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        array = (array[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("float image contains NaN or infinity")
        if array.min() < 0.0 or array.max() > 1.0:
            raise ImageError("float images must hold values in [0, 1]")
        return (array * 255.0 + 0.5).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0:
            raise ImageError(f"integer image of dtype {array.dtype} has negative values")
        # 16-bit data (or 32-bit holding 16-bit values, as PIL gives for 16-bit PNGs): scale down.
        if array.max() > 255:
            return (array.astype(np.float64) / 257.0 + 0.5).clip(0, 255).astype(np.uint8)
        return array.astype(np.uint8)
    raise ImageError(f"unsupported array dtype {array.dtype}")


def expand_folders(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """`paths` with each folder replaced by the image files inside it (recursively, sorted); files kept as given.

    A folder without image files raises `NoImagesError`; a file that does not
    exist is kept (loading it gives the error, in its place).
    """
    found: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not inside:
                raise NoImagesError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder "
                                    "or below it")
            found.extend(inside)
        else:
            found.append(str(path))
    return found


def list_images(paths: Iterable[str | os.PathLike[str]], *, limit: int | None = None) -> list[str]:
    """Image files named by `paths` (files, or folders searched recursively, sorted), in a stable order.

    Raises `NoImagesError` when nothing is found or a path does not exist.
    """
    found = expand_folders(paths)
    for path in found:
        if not Path(path).is_file():
            raise NoImagesError(f"{path}: no such file or folder")
    if not found:
        raise NoImagesError("no images given; pass image files or folders holding them")
    return found[:limit] if limit is not None else found
