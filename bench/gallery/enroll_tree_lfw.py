"""Batch enrollment of LFW with `cnnkit faces enroll-tree`: Ray against one process, and a kill-and-resume run.

Three runs of the command line, each into a new gallery:
1. `--engine local` (the single-process path);
2. `--engine ray --workers W` (a local Ray on this machine);
3. the Ray run again, killed (SIGKILL, the whole process group) once a share
   of the photos is in the gallery, then the same command once more to finish.
Reports photos/s of 1 and 2 (and their ratio), and whether galleries 2 and 3
hold exactly what gallery 1 holds (same people, photos, provenance; vectors
bit for bit).

    python -m bench.gallery.enroll_tree_lfw [--photos 13233] [--workers 2] [--batch-size 32]
    python -m bench.gallery.enroll_tree_lfw --milvus     # both galleries in the embedded Milvus server

`--milvus` writes the one-process and the Ray gallery as two collections of
the embedded Milvus 2.3.5 server (started and stopped here, loopback, data in
the work folder) instead of SQLite files, compares them, and skips the
kill-and-resume run; it writes bench/results/enroll_tree_lfw_milvus.json.

`--photos N` takes the first people of LFW (sorted by name) until N photos,
as a tree of symbolic links in the work folder. Writes
bench/results/enroll_tree_lfw.json (the scale measured is in "photos").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import LFW, RESULTS, save_result
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.migrate import compare_galleries

FULL = 13_233
VECTOR_TOLERANCE = 1e-3  # far below any decision (distances between people are ~1); thread counts move up to ~4e-4


def make_tree(images: Path, photos: int, work: Path) -> tuple[Path, int, int]:
    """The whole of LFW, or a tree of links to its first people (by name) until `photos` photos."""
    if photos >= FULL:
        n = sum(1 for _ in images.glob("*/*.jpg"))
        return images, n, sum(1 for p in images.iterdir() if p.is_dir())
    tree = work / "tree"
    tree.mkdir(parents=True, exist_ok=True)
    count = people = 0
    for person in sorted(p for p in images.iterdir() if p.is_dir()):
        if count >= photos:
            break
        link = tree / person.name
        if not link.exists():
            link.symlink_to(person.resolve())
        count += sum(1 for _ in person.glob("*.jpg"))
        people += 1
    return tree, count, people


def enroll(tree: Path, gallery: Path | str, report: Path, *extra: str) -> tuple[subprocess.Popen, list[str]]:
    cmd = [sys.executable, "-m", "cnnkit", "faces", "enroll-tree", str(tree), "--gallery", str(gallery),
           "--report", str(report), "--device", "cpu", *extra]
    return subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), cmd


def run(tree: Path, gallery: Path | str, report: Path, *extra: str) -> dict:
    t = time.perf_counter()
    report.unlink(missing_ok=True)
    proc, cmd = enroll(tree, gallery, report, *extra)
    _, err = proc.communicate()
    if proc.returncode != 0 and not report.exists():  # 2 with a report: some photos failed (listed in it)
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    out = json.loads(report.read_text())
    out["wall_s"] = time.perf_counter() - t
    return out


def session_members(sid: int) -> list[int]:
    """Processes in session `sid` (what a killed driver may leave behind: Ray's own processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                found.append(int(entry.name))
    return found


def enrolled(gallery: Path) -> int:
    if not gallery.exists():
        return 0
    with Gallery(gallery, readonly=True) as g:
        return g.store.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=LFW / "images")
    parser.add_argument("--photos", type=int, default=FULL, help=f"photos to enroll (default all {FULL:,})")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--kill-at", type=float, default=0.4,
                        help="kill the third run at this share of photos enrolled")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--milvus", action="store_true", help="the galleries in the embedded Milvus server")
    parser.add_argument("--reuse-local", action="store_true",
                        help="with --milvus and --workdir: keep the one-process run found there (local.json and its "
                             "collection) instead of running it again")
    parser.add_argument("--reuse-ray", action="store_true", help="the same for the Ray run (ray.json)")
    args = parser.parse_args()
    if args.milvus:
        return into_milvus(args)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cnnkit-enroll-tree-"))
    work.mkdir(parents=True, exist_ok=True)
    tree, photos, people = make_tree(args.images, args.photos, work)
    print(f"{photos} photos of {people} people under {tree}", flush=True)
    batch = ["--batch-size", str(args.batch_size)]
    ray_opts = ["--engine", "ray", "--workers", str(args.workers), *batch]

    local = run(tree, work / "local.db", work / "local.json", "--engine", "local", *batch)
    print(f"one process: {local['photos_per_second']:.2f} photos/s ({local['enrolled']} enrolled, "
          f"{len(local['failed'])} failed)", flush=True)
    on_ray = run(tree, work / "ray.db", work / "ray.json", *ray_opts)
    print(f"ray x{args.workers}: {on_ray['photos_per_second']:.2f} photos/s", flush=True)

    # Kill the driver (and with it the Ray processes it started) part way, then run the same command again.
    proc, _ = enroll(tree, work / "resume.db", work / "resume-killed.json", *ray_opts)
    target = int(args.kill_at * local["enrolled"])
    started = time.perf_counter()
    while proc.poll() is None and enrolled(work / "resume.db") < target:
        time.sleep(1.0)
    killed_at = enrolled(work / "resume.db")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    leftovers = session_members(proc.pid)
    for pid in leftovers:  # Ray's processes started by the killed driver
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    kill = {"killed_after_s": time.perf_counter() - started, "enrolled_when_killed": killed_at,
            "finished_before_kill": proc.returncode == 0, "ray_processes_left_and_killed": len(leftovers)}
    print(f"killed with {killed_at} photos enrolled; resuming", flush=True)
    resumed = run(tree, work / "resume.db", work / "resume.json", *ray_opts)

    with Gallery(work / "local.db", readonly=True) as g_local, Gallery(work / "ray.db", readonly=True) as g_ray, \
            Gallery(work / "resume.db", readonly=True) as g_resume:
        ray_diff = compare_galleries(g_local, g_ray, ids=False)
        resume_diff = compare_galleries(g_local, g_resume, ids=False)
        same_ids = [(p.id, p.name) for p in g_local.people()] == [(p.id, p.name) for p in g_ray.people()]
        checks = {"local": g_local.check(), "ray": g_ray.check(), "resumed": g_resume.check()}
        counts = {"people": len(g_local.people()), "embeddings": g_local.store.count()}

    slim = lambda r: {k: v for k, v in r.items() if k != "failed"} | {"failed": len(r["failed"])}  # noqa: E731
    summary = {
        "what": "enroll-tree over LFW photos: Ray (local, this machine) vs one process; kill -9 and resume",
        "photos": photos, "people": people, "full_scale_photos": FULL,
        "scale_note": None if photos >= FULL else
        f"measured on {photos:,} of LFW's {FULL:,} photos (the first {people} people by name): 2 cores shared by "
        "several jobs; rerun with --photos 13233",
        "gallery_contents": counts,
        "single_process": slim(local), "ray": slim(on_ray),
        "ray_photos_per_s_ratio_to_single_process": on_ray["photos_per_second"] / local["photos_per_second"],
        "ray_steady_photos_per_s_ratio_to_single_process": (
            on_ray["steady_photos_per_second"] / local["steady_photos_per_second"]
            if on_ray.get("steady_photos_per_second") and local.get("steady_photos_per_second") else None),
        "identical_ray_vs_single_process": not ray_diff, "differences_ray": ray_diff[:20],
        "same_person_ids_ray_vs_single_process": same_ids,
        "kill_and_resume": kill | {"resumed_run": slim(resumed), "identical_to_single_process": not resume_diff,
                                   "differences": resume_diff[:20]},
        "gallery_checks": checks,
        "failed_photos_single_process": local["failed"][:50]}
    out = save_result("enroll_tree_lfw", summary, out=args.out or RESULTS / "enroll_tree_lfw.json")
    print(json.dumps({k: summary[k] for k in ("photos", "ray_photos_per_s_ratio_to_single_process",
                                              "identical_ray_vs_single_process")}), flush=True)
    print(f"wrote {out}")


