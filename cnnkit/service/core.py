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
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from ..faces.gallery import Gallery, GalleryError, Person
from ..faces.gallery.gallery import DOMINANT_AREA_RATIO, PICK_CHOICES
from ..faces.gallery.store import EmbeddingRecord
from ..faces.types import Face
from .engine import FaceEngine, Overloaded, TimedOut
from .errors import ServiceError
from .photos import PhotoStore
from .settings import ServiceSettings
from .uploads import Upload, decode_upload

log = logging.getLogger(__name__)

MAX_NAME = 200
MAX_METADATA_BYTES = 4096


@dataclass(frozen=True)
class RawUpload:
    """A file as it came in: its bytes and the name the client gave it (untrusted)."""

    data: bytes
    filename: str | None


def clean_name(name: str) -> str:
    """A person's name with whitespace collapsed; 422 when empty, too long or holding control characters."""
    text = " ".join(str(name).split())
    if not text:
        raise ServiceError(422, "invalid_name", "a person needs a non-empty name")
    if len(text) > MAX_NAME:
        raise ServiceError(422, "invalid_name", f"names are limited to {MAX_NAME} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in text):
        raise ServiceError(422, "invalid_name", "a name may not hold control or invisible format characters")
    return text


def parse_metadata(text: str | None) -> dict | None:
    if text is None or not text.strip():
        return None
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise ServiceError(422, "invalid_metadata", f"metadata is limited to {MAX_METADATA_BYTES} bytes of JSON")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServiceError(422, "invalid_metadata", f"metadata is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ServiceError(422, "invalid_metadata", "metadata must be a JSON object")
    return value


def pick_face(faces: list[Face], pick: str, source: str) -> Face:
    """The face of an enrollment photo that is the person (the gallery's rule; see PICK_CHOICES)."""
    if not faces:
        raise ServiceError(422, "no_face", f"{source}: no face found; nothing was enrolled")
    ordered = sorted(faces, key=lambda f: f.width * f.height, reverse=True)
    first = ordered[0]
    if len(ordered) > 1 and (pick == "only" or (
            pick == "auto" and first.width * first.height < DOMINANT_AREA_RATIO * ordered[1].width * ordered[1].height)):
        raise ServiceError(422, "several_faces",
                           f"{source}: {len(ordered)} faces found; send a photo of the person alone, or pick=largest "
                           "to take the largest face; nothing was enrolled")
    return first


def largest_face(faces: list[Face], source: str) -> Face:
    if not faces:
        raise ServiceError(422, "no_face", f"{source}: no face found")
    return max(faces, key=lambda f: f.width * f.height)


def check_threshold(gallery: Gallery) -> float:
    """The gallery's decision threshold; GalleryError (before serving anything) when it has none."""
    try:
        return gallery.threshold
    except ValueError as exc:  # a saved encoder without a calibrated threshold
        gallery.close()
        raise GalleryError(f"{gallery.path}: cannot be served yet: {exc}") from None


class FaceService:
    """The gallery, the face engine and the optional photo store of one worker process."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        device = None if settings.device == "auto" else settings.device
        self.gallery = Gallery(settings.gallery, create=True, device=device)
        check_threshold(self.gallery)
        self.engine = FaceEngine(device=settings.device, flip=self.gallery.model.flip,
                                 encoder=self.gallery.model.encoder,
                                 batch_size=settings.batch_size, batch_wait_ms=settings.batch_wait_ms,
                                 max_queue=settings.max_queue, threads=settings.threads)
        self.photos = PhotoStore(settings.store_images) if settings.store_images is not None else None
        self._search = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnnkit-search")

    def start(self) -> None:
        self.engine.start()
        if self.photos is not None:
            self.photos.sweep(p.id for p in self.gallery.people())

    def close(self) -> None:
        self.engine.stop()
        self._search.shutdown(wait=True)
        self.gallery.close()

    # -- photos -> faces ------------------------------------------------------------------

    async def decode(self, files: list[RawUpload]) -> list[Upload]:
        if not files:
            raise ServiceError(422, "no_photo", "send at least one photo")
        if len(files) > self.settings.max_files:
            raise ServiceError(413, "too_many_files",
                               f"{len(files)} photos in one request; the limit is {self.settings.max_files}")

        def work() -> list[Upload]:
            return [decode_upload(f.data, f.filename, index=i, max_pixels=self.settings.max_pixels)
                    for i, f in enumerate(files)]

        return await run_in_threadpool(work)

    async def faces_of(self, uploads: list[Upload]) -> list[list[Face]]:
        try:
            return await self.engine.embed([u.image for u in uploads], timeout_s=self.settings.request_timeout_s)
        except Overloaded as exc:
            raise ServiceError(503, "overloaded", f"the service is busy ({exc}); try again shortly",
                               headers={"Retry-After": "1"}) from None
        except TimedOut as exc:
            raise ServiceError(503, "overloaded", f"{exc}; try again shortly", headers={"Retry-After": "2"}) from None

    async def _searching(self, fn, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._search, fn, *args)

    # -- recognition ------------------------------------------------------------------------

    async def identify(self, files: list[RawUpload], *, top_k: int) -> dict:
        (upload,) = await self.decode(files)
        (faces,) = await self.faces_of([upload])

        def search() -> tuple[float, list]:
            if not faces:
                return self.gallery.threshold, []
            vectors = np.stack([f.embedding for f in faces])
            answers = self.gallery.identify_embeddings(vectors, top_k=top_k, faces=faces)
            return (answers[0].threshold, answers)

        threshold, answers = await self._searching(search)
        height, width = upload.image.shape[:2]
        return {"width": width, "height": height, "threshold": threshold, "faces": [a.to_dict() for a in answers]}

    async def verify(self, files: list[RawUpload], *, person_id: int | None, name: str | None) -> dict:
        person = await run_in_threadpool(self.resolve, person_id, name)
        (upload,) = await self.decode(files)
        (faces,) = await self.faces_of([upload])
        face = largest_face(faces, upload.name)

        def compare() -> dict:
            rows = self.gallery.store.embedding_rows(person.id)
            if not rows:
                raise ServiceError(404, "person_not_found", f"no person with id {person.id} (removed meanwhile)")
            vectors = np.stack([np.frombuffer(r["vector"], dtype="<f4") for r in rows])
            distance = float(np.linalg.norm(vectors - face.embedding[None], axis=1).min())
            threshold = self.gallery.threshold
            return {"match": distance <= threshold, "distance": round(distance, 4), "threshold": threshold,
                    "person": person.to_dict(), "box": [round(float(v), 1) for v in face.box]}

        return await run_in_threadpool(compare)

    # -- enrollment -------------------------------------------------------------------------

    async def _records(self, files: list[RawUpload], pick: str) -> tuple[list[Upload], list[EmbeddingRecord]]:
        if pick not in PICK_CHOICES:
            raise ServiceError(422, "invalid_request", f"pick must be one of {', '.join(PICK_CHOICES)}")
        uploads = await self.decode(files)
        found = await self.faces_of(uploads)
        records = []
        for upload, faces in zip(uploads, found):
            face = pick_face(faces, pick, upload.name)
            records.append(EmbeddingRecord(vector=face.embedding, source=upload.name, source_sha256=upload.sha256,
                                           box=face.box))
        return uploads, records

    async def enroll(self, name: str, files: list[RawUpload], *, pick: str = "auto", metadata: dict | None = None,
                     allow_same_name: bool = False) -> Person:
        """A new person from one or more photos; 409 if the name is taken (unless allowed)."""
        name = clean_name(name)
        uploads, records = await self._records(files, pick)

        def store() -> Person:
            g = self.gallery
            with self._storing() as kept, g.store.write() as tx:
                same = g.store.people(name=name)
                if same and not allow_same_name:
                    ids = [p.id for p in same]
                    raise ServiceError(409, "name_taken",
                                       f"{name!r} is enrolled already (id {', '.join(map(str, ids))}); add photos "
                                       f"with POST /people/{ids[0]}/photos, or send allow_same_name=true for "
                                       "a namesake", details={"ids": ids})
                person_id = g.store.add_person(tx, name, metadata)
                ids = g.store.add_embeddings(tx, person_id, records, g.model.id, g.model.version)
                kept += self._keep_photos(person_id, ids, uploads)
            return self._person(person_id)

        return await run_in_threadpool(store)

    async def add_photos(self, person_id: int, files: list[RawUpload], *, pick: str = "auto") -> Person:
        await run_in_threadpool(self.person, person_id)  # 404 before any work
        uploads, records = await self._records(files, pick)

        def store() -> Person:
            g = self.gallery
            with self._storing() as kept, g.store.write() as tx:
                if g.store.person(person_id) is None:
                    raise ServiceError(404, "person_not_found", f"no person with id {person_id}")
                ids = g.store.add_embeddings(tx, person_id, records, g.model.id, g.model.version)
                kept += self._keep_photos(person_id, ids, uploads)
            return self._person(person_id)

        return await run_in_threadpool(store)

    @contextmanager
    def _storing(self) -> Iterator[list[Path]]:
        """Around an enrollment's transaction: photos kept during it are removed if it is not stored."""
        kept: list[Path] = []
        try:
            yield kept
        except BaseException:
            if self.photos is not None:
                self.photos.discard(kept)
            raise

    def _keep_photos(self, person_id: int, embedding_ids: list[int], uploads: list[Upload]) -> list[Path]:
        """Inside the enrollment's transaction: if saving fails, nothing is enrolled and nothing kept."""
        if self.photos is None:
            return []
        saved: list[Path] = []
        try:
            for embedding_id, upload in zip(embedding_ids, uploads):
                saved.append(self.photos.save(person_id, embedding_id, upload.data, upload.extension))
        except BaseException:
            self.photos.discard(saved)
            raise
        return saved

    # -- people -----------------------------------------------------------------------------

    def _person(self, person_id: int) -> Person:
        person = self.gallery.store.person(person_id)
        if person is None:
            raise ServiceError(404, "person_not_found", f"no person with id {person_id}")
        return person

    def person(self, person_id: int) -> Person:
        return self._person(person_id)

    def resolve(self, person_id: int | None, name: str | None) -> Person:
        """The claimed identity of a verification: an id, or a name that only one person has."""
        if (person_id is None) == (name is None or not name.strip()):
            raise ServiceError(422, "invalid_request", "say who is claimed: send person_id or name (one of them)")
        if person_id is not None:
            return self._person(person_id)
        people = self.gallery.store.people(name=" ".join(str(name).split()))
        if not people:
            raise ServiceError(404, "person_not_found", f"nobody called {name!r} is enrolled")
        if len(people) > 1:
            ids = [p.id for p in people]
            raise ServiceError(409, "ambiguous_name", f"{len(people)} people are called {name!r}; send person_id "
                               f"(one of {', '.join(map(str, ids))})", details={"ids": ids})
        return people[0]

    def people(self, *, name: str | None = None, offset: int = 0, limit: int = 1000) -> dict:
        everyone = self.gallery.store.people(name=" ".join(name.split()) if name else None)
        return {"total": len(everyone), "offset": offset, "people": [p.to_dict() for p in everyone[offset:offset + limit]]}

    def rename(self, person_id: int, new_name: str) -> Person:
        new_name = clean_name(new_name)
        g = self.gallery
        with g.store.write() as tx:
            if g.store.person(person_id) is None:
                raise ServiceError(404, "person_not_found", f"no person with id {person_id}")
            g.store.rename_person(tx, person_id, new_name)
        return self._person(person_id)

    def remove(self, person_id: int) -> Person:
        """Delete a person, every embedding of theirs and any photo of theirs that was kept."""
        g = self.gallery
        with g.store.write() as tx:
            person = g.store.person(person_id)
            if person is None:
                raise ServiceError(404, "person_not_found", f"no person with id {person_id}")
            g.store.remove_person(tx, person_id)
        if self.photos is not None:
            self.photos.remove_person(person_id)
        return person

    # -- about ------------------------------------------------------------------------------

    def about(self) -> dict:
        from .. import __version__

        g = self.gallery
        return {"cnnkit": __version__, "model": g.model.id, "model_version": g.model.version,
                "threshold": g.threshold, "people": len(g.store.people()),
                "limits": {"max_upload_bytes": self.settings.max_upload_bytes, "max_files": self.settings.max_files,
                           "max_pixels": self.settings.max_pixels,
                           "request_timeout_s": self.settings.request_timeout_s},
                "batching": {"batch_size": self.settings.batch_size, **self.engine.stats.to_dict()},
                "stores_photos": self.photos is not None}
