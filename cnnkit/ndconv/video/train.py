"""Clip classification: a 3D CNN over (frames, height, width) against 2D baselines, same budget.

Architectures (about 60k parameters each, see `ARCHS`):

- "3d": a 3D ResNet; its kernels span 3 frames, so it sees motion.
- "2d": a 2D ResNet on each frame, frames' logits averaged. It cannot see the
  order of frames; on the generated motion task it stays at chance.
- "frames2d": a 2D ResNet with the 16 frames as input channels (early fusion):
  time is modelled in the first layer only.

Training clips are generated in memory (`synth.make_clips`); validation clips
(another seed) choose the epoch kept; test clips (a third seed) are written to
a real video file, decoded back with PyAV, and classified.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from ...errors import SettingsError
from ...runtime.training import EpochReport, FitResult, FitSettings, fit, predict_batches
from ..checkpoint import load_checkpoint, save_checkpoint
from ..layers import count_parameters
from ..metrics import accuracy, confusion_matrix
from ..models import ResNetConfig, build_model
from .synth import DIRECTIONS, make_clips

TASK = "video"
Arch = Literal["3d", "2d", "frames2d"]
#: widths chosen so that the three networks have about the same number of parameters
ARCHS: dict[str, tuple[str, int, tuple[int, ...]]] = {
    "3d": ("resnet", 3, (8, 16, 32)),
    "2d": ("perframe2d", 2, (14, 28, 56)),
    "frames2d": ("frames2d", 2, (14, 28, 56)),
}
SEEDS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True, kw_only=True)
class VideoSettings:
    arch: Arch = "3d"
    frames: int = 16
    size: int = 32
    train_clips: int = 1600
    val_clips: int = 400
    data_seed: int = 0  # added to SEEDS so that other draws of the task are one number away
    train: FitSettings = FitSettings(epochs=8, batch_size=32, lr=3e-3, weight_decay=1e-4)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise SettingsError(f"unknown arch {self.arch!r}; use one of {tuple(ARCHS)}")
        if self.frames < 3 or self.size < 8:
            raise SettingsError("clips need at least 3 frames of at least 8x8 pixels")

    def model(self) -> tuple[str, ResNetConfig]:
        architecture, dim, widths = ARCHS[self.arch]
        channels = self.frames if self.arch == "frames2d" else 1
        return architecture, ResNetConfig(dim=dim, in_channels=channels, num_classes=len(DIRECTIONS), widths=widths,
                                          stem_stride=2)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        return d


def clips_to_tensor(clips: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (n, T, H, W) -> float (n, 1, T, H, W), zero mean, about unit spread."""
    x = torch.as_tensor(np.asarray(clips))
    return ((x.float() / 255.0) - 0.5).unsqueeze(1) * 4.0


@dataclass
class TrainedVideo:
    model: nn.Module
    settings: VideoSettings
    fit: FitResult
    parameters: int
    val_accuracy: float


def generate_split(split: str, n: int, settings: VideoSettings) -> tuple[np.ndarray, np.ndarray]:
    if split not in SEEDS:
        raise SettingsError(f"unknown split {split!r}; use one of {tuple(SEEDS)}")
    return make_clips(n, seed=1000 * settings.data_seed + SEEDS[split], frames=settings.frames, size=settings.size)