def into_milvus(args) -> None:
    """One process and Ray, each into its own collection of the embedded Milvus server; same contents?"""
    from cnnkit.faces.gallery.milvus_server import embedded_milvus

    work = Path(args.workdir or tempfile.mkdtemp(prefix="cnnkit-enroll-tree-milvus-"))
    work.mkdir(parents=True, exist_ok=True)
    tree, photos, people = make_tree(args.images, args.photos, work)
    print(f"{photos} photos of {people} people under {tree}", flush=True)
    batch = ["--batch-size", str(args.batch_size)]
    with embedded_milvus(work / "milvus") as address:
        local_at, ray_at = f"milvus://{address}/lfw_local", f"milvus://{address}/lfw_ray"
        if args.reuse_local and (work / "local.json").exists():
            local = json.loads((work / "local.json").read_text())
            print(f"reusing the one-process run in {work / 'local.json'}", flush=True)
        else:
            local = run(tree, local_at, work / "local.json", "--engine", "local", *batch)
        print(f"one process: {local['photos_per_second']:.2f} photos/s ({local['enrolled']} enrolled)", flush=True)
        if args.reuse_ray and (work / "ray.json").exists():
            on_ray = json.loads((work / "ray.json").read_text())
        else:
            on_ray = run(tree, ray_at, work / "ray.json", "--engine", "ray", "--workers", str(args.workers), *batch)
        print(f"ray x{args.workers}: {on_ray['photos_per_second']:.2f} photos/s", flush=True)
        with Gallery(local_at, readonly=True) as g_local, Gallery(ray_at, readonly=True) as g_ray:
            diff = compare_galleries(g_local, g_ray, ids=False)
            # The one process runs PyTorch on every core, each Ray worker on one: float rounding differs.
            beyond = compare_galleries(g_local, g_ray, ids=False, atol=VECTOR_TOLERANCE)
            gaps = [float(d.rsplit(" ", 1)[1]) for d in diff if "vectors differ by" in d]
            counts = {"people": len(g_local.people()), "embeddings": g_local.store.count()}
            checks = {"local": g_local.check(), "ray": g_ray.check()}

    slim = lambda r: {k: v for k, v in r.items() if k != "failed"} | {"failed": len(r["failed"])}  # noqa: E731
    summary = {
        "what": "enroll-tree over LFW photos into the embedded Milvus 2.3.5 server: Ray (local) vs one process",
        "photos": photos, "people": people, "full_scale_photos": FULL,
        "scale_note": None if photos >= FULL else f"measured on {photos:,} of LFW's {FULL:,} photos",
        "gallery_contents": counts, "single_process": slim(local), "ray": slim(on_ray),
        "ray_photos_per_s_ratio_to_single_process": on_ray["photos_per_second"] / local["photos_per_second"],
        "identical_ray_vs_single_process": not diff,
        f"same_ray_vs_single_process_vectors_within_{VECTOR_TOLERANCE:g}": not beyond,
        "photos_whose_vectors_differ": len(gaps), "largest_vector_difference": max(gaps, default=0.0),
        "differences_beyond_tolerance": beyond[:20], "differences_ray": diff[:5], "gallery_checks": checks}
    out = save_result("enroll_tree_lfw", summary, out=args.out or RESULTS / "enroll_tree_lfw_milvus.json")
    print(json.dumps({k: summary[k] for k in ("photos", "ray_photos_per_s_ratio_to_single_process",
                                              "identical_ray_vs_single_process", "largest_vector_difference")}),
          flush=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
