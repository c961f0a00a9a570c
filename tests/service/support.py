"""Helpers of the service tests (no tests here): a gallery with keys, the app in-process, a real server."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import lfw_image


@dataclass
class Keys:
    write: str
    read: str
    revoked: str


def make_keys(gallery: Path) -> Keys:
    from cnnkit.faces.gallery.keys import create_key, revoke_key
    from cnnkit.faces.gallery.store import GalleryStore

    store = GalleryStore(gallery, create=True)
    try:
        write, _ = create_key(store, "write", label="tests")
        read, _ = create_key(store, "read", label="tests")
        revoked, key = create_key(store, "write", label="revoked")
        revoke_key(store, key.id)
    finally:
        store.close()
    return Keys(write, read, revoked)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def photo(name: str, number: int) -> tuple[str, bytes, str]:
    """A multipart file tuple for an LFW photo."""
    path = lfw_image(name, number)
    return (path.name, path.read_bytes(), "image/jpeg")


def png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


@contextmanager
def client_for(settings) -> Iterator:
    """The app in-process (fastapi.testclient), started: models loaded, gallery open."""
    from fastapi.testclient import TestClient

    from cnnkit.service import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@contextmanager
def running_server(settings) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    from cnnkit.service import create_app
    from cnnkit.service.server import uvicorn_options

    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning",
                            access_log=False, **uvicorn_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
