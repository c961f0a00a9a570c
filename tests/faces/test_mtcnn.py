"""Tests for the MTCNN face detector (cnnkit.faces.mtcnn).

Tests that need the pretrained networks take facenet-pytorch's original ``pnet.pt``,
``rnet.pt``, ``onet.pt`` from the ``raw_weights`` fixture (downloaded with pip once); the
LFW tests are skipped when the LFW images are absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.faces.mtcnn import MTCNN, Detections, ONet, PNet, RNet, state_dict_from_facenet_pt
from tests.conftest import LFW

LFW_DIR = LFW / "images"
LFW_NAMES = ["George_W_Bush", "Colin_Powell", "Serena_Williams", "Hugo_Chavez", "Jennifer_Lopez", "Junichiro_Koizumi"]


@pytest.fixture(scope="module")
def weight_files(raw_weights) -> list[Path]:
    return raw_weights("mtcnn")


@pytest.fixture(scope="module")
def model(weight_files) -> MTCNN:
    net = MTCNN()
    net.load_state_dict(state_dict_from_facenet_pt(*weight_files))
    return net.eval()


def _lfw(name: str, number: int = 1) -> np.ndarray:
    from PIL import Image

    path = LFW_DIR / name / f"{name}_{number:04d}.jpg"
    if not path.is_file():
        pytest.skip(f"LFW image {path} not found")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def _astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


def _assert_plausible_landmarks(det: Detections, i: int) -> None:
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = det.landmarks[i].tolist()
    x1, y1, x2, y2 = det.boxes[i].tolist()
    assert lex < rex and lmx < rmx, "left/right swapped"
    assert max(ley, rey) < ny < min(lmy, rmy), "eyes above nose above mouth"
    assert lex < nx < rex, "nose between the eyes"
    w, h = x2 - x1, y2 - y1
    pts = det.landmarks[i]
    assert (pts[:, 0] > x1 - 0.1 * w).all() and (pts[:, 0] < x2 + 0.1 * w).all()
    assert (pts[:, 1] > y1 - 0.1 * h).all() and (pts[:, 1] < y2 + 0.1 * h).all()


# --------------------------------------------------------------------------------------
# no weights needed


def test_network_shapes() -> None:
    with torch.inference_mode():
        prob, reg = PNet().eval()(torch.randn(2, 3, 30, 41))
        assert prob.shape == (2, 10, 16) and reg.shape == (2, 4, 10, 16)
        prob, reg = PNet().eval()(torch.randn(1, 3, 12, 12))
        assert prob.shape == (1, 1, 1)
        prob, reg = RNet().eval()(torch.randn(5, 3, 24, 24))
        assert prob.shape == (5,) and reg.shape == (5, 4)
        prob, reg, marks = ONet().eval()(torch.randn(3, 3, 48, 48))
        assert prob.shape == (3,) and reg.shape == (3, 4) and marks.shape == (3, 10)
        assert ((prob >= 0) & (prob <= 1)).all()


@pytest.mark.parametrize("shape", [(2, 5, 8, 6), (1, 3, 7, 10), (2, 4, 9, 9)])
def test_fast_pools_match_max_pool(shape: tuple[int, int, int, int]) -> None:
    from cnnkit.faces.mtcnn import _max_pool_2x2, _prelu

    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(_max_pool_2x2(x), torch.nn.functional.max_pool2d(x, 2, 2, ceil_mode=True))
    w = torch.randn(shape[1])
    torch.testing.assert_close(_prelu(x, w), torch.nn.functional.prelu(x.contiguous(), w))


def test_input_validation_without_weights() -> None:
    m = MTCNN()
    with pytest.raises(TypeError):
        m.detect([np.zeros((30, 30, 3), np.float32)])
    with pytest.raises(ValueError):
        m.detect([np.zeros((30, 30, 2), np.uint8)])
    with pytest.raises(ValueError):
        m.detect([np.zeros((30, 30, 3), np.uint8)], scale_factor=1.0)
    # tiny images: nothing to scan, no error
    assert [len(d) for d in m.detect([np.zeros((8, 9, 3), np.uint8)])] == [0]
    assert m.detect([]) == []


def test_state_dict_from_facenet_pt(tmp_path: Path, weight_files: list[Path]) -> None:
    pnet, rnet, onet = weight_files
    sd = state_dict_from_facenet_pt(pnet, rnet, onet)
    assert {k.split(".")[0] for k in sd} == {"pnet", "rnet", "onet"}
    m = MTCNN()
    m.load_state_dict(sd, strict=True)
    assert all(v.dtype == torch.float32 for v in sd.values())
    bad = tmp_path / "pnet.pt"
    bad.write_bytes(pnet.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="sha256"):
        state_dict_from_facenet_pt(bad, rnet, onet)


# --------------------------------------------------------------------------------------
# real photographs


def test_astronaut_one_face(model: MTCNN) -> None:
    det = model.detect([_astronaut()])[0]
    # The face is about 85 px wide, around (222, 118).
    assert len(det) >= 1
    x1, y1, x2, y2 = det.boxes[0].tolist()
    assert det.scores[0] > 0.99
    assert abs((x1 + x2) / 2 - 222) < 15 and abs((y1 + y2) / 2 - 118) < 20
    assert 60 < x2 - x1 < 120
    _assert_plausible_landmarks(det, 0)
    # At the default 20 px minimum this detector also reports a 30 px, ~0.87 box on a
    # latch of the suit's neck ring (the reference implementation rejects that one by a
    # small margin, while making more such errors elsewhere; see the benchmark notes).
    # Every face of at least 40 px: exactly one.
    assert len(model.detect([_astronaut()], min_face_size=40)[0]) == 1
    others = det.boxes[1:]
    assert ((others[:, 2] - others[:, 0]) < 40).all()


def test_lfw_centre_face(model: MTCNN) -> None:
    images = [_lfw(n) for n in LFW_NAMES]
    for name, det in zip(LFW_NAMES, model.detect(images)):
        assert len(det) >= 1, name
        centres = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2
        dist = np.hypot(centres[:, 0] - 125, centres[:, 1] - 125)
        i = int(np.argmin(dist))
        assert dist[i] < 30, name
        assert det.scores[i] > 0.9, name
        _assert_plausible_landmarks(det, i)
        assert det.boxes.dtype == np.float32 and det.landmarks.shape == (len(det), 5, 2)


@pytest.mark.parametrize("kind", ["brick", "grey", "noise"])
def test_no_face_images(model: MTCNN, kind: str) -> None:
    if kind == "brick":
        skimage_data = pytest.importorskip("skimage.data")
        img = np.repeat(skimage_data.brick()[:, :, None], 3, axis=2)
    elif kind == "grey":
        img = np.full((300, 400, 3), 128, np.uint8)
    else:
        img = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    det = model.detect([img])[0]
    assert len(det) == 0
    assert det.boxes.shape == (0, 4) and det.scores.shape == (0,) and det.landmarks.shape == (0, 5, 2)


def test_mosaic_four_faces(model: MTCNN) -> None:
    tiles = [_lfw(n) for n in LFW_NAMES[:4]]
    mosaic = np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)
    assert mosaic.shape == (500, 500, 3)
    det = model.detect([mosaic])[0]
    assert len(det) == 4
    centres = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2
    quadrants = {(int(cy // 250), int(cx // 250)) for cx, cy in centres}
    assert quadrants == {(0, 0), (0, 1), (1, 0), (1, 1)}
    for i in range(4):
        _assert_plausible_landmarks(det, i)


def _assert_same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.05)


def test_batched_equals_single(model: MTCNN) -> None:
    images = [_lfw(n) for n in LFW_NAMES[:4]] + [_astronaut(), _lfw("Tony_Blair")]
    batched = model.detect(images)
    for img, det in zip(images, batched):
        _assert_same(det, model.detect([img])[0])
    # Small pixel budget: every image in its own chunk.
    for a, b in zip(model.detect(images, max_batch_pixels=1), batched):
        _assert_same(a, b)


def test_input_forms(model: MTCNN) -> None:
    img = _lfw("Colin_Powell")
    want = model.detect([img])[0]
    _assert_same(model.detect(img)[0], want)  # a lone image
    _assert_same(model.detect([torch.from_numpy(img)])[0], want)  # tensor
    _assert_same(model.detect(np.stack([img, img]))[1], want)  # B x H x W x 3 array
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    _assert_same(model.detect([rgba])[0], want)
    from PIL import Image

    _assert_same(model.detect([Image.fromarray(img)])[0], want)
    grey = model.detect([img.mean(axis=2).astype(np.uint8)])[0]
    assert len(grey) >= 1


def test_refine(model: MTCNN) -> None:
    img = _lfw("Hugo_Chavez")
    det = model.detect([img])[0]
    i = int(np.argmax(det.scores))
    loose = det.boxes[i] + np.array([-12, -8, 10, 14], np.float32)
    far = np.array([0, 0, 40, 40], np.float32)
    out = model.refine(img, np.stack([loose, far]))
    assert len(out) == 2 and out.landmarks.shape == (2, 5, 2)
    assert out.scores[0] > 0.9 and out.scores[1] < 0.5
    assert np.abs(out.landmarks[0] - det.landmarks[i]).max() < 4.0
    _assert_plausible_landmarks(out, 0)
    assert len(model.refine(img, np.zeros((0, 4)))) == 0
    no_rnet = model.refine(img, loose[None], use_rnet=False)
    assert np.abs(no_rnet.landmarks[0] - det.landmarks[i]).max() < 8.0
