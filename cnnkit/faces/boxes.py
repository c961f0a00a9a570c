"""Bounding-box utilities on plain torch ops: overlap, NMS, regression, squaring, crops.

Boxes are ``(..., 4)`` tensors ``x1, y1, x2, y2`` in continuous pixel coordinates:
pixel ``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)``, so ``x2 - x1`` is the width
and the box ``(0, 0, W, H)`` is the whole image. (The MATLAB reference implementation of
MTCNN uses inclusive integer boxes whose width is ``x2 - x1 + 1``; with continuous
coordinates the ``+ 1`` disappears and the formulas below are otherwise the same.)

All functions are pure, work on any device and use plain torch ops (no torchvision).
Exact greedy NMS is computed without a Python loop over boxes (see
:func:`batched_nms`), and many crops from many images are cut with one ``grid_sample``
call (see :func:`stack_for_crops`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import SettingsError

__all__ = [
    "OverlapMode",
    "apply_box_regression",
    "batched_nms",
    "box_area",
    "clip_boxes",
    "crop_and_resize",
    "crop_and_resize_pyramid",
    "nms",
    "pairwise_overlap",
    "square_boxes",
    "stack_for_crops",
]

OverlapMode = Literal["union", "min"]
"""``"union"``: intersection over union; ``"min"``: intersection over the smaller area."""

# Upper bound on the number of entries of one overlap matrix built by the NMS routines
# (groups x n x n); larger problems are split into blocks.
_NMS_MATRIX_BUDGET = 1 << 18
# Groups with more boxes than this are handled by the blocked single-group routine.
_NMS_BLOCK = 1024


def box_area(boxes: Tensor) -> Tensor:
    """Area of ``(..., 4)`` boxes; inverted boxes have area 0."""
    w = (boxes[..., 2] - boxes[..., 0]).clamp(min=0)
    h = (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    return w * h


def pairwise_overlap(a: Tensor, b: Tensor, mode: OverlapMode = "union") -> Tensor:
    """Overlap of every box in ``a (..., N, 4)`` with every box in ``b (..., M, 4)``.

    Returns ``(..., N, M)``. ``mode="union"`` is IoU, ``mode="min"`` divides the
    intersection by the smaller of the two areas. A zero denominator gives overlap 0.
    """
    if mode not in ("union", "min"):
        raise SettingsError(f"mode must be 'union' or 'min', got {mode!r}")
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = box_area(a)[..., :, None]
    area_b = box_area(b)[..., None, :]
    if mode == "union":
        denom = area_a + area_b - inter
    else:
        denom = torch.minimum(area_a, area_b)
    return torch.where(denom > 0, inter / denom.clamp(min=torch.finfo(inter.dtype).tiny), 0.0)


def _keep_within_blocks(boxes: Tensor, valid: Tensor, threshold: float, mode: OverlapMode) -> Tensor:
    """Exact greedy NMS inside each of ``G`` padded groups of score-sorted boxes.

    ``boxes (G, N, 4)`` are sorted by decreasing score along ``N``; ``valid (G, N)`` marks
    real entries. Returns the keep mask ``(G, N)``.

    Instead of a sequential loop over boxes this iterates ``keep[i] = valid[i] and no kept
    j < i overlaps i`` from ``keep = valid`` until nothing changes. Entry ``i`` is final
    once all ``j < i`` are, so the iteration ends at the unique fixed point, which is the
    greedy answer; the number of rounds is the length of the longest suppression chain
    (a handful in practice), each one batched matrix product.
    """
    n = boxes.shape[1]
    if n == 0:
        return valid.clone()
    over = pairwise_overlap(boxes, boxes, mode) > threshold
    earlier = torch.ones(n, n, dtype=torch.bool, device=boxes.device).triu_(1)  # j < i
    over &= earlier
    over &= valid[:, :, None]
    over_f = over.to(boxes.dtype if boxes.is_floating_point() else torch.float32)
    keep = valid.clone()
    for _ in range(n + 1):
        suppressed = torch.bmm(keep.unsqueeze(1).to(over_f.dtype), over_f).squeeze(1) > 0
        new_keep = valid & ~suppressed
        if torch.equal(new_keep, keep):
            break
        keep = new_keep
    return keep


def _nms_sorted(boxes: Tensor, threshold: float, mode: OverlapMode) -> Tensor:
    """Keep mask for one group of boxes already sorted by decreasing score (blocked)."""
    n = boxes.shape[0]
    block = _NMS_BLOCK
    keep = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    kept_boxes = boxes.new_zeros((0, 4))
    for start in range(0, n, block):
        blk = boxes[start : start + block]
        alive = torch.ones(blk.shape[0], dtype=torch.bool, device=boxes.device)
        # Boxes overlapped by an already kept box from an earlier block are gone.
        step = max(1, _NMS_MATRIX_BUDGET // block)
        for k0 in range(0, kept_boxes.shape[0], step):
            ov = pairwise_overlap(blk, kept_boxes[k0 : k0 + step], mode)
            alive &= ~(ov > threshold).any(dim=1)
        blk_keep = _keep_within_blocks(blk[None], alive[None], threshold, mode)[0]
        keep[start : start + blk.shape[0]] = blk_keep
        kept_boxes = torch.cat([kept_boxes, blk[blk_keep]])
    return keep


def nms(boxes: Tensor, scores: Tensor, threshold: float, mode: OverlapMode = "union") -> Tensor:
    """Greedy non-maximum suppression.

    Visits boxes by decreasing score (ties: lower index first) and drops every box whose
    overlap with an already kept box is strictly greater than ``threshold``.

    Args:
        boxes: ``(N, 4)`` boxes.
        scores: ``(N,)`` scores.
        threshold: overlap above which a lower-scored box is suppressed.
        mode: ``"union"`` (IoU) or ``"min"`` (intersection over the smaller area).

    Returns:
        int64 indices of the kept boxes, by decreasing score.
    """
    return batched_nms(boxes, scores, torch.zeros_like(scores, dtype=torch.long), threshold, mode)


def batched_nms(
    boxes: Tensor, scores: Tensor, groups: Tensor, threshold: float, mode: OverlapMode = "union"
) -> Tensor:
    """:func:`nms` applied independently within each group (e.g. image index).

    Groups are processed side by side as a padded batch rather than with the coordinate
    offset trick, so no overlap between boxes of different groups is ever computed.

    Args:
        boxes: ``(N, 4)`` boxes.
        scores: ``(N,)`` scores.
        groups: ``(N,)`` integer group ids.
        threshold: overlap above which a lower-scored box of the same group is suppressed.
        mode: ``"union"`` or ``"min"``.

    Returns:
        int64 indices of the kept boxes, sorted by group id, then by decreasing score.
    """
    if mode not in ("union", "min"):
        raise SettingsError(f"mode must be 'union' or 'min', got {mode!r}")
    n = boxes.shape[0]
    device = boxes.device
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    sorted_boxes = boxes[order]
    _, counts_t = torch.unique_consecutive(groups[order], return_counts=True)
    counts = counts_t.tolist()
    starts = [0]
    for c in counts[:-1]:
        starts.append(starts[-1] + c)
    keep = torch.zeros(n, dtype=torch.bool, device=device)

    # Pack small groups into padded batches whose overlap tensor stays within budget;
    # groups bigger than a block go through the blocked routine one by one.
    small = [g for g, c in enumerate(counts) if c <= _NMS_BLOCK]
    small.sort(key=lambda g: counts[g])
    for g in range(len(counts)):
        if counts[g] > _NMS_BLOCK:
            s, c = starts[g], counts[g]
            keep[s : s + c] = _nms_sorted(sorted_boxes[s : s + c], threshold, mode)
    i = 0
    while i < len(small):
        j = i + 1
        while j < len(small) and (j + 1 - i) * counts[small[j]] ** 2 <= _NMS_MATRIX_BUDGET:
            j += 1
        chunk = small[i:j]
        i = j
        width = counts[chunk[-1]]
        if len(chunk) == 1:
            s = starts[chunk[0]]
            flat = torch.arange(s, s + width, device=device)
            row = torch.zeros(width, dtype=torch.long, device=device)
            col = torch.arange(width, device=device)
        else:
            chunk_counts = torch.tensor([counts[g] for g in chunk], device=device)
            chunk_starts = torch.tensor([starts[g] for g in chunk], device=device)
            row = torch.repeat_interleave(torch.arange(len(chunk), device=device), chunk_counts)
            first = torch.repeat_interleave(torch.cumsum(chunk_counts, 0) - chunk_counts, chunk_counts)
            col = torch.arange(row.shape[0], device=device) - first
            flat = chunk_starts[row] + col
        padded = sorted_boxes.new_zeros((len(chunk), width, 4))
        padded[row, col] = sorted_boxes[flat]
        valid = torch.zeros((len(chunk), width), dtype=torch.bool, device=device)
        valid[row, col] = True
        keep[flat] = _keep_within_blocks(padded, valid, threshold, mode)[row, col]
    return order[keep]


def apply_box_regression(boxes: Tensor, deltas: Tensor) -> Tensor:
    """Move box edges by offsets given in units of the box size (MTCNN's ``bbreg``).

    ``x1 += dx1 * w, y1 += dy1 * h, x2 += dx2 * w, y2 += dy2 * h`` with ``w, h`` the
    width and height of ``boxes (N, 4)``; ``deltas`` is ``(N, 4)``. Returns new boxes.
    """
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + deltas * wh


def square_boxes(boxes: Tensor) -> Tensor:
    """Grow each box to a square of side ``max(w, h)`` with the same centre (``rerec``)."""
    wh = boxes[:, 2:] - boxes[:, :2]
    side = wh.max(dim=1, keepdim=True).values
    centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    return torch.cat([centre - side * 0.5, centre + side * 0.5], dim=1)


def clip_boxes(boxes: Tensor, width: float, height: float) -> Tensor:
    """Clamp ``(..., 4)`` boxes to the image ``[0, width] x [0, height]``."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


def stack_for_crops(images: Tensor) -> Tensor:
    """Copy a batch ``(B, C, H, W)`` into the layout the crop functions read directly.

    Returns ``(B, C, H + 1, W)`` in channels-last memory format with an all-zero last
    row under every image. Viewed as one tall ``C x B(H+1) x W`` image, any number of
    crops from any of the images can then be cut with a single ``grid_sample`` call; the
    zero rows keep bilinear reads at an image's top and bottom edges from mixing in its
    neighbours (reads further out are masked).
    """
    b, c, h, w = images.shape
    out = images.new_empty((b, h + 1, w, c)).permute(0, 3, 1, 2)
    out[:, :, h].zero_()
    out[:, :, :h].copy_(images)
    return out


def _crop_stacked(stacked: Tensor, boxes: Tensor, image_idx: Tensor, out_h: int, out_w: int) -> Tensor:
    """Crops from a :func:`stack_for_crops` batch; see :func:`crop_and_resize`."""
    b, c, hp, w = stacked.shape
    h = hp - 1
    k = boxes.shape[0]
    if k == 0:
        return stacked.new_zeros((k, c, out_h, out_w))
    tall = stacked.permute(1, 0, 2, 3).reshape(1, c, b * hp, w)  # a view for channels-last input
    boxes = boxes.to(stacked.dtype)
    x1, y1, x2, y2 = boxes.unbind(1)
    # Sample positions: centres of an out_h x out_w lattice over each box, in continuous
    # pixel coordinates; image i starts at row i * (h + 1) of the tall image. With
    # align_corners=False, position u on an axis of n pixels is 2 u / n - 1 for grid_sample.
    fx = (torch.arange(out_w, device=boxes.device, dtype=boxes.dtype) + 0.5) / out_w
    fy = (torch.arange(out_h, device=boxes.device, dtype=boxes.dtype) + 0.5) / out_h
    xs = x1[:, None] + (x2 - x1)[:, None] * fx  # (k, out_w)
    ys = y1[:, None] + (y2 - y1)[:, None] * fy  # (k, out_h)
    gx = xs * (2.0 / w) - 1.0
    gy = (ys + (image_idx.to(boxes.dtype) * hp)[:, None]) * (2.0 / (b * hp)) - 1.0
    grid = torch.stack([gx[:, None, :].expand(k, out_h, out_w), gy[:, :, None].expand(k, out_h, out_w)], dim=-1)
    samples = F.grid_sample(
        tall, grid.view(1, k * out_h, out_w, 2), mode="bilinear", padding_mode="zeros", align_corners=False
    )
    crops = samples.view(c, k, out_h, out_w).permute(1, 0, 2, 3)
    # Rows sampled more than half a pixel above or below the image would read the
    # neighbouring image (or its zero row): those are outside the image, i.e. zero.
    inside = (ys >= -0.5) & (ys < h + 0.5)
    if not bool(inside.all()):
        crops = crops * inside[:, None, :, None].to(crops.dtype)
    return crops


def _out_size(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def crop_and_resize(
    images: Tensor, boxes: Tensor, image_idx: Tensor, size: int | tuple[int, int], *, stacked: bool = False
) -> Tensor:
    """Cut many boxes out of a batch of images and resample each to a fixed size.

    Bilinear interpolation at the centres of an ``out_h x out_w`` lattice laid over each
    box; parts of a box outside its image read as 0. One ``grid_sample`` call for all
    boxes. No low-pass filtering: when shrinking by much more than 2x, use
    :func:`crop_and_resize_pyramid` to avoid aliasing.

    Args:
        images: float ``(B, C, H, W)``, or the output of :func:`stack_for_crops` when
            ``stacked`` is true (saves a copy when cropping repeatedly).
        boxes: ``(K, 4)`` boxes in the pixel coordinates of the images.
        image_idx: ``(K,)`` index into the batch for each box.
        size: output side, or ``(out_h, out_w)``.
        stacked: ``images`` is already in the :func:`stack_for_crops` layout.

    Returns:
        ``(K, C, out_h, out_w)`` (channels-last memory format), in the order of ``boxes``.
    """
    out_h, out_w = _out_size(size)
    if not stacked:
        images = stack_for_crops(images)
    return _crop_stacked(images, boxes, image_idx.to(torch.long), out_h, out_w)


def crop_and_resize_pyramid(
    levels: Sequence[Tensor],
    boxes: Tensor,
    image_idx: Tensor,
    size: int | tuple[int, int],
    *,
    stacked: bool = False,
) -> Tensor:
    """:func:`crop_and_resize` that reads each box from a suitably downscaled copy.

    ``levels`` are the same batch of images at several resolutions (each one already
    low-pass filtered when it was made, e.g. by an antialiased resize); ``boxes`` are in
    the coordinates of ``levels[0]``. Each box is sampled from the smallest level on
    which it still spans at least ``size`` pixels in both directions (or from the largest
    level if none), so bilinear sampling never steps over more pixels than the ratio
    between neighbouring levels. That replaces the per-box area resize of the reference
    implementation with one ``grid_sample`` per level used.

    Args:
        levels: float ``(B, C, H_l, W_l)`` tensors, or :func:`stack_for_crops` outputs
            when ``stacked`` is true.
        boxes, image_idx, size: as for :func:`crop_and_resize`.
        stacked: the levels are in the :func:`stack_for_crops` layout.

    Returns:
        ``(K, C, out_h, out_w)`` (channels-last memory format), in the order of ``boxes``.
    """
    out_h, out_w = _out_size(size)
    if len(levels) == 0:
        raise SettingsError("need at least one level")
    extra = 1 if stacked else 0
    sizes = [(int(t.shape[-2]) - extra, int(t.shape[-1])) for t in levels]
    h0, w0 = sizes[0]
    image_idx = image_idx.to(torch.long)
    k = boxes.shape[0]
    # Levels from the largest to the smallest; a box fits a level if it spans at least
    # the output size there. Fitting is monotone in level size, so the chosen level (the
    # smallest that fits) is the number of fitting levels minus one.
    order = sorted(range(len(levels)), key=lambda i: -sizes[i][0] * sizes[i][1])
    sx = boxes.new_tensor([sizes[i][1] / w0 for i in order])
    sy = boxes.new_tensor([sizes[i][0] / h0 for i in order])
    bw = (boxes[:, 2] - boxes[:, 0])[:, None]
    bh = (boxes[:, 3] - boxes[:, 1])[:, None]
    fits = (bw * sx >= out_w) & (bh * sy >= out_h)
    rank = (fits.sum(dim=1) - 1).clamp_(min=0)
    counts = torch.bincount(rank, minlength=len(order)).tolist() if k else []
    used = [(r, order[r]) for r, n in enumerate(counts) if n]
    ref = levels[0]
    out = ref.new_empty((k, out_h, out_w, ref.shape[1])).permute(0, 3, 1, 2)  # every row is written below
    for r, i in used:
        level = levels[i] if stacked else stack_for_crops(levels[i])
        lh, lw = sizes[i]
        scale = boxes.new_tensor([lw / w0, lh / h0, lw / w0, lh / h0])
        if len(used) == 1:
            return _crop_stacked(level, boxes * scale, image_idx, out_h, out_w)
        sel = torch.nonzero(rank == r).flatten()
        out[sel] = _crop_stacked(level, boxes[sel] * scale, image_idx[sel], out_h, out_w)
    return out
