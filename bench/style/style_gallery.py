"""The pictures in docs/style.md: scikit-image's photos painted in the style of the public-domain paintings.

Each picture is one whole `cnnkit style` command (default costs and layers);
the PNGs (and one cost plot) are copied to docs/style/, and the wall time, CPU
time and final costs of every command are saved to bench/results/style_gallery.json.

    python -m bench.style.style_gallery [--size 256] [--jobs 3] \
        [--options "--multiscale 2 --coarse-steps 80 --steps 50"]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import DATA, RESULTS, ROOT, save_result
from bench.style.runs import cnnkit_command, run_measured, save_photo

STYLE_DIR = DATA / "style"
DOCS = ROOT / "docs" / "style"

#: (content photo from skimage.data, painting, extra options, output name)
PICTURES = (
    ("astronaut", ["starry_night"], [], "astronaut-starry_night"),
    ("chelsea", ["great_wave"], [], "chelsea-great_wave"),
    ("coffee", ["the_scream"], [], "coffee-the_scream"),
    ("rocket", ["shipwreck"], [], "rocket-shipwreck"),
    ("astronaut", ["starry_night"], ["--preserve-color"], "astronaut-starry_night-preserve_color"),
    ("chelsea", ["starry_night", "great_wave"], ["--style-blend", "0.5", "0.5"], "chelsea-starry_night+great_wave"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--options", default="--multiscale 2 --coarse-steps 80 --steps 50",
                        help="cnnkit style options shared by every picture (quoted)")
    parser.add_argument("--only", nargs="+", help="output names to (re)make")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="commands run at once")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="style_gallery_"))
    DOCS.mkdir(parents=True, exist_ok=True)
    out_json = RESULTS / "style_gallery.json"
    previous = json.loads(out_json.read_text())["pictures"] if out_json.exists() and args.only else []
    pictures = [p for p in previous if p["name"] not in (args.only or [])]
    todo = [p for p in PICTURES if not args.only or p[3] in args.only]
    for content_name in {p[0] for p in todo}:
        save_photo(content_name, work / f"{content_name}.png")

    def make(picture: tuple) -> dict:
        content_name, styles, extra, name = picture
        out = work / f"{name}.png"
        argv = [sys.executable, "-m", "cnnkit.cli.main", "style", str(work / f"{content_name}.png"),
                *[str(STYLE_DIR / f"{s}.jpg") for s in styles], "-o", str(out), "--size", str(args.size),
                "--device", args.device, *shlex.split(args.options), *extra, "--plot"]
        measured = run_measured(argv, name)
        log = json.loads(out.with_suffix(".json").read_text())
        final = log["steps"][-1]
        shutil.copy(out, DOCS / f"{name}.png")
        shutil.copy(work / f"{name}-costs.png", DOCS / f"{name}-costs.png")
        return {"name": name, "content": f"skimage.data.{content_name}()", "styles": styles,
                "command": cnnkit_command(argv, work), **measured, "output": f"docs/style/{name}.png",
                "size": final["size"][::-1], "evaluations": len(log["steps"]),
                "final": {k: final[k] for k in ("content", "style", "tv", "total")},
                "first": {k: log["steps"][0][k] for k in ("content", "style", "tv", "total")},
                "load_average_1min": round(os.getloadavg()[0], 2)}

    # Several commands at once (--jobs), each on the threads OMP_NUM_THREADS gives it.
    with ThreadPoolExecutor(args.jobs) as pool:
        for row in pool.map(make, todo):
            pictures.append(row)
            print(json.dumps(row), flush=True)
            save_result("style_gallery", {"benchmark": "style_gallery", "options": args.options, "size": args.size,
                                          "pictures": pictures})
    print(f"saved {out_json}")


if __name__ == "__main__":
    main()
