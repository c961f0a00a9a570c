"""What the service does, apart from HTTP: one gallery, one face engine, and the rules of enrollment.

Threads: gallery reads and writes run on the server's thread pool (each thread
has its own SQLite connection; writes are single `BEGIN IMMEDIATE`
transactions that wait up to the store's busy timeout for one another, also
across worker processes). Searches run on one dedicated thread, so the search
index is built once and refreshed only when the gallery changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from ..errors import (
    AmbiguousName,
    GalleryError,
    InvalidMetadata,
    NameTaken,
    NoFaceError,
    Overloaded,
    ServiceError,
    SettingsError,
    TimedOut,
)
from ..faces.gallery import Gallery, Person, enrollment_record
from ..faces.gallery.gallery import PICK_CHOICES
from ..faces.gallery.openset import OperatingPoint
from ..faces.gallery.store import EmbeddingRecord, GalleryStore
from ..faces.types import Face, embedding_of
from .engine import FaceEngine
from .photos import PhotoStore
from .settings import ServiceSettings
from .uploads import Upload, decode_upload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawUpload:
    """A file as it came in: its bytes and the name the client gave it (untrusted)."""

    data: bytes
    filename: str | None


def parse_metadata(text: str | None) -> dict | None:
    """The metadata form field: JSON text, checked by the gallery's rules when the person is stored."""
    if text is None or not text.strip():
        return None
    if len(text) > 64 * 1024:  # far past the gallery's limit: not worth parsing
        raise InvalidMetadata("metadata is limited to 4096 bytes of JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMetadata(f"metadata is not valid JSON ({exc.msg})") from None


def largest_face(faces: list[Face], source: str) -> Face:
    if not faces:
        raise NoFaceError(f"{source}: no face found")
    return max(faces, key=lambda f: f.width * f.height)


def check_threshold(gallery: Gallery) -> float:
    """The gallery's decision threshold; GalleryError (before serving anything) when it has none."""
    try:
        return gallery.threshold
    except SettingsError as exc:  # a saved encoder without a calibrated threshold
        gallery.close()
        raise GalleryError(f"{gallery.path}: cannot be served yet: {exc}") from None


class FaceService:
    """The gallery, the face engine and the optional photo store of one worker process."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        device = None if settings.device == "auto" else settings.device
        self.gallery = Gallery(settings.gallery, create=True, device=device)
        check_threshold(self.gallery)
        # The API keys: in the gallery file, or in their own SQLite file (needed for a Milvus gallery).
        self.keys = (self.gallery.store if settings.keys is None
                     else GalleryStore(settings.keys, create=True))
        self.engine = FaceEngine(device=settings.device, flip=self.gallery.model.flip,
                                 encoder=self.gallery.model.encoder,
                                 batch_size=settings.batch_size, batch_wait_ms=settings.batch_wait_ms,
                                 max_queue=settings.max_queue, threads=settings.threads)
        self.photos = PhotoStore(settings.store_images) if settings.store_images is not None else None
        self._search = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnnkit-search")

    def start(self) -> None:
        self.engine.start()
        if self.photos is not None:
            ids, people, _ = self.gallery.store.embeddings_after(self.gallery.model.dim)
            self.photos.reconcile_at_start(zip(people.tolist(), ids.tolist()))

    def close(self) -> None:
        self.engine.stop()
        self._search.shutdown(wait=True)
        self.gallery.close()
        if self.keys is not self.gallery.store:
            self.keys.close()
        if self.photos is not None:
            self.photos.close()

    # -- photos -> faces ------------------------------------------------------------------

    async def decode(self, files: list[RawUpload]) -> list[Upload]:
        if not files:
            raise ServiceError(status=422, code="no_photo", message="send at least one photo")
        if len(files) > self.settings.max_files:
            raise ServiceError(status=413, code="too_many_files",
                               message=f"{len(files)} photos in one request; the limit is {self.settings.max_files}")

        def work() -> list[Upload]:
            return [decode_upload(f.data, f.filename, index=i, max_pixels=self.settings.max_pixels)
                    for i, f in enumerate(files)]

        return await run_in_threadpool(work)

    async def faces_of(self, uploads: list[Upload]) -> list[list[Face]]:
        try:
            return await self.engine.embed([u.image for u in uploads], timeout_s=self.settings.request_timeout_s)
        except Overloaded as exc:
            raise Overloaded(f"the service is busy ({exc}); try again shortly", headers={"Retry-After": "1"}) from None
        except TimedOut as exc:
            raise TimedOut(f"{exc}; try again shortly", headers={"Retry-After": "2"}) from None

    async def _searching(self, fn, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._search, fn, *args)

    # -- recognition ------------------------------------------------------------------------

    async def identify(self, files: list[RawUpload], *, top_k: int) -> dict:
        (upload,) = await self.decode(files)
        (faces,) = await self.faces_of([upload])

        def search() -> tuple[OperatingPoint, list]:
            if not faces:
                return self.gallery.operating_point(), []
            vectors = np.stack([embedding_of(f) for f in faces])
            answers = self.gallery.identify_embeddings(vectors, top_k=top_k, faces=faces)
            return answers[0].operating_point or self.gallery.operating_point(), answers

        point, answers = await self._searching(search)
        height, width = upload.image.shape[:2]
        return {"width": width, "height": height, "threshold": point.threshold, "operating_point": point.to_dict(),
                "faces": [a.to_dict() for a in answers]}

    async def verify(self, files: list[RawUpload], *, person_id: int | None, name: str | None) -> dict:
        person = await run_in_threadpool(self.resolve, person_id, name)
        (upload,) = await self.decode(files)
        (faces,) = await self.faces_of([upload])
        face = largest_face(faces, upload.name)
        answer = await run_in_threadpool(self.gallery.verify_face, person, face)
        return answer.to_dict()

    # -- enrollment -------------------------------------------------------------------------

    async def _records(self, files: list[RawUpload], pick: str) -> tuple[list[Upload], list[EmbeddingRecord]]:
        if pick not in PICK_CHOICES:
            raise SettingsError(f"pick must be one of {', '.join(PICK_CHOICES)}")
        uploads = await self.decode(files)
        found = await self.faces_of(uploads)
        return uploads, [enrollment_record(u.name, faces, pick, sha256=u.sha256) for u, faces in zip(uploads, found)]

    async def enroll(self, name: str, files: list[RawUpload], *, pick: str = "auto", metadata: dict | None = None,
                     allow_same_name: bool = False) -> Person:
        """A new person from one or more photos; 409 if the name is taken (unless allowed)."""
        from ..faces.gallery import clean_metadata, clean_name

        name, metadata = clean_name(name), clean_metadata(metadata)  # before the photos cost anything
        uploads, records = await self._records(files, pick)

        def store() -> Person:
            with self._storing(new_person=True) as kept:
                try:
                    return self.gallery.enroll_embeddings(
                        name, records, metadata=metadata, if_name_taken="new" if allow_same_name else "refuse",
                        on_stored=lambda pid, ids: kept.extend(self._keep_photos(pid, ids, uploads, new_person=True)))
                except NameTaken as exc:
                    raise ServiceError(f"{exc}; add photos with POST /people/{exc.ids[0]}/photos, or send "
                                       "allow_same_name=true for a namesake", status=409, code="name_taken",
                                       details={"ids": exc.ids}) from None

        return await run_in_threadpool(store)

    async def add_photos(self, person_id: int, files: list[RawUpload], *, pick: str = "auto") -> Person:
        person = await run_in_threadpool(self.person, person_id)  # 404 before any work
        uploads, records = await self._records(files, pick)

        def store() -> Person:
            with self._storing() as kept:
                return self.gallery.enroll_embeddings(
                    person.name, records, person_id=person_id,
                    on_stored=lambda pid, ids: kept.extend(self._keep_photos(pid, ids, uploads)))

        return await run_in_threadpool(store)

    @contextmanager
    def _storing(self, *, new_person: bool = False) -> Iterator[list[Path]]:
        """Around an enrollment's transaction: photos kept during it are removed if it is not stored."""
        kept: list[Path] = []
        try:
            yield kept
        except BaseException:
            if self.photos is not None:
                self.photos.discard(kept)
                if new_person and kept:  # the id is rolled back, and may be given again: leave nothing under it
                    self.photos.remove_person(int(kept[0].parent.name))
            raise

    def _keep_photos(self, person_id: int, embedding_ids: list[int], uploads: list[Upload], *,
                     new_person: bool = False) -> list[Path]:
        """Inside the enrollment's transaction: if saving fails, nothing is enrolled and nothing kept."""
        if self.photos is None:
            return []
        if new_person:
            # A new id with a folder already: a crashed enrollment's, whose id was rolled back and is given
            # again now. Those photos are someone else's.
            self.photos.remove_person(person_id)
        saved: list[Path] = []
        try:
            for embedding_id, upload in zip(embedding_ids, uploads):
                saved.append(self.photos.save(person_id, embedding_id, upload.data, upload.extension))
        except BaseException:
            self.photos.discard(saved)
            raise
        return saved

    # -- people -----------------------------------------------------------------------------

    def person(self, person_id: int) -> Person:
        return self.gallery.person(person_id)

    def resolve(self, person_id: int | None, name: str | None) -> Person:
        """The claimed identity of a verification: an id, or a name that only one person has."""
        if (person_id is None) == (name is None or not name.strip()):
            raise SettingsError("say who is claimed: send person_id or name (one of them)")
        if person_id is not None:
            return self.gallery.person(person_id)
        try:
            return self.gallery.resolve(" ".join(str(name).split()))
        except AmbiguousName as exc:
            raise AmbiguousName(f"{len(exc.ids)} people are called {name!r}; send person_id "
                                f"(one of {', '.join(map(str, exc.ids))})", ids=exc.ids) from None

    def people(self, *, name: str | None = None, offset: int = 0, limit: int = 1000) -> dict:
        name = name if name and name.strip() else None
        page = self.gallery.people(name=name, offset=offset, limit=limit)
        return {"total": self.gallery.count_people(name), "offset": offset, "people": [p.to_dict() for p in page]}

    def rename(self, person_id: int, new_name: str) -> Person:
        return self.gallery.rename(int(person_id), new_name)

    def remove(self, person_id: int) -> Person:
        """Delete a person, every embedding of theirs and any photo of theirs that was kept.

        The photos go inside the gallery's transaction, before the rows (see photos.py);
        the gallery then erases the rows from its file and log (see store.py).
        """
        return self.gallery.remove(int(person_id),
                                   on_removing=self.photos.remove_person if self.photos is not None else None)

    # -- about ------------------------------------------------------------------------------

    def about(self) -> dict:
        from .. import __version__

        g = self.gallery
        return {"cnnkit": __version__, "model": g.model.id, "model_version": g.model.version,
                "threshold": g.threshold, "people": len(g),
                "limits": {"max_upload_bytes": self.settings.max_upload_bytes, "max_files": self.settings.max_files,
                           "max_pixels": self.settings.max_pixels,
                           "request_timeout_s": self.settings.request_timeout_s},
                "batching": {"batch_size": self.settings.batch_size, **self.engine.stats.to_dict()},
                "stores_photos": self.photos is not None}
