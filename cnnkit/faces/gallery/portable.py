"""Export a gallery to one portable .npz file and import it back (no pickle anywhere).

The file is a zip of two .npy members: `vectors.npy` (N, D) float32 and
`manifest.npy`, a JSON document (as a 0-d unicode array) with the model, the
threshold and its provenance, the people, and for each vector its person and
source. Exports are created 0600 (readable by their owner only): they hold
biometric data.

An import trusts nothing in the file. Before anything is written:

- the zip must hold exactly those two members, stored or deflated, each at most
  MAX_MEMBER_BYTES once inflated and inflating at most MAX_INFLATION times (a
  small file cannot expand into gigabytes); the .npy headers are read first and
  must announce a 0-d unicode manifest and a float (N, D) array of the model's D;
- the manifest must have the export's schema (types, sizes, references:
  `check_manifest`), every name and metadata must pass the same rules as an
  enrollment through the API (`clean_name`, `clean_metadata`), and every vector
  must be finite, of the gallery's dimension and of a plausible length;
- a threshold in the file is never applied unless asked (`use_threshold=True`,
  `cnnkit faces import --use-threshold`): a file could otherwise make every
  stranger match someone.

Then all the people are written in one transaction: an import adds everyone or
no one. Every refusal is one GalleryError line naming the file and the first
problem found in it.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import unicodedata
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import GalleryError
from .gallery import Gallery, ImportedPerson
from .store import FILE_MODE, SCHEMA_VERSION, EmbeddingRecord

PORTABLE_FORMAT = "cnnkit-gallery-export"
PORTABLE_VERSION = 1
MEMBERS = ("manifest.npy", "vectors.npy")
#: Largest size of one member once inflated (the manifest: 4 bytes per character).
MAX_MEMBER_BYTES = 1 << 30
#: Largest inflation of a deflated member (a real manifest deflates about 10-20x; vectors barely).
MAX_INFLATION = 64
MAX_SOURCE = 1024
MAX_DIM = 8192
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Bad(Exception):
    """A problem in the file: where it is and what is wrong."""


def export_gallery(gallery: Gallery, path: str | os.PathLike) -> dict:
    """Write every person and embedding of `gallery` to `path` (.npz, mode 0600); returns the counts."""
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
    if path.is_dir():
        raise GalleryError(f"{path}: is a folder; give the export's file name (for example {path / 'gallery.npz'})")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as the export itself
    # Write beside the target, then rename: a crash never leaves half a file under the real name.
    # mkstemp creates the file 0600; fchmod says so whatever the platform.
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".npz")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, vectors=vectors, manifest=np.array(json.dumps(manifest)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {"people": len(people), "embeddings": len(rows)}


# -- reading ------------------------------------------------------------------------------


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, bytes]:
    """(shape, dtype, data bytes) of one .npy member, its header checked before its data is read."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _Bad(f"{info.filename}: compressed with method {info.compress_type}; only stored or deflated")
    if info.file_size > MAX_MEMBER_BYTES:
        raise _Bad(f"{info.filename}: {info.file_size:,} bytes once inflated, over the limit of {MAX_MEMBER_BYTES:,}")
    if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > MAX_INFLATION * max(info.compress_size, 1):
        raise _Bad(f"{info.filename}: inflates {info.file_size / max(info.compress_size, 1):.0f}-fold "
                   f"({info.compress_size:,} -> {info.file_size:,} bytes), over the limit of {MAX_INFLATION}")
    with archive.open(info) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise _Bad(f"{info.filename}: .npy version {version} is not read")
        except ValueError as exc:
            raise _Bad(f"{info.filename}: not a .npy array ({exc})") from None
        if dtype.hasobject or fortran:
            raise _Bad(f"{info.filename}: holds {'objects' if dtype.hasobject else 'a Fortran-ordered array'}")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if expected > info.file_size:
            raise _Bad(f"{info.filename}: its header announces {expected:,} bytes, more than the member holds")
        # Read no more than announced, whatever the zip's own sizes say.
        data = stream.read(expected + 1)
    if len(data) != expected:
        raise _Bad(f"{info.filename}: {len(data):,} bytes of data for a {shape} {dtype} array")
    return tuple(shape), dtype, data


