"""Gallery search at scale, every backend in one run: SQLite exact, embedded HNSW, Milvus Lite, a Milvus server.

Seeded synthetic unit vectors (128-D and 512-D), one per person, written
through each gallery's own store (SQLite file; Milvus Lite file; the embedded
Milvus 2.3.5 standalone server of PyPI's `milvus`, on loopback), 10,000 people
per write. Queries are probes of enrolled people (a stored vector plus noise,
as in bench.gallery.gallery_search). Measured for each: insert throughput,
index build, single-query and batch latency (p50 / p99) through
`Gallery.search`, recall@1 against exact search, and memory (this process's
growth for the embedded indexes; the Milvus process's resident memory: Milvus
Lite's server runs as a child of this process, so does the standalone server).
For the embedded HNSW graph also the time to open the gallery again and answer
a first query with the graph saved beside the file (search.SavedIndex).

    python -m bench.gallery.milvus_search [--n 1000000] [--dims 128 512] [--parts embedded milvus-lite milvus]

Writes bench/results/gallery_backends.json (the scale measured is in "entries";
bench/results/milvus_search.json keeps the earlier 1M run of Milvus Lite alone).
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
#: An encoder of each embedding size: the gallery records it (no photo is encoded here).
ENCODER = {128: "sface-2021dec", 512: "w600k-mbf"}
PARTS = ("embedded", "milvus-lite", "milvus")


def rss_mib(pid: int) -> dict[str, float]:
    """Current and peak resident memory of a process (Linux /proc), MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out["rss_mib" if line.startswith("VmRSS") else "peak_rss_mib"] = int(line.split()[1]) / 1024
    return out


