"""`cnnkit demo`: face verification on real LFW photos."""

from __future__ import annotations

import pytest

from tests.cli.conftest import run
from tests.conftest import LFW, lfw_image


@pytest.mark.usefixtures("face_weights")
def test_demo_runs_on_lfw(capsys, tmp_path):
    lfw_image("Aaron_Eckhart", 1)
    out_png = tmp_path / "demo.png"
    code, out, _ = run(capsys, "demo", "--lfw", str(LFW), "--people", "2", "-o", str(out_png))
    assert code == 0 and "pairs decided correctly" in out
    assert out_png.stat().st_size > 10_000
