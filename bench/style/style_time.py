"""Time of one whole `cnnkit style` command: 512 px, 300 L-BFGS steps (the issue's yardstick).

Runs the command as a user would (a new process: imports, weights, images,
the transfer, the PNG and the cost log), `--repeat` times, and reports wall
time, CPU time, peak memory, and from the cost log the seconds before the
first step and per step. Works on `--device cuda` too.

    python -m bench.style.style_time [--size 512] [--steps 300] [--device cpu] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

from bench.common import DATA, save_result
from bench.style.runs import cnnkit_command, run_measured, save_photo

STYLE = DATA / "style" / "starry_night.jpg"


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
    content = save_photo("astronaut", work / "astronaut.png")
    argv = [sys.executable, "-m", "cnnkit.cli.main", "style", str(content), str(STYLE), "-o", str(work / "out.png"),
            "--size", str(args.size), "--steps", str(args.steps), "--device", args.device, *shlex.split(args.options)]
    runs = []
    for _ in range(args.repeat):
        measured = run_measured(argv, "cnnkit style")
        log = json.loads((work / "out.json").read_text())
        steps = log["steps"]
        first = steps[0]["seconds"]
        per_step = (steps[-1]["seconds"] - first) / max(1, len(steps) - 1)
        row = {**measured, "transfer_s": log["seconds"],
               "seconds_to_first_evaluation_in_transfer": round(first, 3), "seconds_per_step": round(per_step, 4),
               "evaluations": len(steps), "final": {k: steps[-1][k] for k in ("content", "style", "total")},
               "load_average_1min": round(os.getloadavg()[0], 2)}
        runs.append(row)
        print(json.dumps(row), flush=True)
    report = {"benchmark": "style_time", "cnnkit_command": cnnkit_command(argv, work),
              "size": args.size, "steps": args.steps, "device": args.device, "runs": runs}
    out = save_result(f"style_time_{args.device.split(':')[0]}", report, out=args.out)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
