"""Speed of every face encoder: faces/s on aligned chips, and photos/s end to end against face_recognition.

* Chips: each encoder (and fusion) embeds the same LFW faces, cut for it by the
  recognizer, at `--batch` (default 32), flip-averaged as galleries store them
  and without flip; rounds interleave the encoders so all see the same load;
  faces/s from each one's median round. The dlib port (`dlib-resnet-v1`, cnnkit's
  PyTorch module of dlib's ResNet) is the reference the ratios are taken to.
* End to end: `Recognizer.process` on `--photos` LFW photos (decode, MTCNN,
  chips, encoder, in batches of 32) against face_recognition 1.3.0's
  `face_locations` + `face_encodings` on the same photos (a pool of as many
  processes as cores, as its CLI does), same run.

    python -m bench.faces.encoders_speed [--device cpu] [--batch 32] [--photos 256] [--skip-peer]

Writes bench/results/encoders_speed_<device>.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np
import torch

from bench.common import LFW, save_result
from bench.faces.lfw_embeddings import lfw_photos
from bench.faces.lfw_verification import _fr_encode
from cnnkit.faces.catalog import ENCODERS, FUSIONS
from cnnkit.faces.recognizer import Recognizer
from cnnkit.images import load_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--faces", type=int, default=64, help="faces per round (default 64)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--photos", type=int, default=256, help="photos for the end-to-end figure (default 256)")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--out", help="result file (default bench/results/encoders_speed_<device>.json)")
    args = ap.parse_args()
    names = [*ENCODERS, *FUSIONS]
    photos = lfw_photos()[:: max(1, len(lfw_photos()) // args.photos)][: args.photos]
    images = [load_image(LFW / "images" / p) for p in photos]
    detector = Recognizer(device=args.device)
    faces = []
    for image, found in zip(images, detector.detect(images[: args.faces])):
        faces.append((image, found[:1]))
    faces = [(im, f) for im, f in faces if f][: args.faces]
    recognizers = {(n, flip): Recognizer(n, device=args.device, flip=flip, batch_size=args.batch)
                   for n in names for flip in (True, False)}
    for r in recognizers.values():
        r.load()
        r.embed([im for im, _ in faces[:2]], [f for _, f in faces[:2]])  # warm up
    times: dict[tuple[str, bool], list[float]] = {k: [] for k in recognizers}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for key, r in recognizers.items():
                t0 = time.perf_counter()
                r.embed([im for im, _ in faces], [f for _, f in faces])
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[key].append(time.perf_counter() - t0)
    chips: dict = {}
    for (name, flip), t in times.items():
        chips.setdefault(name, {})["flip" if flip else "no_flip"] = round(len(faces) / float(np.median(t)), 1)
    for name in names:
        chips[name]["flip_vs_dlib_port"] = round(chips[name]["flip"] / chips["dlib-resnet-v1"]["flip"], 3)
    result: dict = {"device": args.device, "batch": args.batch, "faces_per_round": len(faces),
                    "chips_faces_per_second": chips, "end_to_end_photos_per_second": {}}
    for name in names:
        r = recognizers[(name, True)]
        t0 = time.perf_counter()
        for start in range(0, len(photos), 32):
            r.process([load_image(LFW / "images" / p) for p in photos[start:start + 32]], select="center")
        result["end_to_end_photos_per_second"][name] = round(len(photos) / (time.perf_counter() - t0), 1)
    if not args.skip_peer:
        t0 = time.perf_counter()
        with multiprocessing.Pool(os.cpu_count()) as pool:
            pool.map(_fr_encode, [str(LFW / "images" / p) for p in photos], chunksize=8)
        peer = len(photos) / (time.perf_counter() - t0)
        result["end_to_end_photos_per_second"]["face_recognition 1.3.0"] = round(peer, 1)
        result["end_to_end_vs_face_recognition"] = {
            n: round(result["end_to_end_photos_per_second"][n] / peer, 2) for n in names}
    for name in names:
        print(f"{name:32} chips {chips[name]['flip']:7.1f} faces/s (flip), {chips[name]['no_flip']:7.1f} (no flip); "
              f"end to end {result['end_to_end_photos_per_second'][name]:6.1f} photos/s")
    if not args.skip_peer:
        print(f"{'face_recognition 1.3.0':32} end to end {peer:6.1f} photos/s")
    save_result(f"encoders_speed_{args.device.split(':')[0]}", result, out=args.out)


if __name__ == "__main__":
    main()
