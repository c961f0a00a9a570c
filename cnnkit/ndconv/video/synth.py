"""A motion task generated reproducibly: which way does the texture move?

Each clip shows a random, smooth, periodic texture translating by a constant
1-2 pixels per frame in one of four directions (the label); contrast, speed
and the starting offset are random, and every frame gets a little noise. Any
single frame is a random crop of a random texture: it carries no information
about the label, so only a model that relates frames to each other in time can
beat chance (25 %). The same seed gives the same clips.
"""

from __future__ import annotations

import numpy as np

from ...errors import SettingsError

DIRECTIONS = ("up", "down", "left", "right")
_STEP = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def texture(rng: np.random.Generator, size: int, *, cutoff: float = 0.18) -> np.ndarray:
    """A periodic random texture in [0, 1]: white noise low-passed in the Fourier domain."""
    noise = rng.standard_normal((size, size))
    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    smooth = np.real(np.fft.ifft2(np.fft.fft2(noise) * np.exp(-(radius / cutoff) ** 2)))
    smooth -= smooth.min()
    return smooth / max(smooth.max(), 1e-9)


def moving_clip(rng: np.random.Generator, direction: str, *, frames: int = 16, size: int = 32) -> np.ndarray:
    """uint8 (frames, size, size): a texture moving in `direction` (sub-pixel speeds by Fourier shift)."""
    if direction not in _STEP:
        raise SettingsError(f"unknown direction {direction!r}; use one of {DIRECTIONS}")
    tex = texture(rng, size)
    speed = rng.uniform(1.0, 2.0)
    dy, dx = (speed * s for s in _STEP[direction])
    oy, ox = rng.uniform(0, size, size=2)
    contrast = rng.uniform(0.5, 1.0)
    spectrum = np.fft.fft2(tex)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    out = np.empty((frames, size, size), dtype=np.uint8)
    for t in range(frames):
        sy, sx = oy + dy * t, ox + dx * t
        frame = np.real(np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (fy * sy + fx * sx))))
        frame = 0.5 + contrast * (frame - 0.5) + rng.normal(0, 0.03, size=frame.shape)
        out[t] = np.clip(frame * 255, 0, 255).astype(np.uint8)
    return out


def make_clips(n: int, *, seed: int = 0, frames: int = 16, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(clips uint8 (n, frames, size, size), labels (n,) index into DIRECTIONS), balanced classes."""
    if n < 1:
        raise SettingsError("n must be >= 1")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(DIRECTIONS))
    clips = np.stack([moving_clip(rng, DIRECTIONS[k], frames=frames, size=size) for k in labels])
    return clips, labels.astype(np.int64)
