"""Kill a real bulk enrollment of LFW photos at random moments, many times, and check the gallery.

Each run starts a process that enrolls LFW people one after another through
`Gallery.enroll` (detect, align, encode, write; one transaction per person),
printing a line after each enrollment returns. After a random delay the process
gets SIGKILL; then the run is resumed once more and killed again. Afterwards the
gallery must open, pass its integrity check, hold every person that was
reported enrolled, each whole (all of their photos), and at most one person per
kill that was committed but not yet reported.

    python -m bench.gallery.gallery_durability [--runs 20]

Writes bench/results/gallery_durability.json.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import LFW, RESULTS, save_result
from cnnkit.faces.gallery import Gallery

PHOTOS = 2

WORKER = """
import sys
from pathlib import Path
from cnnkit.errors import CnnkitError
from cnnkit.faces.gallery import Gallery

gallery = Gallery(sys.argv[1], create=True)
images = Path(sys.argv[2])
done = {p.name for p in gallery.people()}
people = sorted(d.name for d in images.iterdir() if (d / f"{d.name}_0002.jpg").exists())
gallery.enroll("warm-up", [images / people[0] / f"{people[0]}_0001.jpg"])  # load the models first
gallery.remove("warm-up")
print("ready", flush=True)
for name in people:
    if name in done:
        continue
    try:
        gallery.enroll(name, [images / name / f"{name}_{k:04d}.jpg" for k in range(1, PHOTOS + 1)], pick="largest")
    except CnnkitError:
        continue  # a photo without a face: nothing stored, nothing reported
    print("enrolled", name, flush=True)
""".replace("PHOTOS", str(PHOTOS))


def one_run(path: Path, images: Path, rng: np.random.Generator) -> dict:
    reported: list[str] = []
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(images)], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        # Kill at a random moment that scales with the machine's speed: after a random number of
        # reported enrollments, a random fraction of the way into the next one (on a loaded machine
        # a fixed delay would often kill before the first enrollment).
        lines, start = [], time.perf_counter()
        for _ in range(int(rng.integers(0, 6))):
            lines.append(proc.stdout.readline())
        per_person = (time.perf_counter() - start) / max(len(lines), 1) if lines else 1.0
        time.sleep(float(rng.uniform(0.0, 1.0)) * per_person)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        reported += [line.split(" ", 1)[1].strip() for line in lines + out.splitlines() if line.startswith("enrolled ")]
    with Gallery(path) as gallery:
        problems = gallery.check()
        people = gallery.people()
    names = [p.name for p in people]
    return {
        "reported": len(reported),
        "in_gallery": len(people),
        "reported_missing": sorted(set(reported) - set(names)),
        "unreported_present": sorted(set(names) - set(reported)),
        "half_written": [p.name for p in people if p.embeddings != PHOTOS],
        "duplicates": len(names) - len(set(names)),
        "integrity_problems": problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "gallery_durability.json")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            run = one_run(Path(tmp) / f"run{i}.db", LFW / "images", rng)
            run["ok"] = (not run["reported_missing"] and not run["half_written"] and not run["duplicates"]
                         and not run["integrity_problems"] and len(run["unreported_present"]) <= 2)
            runs.append(run)
            print(f"run {i:2d}: reported {run['reported']:3d}, in gallery {run['in_gallery']:3d}, "
                  f"committed-not-reported {len(run['unreported_present'])}, ok {run['ok']}", flush=True)
    result = {"what": "SIGKILL during bulk enrollment of LFW photos (2 kills per run), then check the gallery",
              "runs": len(runs), "all_ok": all(r["ok"] for r in runs),
              "people_reported_total": sum(r["reported"] for r in runs),
              "people_lost_total": sum(len(r["reported_missing"]) for r in runs),
              "half_written_total": sum(len(r["half_written"]) for r in runs),
              "details": runs}
    print(f"all ok: {result['all_ok']}; wrote {save_result('gallery_durability', result, out=args.out)}")


if __name__ == "__main__":
    main()
