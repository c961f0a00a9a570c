"""Copy a gallery to another backend (SQLite <-> Milvus) without loss, and compare galleries.

Everything is kept: person ids, names, metadata and creation times; each
embedding's vector, model, source, sha256, box and creation time; the
threshold and where it came from. The copy is checked against the source
before `migrate_gallery` returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from ...errors import GalleryError
from .gallery import Gallery
from .store import EmbeddingRecord

#: People written per transaction (Milvus: per round of inserts).
PEOPLE_PER_WRITE = 256


def migrate_gallery(source: Gallery, target: Gallery, *,
                    on_people: Callable[[int], None] | None = None) -> dict:
    """Copy every person of `source` into the empty gallery `target`; returns the counts.

    `on_people(n)` is called after each write with the number of people written.
    Raises GalleryError if the target is not empty, holds another model, or the
    copy differs from the source.
    """
    if (source.model.id, source.model.version) != (target.model.id, target.model.version):
        raise GalleryError(f"{target.path} holds embeddings of {target.model.id} ({target.model.version}), "
                           f"{source.path} of {source.model.id} ({source.model.version}); they cannot be mixed")
    if target.people():
        raise GalleryError(f"{target.path}: not empty; migrate into a new gallery (ids are kept, so they must be free)")
    by_person: dict[int, list[dict]] = {}
    for row in source.store.embedding_rows():
        by_person.setdefault(row["person_id"], []).append(row)
    people = sorted(source.people(), key=lambda p: p.id)
    for start in range(0, len(people), PEOPLE_PER_WRITE):
        chunk = people[start:start + PEOPLE_PER_WRITE]
        with target.store.write() as tx:
            for person in chunk:
                rows = by_person.get(person.id, [])
                target.store.add_person(tx, person.name, person.metadata, person_id=person.id,
                                        created_at=person.created_at)
                target.store.add_embeddings(tx, person.id, [_record(r) for r in rows], target.model.id,
                                            target.model.version, created_at=[r["created_at"] for r in rows])
        if on_people is not None:
            on_people(len(chunk))
    meta = source.store.meta()
    if "threshold" in meta:
        target.set_threshold(float(meta["threshold"]), source.threshold_source)
    differences = compare_galleries(source, target, ids=True)
    if differences:
        raise GalleryError(f"{target.path}: the copy differs from {source.path}: {'; '.join(differences[:5])}")
    return {"people": len(people), "embeddings": sum(len(v) for v in by_person.values())}


def _record(row: dict) -> EmbeddingRecord:
    return EmbeddingRecord(vector=np.frombuffer(row["vector"], dtype="<f4").copy(), source=row["source"],
                           source_sha256=row["source_sha256"],
                           box=tuple(json.loads(row["box"])) if row["box"] else None)


def gallery_contents(gallery: Gallery, *, ids: bool = True) -> dict:
    """A comparable picture of a gallery: people -> their photos (by sha256) with vectors and provenance.

    With `ids=False` people are keyed by name (for galleries built in another
    order, e.g. by `enroll-tree` on Ray and in one process) and creation times
    are left out.
    """
    people = {p.id: p for p in gallery.people()}
    out: dict = {}
    for row in gallery.store.embedding_rows():
        person = people.get(row["person_id"])
        if person is None:
            continue
        key = (person.id, person.name) if ids else person.name
        entry = out.setdefault(key, {"metadata": person.metadata, "photos": {}})
        if ids:
            entry["created_at"] = person.created_at
        photo = {"vector": np.frombuffer(row["vector"], dtype="<f4"), "source": row["source"], "box": row["box"],
                 "model": (row["model"], row["model_version"])}
        if ids:
            photo["created_at"] = row["created_at"]
        entry["photos"][row["source_sha256"] or f"#{row['source']}"] = photo
    return out


def compare_galleries(a: Gallery, b: Gallery, *, ids: bool = True, atol: float = 0.0) -> list[str]:
    """Differences between two galleries' contents ([] when they hold the same); vectors within `atol`."""
    ca, cb = gallery_contents(a, ids=ids), gallery_contents(b, ids=ids)
    problems = [f"only in {a.path}: person {k}" for k in sorted(set(ca) - set(cb), key=str)]
    problems += [f"only in {b.path}: person {k}" for k in sorted(set(cb) - set(ca), key=str)]
    for key in sorted(set(ca) & set(cb), key=str):
        pa, pb = ca[key], cb[key]
        for field in ("metadata", "created_at"):
            if pa.get(field) != pb.get(field):
                problems.append(f"person {key}: {field} differs")
        if set(pa["photos"]) != set(pb["photos"]):
            problems.append(f"person {key}: photos differ ({len(pa['photos'])} vs {len(pb['photos'])})")
            continue
        for sha, photo in pa["photos"].items():
            other = pb["photos"][sha]
            for field in ("source", "box", "model", "created_at"):
                if photo.get(field) != other.get(field):
                    problems.append(f"person {key}, photo {photo['source']}: {field} differs")
            gap = float(np.abs(photo["vector"] - other["vector"]).max())
            if gap > atol:
                problems.append(f"person {key}, photo {photo['source']}: vectors differ by {gap:.2e}")
    return problems
