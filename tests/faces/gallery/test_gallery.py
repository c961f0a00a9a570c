"""Gallery storage and search without the face models: precomputed embeddings, real SQLite files."""

from __future__ import annotations

import sqlite3
import stat

import numpy as np
import pytest

from cnnkit.faces.gallery import Gallery, GalleryError
from cnnkit.faces.gallery.calibrate import threshold_for_far
from cnnkit.faces.gallery.portable import export_gallery, import_gallery, read_export
from cnnkit.faces.gallery.search import ExactIndex, HNSWIndex
from cnnkit.faces.gallery.store import SCHEMA_VERSION, EmbeddingRecord
from cnnkit.faces.models import embedding_model


def unit(rng, n, dim=128):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def records(vectors, prefix="photo"):
    return [EmbeddingRecord(vector=v, source=f"{prefix}{i}.jpg") for i, v in enumerate(vectors)]


@pytest.fixture
def gallery(tmp_path):
    with Gallery(tmp_path / "g.db", create=True) as g:
        yield g


def test_enroll_people_and_identify_by_nearest_photo(gallery):
    rng = np.random.default_rng(0)
    alice, bob = unit(rng, 2), unit(rng, 1)
    gallery.enroll_embeddings("Alice", records(alice))
    gallery.enroll_embeddings("Bob", records(bob))
    assert [(p.name, p.embeddings) for p in gallery.people()] == [("Alice", 2), ("Bob", 1)]
    # A probe close to Alice's *second* photo: every photo a person has counts.
    probe = alice[1] + 0.01
    (answer,) = gallery.identify_embeddings(probe[None], top_k=2)
    assert answer.name == "Alice" and answer.distance == pytest.approx(0.01 * np.sqrt(128), rel=1e-3)
    assert [c.name for c in answer.candidates] == ["Alice", "Bob"]
    # A stranger: nobody within the threshold, but candidates are still listed.
    (stranger,) = gallery.identify_embeddings(unit(rng, 1), top_k=3)
    assert stranger.name is None and stranger.person_id is None and stranger.distance > gallery.threshold
    assert len(stranger.candidates) == 2


def test_enrolling_an_existing_name_adds_photos_and_new_person_makes_a_second(gallery):
    rng = np.random.default_rng(1)
    first = gallery.enroll_embeddings("Sam", records(unit(rng, 1)))
    again = gallery.enroll_embeddings("Sam", records(unit(rng, 1)))
    assert again.id == first.id and again.embeddings == 2
    other = gallery.enroll_embeddings("Sam", records(unit(rng, 1)), new_person=True)
    assert other.id != first.id
    with pytest.raises(GalleryError, match=r"2 people are called 'Sam' \(#\d+, #\d+\)"):
        gallery.resolve("Sam")
    with pytest.raises(GalleryError, match="say which by id"):
        gallery.enroll_embeddings("Sam", records(unit(rng, 1)))
    assert gallery.resolve(f"#{other.id}").id == other.id
    more = gallery.enroll_embeddings("Sam", records(unit(rng, 1)), person_id=other.id)
    assert more.id == other.id and more.embeddings == 2


def test_remove_and_rename(gallery):
    rng = np.random.default_rng(2)
    p = gallery.enroll_embeddings("Ann", records(unit(rng, 3)))
    assert gallery.rename("Ann", "Anne").name == "Anne"
    removed = gallery.remove("Anne")
    assert removed.id == p.id and gallery.people() == []
    assert gallery.store.connection().execute("SELECT count(*) FROM embeddings").fetchone()[0] == 0
    with pytest.raises(GalleryError, match="nobody called 'Anne'"):
        gallery.resolve("Anne")
    with pytest.raises(GalleryError, match="no person with id 999"):
        gallery.resolve("#999")


def test_empty_gallery_identifies_nobody(gallery):
    (answer,) = gallery.identify_embeddings(unit(np.random.default_rng(3), 1))
    assert answer.name is None and answer.candidates == [] and answer.distance is None


def test_enroll_many_writes_several_people_at_once_all_or_nothing(gallery):
    rng = np.random.default_rng(5)
    dim = gallery.model.dim
    sam = gallery.enroll_embeddings("Sam", records(unit(rng, 1, dim)))
    ids = gallery.enroll_many({"Ann": records(unit(rng, 2, dim)), "Sam": records(unit(rng, 1, dim), "more")})
    assert ids["Sam"] == sam.id and ids["Ann"] not in (sam.id,)
    assert [(p.name, p.embeddings) for p in gallery.people()] == [("Ann", 2), ("Sam", 2)]
    before = gallery.store.changes()
    with pytest.raises(GalleryError, match="Bo: embedding 0"):
        gallery.enroll_many({"Cy": records(unit(rng, 1, dim)), "Bo": [EmbeddingRecord(vector=np.zeros(3, np.float32))]})
    assert [p.name for p in gallery.people()] == ["Ann", "Sam"] and gallery.store.changes() == before


