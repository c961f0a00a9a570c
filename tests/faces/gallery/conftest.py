"""The embedded Milvus server (PyPI `milvus`, 2.3.5) for the gallery tests: started once, on loopback, when needed."""

from __future__ import annotations

import importlib.util

import pytest

HAS_MILVUS_SERVER = importlib.util.find_spec("milvus") is not None and importlib.util.find_spec("pymilvus") is not None


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """"127.0.0.1:PORT" of a Milvus standalone server with its data in a temporary folder; stopped at the end."""
    if not HAS_MILVUS_SERVER:
        pytest.skip('the embedded Milvus server is not installed (pip install "cnnkit[milvus-server]")')
    from cnnkit.faces.gallery.milvus_server import embedded_milvus

    with embedded_milvus(tmp_path_factory.mktemp("milvus-server")) as address:
        yield address
