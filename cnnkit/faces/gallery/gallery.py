"""The gallery: enroll people from one photo, verify a claimed identity (1:1), identify (1:K).

    gallery = Gallery("office.db", create=True)
    gallery.enroll("Alice", ["alice.jpg"])                # one photo is enough
    gallery.verify("Alice", "door.jpg").match             # is this Alice?
    gallery.identify("door.jpg")[0].faces[0].name         # who is this? None = nobody we know

Embeddings are computed once, at enrollment, and stored with the model that
made them; a query costs one encoder pass plus a search. A new person is added
without retraining anything. Every photo a person has is used: a person's
distance is that of their nearest stored embedding.

`Gallery` is the only door to stored people: the command line, the HTTP
service, bulk enrollment and the video watcher all read and change people
through its methods, so the rules below hold everywhere:

- names: whitespace collapsed, 1-200 characters, no control or invisible
  format characters, at least one letter or digit, no leading combining mark
  and no pile of them (`clean_name`);
- metadata: a JSON object of at most 4096 bytes, finite numbers only (`clean_metadata`);
- the face of an enrollment photo: see PICK_CHOICES (`pick_face`);
- a person is written whole, in one transaction, or not at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...errors import (
    AmbiguousName,
    CnnkitError,
    GalleryError,
    InvalidMetadata,
    InvalidName,
    ModelMismatch,
    NameTaken,
    NoFaceError,
    PersonNotFound,
    SettingsError,
    SeveralFacesError,
)
from ...images import ImageInput, as_batch
from ..models import DEFAULT_ENCODER, EmbeddingModel, embedding_model
from ..thresholds import default_threshold
from ..types import Face
from .backends import GalleryBackend, open_store
from .openset import DEFAULT_FPIR, ImpostorTable, OperatingPoint, operating_point, pair_rate, shipped_table
from .search import APPROXIMATE_FROM, INDEX_CHOICES, ExactIndex, Hit, HNSWIndex, SavedIndex
from .store import EmbeddingRecord, Person

if TYPE_CHECKING:
    from ..pipeline import ImageResult
    from ..recognizer import Recognizer

log = logging.getLogger(__name__)

#: Which face of an enrollment photo is the person: "auto" takes the largest face when it
#: clearly dominates (twice the area of the next: a portrait with people in the background)
#: and refuses a photo of several similar faces; "only" wants exactly one face; "largest"
#: always takes the largest.
PICK_CHOICES = ("auto", "only", "largest")
DOMINANT_AREA_RATIO = 2.0

#: What `enroll` does when the name is enrolled already: add the photos to that person
#: (the command line's default), make a namesake with its own id, or refuse (NameTaken).
NAME_TAKEN_CHOICES = ("add", "new", "refuse")

MAX_NAME = 200
MAX_METADATA_BYTES = 4096
#: Combining marks in a row that a name may hold: scripts stack two or three (Vietnamese, Devanagari,
#: Tibetan); long piles only serve to draw over the text around a name ("Zalgo").
MAX_COMBINING_RUN = 4
#: The largest length a stored embedding may have: real ones are near 1; much larger ones overflow
#: distances (3e38 gives an infinite distance) and only come from damaged or crafted files.
MAX_EMBEDDING_NORM = 1e3


def clean_name(name: str) -> str:
    """A person's name with whitespace collapsed; InvalidName when empty, too long or holding control characters."""
    text = " ".join(str(name).split())
    if not text:
        raise InvalidName("a person needs a non-empty name")
    if len(text) > MAX_NAME:
        raise InvalidName(f"names are limited to {MAX_NAME} characters")
    categories = [unicodedata.category(c) for c in text]
    if any(c in ("Cc", "Cf", "Cs", "Co") for c in categories):
        raise InvalidName("a name may not hold control or invisible format characters")
    if not any(c[0] in "LN" for c in categories):
        raise InvalidName("a name needs at least one letter or digit")
    if categories[0][0] == "M":
        raise InvalidName("a name may not start with a combining mark")
    run = 0
    for c in categories:
        run = run + 1 if c[0] == "M" else 0
        if run > MAX_COMBINING_RUN:
            raise InvalidName(f"a name may not stack more than {MAX_COMBINING_RUN} combining marks on one letter")
    return text


