"""Export a gallery to one portable .npz file and import it back (no pickle anywhere).

The file holds two arrays: `vectors` (N, D) float32 and `manifest`, a JSON
document (as a unicode string array) with the model, the threshold and its
provenance, the people, and for each vector its person and source. numpy reads
it with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ...errors import CnnkitError, GalleryError
from .gallery import Gallery
from .store import SCHEMA_VERSION, EmbeddingRecord

PORTABLE_FORMAT = "cnnkit-gallery-export"
PORTABLE_VERSION = 1


def export_gallery(gallery: Gallery, path: str | os.PathLike) -> dict:
    """Write every person and embedding of `gallery` to `path` (.npz); returns the counts."""
    rows = gallery.store.embedding_rows()
    people = gallery.people()
    vectors = (np.stack([np.frombuffer(r["vector"], dtype="<f4") for r in rows]).astype(np.float32)
               if rows else np.zeros((0, gallery.model.dim), np.float32))
    manifest = {
        "format": PORTABLE_FORMAT, "version": PORTABLE_VERSION, "gallery_schema": SCHEMA_VERSION,
        "model": {"id": gallery.model.id, "encoder": gallery.model.encoder, "version": gallery.model.version,
                  "dim": gallery.model.dim, "flip": gallery.model.flip},
        "threshold": gallery.threshold if gallery.has_own_threshold else None,
        "threshold_source": gallery.threshold_source,
        "people": [{"id": p.id, "name": p.name, "metadata": p.metadata, "created_at": p.created_at} for p in people],
        "embeddings": [{"person_id": r["person_id"], "source": r["source"], "source_sha256": r["source_sha256"],
                        "box": json.loads(r["box"]) if r["box"] else None, "created_at": r["created_at"]}
                       for r in rows],
    }
    path = Path(path)
    # Write beside the target, then rename: a crash never leaves half a file under the real name.
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, vectors=vectors, manifest=np.array(json.dumps(manifest)))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {"people": len(people), "embeddings": len(rows)}


def read_export(path: str | os.PathLike) -> tuple[dict, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            manifest = json.loads(str(data["manifest"]))
            vectors = np.asarray(data["vectors"], dtype=np.float32)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CnnkitError(f"{path}: not a cnnkit gallery export ({exc})") from None
    if manifest.get("format") != PORTABLE_FORMAT:
        raise CnnkitError(f"{path}: not a cnnkit gallery export")
    if manifest.get("version", 0) > PORTABLE_VERSION:
        raise CnnkitError(f"{path}: written by a newer cnnkit (export version {manifest['version']}); upgrade cnnkit")
    if len(vectors) != len(manifest["embeddings"]):
        raise CnnkitError(f"{path}: damaged export ({len(vectors)} vectors for {len(manifest['embeddings'])} records)")
    return manifest, vectors


def import_gallery(gallery: Gallery, path: str | os.PathLike) -> dict:
    """Add the people of an export to `gallery` (each as a new person, with a new id).

    The export must come from the same model as the gallery. People are written
    one transaction each, so an interrupted import leaves whole people only.
    """
    manifest, vectors = read_export(path)
    model = manifest["model"]
    if (model["id"], model["version"]) != (gallery.model.id, gallery.model.version):
        raise GalleryError(f"{path} holds embeddings of {model['id']} ({model['version']}); the gallery "
                           f"{gallery.path} holds {gallery.model.id} ({gallery.model.version}); they cannot be mixed")
    by_person: dict[int, list[EmbeddingRecord]] = {}
    for record, vector in zip(manifest["embeddings"], vectors):
        by_person.setdefault(record["person_id"], []).append(EmbeddingRecord(
            vector=vector, source=record["source"], source_sha256=record["source_sha256"],
            box=tuple(record["box"]) if record["box"] else None))
    imported = 0
    for person in manifest["people"]:
        records = by_person.get(person["id"], [])
        if records:
            gallery.enroll_embeddings(person["name"], records, new_person=True, metadata=person["metadata"])
            imported += 1
    if manifest.get("threshold") is not None and not gallery.has_own_threshold:
        gallery.set_threshold(float(manifest["threshold"]), manifest["threshold_source"])
    return {"people": imported, "embeddings": sum(len(v) for v in by_person.values())}
