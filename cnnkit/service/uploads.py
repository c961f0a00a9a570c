"""Uploaded photos: what kind they are (by content, never by name), how big, decoded.

Only JPEG, PNG and WebP are accepted: what cameras, phones and browsers
(`canvas.toBlob`) produce. The kind is read from the first bytes; the file name
and the declared Content-Type are ignored. The pixel count is read from the
header before anything is decoded, so a small file announcing a huge image (a
decompression bomb) costs nothing.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image

from ..errors import ImageError, ServiceError
from ..images import describe, load_image

ACCEPTED = ("JPEG", "PNG", "WEBP")
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


@dataclass(frozen=True)
class Upload:
    """One uploaded photo, checked and decoded."""

    name: str  # a safe display name derived from the client's file name (never used as a path)
    kind: str  # JPEG, PNG or WEBP
    sha256: str
    image: np.ndarray  # RGB uint8 (H, W, 3)
    data: bytes

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.kind]


def sniff(data: bytes) -> str | None:
    """The accepted kind these bytes start like, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


_UNSAFE = re.compile(r"[^\w .()+,-]", re.UNICODE)


def display_name(filename: str | None, index: int) -> str:
    """What is recorded as a photo's source: the last path component of the client's name, tamed.

    A name like `../../etc/passwd` becomes `passwd`; nothing is ever opened or written by it.
    """
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")[:100]
    return f"upload:{base or f'photo-{index + 1}'}"


def decode_upload(data: bytes, filename: str | None, *, index: int = 0, max_pixels: int) -> Upload:
    """Check and decode one uploaded photo; ServiceError (413/415/422) when it is refused."""
    name = display_name(filename, index)
    if not data:
        raise ServiceError(status=422, code="empty_upload", message=f"{name}: the file is empty")
    kind = sniff(data)
    if kind is None:
        raise ServiceError(status=415, code="unsupported_media_type",
                           message=f"{name}: not a JPEG, PNG or WebP image (judged by its content, not its name)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(BytesIO(data), formats=[kind]) as probe:
                width, height = probe.size
        except Image.DecompressionBombError:
            width = height = -1
        except Exception as exc:  # PIL raises many kinds for damaged headers
            raise ServiceError(status=422, code="unreadable_image",
                               message=f"{name}: damaged {kind} file ({describe(exc)})") from None
    if width < 0 or width * height > max_pixels:
        size = "more pixels than PIL will open" if width < 0 else f"{width}x{height} = {width * height:,} pixels"
        raise ServiceError(status=413, code="image_too_large",
                           message=f"{name}: the image is {size}, over the limit of {max_pixels:,}; downscale it")
    try:
        image = load_image(data, max_pixels=max_pixels)
    except ImageError as exc:
        raise ServiceError(status=422, code="unreadable_image",
                           message=f"{name}: {str(exc).removeprefix('<bytes>: ')}") from None
    return Upload(name=name, kind=kind, sha256=hashlib.sha256(data).hexdigest(), image=image, data=data)
