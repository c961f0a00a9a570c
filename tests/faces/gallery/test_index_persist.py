"""The HNSW graph saved beside a gallery file: reused when current, patched when stale, scrubbed on removal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkit.faces.gallery import Gallery, search
from cnnkit.faces.gallery.store import EmbeddingRecord


def unit(rng, n, dim=128):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill(gallery: Gallery, vectors: np.ndarray, prefix: str) -> None:
    store, model = gallery.store, gallery.model
    with store.write() as tx:
        for i, v in enumerate(vectors):
            pid = store.add_person(tx, f"{prefix}{i}")
            store.add_embeddings(tx, pid, [EmbeddingRecord(vector=v, source=f"{prefix}{i}.jpg")], model.id,
                                 model.version)


@pytest.fixture(autouse=True)
def small_graphs_are_saved(monkeypatch):
    monkeypatch.setattr(search, "SAVE_FROM", 100)
    monkeypatch.setattr(search, "RESAVE_EDITS", 10)


def no_build(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the graph was built instead of read")
    monkeypatch.setattr(search.HNSWIndex, "__init__", refuse)


def answers(gallery: Gallery, probes: np.ndarray) -> list[list[tuple[int, float]]]:
    return [[(h.person_id, round(h.distance, 5)) for h in hits] for hits in gallery.search(probes, top_k=3)]


def graph_files(path):
    return sorted(p.name for p in path.parent.glob(path.name + ".hnsw*"))


def test_graph_is_saved_and_read_back_instead_of_built(tmp_path, monkeypatch):
    path, rng = tmp_path / "g.db", np.random.default_rng(0)
    vectors = unit(rng, 400)
    probes = vectors[:20] + 0.01 * unit(rng, 20)
    with Gallery(path, create=True, index="hnsw") as g:
        fill(g, vectors, "p")
        first = answers(g, probes)
    files = graph_files(path)
    assert len(files) == 2 and files[0] == "g.db.hnsw-" + files[0][len("g.db.hnsw-"):] and files[1] == "g.db.hnsw.npz"
    no_build(monkeypatch)
    with Gallery(path, index="hnsw") as g:
        assert answers(g, probes) == first
        assert [hits[0][0] for hits in first] == [g.resolve(f"p{i}").id for i in range(20)]
    with Gallery(path, readonly=True, index="hnsw") as g:  # a read-only opening reads it too
        assert answers(g, probes) == first


def test_a_read_only_opening_saves_the_graph(tmp_path):
    path, rng = tmp_path / "g.db", np.random.default_rng(6)
    with Gallery(path, create=True) as g:
        fill(g, unit(rng, 200), "p")
    with Gallery(path, readonly=True, index="hnsw") as g:  # what `cnnkit faces identify` does
        g.search(unit(rng, 1))
    assert len(graph_files(path)) == 2


def test_stale_graph_is_patched_not_rebuilt_and_saved_again(tmp_path, monkeypatch):
    path, rng = tmp_path / "g.db", np.random.default_rng(1)
    with Gallery(path, create=True, index="hnsw") as g:
        fill(g, unit(rng, 300), "p")
        g.search(unit(rng, 1))
    saved_before = graph_files(path)
    newcomers = unit(rng, 30)
    with Gallery(path, index="hnsw") as g:  # another process enrolls; it never searches
        fill(g, newcomers, "new")
    no_build(monkeypatch)
    with Gallery(path, index="hnsw") as g:
        (hits,) = g.search(newcomers[:1] + 0.001, top_k=1)
        assert hits[0].person_id == g.resolve("new0").id
        saved = json.loads(str(np.load(path.with_name("g.db.hnsw.npz"))["info"]))
        assert saved["changes"] == g.store.changes()  # the patched graph was saved, stamped with the counter
    assert graph_files(path) != saved_before and len(graph_files(path)) == 2  # a new pair, the old graph gone
    with Gallery(path, index="hnsw") as g:
        (hits,) = g.search(newcomers[5:6], top_k=1)
        assert hits[0].person_id == g.resolve("new5").id


def test_removal_scrubs_the_saved_graph(tmp_path, monkeypatch):
    import faiss

    path, rng = tmp_path / "g.db", np.random.default_rng(2)
    vectors = unit(rng, 200)
    with Gallery(path, create=True, index="hnsw") as g:
        fill(g, vectors, "p")
        g.search(vectors[:1])
    with Gallery(path, index="hnsw") as g:  # a process that removes someone, without searching
        gone = g.resolve("p7")
        g.remove(gone.id)
    (graph,) = [p for p in path.parent.glob("g.db.hnsw-*.faiss")]
    stored = faiss.read_index(str(graph))
    kept = np.stack([stored.reconstruct(i) for i in range(stored.ntotal)])
    assert not np.isclose(kept, vectors[7]).all(axis=1).any()  # the removed face's vector is not on disk
    assert np.isclose(kept, vectors[8]).all(axis=1).sum() == 1
    no_build(monkeypatch)
    with Gallery(path, index="hnsw") as g:
        (hits,) = g.search(vectors[7:8], top_k=3)
        assert gone.id not in {h.person_id for h in hits}


def test_a_graph_that_does_not_fit_is_ignored(tmp_path, caplog):
    rng = np.random.default_rng(3)
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    for path in (a, b):
        with Gallery(path, create=True, index="hnsw") as g:
            fill(g, unit(rng, 150), "p")
            g.search(unit(rng, 1))
    # b's graph beside a (another gallery's stamp): a builds its own and answers from its own people.
    (b_graph,) = b.parent.glob("b.db.hnsw-*.faiss")
    for old in a.parent.glob("a.db.hnsw*"):
        old.unlink()
    info = np.load(b.with_name("b.db.hnsw.npz"))
    np.savez(a.with_name("a.db.hnsw.npz"), **{k: info[k] for k in info.files})
    with Gallery(a, index="hnsw") as g:
        truth = g.embeddings_of(g.resolve("p3").id)
        (hits,) = g.search(truth, top_k=1)
        assert hits[0].person_id == g.resolve("p3").id and hits[0].distance < 1e-3
    # A damaged graph file: built anew, with a warning.
    (a_graph,) = a.parent.glob("a.db.hnsw-*.faiss")
    a_graph.write_bytes(b"not a graph")
    with Gallery(a, index="hnsw") as g:
        (hits,) = g.search(truth, top_k=1)
        assert hits[0].person_id == g.resolve("p3").id
    assert "cannot be read" in caplog.text
    assert b_graph.exists()


def test_small_galleries_and_exact_search_save_nothing(tmp_path):
    rng = np.random.default_rng(4)
    with Gallery(tmp_path / "small.db", create=True, index="hnsw") as g:
        fill(g, unit(rng, 50), "p")
        g.search(unit(rng, 1))
    with Gallery(tmp_path / "exact.db", create=True) as g:
        fill(g, unit(rng, 300), "p")
        g.search(unit(rng, 1))
    assert not list(tmp_path.glob("*.hnsw*"))


def test_change_counter_counts_every_committed_write(tmp_path):
    with Gallery(tmp_path / "g.db", create=True) as g:
        start = g.store.changes()
        fill(g, unit(np.random.default_rng(5), 3), "p")
        g.rename("p0", "q0")
        with pytest.raises(RuntimeError), g.store.write():
            raise RuntimeError("refused: rolled back, not counted")
        assert g.store.changes() == start + 2
    with Gallery(tmp_path / "g.db") as other:
        assert other.store.changes() == start + 2
