"""MediaPipe's face mesh and iris models run by cnnkit's TF Lite reader, on real LFW photos; liveness on clips."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.faces.api import detect_faces
from cnnkit.faces.liveness import LivenessSettings, check_liveness
from cnnkit.faces.liveness.eyes import eye_openness
from cnnkit.faces.liveness.facemesh import MOUTH_CORNERS, NOSE_TIP, eye_contours, face_mesh
from cnnkit.faces.liveness.iris import eyelids, eyes_and_mouth
from cnnkit.faces.types import Face
from cnnkit.faces.video.clips import blink_clip, close_eyes, moving_clip, place, still_clip
from cnnkit.images import load_image
from tests.conftest import lfw_image
from tests.video_support import mesh_weights  # noqa: F401  (fixture)

PEOPLE = [("Aaron_Eckhart", 1), ("Serena_Williams", 1), ("George_W_Bush", 10)]


@pytest.mark.slow  # reading the flatbuffer in pure Python takes a few seconds
@pytest.mark.parametrize("weights, expected", [
    ("face-mesh", {"CONV_2D": 25, "DEPTHWISE_CONV_2D": 20, "PRELU": 23, "ADD": 20, "MAX_POOL_2D": 6, "PAD": 3,
                   "RESHAPE": 0}),
    ("mediapipe-iris", {"CONV_2D": 55, "DEPTHWISE_CONV_2D": 26, "PRELU": 53, "ADD": 26, "MAX_POOL_2D": 6, "PAD": 1,
                        "RESHAPE": 2}),
])
def test_the_converted_graph_has_every_operation_of_the_file(raw_weights, weights, expected):
    from cnnkit.faces.liveness.tflite_graph import OPS, convert_tflite

    state = convert_tflite(str(raw_weights(weights)[0]))
    ops = state["graph.ops"][:, 0].tolist()
    assert {name: ops.count(code) for name, code in OPS.items()} == expected


@pytest.mark.parametrize("name, number", PEOPLE)
def test_mesh_agrees_with_mtcnn_on_lfw(mesh_weights, name, number):
    image = load_image(lfw_image(name, number))
    face = detect_faces(image, device="cpu")[0]
    points, presence = face_mesh(image, [face])
    eyes = eye_contours(points)[0]
    five = np.stack([eyes[0].mean(0), eyes[1].mean(0), points[0, NOSE_TIP],
                     points[0, MOUTH_CORNERS[0]], points[0, MOUTH_CORNERS[1]]])
    iod = np.linalg.norm(face.landmarks[0] - face.landmarks[1])
    error = np.linalg.norm(five - face.landmarks, axis=1) / iod
    assert presence[0] > 0.9
    assert error.max() < 0.12, error


def test_mesh_says_no_face_on_a_wall(mesh_weights):
    from skimage import data

    wall = data.brick()
    wall = np.stack([wall] * 3, -1) if wall.ndim == 2 else wall
    fake = Face(box=(100, 100, 250, 250), score=1.0,
                landmarks=np.array([[140, 150], [210, 150], [175, 190], [150, 220], [200, 220]], np.float32))
    assert face_mesh(wall, [fake])[1][0] < 0.5


@pytest.mark.parametrize("name, number", PEOPLE)
def test_iris_model_lids_agree_with_the_mesh(mesh_weights, name, number):
    image = load_image(lfw_image(name, number))
    face = detect_faces(image, device="cpu")[0]
    points, _ = face_mesh(image, [face])
    lids = eyelids(image, points)[0]
    iod = np.linalg.norm(face.landmarks[0] - face.landmarks[1])
    assert np.linalg.norm(lids - eye_contours(points)[0], axis=-1).mean() / iod < 0.08


def test_eyes_edited_shut_read_as_closed(mesh_weights):
    image = place(load_image(lfw_image("Aaron_Eckhart", 1)), cx=320, cy=240, scale=1.6)
    face = detect_faces(image, device="cpu")[0]
    shut = close_eyes(image, eye_contours(face_mesh(image, [face])[0])[0], 1.0)
    before = eye_openness(*[v[0] for v in eyes_and_mouth(image, [face])])
    after = eye_openness(*[v[0] for v in eyes_and_mouth(shut, [detect_faces(shut, device="cpu")[0]])])
    assert after < 0.6 * before


@pytest.fixture(scope="module")
def aaron(mesh_weights):
    image = load_image(lfw_image("Aaron_Eckhart", 1))
    face = detect_faces(image, device="cpu")[0]
    return image, eye_contours(face_mesh(image, [face])[0])[0]


def test_liveness_rejects_a_still_photo_and_accepts_a_blink(aaron):
    image, eyes = aaron
    settings = LivenessSettings(time_limit=5.0)
    still = check_liveness(still_clip(image, frames=8), settings=settings, min_face_size=80, device="cpu")
    assert not still.live and still.checks["blink"]["lowest_fraction_of_open"] > 0.95
    blink = check_liveness(blink_clip(image, eyes, frames=16, blinks=(6,)), settings=settings, min_face_size=80,
                           device="cpu")
    assert blink.live and "blink" in blink.reason, blink


@pytest.mark.slow
def test_liveness_rejects_a_moving_photo(aaron):
    image, _ = aaron
    result = check_liveness(moving_clip(image, frames=50), settings=LivenessSettings(time_limit=5.0),
                            min_face_size=80, device="cpu")
    assert not result.live
