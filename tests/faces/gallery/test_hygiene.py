"""Biometric data hygiene of the gallery (issue 19): deletes that erase, private files, imports that
cannot hijack, ids that cannot crash a lookup. Real SQLite files, no face models."""

from __future__ import annotations

import json
import os
import stat
import zipfile

import numpy as np
import pytest

from cnnkit.errors import GalleryError, InvalidName
from cnnkit.faces.gallery import Gallery, clean_name
from cnnkit.faces.gallery.portable import export_gallery, import_gallery, read_export
from cnnkit.faces.gallery.store import EmbeddingRecord


def unit(rng, n, dim=128):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def gallery_files(path):
    return [p for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")) if p.exists()]


def found_in(files, needle: bytes) -> list[str]:
    return [p.name for p in files if needle in p.read_bytes()]


@pytest.fixture
def umask_zero():
    old = os.umask(0)  # the most permissive umask: modes must still come out private
    try:
        yield
    finally:
        os.umask(old)


# -- 1: deletion erases -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["remove", "rename"])
def test_removed_person_leaves_no_byte_in_the_file_or_its_log_while_it_is_open(tmp_path, how):
    rng = np.random.default_rng(19)
    path = tmp_path / "g.db"
    vectors = unit(rng, 4)
    sha = "5e" * 32
    writer = Gallery(path, create=True)
    reader = Gallery(path)  # a second connection, as a server's other worker or thread holds
    try:
        writer.enroll_embeddings("Quentin Zabriskie", [EmbeddingRecord(vector=v, source="qz-holiday.jpg",
                                                                       source_sha256=sha) for v in vectors[:3]],
                                 metadata={"badge": "QZ-4471"})
        keeper = writer.enroll_embeddings("Keeper Person", [EmbeddingRecord(vector=vectors[3], source="k.jpg")])
        assert reader.identify_embeddings(vectors[:1])[0].name == "Quentin Zabriskie"
        secrets = [b"Quentin Zabriskie", b"Zabriskie", b"qz-holiday", sha.encode(), b"QZ-4471",
                   *(v.tobytes() for v in vectors[:3]), *(v.tobytes()[:32] for v in vectors[:3])]
        assert found_in(gallery_files(path), b"Zabriskie")  # the search finds what is there
        if how == "remove":
            writer.remove("Quentin Zabriskie")
        else:
            writer.rename("Quentin Zabriskie", "Renamed Person")
            secrets = [b"Quentin Zabriskie", b"Zabriskie"]
        files = gallery_files(path)
        assert files and writer.store.connection() is not None  # still open
        for secret in secrets:
            assert found_in(files, secret) == [], secret[:20]
        # What remains is intact and still found.
        assert found_in(files, vectors[3].tobytes()) and reader.person(keeper.id).name == "Keeper Person"
        assert reader.identify_embeddings(vectors[3:])[0].name == "Keeper Person"
    finally:
        reader.close()
        writer.close()


def test_ids_of_removed_people_are_never_given_again(tmp_path):
    rng = np.random.default_rng(3)
    with Gallery(tmp_path / "g.db", create=True) as g:
        a = g.enroll_embeddings("A", [EmbeddingRecord(vector=unit(rng, 1)[0])])
        g.remove(a.id)
        b = g.enroll_embeddings("B", [EmbeddingRecord(vector=unit(rng, 1)[0])])
        assert b.id > a.id


# -- 2: private files ---------------------------------------------------------------------


def test_gallery_its_log_and_exports_are_private_whatever_the_umask(tmp_path, umask_zero):
    path = tmp_path / "g.db"
    with Gallery(path, create=True) as g:
        g.enroll_embeddings("A", [EmbeddingRecord(vector=unit(np.random.default_rng(1), 1)[0])])
        files = gallery_files(path)
        assert {p.name for p in files} == {"g.db", "g.db-wal", "g.db-shm"}
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
        export_gallery(g, tmp_path / "out.npz")
    assert stat.S_IMODE((tmp_path / "out.npz").stat().st_mode) == 0o600


# -- 3: imports trust nothing -------------------------------------------------------------


@pytest.fixture
def export(tmp_path):
    rng = np.random.default_rng(7)
    with Gallery(tmp_path / "src.db", create=True) as g:
        g.enroll_embeddings("Ann", [EmbeddingRecord(vector=v, source=f"a{i}.jpg") for i, v in enumerate(unit(rng, 2))],
                            metadata={"team": "a"})
        g.enroll_embeddings("Bob", [EmbeddingRecord(vector=unit(rng, 1)[0], source="b.jpg")])
        g.set_threshold(0.55, {"method": "test"})
        export_gallery(g, tmp_path / "good.npz")
    manifest, vectors = read_export(tmp_path / "good.npz")
    return manifest, vectors


def write_export(path, manifest, vectors, *, compress=False):
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        (np.savez_compressed if compress else np.savez)(fh, vectors=vectors, manifest=np.array(json.dumps(manifest)))
    return path


def crafted(manifest, change):
    m = json.loads(json.dumps(manifest))
    change(m)
    return m


CRAFTED = {
    "metadata not a dict": (lambda m: m["people"][0].__setitem__("metadata", "notadict"), "metadata"),
    "NUL in a name": (lambda m: m["people"][0].__setitem__("name", "A\x00nn"), "person 0"),
    "RLO in a name": (lambda m: m["people"][0].__setitem__("name", "Ann\u202egpj.exe"), "person 0"),
    "ZWSP in a name": (lambda m: m["people"][1].__setitem__("name", "B\u200bob"), "person 1"),
    "1 MB metadata": (lambda m: m["people"][0].__setitem__("metadata", {"x": "y" * 1_000_000}), "4096 bytes"),
    "name not a string": (lambda m: m["people"][0].__setitem__("name", ["Ann"]), "people[0].name"),
    "id not an int": (lambda m: m["people"][0].__setitem__("id", "1"), "people[0].id"),
    "dangling person_id": (lambda m: m["embeddings"][0].__setitem__("person_id", 999), "no person 999"),
    "box of 3": (lambda m: m["embeddings"][0].__setitem__("box", [1, 2, 3]), "box"),
    "bad sha": (lambda m: m["embeddings"][0].__setitem__("source_sha256", "zz"), "source_sha256"),
    "escape in source": (lambda m: m["embeddings"][0].__setitem__("source", "\x1b[2Jx.jpg"), "control"),
    "bad time": (lambda m: m["people"][0].__setitem__("created_at", "yesterday"), "ISO 8601"),
    "people not a list": (lambda m: m.__setitem__("people", {"a": 1}), "people: expected list"),
    "model missing": (lambda m: m.pop("model"), "model: expected dict"),
    "threshold NaN": (lambda m: m.__setitem__("threshold", float("nan")), "NaN"),
    "manifest a list": (lambda m: (m.clear(), None), "format"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_export_is_refused_in_one_line_and_imports_nothing(tmp_path, export, case):
    manifest, vectors = export
    change, message = CRAFTED[case]
    path = write_export(tmp_path / "bad.npz", crafted(manifest, change), vectors)
    with Gallery(tmp_path / "dst.db", create=True) as dst:
        with pytest.raises(GalleryError) as caught:
            import_gallery(dst, path)
        text = str(caught.value)
        assert message in text and "\n" not in text and str(path) in text
        assert len(dst) == 0 and dst.store.count() == 0


@pytest.mark.parametrize("vector", [np.float32(3e38), np.float32(np.inf), np.float32(np.nan)])
def test_vectors_must_be_finite_and_plausible(tmp_path, export, vector):
    manifest, vectors = export
    bad = vectors.copy()
    bad[2, 0] = vector  # Bob's only vector: Ann (first) would be fine
    path = write_export(tmp_path / "bad.npz", manifest, bad)
    with Gallery(tmp_path / "dst.db", create=True) as dst:
        with pytest.raises(GalleryError, match="does not fit|finite"):
            import_gallery(dst, path)
        assert len(dst) == 0  # Ann, checked first, was not imported either


def test_wrong_dimension_is_refused(tmp_path, export):
    manifest, vectors = export
    path = write_export(tmp_path / "bad.npz", manifest, vectors[:, :64])
    with pytest.raises(GalleryError, match="64-dimensional"):
        read_export(path)


def test_a_manifest_that_inflates_is_refused_before_it_is_inflated(tmp_path, export):
    manifest, vectors = export
    # 300 MB of manifest (as numpy stores text: 4 bytes a character) in a file of a few hundred KB.
    manifest = crafted(manifest, lambda m: m["people"][0].__setitem__("padding", " " * 75_000_000))
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("manifest.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.array(json.dumps(manifest)))
        with z.open("vectors.npy", "w") as f:
            np.lib.format.write_array(f, vectors)
    assert path.stat().st_size < 2_000_000
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(GalleryError, match="inflates"):
        read_export(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: it was never inflated


def test_a_compressed_real_export_still_imports(tmp_path, export):
    manifest, vectors = export
    path = write_export(tmp_path / "z.npz", manifest, vectors, compress=True)
    with Gallery(tmp_path / "dst.db", create=True) as dst:
        assert import_gallery(dst, path)["people"] == 2


def test_the_threshold_in_a_file_is_applied_only_when_asked(tmp_path, export):
    manifest, vectors = export
    path = write_export(tmp_path / "t.npz", crafted(manifest, lambda m: m.__setitem__("threshold", 9.99)), vectors)
    with Gallery(tmp_path / "dst.db", create=True) as dst:
        default = dst.threshold
        counts = import_gallery(dst, path)
        assert counts["threshold_in_file"] == 9.99 and not counts["threshold_applied"]
        assert dst.threshold == default and not dst.has_own_threshold
    with Gallery(tmp_path / "asked.db", create=True) as dst:
        assert import_gallery(dst, tmp_path / "t.npz", use_threshold=True)["threshold_applied"]
        assert dst.threshold == 9.99


def test_an_error_while_writing_imports_nobody(tmp_path, export, monkeypatch):
    manifest, vectors = export
    path = write_export(tmp_path / "ok.npz", manifest, vectors)
    with Gallery(tmp_path / "dst.db", create=True) as dst:
        calls = []
        original = dst.store.add_embeddings

        def failing(tx, pid, records, *a, **k):
            calls.append(pid)
            if len(calls) == 2:  # the second person: the first is already written in the transaction
                raise GalleryError("disk full (simulated)")
            return original(tx, pid, records, *a, **k)

        monkeypatch.setattr(dst.store, "add_embeddings", failing)
        with pytest.raises(GalleryError, match="nothing was imported"):
            import_gallery(dst, path)
        assert len(dst) == 0 and dst.store.count() == 0


def test_round_trip_keeps_people_and_times(tmp_path, export):
    manifest, _ = export
    with Gallery(tmp_path / "dst.db", create=True) as dst:
        assert import_gallery(dst, tmp_path / "good.npz")["people"] == 2
        got = [(p.name, p.metadata, p.embeddings, p.created_at) for p in dst.people()]
        assert got == [(p["name"], p["metadata"], n, p["created_at"]) for p, n in zip(manifest["people"], (2, 1))]


# -- 5: ids out of SQLite's range ---------------------------------------------------------


@pytest.mark.parametrize("pid", [2**63, 2**64 + 5, -1, 0])
def test_ids_out_of_range_are_nobody(tmp_path, pid):
    from cnnkit.errors import PersonNotFound

    with Gallery(tmp_path / "g.db", create=True) as g:
        with pytest.raises(PersonNotFound):
            g.person(pid)
        with pytest.raises(PersonNotFound):
            g.remove(pid)
        with pytest.raises(PersonNotFound):
            g.rename(pid, "X")
        with pytest.raises(PersonNotFound):
            g.embeddings_of(pid)
        assert g.store.names({pid}) == {}


# -- 9: names ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["\u0301\u0301\u0301", "\u0301abc", "a" + "\u0336" * 30, "\u200d", "...", "  -  "])
def test_names_that_draw_over_others_or_say_nothing_are_refused(name):
    with pytest.raises(InvalidName):
        clean_name(name)


@pytest.mark.parametrize("name", ["Nguyễn Thị Minh Khai", "Nguye\u0302\u0303n", "देवनागरी", "Zoë O'Brien", "李小龙",
                                  "R2-D2"])
def test_real_names_with_marks_are_kept(name):
    assert clean_name(name) == name
