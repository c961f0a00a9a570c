"""Make the example reports committed under docs/visualize/ (real weights, real images).

    python -m bench.visualize.visualize_docs vgg19            # ~300 natural images -> docs/visualize/vgg19/
    python -m bench.visualize.visualize_docs vgg19-deconvnet  # conv1_1..conv3_1, deconvnet projections, 100 images
    python -m bench.visualize.visualize_docs face-encoder     # 1,000 LFW photos -> docs/visualize/face-encoder/

The natural-image set is built in --workdir (not in the repository): scikit-image's
bundled photographs, the four public-domain paintings of ../shared/data/style, ten
seeded random crops of each (25-60% of the shorter side, at least 160 px), and 60 LFW photos. Each
run goes through the `cnnkit visualize` command itself and saves its timings to
bench/results/visualize_docs_<name>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import DATA, LFW, ROOT, save_result

SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "cat", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
                  "hubble_deep_field", "immunohistochemistry", "moon", "retina", "rocket", "stereo_motorcycle",
                  "page", "text", "colorwheel")
PAINTINGS = DATA / "style"


def natural_images(workdir: Path, crops: int = 10, lfw: int = 60, seed: int = 0) -> list[str]:
    import skimage.data
    from PIL import Image

    from cnnkit.images import load_image

    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources: list[tuple[str, np.ndarray]] = []
    for name in SKIMAGE_PHOTOS:
        image = getattr(skimage.data, name)()
        if name == "stereo_motorcycle":
            image = image[0]
        sources.append((f"skimage-{name}", load_image(np.asarray(image))))
    for path in sorted(PAINTINGS.glob("*.jpg")):
        sources.append((f"painting-{path.stem}", load_image(path)))
    out = []
    for name, image in sources:
        h, w = image.shape[:2]
        items = [(f"{name}.png", image)]
        for k in range(crops):
            # At least 160 px: smaller originals than the deepest field (conv5_1: 156 px) are refused.
            side = min(max(int(min(h, w) * rng.uniform(0.25, 0.6)), 160), h, w)
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            items.append((f"{name}-crop{k:02d}.png", image[top: top + side, left: left + side]))
        for file, pixels in items:
            path = workdir / file
            if not path.exists():
                Image.fromarray(pixels).save(path)
            out.append(str(path))
    people = sorted((LFW / "images").glob("*/*.jpg"))
    out += [str(p) for p in people[:: max(1, len(people) // lfw)][:lfw]]
    return out


def lfw_photos(n: int = 1000) -> list[str]:
    people = sorted((LFW / "images").glob("*/*.jpg"))
    return [str(p) for p in people[:: max(1, len(people) // n)][:n]]


RUNS = {
    "vgg19": dict(model="vgg19", layers="conv1_1,conv2_1,conv3_1,conv4_1,conv5_1", units="10", cell="48"),
    "vgg19-deconvnet": dict(model="vgg19", layers="conv1_1,conv2_1,conv3_1", units="4", cell="48",
                            projection="deconvnet", limit="100"),
    # Guided backpropagation: with a single max pool in dlib's network, the deconvnet's projections carry
    # few "switches" and look alike from image to image; guided ones show what in each face drove the unit.
    "face-encoder": dict(model="face-encoder", layers="stem,blocks.2,blocks.6,blocks.9,blocks.12", units="10",
                         cell="48", projection="guided"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", choices=sorted(RUNS))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cnnkit-visualize-natural"))
    parser.add_argument("--out", type=Path, help="default docs/visualize/<run>")
    args = parser.parse_args()
    import torch

    from cnnkit.cli.main import main as cli

    torch.set_num_threads(1)
    spec = RUNS[args.run]
    images = lfw_photos() if spec["model"] == "face-encoder" else natural_images(args.workdir)
    out = args.out or ROOT / "docs" / "visualize" / args.run
    argv = ["visualize", "--model", spec["model"], "--layers", spec["layers"], "--units", spec["units"],
            "--top", "9", "--cell", spec["cell"], "-o", str(out), "--images", *images]
    if "projection" in spec:
        argv += ["--projection", spec["projection"]]
    if "limit" in spec:
        argv += ["--limit", spec["limit"]]
        images = images[: int(spec["limit"])]
    start = time.perf_counter()
    status = cli(argv)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(status)
    # The resumable state is not documentation.
    for file in (out / "state").glob("*"):
        file.unlink()
    (out / "state").rmdir()
    record = {"run": args.run, "images": len(images), "settings": spec, "seconds": round(seconds, 1),
              "output": str(out.relative_to(ROOT))}
    print(save_result(f"visualize_docs_{args.run}", record).read_text())


if __name__ == "__main__":
    main()
