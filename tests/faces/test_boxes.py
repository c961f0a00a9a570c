"""Tests for cnnkit.faces.boxes against plain-Python references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnkit.faces import boxes as B


def _random_boxes(n: int, gen: torch.Generator, spread: float = 60.0) -> torch.Tensor:
    """Clustered random boxes so that many overlap (float64)."""
    centres = torch.rand(n, 2, generator=gen, dtype=torch.float64) * spread
    sizes = 5 + torch.rand(n, 2, generator=gen, dtype=torch.float64) * 30
    return torch.cat([centres - sizes / 2, centres + sizes / 2], dim=1)


def _overlap_py(a: list[float], b: list[float], mode: str) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    denom = area_a + area_b - inter if mode == "union" else min(area_a, area_b)
    return inter / denom if denom > 0 else 0.0


def _nms_py(boxes: list[list[float]], scores: list[float], thr: float, mode: str) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        if all(_overlap_py(boxes[i], boxes[k], mode) <= thr for k in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("mode", ["union", "min"])
@pytest.mark.parametrize("n", [0, 1, 2, 37, 300])
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_bruteforce(mode: str, n: int, thr: float) -> None:
    gen = torch.Generator().manual_seed(n * 31 + int(thr * 10))
    boxes = _random_boxes(n, gen)
    scores = torch.rand(n, generator=gen, dtype=torch.float64)
    got = B.nms(boxes, scores, thr, mode).tolist()
    assert got == _nms_py(boxes.tolist(), scores.tolist(), thr, mode)


@pytest.mark.parametrize("mode", ["union", "min"])
def test_nms_blocked_path_matches_bruteforce(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Shrink the block size and matrix budget so the blocked code paths run on small inputs.
    monkeypatch.setattr(B, "_NMS_BLOCK", 16)
    monkeypatch.setattr(B, "_NMS_MATRIX_BUDGET", 16 * 40)
    gen = torch.Generator().manual_seed(7)
    boxes = _random_boxes(250, gen, spread=150.0)
    scores = torch.rand(250, generator=gen, dtype=torch.float64)
    groups = torch.randint(0, 3, (250,), generator=gen)
    got = B.batched_nms(boxes, scores, groups, 0.4, mode).tolist()
    want: list[int] = []
    for g in range(3):
        idx = [i for i in range(250) if groups[i] == g]
        sub = _nms_py([boxes[i].tolist() for i in idx], [float(scores[i]) for i in idx], 0.4, mode)
        want += [idx[i] for i in sub]
    assert got == want


@pytest.mark.parametrize("mode", ["union", "min"])
def test_batched_nms_matches_per_group(mode: str) -> None:
    gen = torch.Generator().manual_seed(3)
    n = 400
    boxes = _random_boxes(n, gen)
    scores = torch.rand(n, generator=gen, dtype=torch.float64)
    # Uneven group sizes, ids not contiguous, one group of a single box.
    groups = torch.tensor([5] * 200 + [2] * 150 + [9] * 49 + [0])[torch.randperm(n, generator=gen)]
    got = B.batched_nms(boxes, scores, groups, 0.5, mode).tolist()
    want: list[int] = []
    for g in sorted(set(groups.tolist())):
        idx = [i for i in range(n) if groups[i] == g]
        sub = _nms_py([boxes[i].tolist() for i in idx], [float(scores[i]) for i in idx], 0.5, mode)
        want += [idx[i] for i in sub]
    assert got == want


def test_nms_float32_and_ties() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.5, 0.5, 0.9])
    assert B.nms(boxes, scores, 0.5).tolist() == [2, 0]


def test_pairwise_overlap_degenerate() -> None:
    a = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 2.0]])
    ov = B.pairwise_overlap(a, a, "min")
    assert torch.isfinite(ov).all()
    assert ov[1, 1] == 1.0 and ov[0, 0] == 0.0
    with pytest.raises(ValueError):
        B.pairwise_overlap(a, a, "max")  # type: ignore[arg-type]


def test_regression_square_clip() -> None:
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    moved = B.apply_box_regression(boxes, torch.tensor([[0.1, -0.25, 0.0, 0.5]]))
    assert torch.allclose(moved, torch.tensor([[12.0, 10.0, 30.0, 80.0]]))
    sq = B.square_boxes(boxes)
    assert torch.allclose(sq, torch.tensor([[0.0, 20.0, 40.0, 60.0]]))
    clipped = B.clip_boxes(torch.tensor([[-5.0, 3.0, 120.0, 90.0]]), 100, 80)
    assert clipped.tolist() == [[0.0, 3.0, 100.0, 80.0]]


def _bilinear_py(img: torch.Tensor, x: float, y: float) -> list[float]:
    """Bilinear read at continuous (x, y) (pixel centres at +0.5), zeros outside."""
    c, h, w = img.shape
    u, v = x - 0.5, y - 0.5
    x0, y0 = math.floor(u), math.floor(v)
    out = [0.0] * c
    for yy, wy in ((y0, 1 - (v - y0)), (y0 + 1, v - y0)):
        for xx, wx in ((x0, 1 - (u - x0)), (x0 + 1, u - x0)):
            if 0 <= xx < w and 0 <= yy < h:
                for ch in range(c):
                    out[ch] += wx * wy * float(img[ch, yy, xx])
    return out


def test_crop_and_resize_matches_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(3, 2, 20, 30, generator=gen, dtype=torch.float64)
    boxes = torch.tensor(
        [
            [2.0, 3.0, 12.0, 9.0],
            [-4.0, -2.0, 8.5, 7.0],
            [25.0, 15.0, 36.0, 24.0],
            [1.3, 0.7, 4.1, 3.3],
            [0, 0, 30, 20],
            [3.0, 12.0, 20.0, 31.0],  # runs off the bottom of image 0 (image 1 lies below it)
            [3.0, -12.0, 20.0, 6.0],  # runs off the top of image 1
            [-2.0, 18.7, 5.0, 21.2],  # straddles the bottom edge of image 1
        ],
        dtype=torch.float64,
    )
    idx = torch.tensor([0, 2, 2, 1, 0, 0, 1, 1])
    out = B.crop_and_resize(images, boxes, idx, (4, 5))
    assert out.shape == (8, 2, 4, 5)
    for k in range(8):
        x1, y1, x2, y2 = boxes[k].tolist()
        for i in range(4):
            for j in range(5):
                x = x1 + (j + 0.5) * (x2 - x1) / 5
                y = y1 + (i + 0.5) * (y2 - y1) / 4
                want = _bilinear_py(images[idx[k]], x, y)
                assert out[k, :, i, j].tolist() == pytest.approx(want, abs=1e-9)


def test_crop_and_resize_exact_cases() -> None:
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 40, 50, generator=gen)
    # Integer-aligned box at scale 1: a plain slice.
    out = B.crop_and_resize(images, torch.tensor([[7.0, 5.0, 19.0, 17.0]]), torch.tensor([1]), 12)
    torch.testing.assert_close(out[0], images[1, :, 5:17, 7:19])
    # Halving an aligned box: 2x2 average pooling.
    out = B.crop_and_resize(images, torch.tensor([[4.0, 6.0, 28.0, 30.0]]), torch.tensor([0]), 12)
    torch.testing.assert_close(out[0], F.avg_pool2d(images[0:1, :, 6:30, 4:28], 2)[0])
    # Outside the image: zeros.
    out = B.crop_and_resize(images, torch.tensor([[-20.0, -20.0, -8.0, -8.0]]), torch.tensor([0]), 6)
    assert out.abs().max() == 0
    # Empty input.
    assert B.crop_and_resize(images, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 8).shape == (0, 3, 8, 8)


def test_crop_and_resize_batch_equals_single() -> None:
    gen = torch.Generator().manual_seed(2)
    images = torch.rand(6, 1, 16, 16, generator=gen)
    boxes = torch.rand(10, 2, generator=gen) * 8
    boxes = torch.cat([boxes, boxes + 6], dim=1)
    idx = torch.tensor([4] * 9 + [0])
    out = B.crop_and_resize(images, boxes, idx, 5)
    stacked = B.stack_for_crops(images)
    torch.testing.assert_close(B.crop_and_resize(stacked, boxes, idx, 5, stacked=True), out)
    for k in range(10):
        single = B.crop_and_resize(images[idx[k] : idx[k] + 1], boxes[k : k + 1], torch.tensor([0]), 5)
        torch.testing.assert_close(out[k], single[0])


def test_crop_and_resize_pyramid_picks_levels() -> None:
    gen = torch.Generator().manual_seed(4)
    full = torch.rand(2, 3, 64, 64, generator=gen)
    half = F.avg_pool2d(full, 2)
    quarter = F.avg_pool2d(full, 4)
    levels = [full, half, quarter]
    boxes = torch.tensor([[0.0, 0.0, 64.0, 64.0], [8.0, 8.0, 24.0, 24.0], [4.0, 4.0, 12.0, 12.0]])
    idx = torch.tensor([1, 0, 1])
    out = B.crop_and_resize_pyramid(levels, boxes, idx, 8)
    # 64 px box -> quarter level (16 px >= 8); 16 px box -> half level (8 px); 8 px -> full.
    torch.testing.assert_close(out[0], B.crop_and_resize(quarter, boxes[:1] / 4, idx[:1], 8)[0])
    torch.testing.assert_close(out[1], B.crop_and_resize(half, boxes[1:2] / 2, idx[1:2], 8)[0])
    torch.testing.assert_close(out[2], B.crop_and_resize(full, boxes[2:], idx[2:], 8)[0])
