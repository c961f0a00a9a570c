"""3D CNN classification of volumes (MedMNIST 3D .npz), with 3-D augmentation.

Trained on the official train split; the epoch kept is the one with the best
validation AUC (the val split is the only thing tuned on); the test split is
read by `evaluate_volumes` only. Labels are 0..K-1; binary tasks report AUC on
the positive class' probability and ACC at a decision threshold chosen on the
val split (the one with the best val accuracy, nearest 0.5 on ties; stored in
the checkpoint). A small network stopped early on AUC is often under-confident
on the minority class (AdrenalMNIST3D: 22 % positive), so probability 0.5 would
call almost everything negative; ACC at 0.5 is reported beside it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import SettingsError, VolumeError
from ...runtime.training import EpochReport, FitResult, FitSettings, fit
from ..checkpoint import load_checkpoint, save_checkpoint
from ..metrics import accuracy, confusion_matrix, roc_auc
from ..models import ResNetConfig, build_model
from .augment import MODES, Mode, augment, symmetry_views
from .io import as_model_input, load_split

log = logging.getLogger(__name__)

TASK = "volumes"


@dataclass(frozen=True, kw_only=True)
class VolumeSettings:
    widths: tuple[int, ...] = (8, 16, 32)  # 57k parameters: small enough to train on a shared CPU
    augmentation: Mode = "flips"
    shift: int = 2  # voxels at 28^3 (scaled with the size)
    tta: Mode = "flips"  # test-time augmentation: average over these views
    dropout: float = 0.2
    train: FitSettings = FitSettings(epochs=20, batch_size=32, lr=3e-3, weight_decay=1e-3)

    def __post_init__(self) -> None:
        for name in ("augmentation", "tta"):
            if getattr(self, name) not in MODES:
                raise SettingsError(f"unknown {name} {getattr(self, name)!r}; use one of {MODES}")

    def model_config(self, size: int, num_classes: int) -> ResNetConfig:
        # 28^3: a stride-2 stem (14^3), 64^3: a stride-2 stem and a max-pool (16^3); stages halve from there
        return ResNetConfig(dim=3, in_channels=1, num_classes=num_classes, widths=self.widths, kernel_size=3,
                            stem_kernel=3, stem_stride=2, stem_pool=size >= 48, dropout=self.dropout)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        return d


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, D, H, W) -> float (n, 1, D, H, W) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    return (x.float() / 255.0 if x.dtype == torch.uint8 else x.float()).unsqueeze(1)


@torch.no_grad()
def predict_volumes(model: nn.Module, images: np.ndarray, *, tta: Mode = "flips", batch_size: int = 16) -> np.ndarray:
    """Class probabilities (n, K), averaged over the test-time views."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = _to_tensor(images[i:i + batch_size]).to(device)
        probs = [torch.softmax(model(v), dim=1) for v in symmetry_views(x, tta)]
        out.append(torch.stack(probs).mean(0).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.float32)


