"""Batched MTCNN face detector (Zhang et al., 2016) in PyTorch.

Three cascaded networks: P-Net scans an image pyramid for candidate windows, R-Net
rejects most of them and refines the rest, O-Net scores the survivors and regresses the
final boxes and five facial landmarks (left eye, right eye, nose, left mouth corner,
right mouth corner, "left" meaning the smaller x in the image).

The layer layout matches the MIT-licensed weights shipped in facenet-pytorch 2.6.0
(``pnet.pt``, ``rnet.pt``, ``onet.pt``), which are a port of the original Caffe models;
:func:`state_dict_from_facenet_pt` turns the three files into one flat state dict for
:class:`MTCNN`. All coordinates are continuous pixel coordinates as described in
:mod:`cnnkit.faces.boxes`: the centre of pixel ``(row i, column j)`` is ``(j + 0.5, i + 0.5)``.

(Subtract 0.5 to get the convention where pixel centres sit at integers, e.g. for
``grid_sample(..., align_corners=True)`` or OpenCV's ``warpAffine``.)

Batching: images of the same size share one P-Net call per pyramid level; the candidates
of all images then go through R-Net together and through O-Net together (in slices of a
bounded size). Crops for R-Net/O-Net are cut with one ``grid_sample`` per pyramid level
(:func:`cnnkit.faces.boxes.crop_and_resize_pyramid`) instead of one resize per box.

The cascade, thresholds, NMS steps and their order follow the reference implementation
(Zhang et al.'s MATLAB code, as ported by facenet-pytorch). Departures, all for speed or
geometric exactness:

* Pyramid levels use an antialiased bilinear resize (area interpolation in the
  reference) with sizes rounded to even numbers; boxes are mapped back with each level's
  exact per-axis scale, and P-Net windows are placed exactly (no integer truncation).
* R-Net/O-Net crops are bilinear samples from the pyramid level nearest in scale instead
  of an area resize of an integer-rounded crop; parts outside the image are black, as in
  the MATLAB original (facenet-pytorch clips the crop instead).
* Networks run in cache-sized slices, channels-last.

On LFW and on upside-down/background crops this gives the same recall as
facenet-pytorch's implementation with slightly fewer false positives, but individual
borderline detections can differ (see ``bench/faces/detector_lfw.py``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.faces.boxes import (
    apply_box_regression,
    batched_nms,
    crop_and_resize_pyramid,
    square_boxes,
)

from ..errors import SettingsError

__all__ = [
    "FACENET_PT_SHA256",
    "MTCNN",
    "Detections",
    "ImageLike",
    "ONet",
    "PNet",
    "RNet",
    "state_dict_from_facenet_pt",
]

logger = logging.getLogger(__name__)

ImageLike = np.ndarray | Tensor
"""An RGB image: ``H x W x 3`` uint8 numpy array or torch tensor (``H x W`` grey and
``H x W x 4`` RGBA are accepted too; alpha is dropped)."""

FACENET_PT_SHA256: dict[str, str] = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}
"""SHA-256 of the weight files in the facenet-pytorch 2.6.0 wheel (``facenet_pytorch/data``)."""

_PIXEL_MEAN = 127.5
_PIXEL_SCALE = 0.0078125  # 1 / 128, as in the original models
_PNET_STRIDE = 2
_PNET_CELL = 12
_NMS_PNET_LEVEL = 0.5  # within one pyramid level
_NMS_PNET_ALL = 0.7  # across levels
_NMS_RNET = 0.7
_NMS_ONET = 0.7  # "min" overlap, as in the reference code


def _normalize(x: Tensor) -> Tensor:
    """Raw 0..255 pixel values to the networks' input range (about -1..1)."""
    return x.mul(_PIXEL_SCALE).sub_(_PIXEL_MEAN * _PIXEL_SCALE)


