"""What one identification costs for a large photo: time and peak memory for 1, 12 and 40 MP.

    python -m bench.faces.identify_large --label after          # adds/replaces the "after" run
    python -m bench.faces.identify_large --label before --repeat 3

The photos are made from LFW: a portrait (George_W_Bush_0001 enlarged so the
photo's height is twice the LFW crop's, the face about a fifth of the height,
on a smooth background) as JPEG at 1, 12 and 40 MP and as PNG at 40 MP (the
issue's 6300x6300 PNG: a small file, a large image); and a "crowd" at 12 MP:
twelve LFW photos at their own size (faces of about 100 px) on the same
background. A gallery holds George W Bush (from another photo of his), so each
answer is checked: the portrait's face must be named.

Each photo is identified in a fresh subprocess with one PyTorch thread (what
the service runs with): models loaded and warmed on a small photo first, then
the photo decoded as an upload (`decode_upload`) and identified
(`Gallery.identify`), `--repeat` times. Reported per photo: decode and
identify time (median), faces found, the name given, and the subprocess's peak
RSS before the photo (models loaded) and after it: the growth is what the photo
cost. JSON in bench/results/identify_large.json, one entry per `--label`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import LFW, LOAD_BEFORE, RESULTS, save_result

SIZES = {"1mp": (1155, 866), "12mp": (4000, 3000), "40mp": (7300, 5470)}
PERSON = "George_W_Bush"

CHILD = r"""
import json, resource, statistics, sys, time
import torch
torch.set_num_threads(1)
from cnnkit.faces.gallery import Gallery
from cnnkit.service.uploads import decode_upload

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

gallery_path, enroll_photo, photo, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
gallery = Gallery(gallery_path, create=True)
if not len(gallery):
    gallery.enroll("George W Bush", [enroll_photo])
gallery.identify([enroll_photo])  # warm
before = peak_mib()
data = open(photo, "rb").read()
decode_s, identify_s = [], []
for _ in range(repeat):
    t0 = time.perf_counter()
    upload = decode_upload(data, photo, max_pixels=40_000_000)
    t1 = time.perf_counter()
    (answer,) = gallery.identify([upload.image])
    t2 = time.perf_counter()
    decode_s.append(t1 - t0)
    identify_s.append(t2 - t1)
    del upload
print(json.dumps({"bytes": len(data), "decode_s": round(statistics.median(decode_s), 3),
                  "identify_s": round(statistics.median(identify_s), 3),
                  "identify_s_all": [round(t, 3) for t in identify_s],
                  "faces": len(answer.faces), "names": sorted(f.name or "unknown" for f in answer.faces),
                  "boxes": [[round(v) for v in f.face.box] for f in answer.faces],
                  "peak_rss_before_mib": round(before, 1), "peak_rss_after_mib": round(peak_mib(), 1),
                  "rss_growth_mib": round(peak_mib() - before, 1)}))
"""


def background(width: int, height: int) -> Image.Image:
    """A smooth gradient (compresses like a real out-of-focus background, unlike noise)."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    rgb = np.stack([90 + 60 * x + 0 * y, 110 + 40 * y + 0 * x, 130 + 30 * (x * y)], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def portrait(width: int, height: int) -> Image.Image:
    canvas = background(width, height)
    face = Image.open(LFW / "images" / PERSON / f"{PERSON}_0001.jpg").convert("RGB")
    side = height // 2
    face = face.resize((side, side), Image.BICUBIC)
    canvas.paste(face, ((width - side) // 2, (height - side) // 2))
    return canvas


def crowd(width: int, height: int) -> Image.Image:
    canvas = background(width, height)
    people = sorted(p for p in (LFW / "images").iterdir() if (p / f"{p.name}_0001.jpg").exists())[:12]
    for k, folder in enumerate(people):
        photo = Image.open(folder / f"{folder.name}_0001.jpg").convert("RGB")
        col, row = k % 4, k // 4
        canvas.paste(photo, (300 + col * (width - 600) // 4, 300 + row * (height - 600) // 3))
    return canvas


def photos(folder: Path) -> dict[str, Path]:
    out = {}
    for label, (w, h) in SIZES.items():
        out[f"portrait-{label}-jpeg"] = folder / f"portrait-{label}.jpg"
        portrait(w, h).save(out[f"portrait-{label}-jpeg"], quality=90)
    out["portrait-6300x6300-png"] = folder / "portrait-6300.png"
    portrait(6300, 6300).save(out["portrait-6300x6300-png"], optimize=False, compress_level=9)
    out["crowd-12mp-jpeg"] = folder / "crowd-12mp.jpg"
    crowd(*SIZES["12mp"]).save(out["crowd-12mp-jpeg"], quality=90)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="the name of this run in the results (before, after, ...)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "identify_large.json"))
    args = parser.parse_args()
    enroll = LFW / "images" / PERSON / f"{PERSON}_0002.jpg"
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        made = photos(folder)
        gallery = folder / "gallery.db"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for name, path in made.items():
            done = subprocess.run([sys.executable, "-c", CHILD, str(gallery), str(enroll), str(path),
                                   str(args.repeat)], capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise SystemExit(f"{name}: {done.stderr[-2000:]}")
            with Image.open(path) as im:
                size = im.size
            results[name] = {"width": size[0], "height": size[1], "megapixels": round(size[0] * size[1] / 1e6, 1),
                             **json.loads(done.stdout.strip().splitlines()[-1])}
            print(name, json.dumps(results[name]), flush=True)
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    runs = previous.get("runs", {})
    runs[args.label] = {"photos": results, "load_average_before": round(LOAD_BEFORE, 2),
                        "load_average_after": round(os.getloadavg()[0], 2)}
    save_result("identify_large", {"what": __doc__.splitlines()[0], "runs": runs}, out=out)


if __name__ == "__main__":
    main()
