"""Which way the head is turned, from MTCNN's five points: where the nose sits between the eyes.

`turn_ratio` is the nose tip's position along the line from the eye on the
image's left (0) to the other eye (1), about 0.5 for a frontal face and moving
towards 0 or 1 as the head turns (yaw). It is measured along the eye line, so
tilting the head sideways (roll) does not change it. A flat photo moved, scaled,
rotated in its plane, or turned about a vertical axis keeps it (an affine map
keeps ratios along a line), which is what makes a head turn something a photo
cannot do.
"""

from __future__ import annotations

import numpy as np


def turn_ratio(landmarks5: np.ndarray) -> np.ndarray:
    """(...) ratio for (..., 5, 2) landmarks (left eye, right eye, nose, mouth left, mouth right)."""
    p = np.asarray(landmarks5, dtype=np.float64)
    left, right, nose = p[..., 0, :], p[..., 1, :], p[..., 2, :]
    axis = right - left
    length2 = np.maximum((axis * axis).sum(-1), 1e-9)
    return ((nose - left) * axis).sum(-1) / length2
