"""Gallery search speed: exact (matrix product) vs approximate (FAISS HNSW), 1k / 100k / 1M entries.

Seeded synthetic 128-D unit vectors, one per person. Queries are probes of
enrolled people: a stored vector plus noise, renormalised, at a distance of
about 0.45 from it (like a second photo of the same person; random unit
vectors are about 1.41 apart). For each size: build time, single-query and
batch-of-64 latency (p50 / p99), recall@1 of HNSW against exact search, and the
memory each index holds.

    python -m bench.gallery.gallery_search [--sizes 1000 100000 1000000] [--queries 500]

Writes bench/results/gallery_search.json. Target at 1M on this 2-core machine:
p50 single-query <= 5 ms with recall@1 >= 0.99.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, peak_rss_mib, save_result
from cnnkit.faces.gallery.search import ExactIndex, HNSWIndex

DIM = 128


def unit_vectors(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # in chunks, to keep float64 temporaries small
        v = rng.standard_normal((min(100_000, n - start), dim))
        out[start:start + len(v)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def probes(rng: np.random.Generator, vectors: np.ndarray, count: int,
           noise: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copies of `count` stored vectors; the noise per axis is scaled so that it is about 0.45 long in any D."""
    dim = vectors.shape[1]
    truth = rng.choice(len(vectors), size=count, replace=False)
    q = vectors[truth] + rng.standard_normal((count, dim)).astype(np.float32) * noise * np.sqrt(DIM / dim)
    return q / np.linalg.norm(q, axis=1, keepdims=True), truth


def latencies(index, queries: np.ndarray, batch: int) -> dict[str, float]:
    times = []
    index.search(queries[:batch], 1)  # warm up
    for start in range(0, len(queries) - batch + 1, batch):
        t = time.perf_counter()
        index.search(queries[start:start + batch], 1)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "calls": len(times)}


def run_size(n: int, n_queries: int, ef_search: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    vectors = unit_vectors(rng, n)
    ids = np.arange(1, n + 1, dtype=np.int64)
    people = np.arange(n, dtype=np.int64)
    queries, truth = probes(rng, vectors, min(n_queries, n))
    out: dict = {"entries": n, "queries": len(queries)}

    t = time.perf_counter()
    exact = ExactIndex(ids, people, vectors)
    out["exact"] = {"build_s": time.perf_counter() - t,
                    "memory_mib": (exact.vectors.nbytes + exact.norms.nbytes) / 2**20}
    exact_top = np.array([h[0].person_id for h in exact.search(queries, 1)])
    out["exact"]["accuracy_vs_truth"] = float(np.mean(exact_top == people[truth]))
    out["exact"]["single"] = latencies(exact, queries[:min(len(queries), 200)], 1)
    out["exact"]["batch64"] = latencies(exact, queries, 64) if len(queries) >= 64 else None

    rss_before = peak_rss_mib()
    t = time.perf_counter()
    hnsw = HNSWIndex(ids, people, vectors, ef_search=ef_search)
    out["hnsw"] = {"build_s": time.perf_counter() - t, "ef_search": ef_search, "m": 32, "ef_construction": 80,
                   "memory_mib_estimate": (vectors.nbytes + n * 32 * 2 * 4) / 2**20,
                   "peak_rss_growth_mib": peak_rss_mib() - rss_before}
    approx_top = np.array([h[0].person_id if h else -1 for h in hnsw.search(queries, 1)])
    out["hnsw"]["recall_at_1_vs_exact"] = float(np.mean(approx_top == exact_top))
    out["hnsw"]["single"] = latencies(hnsw, queries, 1)
    out["hnsw"]["batch64"] = latencies(hnsw, queries, 64) if len(queries) >= 64 else None
    # The same graph searched wider: recall against latency, without rebuilding.
    out["hnsw_ef_sweep"] = []
    for ef in (256, 512, 1024):
        hnsw.ef_search = ef
        top = np.array([h[0].person_id if h else -1 for h in hnsw.search(queries, 1)])
        out["hnsw_ef_sweep"].append({"ef_search": ef, "recall_at_1_vs_exact": float(np.mean(top == exact_top)),
                                     "single": latencies(hnsw, queries[:200], 1)})
    print(f"{n:>8} entries: exact single p50 {out['exact']['single']['p50_ms']:.2f} ms  "
          f"hnsw single p50 {out['hnsw']['single']['p50_ms']:.3f} ms p99 {out['hnsw']['single']['p99_ms']:.3f} ms  "
          f"recall@1 {out['hnsw']['recall_at_1_vs_exact']:.4f}  (build {out['hnsw']['build_s']:.0f} s)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ef-search", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "gallery_search.json")
    args = parser.parse_args()
    results = []
    for n in args.sizes:  # saved after each size, so a long 1M run leaves the smaller ones behind
        results.append(run_size(n, args.queries, args.ef_search, args.seed))
        big = results[-1]
        summary = {
            "what": "gallery search on seeded synthetic 128-D unit vectors: exact vs FAISS HNSW",
            "results": results,
            "target": {"entries": 1_000_000, "single_p50_ms": 5.0, "recall_at_1": 0.99},
            "met": bool(big["entries"] >= 1_000_000 and big["hnsw"]["single"]["p50_ms"] <= 5.0
                        and big["hnsw"]["recall_at_1_vs_exact"] >= 0.99),
        }
        out = save_result("gallery_search", summary, out=args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
