"""Gallery search at scale: Milvus Lite against the embedded SQLite gallery's exact and HNSW search.

Seeded synthetic 128-D unit vectors, one per person, written through each
gallery's own store (SQLite file; Milvus Lite file), 10,000 people per write.
Queries are probes of enrolled people (a stored vector plus noise, as in
bench.gallery.gallery_search). Measured for each: insert throughput, index build,
single-query and batch latency (p50 / p99) through `Gallery.search`, recall@1
against exact search, and memory (this process's growth for the embedded
indexes; the Milvus Lite server process's resident memory for Milvus).

    python -m bench.gallery.milvus_search [--n 1000000] [--queries 500] [--batch 64]

Writes bench/results/milvus_search.json (the scale measured is in "entries").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, save_result
from bench.gallery.gallery_search import probes, unit_vectors
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.store import EmbeddingRecord

PER_WRITE = 10_000


def rss_mib(pid: int) -> dict[str, float]:
    """Current and peak resident memory of a process (Linux /proc), MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out["rss_mib" if line.startswith("VmRSS") else "peak_rss_mib"] = int(line.split()[1]) / 1024
    return out


def fill(gallery: Gallery, vectors: np.ndarray) -> float:
    """Write one person per vector, PER_WRITE people per write; seconds taken."""
    store, model = gallery.store, gallery.model
    t = time.perf_counter()
    for start in range(0, len(vectors), PER_WRITE):
        with store.write() as tx:
            for i in range(start, min(start + PER_WRITE, len(vectors))):
                pid = store.add_person(tx, f"p{i}", None, person_id=i + 1)
                store.add_embeddings(tx, pid, [EmbeddingRecord(vector=vectors[i], source=f"s{i}")],
                                     model.id, model.version)
        print(f"  wrote {min(start + PER_WRITE, len(vectors))}/{len(vectors)}", end="\r", flush=True)
    return time.perf_counter() - t


def latencies(gallery: Gallery, queries: np.ndarray, batch: int) -> dict[str, float]:
    gallery.search(queries[:batch], top_k=1)  # warm up
    times = []
    for start in range(0, len(queries) - batch + 1, batch):
        t = time.perf_counter()
        gallery.search(queries[start:start + batch], top_k=1)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)), "calls": len(times)}


def top1(gallery: Gallery, queries: np.ndarray) -> np.ndarray:
    return np.array([hits[0].person_id if hits else -1 for hits in gallery.search(queries, top_k=1)])


def build_index(gallery: Gallery) -> float:
    """Seconds to make every row searchable through the index.

    Milvus Lite indexes flushed segments in the background (rows not yet indexed
    are compared one by one); releasing and loading the collection builds the
    missing indexes before it returns.
    """
    client, name = gallery.store.client, gallery.store.c_emb
    t = time.perf_counter()
    client.flush(name)
    client.release_collection(name)
    client.load_collection(name)
    return time.perf_counter() - t


def embedded_part(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, work: Path, batch: int) -> dict:
    out: dict = {}
    with Gallery(work / "embedded.db", create=True, index="exact") as embedded:
        seconds = fill(embedded, vectors)
        files = [work / "embedded.db", work / "embedded.db-wal"]
        out["sqlite_insert"] = {"seconds": seconds, "per_second": len(vectors) / seconds,
                                "file_mib": sum(f.stat().st_size for f in files if f.exists()) / 2**20}
        print(f"sqlite: {len(vectors) / seconds:.0f} inserts/s", flush=True)
        exact_top = None
        for kind in ("exact", "hnsw"):
            embedded.index_kind, embedded._index = kind, None
            rss = rss_mib(os.getpid())["rss_mib"]
            t = time.perf_counter()
            top1(embedded, queries[:1])  # loads the vectors and builds the index
            build = time.perf_counter() - t
            top = top1(embedded, queries)
            exact_top = top if exact_top is None else exact_top
            out[f"embedded_{kind}"] = {
                "load_and_build_s": build, "rss_growth_mib": rss_mib(os.getpid())["rss_mib"] - rss,
                "recall_at_1_vs_exact": float(np.mean(top == exact_top)),
                "accuracy_vs_truth": float(np.mean(top == truth + 1)),
                "single": latencies(embedded, queries[:200], 1), f"batch{batch}": latencies(embedded, queries, batch)}
            print(f"embedded {kind}: single p50 {out[f'embedded_{kind}']['single']['p50_ms']:.2f} ms, "
                  f"recall@1 {out[f'embedded_{kind}']['recall_at_1_vs_exact']:.4f}", flush=True)
        embedded._index = None
    return out


