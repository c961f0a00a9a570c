"""How long `cnnkit --help` takes, and whether it imports torch: today's tree against an older commit.

    python -m bench.cli.startup                      # against 09c397f, the last commit before the lazy CLI
    python -m bench.cli.startup --before REV --runs 9

Each variant runs `python -X importtime -m cnnkit --help` `--runs` times in a
fresh process with this venv's Python (the older commit from a `git worktree`
in a temporary folder, on PYTHONPATH). Reported: median and best wall time,
the child's peak RSS, whether torch was imported, and the slowest top-level
imports of the median run. The ratio is before / after. JSON in
bench/results/cli_startup.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, save_result

BEFORE = "09c397f"  # the last commit whose cli/main.py imported every command module (and torch) up front


# `python -m cnnkit --help`, printing its own peak RSS (KiB) on the way out.
CHILD = ("import atexit, resource, runpy, sys; "
         "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
         "atexit.register(lambda: sys.stderr.write(f'peak-rss {peak()}\\n')); "
         "sys.argv = ['cnnkit', '--help']; runpy.run_module('cnnkit', run_name='__main__', alter_sys=True)")


def measure(source: Path, runs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source)}
    walls, rss, torch_imported, slowest = [], 0, False, []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", CHILD], cwd=source, env=env,
                              capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"cnnkit --help failed in {source}: {done.stderr[-500:]}")
        rss = max(rss, int(done.stderr.rsplit("peak-rss ", 1)[1].split()[0]) // 1024)
        # "import time: self [us] | cumulative | name", the name indented by its depth; first line is the header.
        imports = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")][1:]
        top = [(int(cumulative), name[1:].rstrip()) for _, cumulative, name in imports if not name[1:].startswith(" ")]
        torch_imported = torch_imported or any(name.strip() == "torch" for *_, name in imports)
        slowest = sorted(top, reverse=True)[:5]
    return {"wall_s_median": round(statistics.median(walls), 3), "wall_s_best": round(min(walls), 3),
            "peak_rss_mib": rss, "imports_torch": torch_imported,
            "slowest_top_level_imports_ms": [[name.strip(), round(us / 1000, 1)] for us, name in slowest]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.before], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            before = measure(old, args.runs)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=True)
    after = measure(ROOT, args.runs)
    result = {"before": {"commit": args.before, **before}, "after": after, "runs": args.runs,
              "speedup_median": round(before["wall_s_median"] / after["wall_s_median"], 1)}
    for label in ("before", "after"):
        r = result[label]
        print(f"{label:6s} median {r['wall_s_median']:.3f} s  best {r['wall_s_best']:.3f} s  "
              f"torch imported: {r['imports_torch']}  slowest: {r['slowest_top_level_imports_ms'][:3]}")
    print(f"speed-up {result['speedup_median']}x")
    save_result("cli_startup", result)


if __name__ == "__main__":
    main()
