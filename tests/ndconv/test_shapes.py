"""Shape arithmetic and the generic layers: the course's examples, parameter counts, 1D/2D/3D from one code."""

from __future__ import annotations

import pytest
import torch

from cnnkit.ndconv.layers import ResidualBlock, conv, count_parameters, global_pool, norm, pool
from cnnkit.ndconv.models import FramesAsChannels2D, PerFrame2D, ResNetConfig, ResNetND, build_model
from cnnkit.ndconv.shapes import conv_shape, parse_sizes, split_channels


def test_course_examples():
    # 2D: 14x14 * 5x5 -> 10x10; with 3 channels and 16 filters -> 10x10x16
    assert conv_shape((14, 14), 5).output_shape == (10, 10)
    rgb = conv_shape((14, 14), 5, in_channels=3, filters=16)
    assert rgb.output_shape == (10, 10, 16)
    assert rgb.parameters == 16 * (5 * 5 * 3 + 1) == 1216
    # 1D: 14 * 5 -> 10; with 16 filters 10x16
    assert conv_shape(14, 5).output_shape == (10,)
    one = conv_shape((14,), 5, filters=16)
    assert one.output_shape == (10, 16)
    assert one.parameters == 16 * (5 + 1) == 96
    # 3D: 14^3 * 5^3 -> 10^3; with 16 filters 10x10x10x16
    assert conv_shape((14, 14, 14), 5).output_shape == (10, 10, 10)
    three = conv_shape((14, 14, 14), 5, filters=16)
    assert three.output_shape == (10, 10, 10, 16)
    assert three.parameters == 16 * (125 + 1) == 2016


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("n,k,s,p,d", [(14, 5, 1, 0, 1), (14, 3, 2, 1, 1), (28, 3, 1, "same", 2), (9, 4, 3, 2, 1),
                                        (32, 7, 2, 3, 1)])
def test_formula_matches_pytorch(dim, n, k, s, p, d):
    """The arithmetic agrees with what PyTorch's own layers produce, and so do parameter counts."""
    shape = conv_shape((n,) * dim, k, in_channels=3, filters=4, stride=s, padding=p, dilation=d)
    layer = conv(dim, 3, 4, k, stride=s, padding=shape.padding, dilation=d)
    out = layer(torch.zeros(1, 3, *(n,) * dim))
    assert tuple(out.shape[2:]) == shape.output_spatial
    assert count_parameters(layer) == shape.parameters


def test_bad_shapes_name_the_problem():
    with pytest.raises(ValueError, match="kernel spans 15"):
        conv_shape(14, 15)
    with pytest.raises(ValueError, match="give 1 or 2"):
        conv_shape((14, 14), (5, 5, 5))
    with pytest.raises(ValueError, match="'valid' or 'same'"):
        conv_shape(14, 3, padding="full")
    with pytest.raises(ValueError, match="like 14x14x3"):
        parse_sizes("14xa")


def test_reading_the_course_notation():
    assert split_channels(parse_sizes("14x14x3")) == ((14, 14), 3)
    assert split_channels(parse_sizes("14")) == ((14,), 1)
    assert split_channels(parse_sizes("14x1"), 1) == ((14,), 1)
    assert split_channels(parse_sizes("14x14x14"), 3) == ((14, 14, 14), 1)
    assert split_channels(parse_sizes("14x14x14x1")) == ((14, 14, 14), 1)
    with pytest.raises(ValueError, match="at most 4"):
        split_channels((1, 2, 3, 4, 5))


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_factories_are_one_code_for_every_dim(dim):
    x = torch.randn(2, 3, *(8,) * dim)
    assert type(conv(dim, 3, 5, 3)).__name__ == f"Conv{dim}d"
    assert conv(dim, 3, 5, 3)(x).shape == (2, 5, *(8,) * dim)  # "auto" padding keeps the size
    assert norm(dim, 3)(x).shape == x.shape
    assert norm(dim, 3, kind="group", groups=3)(x).shape == x.shape
    assert pool(dim, kind="max")(x).shape == (2, 3, *(4,) * dim)
    assert global_pool(dim)(x).shape == (2, 3)
    block = ResidualBlock(dim, 3, 6, stride=2)
    assert block(x).shape == (2, 6, *(4,) * dim)


def test_bad_settings_name_the_choices():
    with pytest.raises(ValueError, match="1, 2 or 3"):
        conv(4, 1, 1, 3)
    with pytest.raises(ValueError, match="'batch', 'group', 'instance' or 'none'"):
        norm(2, 4, kind="layer")
    with pytest.raises(ValueError, match="'max' or 'avg'"):
        pool(1, kind="sum")
    with pytest.raises(ValueError, match="perframe2d"):
        build_model(ResNetConfig(dim=2, in_channels=1, num_classes=2), architecture="vit")


@pytest.mark.parametrize("dim,size", [(1, 128), (2, 32), (3, 16)])
def test_resnet_classifier_in_every_dim(dim, size):
    config = ResNetConfig(dim=dim, in_channels=2, num_classes=4, widths=(4, 8), side_features=3)
    model = ResNetND(config)
    out = model(torch.randn(5, 2, *(size,) * dim), torch.randn(5, 3))
    assert out.shape == (5, 4)
    assert ResNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="side features"):
        model(torch.randn(5, 2, *(size,) * dim))
    with pytest.raises(ValueError, match=f"a {dim}D network"):
        model(torch.randn(5, 2, *(size,) * (dim + 1)))


def test_frame_models_see_or_ignore_time():
    torch.manual_seed(0)
    clip = torch.randn(2, 1, 6, 16, 16)
    reversed_clip = clip.flip(2)
    per_frame = PerFrame2D(ResNetConfig(dim=2, in_channels=1, num_classes=4, widths=(4, 8))).eval()
    # averaging over frames: the order of frames cannot matter
    torch.testing.assert_close(per_frame(clip), per_frame(reversed_clip))
    early = FramesAsChannels2D(ResNetConfig(dim=2, in_channels=6, num_classes=4, widths=(4, 8))).eval()
    video3d = ResNetND(ResNetConfig(dim=3, in_channels=1, num_classes=4, widths=(4, 8))).eval()
    for model in (early, video3d):
        assert not torch.allclose(model(clip), model(reversed_clip))
