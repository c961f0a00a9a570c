"""The tracker on boxes and embeddings made up for the purpose (no models): ids, loss, revival, switches."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.faces.types import Face
from cnnkit.faces.video.tracker import FaceTracker, TrackerSettings, iou_matrix


def face(x: float, y: float, size: float = 100.0) -> Face:
    return Face(box=(x, y, x + size, y + size), score=0.99, landmarks=np.zeros((5, 2), np.float32))


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)  # two such vectors are about 1.41 apart: different people


def test_iou_matrix_against_a_hand_computed_case():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0.0, 1.0]])


def test_two_faces_moving_keep_their_ids():
    tracker = FaceTracker()
    ids = []
    for i in range(20):
        faces = [face(50 + 5 * i, 100), face(400 - 5 * i, 120)]
        update = tracker.update(faces, time=i / 25, frame=i)
        ids.append([t.id for t in update.tracks])
    assert all(row == ids[0] for row in ids)
    assert len(set(ids[0])) == 2


def test_embedding_is_asked_only_for_new_and_due_faces():
    asked: list[list[int]] = []

    def embed(indices):
        asked.append(list(indices))
        return np.stack([unit(0) for _ in indices])

    tracker = FaceTracker()
    for i in range(10):
        tracker.update([face(100 + i, 100)], time=i / 25, frame=i, embed=embed,
                       due=lambda t, i=i: i == 7)
    assert asked == [[0], [0]]  # at birth and at the re-check


def test_a_short_gap_keeps_the_id_and_a_long_one_ends_the_track():
    tracker = FaceTracker(TrackerSettings(max_missing=0.5, revive_within=1.0))
    first = tracker.update([face(100, 100)], time=0.0, frame=0).tracks[0].id
    assert tracker.update([], time=0.3, frame=1).ended == []
    assert tracker.update([face(102, 100)], time=0.4, frame=2).tracks[0].id == first
    assert tracker.update([], time=1.0, frame=3).ended == []        # lost, may still come back
    ended = tracker.update([], time=1.5, frame=4).ended              # gone for good
    assert [t.id for t in ended] == [first]
    assert tracker.update([face(100, 100)], time=1.6, frame=5).tracks[0].id != first


def test_someone_else_in_the_same_spot_gets_a_new_track():
    tracker = FaceTracker()
    people = {"a": unit(1), "b": unit(2)}
    who = "a"

    def embed(indices):
        return np.stack([people[who] for _ in indices])

    a = tracker.update([face(100, 100)], time=0.0, frame=0, embed=embed).tracks[0]
    tracker.update([face(100, 100)], time=0.04, frame=1, embed=embed)
    who = "b"  # after a gap longer than verify_after, b stands where a stood
    b = tracker.update([face(101, 100)], time=0.5, frame=2, embed=embed).tracks[0]
    assert b.id != a.id


def test_a_lost_face_coming_back_elsewhere_gets_its_id_back():
    tracker = FaceTracker(TrackerSettings(max_missing=0.2, revive_within=3.0))
    embed = lambda indices: np.stack([unit(5) for _ in indices])  # noqa: E731
    first = tracker.update([face(50, 100)], time=0.0, frame=0, embed=embed).tracks[0].id
    tracker.update([], time=0.5, frame=1, embed=embed)
    back = tracker.update([face(450, 100)], time=1.0, frame=2, embed=embed).tracks[0]
    assert back.id == first and back.frames == 2


def test_finish_ends_every_track_and_settings_are_checked():
    tracker = FaceTracker()
    tracker.update([face(0, 0), face(300, 0)], time=0.0, frame=0)
    assert len(tracker.finish()) == 2 and tracker.tracks == {}
    with pytest.raises(ValueError, match="iou_threshold"):
        TrackerSettings(iou_threshold=1.5)
