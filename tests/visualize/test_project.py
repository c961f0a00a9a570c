"""Deconvnet and guided-backprop projections against the same computed by hand, layer by layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.visualize.models import generic
from cnnkit.visualize.project import project, to_picture


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 2, 3)

    def forward(self, x):
        y = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        return F.relu_(self.conv2(y))


def by_hand(net: Small, x: torch.Tensor, unit: int, row: int, col: int, method: str) -> torch.Tensor:
    """Zeiler & Fergus's deconvnet / guided backprop written out: unpool with switches, ReLU, transposed conv."""
    with torch.no_grad():
        a1 = net.conv1(x)
        r1 = torch.relu(a1)
        pooled, switches = F.max_pool2d(r1, 2, return_indices=True)
        a2 = net.conv2(pooled)
        signal = torch.zeros_like(a2)
        signal[0, unit, row, col] = 1.0
        signal = torch.relu(signal) if method == "deconvnet" else torch.relu(signal) * (a2 > 0)
        down = F.conv_transpose2d(signal, net.conv2.weight)
        down = F.max_unpool2d(down, switches, 2, output_size=r1.shape[-2:])
        down = torch.relu(down) if method == "deconvnet" else torch.relu(down) * (a1 > 0)
        return F.conv_transpose2d(down, net.conv1.weight, padding=1)


@pytest.mark.parametrize("method", ["deconvnet", "guided"])
def test_projection_matches_hand_computation(method):
    net = Small().eval()
    model = generic(net, to_input=lambda p: p / 255.0)
    rng = np.random.default_rng(0)
    views = rng.integers(0, 256, size=(2, 12, 12, 3), dtype=np.uint8)
    positions = [(1, 2), (3, 0)]
    got = project(model, "conv2", 1, views, positions, method=method)
    for i, (row, col) in enumerate(positions):
        x = torch.from_numpy(views[i : i + 1]).permute(0, 3, 1, 2).float() / 255.0
        expected = by_hand(net, x, 1, row, col, method)[0].permute(1, 2, 0).numpy() / 255.0
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(got[i], expected, rtol=1e-4, atol=1e-7)
    # The ordinary gradient differs (deconvnet ignores the forward masks, guided adds the backward ones).
    plain = project(model, "conv2", 1, views, positions, method="gradient")
    assert not np.allclose(plain, got)


def test_picture_puts_zero_at_gray():
    pic = to_picture(np.array([[[-2.0, 0.0, 1.0]]]), clip_percentile=100)
    assert pic.tolist() == [[[1, 128, 191]]]
    assert to_picture(np.array([[[-2.0, 0.0, 1.0]]]), clip_percentile=0).tolist() == [[[0, 128, 255]]]
    assert (to_picture(np.zeros((2, 2, 3))) == 128).all()
    with pytest.raises(ValueError, match="deconvnet"):
        project(generic(Small()), "conv2", 0, np.zeros((1, 8, 8, 3), np.uint8), [(0, 0)], method="saliency")
