"""Benchmark the MTCNN detector on LFW: detection rate, CPU speed, peak memory.

Every LFW image is 250 x 250 with the person of interest centred, so a detector should
find a face whose box centre lies near (125, 125). This script reports, over a
deterministic subset of the images (default 1000, ``--all`` for all 13,233):

* the fraction of images with at least one face, and with a face whose box centre is
  within 30 px of the image centre;
* detection speed in images/s for several batch sizes (and torch thread counts), on
  already decoded images (JPEG decoding is timed separately and not included);
* peak resident memory of the process.

Results are printed and written as JSON (default ``bench/results/detector_lfw.json``)
together with the machine description and the command that reproduces them.

Example::

    python -m bench.faces.detector_lfw                      # 1000 images, batch sizes 1 16 32
    python -m bench.faces.detector_lfw --threads 1 2 --out /tmp/lfw.json
    python -m bench.faces.detector_lfw --all --speed-images 512

The machine's load average is recorded before and after: other processes on the same
cores make PyTorch's multi-threaded ops wait for each other (OpenMP threads spin at
every barrier) and can slow the detector by an order of magnitude, so compare speeds
only from runs on an otherwise idle machine; on a shared machine ``OMP_WAIT_POLICY=PASSIVE``
or ``--threads 1`` avoids most of that loss.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import LFW, RESULTS, peak_rss_mib, save_result
from cnnkit.faces.mtcnn import MTCNN
from cnnkit.faces.settings import MIN_FACE_SIZE
from cnnkit.images import load_image

DEFAULT_LFW = LFW / "images"
CENTRE_RADIUS = 30.0


def select_images(lfw_dir: Path, n: int | None, seed: int) -> list[Path]:
    """All LFW JPEGs sorted by path, or ``n`` of them drawn with ``seed`` (kept in path order)."""
    paths = sorted(lfw_dir.glob("*/*.jpg"))
    if not paths:
        raise SystemExit(f"no LFW images under {lfw_dir}")
    if n is None or n >= len(paths):
        return paths
    pick = np.sort(np.random.default_rng(seed).choice(len(paths), size=n, replace=False))
    return [paths[i] for i in pick]


def detection_rate(model: MTCNN, paths: list[Path], batch_size: int, **kwargs: object) -> dict[str, object]:
    """Decode and detect in batches; returns the rates and the decode / detect times."""
    any_face = centred = 0
    faces = 0
    decode_s = detect_s = 0.0
    misses: list[str] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        t0 = time.perf_counter()
        images = [load_image(p) for p in chunk]
        t1 = time.perf_counter()
        dets = model.detect(images, **kwargs)  # type: ignore[arg-type]
        t2 = time.perf_counter()
        decode_s += t1 - t0
        detect_s += t2 - t1
        for path, img, det in zip(chunk, images, dets):
            faces += len(det)
            any_face += len(det) > 0
            h, w = img.shape[:2]
            centres = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2
            dist = np.hypot(centres[:, 0] - w / 2, centres[:, 1] - h / 2)
            if (dist <= CENTRE_RADIUS).any():
                centred += 1
            elif len(misses) < 50:
                misses.append(str(path.relative_to(path.parents[1])))
    n = len(paths)
    return {
        "images": n,
        "any_face_rate": any_face / n,
        "centre_face_rate": centred / n,
        "faces_per_image": faces / n,
        "centre_misses_first_50": misses,
        "decode_images_per_s": n / decode_s,
        "detect_images_per_s_in_rate_pass": n / detect_s,
    }


def speed(model: MTCNN, images: list[np.ndarray], batch_size: int, repeats: int, **kwargs: object) -> dict[str, float]:
    """Images/s of ``detect`` on decoded images (best of ``repeats`` passes, after a warm-up)."""
    model.detect(images[:batch_size], **kwargs)  # type: ignore[arg-type]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for start in range(0, len(images), batch_size):
            model.detect(images[start : start + batch_size], **kwargs)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - t0)
    return {"batch_size": batch_size, "images": len(images), "seconds": best, "images_per_s": len(images) / best}


def main() -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="images in the subset (default 1000)")
    parser.add_argument("--all", action="store_true", help="use all LFW images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 32])
    parser.add_argument("--speed-images", type=int, default=256, help="images per speed pass (first of the subset)")
    parser.add_argument("--repeats", type=int, default=2, help="speed passes per batch size; the best counts")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=None, help="torch thread counts to time (default: torch's choice)"
    )
    parser.add_argument("--min-face-size", type=float, default=MIN_FACE_SIZE)
    parser.add_argument("--lfw-dir", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--out", type=Path, default=RESULTS / "detector_lfw.json")
    args = parser.parse_args()

    default_threads = torch.get_num_threads()
    thread_counts = args.threads or [default_threads]
    from cnnkit.faces.models import load_detector

    model = load_detector("cpu")  # the weights store's copy (`cnnkit weights fetch mtcnn`)
    paths = select_images(args.lfw_dir, None if args.all else args.n, args.seed)
    kwargs = {"min_face_size": args.min_face_size}

    torch.set_num_threads(max(thread_counts))
    rate = detection_rate(model, paths, max(args.batch_sizes), **kwargs)
    print(
        f"{rate['images']} images: any face {rate['any_face_rate']:.4f}, "
        f"face centre within {CENTRE_RADIUS:.0f} px of image centre {rate['centre_face_rate']:.4f}, "
        f"{rate['faces_per_image']:.3f} faces/image; JPEG decode {rate['decode_images_per_s']:.0f} images/s",
        flush=True,
    )
    images = [load_image(p) for p in paths[: args.speed_images]]
    speeds = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for bs in args.batch_sizes:
            s = {"threads": threads, **speed(model, images, bs, args.repeats, **kwargs)}
            speeds.append(s)
            print(
                f"{threads} thread(s), batch {bs:3d}: {s['images_per_s']:.1f} images/s "
                f"(decoded images, {s['images']} images)",
                flush=True,
            )
    print(f"peak RSS {peak_rss_mib():.0f} MiB", flush=True)

    result: dict[str, object] = {
        "benchmark": "MTCNN face detection on LFW",
        "settings": {
            "subset": "all"
            if args.all
            else f"{len(paths)} images drawn with numpy default_rng({args.seed}) from the sorted paths",
            "min_face_size": args.min_face_size,
            "thresholds": [0.6, 0.7, 0.7],
            "scale_factor": 0.709,
            "centre_radius_px": CENTRE_RADIUS,
            "speed_excludes_jpeg_decoding": True,
            "rate_pass_batch_size": max(args.batch_sizes),
            "rate_pass_threads": max(thread_counts),
        },
        "detection": rate,
        "speed": speeds,
    }
    print(f"wrote {save_result('detector_lfw', result, out=args.out)}")
    return result


if __name__ == "__main__":
    main()