def _read_archive(path: Path) -> tuple[dict, np.ndarray]:
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise GalleryError(f"{path}: no such file") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise GalleryError(f"{path}: not a cnnkit gallery export ({exc})") from None
    with archive:
        infos = {i.filename: i for i in archive.infolist()}
        if sorted(infos) != sorted(MEMBERS):
            raise _Bad(f"the zip holds {sorted(infos)[:5]}; an export holds exactly {list(MEMBERS)}")
        try:
            shape, dtype, data = _read_member(archive, infos["manifest.npy"])
            if shape != () or dtype.kind != "U":
                raise _Bad(f"manifest.npy: a {dtype} array of shape {shape}, not a 0-d unicode string")
            text = np.frombuffer(data, dtype=dtype).reshape(()).item()
            del data
            try:
                manifest = json.loads(text, parse_constant=_no_constant)
            except (ValueError, RecursionError) as exc:
                raise _Bad(f"manifest: not valid JSON ({exc})") from None
            del text
            shape, dtype, data = _read_member(archive, infos["vectors.npy"])
            if dtype.kind != "f" or dtype.itemsize not in (4, 8) or len(shape) != 2:
                raise _Bad(f"vectors.npy: a {dtype} array of shape {shape}, not (N, D) float32")
            vectors = np.frombuffer(data, dtype=dtype).reshape(shape).astype(np.float32)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # damaged data, CRC errors
            raise _Bad(f"damaged zip ({exc})") from None
    return manifest, vectors


def _no_constant(name: str) -> Any:
    raise _Bad(f"manifest: {name} is not a number JSON allows")


def read_export(path: str | os.PathLike) -> tuple[dict, np.ndarray]:
    """The manifest and vectors of an export, checked (see the module docstring); GalleryError if refused."""
    path = Path(path)
    try:
        manifest, vectors = _read_archive(path)
        check_manifest(manifest, vectors)
    except _Bad as exc:
        raise GalleryError(f"{path}: not a valid cnnkit gallery export: {exc}; nothing was imported") from None
    except MemoryError:
        raise GalleryError(f"{path}: too large to import on this machine; nothing was imported") from None
    return manifest, vectors


# -- the schema ---------------------------------------------------------------------------


