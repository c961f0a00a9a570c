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
