"""The HTTP API end to end (in-process), on real LFW photos: enroll, identify, verify, rename, delete."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkit.faces.gallery import Gallery
from cnnkit.images import load_image
from cnnkit.service import ServiceSettings
from tests.conftest import lfw_image
from tests.service.support import auth, client_for, make_keys, photo, png_bytes

pytestmark = pytest.mark.usefixtures("face_weights")


@pytest.fixture(scope="module")
def service(tmp_path_factory, face_weights):
    root = tmp_path_factory.mktemp("service")
    gallery = root / "people.db"
    keys = make_keys(gallery)
    settings = ServiceSettings(gallery=gallery, store_images=root / "photos", threads=1)
    with client_for(settings) as client:
        yield client, keys, settings


def test_health_needs_no_key(service):
    client, _, _ = service
    answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "version": "0.1.0", "ready": True}


def test_openapi_schema_documents_every_endpoint_and_both_key_headers(service):
    client, _, _ = service
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/people", "/people/{person_id}", "/people/{person_id}/photos", "/verify", "/identify", "/health",
            "/version"} <= set(paths)
    assert set(paths["/people/{person_id}"]) == {"get", "patch", "delete"}
    schemes = schema["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert paths["/identify"]["post"]["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody")


def test_page_is_served_with_a_strict_content_security_policy(service):
    client, _, _ = service
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<label for=\"key\">API key</label>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200


def test_enroll_add_photos_identify_verify_rename_delete(service):
    client, keys, settings = service
    w = auth(keys.write)
    # Enroll from two photos.
    answer = client.post("/people", headers=w, data={"name": "  Colin   Powell ", "metadata": '{"team": "state"}'},
                         files=[("photos", photo("Colin_Powell", 1)), ("photos", photo("Colin_Powell", 2))])
    assert answer.status_code == 201, answer.text
    person = answer.json()
    pid = person["id"]
    assert person["name"] == "Colin Powell" and person["embeddings"] == 2 and person["metadata"] == {"team": "state"}
    assert answer.headers["location"] == f"/people/{pid}"

    # The same name again is a conflict that says who has it; more photos go to the person.
    again = client.post("/people", headers=w, data={"name": "Colin Powell"},
                        files=[("photos", photo("Colin_Powell", 3))])
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "name_taken" and again.json()["error"]["details"] == {"ids": [pid]}
    more = client.post(f"/people/{pid}/photos", headers=w, files=[("photos", photo("Colin_Powell", 3))])
    assert more.status_code == 200 and more.json()["embeddings"] == 3

    # Identify: him, a stranger, both side by side, and a photo of nobody.
    r = auth(keys.read)
    him = client.post("/identify", headers=r, files={"photo": photo("Colin_Powell", 4)}).json()
    assert [f["name"] for f in him["faces"]] == ["Colin Powell"]
    face = him["faces"][0]
    assert face["id"] == pid and face["distance"] < him["threshold"] and (him["width"], him["height"]) == (250, 250)
    x1, y1, x2, y2 = face["box"]
    assert 40 < x1 < x2 < 210 and 30 < y1 < y2 < 230
    stranger = client.post("/identify", headers=r, files={"photo": photo("Aaron_Eckhart", 1)}).json()
    assert [f["name"] for f in stranger["faces"]] == [None]
    assert stranger["faces"][0]["distance"] > stranger["threshold"]
    assert stranger["faces"][0]["candidates"][0]["name"] == "Colin Powell"
    both = np.concatenate([load_image(lfw_image("Aaron_Eckhart", 1)), load_image(lfw_image("Colin_Powell", 5))], 1)
    pair = client.post("/identify", headers=r, data={"top_k": "1"},
                       files={"photo": ("pair.png", png_bytes(both), "image/png")}).json()
    assert sorted(pair["faces"], key=lambda f: f["box"][0])[1]["name"] == "Colin Powell"
    assert [f["name"] for f in sorted(pair["faces"], key=lambda f: f["box"][0])] == [None, "Colin Powell"]
    wall = png_bytes(np.full((120, 160, 3), 90, np.uint8))
    assert client.post("/identify", headers=r, files={"photo": ("wall.png", wall, "image/png")}).json()["faces"] == []

    # Verify by id and by name.
    yes = client.post("/verify", headers=r, data={"person_id": str(pid)}, files={"photo": photo("Colin_Powell", 6)})
    assert yes.status_code == 200 and yes.json()["match"] is True and yes.json()["person"]["id"] == pid
    no = client.post("/verify", headers=r, data={"name": "Colin Powell"}, files={"photo": photo("Aaron_Eckhart", 1)})
    assert no.status_code == 200 and no.json()["match"] is False and no.json()["distance"] > no.json()["threshold"]
    faceless = client.post("/verify", headers=r, data={"person_id": str(pid)},
                           files={"photo": ("wall.png", wall, "image/png")})
    assert faceless.status_code == 422 and faceless.json()["error"]["code"] == "no_face"

    # List, get, rename.
    listed = client.get("/people", headers=r).json()
    assert any(p["id"] == pid for p in listed["people"]) and listed["total"] >= 1
    assert client.get(f"/people/{pid}", headers=r).json()["embeddings"] == 3
    renamed = client.patch(f"/people/{pid}", headers=w, json={"name": "General Powell"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "General Powell"
    assert client.get("/people", headers=r, params={"name": "General Powell"}).json()["total"] == 1

    # The service kept his photos only because it was told to; deleting him removes them and his embeddings.
    kept = settings.store_images / str(pid)
    assert sorted(p.suffix for p in kept.iterdir()) == [".jpg"] * 3
    gone = client.delete(f"/people/{pid}", headers=w)
    assert gone.status_code == 200 and gone.json()["deleted"]["id"] == pid
    assert not kept.exists()
    assert client.get(f"/people/{pid}", headers=r).status_code == 404
    assert client.delete(f"/people/{pid}", headers=w).json()["error"]["code"] == "person_not_found"
    with Gallery(settings.gallery, readonly=True) as gallery:
        assert gallery.store.embedding_rows(pid) == []
    after = client.post("/identify", headers=r, files={"photo": photo("Colin_Powell", 4)}).json()
    assert all(f["id"] != pid for f in after["faces"])


def test_enrollment_is_all_or_nothing(service):
    client, keys, _ = service
    wall = png_bytes(np.full((120, 160, 3), 90, np.uint8))
    answer = client.post("/people", headers=auth(keys.write), data={"name": "Tony Blair"},
                         files=[("photos", photo("Tony_Blair", 1)), ("photos", ("wall.png", wall, "image/png"))])
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "no_face" and "wall.png" in error["message"] and "nothing was enrolled" in error["message"]
    assert client.get("/people", headers=auth(keys.read), params={"name": "Tony Blair"}).json()["total"] == 0


def test_a_failed_commit_stores_no_person_and_keeps_no_photo(service, monkeypatch):
    from contextlib import contextmanager

    from cnnkit.errors import GalleryBusy

    client, keys, settings = service
    store = client.app.state.service.gallery.store
    original = store.write

    @contextmanager
    def failing_write():
        with original() as tx:
            yield tx
            raise GalleryBusy(f"{store.path}: could not save the change (disk I/O error); nothing was stored")

    before = sorted(p for p in settings.store_images.rglob("*") if p.is_file())
    monkeypatch.setattr(store, "write", failing_write)
    answer = client.post("/people", headers=auth(keys.write), data={"name": "Tony Blair"},
                         files={"photos": photo("Tony_Blair", 1)})
    monkeypatch.undo()
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "gallery_busy"
    assert answer.headers["retry-after"] == "1"
    assert client.get("/people", headers=auth(keys.read), params={"name": "Tony Blair"}).json()["total"] == 0
    assert sorted(p for p in settings.store_images.rglob("*") if p.is_file()) == before


def test_photo_of_two_similar_faces_needs_pick_largest(service):
    client, keys, _ = service
    w = auth(keys.write)
    two = np.concatenate([load_image(lfw_image("Hugo_Chavez", 1)), load_image(lfw_image("Aaron_Eckhart", 1))], 1)
    files = {"photos": ("two.png", png_bytes(two), "image/png")}
    refused = client.post("/people", headers=w, data={"name": "Hugo Chavez"}, files=files)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "several_faces"
    bad_pick = client.post("/people", headers=w, data={"name": "Hugo Chavez", "pick": "any"}, files=files)
    assert bad_pick.status_code == 422 and bad_pick.json()["error"]["code"] == "invalid_request"
    taken = client.post("/people", headers=w, data={"name": "Hugo Chavez", "pick": "largest"}, files=files)
    assert taken.status_code == 201
    client.delete(f"/people/{taken.json()['id']}", headers=w)


def test_namesakes_verify_by_id_and_errors(service):
    client, keys, _ = service
    w, r = auth(keys.write), auth(keys.read)
    first = client.post("/people", headers=w, data={"name": "Junichiro Koizumi"},
                        files={"photos": photo("Junichiro_Koizumi", 1)})
    second = client.post("/people", headers=w, data={"name": "Junichiro Koizumi", "allow_same_name": "true"},
                         files={"photos": photo("Junichiro_Koizumi", 2)})
    assert first.status_code == 201 and second.status_code == 201 and first.json()["id"] != second.json()["id"]
    ambiguous = client.post("/verify", headers=r, data={"name": "Junichiro Koizumi"},
                            files={"photo": photo("Junichiro_Koizumi", 3)})
    assert ambiguous.status_code == 409
    assert ambiguous.json()["error"]["code"] == "ambiguous_name"
    assert sorted(ambiguous.json()["error"]["details"]["ids"]) == sorted([first.json()["id"], second.json()["id"]])
    nobody = client.post("/verify", headers=r, data={"person_id": "999999"},
                         files={"photo": photo("Junichiro_Koizumi", 3)})
    assert nobody.status_code == 404 and nobody.json()["error"]["code"] == "person_not_found"
    unnamed = client.post("/verify", headers=r, files={"photo": photo("Junichiro_Koizumi", 3)})
    assert unnamed.status_code == 422
    for person in (first.json(), second.json()):
        assert client.delete(f"/people/{person['id']}", headers=w).status_code == 200


def test_every_error_has_one_shape(service):
    client, keys, _ = service
    w = auth(keys.write)
    cases = [
        client.post("/people", headers=w, data={"name": "Nobody"}),  # no photos
        client.post("/people", headers=w, data={"name": "   "}, files={"photos": photo("Tony_Blair", 1)}),
        client.post("/people", headers=w, data={"name": "Zed", "metadata": "[1, 2]"},
                    files={"photos": photo("Tony_Blair", 1)}),
        client.patch("/people/1", headers=w, json={}),
        client.get("/people/abc", headers=w),
        client.get("/nowhere", headers=w),
        client.put("/health"),
        client.get("/people", headers=w, params={"limit": "0"}),
    ]
    assert [c.status_code for c in cases] == [422, 422, 422, 422, 422, 404, 405, 422]
    for answer in cases:
        body = answer.json()
        assert set(body) == {"error"} and {"status", "code", "message"} <= set(body["error"])
        assert body["error"]["status"] == answer.status_code and body["error"]["message"]
        assert answer.headers["content-type"] == "application/json"
    assert cases[1].json()["error"]["code"] == "invalid_name"
    assert cases[2].json()["error"]["code"] == "invalid_metadata"


def test_version_names_model_threshold_and_key(service):
    client, keys, _ = service
    about = client.get("/version", headers=auth(keys.read)).json()
    assert about["model"] == "sface-2021dec+flip" and 0.5 < about["threshold"] < 1.5
    assert about["key"]["role"] == "read" and about["stores_photos"] is True
    assert about["limits"]["max_upload_bytes"] == 10 * 1024 * 1024
    json.dumps(about)


def test_a_gallery_of_a_saved_encoder_is_served_with_that_encoder(tmp_path, face_weights):
    """The service encodes with the gallery's encoder, not the default one. The saved encoder here is
    dlib's with its last layer negated: the same distances, but every vector points the other way."""
    import hashlib

    from safetensors.torch import save_file

    from cnnkit.faces.gallery import GalleryError
    from cnnkit.faces.pipeline import embed_images
    from cnnkit.faces.thresholds import default_threshold
    from cnnkit.service.core import FaceService
    from cnnkit.weights import load_state_dict

    folder = tmp_path / "negated"
    folder.mkdir()
    weights = {k: v.clone().contiguous() for k, v in load_state_dict("dlib-resnet-v1").items()}
    weights["fc.weight"] = -weights["fc.weight"]
    save_file(weights, str(folder / "model.safetensors"))
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps({
        "format": "cnnkit-encoder", "architecture": "dlib-resnet", "arguments": {}, "embedding_dim": 128,
        "chip_size": 150, "sha256": digest}))
    gallery = tmp_path / "saved.db"
    with Gallery(gallery, create=True, encoder=str(folder)) as g:
        with pytest.raises(GalleryError, match="cannot be served yet.*calibrate"):
            FaceService(ServiceSettings(gallery=gallery))
        # Distances are dlib's, so dlib's threshold holds (a real fine-tuned encoder is calibrated).
        g.set_threshold(default_threshold("dlib-resnet-v1", flip=True), {"method": "dlib's: same distances"})
    keys = make_keys(gallery)
    with client_for(ServiceSettings(gallery=gallery, threads=1)) as client:
        assert client.get("/version", headers=auth(keys.read)).json()["model"] == "saved:negated+flip"
        enrolled = client.post("/people", headers=auth(keys.write), data={"name": "Colin Powell"},
                               files={"photos": photo("Colin_Powell", 1)})
        assert enrolled.status_code == 201, enrolled.text
        found = client.post("/identify", headers=auth(keys.read), files={"photo": photo("Colin_Powell", 2)}).json()
        assert [f["name"] for f in found["faces"]] == ["Colin Powell"]
    with Gallery(gallery, readonly=True) as g:
        (row,) = g.store.embedding_rows(enrolled.json()["id"])
    stored = np.frombuffer(row["vector"], dtype="<f4")
    (saved,) = embed_images([lfw_image("Colin_Powell", 1)], encoder=str(folder))
    (dlib,) = embed_images([lfw_image("Colin_Powell", 1)], encoder="dlib-resnet-v1")
    assert np.abs(stored - saved.faces[0].embedding).max() < 1e-3
    assert np.abs(stored + dlib.faces[0].embedding).max() < 1e-3
