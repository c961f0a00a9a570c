"""One face path: every entry point gives the same embedding for the same photo, with a 150 px and a 96 px encoder."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from cnnkit.faces.align import chip_transforms, image_to_tensor, warp_chips
from cnnkit.faces.api import encode_faces
from cnnkit.faces.architectures import SmallResNet
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.models import DEFAULT_ENCODER, load_encoder
from cnnkit.faces.pipeline import embed_images
from cnnkit.faces.recognizer import Recognizer, detect, run_encoder
from cnnkit.faces.templates import ARCFACE_TEMPLATE, DLIB_CHIP_TEMPLATE
from cnnkit.faces.train.checkpoint import save_encoder
from cnnkit.faces.types import Face
from cnnkit.faces.video import Watcher, WatchSettings
from cnnkit.faces.video.sources import ArraySource
from cnnkit.images import load_image
from cnnkit.service.engine import FaceEngine
from tests.conftest import lfw_image

TOLERANCE = 1e-3  # embeddings are unit-scale; batch size and thread count alone move an element by up to
# ~3e-4 (seen in a full run), a wrong chip size or template by far more


@pytest.fixture(scope="module")
def small_encoder(tmp_path_factory) -> str:
    """A 96 px small-resnet with seeded random weights, saved as `cnnkit faces train` saves one."""
    torch.manual_seed(0)
    model = SmallResNet(width=8, embedding_dim=32).eval()
    folder = tmp_path_factory.mktemp("enc") / "small96"
    save_encoder(folder, model, architecture="small-resnet", arguments={"width": 8, "embedding_dim": 32},
                 embedding_dim=32, chip_size=96, extra={"threshold": 0.5})
    return str(folder)


def by_hand(image: np.ndarray, face: Face, encoder: str, size: int, template: np.ndarray = DLIB_CHIP_TEMPLATE,
            unit: bool = False) -> np.ndarray:
    """The embedding written out step by step: a `size` px chip on `template`, flip-averaged encoder pass."""
    transform = chip_transforms(face.landmarks[None], size=size, template=template)
    chip = warp_chips(image_to_tensor(image), transform, size).floor()
    out = run_encoder(load_encoder("cpu", encoder), chip, flip=True)[0]
    return out / np.linalg.norm(out) if unit else out


@pytest.mark.parametrize("which", ["sface", "dlib", "small96"])
def test_every_entry_point_gives_the_same_embedding(which, small_encoder, face_weights, tmp_path):
    encoder, size, template, unit = {
        "sface": (DEFAULT_ENCODER, 112, ARCFACE_TEMPLATE, True),  # 112 px ArcFace chips, unit-length embeddings
        "dlib": ("dlib-resnet-v1", 150, DLIB_CHIP_TEMPLATE, False),
        "small96": (small_encoder, 96, DLIB_CHIP_TEMPLATE, False)}[which]
    path = lfw_image("Serena_Williams", 1)
    image = load_image(path)
    (face,) = detect([image], device="cpu")[0][:1]
    expected = by_hand(image, face, encoder, size, template, unit)

    got = {
        "recognizer": Recognizer(encoder, device="cpu").process([image])[0][0].embedding,
        "pipeline": next(embed_images([path], encoder=encoder, device="cpu")).faces[0].embedding,
        "api": encode_faces(path, encoder=encoder, device="cpu")[0].embedding,
    }
    engine = FaceEngine(device="cpu", encoder=encoder)
    got["service engine"] = engine._process([image])[0][0].embedding
    engine.start(warm=False)
    try:
        got["service engine, started"] = asyncio.run(engine.embed([image], timeout_s=30))[0][0].embedding
    finally:
        engine.stop()
    with Gallery(tmp_path / "g.db", create=True, device="cpu", encoder=encoder) as gallery:
        person = gallery.enroll("Serena", [path])
        got["gallery enroll"] = gallery.embeddings_of(person.id)[0]
        watched = [e for e in Watcher(gallery, WatchSettings(device="cpu")).run(ArraySource([image]))
                   if e["event"] == "identified"]
    for where, embedding in got.items():
        assert embedding.shape == expected.shape, where
        assert np.abs(embedding - expected).max() < TOLERANCE, where
    # The watcher finds the enrolled photo itself: its embedding is the stored one.
    assert watched and watched[0]["name"] == "Serena" and watched[0]["distance"] < TOLERANCE


def test_a_96px_encoder_is_not_fed_150px_chips(small_encoder, face_weights):
    """The size matters: chips cut at 150 px give another embedding than the encoder's own 96 px."""
    image = load_image(lfw_image("Serena_Williams", 1))
    (face,) = detect([image], device="cpu")[0][:1]
    recognizer = Recognizer(small_encoder, device="cpu")
    assert recognizer.chips(image, [face]).shape == (1, 3, 96, 96)
    right = recognizer.embed([image], [[face]])[0][0].embedding
    wrong = by_hand(image, face, small_encoder, 150)
    # The same chips agree to under 1e-3 (batch and thread noise); 150 px chips move it by about 0.02.
    assert np.linalg.norm(right - wrong) > 10 * TOLERANCE


