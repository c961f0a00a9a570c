"""Enroll a whole photo tree, `ROOT/<person>/<photo>`, into a gallery: on Ray workers or in this process.

    report = enroll_tree(Gallery("city.db", create=True), "archive/")          # local Ray, one worker per core
    report = enroll_tree(gallery, "archive/", address="ray://head:10001")     # a Ray cluster
    report = enroll_tree(gallery, "archive/", engine="local")                 # no Ray: one process
    report = enroll_tree(gallery, "archive/")      # "auto": Ray only where it pays (many photos, several cores)

- Workers detect and encode whole batches of photos (the models are loaded
  once per worker); only the driver writes to the gallery, so SQLite and
  Milvus galleries both see a single writer.
- Idempotent and resumable: each photo's sha256 is stored with its embedding;
  a photo whose content is already in the gallery is skipped. After a crash or
  a kill, run the same command again: it enrolls what is missing.
- A photo that fails (unreadable, no face, several similar faces) is listed in
  the report; the run goes on.
- Results are written in the order of the tree (batches are reordered as they
  come back), so a Ray run and a one-process run build the same gallery.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from ..errors import CnnkitError, SettingsError
from ..images import IMAGE_SUFFIXES
from ..runtime.extras import require
from .gallery import Gallery
from .gallery.gallery import PICK_CHOICES, enrollment_record
from .gallery.store import EmbeddingRecord

log = logging.getLogger(__name__)

ENGINE_CHOICES = ("auto", "ray", "local")
#: engine="auto" uses Ray from this many photos to encode on (and more than one core): below it, starting
#: Ray costs more than it saves (36 photos: 10.7 s on Ray, 1.4 s in one process; 13,233 photos on two
#: cores: Ray 1.33x faster, bench/results/enroll_tree_lfw.json).
RAY_FROM_PHOTOS = 2000


@dataclass(frozen=True)
class TreePhoto:
    person: str
    path: str
    sha256: str


@dataclass
class TreeReport:
    """What a run did: counts, the photos that failed (with why), and how long it took."""

    root: str
    gallery: str
    engine: str
    workers: int
    photos: int = 0
    enrolled: int = 0
    already_enrolled: int = 0
    duplicates: int = 0
    people_added: int = 0
    seconds: float = 0.0
    first_batch_s: float | None = None  # until the first batch was written: start-up (Ray, models) included
    steady_photos_per_second: float | None = None  # after the first batch
    failed: list[dict] = field(default_factory=list)

    @property
    def photos_per_second(self) -> float:
        done = self.enrolled + len(self.failed)
        return done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["photos_per_second"] = round(self.photos_per_second, 3)
        out["seconds"] = round(self.seconds, 3)
        return out


def scan_tree(root: str | os.PathLike) -> list[tuple[str, Path]]:
    """(person, photo path) for every image under ROOT/<person>/, in sorted order."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise CnnkitError(f"{root}: not a folder; give a folder of ROOT/<person>/<photos>")
    out = []
    for person_dir in sorted(p for p in root_path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for photo in sorted(person_dir.iterdir()):
            if photo.is_file() and photo.suffix.lower() in IMAGE_SUFFIXES:
                out.append((person_dir.name, photo))
    if not out:
        raise CnnkitError(f"{root}: no photos found; expected ROOT/<person>/<photo>.jpg")
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class WorkerSettings(TypedDict):
    """The keyword arguments of `TreeWorker`, as handed to every worker."""

    encoder: str
    flip: bool
    pick: str
    device: str | None
    threads: int | None


class TreeWorker:
    """Detects and encodes batches of photos (a Ray actor, or called in-process)."""

    def __init__(self, *, encoder: str, flip: bool, pick: str, device: str | None, threads: int | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        from .recognizer import Recognizer

        self.recognizer = Recognizer(encoder, device=device, flip=flip)
        self.pick = pick

    def run(self, index: int, paths: list[str]) -> tuple[int, list[dict]]:
        """(index, one dict per photo: vector and box, or error) for the photos at `paths`."""
        from .pipeline import embed_images

        out: list[dict[str, Any]] = []
        for result in embed_images(paths, batch_size=max(len(paths), 1), recognizer=self.recognizer):
            try:
                if result.error is not None:
                    raise CnnkitError(result.error)
                record = enrollment_record(result.source, result.faces, self.pick)
            except CnnkitError as exc:
                message = str(exc).replace("; nothing was enrolled", "")
                out.append({"error": message.removeprefix(f"{result.source}: ")})
                continue
            out.append({"vector": np.asarray(record.vector, np.float32),
                        "box": tuple(record.box) if record.box is not None else None})
        return index, out


def enroll_tree(gallery: Gallery, root: str | os.PathLike, *, engine: str = "auto", address: str | None = None,
                workers: int | None = None, batch_size: int = 32, pick: str = "auto",
                threads_per_worker: int | None = None, device: str | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> TreeReport:
    """Enroll every photo under ROOT/<person>/ not yet in `gallery`; see the module's notes.

    `engine`: "auto" (Ray with an `address`, or from RAY_FROM_PHOTOS photos on a machine with several
    cores; else this process), "ray" (local Ray by default, or the cluster at `address`) or
    "local" (this process). `workers`: Ray actors (default: the CPUs Ray sees).
    `threads_per_worker`: PyTorch threads of each Ray worker (default 1: one worker per core), or of this
    process with engine "local" (default: PyTorch's own, every core).
    `on_progress(done, total)` is called as photos are finished.
    """
    if engine not in ENGINE_CHOICES:
        raise SettingsError(f"engine must be one of {ENGINE_CHOICES}, got {engine!r}")
    if pick not in PICK_CHOICES:
        raise SettingsError(f"pick must be one of {PICK_CHOICES}, got {pick!r}")
    if batch_size < 1:
        raise SettingsError(f"batch_size must be at least 1, got {batch_size}")
    if workers is not None and workers < 1:
        raise SettingsError(f"workers must be at least 1, got {workers}")
    if address is not None and engine == "local":
        raise SettingsError("address is for engine='ray'")
    started = time.perf_counter()
    tree = scan_tree(root)
    known = gallery.source_hashes()
    report = TreeReport(root=str(root), gallery=str(gallery.path), engine=engine, workers=1, photos=len(tree))
    unique: list[TreePhoto] = []  # each content once, in tree order
    seen: set[str] = set()
    for person, path in tree:
        try:
            sha = _sha256(path)
        except OSError as exc:
            report.failed.append({"photo": str(path), "person": person, "error": f"cannot read it ({exc.strerror})"})
            continue
        if sha in seen:
            report.duplicates += 1  # the same content twice in the tree: enrolled once
            continue
        seen.add(sha)
        unique.append(TreePhoto(person, str(path), sha))
        report.already_enrolled += sha in known
    # Batches are cut over the whole tree, not over what is missing, and a batch with anything
    # missing is encoded whole: a face's embedding moves slightly (~1e-4) with the photos that share
    # its detector batch, so this is what makes a resumed run give the same vectors as an unbroken one.
    batches = [batch for batch in (unique[i:i + batch_size] for i in range(0, len(unique), batch_size))
               if any(p.sha256 not in known for p in batch)]
    total = sum(len(batch) for batch in batches)
    people_before = {p.name for p in gallery.people()}
    done = 0
    first_batch_at: list = [None, 0]  # (when, photos done then)
    if on_progress is not None:
        on_progress(0, total)

    def commit(batch: list[TreePhoto], results: list[dict]) -> None:
        nonlocal done
        by_person: dict[str, list[EmbeddingRecord]] = {}
        for photo, result in zip(batch, results):
            if photo.sha256 in known:
                continue  # encoded again only for the sake of its batch
            if "error" in result:
                report.failed.append({"photo": photo.path, "person": photo.person, "error": result["error"]})
            else:
                by_person.setdefault(photo.person, []).append(EmbeddingRecord(
                    vector=result["vector"], source=photo.path, source_sha256=photo.sha256, box=result["box"]))
        if by_person:
            gallery.enroll_many(by_person)  # one write per batch
            report.enrolled += sum(len(records) for records in by_person.values())
        done += len(batch)
        if first_batch_at[0] is None:
            first_batch_at[:] = [time.perf_counter(), done]
        if on_progress is not None:
            on_progress(done, total)

    if engine == "auto":
        engine = "ray" if address is not None or (total >= RAY_FROM_PHOTOS and (os.cpu_count() or 1) > 1) else "local"
        report.engine = engine
    threads = threads_per_worker if threads_per_worker is not None else (1 if engine == "ray" else None)
    settings: WorkerSettings = {"encoder": gallery.model.encoder, "flip": gallery.model.flip, "pick": pick,
                                "device": device, "threads": threads}
    if batches and engine == "local":
        worker = TreeWorker(**settings)
        for index, batch in enumerate(batches):
            commit(batch, worker.run(index, [p.path for p in batch])[1])
    elif batches:
        report.workers = _run_on_ray(batches, settings, commit, address=address, workers=workers)
    report.people_added = len({p.name for p in gallery.people()} - people_before)
    report.seconds = time.perf_counter() - started
    if first_batch_at[0] is not None:
        report.first_batch_s = round(first_batch_at[0] - started, 3)
        after = time.perf_counter() - first_batch_at[0]
        if done > first_batch_at[1] and after > 0:
            report.steady_photos_per_second = round((done - first_batch_at[1]) / after, 3)
    return report


def _run_on_ray(batches: list[list[TreePhoto]], settings: WorkerSettings, commit, *, address: str | None,
                workers: int | None) -> int:
    """Spread the batches over Ray actors; commit results in batch order as they come back."""
    ray = require("ray", extra="distributed", purpose="enroll-tree on Ray (or use --engine local)")
    from ray.util import ActorPool
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, num_cpus=workers if address is None else None, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise CnnkitError(f"cannot start or reach Ray{f' at {address}' if address else ''} ({exc})") from None
    try:
        count = workers or max(int(ray.cluster_resources().get("CPU", 1)), 1)
        actor = ray.remote(num_cpus=1)(TreeWorker)
        pool = ActorPool([actor.remote(**settings) for _ in range(count)])
        waiting: dict[int, list[dict]] = {}
        next_index = 0
        jobs = [(i, [p.path for p in batch]) for i, batch in enumerate(batches)]
        for index, results in pool.map_unordered(lambda a, job: a.run.remote(*job), jobs):
            waiting[index] = results
            while next_index in waiting:
                commit(batches[next_index], waiting.pop(next_index))
                next_index += 1
        return count
    finally:
        if started_here:
            ray.shutdown()
