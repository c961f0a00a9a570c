"""The Gallery interface on every backend: SQLite files, a Milvus server, and Milvus Lite (a local file).

The same enroll / identify / verify / remove tests run against each backend;
then Milvus-specific behaviour (locations, consistency after an interrupted
write) and migration between backends. The Milvus server is the embedded
standalone server of PyPI's `milvus` 2.3.5, started once for the session on a
free loopback port (the `milvus_server` fixture, conftest.py).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from cnnkit.faces.gallery import Gallery, GalleryError
from cnnkit.faces.gallery.backends import backend_of
from cnnkit.faces.gallery.migrate import compare_galleries, migrate_gallery
from cnnkit.faces.gallery.store import EmbeddingRecord
from tests.conftest import lfw_image

pytest.importorskip("milvus_lite", reason="Milvus Lite is not installed (pip install milvus-lite)")

# The server's tests start a server and make collections (about 10 s a gallery on two cores): a marked job of CI.
SERVER = pytest.param("milvus", marks=pytest.mark.milvus_server)
BACKENDS = ("sqlite", SERVER, "milvus-lite")
MILVUS = (SERVER, "milvus-lite")


_LITE_FILE: list = []
_SERVER: list = []


@pytest.fixture(scope="module", autouse=True)
def lite_file(tmp_path_factory):
    """One Milvus Lite file for the module (its server starts once); each test has its own collections."""
    _LITE_FILE[:] = [tmp_path_factory.mktemp("milvus") / "galleries.db"]
    yield _LITE_FILE[0]


@pytest.fixture(autouse=True)
def server_when_needed(request):
    """Start (once) the embedded Milvus server for the tests that use the "milvus" backend."""
    params = getattr(request.node, "callspec", None)
    if params is not None and "milvus" in params.params.values():
        _SERVER[:] = [request.getfixturevalue("milvus_server")]


def location(tmp_path, backend: str, name: str = "g") -> str:
    if backend == "sqlite":
        return str(tmp_path / f"{name}.db")
    collection = re.sub(r"\W", "_", f"{tmp_path.name}_{name}")
    if backend == "milvus":
        return f"milvus://{_SERVER[0]}/t_{collection}"
    return f"milvus-lite://{_LITE_FILE[0]}?collection=t_{collection}"


def unit(rng, n, dim=128):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def records(vectors, prefix="photo"):
    return [EmbeddingRecord(vector=v, source=f"{prefix}{i}.jpg", source_sha256=f"{prefix}-{i}", box=(1, 2, 30, 40))
            for i, v in enumerate(vectors)]


@pytest.fixture(params=BACKENDS)
def gallery(request, tmp_path):
    with Gallery(location(tmp_path, request.param), create=True) as g:
        yield g


def test_location_chooses_the_backend(tmp_path):
    assert backend_of(str(tmp_path / "g.db")) == "sqlite" and backend_of(tmp_path / "g.db") == "sqlite"
    assert backend_of("milvus://localhost:19530/office") == "milvus"
    assert backend_of("milvus-lite://x.db") == "milvus-lite"
    from cnnkit.faces.gallery.milvus_store import MilvusLocation

    assert (MilvusLocation.parse("milvus://db.example:19531/office")
            == MilvusLocation("http://db.example:19531", "office", False))
    assert (MilvusLocation.parse("milvus-lite:///tmp/a.db?collection=site2")
            == MilvusLocation("/tmp/a.db", "site2", True))
    for bad, message in [("milvus://host:19530", "COLLECTION"), ("milvus://host/a/b", "COLLECTION"),
                         ("milvus-lite://a.txt", "end in .db"), ("milvus-lite://a.db?x=1", "collection=NAME"),
                         ("milvus://host/9lives", "letters, digits")]:
        with pytest.raises(GalleryError, match=message):
            Gallery(bad)
    with pytest.raises(GalleryError, match="cannot reach Milvus"):
        Gallery("milvus://127.0.0.1:9/office")  # nothing listens on the discard port


def test_enroll_and_identify_by_nearest_photo(gallery):
    rng = np.random.default_rng(0)
    alice, bob = unit(rng, 2), unit(rng, 1)
    gallery.enroll_embeddings("Alice", records(alice, "a"), metadata={"badge": "17"})
    gallery.enroll_embeddings("Bob", records(bob, "b"))
    assert [(p.name, p.embeddings, p.metadata) for p in gallery.people()] == [
        ("Alice", 2, {"badge": "17"}), ("Bob", 1, {})]
    probe = alice[1] + 0.01  # near Alice's *second* photo: every photo counts
    (answer,) = gallery.identify_embeddings(probe[None], top_k=2)
    assert answer.name == "Alice" and answer.distance == pytest.approx(0.01 * np.sqrt(128), rel=1e-3)
    assert [c.name for c in answer.candidates] == ["Alice", "Bob"]
    (stranger,) = gallery.identify_embeddings(unit(rng, 1), top_k=3)
    assert stranger.name is None and stranger.distance > gallery.threshold and len(stranger.candidates) == 2


def test_search_ranks_people_not_photos(gallery):
    rng = np.random.default_rng(3)
    base = unit(rng, 1)[0]
    many = base[None] + 0.02 * unit(rng, 30)  # 30 photos of one person, all near the probe
    gallery.enroll_embeddings("Many", records(many, "m"))
    others = [gallery.enroll_embeddings(f"P{i}", records(unit(rng, 1), f"p{i}")).id for i in range(5)]
    (hits,) = gallery.search(base[None], top_k=4)
    assert len(hits) == 4 and len({h.person_id for h in hits}) == 4
    assert hits[0].person_id == gallery.resolve("Many").id and {h.person_id for h in hits[1:]} <= set(others)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)


def test_existing_name_adds_photos_new_person_makes_a_second(gallery):
    rng = np.random.default_rng(1)
    first = gallery.enroll_embeddings("Sam", records(unit(rng, 1), "s1"))
    again = gallery.enroll_embeddings("Sam", records(unit(rng, 1), "s2"))
    assert again.id == first.id and again.embeddings == 2
    other = gallery.enroll_embeddings("Sam", records(unit(rng, 1), "s3"), new_person=True)
    assert other.id != first.id
    with pytest.raises(GalleryError, match=r"2 people are called 'Sam'"):
        gallery.resolve("Sam")
    more = gallery.enroll_embeddings("Sam", records(unit(rng, 1), "s4"), person_id=other.id)
    assert more.id == other.id and more.embeddings == 2


def test_remove_and_rename(gallery):
    rng = np.random.default_rng(2)
    ann = gallery.enroll_embeddings("Ann", records(unit(rng, 3), "a"))
    keep = gallery.enroll_embeddings("Kim", records(unit(rng, 1), "k"))
    assert gallery.rename("Ann", 'Anne "the" \\ Great').name == 'Anne "the" \\ Great'
    assert gallery.resolve('Anne "the" \\ Great').id == ann.id  # names with quotes reach Milvus filters safely
    removed = gallery.remove(f"#{ann.id}")
    assert removed.id == ann.id and [p.name for p in gallery.people()] == ["Kim"]
    assert {r["person_id"] for r in gallery.store.embedding_rows()} == {keep.id}
    assert gallery.store.source_hashes() == {"k-0"}
    with pytest.raises(GalleryError, match="no person with id"):
        gallery.resolve(f"#{ann.id}")
    (answer,) = gallery.identify_embeddings(unit(rng, 1), top_k=3)
    assert [c.name for c in answer.candidates] == ["Kim"]
    # Ids are never given again, as in SQLite's AUTOINCREMENT.
    assert gallery.enroll_embeddings("New", records(unit(rng, 1), "n")).id > keep.id
    assert gallery.check() == []


def test_empty_gallery_and_bad_embeddings(gallery):
    (answer,) = gallery.identify_embeddings(unit(np.random.default_rng(4), 1))
    assert answer.name is None and answer.candidates == []
    with pytest.raises(GalleryError, match="does not fit this gallery"):
        gallery.enroll_embeddings("X", [EmbeddingRecord(vector=np.zeros(64, np.float32))])
    assert gallery.people() == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_reopen_keeps_everything_and_readonly_refuses_writes(tmp_path, backend):
    where = location(tmp_path, backend)
    rng = np.random.default_rng(5)
    vectors = unit(rng, 2)
    with Gallery(where, create=True) as g:
        g.enroll_embeddings("Alice", records(vectors, "a"))
        g.set_threshold(0.5, {"method": "test"})
    with Gallery(where, readonly=True) as g:
        assert [(p.name, p.embeddings) for p in g.people()] == [("Alice", 2)]
        assert g.threshold == 0.5 and g.threshold_source == {"method": "test"}
        rows = g.store.embedding_rows()
        assert np.array_equal(np.stack([np.frombuffer(r["vector"], "<f4") for r in rows]), vectors)
        assert [(r["source"], r["source_sha256"], r["box"]) for r in rows] == [
            ("a0.jpg", "a-0", "[1.0, 2.0, 30.0, 40.0]"), ("a1.jpg", "a-1", "[1.0, 2.0, 30.0, 40.0]")]
        with pytest.raises(GalleryError, match="read-only"):
            g.remove("Alice")
    with pytest.raises(GalleryError, match="no such gallery"):
        Gallery(location(tmp_path, backend, "missing"))


@pytest.mark.parametrize("backend", MILVUS)
def test_milvus_interrupted_write_never_shows_half_a_person(tmp_path, backend):
    """Embeddings written without their person row (a crash in between) stay invisible and are reported."""
    with Gallery(location(tmp_path, backend), create=True) as g:
        rng = np.random.default_rng(6)
        g.enroll_embeddings("Whole", records(unit(rng, 1), "w"))
        store = g.store
        ghost = unit(rng, 2)
        with store.write() as tx:
            pid = store.add_person(tx, "Half", None)
            store.add_embeddings(tx, pid, records(ghost, "h"), g.model.id, g.model.version)
            tx.new_people.clear()  # what a crash after the vectors and before the person row leaves
        assert [p.name for p in g.people()] == ["Whole"]
        (hits,) = g.search(ghost[:1], top_k=3)
        assert [h.person_id for h in hits] == [g.resolve("Whole").id]
        assert "h-0" not in store.source_hashes()  # enroll-tree will enroll those photos again
        assert any("belong to no person" in p for p in g.check())
        # A change refused inside a write block sends nothing.
        with pytest.raises(GalleryError, match="does not fit"):
            g.enroll_embeddings("Bad", [EmbeddingRecord(vector=np.ones(5, np.float32))])
        assert [p.name for p in g.people()] == ["Whole"]


@pytest.mark.parametrize("first, second", [("sqlite", "milvus-lite"), ("milvus-lite", "sqlite"),
                                           pytest.param("sqlite", "milvus", marks=pytest.mark.milvus_server),
                                           pytest.param("milvus", "milvus-lite", marks=pytest.mark.milvus_server)])
def test_migrate_between_backends_without_loss(tmp_path, first, second):
    rng = np.random.default_rng(7)
    with Gallery(location(tmp_path, first, "src"), create=True) as src:
        src.enroll_embeddings("Alice", records(unit(rng, 3), "a"), metadata={"team": "x"})
        gone = src.enroll_embeddings("Gone", records(unit(rng, 1), "g"))
        src.enroll_embeddings("Bob", records(unit(rng, 2), "b"))
        src.remove(gone.id)  # ids with a gap are kept as they are
        src.set_threshold(0.55, {"method": "calibrated", "far": 0.001})
        with Gallery(location(tmp_path, second, "dst"), create=True) as dst:
            counts = migrate_gallery(src, dst)
            assert counts == {"people": 2, "embeddings": 5}
            assert compare_galleries(src, dst, ids=True) == []
            assert [(p.id, p.name) for p in dst.people()] == [(p.id, p.name) for p in src.people()]
            assert dst.threshold == 0.55 and dst.threshold_source == src.threshold_source
            probe = unit(rng, 3)
            assert [[(h.person_id, round(h.distance, 5)) for h in hits] for hits in src.search(probe, top_k=2)] == \
                   [[(h.person_id, round(h.distance, 5)) for h in hits] for hits in dst.search(probe, top_k=2)]
            with pytest.raises(GalleryError, match="not empty"):
                migrate_gallery(src, dst)
            assert dst.enroll_embeddings("Carol", records(unit(rng, 1), "c")).id > gone.id


def test_compare_galleries_finds_differences(tmp_path):
    rng = np.random.default_rng(8)
    v = unit(rng, 2)
    with Gallery(location(tmp_path, "sqlite", "a"), create=True) as a, \
            Gallery(location(tmp_path, "milvus-lite", "b"), create=True) as b:
        a.enroll_embeddings("Alice", records(v, "a"))
        b.enroll_embeddings("Alice", records(v[:1], "a"))
        assert any("photos differ" in d for d in compare_galleries(a, b, ids=False))
        b.enroll_embeddings("Alice", records(v[1:] + 1e-3, "x"))
        assert any("photos differ" in d for d in compare_galleries(a, b, ids=False))


@pytest.mark.parametrize("backend", BACKENDS)
def test_verify_and_identify_real_photos(tmp_path, backend, face_weights):
    """The full path (detect, encode, store, search) on real LFW photos, the same on each backend."""
    with Gallery(location(tmp_path, backend), create=True, device="cpu") as g:
        g.enroll("Aaron Peirsol", [lfw_image("Aaron_Peirsol", 1)])
        g.enroll("Colin Powell", [lfw_image("Colin_Powell", 1)])
        same = g.verify("Aaron Peirsol", lfw_image("Aaron_Peirsol", 2))
        other = g.verify("Colin Powell", lfw_image("Aaron_Peirsol", 2))
        assert same.match and not other.match and same.distance < other.distance
        (result,) = g.identify([lfw_image("Colin_Powell", 2)])
        assert result.faces[0].name == "Colin Powell"
