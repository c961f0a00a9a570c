"""Photos as base64 in a JSON body, on the same paths as multipart, and the API page (in-process, LFW photos)."""

from __future__ import annotations

import base64

import pytest

from cnnkit.service import ServiceSettings
from tests.conftest import lfw_image
from tests.service.support import auth, client_for, make_keys

pytestmark = pytest.mark.usefixtures("face_weights")


def b64(name: str, number: int, *, data_url: bool = False) -> str:
    text = base64.b64encode(lfw_image(name, number).read_bytes()).decode()
    return f"data:image/jpeg;base64,{text}" if data_url else text


@pytest.fixture(scope="module")
def service(tmp_path_factory, face_weights):
    gallery = tmp_path_factory.mktemp("json") / "people.db"
    keys = make_keys(gallery)
    with client_for(ServiceSettings(gallery=gallery, threads=1)) as client:
        yield client, keys


def test_enroll_add_verify_identify_in_json(service):
    client, keys = service
    w, r = auth(keys.write), auth(keys.read)
    answer = client.post("/people", headers=w, json={"name": "Colin Powell", "photos": [b64("Colin_Powell", 1)],
                                                     "metadata": {"team": "state"}})
    assert answer.status_code == 201, answer.text
    person = answer.json()
    assert person["name"] == "Colin Powell" and person["metadata"] == {"team": "state"}
    assert answer.headers["location"] == f"/people/{person['id']}"
    added = client.post(f"/people/{person['id']}/photos", headers=w,
                        json={"photos": [b64("Colin_Powell", 2, data_url=True)]})
    assert added.status_code == 200 and added.json()["embeddings"] == 2
    same = client.post("/verify", headers=r, json={"photo": b64("Colin_Powell", 3), "person_id": person["id"]})
    assert same.status_code == 200 and same.json()["match"] is True
    other = client.post("/verify", headers=r, json={"photo": b64("Aaron_Eckhart", 1), "name": "Colin Powell"})
    assert other.status_code == 200 and other.json()["match"] is False
    found = client.post("/identify", headers=r, json={"photo": b64("Colin_Powell", 4), "top_k": 1})
    assert found.status_code == 200
    assert [f["name"] for f in found.json()["faces"]] == ["Colin Powell"]
    # The multipart form of the same call answers the same.
    path = lfw_image("Colin_Powell", 4)
    multipart = client.post("/identify", headers=r, files={"photo": (path.name, path.read_bytes(), "image/jpeg")},
                            data={"top_k": "1"})
    assert multipart.json()["faces"] == found.json()["faces"]


@pytest.mark.parametrize(("body", "status", "code", "words"), [
    ({"image_url": "http://169.254.169.254/latest/meta-data"}, 422, "invalid_request", "not fetched from URLs"),
    ({"photo": "not base64 at all!"}, 422, "invalid_base64", "not base64"),
    ({"photo": base64.b64encode(b"hello, not an image").decode()}, 415, "unsupported_media_type", "not a JPEG"),
    ({"photo": "aGk=", "top_k": 0}, 422, "invalid_request", "top_k"),
    ({"photo": "aGk=", "extra": 1}, 422, "invalid_request", "extra"),
    ({}, 422, "invalid_request", "photo"),
])
def test_bad_json_bodies_get_one_error_shape(service, body, status, code, words):
    client, keys = service
    answer = client.post("/identify", headers=auth(keys.read), json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and words in error["message"] + str(error.get("details", ""))


def test_json_needs_a_key_like_multipart(service):
    client, keys = service
    answer = client.post("/identify", json={"photo": b64("Colin_Powell", 1)})
    assert answer.status_code == 401
    assert client.post("/people", headers=auth(keys.read), json={"name": "X", "photos": ["aGk="]}).status_code == 403


def test_schema_documents_both_bodies_and_the_api_page_is_served_locally(service):
    client, _ = service
    body = client.get("/openapi.json").json()["paths"]["/identify"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert body["application/json"]["schema"]["required"] == ["photo"]
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text and "<script>" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/docs.js").status_code == 200