def train_video(*, settings: VideoSettings = VideoSettings(), on_epoch: Callable[[EpochReport], None] | None = None,
                on_step: Callable[[int, float], None] | None = None) -> TrainedVideo:
    """Train one architecture on generated clips; keep the epoch with the best validation accuracy."""
    train_x, train_y = generate_split("train", settings.train_clips, settings)
    val_x, val_y = generate_split("val", settings.val_clips, settings)
    architecture, config = settings.model()
    model = build_model(config, architecture=architecture)
    bs = settings.train.batch_size
    n = len(train_y)

    def batches(rng: np.random.Generator):
        order = rng.permutation(n)
        for i in range(0, n - bs + 1, bs):
            idx = order[i:i + bs]
            x = clips_to_tensor(train_x[idx])
            # a horizontal flip turns 'left' into 'right': flip clips and swap those labels
            y = train_y[idx].copy()
            flip = rng.random(len(idx)) < 0.5
            x[flip] = torch.flip(x[flip], dims=[-1])
            swap = {2: 3, 3: 2}
            y[flip] = [swap.get(int(v), int(v)) for v in y[flip]]
            yield x, None, torch.from_numpy(y)

    loss = nn.CrossEntropyLoss()
    val_acc: list[float] = []

    def validate(m: nn.Module) -> float:
        val_acc.append(accuracy(val_y, predict_clips(m, val_x).argmax(1)))
        return val_acc[-1]

    result = fit(model, batches=batches, steps_per_epoch=n // bs, loss_fn=loss,
                 settings=settings.train, validate=validate, on_epoch=on_epoch, on_step=on_step)
    return TrainedVideo(model, settings, result, count_parameters(model), val_acc[result.best_epoch - 1])


def predict_clips(model: nn.Module, clips: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """Direction probabilities (n, 4) for uint8 clips (n, T, H, W)."""
    return predict_batches(model, clips, batch_size=batch_size, transform=clips_to_tensor)


def save_video_model(path: str | Path, trained: TrainedVideo) -> Path:
    architecture, config = trained.settings.model()
    info = {"classes": list(DIRECTIONS), "frames": trained.settings.frames, "size": trained.settings.size,
            "arch": trained.settings.arch, "parameters": trained.parameters, "settings": trained.settings.to_dict(),
            "best_epoch": trained.fit.best_epoch, "val_accuracy": trained.val_accuracy,
            "train_seconds": round(trained.fit.seconds, 1)}
    return save_checkpoint(path, trained.model, task=TASK, architecture=architecture, config=config, info=info,
                           history=trained.fit.history_dicts())


@dataclass(frozen=True)
class ClipPrediction:
    start_frame: int
    frames: int
    label: str
    probabilities: tuple[float, ...]


def predict_video(checkpoint: str | Path, video: str | Path, *, stride: int | None = None,
                  device: str = "auto") -> list[ClipPrediction]:
    """Decode `video` with PyAV into clips of the model's length and size, and classify each."""
    from ...runtime.device import resolve_device
    from .io import read_clips

    ck = load_checkpoint(checkpoint, task=TASK, device=resolve_device(device))
    clips, starts, _ = read_clips(video, clip_frames=int(ck.info["frames"]), size=int(ck.info["size"]), stride=stride)
    probs = predict_clips(ck.model, clips)
    classes = ck.info["classes"]
    n = int(ck.info["frames"])
    return [ClipPrediction(int(s), n, classes[int(p.argmax())], tuple(float(v) for v in p))
            for s, p in zip(starts, probs)]


def evaluate_on_video(model: nn.Module, clips: np.ndarray, labels: np.ndarray, path: str | Path, *,
                      codec: str = "libx264") -> dict:
    """Write the clips one after another into one video file, decode it back, and score the clips."""
    from .io import read_clips, write_video

    frames = clips.reshape(-1, *clips.shape[2:])
    write_video(path, frames, codec=codec)
    t0 = time.perf_counter()
    decoded, _starts, _ = read_clips(path, clip_frames=clips.shape[1], size=clips.shape[2])
    decode_s = time.perf_counter() - t0
    if len(decoded) != len(labels):
        raise RuntimeError(f"decoded {len(decoded)} clips from {path}, wrote {len(labels)}")
    pred = predict_clips(model, decoded).argmax(1)
    return {"accuracy": accuracy(labels, pred), "confusion": confusion_matrix(labels, pred, len(DIRECTIONS)).tolist(),
            "codec": codec, "bytes": Path(path).stat().st_size, "decode_seconds": round(decode_s, 2),
            "mean_abs_pixel_error": float(np.abs(decoded.astype(np.int16) - clips).mean())}