def clean_metadata(metadata: dict | None) -> dict:
    """The metadata to keep with a person: a JSON object of at most MAX_METADATA_BYTES, finite numbers only."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidMetadata(f"metadata must be a JSON object (a dict), got {type(metadata).__name__}")
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidMetadata(f"metadata must be plain JSON with finite numbers ({exc})") from None
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise InvalidMetadata(f"metadata is limited to {MAX_METADATA_BYTES} bytes of JSON")
    return json.loads(text)


def pick_face(faces: Sequence[Face], pick: str, source: str) -> Face:
    """The face of an enrollment photo that is the person (see PICK_CHOICES)."""
    if pick not in PICK_CHOICES:
        raise SettingsError(f"pick must be one of {', '.join(PICK_CHOICES)}, got {pick!r}")
    if not faces:
        raise NoFaceError(f"{source}: no face found; nothing was enrolled")
    ordered = sorted(faces, key=lambda f: f.width * f.height, reverse=True)
    first = ordered[0]
    if len(ordered) > 1 and (pick == "only" or (
            pick == "auto"
            and first.width * first.height < DOMINANT_AREA_RATIO * ordered[1].width * ordered[1].height)):
        raise SeveralFacesError(f"{source}: {len(ordered)} faces found; use a photo of the person alone, or take "
                                "the largest face (--largest, pick=largest); nothing was enrolled")
    return first


def enrollment_record(source: str, faces: Sequence[Face], pick: str, *, sha256: str = "") -> EmbeddingRecord:
    """What one enrollment photo stores: the picked face's embedding, box and where it came from."""
    face = pick_face(faces, pick, source)
    if face.embedding is None:
        raise SettingsError(f"{source}: the face has no embedding; encode it first")
    return EmbeddingRecord(vector=face.embedding, source=source, box=face.box, source_sha256=sha256)


@dataclass(frozen=True)
class ImportedPerson:
    """One person of an import (`import_people`): checked by the same rules as an enrollment."""

    name: str
    metadata: dict | None
    records: list[EmbeddingRecord]
    created_at: str | None = None
    embedding_created_at: list[str] | None = None


@dataclass(frozen=True)
class Candidate:
    person_id: int
    name: str
    distance: float

    def to_dict(self) -> dict:
        return {"id": self.person_id, "name": self.name, "distance": round(self.distance, 4)}


@dataclass(frozen=True)
class Identification:
    """The answer for one face: the best person, or None (unknown) when nobody is close enough."""

    face: Face | None
    person_id: int | None
    name: str | None
    distance: float | None
    threshold: float
    candidates: list[Candidate] = field(default_factory=list)
    operating_point: OperatingPoint | None = None  # how the 1:K threshold was set

    def to_dict(self) -> dict:
        out: dict = {}
        if self.face is not None:
            out["box"] = [round(float(v), 1) for v in self.face.box]
        out.update({"name": self.name, "id": self.person_id,
                    "distance": None if self.distance is None else round(self.distance, 4),
                    "threshold": round(self.threshold, 4),
                    "candidates": [c.to_dict() for c in self.candidates]})
        return out


@dataclass(frozen=True)
class ImageIdentification:
    image: str
    faces: list[Identification] = field(default_factory=list)
    error: str | None = None
    operating_point: OperatingPoint | None = None

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"image": self.image, "error": self.error}
        out: dict = {"image": self.image, "faces": [f.to_dict() for f in self.faces]}
        if self.operating_point is not None:
            out["operating_point"] = self.operating_point.to_dict()
        return out


@dataclass(frozen=True)
class Verification:
    match: bool
    distance: float
    threshold: float
    person: Person
    face: Face
    probability: float | None = None  # P(same) from the gallery's binary head, when it has one

    def to_dict(self) -> dict:
        out = {"match": self.match, "distance": round(self.distance, 4), "threshold": self.threshold,
               "person": self.person.to_dict(), "box": [round(float(v), 1) for v in self.face.box]}
        if self.probability is not None:
            out["probability"] = round(self.probability, 4)
        return out


