"""`cnnkit demo`: face verification on real photos, from a fresh install.

Fetches the weights it needs (once), picks a few people with two photos each
from LFW, encodes every photo, and shows who matches whom: a table on stdout
and a picture with the detected faces and the distance matrix.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CnnkitError
from .common import DEVICE_HELP, positive_int

if TYPE_CHECKING:
    import numpy as np

LFW_CANDIDATES = ("../shared/data/lfw", "shared/data/lfw", "../../shared/data/lfw")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="face verification demo on real LFW photos")
    parser.add_argument("--lfw", help="LFW folder (with images/); default: $CNNKIT_LFW or ../shared/data/lfw")
    parser.add_argument("--people", type=positive_int, default=5, help="how many people (default 5)")
    parser.add_argument("-o", "--out", default="cnnkit-demo.png", help="picture to write")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.set_defaults(run=run_demo)


def find_lfw(given: str | None) -> Path:
    candidates = [given] if given else [os.environ.get("CNNKIT_LFW"), *LFW_CANDIDATES]
    for c in candidates:
        if c and (Path(c) / "images").is_dir():
            return Path(c)
    raise CnnkitError("LFW not found; pass --lfw DIR (a folder holding images/NAME/NAME_0001.jpg) "
                      "or set CNNKIT_LFW")


def pick_people(images_dir: Path, count: int) -> list[str]:
    """`count` people with at least two photos, spread evenly over the alphabet (deterministic)."""
    people = sorted(p.name for p in images_dir.iterdir()
                    if p.is_dir() and (p / f"{p.name}_0002.jpg").exists())
    if len(people) < count:
        raise CnnkitError(f"{images_dir}: only {len(people)} people have two photos")
    step = len(people) / count
    return [people[int(step * i + step / 2)] for i in range(count)]


def ensure_weights(names: list[str]) -> None:
    from ..weights import fetch, is_cached

    for name in names:
        if not is_cached(name):
            print(f"fetching weights {name} (once)...", file=sys.stderr)
            fetch(name, report=lambda m: print("  " + m, file=sys.stderr))


def run_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from ..faces.models import DEFAULT_DETECTOR, DEFAULT_ENCODER
    from ..faces.pipeline import embed_images
    from ..faces.thresholds import default_threshold
    from ..faces.types import embedding_of

    if args.people < 2:
        raise CnnkitError("--people must be at least 2")
    lfw = find_lfw(args.lfw)
    ensure_weights([DEFAULT_DETECTOR, DEFAULT_ENCODER])
    people = pick_people(lfw / "images", args.people)
    paths = [lfw / "images" / name / f"{name}_{k:04d}.jpg" for name in people for k in (1, 2)]
    results = list(embed_images(paths, select="center", device=args.device))
    missing = [str(r.source) for r in results if r.error or not r.faces]
    if missing:
        raise CnnkitError(f"no face found in {', '.join(missing)}")
    emb = np.stack([embedding_of(r.faces[0]) for r in results])
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    threshold = default_threshold()
    labels = [f"{name.split('_')[-1][:10]}#{k}" for name in people for k in (1, 2)]

    print(f"{len(paths)} photos of {len(people)} people from {lfw}; threshold {threshold:.2f} "
          "(distance <= threshold means same person)\n")
    print(" " * 13 + " ".join(f"{lab:>12}" for lab in labels))
    for i, lab in enumerate(labels):
        print(f"{lab:>12} " + " ".join(f"{dist[i, j]:12.3f}" for j in range(len(labels))))
    correct = total = 0
    for i in range(len(paths)):
        for j in range(i + 1, len(paths)):
            same_person = i // 2 == j // 2
            correct += (dist[i, j] <= threshold) == same_person
            total += 1
    print(f"\n{correct} of {total} pairs decided correctly")
    draw_demo(results, labels, dist, threshold, Path(args.out))
    print(f"picture: {args.out}")
    return 0


def draw_demo(results, labels: list[str], dist: np.ndarray, threshold: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..images import load_image

    n = len(results)
    fig = plt.figure(figsize=(2.0 * n / 2 + 5, 5.2), dpi=100)
    grid = fig.add_gridspec(2, n // 2 + 3)
    for i, r in enumerate(results):
        ax = fig.add_subplot(grid[i % 2, i // 2])
        ax.imshow(load_image(r.source))
        face = r.faces[0]
        x1, y1, x2, y2 = face.box
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="lime", lw=1.5))
        ax.scatter(face.landmarks[:, 0], face.landmarks[:, 1], s=6, c="red")
        ax.set_title(labels[i], fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[:, n // 2:])
    im = ax.imshow(dist, cmap="viridis_r", vmin=0, vmax=1.2)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{dist[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if dist[i, j] <= threshold else "black")
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_title(f"distance (same person if <= {threshold:.2f})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
