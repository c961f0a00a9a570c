"""MediaPipe's face mesh (468 points) in PyTorch: eye contours precise enough to see a blink.

The weights are MediaPipe's `face_landmark.tflite` (Apache-2.0), a member of the
PyPI wheel `mediapipe==0.10.14` (later wheels no longer ship it), run by
tflite_graph.TFLiteGraph. Input: a 192x192 RGB crop in [0, 1], square, centred
on the face and turned so the eyes are level (MediaPipe does the same with its
own detector's box; cnnkit uses MTCNN's box and eye points). Output: 468 x, y, z
in crop pixels, and a face-presence logit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...weights import load_model
from ..types import Face
from .tflite_graph import TFLiteGraph

WEIGHTS = "face-mesh"
INPUT_SIZE = 192
#: The crop: a square of side CROP_SCALE * max(box width, height) around the MTCNN box centre,
#: moved down by CROP_SHIFT * box height. Chosen on LFW View 1 training people by
#: bench/video_landmarks.py (agreement of the mesh's eye centres, nose tip and mouth
#: corners with MTCNN's five points).
CROP_SCALE = 1.5
CROP_SHIFT = 0.0

#: Six contour points per eye in the EAR order p1 (outer corner), p2, p3 (upper lid),
#: p4 (inner corner), p5, p6 (lower lid): the eye on the image's left, then the other.
EYES = ((33, 160, 158, 133, 153, 144), (263, 387, 385, 362, 380, 373))
MOUTH_CORNERS = (61, 291)
NOSE_TIP = 1


def load_facemesh(device: str | torch.device = "cpu") -> TFLiteGraph:
    """The face mesh network on `device` (run `cnnkit weights fetch face-mesh` first)."""
    return _load(str(device))


@functools.lru_cache(maxsize=4)
def _load(device: str) -> TFLiteGraph:
    return load_model(WEIGHTS, device)


def _crops(faces: Sequence[Face], scale: float, shift: float) -> np.ndarray:
    """(N, 4) centre x, centre y, side, angle (radians, of the eye line) per face."""
    out = []
    for f in faces:
        w, h = f.width, f.height
        (lx, ly), (rx, ry) = f.landmarks[0], f.landmarks[1]
        angle = math.atan2(float(ry - ly), float(rx - lx))
        cx, cy = f.center
        # The shift follows the face's own "down" (perpendicular to the eye line).
        out.append([cx - math.sin(angle) * shift * h, cy + math.cos(angle) * shift * h, scale * max(w, h), angle])
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


@torch.inference_mode()
def face_mesh(image: np.ndarray, faces: Sequence[Face], *, device: str | torch.device = "cpu",
              scale: float = CROP_SCALE, shift: float = CROP_SHIFT) -> tuple[np.ndarray, np.ndarray]:
    """(N, 468, 2) x, y in image pixels, and (N,) face-presence probabilities, for detected faces."""
    crops = _crops(faces, scale, shift)
    if len(crops) == 0:
        return np.zeros((0, 468, 2), np.float32), np.zeros((0,), np.float32)
    model = load_facemesh(device)
    img = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float() / 255.0
    height, width = image.shape[:2]
    c = torch.as_tensor(crops, dtype=torch.float32, device=img.device)
    cos, sin, half = torch.cos(c[:, 3]), torch.sin(c[:, 3]), c[:, 2] / 2
    theta = torch.stack([
        torch.stack([2 / width * cos * half, -2 / width * sin * half, 2 * (c[:, 0] + 0.5) / width - 1], 1),
        torch.stack([2 / height * sin * half, 2 / height * cos * half, 2 * (c[:, 1] + 0.5) / height - 1], 1),
    ], 1)
    grid = F.affine_grid(theta, [len(c), 3, INPUT_SIZE, INPUT_SIZE], align_corners=False)
    batch = F.grid_sample(img.expand(len(c), -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    points, presence = model(batch)
    uv = points.reshape(len(c), 468, 3)[..., :2].cpu().double().numpy()
    g = uv / INPUT_SIZE * 2 - 1  # normalized crop coordinates
    gx, gy = g[..., 0] * crops[:, None, 2] / 2, g[..., 1] * crops[:, None, 2] / 2
    ca, sa = np.cos(crops[:, 3])[:, None], np.sin(crops[:, 3])[:, None]
    x = crops[:, None, 0] + ca * gx - sa * gy
    y = crops[:, None, 1] + sa * gx + ca * gy
    prob = torch.sigmoid(presence.reshape(-1)).cpu().numpy()
    return np.stack([x, y], -1).astype(np.float32), prob.astype(np.float32)


def eye_contours(points: np.ndarray) -> np.ndarray:
    """(..., 2, 6, 2) the two eyes' six EAR points from (..., 468, 2) mesh points."""
    points = np.asarray(points)
    return np.stack([points[..., list(EYES[0]), :], points[..., list(EYES[1]), :]], axis=-3)


def mouth_centre(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points)
    return points[..., list(MOUTH_CORNERS), :].mean(-2)
