"""`cnnkit visualize` on the real VGG19 and face encoder, and the errors a user can cause."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnkit.errors import (
    ImageTooSmallError,
    LayerNotFoundError,
    NoImagesError,
    UntraceableModelError,
)
from cnnkit.visualize import TopPatches, list_images
from cnnkit.visualize.hooks import run_captured
from tests.cli.conftest import run
from tests.conftest import DATA, lfw_image

STYLE_DIR = DATA / "style"


@pytest.fixture(scope="module")
def photos():
    paths = [lfw_image("Aaron_Eckhart", 1), lfw_image("Abdullah_Gul", 1), lfw_image("Abdullah_Gul", 2),
             lfw_image("Adrien_Brody", 1)]
    if not STYLE_DIR.exists():
        pytest.skip(f"paintings not available at {STYLE_DIR}")
    return [str(p) for p in paths] + [str(STYLE_DIR / "starry_night.jpg")]


def check_activations(finder: TopPatches, result) -> None:
    """Each patch's activation is the unit's value at its position when the view is made again."""
    for name, lp in result.layers.items():
        for unit, patches in lp.units.items():
            for patch in patches:
                view = finder.view_of(result, patch.image_id)
                x = finder.model.to_input(torch.from_numpy(np.array(view[None])).permute(0, 3, 1, 2).float())
                with torch.no_grad():
                    out = run_captured(finder.model.run, x, {name: finder.modules[name]})[name]
                value = finder.model.activation(name, out)[0, unit, patch.position[0], patch.position[1]]
                assert float(value) == pytest.approx(patch.activation, rel=1e-4, abs=1e-4)


@pytest.mark.usefixtures("vgg_weights")
def test_cli_vgg19_report_and_resume(capsys, tmp_path, photos):
    out = tmp_path / "report"
    argv = ["visualize", "--model", "vgg19", "--layers", "conv1_1,conv2_1", "--images", *photos,
            "--units", "0,5-6", "--top", "2", "--size", "64", "-o", str(out), "--cell", "32"]
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    assert stdout.strip() == str(out / "index.html")
    data = json.loads((out / "result.json").read_text())
    assert data["images_seen"] == 5 and data["view"] == {"kind": "resize-crop", "size": 64}
    assert data["layers"]["conv2_1"]["receptive_field"]["size"] == [10, 10]
    for layer, side in (("conv1_1", 3), ("conv2_1", 10)):
        units = data["layers"][layer]["units"]
        assert list(units) == ["0", "5", "6"]
        for patches in units.values():
            assert len(patches) == 2 and patches[0]["activation"] >= patches[1]["activation"]
            for p in patches:
                top, left, bottom, right = p["box"]
                assert (bottom - top, right - left) == (side, side)
        grid = Image.open(out / f"{layer}.png")
        assert grid.height > 3 * 32  # a row per unit
    page = (out / "index.html").read_text()
    assert page.count("<area ") == 2 * 3 * 2
    assert re.search(r'href="[^"]*Abdullah_Gul_0001.jpg"|href="[^"]*starry_night.jpg"', page)
    # Resuming a finished run redoes nothing and gives the same answer.
    code, _, _ = run(capsys, *argv, "--resume")
    assert code == 0 and json.loads((out / "result.json").read_text())["layers"] == data["layers"]


@pytest.mark.usefixtures("vgg_weights")
def test_vgg19_activations_are_the_units_values(photos):
    finder = TopPatches("vgg19", ["conv2_1"], units=[3, 60], top=3, size=48)
    check_activations(finder, finder.find(photos))


@pytest.mark.usefixtures("face_weights")
def test_face_encoder_on_lfw_skips_images_without_a_face(photos):
    finder = TopPatches("face-encoder", ["stem", "blocks.0"], units=2, top=3)
    result = finder.find(photos)
    assert list(result.skipped) == [photos[-1]] and result.skipped[photos[-1]] == "no face found"
    assert finder.fields["blocks.0"].size == (27, 27)
    patches = result.layers["blocks.0"].units[1]
    assert len(patches) == 3 and {p.image_id for p in patches} <= {0, 1, 2, 3}
    for p in patches:  # the box lies on the face, inside the 250x250 LFW photo
        x0, y0, x1, y1 = p.source_box
        assert -30 < x0 < x1 < 280 and -30 < y0 < y1 < 280
    check_activations(finder, result)


def test_unknown_layer_lists_the_valid_ones(capsys, tmp_path, vgg_weights, photos):
    code, out, err = run(capsys, "visualize", "--model", "vgg19", "--layers", "conv1_1,conv9_9",
                         "--images", photos[0], "-o", str(tmp_path))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "no layer 'conv9_9'" in err and "conv5_4" in err
    with pytest.raises(LayerNotFoundError, match="valid layers: 0, 1"):
        TopPatches(nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU()), ["features.0"], size=16)


def test_folder_without_images(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    code, _, err = run(capsys, "visualize", "--images", str(tmp_path), "-o", str(tmp_path / "out"))
    assert code == 2 and "no image files" in err and err.count("\n") == 1
    with pytest.raises(NoImagesError, match="no such file"):
        list_images([tmp_path / "missing"])


def test_image_smaller_than_the_receptive_field(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 2, 5), nn.MaxPool2d(2), nn.Conv2d(2, 2, 5))  # field 14x14
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(small)
    finder = TopPatches(net, ["2"], size=32)
    assert finder.fields["2"].size == (14, 14)
    with pytest.raises(ImageTooSmallError, match=r"small.png: 12x10 pixels is smaller than the receptive field"):
        finder.find([str(small)])
    with pytest.raises(ImageTooSmallError, match="use a larger size"):
        TopPatches(net, ["2"], size=8)


def test_model_that_cannot_be_traced():
    class Upsampling(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)
            self.head = nn.Conv2d(2, 2, 3)

        def forward(self, x):
            return self.head(nn.functional.interpolate(self.conv(x), scale_factor=2.0))

    with pytest.raises(UntraceableModelError, match="cannot compute receptive fields through the operation"):
        TopPatches(Upsampling(), ["head"], size=32)
    flat = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 14 * 14, 4))
    with pytest.raises(UntraceableModelError, match="not a feature map"):
        TopPatches(flat, ["2"], size=16)


def test_bad_settings_name_the_choices(capsys, tmp_path, photos):
    code, _, err = run(capsys, "visualize", "--model", "alexnet", "--images", photos[0], "-o", str(tmp_path))
    assert code == 2 and "vgg19, face-encoder" in err
    net = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match="unit ids must lie in 0..3"):
        TopPatches(net, ["0"], units=[2, 9], size=16)
    with pytest.raises(ValueError, match="'all', a count N or unit ids"):
        TopPatches(net, ["0"], units="some", size=16)
