"""ONNX graphs run by PyTorch: each supported operation against onnxruntime, then the face encoders on LFW chips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.errors import WeightsError
from cnnkit.faces.recognizer import Recognizer, detect
from cnnkit.images import load_image
from cnnkit.runtime.onnx_graph import OnnxGraph, convert_onnx
from tests.conftest import lfw_image

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def session(path: str):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the encoders list their initializers as inputs; ort warns about each
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def tiny_model(path, rng) -> None:
    """Sub, Mul, Conv (grouped, strided, asymmetric pads) -> BatchNorm (folded), PRelu, Add, Flatten, Gemm, Dropout."""
    def const(name, array):
        return numpy_helper.from_array(np.asarray(array, np.float32), name)

    inits = [const("mean", [[[[127.5]]]]), const("scale", [[[[1 / 127.5]]]]),
             const("w1", rng.normal(size=(4, 3, 3, 3))), const("b1", rng.normal(size=4)),
             const("g", rng.uniform(0.5, 2, 4)), const("beta", rng.normal(size=4)),
             const("m", rng.normal(size=4)), const("v", rng.uniform(0.5, 2, 4)),
             const("slope", rng.uniform(0, 0.3, (4, 1, 1))),
             const("w2", rng.normal(size=(4, 1, 3, 3))), const("fc", rng.normal(size=(5, 4 * 4 * 4))),
             const("fcb", rng.normal(size=5))]
    nodes = [helper.make_node("Sub", ["x", "mean"], ["s"]), helper.make_node("Mul", ["s", "scale"], ["n"]),
             helper.make_node("Conv", ["n", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c1", "g", "beta", "m", "v"], ["bn"], epsilon=1e-3),
             helper.make_node("PRelu", ["bn", "slope"], ["p"]),
             helper.make_node("Conv", ["p", "w2"], ["c2"], group=4, pads=[0, 0, 2, 2]),
             helper.make_node("Add", ["c2", "p"], ["a"]), helper.make_node("Dropout", ["a"], ["d"]),
             helper.make_node("Flatten", ["d"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))


def test_every_operation_matches_onnxruntime(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.onnx"
    tiny_model(path, rng)
    graph = OnnxGraph(convert_onnx(str(path))).eval()
    assert [n["op"] for n in graph.nodes].count("BatchNormalization") == 0  # folded into the Conv before it
    x = rng.uniform(0, 255, (3, 3, 8, 8)).astype(np.float32)
    expected = session(str(path)).run(None, {"x": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(graph(torch.from_numpy(x)).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_prelu_broadcasts_as_onnx_does(tmp_path):
    """A slope of shape (W,) applies along the last axis (numpy's rule), not per channel."""
    slope = numpy_helper.from_array(np.array([0.1, 0.2, 0.3, 0.4], np.float32), "s")
    graph = helper.make_graph([helper.make_node("PRelu", ["x", "s"], ["y"])], "p",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 4])], [slope])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(tmp_path / "p.onnx"))
    x = -np.ones((1, 2, 3, 4), np.float32)
    with torch.no_grad():
        ours = OnnxGraph(convert_onnx(str(tmp_path / "p.onnx")))(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, session(str(tmp_path / "p.onnx")).run(None, {"x": x})[0])


def test_unsupported_or_damaged_files_are_refused(tmp_path):
    node = helper.make_node("Softmax", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph), str(tmp_path / "softmax.onnx"))
    with pytest.raises(WeightsError, match="Softmax is not supported"):
        convert_onnx(str(tmp_path / "softmax.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="not a readable ONNX model"):
        convert_onnx(str(tmp_path / "junk.onnx"))


@pytest.mark.parametrize("name, scale", [("sface-2021dec", None), ("w600k-mbf", 127.5)])
def test_face_encoders_match_onnxruntime_on_real_chips(name, scale, raw_weights, face_weights):
    from cnnkit.weights import fetch, load_model

    (member,) = raw_weights(name)
    fetch(name, source=member)
    images = [load_image(lfw_image(*who)) for who in (("Serena_Williams", 1), ("Colin_Powell", 2), ("Ai_Sugiyama", 1))]
    recognizer = Recognizer(name, device="cpu", flip=False)
    chips = torch.cat([recognizer.chips(image, detect([image], device="cpu")[0][:1]) for image in images])
    with torch.no_grad():
        ours = load_model(name, "cpu")(chips).numpy()
    sess = session(str(member))
    feed = chips.numpy() if scale is None else (chips.numpy() - scale) / scale
    theirs = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: feed[i:i + 1]})[0] for i in range(len(feed))])
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() >= 0.9999, cosine