# -- large photos: bounded detection (issue 19) ---------------------------------------------


def _large_portrait(scale: int) -> tuple[np.ndarray, np.ndarray]:
    """An LFW photo enlarged `scale` times on a plain canvas twice its size; (image, the photo alone)."""
    from PIL import Image

    small = load_image(lfw_image("Colin_Powell", 1))
    big = np.asarray(Image.fromarray(small).resize((250 * scale, 250 * scale), Image.BILINEAR))
    canvas = np.full((500 * scale, 500 * scale, 3), 128, np.uint8)
    canvas[100 * scale:350 * scale, 50 * scale:300 * scale] = big  # off centre
    return canvas, small


def test_large_photos_are_searched_on_a_bounded_copy_and_faces_come_back_in_their_pixels(face_weights,
                                                                                          monkeypatch):
    from cnnkit.faces import recognizer as R
    from cnnkit.faces.settings import DetectorSettings

    image, small = _large_portrait(12)  # 6000 x 6000 = 36 MP
    seen = []
    original = R.load_detector

    def spying(device):
        detector = original(device)

        class Spy:
            def detect(self, images, **kwargs):
                seen.extend(im.shape for im in images)
                return detector.detect(images, **kwargs)
        return Spy()

    monkeypatch.setattr(R, "load_detector", spying)
    (faces,) = detect([image], device="cpu")
    assert seen and seen[0][0] * seen[0][1] <= 2000 * 2000  # what the detector saw
    (reference,) = detect([small], device="cpu", settings=DetectorSettings(min_face_fraction=0.0))
    assert len(faces) == 1 and len(reference) == 1
    expected_box = np.array(reference[0].box) * 12 + np.array([50, 100, 50, 100]) * 12 + 5.5
    assert np.abs(np.array(faces[0].box) - expected_box).max() < 0.03 * 250 * 12
    expected_marks = (reference[0].landmarks + 0.5) * 12 - 0.5 + np.array([50, 100]) * 12
    assert np.abs(faces[0].landmarks - expected_marks).max() < 0.02 * 250 * 12  # within 2% of the face


@pytest.mark.parametrize("where", ["middle", "edge"])
def test_chips_cut_around_each_face_equal_chips_from_the_whole_image(face_weights, monkeypatch, where):
    from cnnkit.faces import recognizer as R

    image, _ = _large_portrait(5)  # 2500 x 2500
    if where == "edge":  # the face against the image's border: the outside is black either way
        image = np.ascontiguousarray(image[100 * 5 + 300:, 50 * 5 + 200:])
    recognizer = Recognizer(DEFAULT_ENCODER, device="cpu")
    (faces,) = recognizer.detect([image])
    assert faces
    monkeypatch.setattr(R, "CROP_CHIPS_FROM", 10**12)
    whole = recognizer.chips(image, faces)
    monkeypatch.setattr(R, "CROP_CHIPS_FROM", 0)
    cropped = recognizer.chips(image, faces)
    assert torch.equal(whole, cropped) or (whole - cropped).abs().max() <= 1.0  # floor() of equal floats
    assert (whole != cropped).float().mean() < 1e-3