def test_wrong_embeddings_are_refused(gallery):
    with pytest.raises(GalleryError, match="does not fit"):
        gallery.enroll_embeddings("X", [EmbeddingRecord(vector=np.zeros(64, np.float32))])
    with pytest.raises(GalleryError, match="does not fit"):
        gallery.enroll_embeddings("X", [EmbeddingRecord(vector=np.full(128, np.nan, np.float32))])
    other = embedding_model(flip=not gallery.model.flip)
    with pytest.raises(GalleryError, match="cannot be compared"):
        gallery.enroll_embeddings("X", records(unit(np.random.default_rng(4), 1)), model=other)
    assert gallery.people() == []  # nothing half-written


def test_gallery_written_by_another_model_version_is_refused(tmp_path):
    path = tmp_path / "g.db"
    Gallery(path, create=True).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = 'deadbeef0000-align0' WHERE key = 'model_version'")
    db.commit()
    db.close()
    with pytest.raises(GalleryError, match="version deadbeef0000-align0"):
        Gallery(path)


def test_not_a_gallery_newer_schema_missing_and_folder(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello " * 100)
    with pytest.raises(GalleryError, match="not a cnnkit gallery"):
        Gallery(text)
    other_db = tmp_path / "other.db"
    sqlite3.connect(other_db).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(GalleryError, match="not a cnnkit gallery"):
        Gallery(other_db)
    newer = tmp_path / "newer.db"
    Gallery(newer, create=True).close()
    db = sqlite3.connect(newer)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(GalleryError, match="newer cnnkit"):
        Gallery(newer)
    with pytest.raises(GalleryError, match="no such gallery"):
        Gallery(tmp_path / "missing.db")
    with pytest.raises(GalleryError, match="folder"):
        Gallery(tmp_path, create=True)


def test_read_only_gallery_file_reads_but_refuses_changes(tmp_path):
    path = tmp_path / "g.db"
    rng = np.random.default_rng(5)
    with Gallery(path, create=True) as g:
        g.enroll_embeddings("Ann", records(unit(rng, 1)))
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        with Gallery(path) as g:
            assert [p.name for p in g.people()] == ["Ann"]
            with pytest.raises(GalleryError, match="read-only"):
                g.enroll_embeddings("Bob", records(unit(rng, 1)))
            with pytest.raises(GalleryError, match="read-only"):
                g.remove("Ann")
            assert [p.name for p in g.people()] == ["Ann"]
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_changes_by_another_connection_are_seen(tmp_path):
    path = tmp_path / "g.db"
    rng = np.random.default_rng(6)
    reader = Gallery(path, create=True)
    writer = Gallery(path)
    assert reader.identify_embeddings(unit(rng, 1))[0].candidates == []
    vec = unit(rng, 1)
    writer.enroll_embeddings("Late", records(vec))
    assert reader.identify_embeddings(vec)[0].name == "Late"
    writer.remove("Late")
    assert reader.identify_embeddings(vec)[0].name is None


def test_export_import_round_trip(tmp_path, gallery):
    rng = np.random.default_rng(7)
    vecs = unit(rng, 5)
    gallery.enroll_embeddings("Ann", records(vecs[:2]), metadata={"team": "a"})
    gallery.enroll_embeddings("Bob", records(vecs[2:]))
    gallery.set_threshold(0.55, {"method": "test"})
    out = tmp_path / "export.npz"
    assert export_gallery(gallery, out) == {"people": 2, "embeddings": 5}
    _manifest, vectors = read_export(out)
    np.testing.assert_array_equal(vectors, vecs)
    with Gallery(tmp_path / "copy.db", create=True) as copy:
        assert import_gallery(copy, out, use_threshold=True) == {
            "people": 2, "embeddings": 5, "skipped": 0, "threshold_in_file": 0.55, "threshold_applied": True}
        assert [(p.name, p.embeddings, p.metadata) for p in copy.people()] == [
            ("Ann", 2, {"team": "a"}), ("Bob", 3, {})]
        assert copy.threshold == 0.55 and copy.threshold_source == {"method": "test"}
        for v in vecs:
            assert copy.identify_embeddings(v)[0].name == gallery.identify_embeddings(v)[0].name
    with Gallery(tmp_path / "noflip.db", create=True, flip=False) as other:
        with pytest.raises(GalleryError, match="cannot be mixed"):
            import_gallery(other, out)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(Exception, match="not a cnnkit gallery export"):
        read_export(bad)


def test_integrity_check(gallery):
    gallery.enroll_embeddings("Ann", records(unit(np.random.default_rng(8), 1)))
    assert gallery.check() == []
    gallery.store.connection().execute("INSERT INTO people (name, created_at) VALUES ('Ghost', 'now')")
    assert any("no embedding" in p for p in gallery.check())


def test_threshold_for_far_matches_a_brute_force_search():
    rng = np.random.default_rng(9)
    same = rng.random(4000) < 0.5
    distance = np.where(same, rng.normal(0.4, 0.1, 4000), rng.normal(0.9, 0.12, 4000))
    for far in (1e-3, 1e-2, 0.1):
        t, measured, tar = threshold_for_far(distance, same, far)
        assert measured <= far
        assert np.mean(distance[~same] <= t) == measured
        nxt = np.sort(distance[~same])[np.sum(distance[~same] <= t)]  # the next different pair
        assert np.mean(distance[~same] <= nxt) > far  # one step further would break the target
        assert tar == np.mean(distance[same] <= t)


def _brute_people(queries, vectors, people, k):
    out = []
    for q in queries:
        best: dict[int, float] = {}
        for v, p in zip(vectors, people):
            d = float(np.linalg.norm(q - v))
            best[p] = min(best.get(p, np.inf), d)
        out.append(sorted(best.items(), key=lambda kv: kv[1])[:k])
    return out


def test_exact_and_hnsw_search_match_a_plain_loop_on_small_galleries():
    rng = np.random.default_rng(10)
    vectors = unit(rng, 300, dim=16)
    people = rng.integers(0, 60, size=300)
    ids = np.arange(300) + 1
    queries = vectors[rng.choice(300, 20)] + rng.normal(0, 0.05, size=(20, 16)).astype(np.float32)
    expected = _brute_people(queries, vectors, people, k=5)
    for index in (ExactIndex(ids, people, vectors), HNSWIndex(ids, people, vectors, ef_search=300)):
        got = index.search(queries, 5)
        for hits, want in zip(got, expected):
            assert [h.person_id for h in hits] == [p for p, _ in want]
            np.testing.assert_allclose([h.distance for h in hits], [d for _, d in want], atol=1e-4)


def test_hnsw_removals_are_filtered():
    rng = np.random.default_rng(11)
    vectors = unit(rng, 50, dim=8)
    index = HNSWIndex(np.arange(50) + 1, np.arange(50), vectors)
    assert index.search(vectors[:1], 1)[0][0].person_id == 0
    index.remove({1})
    assert index.search(vectors[:1], 1)[0][0].person_id != 0 and len(index) == 49


def test_a_version_1_gallery_is_migrated(tmp_path):
    from cnnkit.faces.gallery.store import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[1](db)  # a gallery as cnnkit wrote it at schema 1
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", "cnnkit-gallery"), ("schema_version", "1")])
    db.execute("INSERT INTO people (name, created_at) VALUES ('Old', 'then')")
    db.close()
    with Gallery(path) as g:
        assert g.store.meta()["schema_version"] == str(SCHEMA_VERSION)
        assert [p.name for p in g.people()] == ["Old"]
        tables = {r[0] for r in g.store.connection().execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "api_keys" in tables


@pytest.mark.parametrize("index", ["exact", "hnsw"])
def test_index_follows_enrollments_and_removals_incrementally(tmp_path, index):
    rng = np.random.default_rng(12)
    writer = Gallery(tmp_path / "g.db", create=True)
    reader = Gallery(tmp_path / "g.db", index=index)
    vecs = unit(rng, 6)
    for i in range(3):
        writer.enroll_embeddings(f"p{i}", records(vecs[i:i + 1]))
    assert [reader.identify_embeddings(v)[0].name for v in vecs[:3]] == ["p0", "p1", "p2"]
    first = reader._index
    writer.enroll_embeddings("p3", records(vecs[3:4]))
    writer.enroll_embeddings("p0", records(vecs[4:5]))  # a second photo of p0
    writer.remove("p1")
    assert reader.identify_embeddings(vecs[3])[0].name == "p3"
    assert reader.identify_embeddings(vecs[4])[0].name == "p0"
    assert reader.identify_embeddings(vecs[1])[0].name is None
    assert reader._index is first  # updated in place, not rebuilt
    assert len(reader._index) == 4
