"""`cnnkit faces evaluate`: the report on a small pairs file, one-line errors."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import run
from tests.conftest import LFW, lfw_image


@pytest.mark.usefixtures("face_weights")
def test_evaluate_small_pairs_file(capsys, tmp_path):
    lfw_image("Abdullah_Gul", 1)  # skips without LFW
    rows = ["2\t2",
            "Abdullah_Gul\t1\t3", "Adrien_Brody\t1\t2",
            "Aaron_Eckhart\t1\tAi_Sugiyama\t1", "Abdullah_Gul\t2\tAdrien_Brody\t3",
            "Ai_Sugiyama\t1\t2", "Abdullah_Gul\t2\t4",
            "Adrien_Brody\t1\tAaron_Eckhart\t1", "Ai_Sugiyama\t2\tAbdullah_Gul\t1"]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(rows) + "\n")
    report, roc = tmp_path / "report.json", tmp_path / "roc.png"
    code, out, _ = run(capsys, "faces", "evaluate", "--pairs", str(pairs), "--images", str(LFW / "images"),
                       "--json", str(report), "--roc", str(roc))
    assert code == 0
    data = json.loads(report.read_text())
    for key in ("accuracy_mean", "accuracy_std", "auc", "eer", "tar_at_far_1e-3", "threshold", "pairs",
                "images", "faces_not_found", "images_per_second"):
        assert key in data and key in out
    assert data["pairs"] == 8 and data["images"] == 10 and data["faces_not_found"] == 0
    assert data["accuracy_mean"] == 1.0 and data["auc"] == 1.0
    assert roc.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_bad_paths_are_one_line_errors(capsys, tmp_path):
    code, _, err = run(capsys, "faces", "evaluate", "--pairs", str(tmp_path / "nope.txt"), "--images", str(tmp_path))
    assert code == 2 and "cannot read pairs file" in err and err.count("\n") == 1