def milvus_part(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, work: Path, batch: int) -> dict:
    from cnnkit.faces.gallery.search import ExactIndex

    ids = np.arange(1, len(vectors) + 1, dtype=np.int64)
    exact_top = np.array([h[0].person_id for h in ExactIndex(ids, ids, vectors).search(queries, 1)])
    out: dict = {}
    rss_before = rss_mib(os.getpid())["rss_mib"]  # Milvus Lite runs inside this process
    with Gallery(f"milvus-lite://{work / 'milvus.db'}", create=True, index="hnsw") as lite:
        seconds = fill(lite, vectors)
        out["milvus_lite_insert"] = {"seconds": seconds, "per_second": len(vectors) / seconds}
        print(f"milvus lite: {len(vectors) / seconds:.0f} inserts/s", flush=True)
        out["milvus_lite_index"] = {"type": "HNSW", "m": 32, "ef_construction": 80, "ef_search": 128,
                                    "flush_and_build_s": build_index(lite)}
        top = top1(lite, queries)
        out["milvus_lite"] = {
            "recall_at_1_vs_exact": float(np.mean(top == exact_top)),
            "accuracy_vs_truth": float(np.mean(top == truth + 1)),
            "single": latencies(lite, queries[:200], 1), f"batch{batch}": latencies(lite, queries, batch),
            "rss_growth_mib": rss_mib(os.getpid())["rss_mib"] - rss_before}
        print(f"milvus lite: single p50 {out['milvus_lite']['single']['p50_ms']:.2f} ms, "
              f"recall@1 {out['milvus_lite']['recall_at_1_vs_exact']:.4f}", flush=True)
    out["milvus_lite"]["files_mib"] = sum(f.stat().st_size
                                          for f in (work / "milvus.db").rglob("*") if f.is_file()) / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="entries (default 1,000,000)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="where the gallery files go (default: a temporary folder)")
    parser.add_argument("--reuse-parts", action="store_true",
                        help="keep a backend's results already in --workdir (after the other one failed)")
    parser.add_argument("--part", choices=["embedded", "milvus"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "milvus_search.json")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cnnkit-milvus-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.part:  # one backend in its own process, so that its memory is its own
        rng = np.random.default_rng(args.seed)
        vectors = unit_vectors(rng, args.n)
        queries, truth = probes(rng, vectors, min(args.queries, args.n))
        part = (embedded_part if args.part == "embedded" else milvus_part)(vectors, queries, truth, work, args.batch)
        part[f"{args.part}_process_peak_rss_mib"] = rss_mib(os.getpid())["peak_rss_mib"]
        args.out.write_text(json.dumps(part))
        return
    out: dict = {"entries": args.n, "full_scale_entries": 1_000_000, "queries": min(args.queries, args.n),
                 "batch": args.batch}
    for part in ("embedded", "milvus"):
        part_file = work / f"{part}.json"
        if args.reuse_parts and part_file.exists():
            print(f"{part}: reusing {part_file} (same --n/--queries/--seed, measured earlier)", flush=True)
            out.update(json.loads(part_file.read_text()))
            continue
        cmd = [sys.executable, "-m", __spec__.name, "--part", part, "--n", str(args.n), "--queries", str(args.queries),
               "--batch", str(args.batch), "--seed", str(args.seed), "--workdir", str(work), "--out", str(part_file)]
        subprocess.run(cmd, check=True)
        out.update(json.loads(part_file.read_text()))
    for kind in ("embedded_hnsw", "milvus_lite"):
        out[kind]["single_p50_ratio_to_embedded_exact"] = (out[kind]["single"]["p50_ms"]
                                                           / out["embedded_exact"]["single"]["p50_ms"])
    out["milvus_lite"]["single_p50_ratio_to_embedded_hnsw"] = (out["milvus_lite"]["single"]["p50_ms"]
                                                               / out["embedded_hnsw"]["single"]["p50_ms"])
    out["milvus_lite_insert"]["ratio_to_sqlite"] = (out["milvus_lite_insert"]["per_second"]
                                                    / out["sqlite_insert"]["per_second"])
    summary = {
        "what": "gallery search on seeded synthetic 128-D unit vectors: Milvus Lite vs the embedded SQLite gallery "
                "(exact matrix product and FAISS HNSW), through Gallery.search; each backend in its own process",
        "scale_note": None if args.n >= 1_000_000 else
        f"measured at {args.n:,} entries, not the full 1,000,000 (2 cores shared by several jobs); "
        "rerun with --n 1000000",
        "results": out}
    print(f"wrote {save_result('milvus_search', summary, out=args.out)}")


if __name__ == "__main__":
    main()
