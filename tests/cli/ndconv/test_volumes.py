"""`cnnkit ndconv volumes ...`: one-line errors with exit status 2."""

from __future__ import annotations


def test_missing_model_is_one_line(cli, tmp_path):
    code, _, err = cli("volumes", "predict", str(tmp_path), "--model", str(tmp_path / "none.safetensors"))
    assert code == 2 and "no checkpoint" in err and err.count("\n") == 1


def test_bad_widths_are_one_line(cli, tmp_path):
    data = tmp_path / "volumes.npz"
    data.write_bytes(b"")  # found; the widths fail before it is read
    code, out, err = cli("volumes", "train", "--data", str(data), "--widths", "8,x", "--out", str(tmp_path / "m"))
    assert code == 2 and out == ""
    assert err == "cnnkit: error: --widths must be comma-separated integers such as 8,16,32, got '8,x'\n"
