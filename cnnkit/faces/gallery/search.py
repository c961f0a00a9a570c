"""Nearest people for query embeddings: exact (one matrix product) or approximate (FAISS HNSW).

Both answer the same question: for each query, the `k` nearest *people*, each at
the distance of that person's nearest embedding (every photo a person has
counts). The exact index is the default; the HNSW graph takes over for large
galleries, where a matrix product over every embedding gets slow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: From this many embeddings on, `index="auto"` uses HNSW.
APPROXIMATE_FROM = 50_000
INDEX_CHOICES = ("auto", "exact", "hnsw")


@dataclass(frozen=True)
class Hit:
    person_id: int
    distance: float
    embedding_id: int


def _group_by_person(order_ids: np.ndarray, distances: np.ndarray, person_of: np.ndarray,
                     embedding_ids: np.ndarray, k: int) -> list[Hit]:
    """Walk candidates nearest first; keep each person's first (nearest) hit, until k people."""
    hits: list[Hit] = []
    seen: set[int] = set()
    for idx, dist in zip(order_ids, distances):
        if idx < 0:
            continue
        person = int(person_of[idx])
        if person in seen:
            continue
        seen.add(person)
        hits.append(Hit(person, float(np.sqrt(max(dist, 0.0))), int(embedding_ids[idx])))
        if len(hits) == k:
            break
    return hits


class ExactIndex:
    """All embeddings in one float32 matrix; squared distances by one matrix product per batch."""

    def __init__(self, embedding_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray) -> None:
        self.embedding_ids = embedding_ids.astype(np.int64)
        self.person_ids = person_ids.astype(np.int64)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.norms = (self.vectors ** 2).sum(1)

    def __len__(self) -> int:
        return len(self.vectors)

    def add(self, embedding_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(vectors):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            self.embedding_ids = np.concatenate([self.embedding_ids, embedding_ids.astype(np.int64)])
            self.person_ids = np.concatenate([self.person_ids, person_ids.astype(np.int64)])
            self.vectors = np.concatenate([self.vectors, vectors])
            self.norms = np.concatenate([self.norms, (vectors ** 2).sum(1)])

    def remove(self, embedding_ids: set[int]) -> None:
        keep = ~np.isin(self.embedding_ids, np.fromiter(embedding_ids, np.int64))
        self.embedding_ids, self.person_ids = self.embedding_ids[keep], self.person_ids[keep]
        self.vectors, self.norms = self.vectors[keep], self.norms[keep]

    @property
    def stale_fraction(self) -> float:
        return 0.0

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.vectors.shape[1])
        if len(self) == 0:
            return [[] for _ in queries]
        # |q - e|^2 = |q|^2 + |e|^2 - 2 q.e, for all pairs at once
        d2 = (queries ** 2).sum(1)[:, None] + self.norms[None, :] - 2.0 * queries @ self.vectors.T
        results = []
        for row in d2:
            # The k nearest people are among the nearest (k + most photos of one person) embeddings,
            # but a simple, always-correct route: partial sort a generous prefix, widen if needed.
            take = min(len(row), max(4 * k, 32))
            while True:
                part = np.argpartition(row, take - 1)[:take] if take < len(row) else np.arange(len(row))
                order = part[np.argsort(row[part], kind="stable")]
                hits = _group_by_person(order, row[order], self.person_ids, self.embedding_ids, k)
                if len(hits) == k or take >= len(row):
                    break
                take = min(len(row), take * 4)
            results.append(hits)
        return results


class HNSWIndex:
    """FAISS's HNSW graph over the embeddings (L2); removals are filtered out at query time."""

    def __init__(self, embedding_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray, *,
                 m: int = 32, ef_construction: int = 80, ef_search: int = 256) -> None:
        import faiss  # a dependency of cnnkit itself (faiss-cpu)
        dim = vectors.shape[1]
        self.index = faiss.IndexHNSWFlat(dim, m)
        self.index.hnsw.efConstruction = ef_construction
        self.index.hnsw.efSearch = ef_search
        self.embedding_ids = np.zeros(0, np.int64)
        self.person_ids = np.zeros(0, np.int64)
        self.removed: set[int] = set()  # FAISS rows whose embedding was removed since the build
        self.add(embedding_ids, person_ids, vectors)

    def __len__(self) -> int:
        return len(self.embedding_ids) - len(self.removed)

    @property
    def stale_fraction(self) -> float:
        """Share of the graph's rows that are removed embeddings (rebuild when it grows large)."""
        return len(self.removed) / max(len(self.embedding_ids), 1)

    @property
    def ef_search(self) -> int:
        return int(self.index.hnsw.efSearch)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self.index.hnsw.efSearch = int(value)

    def add(self, embedding_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert new embeddings (the graph grows incrementally)."""
        if len(vectors):
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
            self.embedding_ids = np.concatenate([self.embedding_ids, embedding_ids.astype(np.int64)])
            self.person_ids = np.concatenate([self.person_ids, person_ids.astype(np.int64)])

    def remove(self, embedding_ids: set[int]) -> None:
        """Mark embeddings as gone; they are skipped in results until the next rebuild."""
        rows = np.flatnonzero(np.isin(self.embedding_ids, np.fromiter(embedding_ids, np.int64)))
        self.removed.update(int(r) for r in rows)

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(self) == 0:
            return [[] for _ in queries]
        want = min(len(self.embedding_ids), max(4 * k, 32) + len(self.removed))
        distances, rows = self.index.search(queries, want)
        person_of = self.person_ids
        if self.removed:
            person_of = self.person_ids.copy()
            rows = np.where(np.isin(rows, np.fromiter(self.removed, np.int64)), -1, rows)
        return [_group_by_person(r, d, person_of, self.embedding_ids, k) for r, d in zip(rows, distances)]
