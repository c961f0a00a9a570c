"""Nearest people for query embeddings: exact (one matrix product) or approximate (FAISS HNSW).

Both answer the same question: for each query, the `k` nearest *people*, each at
the distance of that person's nearest embedding (every photo a person has
counts). The exact index is the default; the HNSW graph takes over for large
galleries, where a matrix product over every embedding gets slow.

Building the graph takes minutes at a million embeddings, so the graph of a
gallery file is saved beside it (`SavedIndex`: `office.db.hnsw.npz`, naming
`office.db.hnsw-<token>.faiss`), stamped with the gallery's change counter
(`GalleryStore.changes`). A process that opens the gallery reads the graph
instead of building it; when the gallery changed since, the graph is patched
(new embeddings added, removed ones dropped), and saved again once enough
changed. A removal also scrubs the removed vectors out of the saved graph at
once (`SavedIndex.scrub`): deleted biometric data does not linger beside the
gallery.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...runtime.files import fsync_path

log = logging.getLogger(__name__)

#: From this many embeddings on, `index="auto"` uses HNSW.
APPROXIMATE_FROM = 50_000
INDEX_CHOICES = ("auto", "exact", "hnsw")
#: A graph of this many embeddings or more is saved beside its gallery file (smaller ones build in seconds).
SAVE_FROM = 20_000
#: A patched graph is saved again once this many of its embeddings (or this share of them) changed.
RESAVE_EDITS, RESAVE_FRACTION = 1_000, 0.01
_FAR = 1e4  # what a removed embedding's vector is overwritten with


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
        self.edits = 0  # embeddings added or removed since the graph was made (what `SavedIndex` counts)
        self.add(embedding_ids, person_ids, vectors)

    @classmethod
    def from_faiss(cls, index: Any, embedding_ids: np.ndarray, person_ids: np.ndarray, removed: np.ndarray, *,
                   ef_search: int = 256) -> HNSWIndex:
        """An HNSWIndex around a graph read back from disk, with the ids of its rows."""
        self = cls.__new__(cls)
        self.index = index
        self.index.hnsw.efSearch = ef_search
        self.embedding_ids = embedding_ids.astype(np.int64)
        self.person_ids = person_ids.astype(np.int64)
        self.removed = {int(r) for r in removed}
        self.edits = 0
        return self

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
            self.edits += len(vectors)

    def remove(self, embedding_ids: set[int]) -> None:
        """Mark embeddings as gone; they are skipped in results until the next rebuild.

        Their vectors are overwritten in the graph's storage (with a point far from
        every unit-scale embedding), so neither memory nor a saved graph keeps them.
        """
        import faiss

        rows = np.flatnonzero(np.isin(self.embedding_ids, np.fromiter(embedding_ids, np.int64)))
        rows = rows[~np.isin(rows, np.fromiter(self.removed, np.int64))]
        if not len(rows):
            return
        storage: Any = faiss.downcast_index(self.index.storage)
        dim = self.index.d
        stored = faiss.rev_swig_ptr(storage.get_xb(), self.index.ntotal * dim).reshape(-1, dim)
        stored[rows] = _FAR
        self.removed.update(int(r) for r in rows)
        self.edits += len(rows)

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


class SavedIndex:
    """The HNSW graph of one gallery file, kept beside it between processes (see the module's notes).

    `<gallery>.hnsw.npz` holds the stamp (model, dimension, the gallery's
    creation time, the change counter the graph reflects), the embedding and
    person id of each graph row, the removed rows, and the name of the graph
    file `<gallery>.hnsw-<token>.faiss` (FAISS's own format). A save writes a
    new graph file, then replaces the .npz in one rename, then deletes older
    graph files: a crash at any point leaves a complete, matching pair.
    """

    def __init__(self, gallery_file: str | os.PathLike, stamp: dict) -> None:
        self.gallery_file = Path(gallery_file)
        self.meta_file = self.gallery_file.with_name(self.gallery_file.name + ".hnsw.npz")
        self.stamp = stamp
        self._saved: tuple[int, int] | None = None  # (id of the index object, its edits) when last saved/read

    def load(self, rows_of: Callable[[int], list[dict]], *, ef_search: int = 256) -> tuple[HNSWIndex, int] | None:
        """The saved graph and the change counter it reflects; None when there is none that fits.

        `rows_of(person_id)` gives a person's stored embedding rows: a sample of
        the graph's rows is compared with them, so a graph saved from another
        gallery (a copy, a restored backup) is never used for this one.
        """
        import faiss

        try:
            with np.load(self.meta_file, allow_pickle=False) as saved:
                info = json.loads(str(saved["info"]))
                ids, people, removed = saved["embedding_ids"], saved["person_ids"], saved["removed"]
            if info.get("stamp") != self.stamp:
                return None
            graph = faiss.read_index(str(self.meta_file.with_name(info["graph"])))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            if self.meta_file.exists():
                log.warning("%s: the saved search graph cannot be read (%s); building it anew", self.meta_file, exc)
            return None
        if (not isinstance(graph, faiss.IndexHNSWFlat) or graph.ntotal != len(ids)
                or graph.d != int(self.stamp["dim"]) or len(people) != len(ids)):
            log.warning("%s: the saved search graph does not match its ids; building it anew", self.meta_file)
            return None
        if not _matches(graph, ids, people, removed, rows_of):
            log.warning("%s: the saved search graph is another gallery's; building this one's", self.meta_file)
            return None
        index = HNSWIndex.from_faiss(graph, ids, people, removed, ef_search=ef_search)
        self._saved = (id(index), 0)
        return index, int(info["changes"])

    def due(self, index: ExactIndex | HNSWIndex) -> bool:
        """Whether `index` should be (re)saved: a graph large enough that differs enough from the saved one."""
        if not isinstance(index, HNSWIndex) or len(index.embedding_ids) < SAVE_FROM:
            return False
        if self._saved is None or self._saved[0] != id(index):
            return True
        edits = index.edits - self._saved[1]
        return edits >= min(RESAVE_EDITS, max(1, int(RESAVE_FRACTION * len(index.embedding_ids)))) or (
            edits > 0 and bool(index.removed))

    def save(self, index: HNSWIndex, changes: int) -> bool:
        """Write the graph and its ids, stamped with `changes`; False (logged) where the folder is not writable."""
        import faiss

        token = secrets.token_hex(6)
        graph = self.gallery_file.with_name(f"{self.gallery_file.name}.hnsw-{token}.faiss")
        tmp = self.meta_file.with_name(f"{self.meta_file.name}.{token}.tmp")
        try:
            faiss.write_index(index.index, str(graph))
            fsync_path(graph)
            info = {"stamp": self.stamp, "changes": int(changes), "graph": graph.name}
            with open(tmp, "wb") as f:
                np.savez(f, info=np.array(json.dumps(info)), embedding_ids=index.embedding_ids,
                         person_ids=index.person_ids, removed=np.array(sorted(index.removed), np.int64))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.meta_file)
        except (OSError, RuntimeError) as exc:
            log.warning("%s: cannot save the search graph (%s); it is built again next time", self.meta_file, exc)
            for leftover in (graph, tmp):
                leftover.unlink(missing_ok=True)
            return False
        for old in self.gallery_file.parent.glob(f"{self.gallery_file.name}.hnsw-*.faiss"):
            if old != graph:
                old.unlink(missing_ok=True)
        self._saved = (id(index), index.edits)
        return True

    def scrub(self, present_ids: np.ndarray, changes: int, rows_of: Callable[[int], list[dict]]) -> None:
        """Drop from the saved graph every embedding not in `present_ids` (after a removal), now."""
        found = self.load(rows_of)
        if found is None:
            return
        index, _ = found
        gone = set(index.embedding_ids.tolist()) - set(present_ids.tolist())
        if gone:
            index.remove(gone)
            self.save(index, min(changes, found[1]))

    def remove_files(self) -> None:
        """Delete the saved graph (what `Gallery` does when the gallery file itself is gone or replaced)."""
        for path in [self.meta_file, *self.gallery_file.parent.glob(f"{self.gallery_file.name}.hnsw-*.faiss")]:
            path.unlink(missing_ok=True)


def _matches(graph: Any, ids: np.ndarray, people: np.ndarray, removed: np.ndarray,
             rows_of: Callable[[int], list[dict]], sample: int = 8) -> bool:
    """Whether sampled rows of the graph hold the vectors the gallery stores under their ids (those still there)."""
    live = np.setdiff1d(np.arange(len(ids)), removed)
    if not len(live):
        return True
    checked = 0
    for row in live[np.linspace(0, len(live) - 1, min(sample, len(live))).astype(int)]:
        stored = {int(r["id"]): r for r in rows_of(int(people[row]))}.get(int(ids[row]))
        if stored is None:
            continue  # removed since the graph was saved: the patch drops it
        if not np.array_equal(np.frombuffer(stored["vector"], "<f4"), graph.reconstruct(int(row))):
            return False
        checked += 1
    return checked > 0 or len(live) == 0

