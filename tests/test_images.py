"""load_image: formats, EXIF, conversions and the errors for bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnkit import load_image
from cnnkit.errors import ImageError
from tests.conftest import lfw_image


def _encode(pil: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that announces width x height but holds no pixel data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_lfw_jpeg_from_path_bytes_and_file_object():
    path = lfw_image("Aaron_Eckhart", 1)
    a = load_image(path)
    assert a.shape == (250, 250, 3) and a.dtype == np.uint8 and a.flags.writeable
    b = load_image(path.read_bytes())
    with open(path, "rb") as fh:
        c = load_image(fh)
        assert not fh.closed  # a caller's file object is left open
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert np.array_equal(load_image(str(path)), a)


def test_grayscale_is_replicated_to_three_channels():
    gray = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L")
    out = load_image(_encode(gray, "PNG"))
    assert out.shape == (8, 8, 3)
    assert np.array_equal(out[:, :, 0], out[:, :, 2])
    assert out[0, 5, 1] == 5


def test_rgba_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200          # red where opaque
    rgba[:2, :, 3] = 255        # top half opaque, bottom half transparent
    out = load_image(_encode(Image.fromarray(rgba, mode="RGBA"), "PNG"))
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[3, 3]) == (255, 255, 255)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    out = load_image(_encode(cmyk, "JPEG", quality=95))
    assert out.shape == (16, 16, 3)
    r, g, b = out[8, 8].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    out = load_image(_encode(Image.fromarray(values), "PNG"))
    assert list(out[0, :, 0]) == [0, 100, 255]


def test_exif_orientation_is_applied():
    wide = np.zeros((10, 20, 3), dtype=np.uint8)
    wide[:, :10] = 255  # left half white
    pil = Image.fromarray(wide)
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_image(_encode(pil, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.shape == (20, 10, 3)  # displayed upright: portrait
    assert out[2, 5].mean() > 200 and out[17, 5].mean() < 50  # the white half is now on top


def test_arrays_are_converted():
    assert load_image(np.zeros((5, 6), dtype=np.uint8)).shape == (5, 6, 3)
    assert load_image(np.ones((5, 6, 3), dtype=np.float32))[0, 0, 0] == 255
    assert load_image(np.full((2, 2, 1), 7, dtype=np.uint8))[1, 1, 2] == 7
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((5, 6, 2), dtype=np.uint8))
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        load_image(np.full((2, 2, 3), 3.0))


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"this is not an image at all", "not an image"),
])
def test_bad_bytes(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_zero_byte_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        load_image(empty)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_text_file_named_jpg(tmp_path):
    fake = tmp_path / "photo.jpg"
    fake.write_text("hello")
    with pytest.raises(ImageError, match="not an image"):
        load_image(fake)


def test_truncated_jpeg(tmp_path):
    data = lfw_image("Aaron_Eckhart", 1).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="truncated|damaged"):
        load_image(cut)


def test_huge_png_header_is_refused_before_decoding():
    with pytest.raises(ImageError, match="too large.*900,?000,?000"):
        load_image(_png_header_only(30000, 30000))
    # Under PIL's own bomb limit, our (lower) default limit speaks, with the size.
    with pytest.raises(ImageError, match="12000x12000"):
        load_image(_png_header_only(12000, 12000))


def test_pixel_limit_is_configurable():
    img = np.zeros((100, 100, 3), dtype=np.uint8)
    with pytest.raises(ImageError, match="limit"):
        load_image(img, max_pixels=5000)


def test_unsupported_input_type():
    with pytest.raises(ImageError, match="cannot load an image from a int"):
        load_image(42)  # type: ignore[arg-type]
