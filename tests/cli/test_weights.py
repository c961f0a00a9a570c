"""`cnnkit weights list|fetch`: the registry and the cache, one-line errors."""

from __future__ import annotations

from tests.cli.conftest import run


def test_weights_list(capsys, face_weights):
    code, out, _ = run(capsys, "weights", "list")
    assert code == 0
    assert "dlib-resnet-v1" in out and "cached" in out and "face_recognition_models==0.3.0" in out


def test_unknown_weight_is_one_line_error(capsys):
    code, out, err = run(capsys, "weights", "fetch", "no-such-weight")
    assert code == 2 and out == ""
    assert err.startswith("cnnkit: error: unknown weight 'no-such-weight'") and err.count("\n") == 1
