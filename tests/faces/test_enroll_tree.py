"""enroll-tree on a small tree of real LFW photos: failures reported, idempotent, resumable, same on Ray."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from cnnkit.errors import CnnkitError
from cnnkit.faces.enroll_tree import enroll_tree, scan_tree
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.migrate import compare_galleries
from tests.conftest import lfw_image

PEOPLE = {"Aaron_Peirsol": 3, "Colin_Powell": 2, "Zico": 1}


@pytest.fixture
def tree(tmp_path):
    """ROOT/<person>/<photo> with real photos, one unreadable file, one duplicate and a non-image."""
    root = tmp_path / "tree"
    for person, n in PEOPLE.items():
        (root / person).mkdir(parents=True)
        for k in range(1, n + 1):
            os.symlink(lfw_image(person, k), root / person / f"{person}_{k:04d}.jpg")
    (root / "Zico" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "Zico" / "notes.txt").write_text("not a photo")
    shutil.copyfile(lfw_image("Zico", 1), root / "Zico" / "again.jpg")  # the same content twice
    return root


def test_scan_tree_lists_photos_and_refuses_bad_roots(tree, tmp_path):
    found = scan_tree(tree)
    assert [(p, f.name) for p, f in found][:3] == [("Aaron_Peirsol", "Aaron_Peirsol_0001.jpg"),
                                                   ("Aaron_Peirsol", "Aaron_Peirsol_0002.jpg"),
                                                   ("Aaron_Peirsol", "Aaron_Peirsol_0003.jpg")]
    assert len(found) == 8 and all(f.suffix == ".jpg" for _, f in found)
    with pytest.raises(CnnkitError, match="not a folder"):
        scan_tree(tmp_path / "nowhere")
    (tmp_path / "empty" / "x").mkdir(parents=True)
    with pytest.raises(CnnkitError, match="no photos found"):
        scan_tree(tmp_path / "empty")


def test_settings_are_checked(tree, tmp_path):
    with Gallery(tmp_path / "g.db", create=True) as g:
        for kw, message in [({"engine": "spark"}, "engine must be one of"), ({"pick": "any"}, "pick must be one of"),
                            ({"batch_size": 0}, "batch_size"), ({"workers": 0}, "workers"),
                            ({"engine": "local", "address": "ray://x:1"}, "address")]:
            with pytest.raises(ValueError, match=message):
                enroll_tree(g, tree, **kw)


def test_local_run_reports_failures_and_is_idempotent(tree, tmp_path, face_weights):
    with Gallery(tmp_path / "g.db", create=True, device="cpu") as g:
        seen = []
        report = enroll_tree(g, tree, engine="local", batch_size=4, on_progress=lambda d, t: seen.append((d, t)))
        assert report.photos == 8 and report.enrolled == 6 and report.duplicates == 1
        assert [f["photo"].endswith("broken.jpg") for f in report.failed] == [True]
        assert "broken.jpg" in report.failed[0]["photo"] and report.failed[0]["error"]
        assert seen[0] == (0, 7) and seen[-1] == (7, 7)
        assert {p.name: p.embeddings for p in g.people()} == PEOPLE and report.people_added == 3
        rows = g.store.embedding_rows()
        assert all(len(r["source_sha256"]) == 64 and r["box"] for r in rows)
        again = enroll_tree(g, tree, engine="local")
        assert again.enrolled == 0 and again.already_enrolled == 6 and again.duplicates == 1
        assert len(again.failed) == 1  # the broken photo is tried again (and fails again)
        assert {p.name: p.embeddings for p in g.people()} == PEOPLE


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("milvus-lite", marks=pytest.mark.slow)])
def test_interrupted_run_resumes_to_the_same_gallery(tree, tmp_path, backend, face_weights):
    pytest.importorskip("milvus_lite") if backend == "milvus-lite" else None
    where = ((lambda n: str(tmp_path / f"{n}.db")) if backend == "sqlite"
             else (lambda n: f"milvus-lite://{tmp_path / n}.db"))

    class Crash(Exception):
        pass

    def crash_after_first_batch(done, total):
        if done >= 2:
            raise Crash

    with Gallery(where("full"), create=True, device="cpu") as full, \
            Gallery(where("resumed"), create=True, device="cpu") as resumed:
        enroll_tree(full, tree, engine="local", batch_size=2)
        with pytest.raises(Crash):
            enroll_tree(resumed, tree, engine="local", batch_size=2, on_progress=crash_after_first_batch)
        assert 0 < sum(p.embeddings for p in resumed.people()) < 6
        report = enroll_tree(resumed, tree, engine="local", batch_size=2)
        assert report.already_enrolled == 2 and report.enrolled == 4
        assert compare_galleries(full, resumed, ids=False) == []


@pytest.mark.slow
def test_ray_run_builds_the_same_gallery_as_one_process(tree, tmp_path, face_weights):
    pytest.importorskip("ray")
    with Gallery(tmp_path / "local.db", create=True, device="cpu") as local, \
            Gallery(tmp_path / "ray.db", create=True, device="cpu") as on_ray:
        enroll_tree(local, tree, engine="local", batch_size=2)
        report = enroll_tree(on_ray, tree, engine="ray", workers=2, batch_size=2)
        assert report.workers == 2 and report.enrolled == 6 and len(report.failed) == 1
        assert compare_galleries(local, on_ray, ids=False) == []
        # Batches are written in tree order, so even the ids match.
        assert [(p.id, p.name) for p in local.people()] == [(p.id, p.name) for p in on_ray.people()]


def test_cli_enroll_tree_then_migrate_to_milvus_lite(tree, tmp_path, capsys, face_weights):
    pytest.importorskip("milvus_lite")
    from cnnkit.cli.main import main

    db, report = tmp_path / "g.db", tmp_path / "report.json"
    code = main(["faces", "enroll-tree", str(tree), "--gallery", str(db), "--engine", "local", "--report",
                 str(report), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 2  # one photo failed (an error); it is listed, the others are enrolled
    assert "enrolled 6 photo(s) (3 new people)" in out and "1 duplicate(s), 1 failed" in out
    assert "broken.jpg" in err
    saved = json.loads(report.read_text())
    assert saved["enrolled"] == 6 and saved["failed"][0]["photo"].endswith("broken.jpg")
    target = f"milvus-lite://{tmp_path / 'm'}.db"
    assert main(["faces", "migrate", "--from", str(db), "--to", target]) == 0
    assert "migrated 3 people, 6 embeddings" in capsys.readouterr().out
    assert main(["faces", "migrate", "--from", str(db), "--to", target]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["faces", "people", "--gallery", target, "--json"]) == 0
    people = json.loads(capsys.readouterr().out)
    assert {p["name"]: p["embeddings"] for p in people} == PEOPLE
    assert main(["faces", "enroll-tree", str(tmp_path / "missing"), "--gallery", str(db), "--engine", "local"]) == 2
    assert "not a folder" in capsys.readouterr().err
