"""`cnnkit ndconv volumes ...`: one-line errors with exit status 2."""

from __future__ import annotations


def test_missing_model_is_one_line(cli, tmp_path):
    code, _, err = cli("volumes", "predict", str(tmp_path), "--model", str(tmp_path / "none.safetensors"))
    assert code == 2 and "no checkpoint" in err and err.count("\n") == 1 and "ndconv volumes train" in err


def test_bad_widths_are_one_line(cli, tmp_path):
    data = tmp_path / "volumes.npz"
    data.write_bytes(b"")  # found; the widths fail before it is read
    code, out, err = cli("volumes", "train", "--data", str(data), "--widths", "8,x", "--out", str(tmp_path / "m"))
    assert code == 2 and out == ""
    assert err == "cnnkit: error: --widths must be comma-separated integers such as 8,16,32, got '8,x'\n"


def test_predict_works_out_of_the_box_with_the_shipped_model(cli, tmp_path, monkeypatch):
    """Nothing trained in $CNNKIT_HOME: the checkpoint cnnkit ships answers, naming the class."""
    import json

    from tests.conftest import DATA

    monkeypatch.setenv("CNNKIT_HOME", str(tmp_path / "empty-home"))
    code, out, _ = cli("volumes", "predict", str(DATA / "volumes" / "stent.npz"), "--json", "--montage", "",
                       "--device", "cpu")
    (answer,) = json.loads(out)
    assert code == 0 and answer["class"] in ("normal", "hyperplasia") and len(answer["probabilities"]) == 2
    code, _, err = cli("volumes", "evaluate", "--model", str(tmp_path / "none.safetensors"))
    assert code == 2 and "train one with `cnnkit ndconv volumes train --out" in err
