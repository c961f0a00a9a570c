"""The service on a Milvus gallery (Milvus Lite here; the embedded Milvus server in the milvus_server job).

The API keys live in their own SQLite file (`--keys`), since Milvus has no
place for them; everything else is the same service: enroll, identify, verify,
rename, delete (vectors and kept photos), and the same key checks.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cnnkit.errors import SettingsError
from cnnkit.faces.gallery import Gallery
from cnnkit.service.settings import ServiceSettings
from tests.service.support import auth, client_for, make_keys, photo
from tests.service.test_hygiene import CRASH

pytest.importorskip("milvus_lite", reason="Milvus Lite is not installed (pip install milvus-lite)")
pytestmark = pytest.mark.usefixtures("face_weights")


@pytest.fixture(params=["milvus-lite", pytest.param("milvus", marks=pytest.mark.milvus_server)])
def location(request, tmp_path):
    if request.param == "milvus-lite":
        return f"milvus-lite://{tmp_path / 'people.db'}?collection=served"
    return f"milvus://{request.getfixturevalue('milvus_server')}/served_{tmp_path.name[-12:].replace('-', '_')}"


def test_a_milvus_gallery_needs_a_keys_file(location):
    with pytest.raises(SettingsError, match="keeps no API keys; give the service a keys file"):
        ServiceSettings(gallery=location)


def test_a_milvus_gallery_is_served_by_one_writer(location, tmp_path):
    from cnnkit.service.server import serve

    with pytest.raises(SettingsError, match="takes one writer; serve it with --workers 1"):
        serve(ServiceSettings(gallery=location, keys=tmp_path / "keys.db"), workers=2)


def test_the_service_on_a_milvus_gallery(location, tmp_path):
    keys_file = tmp_path / "keys.db"
    keys = make_keys(keys_file)
    settings = ServiceSettings(gallery=location, keys=keys_file, store_images=tmp_path / "photos", threads=1)
    with client_for(settings) as client:
        w, r = auth(keys.write), auth(keys.read)
        assert client.get("/people", headers=auth(keys.revoked)).status_code == 401
        assert client.post("/people", headers=r, data={"name": "Colin Powell"},
                           files=[("photos", photo("Colin_Powell", 1))]).status_code == 403
        answer = client.post("/people", headers=w, data={"name": "Colin Powell"},
                             files=[("photos", photo("Colin_Powell", 1)), ("photos", photo("Colin_Powell", 2))])
        assert answer.status_code == 201, answer.text
        pid = answer.json()["id"]
        assert client.post("/people", headers=w, data={"name": "Aaron Eckhart"},
                           files=[("photos", photo("Aaron_Eckhart", 1))]).status_code == 201

        him = client.post("/identify", headers=r, files={"photo": photo("Colin_Powell", 4)}).json()
        assert [(f["name"], f["id"]) for f in him["faces"]] == [("Colin Powell", pid)]
        stranger = client.post("/identify", headers=r, files={"photo": photo("Ai_Sugiyama", 1)}).json()
        assert [f["name"] for f in stranger["faces"]] == [None]
        yes = client.post("/verify", headers=r, data={"person_id": str(pid)},
                          files={"photo": photo("Colin_Powell", 6)}).json()
        assert yes["match"] is True
        assert client.patch(f"/people/{pid}", headers=w, json={"name": "General Powell"}).json()["name"] == \
            "General Powell"

        kept = settings.store_images / str(pid)
        assert len(list(kept.iterdir())) == 2
        assert client.delete(f"/people/{pid}", headers=w).status_code == 200
        assert not kept.exists() and client.get(f"/people/{pid}", headers=r).status_code == 404
        after = client.post("/identify", headers=r, files={"photo": photo("Colin_Powell", 4)}).json()
        assert all(f["id"] != pid for f in after["faces"])

    with Gallery(location) as gallery:  # what the service wrote is in Milvus, the keys are not
        assert [p.name for p in gallery.people()] == ["Aaron Eckhart"]
        assert gallery.store.embedding_rows(pid) == []


def test_a_crash_between_the_photos_and_milvus_leaves_no_photo_behind(location, tmp_path):
    keys_file, kept = tmp_path / "keys.db", tmp_path / "kept"
    keys = make_keys(keys_file)

    def run(step, *extra):
        return subprocess.run([sys.executable, "-c", CRASH, location, str(kept), keys.write, step, *extra],
                              capture_output=True, text=True, timeout=300, cwd=os.getcwd(),
                              env={**os.environ, "CNNKIT_KEYS": str(keys_file)})

    crashed = run("crash-enroll")  # killed after the photos reached the disk, before anything reached Milvus
    assert crashed.returncode == 9, crashed.stderr[-2000:]
    assert len([p for p in kept.rglob("*") if p.is_file() and p.name != ".lock"]) == 2
    started = run("enroll", "Gerhard Schroeder", "Gerhard_Schroeder")
    assert started.returncode == 0, started.stderr[-2000:]
    assert "removed photos a crash left behind" in started.stdout + started.stderr
    pid = int(started.stdout.split("RESULT 201 ")[1].split()[0])
    with Gallery(location) as gallery:
        assert [(p.id, p.name, p.embeddings) for p in gallery.people()] == [(pid, "Gerhard Schroeder", 1)]
        (row,) = gallery.store.embedding_rows(pid)
    assert [p.name for p in (kept / str(pid)).iterdir()] == [f"{row['id']}.jpg"]