def _want(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _Bad(f"{where}: expected {names}, got {type(value).__name__}")
    return value


def _text(value: Any, where: str, limit: int, *, empty: bool = True) -> str:
    text = _want(value, str, where)
    if len(text) > limit or (not empty and not text):
        raise _Bad(f"{where}: {len(text)} characters; {0 if empty else 1} to {limit} wanted")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise _Bad(f"{where}: holds control characters")
    return text


def _timestamp(value: Any, where: str) -> str | None:
    if value is None:
        return None
    text = _text(value, where, 40)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(f"{where}: {text[:40]!r} is not an ISO 8601 time") from None
    return text


def _finite(value: Any, where: str) -> float:
    number = _want(value, (int, float), where)
    if isinstance(number, bool) or not math.isfinite(number):
        raise _Bad(f"{where}: {number!r} is not a finite number")
    return float(number)


def check_manifest(manifest: Any, vectors: np.ndarray) -> None:
    """_Bad unless `manifest` has an export's shape and agrees with `vectors`."""
    _want(manifest, dict, "manifest")
    if manifest.get("format") != PORTABLE_FORMAT:
        raise _Bad(f"manifest: format is {str(manifest.get('format'))[:40]!r}, not {PORTABLE_FORMAT!r}")
    version = _want(manifest.get("version"), int, "version")
    if version > PORTABLE_VERSION:
        raise _Bad(f"written by a newer cnnkit (export version {version}); upgrade cnnkit")
    model = _want(manifest.get("model"), dict, "model")
    for key in ("id", "encoder", "version"):
        _text(model.get(key), f"model.{key}", 300, empty=False)
    dim = _want(model.get("dim"), int, "model.dim")
    _want(model.get("flip"), bool, "model.flip")
    if not 0 < dim <= MAX_DIM:
        raise _Bad(f"model.dim: {dim}")
    if vectors.shape[1] != dim:
        raise _Bad(f"vectors are {vectors.shape[1]}-dimensional, the manifest's model {dim}-dimensional")
    if manifest.get("threshold") is not None:
        _finite(manifest["threshold"], "threshold")
        source = _want(manifest.get("threshold_source", {}), dict, "threshold_source")
        if len(json.dumps(source)) > 4096:
            raise _Bad("threshold_source: over 4096 bytes of JSON")
    people = _want(manifest.get("people"), list, "people")
    ids: set[int] = set()
    for i, person in enumerate(people):
        where = f"people[{i}]"
        _want(person, dict, where)
        pid = _want(person.get("id"), int, f"{where}.id")
        if pid in ids:
            raise _Bad(f"{where}.id: {pid} appears twice")
        ids.add(pid)
        _want(person.get("name"), str, f"{where}.name")  # its rules: clean_name, at import
        if person.get("metadata") is not None:
            _want(person["metadata"], dict, f"{where}.metadata")  # its rules: clean_metadata, at import
        _timestamp(person.get("created_at"), f"{where}.created_at")
    embeddings = _want(manifest.get("embeddings"), list, "embeddings")
    if len(embeddings) != len(vectors):
        raise _Bad(f"{len(vectors)} vectors for {len(embeddings)} embedding records")
    for i, record in enumerate(embeddings):
        where = f"embeddings[{i}]"
        _want(record, dict, where)
        pid = _want(record.get("person_id"), int, f"{where}.person_id")
        if pid not in ids:
            raise _Bad(f"{where}.person_id: no person {pid} in the file")
        _text(record.get("source", ""), f"{where}.source", MAX_SOURCE)
        sha = _text(record.get("source_sha256", ""), f"{where}.source_sha256", 64)
        if sha and not _SHA256.fullmatch(sha):
            raise _Bad(f"{where}.source_sha256: not 64 lowercase hex digits")
        box = record.get("box")
        if box is not None:
            if len(_want(box, list, f"{where}.box")) != 4:
                raise _Bad(f"{where}.box: {len(box)} numbers, not 4")
            for k, v in enumerate(box):
                if abs(_finite(v, f"{where}.box[{k}]")) > 1e6:
                    raise _Bad(f"{where}.box[{k}]: {v} is out of range")
        _timestamp(record.get("created_at"), f"{where}.created_at")


# -- importing ----------------------------------------------------------------------------


def _already_in(gallery: Gallery, name: str, vectors: list[np.ndarray]) -> bool:
    """Whether a person called `name` holds exactly these vectors (the same export imported before)."""
    wanted = sorted(v.astype("<f4").tobytes() for v in vectors)
    return any(sorted(bytes(r["vector"]) for r in gallery.store.embedding_rows(p.id)) == wanted
               for p in gallery.people(name=name))


def import_gallery(gallery: Gallery, path: str | os.PathLike, *, use_threshold: bool = False) -> dict:
    """Add the people of an export to `gallery`, each as a new person with a new id: all of them or none.

    The export must come from the same model as the gallery. A person already
    in the gallery (same name, the very same vectors: the file was imported
    before) is skipped, not doubled. Its threshold is applied only with
    `use_threshold` (and then in the same transaction). Returns the counts, the
    people skipped, the file's threshold and whether it was applied.
    """
    manifest, vectors = read_export(path)
    model = manifest["model"]
    if (model["id"], model["version"]) != (gallery.model.id, gallery.model.version):
        raise GalleryError(f"{path} holds embeddings of {model['id']} ({model['version']}); the gallery "
                           f"{gallery.path} holds {gallery.model.id} ({gallery.model.version}); they cannot be mixed")
    by_person: dict[int, list[tuple[EmbeddingRecord, str | None]]] = {}
    for record, vector in zip(manifest["embeddings"], vectors):
        by_person.setdefault(record["person_id"], []).append((EmbeddingRecord(
            vector=vector, source=record.get("source", ""), source_sha256=record.get("source_sha256", ""),
            box=tuple(record["box"]) if record.get("box") else None), record.get("created_at")))
    entries, skipped = [], 0
    for person in manifest["people"]:
        got = by_person.get(person["id"], [])
        if got and _already_in(gallery, person["name"], [r.vector for r, _ in got]):
            skipped += 1
        elif got:  # a person without embeddings is nobody anyone could be recognised as
            stamps = [c for _, c in got]
            entries.append(ImportedPerson(
                name=person["name"], metadata=person.get("metadata"), records=[r for r, _ in got],
                created_at=person.get("created_at"),
                embedding_created_at=stamps if all(stamps) else None))  # type: ignore[arg-type]
    in_file = manifest.get("threshold")
    threshold = (float(in_file), manifest.get("threshold_source") or {"method": f"imported from {Path(path).name}"}) \
        if in_file is not None and use_threshold else None
    try:
        imported = gallery.import_people(entries, threshold=threshold)
    except GalleryError as exc:
        raise GalleryError(f"{path}: {exc}; nothing was imported") from None
    return {"people": imported, "embeddings": sum(len(e.records) for e in entries), "skipped": skipped,
            "threshold_in_file": None if in_file is None else float(in_file),
            "threshold_applied": threshold is not None}


__all__ = ["MAX_INFLATION", "MAX_MEMBER_BYTES", "PORTABLE_FORMAT", "PORTABLE_VERSION", "check_manifest",
           "export_gallery", "import_gallery", "read_export"]
