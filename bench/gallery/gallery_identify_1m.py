"""`Gallery.identify` end to end at 1,000,000 enrolled people: photo in, name out.

The gallery is one SQLite file: `--real` LFW people enrolled through the
whole pipeline from one photo each (their other photos are the known probes;
as many photos of people not enrolled are the strangers), and the rest of the
million synthetic people, one seeded random vector each (Gaussian, scaled to
the norm of the real embeddings; they make the search as large as a million
real people would, they are not meant to be confused with the probes).

For each probe photo, `gallery.identify(photo)` is timed whole (load, detect,
align, encode, search, names), and its two halves separately: the encoder side
(`gallery.recognizer.process`) and the gallery side (`identify_embeddings`:
index search plus the names of the people found). The gallery side is also
timed the way cnnkit 0.1.0 did it (commit 09c397f, reproduced below in
`identify_embeddings_0_1_0`): it listed every person's name on every query.

    python -m bench.gallery.gallery_identify_1m [--n 1000000] [--real 40] [--before 5]
    python -m bench.gallery.gallery_identify_1m --cli after   # the whole `cnnkit faces identify` command
    python -m bench.gallery.gallery_identify_1m --milvus       # the same gallery in the embedded Milvus server

`--milvus` builds the gallery in the embedded Milvus 2.3.5 standalone server
(loopback, data in --work, started and stopped here) instead of a SQLite file,
waits until the server has indexed every vector, and writes
bench/results/gallery_identify_1m_milvus.json; the 0.1.0 way is not timed
there (it never ran on Milvus).

`enrolled_people_named` counts the known probes answered with the right name;
`enrolled_people_ranked_first` those whose nearest person is the right one
whatever the threshold (the search worked, the 1:K threshold may still say
unknown: at a million people it is strict; README, "1:K thresholds follow the gallery's size").

`--cli LABEL` times the command line as a user meets it, one new process per
run: cold (the gallery's files, and its saved search index if any, dropped from
the page cache first with posix_fadvise) and then warm (run again at once), and
merges the figures under LABEL into bench/results/gallery_identify_cli.json.

Writes bench/results/gallery_identify_1m.json. The first query of a process
builds the HNSW graph (from 50,000 embeddings on); its time is reported apart
(`open_and_first_query_s`). The gallery file is kept in --work and reused by
later runs with the same --n and --seed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import LFW, RESULTS, peak_rss_mib, save_result
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.gallery import Candidate, Identification
from cnnkit.faces.gallery.store import EmbeddingRecord
from cnnkit.images import load_image

CHUNK = 20_000  # synthetic people per transaction


def lfw_people(real: int) -> tuple[list[tuple[str, Path, Path]], list[Path]]:
    """`real` people with 2+ photos (enrolled photo, probe photo) and `real` strangers' photos, in name order."""
    folders = sorted(p for p in (LFW / "images").iterdir() if p.is_dir())
    known, strangers = [], []
    for folder in folders:
        photos = sorted(folder.glob("*.jpg"))
        if len(photos) >= 2 and len(known) < real:
            known.append((folder.name, photos[0], photos[1]))
        elif len(photos) == 1 and len(strangers) < real:
            strangers.append(photos[0])
        if len(known) == real and len(strangers) == real:
            break
    return known, strangers


def build(path: Path | str, n: int, known: list[tuple[str, Path, Path]], seed: int) -> dict:
    """The gallery (a file, or a Milvus location): the real people first (ids 1..), then synthetic people up to n."""
    started = time.perf_counter()
    with Gallery(path, create=True, device="cpu") as gallery:
        for name, photo, _ in known:
            gallery.enroll(name.replace("_", " "), [photo])
        norms = [float(np.linalg.norm(gallery.embeddings_of(p.id)[0])) for p in gallery.people()]
        scale = float(np.mean(norms))
        rng = np.random.default_rng(seed)
        store, model = gallery.store, gallery.model
        for start in range(len(known), n, CHUNK):
            count = min(CHUNK, n - start)
            vectors = rng.standard_normal((count, model.dim)).astype(np.float32)
            vectors *= scale / np.linalg.norm(vectors, axis=1, keepdims=True)
            with store.write() as tx:
                for i, vector in enumerate(vectors):
                    person = store.add_person(tx, f"synthetic {start + i:07d}")
                    store.add_embeddings(tx, person, [EmbeddingRecord(vector=vector, source="synthetic")],
                                         model.id, model.version)
        people = len(gallery)
    return {"people": people, "build_s": round(time.perf_counter() - started, 1), "vector_norm": scale}


