"""`cnnkit faces embed`: JSON and text output, input order, failed inputs."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import run
from tests.conftest import lfw_image


@pytest.mark.usefixtures("face_weights")
def test_embed_json_keeps_input_order_and_reports_errors(capsys, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    good = lfw_image("Aaron_Eckhart", 1)
    code, out, _ = run(capsys, "faces", "embed", str(good), str(bad), str(good), "--json")
    assert code == 2  # one input failed: an error, as a missing file is everywhere
    data = json.loads(out)
    assert [d["image"] for d in data] == [str(good), str(bad), str(good)]
    assert "error" in data[1] and "not an image" in data[1]["error"]
    face = data[0]["faces"][0]
    assert len(face["embedding"]) == 128 and len(face["box"]) == 4 and len(face["landmarks"]) == 5
    same_again = data[2]["faces"][0]
    assert same_again["box"] == face["box"]
    # the same photo in another detector batch: the embedding moves by < 1e-3 (see tests/faces/test_api.py)
    assert max(abs(a - b) for a, b in zip(face["embedding"], same_again["embedding"])) < 1e-3


@pytest.mark.usefixtures("face_weights")
def test_embed_text_output(capsys):
    code, out, _ = run(capsys, "faces", "embed", str(lfw_image("Aaron_Eckhart", 1)))
    assert code == 0 and "1 face(s)" in out and "(128-D)" in out
