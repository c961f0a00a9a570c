"""Which storage a gallery location means: a file path is SQLite; `milvus://` and `milvus-lite://` are Milvus."""

from __future__ import annotations

import os

from .store import GalleryStore

BACKENDS = ("sqlite", "milvus", "milvus-lite")


def backend_of(location: str | os.PathLike) -> str:
    """'milvus' for milvus://HOST:PORT/COLLECTION, 'milvus-lite' for milvus-lite://PATH, else 'sqlite'."""
    if isinstance(location, str):
        if location.startswith("milvus-lite://"):
            return "milvus-lite"
        if location.startswith("milvus://"):
            return "milvus"
    return "sqlite"


def open_store(location: str | os.PathLike, *, create: bool = False, readonly: bool = False, index: str = "auto"):
    """The store for `location`: a `GalleryStore` (SQLite file) or a `MilvusStore`."""
    if backend_of(location) == "sqlite":
        return GalleryStore(location, create=create, readonly=readonly)
    from .milvus_store import MilvusStore

    return MilvusStore(str(location), create=create, readonly=readonly, index=index)
