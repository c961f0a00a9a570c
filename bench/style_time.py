"""Time of one whole `cnnkit style` command: 512 px, 300 L-BFGS steps (the issue's yardstick).

Runs the command as a user would (a new process: imports, weights, images,
the transfer, the PNG and the cost log), `--repeat` times, and reports wall
time, CPU time, peak memory, and from the cost log the seconds before the
first step and per step. Works on `--device cuda` too.

    python bench/style_time.py [--size 512] [--steps 300] [--device cpu] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, command, machine

STYLE = ROOT.parent / "shared" / "data" / "style" / "starry_night.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--options", default="", help="more cnnkit style options (quoted)")
    parser.add_argument("--out", help="JSON path (default bench/results/style_time_<device>.json)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="style_time_"))
    content = work / "astronaut.png"
    subprocess.run([sys.executable, "-c", "import sys, skimage.data; from PIL import Image; "
                    "Image.fromarray(skimage.data.astronaut()).save(sys.argv[1])", str(content)], check=True)
    argv = [sys.executable, "-m", "cnnkit.cli.main", "style", str(content), str(STYLE), "-o", str(work / "out.png"),
            "--size", str(args.size), "--steps", str(args.steps), "--device", args.device, *shlex.split(args.options)]
    runs = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        text = proc.stdout.read()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(text[-2000:])
        log = json.loads((work / "out.json").read_text())
        steps = log["steps"]
        first = steps[0]["seconds"]
        per_step = (steps[-1]["seconds"] - first) / max(1, len(steps) - 1)
        row = {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
               "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "transfer_s": log["seconds"],
               "seconds_to_first_evaluation_in_transfer": round(first, 3), "seconds_per_step": round(per_step, 4),
               "evaluations": len(steps), "final": {k: steps[-1][k] for k in ("content", "style", "total")},
               "load_average_1min": round(os.getloadavg()[0], 2)}
        runs.append(row)
        print(json.dumps(row), flush=True)
    report = {"benchmark": "style_time", "command": command(), "machine": machine(),
              "cnnkit_command": shlex.join(["cnnkit", *argv[3:]]).replace(str(work) + "/", "").replace(
                  str(ROOT.parent) + "/", "../"),
              "size": args.size, "steps": args.steps, "device": args.device, "runs": runs}
    out = Path(args.out or RESULTS / f"style_time_{args.device.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
