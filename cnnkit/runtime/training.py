"""The supervised training loop of the ndconv tasks, and the pieces every training loop shares.

`fit`: seeds, device, AdamW + warm-up and cosine schedule, best-on-validation
(ECG beats, CT volumes, video clips). `seed_everything` and `warmup_cosine`
are shared with the face encoders' metric-learning loop (faces/train/loop.py),
which has its own batches (P x K), miners and resumable checkpoints.

The caller supplies the batches (a function of the epoch's random generator, so
shuffling and augmentation are reproducible from the seed), the loss, and a
validation score (larger is better) used to keep the best epoch's weights.
Progress goes to `on_epoch` / `on_step` callbacks and to logging, never print.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..errors import SettingsError
from .device import resolve_device

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, "torch.Tensor | None", torch.Tensor]  # (inputs, side features or None, targets)


@dataclass(frozen=True, kw_only=True)
class FitSettings:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = 0.5
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # torch CPU threads (None: PyTorch's default)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise SettingsError("epochs and batch_size must be >= 1")
        if self.lr <= 0:
            raise SettingsError("lr must be > 0")
        if self.schedule not in ("cosine", "constant"):
            raise SettingsError(f"unknown schedule {self.schedule!r}; use 'cosine' or 'constant'")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EpochReport:
    epoch: int
    train_loss: float
    val_score: float | None
    seconds: float
    lr: float
    best: bool = False


@dataclass
class FitResult:
    best_epoch: int
    best_score: float | None
    seconds: float
    history: list[EpochReport] = field(default_factory=list)

    def history_dicts(self) -> list[dict]:
        return [asdict(h) for h in self.history]


def class_weights(labels: np.ndarray, power: float, classes: int) -> np.ndarray:
    """Loss weight per class, (n / n_k) ** power (1 balanced, 0 none), 0 for a class with no examples,
    normalised so that the mean weight per example is 1."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=classes)[:classes].astype(np.float64)
    w = (counts.sum() / np.maximum(counts, 1)) ** power
    w[counts == 0] = 0
    return (w / (w * counts).sum() * counts.sum()).astype(np.float32)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and PyTorch; returns a NumPy generator for the caller's own draws."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def warmup_cosine(step: int, total: int, warmup: int = 0) -> float:
    """The learning-rate factor at `step` of `total`: linear warm-up over `warmup` steps, then a cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def fit(model: nn.Module, *, batches: Callable[[np.random.Generator], Iterable[Batch]], steps_per_epoch: int,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], settings: FitSettings,
        validate: Callable[[nn.Module], float] | None = None,
        on_epoch: Callable[[EpochReport], None] | None = None,
        on_step: Callable[[int, float], None] | None = None) -> FitResult:
    """Train `model` in place; at the end it holds the best validation epoch's weights (or the last)."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = resolve_device(settings.device)
    rng = seed_everything(settings.seed)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    total = settings.epochs * steps_per_epoch
    warm = max(1, int(settings.warmup_epochs * steps_per_epoch))

    def lr_at(step: int) -> float:
        if settings.schedule == "constant" and step >= warm:
            return 1.0
        return warmup_cosine(step, total, warm)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    best_state, best_score, best_epoch = None, None, settings.epochs
    history: list[EpochReport] = []
    start = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        losses = []
        for x, side, y in batches(rng):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            side = side.to(device) if side is not None else None
            loss = loss_fn(model(x, side), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if on_step:
                on_step(len(losses), losses[-1])
        score = None
        if validate is not None:
            model.eval()
            with torch.no_grad():
                score = float(validate(model))
        report = EpochReport(epoch, float(np.mean(losses)) if losses else float("nan"), score,
                             time.perf_counter() - t0, opt.param_groups[0]["lr"])
        if score is not None and (best_score is None or score > best_score):
            best_score, best_epoch, report.best = score, epoch, True
            best_state = copy.deepcopy(model.state_dict())
        history.append(report)
        log.info("epoch %d loss %.4f val %s (%.1fs)", epoch, report.train_loss, score, report.seconds)
        if on_epoch:
            on_epoch(report)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch, best_score, time.perf_counter() - start, history)


@torch.no_grad()
def predict_batches(model: nn.Module, inputs: torch.Tensor | np.ndarray, side: torch.Tensor | np.ndarray | None = None,
                    *, batch_size: int = 256, device: torch.device | str | None = None,
                    transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
    """Softmax probabilities of `model` over `inputs`, in batches, as a NumPy array."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(inputs), batch_size):
        chunk = inputs[i:i + batch_size]
        x = torch.as_tensor(np.asarray(chunk) if isinstance(inputs, np.ndarray) else chunk)
        x = transform(x) if transform else x.float()
        s = None
        if side is not None:
            s = torch.as_tensor(side[i:i + batch_size]).float().to(device)
        out.append(torch.softmax(model(x.to(device), s), dim=1).float().cpu().numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out)
