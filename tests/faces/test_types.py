"""Face: plain data that compares and hashes by value, arrays included."""

from __future__ import annotations

import numpy as np

from cnnkit.faces.types import Face


def face(embedding=None, dx: float = 0.0) -> Face:
    return Face(box=(10.0 + dx, 20.0, 60.0, 80.0), score=0.99,
                landmarks=np.arange(10, dtype=np.float32).reshape(5, 2) + dx, embedding=embedding)


def test_equal_faces_compare_equal_and_hash_alike():
    a, b = face(np.ones(4, np.float32)), face(np.ones(4, np.float32))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert face() == face() and face() != face(np.ones(4, np.float32))


def test_any_difference_makes_them_differ():
    assert face(dx=1.0) != face()
    assert face(np.ones(4, np.float32)) != face(np.zeros(4, np.float32))
    moved = Face(box=face().box, score=0.99, landmarks=face().landmarks + 0.5)
    assert moved != face() and face() != "a face"


def test_box_in_the_peers_conventions():
    f = Face(box=(10.4, 20.6, 60.2, 80.0), score=0.9, landmarks=np.zeros((5, 2), np.float32))
    top, right, bottom, left = f.css_box  # face_recognition: image[top:bottom, left:right] is the face
    assert (top, right, bottom, left) == (21, 60, 80, 10)
    assert f.xywh == {"x": 10, "y": 21, "w": 50, "h": 59}  # DeepFace: image[y:y+h, x:x+w]
    image = np.arange(100 * 100).reshape(100, 100)
    x, y, w, h = f.xywh.values()
    assert np.array_equal(image[top:bottom, left:right], image[y:y + h, x:x + w])