def wait_for_milvus_index(location: str, timeout_s: float = 1800) -> dict:
    """Flush, then wait until the server has indexed every vector (it builds in the background after a load),
    so that queries are timed against the finished index and not beside its building."""
    started = time.perf_counter()
    with Gallery(location, readonly=True) as gallery:
        store = gallery.store
        store.client.flush(store.c_emb)
        while True:
            info = store.client.describe_index(store.c_emb, "vector")
            # Milvus 2.3.5 leaves pending_index_rows at the total once finished: its state and indexed_rows tell
            if (info.get("state", "Finished") == "Finished" and info.get("indexed_rows") == info.get("total_rows")) \
                    or time.perf_counter() - started > timeout_s:
                break
            time.sleep(5)
    return {"index_wait_s": round(time.perf_counter() - started, 1),
            "index_state": {k: v for k, v in info.items() if k in ("indexed_rows", "total_rows", "pending_index_rows",
                                                                   "state")}}


def identify_embeddings_0_1_0(gallery: Gallery, embeddings: np.ndarray, top_k: int = 3) -> list[Identification]:
    """The gallery side of identify as cnnkit 0.1.0 wrote it: the names of everyone, listed on every query."""
    threshold = gallery.threshold
    found = gallery.search(embeddings, top_k=top_k)
    names = {p.id: p.name for p in gallery.store.people()}
    out = []
    for hits in found:
        candidates = [Candidate(h.person_id, names.get(h.person_id, "?"), h.distance) for h in hits]
        best = candidates[0] if candidates else None
        known = best is not None and best.distance <= threshold
        out.append(Identification(face=None, person_id=best.person_id if known else None,
                                  name=best.name if known else None, distance=best.distance if best else None,
                                  threshold=threshold, candidates=candidates))
    return out


def stats(times_s: list[float]) -> dict:
    ms = np.array(times_s) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(ms.mean()), 2), "calls": len(ms)}


