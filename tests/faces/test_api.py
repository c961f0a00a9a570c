"""The public face verbs on real photos: detect, align, encode, distance, compare."""

from __future__ import annotations

import numpy as np
import pytest

import cnnkit
from cnnkit.faces.align import DLIB_CHIP_TEMPLATE, chip_transforms, similarity_transform
from cnnkit.faces.thresholds import default_threshold
from tests.conftest import lfw_image

pytestmark = pytest.mark.usefixtures("face_weights")


def _mosaic(*images: np.ndarray) -> np.ndarray:
    """Tile 250 x 250 LFW photos two per row."""
    rows = [np.concatenate(images[i:i + 2], axis=1) for i in range(0, len(images), 2)]
    return np.concatenate(rows, axis=0)


def test_detect_one_face_in_lfw_photo():
    faces = cnnkit.detect_faces(lfw_image("Aaron_Eckhart", 1))
    assert len(faces) >= 1
    face = faces[0]
    cx, cy = face.center
    assert abs(cx - 125) < 20 and abs(cy - 125) < 25  # LFW centres the face of interest
    assert face.score > 0.95 and 60 < face.width < 160
    (lex, ley), (rex, rey), (nx, ny), (_mlx, mly), (_mrx, mry) = face.landmarks
    assert lex < nx < rex and max(ley, rey) < ny < min(mly, mry)


def test_many_faces_and_no_face():
    people = [("Aaron_Eckhart", 1), ("Abdullah_Gul", 1), ("Ai_Sugiyama", 1), ("Adrien_Brody", 1)]
    mosaic = _mosaic(*[cnnkit.load_image(lfw_image(n, k)) for n, k in people])
    faces = cnnkit.detect_faces(mosaic)
    centres = {(int(f.center[0] // 250), int(f.center[1] // 250)) for f in faces if f.score > 0.95}
    assert centres == {(0, 0), (1, 0), (0, 1), (1, 1)}
    flat = np.full((300, 300, 3), 128, dtype=np.uint8)
    assert cnnkit.detect_faces(flat) == []
    assert cnnkit.encode_faces(flat) == []


def test_batch_equals_single():
    paths = [lfw_image("Aaron_Eckhart", 1), lfw_image("Abdullah_Gul", 2)]
    batch = cnnkit.encode_faces(paths)
    for path, faces in zip(paths, batch):
        single = cnnkit.encode_faces(path)
        assert len(single) == len(faces)
        # The photos share the detector's batch: oneDNN picks other kernels for another batch size, which
        # moves the landmarks by ~1e-3 px and SFace's unit-length embeddings by up to ~3e-4; a wrong chip
        # or face moves them by ~0.1.
        np.testing.assert_allclose(single[0].embedding, faces[0].embedding, atol=1e-3)


def test_same_person_is_closer_than_threshold_and_strangers_are_not():
    a1 = cnnkit.encode_faces(lfw_image("Abdullah_Gul", 1))[0].embedding
    a2 = cnnkit.encode_faces(lfw_image("Abdullah_Gul", 3))[0].embedding
    b = cnnkit.encode_faces(lfw_image("Aaron_Eckhart", 1))[0].embedding
    c = cnnkit.encode_faces(lfw_image("Ai_Sugiyama", 1))[0].embedding
    assert a1.shape == (128,) and a1.dtype == np.float32
    distances = cnnkit.face_distance([a2, b, c], a1)
    assert distances[0] < default_threshold() < min(distances[1], distances[2])
    assert cnnkit.compare_faces([a2, b, c], a1).tolist() == [True, False, False]
    assert cnnkit.compare_faces([a2], a1, threshold=0.01).tolist() == [False]
    assert cnnkit.face_distance([], a1).shape == (0,)


def test_align_faces_puts_landmarks_on_the_template():
    image = cnnkit.load_image(lfw_image("Aaron_Eckhart", 1))
    faces = cnnkit.detect_faces(image)[:1]
    chips = cnnkit.align_faces(image, faces, encoder="dlib-resnet-v1")
    assert chips.shape == (1, 150, 150, 3) and chips.dtype == np.uint8
    assert cnnkit.align_faces(image, faces).shape == (1, 112, 112, 3)  # the default encoder's (SFace) chip
    # The chip's map sends the template to (close to) the detected landmarks.
    chip_to_image = chip_transforms(faces[0].landmarks[None])[0]
    template_px = DLIB_CHIP_TEMPLATE * 149
    mapped = template_px @ chip_to_image[:, :2].T + chip_to_image[:, 2]
    assert np.abs(mapped - faces[0].landmarks).max() < 8
    # and the landmarks found again on the chip sit near the template
    again = cnnkit.detect_faces(np.ascontiguousarray(chips[0]))
    assert again and np.abs(again[0].landmarks - template_px).max() < 8


def test_flip_changes_little_and_is_the_default():
    path = lfw_image("Aaron_Eckhart", 1)
    with_flip = cnnkit.encode_faces(path)[0].embedding
    without = cnnkit.encode_faces(path, flip=False)[0].embedding
    assert 0.0 < np.linalg.norm(with_flip - without) < 0.3


def test_similarity_transform_recovers_a_known_map():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rot.T + shift
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-9)
    with pytest.raises(ValueError):
        similarity_transform(src[:1], dst[:1])
