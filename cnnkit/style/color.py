"""Keeping the content's colours (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer").

Two ways, on (H, W, 3) uint8 RGB images:

- ``"luminance"``: transfer the style on the luminance only. Both images are
  reduced to their luma Y (YIQ), the style's Y is shifted and scaled to the
  content's mean and standard deviation, the transfer runs on grey images, and
  the result's Y is put back together with the content's I and Q.
- ``"match"``: colour matching. Before the transfer, the style image's pixels
  are mapped by the affine transform that gives them the content's mean and
  covariance (x' = C_c^1/2 C_s^-1/2 (x - mu_s) + mu_c, symmetric square roots).
"""

from __future__ import annotations

import numpy as np

from .settings import PRESERVE_COLOR_CHOICES  # noqa: F401 (re-exported; defined with the settings)

_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def to_yiq(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> float64 YIQ, Y in [0, 1]."""
    return (image.astype(np.float64) / 255.0) @ _RGB_TO_YIQ.T


def from_yiq(yiq: np.ndarray) -> np.ndarray:
    """float YIQ -> (H, W, 3) uint8 RGB (clipped)."""
    return _to_uint8(yiq @ _YIQ_TO_RGB.T)


def luminance_image(image: np.ndarray, *, like: np.ndarray | None = None) -> np.ndarray:
    """The luma of `image` as a grey RGB image; with `like`, its mean and std matched to `like`'s luma."""
    y = to_yiq(image)[..., 0]
    if like is not None:
        y_ref = to_yiq(like)[..., 0]
        y = (y - y.mean()) / max(y.std(), 1e-6) * y_ref.std() + y_ref.mean()
    return _to_uint8(np.repeat(y[..., None], 3, axis=2))


def recombine_luminance(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The luma of `stylized` with the chroma (I, Q) of `content` (same size)."""
    yiq = to_yiq(content)
    yiq[..., 0] = to_yiq(stylized)[..., 0]
    return from_yiq(yiq)


def match_colors(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """`style` with its RGB mean and covariance mapped onto `content`'s."""
    s = style.reshape(-1, 3).astype(np.float64) / 255.0
    c = content.reshape(-1, 3).astype(np.float64) / 255.0
    mu_s, mu_c = s.mean(0), c.mean(0)
    cov_s = np.cov(s, rowvar=False) + 1e-5 * np.eye(3)
    cov_c = np.cov(c, rowvar=False) + 1e-5 * np.eye(3)
    transform = _sqrtm(cov_c) @ np.linalg.inv(_sqrtm(cov_s))
    out = (s - mu_s) @ transform.T + mu_c
    return _to_uint8(out.reshape(style.shape))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
