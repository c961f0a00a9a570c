"""The pictures in docs/style.md: scikit-image's photos painted in the style of the public-domain paintings.

Each picture is one whole `cnnkit style` command (default costs and layers);
the PNGs (and one cost plot) are copied to docs/style/, and the wall time, CPU
time and final costs of every command are saved to bench/results/style_gallery.json.

    python bench/style_gallery.py [--size 256] [--options "--multiscale 2 --coarse-steps 80 --steps 50"] [--jobs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import RESULTS, ROOT, command, machine

STYLE_DIR = ROOT.parent / "shared" / "data" / "style"
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
        subprocess.run([sys.executable, "-c", "import sys, skimage.data; from PIL import Image; "
                        "Image.fromarray(getattr(skimage.data, sys.argv[1])()).save(sys.argv[2])",
                        content_name, str(work / f"{content_name}.png")], check=True)

    def make(picture: tuple) -> dict:
        content_name, styles, extra, name = picture
        out = work / f"{name}.png"
        argv = [sys.executable, "-m", "cnnkit.cli.main", "style", str(work / f"{content_name}.png"),
                *[str(STYLE_DIR / f"{s}.jpg") for s in styles], "-o", str(out), "--size", str(args.size),
                "--device", args.device, *shlex.split(args.options), *extra, "--plot"]
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        text = proc.stdout.read()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{name} failed:\n{text[-2000:]}")
        log = json.loads(out.with_suffix(".json").read_text())
        final = log["steps"][-1]
        shutil.copy(out, DOCS / f"{name}.png")
        shutil.copy(work / f"{name}-costs.png", DOCS / f"{name}-costs.png")
        return {"name": name, "content": f"skimage.data.{content_name}()", "styles": styles,
                "command": shlex.join(["cnnkit", *argv[3:]]).replace(str(work) + "/", "").replace(
                    str(ROOT.parent) + "/", "../"),
                "wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "output": f"docs/style/{name}.png",
                "size": final["size"][::-1], "evaluations": len(log["steps"]),
                "final": {k: final[k] for k in ("content", "style", "tv", "total")},
                "first": {k: log["steps"][0][k] for k in ("content", "style", "tv", "total")},
                "load_average_1min": round(os.getloadavg()[0], 2)}

    # Several commands at once (--jobs), each on the threads OMP_NUM_THREADS gives it.
    with ThreadPoolExecutor(args.jobs) as pool:
        for row in pool.map(make, todo):
            pictures.append(row)
            print(json.dumps(row), flush=True)
            RESULTS.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps({"benchmark": "style_gallery", "command": command(),
                                            "machine": machine(), "options": args.options, "size": args.size,
                                            "pictures": pictures}, indent=1) + "\n")
    print(f"saved {out_json}")


if __name__ == "__main__":
    main()
