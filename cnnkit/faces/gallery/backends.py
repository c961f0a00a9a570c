"""Where a gallery's people and vectors live: the backend protocol and which backend a location means.

A file path is SQLite (`GalleryStore`, store.py); `milvus://HOST:PORT/COLLECTION`
and `milvus-lite://PATH` are Milvus (`MilvusStore`, milvus_store.py). Both
implement `GalleryBackend`, so `Gallery` works the same on either; only the
Gallery talks to a backend.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .search import Hit
from .store import EmbeddingRecord, GalleryStore, Person

BACKENDS = ("sqlite", "milvus", "milvus-lite")


class GalleryBackend(Protocol):
    """What `Gallery` needs of a store. Changes happen inside `write()`: all of a block or none of it."""

    @property
    def path(self) -> str | Path: ...  # read-only: a file path (SQLite) or a milvus location

    readonly: bool
    #: True when the store answers `search` itself (Milvus); else the Gallery keeps an index of `embeddings_after`.
    searches_itself: bool

    def close(self) -> None: ...
    def write(self) -> AbstractContextManager[Any]: ...
    def meta(self) -> dict[str, str]: ...
    def set_meta(self, tx: Any, **values: str) -> None: ...
    def version(self) -> tuple[int, int]: ...
    def changes(self) -> int: ...  # a change counter kept with the gallery (stamps saved search graphs)

    def people(self, name: str | None = None, *, offset: int = 0, limit: int | None = None) -> list[Person]: ...
    def count_people(self, name: str | None = None) -> int: ...
    def person(self, person_id: int) -> Person | None: ...
    def names(self, person_ids: set[int]) -> dict[int, str]: ...
    def add_person(self, tx: Any, name: str, metadata: dict | None = None, *, person_id: int | None = None,
                   created_at: str | None = None) -> int: ...
    def add_embeddings(self, tx: Any, person_id: int, records: list[EmbeddingRecord], model: str,
                       model_version: str, *, created_at: list[str] | None = None) -> list[int]: ...
    def remove_person(self, tx: Any, person_id: int) -> None: ...
    def rename_person(self, tx: Any, person_id: int, name: str) -> None: ...

    def embeddings_after(self, dim: int, after_id: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
    def embedding_ids(self, up_to: int) -> np.ndarray: ...
    def embedding_rows(self, person_id: int | None = None) -> list[dict]: ...
    def source_hashes(self) -> set[str]: ...
    def count(self) -> int: ...
    def integrity_check(self) -> list[str]: ...


class SearchingBackend(GalleryBackend, Protocol):
    """A backend that finds the nearest people itself (`searches_itself` is True)."""

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]: ...


def backend_of(location: str | os.PathLike) -> str:
    """'milvus' for milvus://HOST:PORT/COLLECTION, 'milvus-lite' for milvus-lite://PATH, else 'sqlite'."""
    if isinstance(location, str):
        if location.startswith("milvus-lite://"):
            return "milvus-lite"
        if location.startswith("milvus://"):
            return "milvus"
    return "sqlite"


def open_store(location: str | os.PathLike, *, create: bool = False, readonly: bool = False,
               index: str = "auto") -> GalleryBackend:
    """The store for `location`: a `GalleryStore` (SQLite file) or a `MilvusStore`."""
    if backend_of(location) == "sqlite":
        return GalleryStore(location, create=create, readonly=readonly)
    from .milvus_store import MilvusStore

    return MilvusStore(str(location), create=create, readonly=readonly, index=index)


__all__ = ["BACKENDS", "GalleryBackend", "SearchingBackend", "backend_of", "open_store"]
