"""How open the eyes are: the eye aspect ratio (Soukupova & Cech, 2016) of six contour points per eye.

EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|): p1, p4 the corners, p2, p3 on the
upper lid, p5, p6 on the lower. It falls towards 0 as the lids close, and does
not change when a photo is moved or scaled. It *does* fall when a photo is
tilted away from the camera (the photo's vertical extent shrinks by the cosine
of the tilt), which would pass for a blink; `eye_openness` therefore divides by
the face's own vertical/horizontal proportion (eyes-to-mouth distance over
eye-to-eye distance), which a tilt shrinks by the same factor and a blink leaves
alone. (This correction is cnnkit's, not the paper's.)
"""

from __future__ import annotations

import numpy as np


def eye_aspect_ratio(eye: np.ndarray) -> np.ndarray:
    """EAR of (..., 6, 2) eye contours (points in the order p1..p6)."""
    eye = np.asarray(eye, dtype=np.float64)
    v1 = np.linalg.norm(eye[..., 1, :] - eye[..., 5, :], axis=-1)
    v2 = np.linalg.norm(eye[..., 2, :] - eye[..., 4, :], axis=-1)
    h = np.linalg.norm(eye[..., 0, :] - eye[..., 3, :], axis=-1)
    return (v1 + v2) / (2 * np.maximum(h, 1e-6))


def face_proportion(eyes: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    """Distance from the eyes' midpoint to the mouth's centre over the eye-to-eye distance."""
    eyes = np.asarray(eyes, dtype=np.float64)
    first, second = eyes[..., 0, :, :].mean(-2), eyes[..., 1, :, :].mean(-2)
    across = np.linalg.norm(second - first, axis=-1)
    down = np.linalg.norm(np.asarray(mouth, dtype=np.float64) - (first + second) / 2, axis=-1)
    return down / np.maximum(across, 1e-6)


def eye_openness(eyes: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray:
    """Mean EAR of both eyes, (..., 2, 6, 2) -> (...); given the mouth's centre, divided by `face_proportion`."""
    eyes = np.asarray(eyes, dtype=np.float64)
    ear = eye_aspect_ratio(eyes).mean(-1)
    if mouth is None:
        return ear
    return ear / np.maximum(face_proportion(eyes, mouth), 1e-6)


def face_shape(landmarks5: np.ndarray) -> np.ndarray:
    """MTCNN's five points: eyes' midpoint to mouth corners' midpoint, over the eye-to-eye distance."""
    p = np.asarray(landmarks5, dtype=np.float64)
    eyes_mid = (p[..., 0, :] + p[..., 1, :]) / 2
    mouth_mid = (p[..., 3, :] + p[..., 4, :]) / 2
    across = np.linalg.norm(p[..., 1, :] - p[..., 0, :], axis=-1)
    return np.linalg.norm(mouth_mid - eyes_mid, axis=-1) / np.maximum(across, 1e-6)
