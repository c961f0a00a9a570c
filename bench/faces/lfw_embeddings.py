"""Every LFW photo through cnnkit's face path once, for every encoder: detection shared, embeddings cached.

For each of LFW's 13,233 photos: MTCNN on the photo, the face nearest the centre
(LFW's convention), or where none is found the centre box refined by O-Net
(as `cnnkit faces evaluate` does); then each encoder's chip and embedding
(flip-averaged), through `cnnkit.faces.recognizer.Recognizer` — the code every
cnnkit command uses. The landmarks and each encoder's embeddings are kept in
--cache (npz files keyed by the encoder's version), so the LFW benchmarks and
the View-1 tuning tools read them instead of encoding the photos again.

    python -m bench.faces.lfw_embeddings --encoders dlib-resnet-v1 sface-2021dec w600k-mbf

Writes bench/results/lfw_embeddings.json (time per stage, images/s, photos without a face).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import LFW, save_result
from cnnkit.faces.models import encoder_spec
from cnnkit.faces.recognizer import Recognizer, centre_face, select_faces
from cnnkit.faces.types import Face
from cnnkit.images import load_image

CACHE = Path(os.environ.get("CNNKIT_BENCH_CACHE", "/tmp/cnnkit-bench"))
BATCH = 32
DETECTED, FALLBACK = 1, 2


def lfw_photos(lfw: Path = LFW) -> list[str]:
    """Every photo, as "Name/Name_0001.jpg", sorted."""
    root = lfw / "images"
    return sorted(f"{d.name}/{p.name}" for d in root.iterdir() if d.is_dir() for p in d.glob("*.jpg"))


def _batches(photos: list[str], lfw: Path):
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(photos), BATCH):
            names = photos[start:start + BATCH]
            yield names, list(pool.map(lambda rel: load_image(lfw / "images" / rel), names))


def landmarks(photos: list[str], *, lfw: Path = LFW, cache: Path = CACHE, device: str = "cpu") -> dict:
    """{"landmarks": (N, 5, 2), "boxes": (N, 4), "status": (N,) DETECTED or FALLBACK, "seconds"} for `photos`."""
    file = cache / f"lfw-landmarks-{len(photos)}.npz"
    if file.exists():
        data = np.load(file)
        return {k: data[k] for k in data.files}
    recognizer = Recognizer(device=device)
    marks, boxes, status = [], [], []
    started = time.perf_counter()
    for _, images in _batches(photos, lfw):
        for image, faces in zip(images, recognizer.detect(images)):
            chosen = select_faces(faces, (image.shape[1], image.shape[0]), "center")
            state = DETECTED
            if not chosen:
                chosen, state = centre_face(image, device=device), FALLBACK
            marks.append(chosen[0].landmarks)
            boxes.append(chosen[0].box)
            status.append(state)
    out = {"landmarks": np.stack(marks).astype(np.float32), "boxes": np.array(boxes, np.float32),
           "status": np.array(status, np.int8), "seconds": np.array(time.perf_counter() - started)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(file, **out)
    return out


def embeddings(encoder: str, photos: list[str], found: dict, *, flip: bool = True, lfw: Path = LFW,
               cache: Path = CACHE, device: str = "cpu") -> tuple[np.ndarray, float]:
    """(N, D) embeddings of the photos' chosen faces with `encoder`, and the seconds it took (0 when cached)."""
    spec = encoder_spec(encoder)
    file = cache / f"lfw-{spec.ref.replace('/', '_')}-{spec.version}-{'flip' if flip else 'noflip'}-{len(photos)}.npy"
    if file.exists():
        return np.load(file), 0.0
    recognizer = Recognizer(encoder, device=device, flip=flip)
    out = np.empty((len(photos), spec.dim), np.float32)
    started = time.perf_counter()
    done = 0
    for names, images in _batches(photos, lfw):
        faces = [[Face(box=tuple(found["boxes"][done + i]), score=1.0, landmarks=found["landmarks"][done + i])]
                 for i in range(len(names))]
        for i, encoded in enumerate(recognizer.embed(images, faces)):
            out[done + i] = encoded[0].embedding
        done += len(names)
    seconds = time.perf_counter() - started
    cache.mkdir(parents=True, exist_ok=True)
    np.save(file, out)
    return out, seconds


def face_recognition_embeddings(photos: list[str], *, lfw: Path = LFW, cache: Path = CACHE,
                                processes: int | None = None) -> tuple[dict[str, np.ndarray], float]:
    """face_recognition 1.3.0's encodings of the photos (as bench.faces.lfw_verification runs it), cached;
    photos where it finds no face are left out. Returns (encodings, seconds; 0 when cached)."""
    from bench.faces.lfw_verification import run_face_recognition

    file = cache / f"lfw-face_recognition-{len(photos)}.npz"
    if file.exists():
        data = np.load(file, allow_pickle=False)
        return {str(k): v for k, v in zip(data["photos"], data["vectors"])}, 0.0
    found, seconds = run_face_recognition([str(lfw / "images" / p) for p in photos], processes or os.cpu_count() or 1)
    out = {p: found[str(lfw / "images" / p)] for p in photos if str(lfw / "images" / p) in found}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(file, photos=np.array(list(out)), vectors=np.stack(list(out.values())))
    return out, seconds


def lfw_set(encoders: list[str], *, flip: bool = True, device: str = "cpu") -> tuple[list[str], dict, dict]:
    """(photos, landmarks, {encoder: (N, D) embeddings}) of all of LFW."""
    photos = lfw_photos()
    found = landmarks(photos, device=device)
    return photos, found, {e: embeddings(e, photos, found, flip=flip, device=device)[0] for e in encoders}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoders", nargs="+", default=["dlib-resnet-v1", "sface-2021dec", "w600k-mbf"])
    ap.add_argument("--no-flip", dest="flip", action="store_false")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", help="result file (default bench/results/lfw_embeddings.json)")
    args = ap.parse_args()
    photos = lfw_photos()
    found = landmarks(photos, device=args.device)
    result: dict = {"photos": len(photos), "detection_s": round(float(found["seconds"]), 1),
                    "fallback_centre_box": int((found["status"] == FALLBACK).sum()), "encoders": {}}
    for encoder in args.encoders:
        _, seconds = embeddings(encoder, photos, found, flip=args.flip, device=args.device)
        if seconds:
            result["encoders"][encoder] = {"seconds": round(seconds, 1), "images_per_second":
                                           round(len(photos) / seconds, 1), "flip": args.flip}
        print(encoder, result["encoders"].get(encoder, "cached"))
    if result["encoders"]:
        save_result("lfw_embeddings", result, out=args.out)


if __name__ == "__main__":
    main()
