"""Watch a video: detect faces in batches of frames, track them, identify each track, check liveness.

    from cnnkit.faces.gallery import Gallery
    from cnnkit.faces.video import Watcher, WatchSettings, open_source

    with Gallery("office.db", readonly=True) as gallery, open_source("door.mp4") as source:
        for event in Watcher(gallery, WatchSettings(liveness=LivenessSettings())).run(source):
            print(event)          # {"event": "identified" | "liveness" | "ended" | "summary", ...}

A track is identified when it starts (one encoder pass and a gallery search)
and re-checked every `recheck_every` seconds, not on every frame. In real-time
mode (the default for cameras; `realtime=True` plays a file at its own speed)
frames that are already more than `max_lag` seconds late when their turn comes
are dropped without being looked at, and counted.
"""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import SettingsError
from ..liveness.check import LivenessCheck, LivenessSettings
from ..models import DEFAULT_ENCODER
from ..recognizer import Recognizer
from ..settings import MIN_FACE_SIZE, DetectorSettings
from ..types import Face
from .sources import Frame, FrameSource
from .tracker import FaceTracker, Track, TrackerSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class WatchSettings:
    #: Frames detected together in one detector call.
    batch_size: int = 4
    #: Keep to the source's clock, dropping late frames; None: only for live sources (cameras).
    realtime: bool | None = None
    #: In real-time mode, a frame later than this (seconds) is dropped.
    max_lag: float = 0.5
    #: Seconds between identifications of the same track.
    recheck_every: float = 2.0
    min_face_size: float = MIN_FACE_SIZE
    #: None: no liveness check; otherwise run this check on every track.
    liveness: LivenessSettings | None = None
    tracker: TrackerSettings = TrackerSettings()
    device: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise SettingsError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.max_lag <= 0 or self.recheck_every <= 0:
            raise SettingsError("max_lag and recheck_every must be positive seconds")


@dataclass
class WatchStats:
    frames_read: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    faces_detected: int = 0
    identifications: int = 0
    tracks: int = 0
    seconds: float = 0.0
    realtime: bool = False
    source_fps: float = 0.0

    def to_dict(self) -> dict:
        fps = self.frames_processed / self.seconds if self.seconds > 0 else 0.0
        return {"event": "summary", "frames_read": self.frames_read, "frames_processed": self.frames_processed,
                "frames_dropped": self.frames_dropped, "faces_detected": self.faces_detected,
                "identifications": self.identifications, "tracks": self.tracks,
                "seconds": round(self.seconds, 3), "processed_fps": round(fps, 2),
                "source_fps": round(self.source_fps, 3), "realtime": self.realtime}


@dataclass
class TrackState:
    """What the watcher knows about one track."""

    track: Track
    name: str | None = None
    person_id: int | None = None
    distance: float | None = None        # of the latest identification
    best_distance: float | None = None   # smallest distance to the person named
    checks: int = 0
    last_check: float | None = None
    liveness: LivenessCheck | None = None
    liveness_reported: bool = False
    history: list[tuple[float, str | None, float | None]] = field(default_factory=list)

    def summary(self, event: str) -> dict:
        t = self.track
        out = {"event": event, "track": t.id, "name": self.name, "person_id": self.person_id,
               "first_seen": round(t.first_seen, 3), "last_seen": round(t.last_seen, 3),
               "first_frame": t.first_frame, "last_frame": t.last_frame, "frames": t.frames,
               "distance": _round(self.distance), "best_distance": _round(self.best_distance),
               "checks": self.checks}
        if self.liveness is not None:
            result = self.liveness.result if event != "ended" else self.liveness.finish()
            if result is not None:
                out["live"] = result.live
                out["liveness"] = result.to_dict()
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


