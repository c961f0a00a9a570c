"""Eyelid contours from MediaPipe's iris model: a dedicated 64x64 eye network, sharper on the lids than the mesh.

The weights are MediaPipe's `iris_landmark.tflite` (Apache-2.0; PyPI wheel
`mediapipe==0.10.14`, `cnnkit weights fetch mediapipe-iris`), run by
tflite_graph.TFLiteGraph. Each eye is cut as a square of EYE_CROP_SCALE times
its corner-to-corner distance, turned so the corners are level; the eye on the
image's right is mirrored, as MediaPipe does, since the model was trained on
one side. The first 16 of its 71 contour points are the eye's outline: 0-8 the
lower lid from one corner to the other, 9-15 the upper lid.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from ...weights import load_model
from .tflite_graph import TFLiteGraph

WEIGHTS = "mediapipe-iris"
INPUT_SIZE = 64
EYE_CROP_SCALE = 2.3
#: Mesh corner points of each eye (outer, inner): the eye on the image's left, then the other.
MESH_CORNERS = ((33, 133), (263, 362))
#: The six EAR points p1..p6 among the model's 71: corner, upper lid x2, corner, lower lid x2.
EAR_POINTS = (0, 11, 13, 8, 5, 3)


def load_iris(device: str | torch.device = "cpu") -> TFLiteGraph:
    return _load(str(device))


@functools.lru_cache(maxsize=4)
def _load(device: str) -> TFLiteGraph:
    return load_model(WEIGHTS, device)


@torch.inference_mode()
def eyelids(image: np.ndarray, mesh_points: np.ndarray, *, device: str | torch.device = "cpu",
            scale: float = EYE_CROP_SCALE, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(N, 2, 6, 2) the EAR contour points of both eyes of each face, from (N, 468, 2) mesh points."""
    mesh_points = np.asarray(mesh_points, dtype=np.float64).reshape(-1, 468, 2)
    if len(mesh_points) == 0:
        return np.zeros((0, 2, 6, 2), np.float32)
    crops = []  # centre x, centre y, side, angle, mirrored
    for points in mesh_points:
        for side, (outer, inner) in enumerate(MESH_CORNERS):
            a, b = points[outer], points[inner]
            left, right = (a, b) if a[0] <= b[0] else (b, a)
            angle = math.atan2(right[1] - left[1], right[0] - left[0])
            centre = (a + b) / 2
            crops.append([centre[0], centre[1], scale * float(np.linalg.norm(b - a)), angle, side])
    c = np.asarray(crops)
    img = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float() / 255.0
    lo, hi = value_range
    img = img * (hi - lo) + lo
    height, width = image.shape[:2]
    t = torch.as_tensor(c, dtype=torch.float32, device=img.device)
    cos, sin, half = torch.cos(t[:, 3]), torch.sin(t[:, 3]), t[:, 2] / 2
    mirror = torch.where(t[:, 4] > 0, -1.0, 1.0)  # mirror the crop's x for the eye on the right
    theta = torch.stack([
        torch.stack([2 / width * cos * half * mirror, -2 / width * sin * half, 2 * (t[:, 0] + 0.5) / width - 1], 1),
        torch.stack([2 / height * sin * half * mirror, 2 / height * cos * half, 2 * (t[:, 1] + 0.5) / height - 1], 1),
    ], 1)
    grid = F.affine_grid(theta, [len(c), 3, INPUT_SIZE, INPUT_SIZE], align_corners=False)
    batch = F.grid_sample(img.expand(len(c), -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                          align_corners=False)
    contours, _ = load_iris(device)(batch)
    uv = contours.reshape(len(c), 71, 3)[:, list(EAR_POINTS), :2].cpu().double().numpy()
    g = uv / INPUT_SIZE * 2 - 1
    gx = g[..., 0] * c[:, None, 2] / 2 * np.where(c[:, 4] > 0, -1.0, 1.0)[:, None]
    gy = g[..., 1] * c[:, None, 2] / 2
    ca, sa = np.cos(c[:, 3])[:, None], np.sin(c[:, 3])[:, None]
    x = c[:, None, 0] + ca * gx - sa * gy
    y = c[:, None, 1] + sa * gx + ca * gy
    return np.stack([x, y], -1).reshape(-1, 2, 6, 2).astype(np.float32)


def eyes_and_mouth(image: np.ndarray, faces, *, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """What the blink check needs for each detected face: (N, 2, 6, 2) eyelid points and (N, 2) mouth centres.

    The face mesh places the eyes and the mouth; the iris model reads the lids.
    """
    from .facemesh import face_mesh, mouth_centre

    points, _ = face_mesh(image, faces, device=device)
    return eyelids(image, points, device=device), mouth_centre(points)
