"""Face tracks across frames: IoU matching of boxes, with embeddings to keep identities apart.

Each frame's faces are matched to the live tracks by box overlap (IoU) with the
Hungarian algorithm, tracks seen a moment ago first; a face that overlaps no
track starts a new one. Embeddings
are computed only for some faces (the tracker asks for them): a face that starts
a track, a face whose track is due a re-check, and a face taking up a track that
went unseen for a moment (`verify_after`). Such a face continues its track only
if its embedding is close to the track's (someone else stepping into the same
spot gets a new track), and a new face whose embedding is close to a track lost
in the last `revive_within` seconds, or to a live track no box continued in this
frame (a jump), takes that track's id back. A track unseen
for `max_missing` seconds is no longer matched by boxes, and is reported ended
once it cannot be revived.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import SettingsError
from ...runtime.extras import require
from ..boxes import pairwise_overlap
from ..types import Face


@dataclass(frozen=True, kw_only=True)
class TrackerSettings:
    #: Least box overlap for a face to continue a track.
    iou_threshold: float = 0.25
    #: Seconds a track may go unseen before it ends.
    max_missing: float = 1.0
    #: Embedding distance above which a face is not the track's person (dlib encoder: 0.6 is its threshold).
    same_person: float = 0.6
    #: A track unseen for longer than this (seconds) has its face's embedding checked when a box
    #: takes it up again: whoever stepped into the spot may be someone else.
    verify_after: float = 0.2
    #: Seconds (since last seen) during which a lost track may be taken up again by a close
    #: embedding; a track is reported ended only after this.
    revive_within: float = 3.0

    def __post_init__(self) -> None:
        if not 0 < self.iou_threshold < 1:
            raise SettingsError(f"iou_threshold must be in (0, 1), got {self.iou_threshold}")
        if self.max_missing <= 0 or self.revive_within < 0:
            raise SettingsError("max_missing must be positive and revive_within not negative")


@dataclass
class Track:
    """One face followed through frames."""

    id: int
    first_seen: float
    last_seen: float
    face: Face
    first_frame: int
    last_frame: int
    frames: int = 1
    embedding: np.ndarray | None = field(default=None, repr=False)
    ended: bool = False

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.face.box


@dataclass
class TrackUpdate:
    """What one frame did: the track of each face (in order), the embeddings computed (face index ->
    vector), and the tracks that ended for good."""

    tracks: list[Track]
    embeddings: dict[int, np.ndarray]
    ended: list[Track]


def iou_matrix(a, b) -> np.ndarray:
    """IoU of every box of `a` (N, 4) with every box of `b` (M, 4), boxes as x1, y1, x2, y2 (float64)."""
    a = torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(-1, 4))
    b = torch.as_tensor(np.asarray(b, dtype=np.float64).reshape(-1, 4))
    return pairwise_overlap(a, b, "union").numpy()


class FaceTracker:
    """Assigns each face of each frame a track id; call `update` once per frame, in order."""

    def __init__(self, settings: TrackerSettings = TrackerSettings()) -> None:
        self.settings = settings
        self.tracks: dict[int, Track] = {}   # live tracks
        self.recent: list[Track] = []        # ended tracks that may still be revived
        self._next_id = 1

    def update(self, faces: Sequence[Face], *, time: float, frame: int,
               embed: Callable[[list[int]], np.ndarray] | None = None,
               due: Callable[[Track], bool] | None = None) -> TrackUpdate:
        """Match this frame's faces to tracks.

        `embed(indices)` returns embeddings (len(indices), D) of those faces of
        this frame; it is called once at most, for the faces that start a track
        the faces whose track is `due` a re-check and those whose track was unseen
        for more than `verify_after` seconds. A checked face whose
        embedding is far from its track's starts a new track (an identity switch).
        """
        s = self.settings
        assigned: list[Track | None] = [None] * len(faces)
        # Matching cascade: tracks seen a moment ago first, then the ones unseen for a while,
        # for the faces still free (a stale box must not take a face from a fresh one).
        fresh = [t for t in self.tracks.values() if time - t.last_seen <= s.verify_after]
        stale = [t for t in self.tracks.values() if time - t.last_seen > s.verify_after]
        for live in (fresh, stale):
            free = [j for j, t in enumerate(assigned) if t is None]
            if not live or not free:
                continue
            overlap = iou_matrix([t.box for t in live], [faces[j].box for j in free])
            assign = require("scipy.optimize", extra="video", purpose="tracking faces").linear_sum_assignment
            rows, cols = assign(-overlap)
            for i, k in zip(rows, cols):
                if overlap[i, k] >= s.iou_threshold:
                    assigned[free[k]] = live[i]
        wanted = [j for j, t in enumerate(assigned)
                  if t is None or time - t.last_seen > s.verify_after or (due is not None and due(t))]
        embeddings: dict[int, np.ndarray] = {}
        if wanted and embed is not None:
            embeddings = dict(zip(wanted, np.asarray(embed(wanted), dtype=np.float32)))
        for j, track in enumerate(assigned):
            emb = embeddings.get(j)
            if track is not None and emb is not None and track.embedding is not None and \
                    float(np.linalg.norm(emb - track.embedding)) > s.same_person:
                self._lose(track)  # someone else stepped into this box
                track = None
            if track is None:
                taken = {t.id for t in assigned if t is not None}
                track = self._revive(emb, time, taken) or self._new(faces[j], time, frame)
            track.frames += 1
            assigned[j] = track
            track.face, track.last_seen, track.last_frame = faces[j], time, frame
            if emb is not None and track.embedding is None:
                track.embedding = emb
        tracks = [t for t in assigned if t is not None]  # every face has its track by now
        return TrackUpdate(tracks, embeddings, self._expire(time))

    def _lose(self, track: Track) -> None:
        self.tracks.pop(track.id, None)
        self.recent.append(track)

    def set_embedding(self, track: Track, embedding: np.ndarray) -> None:
        """Give a track its reference embedding (the watcher does this after identifying it)."""
        track.embedding = np.asarray(embedding, dtype=np.float32)

    def finish(self) -> list[Track]:
        """End every live track (the stream is over)."""
        ended = sorted([*self.tracks.values(), *self.recent], key=lambda t: t.id)
        self.recent = []
        for track in ended:
            track.ended = True
        self.tracks.clear()
        return ended

    def _new(self, face: Face, time: float, frame: int) -> Track:
        track = Track(self._next_id, time, time, face, frame, frame, frames=0)
        self._next_id += 1
        self.tracks[track.id] = track
        return track

    def _revive(self, embedding: np.ndarray | None, time: float, taken: set[int]) -> Track | None:
        """The track, lost or live but not matched in this frame, whose embedding is nearest (if near enough)."""
        if embedding is None:
            return None
        best, best_d = None, self.settings.same_person
        unmatched = [t for t in self.tracks.values() if t.id not in taken and t.last_seen < time]
        for track in [*self.recent, *unmatched]:
            if track.embedding is not None and time - track.last_seen <= self.settings.revive_within:
                d = float(np.linalg.norm(embedding - track.embedding))
                if d < best_d:
                    best, best_d = track, d
        if best is None:
            return None
        if best in self.recent:
            self.recent.remove(best)
        self.tracks[best.id] = best
        return best

    def _expire(self, time: float) -> list[Track]:
        # Unseen for max_missing: lost (no longer matched by boxes, but revivable by embedding);
        # unseen for revive_within as well: ended for good, and reported.
        lost = [t for t in self.tracks.values() if time - t.last_seen > self.settings.max_missing]
        for track in lost:
            del self.tracks[track.id]
            self.recent.append(track)
        limit = max(self.settings.max_missing, self.settings.revive_within)
        ended = [t for t in self.recent if time - t.last_seen > limit]
        for track in ended:
            track.ended = True
        self.recent = [t for t in self.recent if not t.ended]
        return ended
