"""Throughput and peak memory of `TopPatches.find` on CPU: face encoder, 5 layers x 64 units x top 9, LFW.

    OMP_NUM_THREADS=1 python -m bench.visualize.visualize_throughput          # 1,000 and 250 LFW photos
    python -m bench.visualize.visualize_throughput --images 1000 250 --threads 1

Each size runs in a fresh process, so its peak resident memory is its own: the
top-k state is O(units x k), so peak memory should not grow with the number of
images. Images/s counts every stage (decoding, MTCNN detection and alignment
to 150x150 chips, the encoder's forward pass up to the deepest layer, the
top-k merge); the split is in "stages_s". Saved to
bench/results/visualize_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.common import LFW, peak_rss_mib, save_result

LAYERS = ["stem", "blocks.2", "blocks.6", "blocks.9", "blocks.12"]


def lfw_photos(n: int) -> list[str]:
    people = sorted((LFW / "images").glob("*/*.jpg"))
    step = max(1, len(people) // 1000)  # the same spread-out 1,000 photos as the docs demo
    return [str(p) for p in people[::step][:n]]


def one(n: int, threads: int, batch_size: int) -> dict:
    import torch

    from cnnkit.visualize import TopPatches

    torch.set_num_threads(threads)
    images = lfw_photos(n)
    before = peak_rss_mib()
    start = time.perf_counter()
    finder = TopPatches("face-encoder", LAYERS, units=64, top=9, batch_size=batch_size)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    result = finder.find(images)
    seconds = time.perf_counter() - start
    assert all(len(p) == 9 for lp in result.layers.values() for p in lp.units.values())
    return {"images": len(images), "faces_used": len(images) - len(result.skipped),
            "layers": LAYERS, "units_per_layer": 64, "top": 9, "batch_size": batch_size,
            "setup_s": round(setup, 2), "find_s": round(seconds, 2),
            "images_per_s": round(len(images) / seconds, 2),
            "stages_s": {k: round(v, 2) for k, v in result.timings.items()},
            "forward_and_topk_images_per_s": round(
                (len(images) - len(result.skipped)) / (result.timings["forward"] + result.timings["topk"]), 2),
            "peak_rss_mib_after_import": round(before, 1), "peak_rss_mib": round(peak_rss_mib(), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 250])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(one(args.child, args.threads, args.batch_size)))
        return
    runs = []
    for n in args.images:
        done = subprocess.run([sys.executable, "-m", __spec__.name, "--child", str(n), "--threads", str(args.threads),
                               "--batch-size", str(args.batch_size)], capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    record = {"benchmark": "visualize_throughput", "device": "cpu", "threads": args.threads, "runs": runs}
    print(save_result("visualize_throughput", record).read_text())


if __name__ == "__main__":
    main()