def _max_pool_2x2(x: Tensor) -> Tensor:
    """``max_pool2d(x, 2, 2, ceil_mode=True)``; even sizes take a faster strided path."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        return F.max_pool2d(x, 2, 2, ceil_mode=True)
    # On CPU this is several times faster than max_pool2d, which also computes indices.
    rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def _prelu(x: Tensor, weight: Tensor) -> Tensor:
    """``F.prelu``; for channels-last 4-D input it runs on the ``(N*H*W, C)`` view, which
    is about twice as fast on CPU as the generic channels-last kernel."""
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        n, c, h, w = x.shape
        flat = F.prelu(x.permute(0, 2, 3, 1).reshape(-1, c), weight)
        return flat.view(n, h, w, c).permute(0, 3, 1, 2)
    return F.prelu(x, weight)


def _flatten_whc(x: Tensor) -> Tensor:
    """Flatten ``(N, C, H, W)`` in ``(W, H, C)`` order.

    The dense layers of the ported Caffe weights expect this order (the original models
    ran on transposed images); the convolutions themselves work on upright images.
    """
    return x.permute(0, 3, 2, 1).flatten(1)


class PNet(nn.Module):
    """Proposal network: fully convolutional, a 12x12 window every 2 pixels.

    Input: normalised images ``(B, 3, H, W)``, ``H, W >= 12``. Output: face probability
    ``(B, H', W')`` and box offsets ``(B, 4, H', W')`` (``dx1, dy1, dx2, dy2`` in units of
    the window size) with ``H' = ceil((H - 2) / 2) - 4``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = _max_pool_2x2(_prelu(self.conv1(x), self.prelu1.weight))
        x = _prelu(self.conv2(x), self.prelu2.weight)
        x = _prelu(self.conv3(x), self.prelu3.weight)
        logits = self.conv4_1(x)
        # softmax over two classes, face column only
        prob = torch.sigmoid(logits[:, 1] - logits[:, 0])
        return prob, self.conv4_2(x)


class RNet(nn.Module):
    """Refinement network on 24x24 crops.

    Input ``(N, 3, 24, 24)`` normalised; output face probability ``(N,)`` and box offsets
    ``(N, 4)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.max_pool2d(_prelu(self.conv1(x), self.prelu1.weight), 3, 2, ceil_mode=True)
        x = F.max_pool2d(_prelu(self.conv2(x), self.prelu2.weight), 3, 2, ceil_mode=True)
        x = _prelu(self.conv3(x), self.prelu3.weight)
        x = self.prelu4(self.dense4(_flatten_whc(x)))
        logits = self.dense5_1(x)
        return torch.sigmoid(logits[:, 1] - logits[:, 0]), self.dense5_2(x)


class ONet(nn.Module):
    """Output network on 48x48 crops.

    Input ``(N, 3, 48, 48)`` normalised; output face probability ``(N,)``, box offsets
    ``(N, 4)`` and landmarks ``(N, 10)``: five x then five y, as fractions of the crop.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = F.max_pool2d(_prelu(self.conv1(x), self.prelu1.weight), 3, 2, ceil_mode=True)
        x = F.max_pool2d(_prelu(self.conv2(x), self.prelu2.weight), 3, 2, ceil_mode=True)
        x = _max_pool_2x2(_prelu(self.conv3(x), self.prelu3.weight))
        x = _prelu(self.conv4(x), self.prelu4.weight)
        x = self.prelu5(self.dense5(_flatten_whc(x)))
        logits = self.dense6_1(x)
        return torch.sigmoid(logits[:, 1] - logits[:, 0]), self.dense6_2(x), self.dense6_3(x)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def state_dict_from_facenet_pt(
    pnet_path: str | os.PathLike[str],
    rnet_path: str | os.PathLike[str],
    onet_path: str | os.PathLike[str],
    *,
    check_sha256: bool = True,
) -> dict[str, Tensor]:
    """Read facenet-pytorch's ``pnet.pt``, ``rnet.pt``, ``onet.pt`` into one flat dict.

    Keys are prefixed ``"pnet."``, ``"rnet."``, ``"onet."`` so that the result loads
    into :class:`MTCNN` with ``load_state_dict``. The files are torch state dicts and are
    read with ``weights_only=True``. With ``check_sha256`` the files must be the ones
    from the facenet-pytorch 2.6.0 wheel (:data:`FACENET_PT_SHA256`).

    Raises:
        ValueError: a checksum differs or a file does not hold the expected tensors.
    """
    reference = MTCNN()
    out: dict[str, Tensor] = {}
    for name, path in (("pnet", pnet_path), ("rnet", rnet_path), ("onet", onet_path)):
        path = Path(path)
        if check_sha256:
            digest = _sha256(path)
            if digest != FACENET_PT_SHA256[name]:
                raise SettingsError(f"{path}: sha256 {digest} is not the facenet-pytorch 2.6.0 {name} weights")
        sd = torch.load(path, map_location="cpu", weights_only=True)
        expected = getattr(reference, name).state_dict()
        if set(sd) != set(expected):
            raise SettingsError(f"{path}: unexpected keys {sorted(set(sd) ^ set(expected))}")
        for key, value in sd.items():
            if tuple(value.shape) != tuple(expected[key].shape):
                raise SettingsError(f"{path}: {key} has shape {tuple(value.shape)}, "
                                    f"expected {tuple(expected[key].shape)}")
            out[f"{name}.{key}"] = value.detach().to(torch.float32).contiguous()
    return out


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, by decreasing score.

    Attributes:
        boxes: ``(N, 4)`` float32 ``x1, y1, x2, y2`` in pixels (continuous coordinates).
        scores: ``(N,)`` float32 O-Net face probabilities.
        landmarks: ``(N, 5, 2)`` float32 ``(x, y)`` of left eye, right eye, nose, left
            mouth corner, right mouth corner (left/right as seen in the image).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty() -> Detections:
        """No faces."""
        return Detections(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
        )


