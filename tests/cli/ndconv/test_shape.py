"""`cnnkit ndconv shape`: shape arithmetic output, one-line errors with exit status 2."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("argv,output,params", [
    (["--input", "14x14x3", "--kernel", "5", "--filters", "16"], [10, 10, 16], 1216),
    (["--input", "14x14", "--kernel", "5"], [10, 10], 26),
    (["--input", "14", "--kernel", "5"], [10], 6),
    (["--input", "14", "--kernel", "5", "--filters", "16"], [10, 16], 96),
    (["--input", "14x14x14", "--kernel", "5x5x5"], [10, 10, 10], 126),
    (["--input", "14x14x14", "--kernel", "5", "--dim", "3", "--filters", "16"], [10, 10, 10, 16], 2016),
    (["--input", "14x14x14x1", "--kernel", "5", "--filters", "16"], [10, 10, 10, 16], 2016),
    (["--input", "32x32x3", "--kernel", "3", "--filters", "8", "--stride", "2", "--padding", "1"], [16, 16, 8], 224),
    (["--input", "14x14x3", "--kernel", "3", "--filters", "8", "--padding", "same", "--dilation", "2"], [14, 14, 8],
     224),
])
def test_shape(cli, argv, output, params):
    code, out, _ = cli("shape", *argv, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["output"] == output and data["parameters"] == params


def test_shape_text(cli):
    code, out, _ = cli("shape", "--input", "14x14x3", "--kernel", "5", "--filters", "16")
    assert code == 0 and "output  10x10x16" in out and "params  1216" in out


def test_shape_errors_are_one_line(cli):
    code, out, err = cli("shape", "--input", "14", "--kernel", "15")
    assert code == 2 and out == ""
    assert err.startswith("cnnkit: error: kernel spans 15") and err.count("\n") == 1
    code, _, err = cli("shape", "--input", "14x14", "--kernel", "5x5x5")
    assert code == 2 and "3D input" in err
