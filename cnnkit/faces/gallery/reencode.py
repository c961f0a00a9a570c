"""Move a gallery to another encoder: encode every person's stored photos again into a new gallery.

A gallery keeps no photo, only each photo's file name, sha256 and face box, so
a photo can be encoded again only where it still exists: at its recorded path
(with the same sha256), or in a folder of kept photos (`cnnkit serve
--store-images DIR` keeps them as DIR/<person id>/<embedding id>.<ext>).
Photos that cannot be found, or changed since, are listed and left out; a
person none of whose photos can be found is not copied and is listed too.
People keep their ids, names and metadata; the face encoded is the detected
face that overlaps the stored box most.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...errors import CnnkitError, GalleryError
from ...images import load_image
from ..boxes import pairwise_overlap
from ..types import Face
from .gallery import Gallery
from .store import EmbeddingRecord

#: A stored box and a detected one are the same face from this overlap (intersection over union) on.
SAME_FACE_IOU = 0.5


@dataclass
class ReencodeReport:
    people: int = 0
    photos: int = 0
    people_left_out: list[dict] = field(default_factory=list)
    photos_left_out: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _photo_file(row: dict, photos: Path | None) -> Path | None:
    """Where the photo of an embedding row is now, checked by its sha256 (None: nowhere)."""
    candidates = []
    if photos is not None:
        candidates += sorted((photos / str(row["person_id"])).glob(f"{row['id']}.*"))
    if row["source"]:
        candidates.append(Path(row["source"]))
    for path in candidates:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if not row["source_sha256"] or hashlib.sha256(data).hexdigest() == row["source_sha256"]:
            return path
    return None


def _same_face(faces: list[Face], box: tuple[float, ...] | None) -> Face | None:
    if not faces:
        return None
    if box is None:
        return max(faces, key=lambda f: f.width * f.height)
    import torch

    overlap = pairwise_overlap(torch.tensor([list(box)], dtype=torch.float64),
                               torch.tensor([list(f.box) for f in faces], dtype=torch.float64))[0]
    best = int(overlap.argmax())
    return faces[best] if float(overlap[best]) >= SAME_FACE_IOU else None


def reencode_gallery(source: Gallery, target: Gallery, *, photos: str | Path | None = None,
                     on_photo: Callable[[], None] | None = None) -> ReencodeReport:
    """Encode every photo of `source` again with `target`'s encoder into the empty gallery `target`."""
    if len(target):
        raise GalleryError(f"{target.path}: not empty; re-encode into a new gallery (ids are kept)")
    folder = Path(photos) if photos is not None else None
    rows_of: dict[int, list[dict]] = {}
    for row in source.store.embedding_rows():
        rows_of.setdefault(row["person_id"], []).append(row)
    report = ReencodeReport()
    recognizer = target.recognizer
    for person in sorted(source.people(), key=lambda p: p.id):
        records = []
        for row in rows_of.get(person.id, []):
            if on_photo is not None:
                on_photo()
            path = _photo_file(row, folder)
            why = "not found (the gallery keeps file names, not photos)" if path is None else ""
            face = None
            if path is not None:
                try:
                    image = load_image(path)
                except CnnkitError as exc:
                    why = str(exc)
                else:
                    box = tuple(json.loads(row["box"])) if row["box"] else None
                    face = _same_face(recognizer.detect([image])[0], box)
                    why = "" if face is not None else "the enrolled face is no longer found in it"
            if face is None:
                report.photos_left_out.append({"person_id": person.id, "name": person.name,
                                               "source": row["source"], "why": why})
                continue
            embedding = recognizer.embed_faces(image, [face])[0]
            records.append(EmbeddingRecord(vector=embedding, source=row["source"],
                                           source_sha256=row["source_sha256"], box=face.box))
        if not records:
            report.people_left_out.append({"id": person.id, "name": person.name,
                                           "why": "none of their photos could be encoded again"})
            continue
        with target.store.write() as tx:
            target.store.add_person(tx, person.name, person.metadata, person_id=person.id,
                                    created_at=person.created_at)
            target.store.add_embeddings(tx, person.id, records, target.model.id, target.model.version)
        report.people += 1
        report.photos += len(records)
    return report

