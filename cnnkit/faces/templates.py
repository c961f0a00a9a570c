"""Where an encoder wants the five landmarks inside its chip: one template per family of encoders.

A template gives MTCNN's five landmarks (left eye, right eye, nose, left mouth
corner, right mouth corner, as seen in the image) in units of the chip side
minus one: multiply by (size - 1) to get pixels of a size x size chip, with
(0, 0) the centre of the top-left pixel (dlib's convention).

`DLIB_CHIP_TEMPLATE`: where those five points fall, on average, inside the
150 x 150 chips dlib cuts for its ResNet (`get_face_chip_details(shape, 150,
padding=0.25)` from its own landmarks): the per-point median over 1,000 LFW
images of the View-1 training people (never View 2), made left-right
symmetric, by `python tools/fit_alignment_template.py`
(bench/results/alignment_template.json).
"""

from __future__ import annotations

import numpy as np

DLIB_CHIP_TEMPLATE = np.array(
    [
        [0.3173, 0.3009],
        [0.6827, 0.3009],
        [0.5000, 0.5177],
        [0.3397, 0.6997],
        [0.6603, 0.6997],
    ],
    dtype=np.float64,
)

#: The five-point template of ArcFace-family encoders (insightface's `arcface_dst`, for 112 x 112
#: chips, the one SFace and MobileFaceNet were trained with), in the same units: its pixel
#: coordinates (pixel centres on integers, as OpenCV's warpAffine) divided by 112 - 1.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
) / 111.0

TEMPLATES = {"dlib": DLIB_CHIP_TEMPLATE, "arcface": ARCFACE_TEMPLATE}
