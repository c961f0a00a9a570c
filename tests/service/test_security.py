"""The service refuses what it must: missing, revoked or under-privileged keys, oversized, fake and
bomb uploads, slow senders; path-like names go nowhere."""

from __future__ import annotations

import http.client
import socket
import struct
import time
import zlib

import numpy as np
import pytest

from cnnkit.faces.gallery.keys import check_key, create_key, hash_key, list_keys, revoke_key
from cnnkit.faces.gallery.store import GalleryStore
from cnnkit.service import ServiceSettings
from tests.service.support import auth, client_for, make_keys, photo, png_bytes, running_server

pytestmark = pytest.mark.usefixtures("face_weights")

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def service(tmp_path_factory, face_weights):
    root = tmp_path_factory.mktemp("secure")
    gallery = root / "people.db"
    keys = make_keys(gallery)
    settings = ServiceSettings(gallery=gallery, max_upload_bytes=LIMIT, max_pixels=4_000_000, max_files=3,
                               store_images=root / "kept", threads=1)
    with client_for(settings) as client:
        yield client, keys, settings


def png_announcing(width: int, height: int) -> bytes:
    """A small valid-looking PNG whose header announces width x height (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024, 9))
            + chunk(b"IEND", b""))


WRITE_CALLS = [("post", "/people",
                {"data": {"name": "X"}, "files": {"photos": ("x.jpg", b"\xff\xd8\xff", "image/jpeg")}}),
               ("post", "/people/1/photos", {"files": {"photos": ("x.jpg", b"\xff\xd8\xff", "image/jpeg")}}),
               ("patch", "/people/1", {"json": {"name": "Y"}}),
               ("delete", "/people/1", {})]
READ_CALLS = [("get", "/people", {}), ("get", "/people/1", {}), ("get", "/version", {}),
              ("post", "/identify", {"files": {"photo": ("x.jpg", b"\xff\xd8\xff", "image/jpeg")}}),
              ("post", "/verify",
               {"data": {"person_id": "1"}, "files": {"photo": ("x.jpg", b"\xff\xd8\xff", "image/jpeg")}})]


@pytest.mark.parametrize("method,path,kwargs", WRITE_CALLS + READ_CALLS)
def test_no_key_unknown_key_or_revoked_key_is_401(service, method, path, kwargs):
    client, keys, _ = service
    for headers in ({}, auth("ck_" + "A" * 43), auth(keys.revoked), {"X-API-Key": keys.revoked},
                    {"Authorization": f"Basic {keys.write}"}, auth("not-even-a-key")):
        answer = getattr(client, method)(path, headers=headers, **kwargs)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.json()["error"]["code"] in ("missing_key", "invalid_key")
        assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method,path,kwargs", WRITE_CALLS)
def test_read_key_on_a_write_endpoint_is_403(service, method, path, kwargs):
    client, keys, _ = service
    for headers in (auth(keys.read), {"X-API-Key": keys.read}):
        answer = getattr(client, method)(path, headers=headers, **kwargs)
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden"


def test_revoking_takes_effect_on_the_next_request(service):
    client, _, settings = service
    store = GalleryStore(settings.gallery)
    try:
        token, key = create_key(store, "read", label="short-lived")
        assert client.get("/people", headers=auth(token)).status_code == 200
        revoke_key(store, key.id)
        assert client.get("/people", headers=auth(token)).status_code == 401
    finally:
        store.close()


def test_keys_are_stored_as_hashes_only(service):
    _, keys, settings = service
    wal = settings.gallery.with_name(settings.gallery.name + "-wal")
    raw = settings.gallery.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    for token in (keys.write, keys.read):
        assert token.encode() not in raw
    store = GalleryStore(settings.gallery)
    try:
        hashes = {r[0] for r in store.connection().execute("SELECT key_hash FROM api_keys")}
        assert hash_key(keys.write) in hashes and all(len(h) == 64 for h in hashes)
        assert check_key(store, keys.write).role == "write"
        assert check_key(store, keys.revoked) is None and check_key(store, "") is None
        assert [k.active for k in list_keys(store)][:3] == [True, True, False]
    finally:
        store.close()


def test_oversized_upload_is_413_before_anything_is_decoded(service):
    client, keys, _ = service
    big = b"\xff\xd8\xff" + bytes(LIMIT)
    answer = client.post("/identify", headers=auth(keys.read), files={"photo": ("big.jpg", big, "image/jpeg")})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "upload_too_large"

    def chunks():  # no Content-Length: the limit is counted while the body streams
        for _ in range(8):
            yield bytes(64 * 1024)

    streamed = client.post("/identify", headers={**auth(keys.read), "Content-Type": "multipart/form-data; boundary=x"},
                           content=chunks())
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "upload_too_large"


def test_too_many_files_is_413(service):
    client, keys, _ = service
    files = [("photos", (f"p{i}.png", png_bytes(np.zeros((8, 8, 3), np.uint8)), "image/png")) for i in range(4)]
    answer = client.post("/people", headers=auth(keys.write), data={"name": "Many"}, files=files)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_many_files"


@pytest.mark.parametrize("content", [b"GIF89a not really", b"%PDF-1.4\n...", b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                                     b"#!/bin/sh\nrm -rf /\n", b"\x00" * 100])
def test_a_non_image_named_jpg_is_415(service, content):
    client, keys, _ = service
    for path, field, data in (("/identify", "photo", {}), ("/people", "photos", {"name": "Fake"})):
        headers = auth(keys.write)
        answer = client.post(path, headers=headers, data=data, files={field: ("portrait.jpg", content, "image/jpeg")})
        assert answer.status_code == 415, answer.text
        assert answer.json()["error"]["code"] == "unsupported_media_type"
        assert "portrait.jpg" in answer.json()["error"]["message"]


def test_a_real_photo_is_accepted_whatever_its_name_or_declared_type(service):
    client, keys, _ = service
    _name, data, _ = photo("Tony_Blair", 2)
    answer = client.post("/identify", headers=auth(keys.read), files={"photo": ("notes.txt", data, "text/plain")})
    assert answer.status_code == 200 and len(answer.json()["faces"]) == 1


def test_truncated_jpeg_is_422(service):
    client, keys, _ = service
    _, data, _ = photo("Tony_Blair", 2)
    answer = client.post("/identify", headers=auth(keys.read), files={"photo": ("cut.jpg", data[:400], "image/jpeg")})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "unreadable_image"


def test_decompression_bombs_are_413_without_decoding(service):
    client, keys, _ = service
    bomb = png_announcing(30000, 30000)
    assert len(bomb) < 200
    start = time.perf_counter()
    answer = client.post("/identify", headers=auth(keys.read), files={"photo": ("bomb.png", bomb, "image/png")})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "image_too_large"
    assert time.perf_counter() - start < 5
    # Under PIL's own bomb limit but over the service's pixel limit (4 MP here), and a real, compressible one.
    over = client.post("/identify", headers=auth(keys.read),
                       files={"photo": ("wide.png", png_announcing(4000, 1001), "image/png")})
    assert over.status_code == 413 and "4000x1001" in over.json()["error"]["message"]
    real = png_bytes(np.zeros((2100, 2100, 3), np.uint8))
    assert len(real) < LIMIT
    answer = client.post("/people", headers=auth(keys.write), data={"name": "Bomb"},
                         files={"photos": ("zeros.png", real, "image/png")})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "image_too_large"


def test_path_like_names_go_nowhere(service):
    client, keys, settings = service
    w = auth(keys.write)
    evil = "../../../../tmp/cnnkit-evil"
    _name, data, _ = photo("Gerhard_Schroeder", 1)
    answer = client.post("/people", headers=w, data={"name": evil},
                         files={"photos": ("../../../../../tmp/cnnkit-evil.jpg", data, "image/jpeg")})
    assert answer.status_code == 201, answer.text
    person = answer.json()
    assert person["name"] == evil  # a name is only text
    kept = sorted(p.relative_to(settings.store_images) for p in settings.store_images.rglob("*")
                  if p.is_file() and p.name != ".lock")  # .lock: the workers' lock (photos.py)
    assert [str(p) for p in kept] == [f"{person['id']}/{n}.jpg" for n in _embedding_ids(settings, person["id"])]
    store = GalleryStore(settings.gallery)
    try:
        (row,) = store.embedding_rows(person["id"])
    finally:
        store.close()
    assert row["source"] == "upload:cnnkit-evil.jpg"
    # A name that is a path in the URL does not route anywhere.
    for path in ("/people/..%2F..%2Fetc%2Fpasswd", "/people/../../etc/passwd", "/people/%2e%2e"):
        assert client.get(path, headers=w).status_code in (404, 422)
    assert client.delete(f"/people/{person['id']}", headers=w).status_code == 200
    assert [p.name for p in settings.store_images.iterdir()] == [".lock"]


def _embedding_ids(settings: ServiceSettings, person_id: int) -> list[int]:
    store = GalleryStore(settings.gallery)
    try:
        return [r["id"] for r in store.embedding_rows(person_id)]
    finally:
        store.close()


def test_control_characters_in_names_are_refused(service):
    client, keys, _ = service
    answer = client.post("/people", headers=auth(keys.write), data={"name": "Eve\u202emoc.exe"},
                         files={"photos": photo("Gerhard_Schroeder", 2)})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_name"


def test_responses_carry_security_headers(service):
    client, _, _ = service
    for path in ("/", "/health", "/people"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_real_server_cuts_off_oversized_and_slow_requests(tmp_path, face_weights):
    gallery = tmp_path / "g.db"
    keys = make_keys(gallery)
    settings = ServiceSettings(gallery=gallery, max_upload_bytes=LIMIT, request_timeout_s=1.0, threads=1)
    with running_server(settings) as url:
        host, port = url.removeprefix("http://").split(":")
        # A Content-Length over the limit is refused before the body is sent.
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.putrequest("POST", "/identify")
        conn.putheader("Authorization", f"Bearer {keys.read}")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(50 * 1024 * 1024))
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 413 and b"upload_too_large" in answer.read()
        conn.close()
        # A sender that stalls gets 408 once the request timeout passes.
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /identify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + keys.read.encode()
                         + b"\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000\r\n\r\n--x\r\n")
            start = time.monotonic()
            reply = sock.recv(4096)
            waited = time.monotonic() - start
            while b"request_timeout" not in reply:  # the body may come in a later segment
                more = sock.recv(4096)
                if not more:
                    break
                reply += more
            assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply
            assert 0.5 < waited < 8


def test_cli_listens_on_loopback_by_default():
    import argparse

    from cnnkit.cli import serve

    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--gallery", "g.db"])
    assert args.host == "127.0.0.1" and args.port == 8000 and args.workers == 1 and args.run is serve.run_serve
    from cnnkit.service.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