class Watcher:
    """Runs the video loop; `run` yields events (plain dicts) as they happen."""

    def __init__(self, gallery=None, settings: WatchSettings = WatchSettings(), *,
                 clock: Callable[[], float] = _time.monotonic) -> None:
        self.gallery = gallery
        self.settings = settings
        self.clock = clock
        self.tracker = FaceTracker(settings.tracker)
        self.states: dict[int, TrackState] = {}
        self.stats = WatchStats()
        # The gallery's encoder and flip, so the embeddings compare with the stored ones.
        encoder, flip = (gallery.model.encoder, gallery.model.flip) if gallery is not None else (DEFAULT_ENCODER, True)
        self.recognizer = Recognizer(encoder, device=settings.device, flip=flip,
                                     detector=DetectorSettings(min_face_size=settings.min_face_size))
        self.device = self.recognizer.device

    def run(self, source: FrameSource, *,
            on_frame: Callable[[Frame, list[TrackState]], None] | None = None) -> Iterator[dict]:
        """Process the whole source; `on_frame(frame, states of its faces)` sees every processed frame."""
        s = self.settings
        realtime = source.live if s.realtime is None else s.realtime
        self.stats.realtime, self.stats.source_fps = realtime, source.fps
        started = self.clock()
        batch: list[Frame] = []
        for frame in self._frames(source, realtime):
            batch.append(frame)
            if len(batch) >= s.batch_size:
                yield from self._process(batch, on_frame)
                batch = []
        if batch:
            yield from self._process(batch, on_frame)
        for track in self.tracker.finish():
            yield from self._end(track)
        self.stats.seconds = self.clock() - started
        yield self.stats.to_dict()

    # -- the loop ------------------------------------------------------------------------

    def _frames(self, source: FrameSource, realtime: bool) -> Iterator[Frame]:
        origin: float | None = None
        for frame in source:
            self.stats.frames_read += 1
            if not realtime:
                yield frame
                continue
            now = self.clock()
            if origin is None:
                origin = now - frame.time
            due = origin + frame.time
            if now - due > self.settings.max_lag:
                self.stats.frames_dropped += 1  # deliberately: we are behind the source's clock
                continue
            if due > now and not source.live:
                _time.sleep(due - now)  # a file played as live: wait for the frame's moment
            yield frame

    def _process(self, batch: list[Frame], on_frame) -> Iterator[dict]:
        detections = self.recognizer.detect([f.image for f in batch])
        for frame, faces in zip(batch, detections):
            self.stats.frames_processed += 1
            self.stats.faces_detected += len(faces)
            yield from self._frame(frame, faces, on_frame)

    def _frame(self, frame: Frame, faces: list[Face], on_frame) -> Iterator[dict]:
        t = frame.time

        def embed(indices: list[int]) -> np.ndarray:
            return self.recognizer.embed_faces(frame.image, [faces[i] for i in indices])

        def due(track: Track) -> bool:
            state = self.states.get(track.id)
            return state is None or state.last_check is None or t - state.last_check >= self.settings.recheck_every

        update = self.tracker.update(faces, time=t, frame=frame.index, embed=embed, due=due)
        for track in update.ended:
            yield from self._end(track)
        states = []
        for j, track in enumerate(update.tracks):
            state = self.states.get(track.id)
            if state is None:
                state = self.states[track.id] = TrackState(track)
                self.stats.tracks += 1
                if self.settings.liveness is not None:
                    state.liveness = LivenessCheck(self.settings.liveness)
            states.append(state)
            if j in update.embeddings:
                yield from self._identify(state, update.embeddings[j], t)
        if self.settings.liveness is not None:
            yield from self._liveness(frame, faces, states, self.settings.liveness)
        if on_frame is not None:
            on_frame(frame, states)

    def _identify(self, state: TrackState, embedding: np.ndarray, t: float) -> Iterator[dict]:
        state.checks += 1
        state.last_check = t
        self.stats.identifications += 1
        if self.gallery is None:
            name, person_id, distance = None, None, None
        else:
            answer = self.gallery.identify_embeddings(embedding[None, :], top_k=1)[0]
            name, person_id, distance = answer.name, answer.person_id, answer.distance
        state.history.append((t, name, distance))
        changed = state.checks == 1 or (name, person_id) != (state.name, state.person_id)
        state.distance = distance
        if changed:
            state.name, state.person_id = name, person_id
            state.best_distance = distance if name is not None else None
        elif name is not None and distance is not None:
            state.best_distance = distance if state.best_distance is None else min(state.best_distance, distance)
        if changed:
            yield state.summary("identified")

    def _liveness(self, frame: Frame, faces: list[Face], states: list[TrackState],
                  settings: LivenessSettings) -> Iterator[dict]:
        pending = [(face, st, st.liveness) for face, st in zip(faces, states)
                   if st.liveness is not None and st.liveness.result is None]
        if not pending:
            return
        eyes = mouths = [None] * len(pending)
        if settings.needs_mesh:
            from ..liveness.iris import eyes_and_mouth

            eye_points, mouth_points = eyes_and_mouth(frame.image, [f for f, _, _ in pending], device=self.device)
            eyes, mouths = list(eye_points), list(mouth_points)
        for (face, st, check), eye, mouth in zip(pending, eyes, mouths):
            result = check.add(frame.time, face.landmarks, eye, mouth)
            if result is not None and not st.liveness_reported:
                st.liveness_reported = True
                yield st.summary("liveness")

    def _end(self, track: Track) -> Iterator[dict]:
        state = self.states.pop(track.id, None)
        if state is not None:
            yield state.summary("ended")


@torch.inference_mode()
def watch(source, gallery=None, *, settings: WatchSettings = WatchSettings()) -> list[dict]:
    """All events of a whole source (a FrameSource, or anything `open_source` takes) as a list."""
    from .sources import open_source

    src = source if isinstance(source, FrameSource) else open_source(source)
    try:
        return list(Watcher(gallery, settings).run(src))
    finally:
        if src is not source:
            src.close()
