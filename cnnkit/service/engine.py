"""The face models of one worker process, shared by all its requests, with batching across requests.

One thread owns the models (loaded once per process, on start). Requests put
their decoded photos on a queue and wait; the thread takes every photo that is
waiting (up to `batch_size`), detects faces in all of them in one detector
call, aligns them, and encodes every chip of the batch in one encoder call.
While a batch runs, new requests queue up and form the next one, so batches
grow with the load and a lone request never waits for company (unless
`batch_wait_ms` asks it to).

Back-pressure: at most `max_queue` photos wait; more are refused at once
(`Overloaded`, 503). A request whose photos were not started within its
deadline is dropped from the queue (`TimedOut`, 503) and costs nothing more.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import Overloaded, TimedOut
from ..faces.models import DEFAULT_ENCODER
from ..faces.recognizer import Recognizer
from ..faces.types import Face

log = logging.getLogger(__name__)


@dataclass
class _Job:
    images: list[np.ndarray]
    deadline: float
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


@dataclass
class EngineStats:
    batches: int = 0
    images: int = 0
    faces: int = 0
    dropped: int = 0
    busy_s: float = 0.0
    largest_batch: int = 0

    def to_dict(self) -> dict:
        mean = self.images / self.batches if self.batches else 0.0
        return {"batches": self.batches, "images": self.images, "faces": self.faces, "dropped": self.dropped,
                "busy_s": round(self.busy_s, 3), "mean_batch": round(mean, 2), "largest_batch": self.largest_batch}


class FaceEngine:
    """Detect + align + encode, batched across concurrent callers, on one model thread."""

    def __init__(self, *, device: str | None = "auto", flip: bool = True, encoder: str = DEFAULT_ENCODER,
                 batch_size: int = 8, batch_wait_ms: float = 0.0, max_queue: int = 64,
                 threads: int | None = None) -> None:
        """`encoder` and `flip` must be the gallery's (its `model.encoder` / `model.flip`), or its
        stored embeddings and the new ones cannot be compared."""
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_ms / 1000.0
        self.max_queue = max_queue
        self.threads = threads
        self.stats = EngineStats()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._queued_images = 0
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._threads_before = 0
        self.recognizer = Recognizer(encoder, device=device, flip=flip)

    # -- life -------------------------------------------------------------------------

    def start(self, *, warm: bool = True) -> None:
        """Load the models (once per process) and start the model thread; returns when ready."""
        if self._thread is not None:
            return
        import torch

        self._threads_before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        self._thread = threading.Thread(target=self._run, args=(warm,), name="cnnkit-face-engine", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise self._failed

    def stop(self) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._thread = None
        if self.threads is not None:
            import torch

            torch.set_num_threads(self._threads_before)  # the process's setting, as it was

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._failed is None and self._thread is not None

    @property
    def queued(self) -> int:
        return self._queued_images

    # -- use --------------------------------------------------------------------------

    def submit(self, images: Sequence[np.ndarray], *, timeout_s: float) -> concurrent.futures.Future:
        """Queue photos; the future gives, per photo, its faces (best first) with embeddings."""
        if not self.ready:
            raise Overloaded("the face models are not loaded yet")
        with self._count_lock:
            if self._queued_images + len(images) > self.max_queue and self._queued_images > 0:
                raise Overloaded(f"{self._queued_images} photos are waiting already")
            self._queued_images += len(images)
        job = _Job(list(images), time.monotonic() + timeout_s)
        self._queue.put(job)
        return job.future

    async def embed(self, images: Sequence[np.ndarray], *, timeout_s: float) -> list[list[Face]]:
        """`submit`, awaited. Raises Overloaded, TimedOut, or what the models raised."""
        if not images:
            return []
        future = self.submit(images, timeout_s=timeout_s)
        try:
            # Work that started is finished (it may be shared with other requests); the
            # deadline drops only work that has not started.
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout=timeout_s * 2)
        except TimeoutError:
            future.cancel()
            raise TimedOut(f"the face models did not finish within {timeout_s * 2:g} s") from None

    # -- the model thread ---------------------------------------------------------------

    def _run(self, warm: bool) -> None:
        try:
            self.recognizer.load()
            if warm:
                self._process([np.full((160, 160, 3), 128, np.uint8)])
        except BaseException as exc:  # report to start(), which raises it
            self._failed = exc
            self._ready.set()
            return
        self._ready.set()
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            size = len(job.images)
            wait_until = time.monotonic() + self.batch_wait_s
            while size < self.batch_size:
                try:
                    remaining = wait_until - time.monotonic()
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                jobs.append(nxt)
                size += len(nxt.images)
            self._run_batch(jobs)

    def _run_batch(self, jobs: list[_Job]) -> None:
        now = time.monotonic()
        live = []
        for job in jobs:
            with self._count_lock:
                self._queued_images -= len(job.images)
            if job.future.cancelled():  # its caller gave up
                self.stats.dropped += 1
                continue
            if now > job.deadline:
                try:
                    job.future.set_exception(TimedOut("the photos waited too long for the face models"))
                except concurrent.futures.InvalidStateError:
                    pass  # cancelled meanwhile
                self.stats.dropped += 1
                continue
            if job.future.set_running_or_notify_cancel():
                live.append(job)
            else:
                self.stats.dropped += 1
        if not live:
            return
        images = [im for job in live for im in job.images]
        start = time.perf_counter()
        try:
            found = self._process(images)
        except BaseException as exc:  # hand the failure to every caller of the batch
            log.exception("face models failed on a batch of %d photos", len(images))
            for job in live:
                job.future.set_exception(exc)
            return
        finally:
            self.stats.busy_s += time.perf_counter() - start
        self.stats.batches += 1
        self.stats.images += len(images)
        self.stats.faces += sum(len(f) for f in found)
        self.stats.largest_batch = max(self.stats.largest_batch, len(images))
        at = 0
        for job in live:
            job.future.set_result(found[at: at + len(job.images)])
            at += len(job.images)

    def _process(self, images: list[np.ndarray]) -> list[list[Face]]:
        return self.recognizer.process(images)