class Gallery:
    """A stored gallery of people and their precomputed embeddings (a SQLite file, or Milvus)."""

    def __init__(self, path: str | os.PathLike, *, create: bool = False, readonly: bool = False,
                 index: str = "auto", device: str | None = None, flip: bool = True,
                 encoder: str | None = None, head: str | os.PathLike | None = None) -> None:
        """Open (or with `create`, make) the gallery at `path`.

        A new gallery records the encoder (`encoder`: a registry name or a saved
        encoder's folder; default dlib's ResNet) and `flip`; an existing one uses
        what it recorded, and refuses an `encoder` that differs.

        `head`: the folder of a binary verification head (`cnnkit faces train
        --loss binary`) trained on this gallery's embeddings; it then decides
        "same person" (P(same) >= 0.5 against the person's closest photo)
        instead of the distance threshold. Search still ranks by distance.
        """
        if index not in INDEX_CHOICES:
            raise SettingsError(f"index must be one of {INDEX_CHOICES}, got {index!r}")
        # A file path is SQLite; milvus://HOST:PORT/COLLECTION and milvus-lite://PATH are Milvus.
        self.store: GalleryBackend = open_store(path, create=create, readonly=readonly, index=index)
        self.path = self.store.path
        self.index_kind = index
        self.device = device
        meta = self.store.meta()
        if "model" in meta:
            self.model = EmbeddingModel(encoder=meta["encoder"], version=meta["model_version"],
                                        dim=int(meta["dim"]), flip=meta["flip"] == "1")
            if encoder is not None and embedding_model(self.model.flip, encoder).encoder != self.model.encoder:
                raise ModelMismatch(f"{self.path}: holds embeddings of {self.model.id}, not of {encoder}")
            try:
                current = embedding_model(self.model.flip, self.model.encoder)
            except CnnkitError as exc:
                raise GalleryError(f"{self.path}: its encoder {self.model.encoder} cannot be loaded ({exc})") from None
            if current.version != self.model.version:
                raise ModelMismatch(
                    f"{self.path}: holds embeddings of {self.model.id} version {self.model.version}, but this "
                    f"cnnkit computes version {current.version}; re-enroll into a new gallery "
                    "(`cnnkit faces export` keeps the people and photos' sources)")
        else:
            self.model = embedding_model(flip, encoder or DEFAULT_ENCODER)
            if not self.store.readonly:
                with self.store.write() as tx:
                    self.store.set_meta(tx, model=self.model.id, encoder=self.model.encoder,
                                        model_version=self.model.version, dim=str(self.model.dim),
                                        flip="1" if self.model.flip else "0")
        self.head = _load_head(head, self.model) if head is not None else None
        self._lock = threading.Lock()
        self._index: ExactIndex | HNSWIndex | None = None
        self._index_version: tuple[int, int] | None = None
        self._recognizer: Recognizer | None = None
        self._people_count: tuple[tuple[int, int], int] | None = None  # (store version, people)
        self._saved = self._saved_index()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        """The number of people."""
        return self.store.count_people()

    def __repr__(self) -> str:
        return f"Gallery({str(self.path)!r}, model={self.model.id!r}, people={len(self)})"

    @property
    def recognizer(self) -> Recognizer:
        """The detector + encoder whose embeddings compare with this gallery's (made on first use)."""
        if self._recognizer is None:
            from ..recognizer import Recognizer

            self._recognizer = Recognizer.for_model(self.model, device=self.device)
        return self._recognizer

    def _embed(self, images: Sequence[ImageInput], on_image: Callable[[ImageResult], None] | None):
        from ..pipeline import embed_images

        return embed_images(list(images), recognizer=self.recognizer, on_image=on_image)

    # -- settings -----------------------------------------------------------------------

    @property
    def threshold(self) -> float:
        meta = self.store.meta()
        if "threshold" in meta:
            return float(meta["threshold"])
        return default_threshold(self.model.encoder, flip=self.model.flip)

    @property
    def has_own_threshold(self) -> bool:
        """Whether the gallery records a threshold of its own (from calibrate or an import)."""
        return "threshold" in self.store.meta()

    @property
    def threshold_source(self) -> dict:
        meta = self.store.meta()
        if "threshold_source" in meta:
            return json.loads(meta["threshold_source"])
        return {"method": "default for the model (cnnkit/faces/thresholds.py: LFW View 1)"}

    @property
    def fpir(self) -> float:
        """The share of strangers identification may let through (false-positive identification rate)."""
        return float(self.store.meta().get("fpir", DEFAULT_FPIR))

    def set_fpir(self, value: float) -> None:
        pair_rate(value, 1)  # checks the range
        with self.store.write() as tx:
            self.store.set_meta(tx, fpir=repr(float(value)))

    @property
    def impostor_table(self) -> ImpostorTable | None:
        """The impostor distances 1:K thresholds come from: the gallery's own (calibrate), else the encoder's."""
        meta = self.store.meta()
        if "impostor_table" in meta:
            return ImpostorTable.from_dict(json.loads(meta["impostor_table"]))
        return shipped_table(self.model.encoder, self.model.version, self.model.flip)

    def set_impostor_table(self, table: ImpostorTable) -> None:
        with self.store.write() as tx:
            self.store.set_meta(tx, impostor_table=json.dumps(table.to_dict()))

    def operating_point(self) -> OperatingPoint:
        """The 1:K threshold for the gallery's current size and target FPIR (see openset.py).

        Without an impostor table (a saved encoder nobody calibrated) it is the 1:1 threshold.
        """
        people = self._count_people()
        table = self.impostor_table
        if table is None:
            return OperatingPoint(self.threshold, people, self.fpir,
                                  "1:1 threshold: no impostor table for this encoder "
                                  "(`cnnkit faces calibrate --fpir` measures one on the gallery's people)")
        return operating_point(table, people, self.fpir)

    def _count_people(self) -> int:
        version = self.store.version()
        if self._people_count is None or self._people_count[0] != version:
            self._people_count = (version, len(self))
        return self._people_count[1]

    def set_threshold(self, value: float, source: dict) -> None:
        if not 0.0 < value < 10.0:
            raise SettingsError(f"threshold must be a positive distance, got {value}")
        with self.store.write() as tx:
            self.store.set_meta(tx, threshold=repr(float(value)), threshold_source=json.dumps(source))

    # -- people -------------------------------------------------------------------------

    def people(self, name: str | None = None, *, offset: int = 0, limit: int | None = None) -> list[Person]:
        """Everyone (or the people called `name`), by name then id; `offset`/`limit` page through them."""
        return self.store.people(name=None if name is None else " ".join(str(name).split()),
                                 offset=offset, limit=limit)

    def count_people(self, name: str | None = None) -> int:
        return self.store.count_people(name=None if name is None else " ".join(str(name).split()))

    def person(self, person_id: int) -> Person:
        """The person with this id; PersonNotFound otherwise."""
        person = self.store.person(int(person_id))
        if person is None:
            raise PersonNotFound(f"no person with id {person_id} in {self.path}")
        return person

    def resolve(self, who: str | int) -> Person:
        """The person with this id (an int, or "#12"), or the one person with this name."""
        if isinstance(who, int) or (isinstance(who, str) and who.startswith("#") and who[1:].isdigit()):
            return self.person(who if isinstance(who, int) else int(who[1:]))
        matches = self.people(name=who)
        if not matches:
            raise PersonNotFound(f"nobody called {who!r} in {self.path}; `cnnkit faces people` lists who is there")
        if len(matches) > 1:
            ids = ", ".join(f"#{p.id}" for p in matches)
            raise AmbiguousName(f"{len(matches)} people are called {who!r} ({ids}); say which by id, "
                                f"e.g. #{matches[0].id}", ids=[p.id for p in matches])
        return matches[0]

    def remove(self, who: str | int, *, on_removing: Callable[[int], None] | None = None) -> Person:
        """Delete a person and every embedding of theirs (biometric data is removable).

        When this returns, nothing of theirs is left in a SQLite gallery's file or
        its write-ahead log (see store.py). `on_removing(person_id)` runs inside the
        write, before the rows go: the service deletes kept photos there, so that a
        crash can leave a person without photos (the delete was not answered; retry
        it) but never photos of a person who is gone.
        """
        person = self.resolve(who)
        with self.store.write() as tx:
            if self.store.person(person.id) is None:  # removed meanwhile by another writer
                raise PersonNotFound(f"no person with id {person.id} in {self.path}")
            if on_removing is not None:
                on_removing(person.id)
            self.store.remove_person(tx, person.id)
        if self._saved is not None:  # nor in the search graph saved beside the file
            self._saved.scrub(self.store.embedding_ids(2**62), self.store.changes(), self.store.embedding_rows)
        return person

    def rename(self, who: str | int, new_name: str) -> Person:
        new_name = clean_name(new_name)
        person = self.resolve(who)
        with self.store.write() as tx:
            if self.store.person(person.id) is None:
                raise PersonNotFound(f"no person with id {person.id} in {self.path}")
            self.store.rename_person(tx, person.id, new_name)
        return self.person(person.id)

    def source_hashes(self) -> set[str]:
        """sha256 of every enrolled photo (what `enroll-tree` skips)."""
        return self.store.source_hashes()

    def embeddings_of(self, person_id: int) -> np.ndarray:
        """The stored embeddings (K, D) of one person; PersonNotFound when they have none."""
        rows = self.store.embedding_rows(int(person_id))
        if not rows:
            raise PersonNotFound(f"no person with id {person_id} in {self.path}")
        return np.stack([np.frombuffer(r["vector"], dtype="<f4") for r in rows])

    # -- enrollment ---------------------------------------------------------------------

    def enroll(self, name: str, images: ImageInput | Sequence[ImageInput], *, new_person: bool = False,
               person_id: int | None = None, metadata: dict | None = None, pick: str = "auto",
               if_name_taken: str = "add", on_image: Callable[[ImageResult], None] | None = None) -> Person:
        """Add a person (or photos to an existing person) from one or more photos.

        Each photo must show the person's face (see PICK_CHOICES for photos with
        several). Nothing is stored unless every photo gives a face: the person
        is written whole, in one transaction, or not at all. `new_person=True`
        is `if_name_taken="new"` (see NAME_TAKEN_CHOICES).
        """
        if pick not in PICK_CHOICES:
            raise SettingsError(f"pick must be one of {PICK_CHOICES}, got {pick!r}")
        batch, _ = as_batch(images)  # one path is one photo, never its characters
        if not batch:
            raise SettingsError("enroll needs at least one photo")
        name, metadata = clean_name(name), clean_metadata(metadata)  # before any encoding
        records = []
        for result in self._embed(batch, on_image):
            if result.error is not None:
                raise CnnkitError(f"{result.error}; nothing was enrolled")
            records.append(enrollment_record(result.source, result.faces, pick, sha256=_sha256_of(result.source)))
        return self.enroll_embeddings(name, records, new_person=new_person, person_id=person_id,
                                      metadata=metadata, if_name_taken=if_name_taken)

    def enroll_embeddings(self, name: str, records: Sequence[EmbeddingRecord], *, new_person: bool = False,
                          person_id: int | None = None, metadata: dict | None = None,
                          model: EmbeddingModel | None = None, if_name_taken: str = "add",
                          on_stored: Callable[[int, list[int]], None] | None = None) -> Person:
        """Store precomputed embeddings for a person (what `enroll` does after encoding).

        `person_id` adds them to that person. `on_stored(person_id, embedding_ids)`
        runs inside the write, after the rows are placed and before they are
        committed: if it raises, nothing is stored (the service keeps photos this way).
        """
        name, metadata = clean_name(name), clean_metadata(metadata)
        if new_person:
            if_name_taken = "new"
        if if_name_taken not in NAME_TAKEN_CHOICES:
            raise SettingsError(f"if_name_taken must be one of {NAME_TAKEN_CHOICES}, got {if_name_taken!r}")
        if not records:
            raise SettingsError("enroll needs at least one embedding")
        if model is not None and (model.id, model.version) != (self.model.id, self.model.version):
            raise ModelMismatch(f"{self.path}: holds embeddings of {self.model.id} ({self.model.version}); "
                                f"these come from {model.id} ({model.version}) and cannot be compared with them")
        self.check_embeddings(records)
        with self.store.write() as tx:
            if person_id is not None:
                if self.store.person(int(person_id)) is None:
                    raise PersonNotFound(f"no person with id {person_id} in {self.path}")
                target = int(person_id)
            else:
                target = self._person_for(tx, name, metadata, if_name_taken)
            ids = self.store.add_embeddings(tx, target, list(records), self.model.id, self.model.version)
            if on_stored is not None:
                on_stored(target, ids)
        return self.person(target)

    def enroll_many(self, people: Mapping[str, Sequence[EmbeddingRecord]]) -> dict[str, int]:
        """Embeddings of several people in one write (what `enroll-tree` commits per batch); {name: id}.

        Each name's embeddings go to the one person of that name, a new person if
        there is none (AmbiguousName where several share it); all of them or none.
        One write instead of one per person matters on Milvus, where every read that
        follows a write waits for the server's next time tick (0.3 s here).
        """
        cleaned: dict[str, list[EmbeddingRecord]] = {}
        for name, records in people.items():
            cleaned.setdefault(clean_name(name), []).extend(records)
        for name, records in cleaned.items():
            if not records:
                raise SettingsError(f"{name}: enroll needs at least one embedding")
            self.check_embeddings(records, where=f"{name}: ")
        ids = {}
        with self.store.write() as tx:
            for name, records in cleaned.items():
                ids[name] = self._person_for(tx, name, clean_metadata(None), "add")
                self.store.add_embeddings(tx, ids[name], records, self.model.id, self.model.version)
        return ids

    def check_embeddings(self, records: Sequence[EmbeddingRecord], where: str = "") -> None:
        """GalleryError unless every vector is this gallery's size, finite and of a plausible length."""
        for i, rec in enumerate(records):
            vector = np.asarray(rec.vector)
            ok = vector.shape == (self.model.dim,) and vector.dtype.kind == "f" and np.isfinite(vector).all()
            norm = float(np.linalg.norm(vector.astype(np.float64))) if ok else 0.0
            if not ok or norm > MAX_EMBEDDING_NORM:
                what = f"{where}embedding {i}" if where else "embedding"
                raise GalleryError(f"{what} of shape {vector.shape}{f' and length {norm:.3g}' if ok else ''} does "
                                   f"not fit this gallery ({self.model.id}: {self.model.dim} finite numbers, "
                                   f"length at most {MAX_EMBEDDING_NORM:g})")

    def import_people(self, people: Sequence[ImportedPerson], *, threshold: tuple[float, dict] | None = None) -> int:
        """Add these people, each as a new person, in ONE transaction: all of them or none.

        Names and metadata follow the same rules as every enrollment (clean_name,
        clean_metadata); vectors are checked as in `enroll_embeddings`. Everything is
        checked before anything is written. `threshold` (value, provenance) is set in
        the same transaction; callers pass it only when told to. Returns how many
        people were added.
        """
        cleaned = []
        for i, entry in enumerate(people):
            try:
                name, metadata = clean_name(entry.name), clean_metadata(entry.metadata)
            except (InvalidName, InvalidMetadata) as exc:
                raise type(exc)(f"person {i} ({str(entry.name)[:40]!r}): {exc}") from None
            if not entry.records:
                raise GalleryError(f"person {i} ({name!r}) has no embedding")
            self.check_embeddings(entry.records, where=f"person {i} ({name!r}): ")
            cleaned.append((name, metadata, entry))
        if threshold is not None and not 0.0 < threshold[0] < 10.0:
            raise SettingsError(f"threshold must be a positive distance, got {threshold[0]}")
        with self.store.write() as tx:
            for name, metadata, entry in cleaned:
                pid = self.store.add_person(tx, name, metadata, created_at=entry.created_at)
                self.store.add_embeddings(tx, pid, list(entry.records), self.model.id, self.model.version,
                                          created_at=entry.embedding_created_at)
            if threshold is not None:
                self.store.set_meta(tx, threshold=repr(float(threshold[0])), threshold_source=json.dumps(threshold[1]))
        return len(cleaned)

    def _person_for(self, tx, name: str, metadata: dict, if_name_taken: str) -> int:
        """Inside a write: the id the photos of `name` go to (a new person unless the name is taken and added to)."""
        same_name = self.store.people(name=name)
        if same_name and if_name_taken == "refuse":
            ids = [p.id for p in same_name]
            raise NameTaken(f"{name!r} is enrolled already (id {', '.join(map(str, ids))})", ids=ids)
        if same_name and if_name_taken == "add":
            if len(same_name) > 1:
                listed = ", ".join(f"#{p.id}" for p in same_name)
                raise AmbiguousName(f"{len(same_name)} people are called {name!r} ({listed}); say which by id, "
                                    "or use --new-person", ids=[p.id for p in same_name])
            return same_name[0].id
        return self.store.add_person(tx, name, metadata)

    # -- search -------------------------------------------------------------------------

    def _current_index(self):
        """The search index, brought up to date with the store (incrementally where it can)."""
        if self.store.searches_itself:  # Milvus: the server searches
            return self.store
        version = self.store.version()
        with self._lock:
            if self._index is not None and version == self._index_version:
                return self._index
            changes = self.store.changes() if self._saved is not None else 0  # before reading any embedding
            if self._index is None and self._saved is not None and self._wants_hnsw(self.store.count()):
                loaded = self._saved.load(self.store.embedding_rows)  # saved beside the file: patched if stale
                if loaded is not None:
                    self._index = loaded[0]
                    if loaded[1] == changes and len(self._index) == self.store.count():
                        self._index_version = version
                        return self._index
            if self._index is None or self._wrong_kind(len(self._index)) or self._index.stale_fraction > 0.2:
                ids, people, vectors = self.store.embeddings_after(self.model.dim)
                self._index = self._new_index(ids, people, vectors)
            else:
                # New embeddings are added; removed ones are dropped (HNSW: skipped until a rebuild).
                known_max = int(self._index.embedding_ids.max()) if len(self._index.embedding_ids) else 0
                present = set(self.store.embedding_ids(known_max).tolist())
                gone = set(self._index.embedding_ids.tolist()) - present
                if isinstance(self._index, HNSWIndex):
                    gone -= {int(self._index.embedding_ids[r]) for r in self._index.removed}
                if gone:
                    self._index.remove(gone)
                self._index.add(*self.store.embeddings_after(self.model.dim, known_max))
            # Saved by read-only openings too (`cnnkit faces identify`): derived data beside the gallery, not it.
            if self._saved is not None and self._saved.due(self._index):
                self._saved.save(self._index, changes)
            self._index_version = version
            return self._index

    def _saved_index(self) -> SavedIndex | None:
        """Where the HNSW graph of a gallery file is kept between processes (None for Milvus)."""
        if self.store.searches_itself:
            return None
        meta = self.store.meta()
        return SavedIndex(self.store.path, {"model": self.model.id, "version": self.model.version,
                                            "dim": self.model.dim, "created_at": meta.get("created_at", "")})

    def _wants_hnsw(self, size: int) -> bool:
        return self.index_kind == "hnsw" or (self.index_kind == "auto" and size >= APPROXIMATE_FROM)

    def _wrong_kind(self, size: int) -> bool:
        return self._wants_hnsw(size) != isinstance(self._index, HNSWIndex)

    def _new_index(self, ids: np.ndarray, people: np.ndarray, vectors: np.ndarray) -> ExactIndex | HNSWIndex:
        return HNSWIndex(ids, people, vectors) if self._wants_hnsw(len(ids)) else ExactIndex(ids, people, vectors)

    def search(self, embeddings: np.ndarray, *, top_k: int = 3) -> list[list[Hit]]:
        """The `top_k` nearest people for each embedding (nearest first)."""
        if top_k < 1:
            raise SettingsError("top_k must be at least 1")
        return self._current_index().search(np.asarray(embeddings, dtype=np.float32).reshape(-1, self.model.dim), top_k)

    def identify_embeddings(self, embeddings: np.ndarray, *, top_k: int = 3,
                            faces: Sequence[Face | None] | None = None) -> list[Identification]:
        """The answer for each embedding: the nearest person if close enough, else unknown, with runners-up."""
        point = self.operating_point()
        threshold = point.threshold
        found = self.search(embeddings, top_k=top_k)
        names = self.store.names({h.person_id for hits in found for h in hits})  # only the people found
        out = []
        for i, hits in enumerate(found):
            candidates = [Candidate(h.person_id, names.get(h.person_id, "?"), h.distance) for h in hits]
            best = candidates[0] if candidates else None
            known = best is not None and (best.distance <= threshold if self.head is None
                                          else self._head_probability(best.person_id, embeddings[i]) >= 0.5)
            match = best if known else None
            out.append(Identification(
                face=faces[i] if faces is not None else None,
                person_id=match.person_id if match is not None else None,
                name=match.name if match is not None else None,
                distance=best.distance if best else None, threshold=threshold, candidates=candidates,
                operating_point=point))
        return out

    def identify(self, images: ImageInput | Sequence[ImageInput], *, top_k: int = 3,
                 on_image: Callable[[ImageResult], None] | None = None) -> list[ImageIdentification]:
        """Every face of every image: the best name, or None for a stranger, with runners-up."""
        out = []
        for result in self._embed(as_batch(images)[0], on_image):
            if result.error is not None:
                out.append(ImageIdentification(result.source, error=result.error))
                continue
            answers = (self.identify_embeddings(np.stack([f.embedding for f in result.faces]), top_k=top_k,
                                                faces=result.faces) if result.faces else [])
            point = answers[0].operating_point if answers else self.operating_point()
            out.append(ImageIdentification(result.source, answers, operating_point=point))
        return out

    def verify(self, who: str | int, image: ImageInput) -> Verification:
        """Is the (largest) face in `image` the person `who`? Compares with all their photos."""
        person = self.resolve(who)
        (result,) = list(self._embed([image], None))
        if result.error is not None:
            raise CnnkitError(result.error)
        if not result.faces:
            raise NoFaceError(f"{result.source}: no face found")
        return self.verify_face(person, max(result.faces, key=lambda f: f.width * f.height))

    def verify_face(self, who: str | int | Person, face: Face) -> Verification:
        """Is this encoded face the person `who`? The head decides when the gallery has one, else the threshold."""
        person = who if isinstance(who, Person) else self.resolve(who)
        if face.embedding is None:
            raise SettingsError("the face has no embedding; encode it first")
        vectors = self.embeddings_of(person.id)
        distance = float(np.linalg.norm(vectors - face.embedding[None], axis=1).min())
        threshold = self.threshold
        if self.head is not None:
            probability = float(self.head.probability(face.embedding[None], vectors).max())
            return Verification(probability >= 0.5, distance, threshold, person, face, probability)
        return Verification(distance <= threshold, distance, threshold, person, face)

    def _head_probability(self, person_id: int, embedding: np.ndarray) -> float:
        """The binary head's P(same) of `embedding` against the person's photos (the highest)."""
        assert self.head is not None
        vectors = self.embeddings_of(person_id)
        return float(self.head.probability(np.asarray(embedding, np.float32)[None], vectors).max())

    # -- maintenance --------------------------------------------------------------------

    def check(self) -> list[str]:
        """Problems found in the store ([] when it is sound), embeddings of another model included."""
        return self.store.integrity_check()


def _load_head(folder: str | os.PathLike, model: EmbeddingModel):
    """A saved binary head, refused unless it was trained on this gallery's embeddings."""
    from ..train.binary_head import load_head

    head, config = load_head(folder)
    trained_on = config.get("embedding_model") or {}
    if head.dim != model.dim or (trained_on and (trained_on.get("encoder"), trained_on.get("version"),
                                                 trained_on.get("flip")) != (model.encoder, model.version, model.flip)):
        raise ModelMismatch(f"{folder}: binary head trained on embeddings of {trained_on.get('encoder')} "
                            f"({trained_on.get('version')}, flip={trained_on.get('flip')}), but this gallery holds "
                            f"{model.id} ({model.version}); train a head on this gallery's encoder")
    return head


def _sha256_of(source: str) -> str:
    """The sha256 of an enrolled photo's file ("" when the source is not a readable file)."""
    try:
        return hashlib.sha256(Path(source).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return ""
