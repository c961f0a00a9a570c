"""Receptive fields from layer arithmetic against a brute-force gradient check on small random networks."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.faces.encoder import DlibResNet, _Residual
from cnnkit.visualize.receptive import Axis, ReceptiveField, UntraceableModelError, trace, trace_receptive_fields


class Residual(nn.Module):
    """x + conv(act(conv(x))), same size (a torchvision-style basic block without batch norm)."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        pad = (kernel // 2) * dilation
        self.a = nn.Conv2d(channels, channels, kernel, padding=pad, dilation=dilation)
        self.b = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return F.leaky_relu(x + self.b(F.leaky_relu(self.a(x), 0.1)), 0.1)


class Padded(nn.Module):
    """F.pad by an asymmetric amount, then a convolution (functional padding shifts the field)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3)

    def forward(self, x):
        return self.conv(F.pad(x, (2, 0, 1, 0)))


class Concat(nn.Module):
    """Two branches of different fields concatenated along channels (Inception-style)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 1)
        self.b = nn.Conv2d(channels, channels, 5, padding=2)
        self.merge = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x):
        return self.merge(torch.cat([self.a(x), self.b(x)], dim=1))


def random_network(seed: int) -> nn.Sequential:
    rng = random.Random(seed)
    c = 3
    layers: list[nn.Module] = []
    for _ in range(rng.randint(3, 6)):
        kind = rng.choice(["conv", "conv", "maxpool", "avgpool", "residual", "down", "pad", "concat"])
        if kind == "conv":
            k = rng.choice([1, 2, 3, 5])
            out = rng.choice([4, 6])
            layers += [nn.Conv2d(c, out, k, stride=rng.choice([1, 2]), padding=rng.randint(0, k // 2),
                                 dilation=rng.choice([1, 1, 2])), nn.LeakyReLU(0.1)]
            c = out
        elif kind == "maxpool":
            k = rng.choice([2, 3])
            layers.append(nn.MaxPool2d(k, stride=2, padding=rng.randint(0, k // 2)))
        elif kind == "avgpool":
            layers.append(nn.AvgPool2d(rng.choice([2, 3]), stride=rng.choice([1, 2]), padding=1))
        elif kind == "residual":
            layers.append(Residual(c, rng.choice([3, 5]), rng.choice([1, 2])))
        elif kind == "down":  # dlib's down-sampling block: strided conv + avg-pooled shortcut, zero-padded add
            layers.append(_Residual(c, c + 2, down=True))
            c += 2
        elif kind == "pad":
            layers.append(Padded(c))
        else:
            layers.append(Concat(c))
    net = nn.Sequential(*layers)
    torch.manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=1.0)
            nn.init.uniform_(module.bias, 0.5, 1.0)  # keeps most ReLUs of the dlib blocks open
    return net.eval()


def brute_force_box(net: nn.Module, size: int, row: int, col: int, trials: int = 16) -> tuple[int, int, int, int]:
    """Bounding box (top, left, bottom, right) of the input pixels whose gradient reaches unit (row, col)."""
    support = torch.zeros(size, size, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    for _ in range(trials):
        x = torch.randn(1, 3, size, size, generator=gen, dtype=torch.float64).requires_grad_(True)
        out = net.double()(x)
        # Max pooling passes gradient to one pixel of each window; a sum over channels and many random
        # inputs lets every pixel that can win, win at least once.
        (grad,) = torch.autograd.grad(out[0, :, row, col].sum(), x)
        support |= grad[0].abs().sum(0) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


@pytest.mark.parametrize("seed", range(12))
def test_random_networks_match_gradient_support(seed):
    net = random_network(seed)
    size = 40
    x = torch.randn(1, 3, size, size)
    traced = trace(net, {"out": net}, x)
    field = traced.fields["out"]
    h, w = net(x).shape[-2:]
    assert traced.shapes["out"][-2:] == (h, w)
    positions = sorted({(0, 0), (h - 1, w - 1), (h // 2, w // 3), (0, w - 1), (h - 1, 0)})
    supports = traced.support("out", [r for r, _ in positions], [c for _, c in positions])
    for (row, col), support in zip(positions, supports):
        assert brute_force_box(net, size, row, col) == tuple(support), (seed, net, row, col, field)
        # The arithmetic box (what patches are cut by) holds the support, and equals it inside the image
        # wherever no feature map is cut short near the unit.
        top, left, bottom, right = field.box(row, col)
        assert top <= support[0] and left <= support[1] and bottom >= support[2] and right >= support[3]
        if (row, col) == (0, 0):
            assert (max(top, 0), max(left, 0)) == tuple(support[:2])


def test_known_fields_of_vgg_and_dlib_layers():
    # VGG19: conv1_1 3, conv2_1 10, conv3_1 24, conv4_1 68, conv5_1 156 (textbook values).
    from cnnkit.style.vgg import VGG19Features

    vgg = VGG19Features()
    names = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    fields = trace_receptive_fields(vgg, {n: vgg.convs[n] for n in names}, torch.zeros(1, 3, 64, 64))
    assert [fields[n].size[0] for n in names] == [3, 10, 24, 68, 156]
    assert [fields[n].stride[0] for n in names] == [1, 2, 4, 8, 16]
    # dlib: 7x7/2 stem (no padding), 3x3/2 max pool, then residual blocks; blocks.0 sees 11 + 2 * 2 * 4 = 27.
    net = DlibResNet()
    fields = trace_receptive_fields(net, {"stem": net.stem, "b0": net.blocks[0], "b3": net.blocks[3], "fc": net.fc},
                                    torch.zeros(1, 3, 150, 150))
    assert fields["stem"] == ReceptiveField(Axis(2, 7, 0), Axis(2, 7, 0))
    assert fields["b0"] == ReceptiveField(Axis(4, 27, -8), Axis(4, 27, -8))
    assert fields["b3"].size == (83, 83) and fields["b3"].stride == (8, 8)
    assert fields["fc"].whole


def test_unsupported_operation_is_named():
    class Upsample(nn.Module):
        def forward(self, x):
            return F.interpolate(x, scale_factor=2.0, mode="nearest")

    net = nn.Sequential(nn.Conv2d(3, 4, 3), Upsample(), nn.Conv2d(4, 4, 3))
    with pytest.raises(UntraceableModelError, match="upsample"):
        trace_receptive_fields(net, {"2": net[2]}, torch.zeros(1, 3, 16, 16))


def test_layer_that_does_not_run_is_reported():
    net = nn.Sequential(nn.Conv2d(3, 4, 3))
    unused = nn.Conv2d(4, 4, 3)
    with pytest.raises(UntraceableModelError, match="did not run"):
        trace_receptive_fields(net, {"unused": unused}, torch.zeros(1, 3, 16, 16))