def _as_hwc_uint8(image: Any) -> Tensor:
    """Validate one image and return it as an ``(H, W, 3)`` uint8 tensor (no copy if possible)."""
    if isinstance(image, Tensor):
        t = image
    else:
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise TypeError(f"images must be uint8, got {arr.dtype}")
        with warnings.catch_warnings():
            # Read-only arrays (e.g. np.asarray of a PIL image) are fine: they are only read.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype != torch.uint8:
        raise TypeError(f"images must be uint8, got {t.dtype}")
    if t.ndim == 2:
        t = t[:, :, None].expand(-1, -1, 3)
    if t.ndim != 3 or t.shape[2] not in (3, 4):
        raise SettingsError(f"images must be H x W x 3 (RGB), got shape {tuple(t.shape)}")
    return t[:, :, :3]


def _make_level(batch: Tensor, size: tuple[int, int], dtype: torch.dtype) -> Tensor:
    """Resize a uint8 ``(B, 3, H, W)`` batch to ``size`` as raw 0..255 floats, in the
    :func:`~cnnkit.faces.boxes.stack_for_crops` layout ``(B, 3, h + 1, w)``.

    The reference code uses area interpolation; an antialiased bilinear (triangle) filter
    serves the same purpose, and on CPU its uint8 channels-last kernel is several times
    faster than any float path.
    """
    b, c, h, w = batch.shape
    if (h, w) == tuple(size):
        resized = batch
    elif batch.device.type == "cpu":
        resized = F.interpolate(batch, size=size, mode="bilinear", antialias=True, align_corners=False)
    else:
        resized = F.interpolate(batch.to(dtype), size=size, mode="bilinear", antialias=True, align_corners=False)
    lh, lw = resized.shape[-2:]
    out = torch.empty((b, lh + 1, lw, c), dtype=dtype, device=batch.device).permute(0, 3, 1, 2)
    out[:, :, lh].zero_()
    out[:, :, :lh].copy_(resized)  # converts to float on the way
    return out


def _unstack(level: Tensor) -> Tensor:
    """The image part ``(B, 3, h, w)`` of a stacked level (a view)."""
    return level[:, :, :-1]


@dataclass
class _Group:
    """Images of one size within a chunk, with the pyramid kept for cropping."""

    index: list[int]  # positions in the chunk
    height: int
    width: int
    crop_levels: list[Tensor]  # raw 0..255 float, stacked (B, 3, h + 1, w), largest first; [0] is full size


@dataclass
class _Candidates:
    """Candidate boxes across a chunk (all float32 on the model's device)."""

    boxes: Tensor  # (K, 4)
    scores: Tensor  # (K,)
    image: Tensor  # (K,) int64 index within the chunk

    def take(self, idx: Tensor) -> _Candidates:
        return _Candidates(self.boxes[idx], self.scores[idx], self.image[idx])