def decide(probs: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Class per row: positive when p(class 1) >= `threshold` for binary tasks with one, else the arg-max."""
    if threshold is None or probs.shape[1] != 2:
        return probs.argmax(1)
    return (probs[:, 1] >= threshold).astype(np.int64)


def choose_threshold(labels: np.ndarray, positive_probs: np.ndarray) -> float:
    """The decision threshold with the best accuracy on (validation) data; the nearest to 0.5 among ties."""
    p = np.sort(np.unique(np.asarray(positive_probs, dtype=np.float64)))
    candidates = np.r_[0.5, (p[1:] + p[:-1]) / 2 if len(p) > 1 else []]
    acc = np.array([np.mean((positive_probs >= t) == (labels == 1)) for t in candidates])
    best = np.flatnonzero(acc >= acc.max() - 1e-12)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


def binary_scores(labels: np.ndarray, probs: np.ndarray, threshold: float | None = None) -> dict:
    pred = decide(probs, threshold)
    out = {"acc": accuracy(labels, pred), "n": int(len(labels)),
           "confusion": confusion_matrix(labels, pred, probs.shape[1]).tolist()}
    if threshold is not None and probs.shape[1] == 2:
        out["threshold"] = threshold
        out["acc_at_0.5"] = accuracy(labels, probs.argmax(1))
    if probs.shape[1] == 2:
        out["auc"] = roc_auc(probs[:, 1], labels == 1)
    else:  # mean one-vs-rest AUC, as MedMNIST reports for multi-class tasks
        out["auc"] = float(np.mean([roc_auc(probs[:, k], labels == k) for k in range(probs.shape[1])
                                    if 0 < (labels == k).sum() < len(labels)]))
    return out


@dataclass
class TrainedVolumes:
    model: nn.Module
    settings: VolumeSettings
    fit: FitResult
    size: int
    num_classes: int
    val: dict
    threshold: float | None = None  # binary tasks: p(class 1) at or above it is class 1


def train_volumes(data: str | Path, *, settings: VolumeSettings = VolumeSettings(),
                  on_epoch: Callable[[EpochReport], None] | None = None,
                  on_step: Callable[[int, float], None] | None = None) -> TrainedVolumes:
    """Train on the 'train' split of a MedMNIST 3D .npz; keep the epoch with the best 'val' AUC."""
    train, val = load_split(data, "train"), load_split(data, "val")
    size = train.images.shape[1]
    if train.images.shape[1:] != (size,) * 3:
        raise VolumeError(f"volumes must be cubes (n, S, S, S), got {train.images.shape}")
    num_classes = int(max(train.labels.max(), val.labels.max())) + 1
    if num_classes < 2:
        raise VolumeError("the training labels hold a single class; nothing to learn")
    model = build_model(settings.model_config(size, num_classes))
    bs = settings.train.batch_size
    shift = int(round(settings.shift * size / 28))
    n = len(train.labels)

    def batches(rng: np.random.Generator):
        order = rng.permutation(n)
        for i in range(0, n - bs + 1, bs):
            idx = np.sort(order[i:i + bs])
            x = augment(_to_tensor(train.images[idx]), rng, mode=settings.augmentation, shift=shift)
            yield x, None, torch.from_numpy(train.labels[idx])

    loss = nn.CrossEntropyLoss()
    val_report: dict = {}

    val_probs: list[np.ndarray] = []  # per epoch; the best epoch's choose the threshold

    def validate(m: nn.Module) -> float:
        val_probs.append(predict_volumes(m, val.images, tta=settings.tta))
        s = binary_scores(val.labels, val_probs[-1])
        val_report.setdefault("epochs", []).append({"auc": s["auc"], "acc": s["acc"]})
        return s["auc"] + 1e-3 * s["acc"]  # AUC first, ACC breaks ties

    result = fit(model, batches=batches, steps_per_epoch=n // bs, loss_fn=lambda z, y: loss(z, y),
                 settings=settings.train, validate=validate, on_epoch=on_epoch, on_step=on_step)
    best = val_report["epochs"][result.best_epoch - 1]
    threshold = None
    if num_classes == 2:
        probs = val_probs[result.best_epoch - 1]  # fit() left the model with that epoch's weights
        threshold = choose_threshold(val.labels, probs[:, 1])
        best["acc_at_threshold"] = binary_scores(val.labels, probs, threshold)["acc"]
    return TrainedVolumes(model, settings, result, size, num_classes, best, threshold)


#: What the labels of the MedMNIST 3D sets mean (MedMNIST v2's INFO), kept with a model trained on one.
MEDMNIST_CLASSES = {"adrenalmnist3d": ("normal", "hyperplasia")}


def class_names(dataset: str) -> list[str]:
    return list(MEDMNIST_CLASSES.get(dataset.split("_")[0].split(".")[0].lower(), ()))


def save_volumes(path: str | Path, trained: TrainedVolumes, *, dataset: str = "") -> Path:
    info = {"size": trained.size, "num_classes": trained.num_classes, "tta": trained.settings.tta,
            "classes": class_names(dataset),
            "settings": trained.settings.to_dict(), "dataset": dataset, "best_epoch": trained.fit.best_epoch,
            "val": trained.val, "train_seconds": round(trained.fit.seconds, 1),
            "threshold": trained.threshold}
    return save_checkpoint(path, trained.model, task=TASK, architecture="resnet",
                           config=trained.settings.model_config(trained.size, trained.num_classes), info=info,
                           history=trained.fit.history_dicts())


def evaluate_volumes(checkpoint: str | Path, data: str | Path, *, split: str = "test", device: str = "auto") -> dict:
    """AUC, ACC and the confusion matrix of a checkpoint on one split; `_probs` / `_labels` for plots."""
    from ...runtime.device import resolve_device

    ck = load_checkpoint(checkpoint, task=TASK, device=resolve_device(device))
    part = load_split(data, split)
    if part.images.shape[1] != ck.info["size"]:
        raise VolumeError(f"the model was trained on {ck.info['size']}^3 volumes, {data} holds "
                          f"{part.images.shape[1]}^3; use the matching file or model")
    t0 = time.perf_counter()
    probs = predict_volumes(ck.model, part.images, tta=ck.info.get("tta", "none"))
    out = binary_scores(part.labels, probs, ck.info.get("threshold"))
    out.update({"split": split, "seconds": round(time.perf_counter() - t0, 2), "_probs": probs,
                "_labels": part.labels})
    return out


@dataclass(frozen=True)
class VolumePrediction:
    name: str
    label: int
    probabilities: tuple[float, ...]
    volume: np.ndarray  # the model's input (size^3, float in [0, 1]), for pictures
    class_name: str = ""  # what the label means, where the model knows (its training set's names)


def predict_files(checkpoint: str | Path, paths: list[str | Path], *, device: str = "auto",
                  on_volume: Callable[[str], None] | None = None) -> list[VolumePrediction]:
    """Predictions for every volume in `paths` (files or folders; .npy, .npz, .nii, .nii.gz)."""
    from ...runtime.device import resolve_device
    from .io import list_volume_files, read_volumes

    ck = load_checkpoint(checkpoint, task=TASK, device=resolve_device(device))
    size = int(ck.info["size"])
    names = list(ck.info.get("classes") or class_names(str(ck.info.get("dataset", ""))))
    files = [f for p in paths for f in list_volume_files(p)]
    out = []
    for f in files:
        for name, vol in read_volumes(f):
            x = as_model_input(vol, size)
            probs = predict_volumes(ck.model, x[None], tta=ck.info.get("tta", "none"))[0]
            # x is float in [0, 1]; predict_volumes only divides uint8 by 255
            label = int(decide(probs[None], ck.info.get("threshold"))[0])
            out.append(VolumePrediction(name, label, tuple(float(p) for p in probs), x,
                                        names[label] if label < len(names) else ""))
            if on_volume:
                on_volume(name)
    return out


def save_montage(path: str | Path, predictions: list[VolumePrediction], *, columns: int = 4,
                 class_names: tuple[str, ...] | None = None, truth: list[int] | None = None) -> Path:
    """A PNG with three orthogonal slices through each volume's centre, titled with its prediction."""
    from ..plots import new_figure, save_figure

    if not predictions:
        raise VolumeError("no predictions to draw")
    n = len(predictions)
    rows = -(-n // columns)
    fig = new_figure(2.4 * columns, 0.95 * rows + 0.25)
    grid = fig.add_gridspec(rows, columns)
    for i, p in enumerate(predictions):
        sub = grid[i // columns, i % columns].subgridspec(1, 3, wspace=0.02)
        v = p.volume
        mass = v > v.mean()
        c = [int(round(np.mean(np.nonzero(mass)[a]))) if mass.any() else v.shape[a] // 2 for a in range(3)]
        views = (v[c[0]], v[:, c[1]], v[:, :, c[2]])
        for j, img in enumerate(views):
            ax = fig.add_subplot(sub[0, j])
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 1:
                label = class_names[p.label] if class_names else str(p.label)
                title = f"{p.name[-18:]}\n{label} p={p.probabilities[p.label]:.2f}"
                colour = "black"
                if truth is not None:
                    title += f" (true {truth[i]})"
                    colour = "green" if truth[i] == p.label else "red"
                ax.set_title(title, fontsize=6.5, color=colour)
    return save_figure(fig, path)