def evict(path: Path) -> None:
    """Drop a file's pages from the page cache (the next read comes from disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def time_cli(path: Path, photo: Path, label: str, runs: int) -> dict:
    """`cnnkit faces identify --gallery PATH PHOTO --json` as a whole command: cold once, then warm."""
    command = [sys.executable, "-m", "cnnkit", "faces", "identify", "--gallery", str(path), "--device", "cpu",
               "--json", str(photo)]
    out: dict = {"command": " ".join(["cnnkit", *command[3:]]), "runs": []}
    for run in range(runs):
        cold = run == 0
        if cold:
            for file in [path, *path.parent.glob(path.name + "*")]:
                if file.is_file():
                    evict(file)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - t0
        answer = json.loads(done.stdout)[0]["faces"][0]["name"]
        out["runs"].append({"cold": cold, "wall_s": round(seconds, 2), "answer": answer,
                            "load_average_before": round(load, 2), "load_average_after": round(os.getloadavg()[0], 2)})
        print(f"{label}: {'cold' if cold else 'warm'} {seconds:.1f} s -> {answer}")
    out["index_files"] = sorted(f.name for f in path.parent.glob(path.name + ".*"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="people in the gallery (default 1,000,000)")
    ap.add_argument("--real", type=int, default=40, help="real LFW people enrolled, and as many strangers")
    ap.add_argument("--before", type=int, default=5, help="queries timed the 0.1.0 way (each lists everyone)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/cnnkit-bench", help="where the gallery file is kept")
    ap.add_argument("--out", help="result file (default bench/results/gallery_identify_1m.json)")
    ap.add_argument("--cli", metavar="LABEL", help="time the whole `cnnkit faces identify` command instead")
    ap.add_argument("--runs", type=int, default=2, help="with --cli: runs (the first cold)")
    ap.add_argument("--milvus", action="store_true", help="the gallery in the embedded Milvus server instead")
    args = ap.parse_args()

    known, strangers = lfw_people(args.real)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.milvus:
        from cnnkit.faces.gallery.milvus_server import embedded_milvus

        with embedded_milvus(work / f"milvus-{args.n}") as address:
            location = f"milvus://{address}/identify_{args.n}_{args.seed}"
            built = build(location, args.n, known, args.seed)
            built |= wait_for_milvus_index(location)
            print(f"built {location}: {built}")
            measure(location, built, known, strangers, args, before=0,
                    out=args.out or RESULTS / "gallery_identify_1m_milvus.json", index="Milvus HNSW (M=32, ef=128)")
        return
    path = work / f"identify-{args.n}-{args.real}-{args.seed}.db"
    built = None
    if path.exists():
        with Gallery(path, readonly=True) as gallery:
            if len(gallery) != args.n:
                path.unlink()
    if not path.exists():
        built = build(path, args.n, known, args.seed)
        print(f"built {path}: {built}")

    if args.cli:
        result_file = RESULTS / "gallery_identify_cli.json"
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        for key in ("command", "machine", "load_average_before", "load_average_after", "date", "peak_rss_mib"):
            result.pop(key, None)
        result.update({"people": args.n, "probe": f"{known[0][2].name} (enrolled: {known[0][1].name})",
                       args.cli: time_cli(path, known[0][2], args.cli, args.runs)})
        save_result("gallery_identify_cli", result)
        return

    measure(path, built, known, strangers, args, before=args.before, out=args.out,
            index="hnsw (auto, from 50,000 embeddings)")


def measure(path: Path | str, built: dict | None, known, strangers, args, *, before: int, out, index: str) -> None:
    probes = [(name.replace("_", " "), photo) for name, _, photo in known] + [(None, p) for p in strangers]
    started = time.perf_counter()
    gallery = Gallery(path, readonly=True, device="cpu")
    opened_s = time.perf_counter() - started
    gallery.identify(probes[0][1])  # loads the models and builds the search index
    first_s = time.perf_counter() - started
    print(f"open {opened_s:.2f} s, open + first query {first_s:.1f} s ({len(gallery):,} people)")

    whole, encode, search, named_right, knowns_right, ranked_first = [], [], [], 0, 0, 0
    for truth, photo in probes:
        t0 = time.perf_counter()
        (answer,) = gallery.identify(photo)
        whole.append(time.perf_counter() - t0)
        image = load_image(photo)
        t0 = time.perf_counter()
        faces = gallery.recognizer.process([image])[0]
        encode.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        gallery.identify_embeddings(np.stack([f.embedding for f in faces]), faces=faces)
        search.append(time.perf_counter() - t0)
        face = max(answer.faces, key=lambda f: f.face.width * f.face.height) if answer.faces else None
        right = face is not None and face.name == truth
        named_right += right
        knowns_right += right and truth is not None
        ranked_first += truth is not None and face is not None and bool(face.candidates) \
            and face.candidates[0].name == truth
    before_s = []
    for _, photo in probes[:before]:
        faces = gallery.recognizer.process([load_image(photo)])[0]
        t0 = time.perf_counter()
        identify_embeddings_0_1_0(gallery, np.stack([f.embedding for f in faces]))
        before_s.append(time.perf_counter() - t0)
    threshold = round(gallery.operating_point().threshold, 4)  # 1:K, for this gallery's size and FPIR
    gallery.close()

    result = {
        "people": args.n, "real_people": len(known), "strangers": len(strangers),
        "gallery": str(path), "index": index, "build": built,
        "open_s": round(opened_s, 3), "open_and_first_query_s": round(first_s, 1),
        "identify_end_to_end": stats(whole), "encoder_side": stats(encode), "gallery_side": stats(search),
        "gallery_side_0_1_0": stats(before_s) if before_s else None,
        "before_over_after_gallery_side_p50": round(float(np.median(before_s) / np.median(search)), 1)
        if before_s else None,
        "probes_answered_right": named_right, "probes": len(probes),
        "enrolled_people_named": knowns_right, "strangers_answered_unknown": named_right - knowns_right,
        "enrolled_people_ranked_first": ranked_first, "threshold": threshold,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "notes": "identify_end_to_end: photo path in, answers out (load, detect, align, encode, search, names); "
                 "gallery_side_0_1_0: search + a name for every person, as cnnkit 0.1.0 did on every query",
    }
    saved = save_result("gallery_identify_1m", result, out=out)
    print(f"identify p50 {result['identify_end_to_end']['p50_ms']} ms, p99 {result['identify_end_to_end']['p99_ms']} "
          f"ms; gallery side p50 {result['gallery_side']['p50_ms']} ms; {named_right}/{len(probes)} right -> {saved}")


if __name__ == "__main__":
    main()