def _pnet_scales(height: int, width: int, min_face_size: float, scale_factor: float) -> list[float]:
    """Pyramid scales: the smallest face maps to 12 px, then shrink by ``scale_factor``
    while the short side stays at least 12 px."""
    scales = []
    scale = _PNET_CELL / min_face_size
    short = min(height, width) * scale
    while short >= _PNET_CELL:
        scales.append(scale)
        scale *= scale_factor
        short *= scale_factor
    return scales


def _level_size(height: int, width: int, scale: float) -> tuple[int, int]:
    # Even sizes keep P-Net's 2x2 pooling on the fast path; the true per-axis scale
    # (level size / image size) is used for the box geometry, so nothing is lost.
    return max(_PNET_CELL, 2 * math.ceil(height * scale / 2)), max(_PNET_CELL, 2 * math.ceil(width * scale / 2))


class MTCNN(nn.Module):
    """MTCNN face detector: three networks plus the batched cascade around them.

    Build it with :meth:`from_facenet_pt` or construct it empty and ``load_state_dict``
    a dict produced by :func:`state_dict_from_facenet_pt` (keys ``pnet.*``, ``rnet.*``,
    ``onet.*``). Computation runs on the device and dtype of the parameters; results are
    plain numpy arrays.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pnet = PNet()
        self.rnet = RNet()
        self.onet = ONet()
        # Largest first-layer activation per network forward slice (see _run): cache-sized
        # on CPU, a plain memory bound elsewhere.
        self.working_set_bytes = 4 << 20
        self.working_set_bytes_gpu = 1 << 30
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_facenet_pt(cls, directory: str | os.PathLike[str], *, check_sha256: bool = True) -> MTCNN:
        """Load ``pnet.pt``, ``rnet.pt``, ``onet.pt`` from ``directory`` (CPU, float32)."""
        d = Path(directory)
        model = cls()
        model.load_state_dict(
            state_dict_from_facenet_pt(d / "pnet.pt", d / "rnet.pt", d / "onet.pt", check_sha256=check_sha256)
        )
        return model

    @property
    def _device(self) -> torch.device:
        return self.pnet.conv1.weight.device

    @property
    def _dtype(self) -> torch.dtype:
        return self.pnet.conv1.weight.dtype

    def forward(self, images: Sequence[ImageLike] | ImageLike, **kwargs: Any) -> list[Detections]:
        """Same as :meth:`detect`."""
        return self.detect(images, **kwargs)

    # ----------------------------------------------------------------------------------
    # public API

    @torch.inference_mode()
    def detect(
        self,
        images: Sequence[ImageLike] | ImageLike,
        *,
        min_face_size: float = 20.0,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        scale_factor: float = 0.709,
        max_batch_pixels: int = 1 << 22,
    ) -> list[Detections]:
        """Find faces in a batch of RGB images.

        Args:
            images: sequence of ``H x W x 3`` uint8 RGB arrays or tensors (sizes may
                differ; a ``B x H x W x 3`` array is a sequence too), or a single image
                (a 2-D or 3-D array; then a list of one is returned).
            min_face_size: smallest face side searched for, in pixels.
            thresholds: P-Net, R-Net and O-Net face probability thresholds.
            scale_factor: ratio between consecutive pyramid levels.
            max_batch_pixels: images are processed in chunks of at most this many pixels
                (at least one image per chunk) to bound memory; results do not depend on it
                beyond float rounding.

        Returns:
            One :class:`Detections` per image, in input order.
        """
        if isinstance(images, (np.ndarray, Tensor)) and images.ndim <= 3:
            images = [images]
        if not 0.0 < scale_factor < 1.0:
            raise SettingsError(f"scale_factor must be in (0, 1), got {scale_factor}")
        if min_face_size <= 0:
            raise SettingsError(f"min_face_size must be positive, got {min_face_size}")
        tensors = [_as_hwc_uint8(im) for im in images]
        results: list[Detections] = [Detections.empty()] * len(tensors)
        for chunk in _chunk_by_size(tensors, max_batch_pixels):
            found = self._detect_chunk(
                [tensors[i] for i in chunk],
                min_face_size=min_face_size,
                thresholds=thresholds,
                scale_factor=scale_factor,
            )
            for i, det in zip(chunk, found):
                results[i] = det
        return results

    @torch.inference_mode()
    def refine(self, image: ImageLike, boxes: np.ndarray | Tensor, *, use_rnet: bool = True) -> Detections:
        """Run only the later stages on boxes the caller already has.

        Useful when the face position is known (e.g. a centred face crop in which
        :meth:`detect` found nothing, or boxes from another detector) and landmarks are
        wanted. Each box is squared about its centre; with ``use_rnet`` R-Net first
        regresses and re-squares it (this tightens a loose box); then O-Net gives the
        score, the regressed box and the landmarks. Nothing is thresholded or suppressed.

        Args:
            image: ``H x W x 3`` uint8 RGB image.
            boxes: ``(N, 4)`` boxes ``x1, y1, x2, y2`` in pixels.
            use_rnet: apply R-Net's box regression before O-Net.

        Returns:
            :class:`Detections` with one row per input box, in input order (not sorted);
            ``scores`` are O-Net probabilities, low when the box holds no face.
        """
        img = _as_hwc_uint8(image)
        b = torch.as_tensor(np.asarray(boxes) if not isinstance(boxes, Tensor) else boxes)
        b = b.to(device=self._device, dtype=torch.float32).reshape(-1, 4)
        if b.shape[0] == 0:
            return Detections.empty()
        h, w = img.shape[:2]
        batch = img.to(self._device).permute(2, 0, 1).unsqueeze(0)
        scales = [1.0]
        while min(h, w) * scales[-1] * 0.709 >= 24:
            scales.append(scales[-1] * 0.709)
        levels = [_make_level(batch, _level_size(h, w, s) if s < 1 else (h, w), self._dtype) for s in scales]
        group = _Group([0], h, w, levels)
        cand = _empty_candidates(b.device)
        cand = _Candidates(square_boxes(b), b.new_zeros(b.shape[0]), cand.image.new_zeros(b.shape[0]))
        if use_rnet:
            crops = self._crops([group], cand, 24)
            _, reg = self._run(self.rnet, crops)
            cand = _Candidates(square_boxes(apply_box_regression(cand.boxes, reg.float())), cand.scores, cand.image)
        crops = self._crops([group], cand, 48)
        prob, reg, marks = self._run(self.onet, crops)
        landmarks = _landmarks_to_pixels(cand.boxes, marks.float())
        out_boxes = apply_box_regression(cand.boxes, reg.float())
        return Detections(
            out_boxes.cpu().numpy().astype(np.float32),
            prob.float().cpu().numpy().astype(np.float32),
            landmarks.cpu().numpy().astype(np.float32),
        )

    # ----------------------------------------------------------------------------------
    # cascade

    def _run(self, net: PNet | RNet | ONet, x: Tensor, *, normalize: bool = False) -> tuple[Tensor, ...]:
        """``net(x)`` (optionally on ``_normalize(x)``) in slices along dim 0, outputs concatenated.

        All candidates of all images form one logical batch, but the forward passes are
        sliced so that the largest activation of a slice stays within
        :attr:`working_set_bytes`: on CPU, keeping it cache-resident makes the memory-bound
        PReLU and pooling layers 2-3x faster than one huge batch; on GPU the budget is
        large and only bounds memory.
        """
        first = net.conv1
        h, w = x.shape[-2] - first.kernel_size[0] + 1, x.shape[-1] - first.kernel_size[1] + 1
        per_item = first.out_channels * h * w * x.element_size()
        budget = self.working_set_bytes if x.device.type == "cpu" else self.working_set_bytes_gpu
        step = max(1, budget // per_item)
        if x.shape[0] <= step:
            return net(_normalize(x) if normalize else x)
        outs = [
            net(_normalize(x[i : i + step]) if normalize else x[i : i + step]) for i in range(0, x.shape[0], step)
        ]
        return tuple(torch.cat(parts) for parts in zip(*outs))

    def _detect_chunk(
        self,
        images: list[Tensor],
        *,
        min_face_size: float,
        thresholds: tuple[float, float, float],
        scale_factor: float,
    ) -> list[Detections]:
        device = self._device
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            by_size.setdefault((int(im.shape[0]), int(im.shape[1])), []).append(i)

        # Stage 1: P-Net over the pyramid, one batch per (size, level).
        groups: list[_Group] = []
        parts: list[_Candidates] = []
        for index in by_size.values():
            batch = torch.stack([images[i] for i in index]).to(device).permute(0, 3, 1, 2)  # channels-last view
            group, cand = self._stage_one(batch, index, min_face_size, thresholds[0], scale_factor)
            groups.append(group)
            parts.append(cand)
        cand = _cat_candidates(parts, device)
        logger.debug("P-Net: %d candidates in %d images", cand.boxes.shape[0], len(images))

        # Stage 2: R-Net on all candidates of all images.
        if cand.boxes.shape[0] > 0:
            crops = self._crops(groups, cand, 24)
            prob, reg = self._run(self.rnet, crops)
            passed = torch.nonzero(prob > thresholds[1]).flatten()
            cand = _Candidates(cand.boxes[passed], prob[passed].float(), cand.image[passed])
            reg = reg[passed].float()
            keep = batched_nms(cand.boxes, cand.scores, cand.image, _NMS_RNET)
            cand, reg = cand.take(keep), reg[keep]
            cand.boxes = square_boxes(apply_box_regression(cand.boxes, reg))
        logger.debug("R-Net: %d candidates", cand.boxes.shape[0])

        # Stage 3: O-Net, landmarks, final boxes.
        landmarks = torch.zeros((0, 5, 2), device=device)
        if cand.boxes.shape[0] > 0:
            crops = self._crops(groups, cand, 48)
            prob, reg, marks = self._run(self.onet, crops)
            passed = torch.nonzero(prob > thresholds[2]).flatten()
            cand = _Candidates(cand.boxes[passed], prob[passed].float(), cand.image[passed])
            landmarks = _landmarks_to_pixels(cand.boxes, marks[passed].float())
            cand.boxes = apply_box_regression(cand.boxes, reg[passed].float())
            keep = batched_nms(cand.boxes, cand.scores, cand.image, _NMS_ONET, "min")
            cand, landmarks = cand.take(keep), landmarks[keep]
        logger.debug("O-Net: %d faces", cand.boxes.shape[0])

        boxes_np = cand.boxes.cpu().numpy().astype(np.float32)
        scores_np = cand.scores.cpu().numpy().astype(np.float32)
        marks_np = landmarks.cpu().numpy().astype(np.float32)
        image_np = cand.image.cpu().numpy()
        out = []
        for i in range(len(images)):
            sel = np.flatnonzero(image_np == i)  # already by decreasing score within an image
            out.append(Detections(boxes_np[sel], scores_np[sel], marks_np[sel]))
        return out

    def _stage_one(
        self, batch: Tensor, index: list[int], min_face_size: float, threshold: float, scale_factor: float
    ) -> tuple[_Group, _Candidates]:
        """P-Net on every pyramid level of a same-size batch; keeps the levels for cropping."""
        b, _, h, w = batch.shape
        device, dtype = batch.device, self._dtype
        image_ids = torch.tensor(index, device=device)
        crop_levels = [_make_level(batch, (h, w), dtype)]
        pnet_scales = _pnet_scales(h, w, min_face_size, scale_factor)
        # Extra crop-only levels between full size and the first P-Net level below 1, so
        # that no crop is sampled with a step much larger than 1/scale_factor pixels.
        first_below = next((s for s in pnet_scales if s < 1.0), 0.0)
        extra = scale_factor
        while extra > first_below * (1.0 + 1e-6) and extra * min(h, w) >= 24 and first_below > 0:
            lh, lw = _level_size(h, w, extra)
            crop_levels.append(_make_level(batch, (lh, lw), dtype))
            extra *= scale_factor
        found: list[Tensor] = []  # per level: (n, 9) rows x1 y1 x2 y2 dx1 dy1 dx2 dy2 score
        found_img: list[Tensor] = []
        found_group: list[Tensor] = []
        for li, scale in enumerate(pnet_scales):
            lh, lw = _level_size(h, w, scale)
            level = _make_level(batch, (lh, lw), dtype)
            if scale < 1.0:
                crop_levels.append(level)
            prob, reg = self._run(self.pnet, _unstack(level), normalize=True)
            img, row, col = torch.nonzero(prob >= threshold, as_tuple=True)
            if img.numel() == 0:
                continue
            # Window of output cell (row, col) in level pixels, mapped back with the exact
            # per-axis scale of this level.
            sx, sy = lw / w, lh / h
            x1 = (col * _PNET_STRIDE).to(torch.float32) / sx
            y1 = (row * _PNET_STRIDE).to(torch.float32) / sy
            window = torch.stack([x1, y1, x1 + _PNET_CELL / sx, y1 + _PNET_CELL / sy], dim=1)
            delta = reg[img, :, row, col].float()  # (n, 4)
            score = prob[img, row, col].float()
            found.append(torch.cat([window, delta, score[:, None]], dim=1))
            found_img.append(img)
            found_group.append(img + li * b)
        crop_levels.sort(key=lambda t: -t.shape[-1] * t.shape[-2])
        group = _Group(index, h, w, crop_levels)
        if not found:
            return group, _empty_candidates(device)
        packed, img, level_group = torch.cat(found), torch.cat(found_img), torch.cat(found_group)
        # NMS within each (level, image), then across levels within each image; the
        # regression is applied only after that, as in the reference implementation.
        keep = batched_nms(packed[:, :4], packed[:, 8], level_group, _NMS_PNET_LEVEL)
        packed, img = packed[keep], img[keep]
        keep = batched_nms(packed[:, :4], packed[:, 8], img, _NMS_PNET_ALL)
        packed, img = packed[keep], img[keep]
        regressed = square_boxes(apply_box_regression(packed[:, :4], packed[:, 4:8]))
        return group, _Candidates(regressed, packed[:, 8].contiguous(), image_ids[img])

    def _crops(self, groups: list[_Group], cand: _Candidates, size: int) -> Tensor:
        """Normalised ``size x size`` crops of every candidate, in candidate order."""
        device = cand.boxes.device
        out = torch.empty((cand.boxes.shape[0], size, size, 3), device=device, dtype=self._dtype)
        out = out.permute(0, 3, 1, 2)  # channels-last, like the crops
        n_images = 1 + max(max(g.index) for g in groups)
        group_of = torch.empty(n_images, dtype=torch.long)
        local_of = torch.empty(n_images, dtype=torch.long)
        for gi, g in enumerate(groups):
            group_of[g.index] = gi
            local_of[g.index] = torch.arange(len(g.index))
        group_of, local_of = group_of.to(device), local_of.to(device)
        cand_group = group_of[cand.image]
        for gi, g in enumerate(groups):
            sel = torch.nonzero(cand_group == gi).flatten() if len(groups) > 1 else None
            boxes = cand.boxes if sel is None else cand.boxes[sel]
            if boxes.shape[0] == 0:
                continue
            local = local_of[cand.image if sel is None else cand.image[sel]]
            crops = crop_and_resize_pyramid(g.crop_levels, boxes.to(self._dtype), local, size, stacked=True)
            crops = _normalize(crops)
            if sel is None:
                out = crops
            else:
                out[sel] = crops
        return out


def _chunk_by_size(images: list[Tensor], max_pixels: int) -> list[list[int]]:
    """Split image indices into chunks of at most ``max_pixels`` (one image at least),
    keeping images of the same size together as far as the budget allows."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        by_size.setdefault((int(im.shape[0]), int(im.shape[1])), []).append(i)
    chunks: list[list[int]] = []
    current: list[int] = []
    used = 0
    for (h, w), index in by_size.items():
        for i in index:
            if current and used + h * w > max_pixels:
                chunks.append(current)
                current, used = [], 0
            current.append(i)
            used += h * w
    if current:
        chunks.append(current)
    return chunks


def _empty_candidates(device: torch.device) -> _Candidates:
    return _Candidates(
        torch.zeros((0, 4), device=device),
        torch.zeros(0, device=device),
        torch.zeros(0, dtype=torch.long, device=device),
    )


def _cat_candidates(parts: list[_Candidates], device: torch.device) -> _Candidates:
    if not parts:
        return _empty_candidates(device)
    return _Candidates(
        torch.cat([p.boxes for p in parts]), torch.cat([p.scores for p in parts]), torch.cat([p.image for p in parts])
    )


def _landmarks_to_pixels(boxes: Tensor, marks: Tensor) -> Tensor:
    """O-Net landmark outputs (fractions of the crop box) to ``(N, 5, 2)`` pixel coordinates."""
    wh = boxes[:, 2:] - boxes[:, :2]
    x = boxes[:, 0:1] + wh[:, 0:1] * marks[:, :5]
    y = boxes[:, 1:2] + wh[:, 1:2] * marks[:, 5:]
    return torch.stack([x, y], dim=-1)
