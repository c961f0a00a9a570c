"""What the style benchmarks share: the photos they paint, and one whole command run and measured."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT


def save_photo(name: str, path: Path) -> Path:
    """scikit-image's sample photo `name` (astronaut, chelsea, ...) as a PNG, written by a child process.

    In a child so that this process stays small: a child's peak RSS as the
    kernel reports it starts at its parent's high-water mark.
    """
    subprocess.run([sys.executable, "-c", "import sys, skimage.data; from PIL import Image; "
                    "Image.fromarray(getattr(skimage.data, sys.argv[1])()).save(sys.argv[2])", name, str(path)],
                   check=True)
    return path


def usage_row(wall_s: float, usage) -> dict[str, float]:
    """Wall time, CPU time and peak RSS of one finished child (`usage`: its os.wait4 resource usage)."""
    return {"wall_s": round(wall_s, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def run_measured(argv: list[str], what: str) -> dict[str, float]:
    """Run `argv` to its end: `usage_row` of that process; SystemExit with its last output if it fails."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    text = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{what} failed:\n{text[-2000:]}")
    return usage_row(wall, usage)


def cnnkit_command(argv: list[str], work: Path) -> str:
    """`python -m cnnkit.cli.main style ...` as the `cnnkit style ...` a user types, without the work folder."""
    return shlex.join(["cnnkit", *argv[3:]]).replace(str(work) + "/", "").replace(str(ROOT.parent) + "/", "../")