def children_rss_mib() -> float:
    """Resident memory of this process's child processes (a Milvus server it started), MiB."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid():
                total += rss_mib(int(stat.parent.name))["rss_mib"]
        except (OSError, IndexError, ValueError, KeyError):
            continue
    return total


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


def latencies(searcher, queries: np.ndarray, batch: int) -> dict[str, float]:
    """p50/p99 of `searcher.search` (a Gallery, or its index alone) over `batch` queries at a time."""
    search = (lambda q: searcher.search(q, top_k=1)) if isinstance(searcher, Gallery) else (
        lambda q: searcher.search(q, 1))
    search(queries[:batch])  # warm up
    times = []
    for start in range(0, len(queries) - batch + 1, batch):
        t = time.perf_counter()
        search(queries[start:start + batch])
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
    dim = vectors.shape[1]
    path = work / f"embedded-{dim}.db"
    with Gallery(path, create=True, index="exact", encoder=ENCODER[dim]) as embedded:
        seconds = fill(embedded, vectors)
        files = [path, path.with_name(path.name + "-wal")]
        out["sqlite_insert"] = {"seconds": seconds, "per_second": len(vectors) / seconds,
                                "file_mib": sum(f.stat().st_size for f in files if f.exists()) / 2**20}
        print(f"sqlite {dim}-D: {len(vectors) / seconds:.0f} inserts/s", flush=True)
        exact_top = None
        for kind in ("exact", "hnsw"):
            embedded.index_kind, embedded._index = kind, None
            rss = rss_mib(os.getpid())["rss_mib"]
            t = time.perf_counter()
            top1(embedded, queries[:1])  # loads the vectors and builds the index (HNSW: and saves it)
            build = time.perf_counter() - t
            top = top1(embedded, queries)
            exact_top = top if exact_top is None else exact_top
            hnsw_top = top
            out[f"embedded_{kind}"] = {
                "load_and_build_s": build, "rss_growth_mib": rss_mib(os.getpid())["rss_mib"] - rss,
                "recall_at_1_vs_exact": float(np.mean(top == exact_top)),
                "accuracy_vs_truth": float(np.mean(top == truth + 1)),
                "single": latencies(embedded, queries[:200], 1), f"batch{batch}": latencies(embedded, queries, batch),
                "single_index_only": latencies(embedded._index, queries[:200], 1)}
            print(f"embedded {kind} {dim}-D: build {build:.1f} s, single p50 "
                  f"{out[f'embedded_{kind}']['single']['p50_ms']:.2f} ms, "
                  f"recall@1 {out[f'embedded_{kind}']['recall_at_1_vs_exact']:.4f}", flush=True)
        embedded._index = None
    t = time.perf_counter()
    with Gallery(path, readonly=True, index="hnsw") as again:  # another process would do just this
        top = top1(again, queries[:1])
        out["embedded_hnsw"]["reopen_with_saved_graph_s"] = time.perf_counter() - t
        out["embedded_hnsw"]["saved_graph_mib"] = sum(
            f.stat().st_size for f in work.glob(path.name + ".hnsw*")) / 2**20
        out["embedded_hnsw"]["saved_graph_same_top1_share"] = float(np.mean(top1(again, queries) == hnsw_top))
    print(f"embedded hnsw {dim}-D: reopened with the saved graph in "
          f"{out['embedded_hnsw']['reopen_with_saved_graph_s']:.2f} s", flush=True)
    return out


def milvus_part(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, work: Path, batch: int, *,
                server: bool) -> dict:
    from contextlib import nullcontext

    from cnnkit.faces.gallery.milvus_server import embedded_milvus
    from cnnkit.faces.gallery.search import ExactIndex

    dim = vectors.shape[1]
    name = "milvus_server" if server else "milvus_lite"
    ids = np.arange(1, len(vectors) + 1, dtype=np.int64)
    exact_top = np.array([h[0].person_id for h in ExactIndex(ids, ids, vectors).search(queries, 1)])
    out: dict = {}
    running = embedded_milvus(work / f"server-{dim}") if server else nullcontext(None)
    with running as address:
        where = f"milvus://{address}/bench{dim}" if server else f"milvus-lite://{work / f'milvus-{dim}.db'}"
        with Gallery(where, create=True, index="hnsw", encoder=ENCODER[dim]) as g:
            seconds = fill(g, vectors)
            out[f"{name}_insert"] = {"seconds": seconds, "per_second": len(vectors) / seconds}
            print(f"{name} {dim}-D: {len(vectors) / seconds:.0f} inserts/s", flush=True)
            out[f"{name}_index"] = {"type": "HNSW", "m": 32, "ef_construction": 80, "ef_search": 128,
                                    "flush_and_build_s": build_index(g)}
            top = top1(g, queries)
            out[name] = {
                "recall_at_1_vs_exact": float(np.mean(top == exact_top)),
                "accuracy_vs_truth": float(np.mean(top == truth + 1)),
                "single": latencies(g, queries[:200], 1), f"batch{batch}": latencies(g, queries, batch),
                "server_rss_mib": children_rss_mib()}
            print(f"{name} {dim}-D: index {out[f'{name}_index']['flush_and_build_s']:.1f} s, single p50 "
                  f"{out[name]['single']['p50_ms']:.2f} ms, recall@1 {out[name]['recall_at_1_vs_exact']:.4f}",
                  flush=True)
    folder = work / (f"server-{dim}" if server else f"milvus-{dim}.db")
    out[name]["files_mib"] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="entries (default 1,000,000)")
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 512], choices=sorted(ENCODER))
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="where the gallery files go (default: a temporary folder)")
    parser.add_argument("--reuse-parts", action="store_true",
                        help="keep a backend's results already in --workdir (after another one failed)")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--dim", type=int, default=128, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "gallery_backends.json")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cnnkit-milvus-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.part:  # one backend in its own process, so that its memory is its own
        rng = np.random.default_rng(args.seed)
        vectors = unit_vectors(rng, args.n, args.dim)
        queries, truth = probes(rng, vectors, min(args.queries, args.n))
        part = (embedded_part(vectors, queries, truth, work, args.batch) if args.part == "embedded" else
                milvus_part(vectors, queries, truth, work, args.batch, server=args.part == "milvus"))
        part[f"{args.part}_process_peak_rss_mib"] = rss_mib(os.getpid())["peak_rss_mib"]
        args.out.write_text(json.dumps(part))
        return
    results: dict = {}
    for dim in args.dims:
        out: dict = {"entries": args.n, "dim": dim, "queries": min(args.queries, args.n), "batch": args.batch}
        for part in args.parts:
            part_file = work / f"{part}-{dim}.json"
            if args.reuse_parts and part_file.exists():
                print(f"{part} {dim}-D: reusing {part_file} (same --n/--queries/--seed, measured earlier)", flush=True)
                out.update(json.loads(part_file.read_text()))
                continue
            cmd = [sys.executable, "-m", __spec__.name, "--part", part, "--dim", str(dim), "--n", str(args.n),
                   "--queries", str(args.queries), "--batch", str(args.batch), "--seed", str(args.seed),
                   "--workdir", str(work), "--out", str(part_file)]
            subprocess.run(cmd, check=True)
            out.update(json.loads(part_file.read_text()))
        base = out.get("embedded_exact", {}).get("single", {}).get("p50_ms")
        for kind in ("embedded_hnsw", "milvus_lite", "milvus_server"):
            if kind in out and base:
                out[kind]["single_p50_ratio_to_embedded_exact"] = out[kind]["single"]["p50_ms"] / base
        results[f"{dim}d"] = out
        summary = {
            "what": "gallery search on seeded synthetic unit vectors through Gallery.search: the embedded SQLite "
                    "gallery (exact matrix product; FAISS HNSW, its graph saved beside the file), Milvus Lite and "
                    "the Milvus 2.3.5 standalone server (loopback); each backend in its own process",
            "scale_note": None if args.n >= 1_000_000 else
            f"measured at {args.n:,} entries, not the full 1,000,000 (at 1M the four backends and two sizes take "
            "several hours on 2 cores: Milvus Lite alone took 55 min to insert and index 128-D, milvus_search.json); "
            "rerun with --n 1000000",
            "backends_run": args.parts, "results": results}
        print(f"wrote {save_result('gallery_backends', summary, out=args.out)}", flush=True)


if __name__ == "__main__":
    main()
