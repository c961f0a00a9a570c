"""`cnnkit visualize --model M --layers L1,L2 --images DIR ... -o OUT/`.

Top patches of hidden units (Zeiler & Fergus).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SettingsError
from .common import DEVICE_HELP, positive_int
from .progress import progress_bar

if TYPE_CHECKING:
    from tqdm import tqdm


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "visualize", help="show the image patches that excite hidden units most (Zeiler & Fergus)",
        description="For chosen units of chosen layers, find the image patches of a dataset that excite each "
                    "unit most, cut by the unit's exact receptive field, and write a grid PNG per layer and an "
                    "index.html that browses them.")
    parser.add_argument("--model", default="vgg19", metavar="vgg19|face-encoder|PATH",
                        help="vgg19 (of `cnnkit style`), face-encoder (dlib ResNet of `cnnkit faces`, on aligned "
                             "face chips), or the folder of a saved face encoder (default vgg19)")
    parser.add_argument("--layers", metavar="L1,L2,...",
                        help="layers to show (default: vgg19 conv1_1,conv2_1,conv3_1,conv4_1,conv5_1; face-encoder "
                             "stem,blocks.2,blocks.6,blocks.9,blocks.12); a wrong name lists the valid ones")
    parser.add_argument("--images", nargs="+", required=True, metavar="DIR|FILE",
                        help="image files, or folders searched recursively")
    parser.add_argument("--units", default="16", metavar="N|all|IDS",
                        help="the first N units of each layer, all of them, or ids like 3,17,40-47 (default 16)")
    parser.add_argument("--top", type=positive_int, default=9, help="patches per unit (default 9)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT/", help="folder for the PNGs, index.html, "
                        "result.json and the resumable state")
    parser.add_argument("--size", type=positive_int, metavar="PX",
                        help="side of the square view of each image: the shorter side is scaled to it and the "
                             "centre cut (default 224; face chips are always the encoder's size)")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="use only the first N images found")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="images per forward pass (default 16)")
    parser.add_argument("--projection", choices=("deconvnet", "guided", "gradient"),
                        help="also show each patch's projection back to pixels (Zeiler & Fergus's deconvnet, "
                             "guided backpropagation or the plain gradient); one extra pass per unit")
    parser.add_argument("--cell", type=positive_int, default=64,
                        help="side of each patch in the grids, px (default 64)")
    parser.add_argument("--resume", action="store_true",
                        help="go on from the state saved in OUT/ by an interrupted run with the same settings")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.set_defaults(run=run_visualize)


def run_visualize(args: argparse.Namespace) -> int:
    from ..images import list_images
    from ..runtime.device import resolve_device
    from ..visualize import TopPatches, load_model
    from ..visualize.report import write_report

    for name in ("top", "batch_size", "cell"):
        if getattr(args, name) < 1:
            raise SettingsError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.limit is not None and args.limit < 1:
        raise SettingsError(f"--limit must be positive, got {args.limit}")
    device = resolve_device(args.device)
    images = list_images(args.images, limit=args.limit)
    model = load_model(args.model, device=device)
    layers = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else list(model.default_layers)
    finder = TopPatches(model, layers, units=args.units, top=args.top, size=args.size, device=device,
                        batch_size=args.batch_size)
    out = Path(args.output)
    with progress_bar(total=len(images), desc="images", unit="img") as bar:
        def advance(done: int, total: int) -> None:
            bar.update(done - bar.n)

        result = finder.find(images, state_dir=out / "state", resume=args.resume, on_progress=advance)

    bars: dict[str, tqdm] = {}

    def stage(name: str, done: int, total: int) -> None:
        if name not in bars:
            bars[name] = progress_bar(total=total, desc=name, unit="step")
        bars[name].update(done - bars[name].n)

    try:
        index = write_report(finder, result, out, cell=args.cell, projection=args.projection, on_progress=stage)
    finally:
        for bar in bars.values():
            bar.close()
    if result.skipped:
        print(f"cnnkit: skipped {len(result.skipped)} of {len(images)} images (listed in {index})", file=sys.stderr)
    print(index)
    return 0
