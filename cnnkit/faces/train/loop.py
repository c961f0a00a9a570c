"""The training loop: P x K batches -> embeddings -> miner -> loss -> optimizer, with validation each epoch.

    settings = TrainSettings(loss="triplet", miner="semihard", epochs=10)
    result = train(model, ImageData(dataset), settings, out="/tmp/model", architecture="small-resnet",
                   arguments={...}, chip_size=96, validation=validation)

The library never prints: `on_step(StepLog)` and `on_epoch(EpochLog)` are
called as it goes, and `OUT/train_log.jsonl` gets one JSON object per step
and per epoch. Each epoch ends with a checkpoint in `OUT/checkpoint/`
(resume with `resume=True`: the same seed gives the same batches and the same
augmentation from there on). A loss that is not finite stops training with
`TrainingError`; the last good checkpoint stays as it was.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import SettingsError, TrainingError
from ...runtime import metrics
from ...runtime.training import seed_everything, warmup_cosine
from .augment import Augment
from .binary_head import FEATURE_CHOICES, BinaryHead, BinaryHeadLoss
from .checkpoint import load_checkpoint, save_checkpoint
from .distances import DISTANCE_CHOICES, make_distance
from .losses import ContrastiveLoss, TripletMarginLoss, triplet_active_fraction
from .miners import MINER_CHOICES, make_miner
from .sampler import PKSampler

log = logging.getLogger(__name__)

LOSS_CHOICES = ("triplet", "contrastive", "binary")
OPTIMIZER_CHOICES = ("adam", "sgd")



@dataclass(frozen=True)
class TrainSettings:
    loss: str = "triplet"
    miner: str = "semihard"
    margin: float = 0.2
    distance: str = "squared-l2"
    epochs: int = 10
    batch_p: int = 16
    batch_k: int = 4
    batches_per_epoch: int | None = None   # default: one pass over the people
    lr: float = 1e-3
    weight_decay: float = 5e-4
    optimizer: str = "adam"
    cosine_schedule: bool = True
    head_features: str = "abs"             # binary loss: the head's pair features
    augment: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, choices in (("loss", self.loss, LOSS_CHOICES), ("miner", self.miner, MINER_CHOICES),
                                     ("distance", self.distance, DISTANCE_CHOICES),
                                     ("optimizer", self.optimizer, OPTIMIZER_CHOICES),
                                     ("head_features", self.head_features, FEATURE_CHOICES)):
            if value not in choices:
                raise SettingsError(f"{name} must be one of {choices}, got {value!r}")
        if self.epochs < 1:
            raise SettingsError(f"epochs must be at least 1, got {self.epochs}")
        if not self.lr > 0:
            raise SettingsError(f"lr must be positive, got {self.lr}")
        if self.margin <= 0:
            raise SettingsError(f"margin must be positive, got {self.margin}")
        if self.batches_per_epoch is not None and self.batches_per_epoch < 1:
            raise SettingsError("batches_per_epoch must be at least 1")


@dataclass
class StepLog:
    epoch: int
    step: int
    loss: float
    active_fraction: float   # of all valid triplets of the batch, loss > 0 at the margin
    mined: int               # triplets (or pairs) the loss used
    mined_active: float      # of those, the fraction with a non-zero loss
    lr: float


@dataclass
class EpochLog:
    epoch: int
    loss: float
    active_fraction: float
    seconds: float
    images_per_second: float
    validation: dict | None = None


@dataclass
class TrainResult:
    epochs: list[EpochLog] = field(default_factory=list)
    steps: list[StepLog] = field(default_factory=list)
    images_per_second: float = 0.0
    resumed_from: int | None = None


# ---------------------------------------------------------------------------------------------
# What a batch is made of


class ImageData:
    """Chips of an IdentityDataset; batches are augmented."""

    is_images = True

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.labels = np.asarray(dataset.labels)

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        return self.dataset.batch(indices)


class EmbeddingData:
    """Precomputed embeddings of a frozen encoder (training a projection or a head on top)."""

    is_images = False

    def __init__(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        self.vectors = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
        self.labels = np.asarray(labels)
        if len(self.vectors) != len(self.labels):
            raise SettingsError("one label per embedding")

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        return self.vectors[torch.as_tensor(indices)]


def embed(model: nn.Module, inputs: torch.Tensor, *, flip: bool, device: torch.device,
          batch_size: int = 128) -> torch.Tensor:
    """Embeddings of inputs (chips: with mirror-image averaging when `flip`, as the pipeline does)."""
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            x = inputs[start:start + batch_size].to(device)
            if flip and x.dim() == 4:
                both = model(torch.cat([x, x.flip(-1)]))
                out.append(((both[:len(x)] + both[len(x):]) / 2).cpu())
            else:
                out.append(model(x).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


class PairValidation:
    """Verification on labelled pairs (a pairs file): accuracy, AUC, threshold.

    `inputs[i]` is what the model takes for image i (a chip, or a frozen
    encoder's embedding); `first`/`second` index it for each pair. With one
    fold, the accuracy uses a threshold chosen by 10-fold cross-validation over
    the pairs (each tenth tested with the threshold of the other nine): no pair
    is scored with a threshold fitted on itself.
    """

    def __init__(self, inputs: torch.Tensor, first: np.ndarray, second: np.ndarray, same: np.ndarray,
                 folds: np.ndarray, *, name: str = "pairs", flip: bool = True) -> None:
        self.inputs, self.first, self.second = inputs, np.asarray(first), np.asarray(second)
        self.same, self.name, self.flip = np.asarray(same, bool), name, flip
        folds = np.asarray(folds)
        self.folds = np.arange(len(folds)) % 10 if len(np.unique(folds)) == 1 else folds

    def distances(self, model: nn.Module, device: torch.device) -> np.ndarray:
        emb = embed(model, self.inputs, flip=self.flip, device=device).numpy()
        return np.linalg.norm(emb[self.first] - emb[self.second], axis=1)

    def evaluate(self, model: nn.Module, device: torch.device) -> dict:
        d = self.distances(model, device)
        if not np.isfinite(d).all():
            return {"pairs": self.name, "accuracy": float("nan"), "auc": float("nan"), "threshold": float("nan")}
        accs, _ = metrics.kfold_accuracy(d, self.same, self.folds)
        return {"pairs": self.name, "accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs, ddof=1)),
                "auc": metrics.auc(d, self.same), "threshold": metrics.best_threshold(d, self.same)}


# ---------------------------------------------------------------------------------------------


def _make_loss(settings: TrainSettings,
               dim: int) -> tuple[TripletMarginLoss | ContrastiveLoss | BinaryHeadLoss, BinaryHead | None]:
    distance = make_distance(settings.distance)
    if settings.loss == "triplet":
        return TripletMarginLoss(margin=settings.margin, distance=distance), None
    if settings.loss == "contrastive":
        return ContrastiveLoss(distance=distance), None
    head = BinaryHead(dim, features=settings.head_features)
    return BinaryHeadLoss(head), head


def _lr_at(settings: TrainSettings, step: int, total: int) -> float:
    return settings.lr * warmup_cosine(step, total) if settings.cosine_schedule else settings.lr


def train(model: nn.Module, data, settings: TrainSettings, *, out: str | os.PathLike, architecture: str,
          arguments: dict, embedding_dim: int, validation: PairValidation | None = None, resume: bool = False,
          device: str | torch.device = "cpu", on_step: Callable[[StepLog], None] | None = None,
          on_epoch: Callable[[EpochLog], None] | None = None) -> tuple[TrainResult, BinaryHead | None]:
    """Train `model` in place; returns the logs and, for the binary loss, the trained head.

    `model` maps a batch of `data` to (B, embedding_dim) embeddings. Saving the
    final model is the caller's (see checkpoint.save_encoder).
    """
    device = torch.device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(settings.seed)
    loss_fn, head = _make_loss(settings, embedding_dim)
    trainable = nn.ModuleDict({"model": model, **({"head": head} if head is not None else {})}).to(device)
    params = [p for p in trainable.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("nothing to train: every parameter is frozen")
    if settings.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay)
    sampler = PKSampler(data.labels, p=settings.batch_p, k=settings.batch_k, seed=settings.seed,
                        batches_per_epoch=settings.batches_per_epoch)
    distance = make_distance(settings.distance)
    generator = torch.Generator().manual_seed(settings.seed)
    miner = make_miner(settings.miner, distance=distance, margin=settings.margin, generator=generator)
    augment = Augment() if settings.augment and data.is_images else None
    total_steps = settings.epochs * len(sampler)
    checkpoint_dir = out / "checkpoint"
    log_file = out / "train_log.jsonl"
    result = TrainResult()
    start_epoch = 0
    state = {"architecture": architecture, "arguments": arguments, "settings": asdict(settings)}
    if resume:
        saved = load_checkpoint(checkpoint_dir, model=trainable, optimizer=optimizer, architecture=architecture,
                                arguments=arguments)
        start_epoch = int(saved["epoch"]) + 1
        result.epochs = [EpochLog(**e) for e in saved.get("history", [])]
        result.resumed_from = int(saved["epoch"])
        log.info("resuming after epoch %d from %s", saved["epoch"], checkpoint_dir)
    elif log_file.exists():
        log_file.unlink()
    trainable.train()
    images_seen, busy = 0, 0.0
    with open(log_file, "a") as log_out:
        for epoch in range(start_epoch, settings.epochs):
            # Seeded per epoch, so a resumed run makes the same batches as an uninterrupted one.
            generator.manual_seed(settings.seed * 100_003 + epoch)
            epoch_start, epoch_images = time.perf_counter(), 0
            losses, actives = [], []
            for step, indices in enumerate(sampler.epoch(epoch)):
                t0 = time.perf_counter()
                global_step = epoch * len(sampler) + step
                lr = _lr_at(settings, global_step, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x = data.batch(indices)
                if augment is not None:
                    x = augment(x, generator)
                labels = torch.as_tensor(data.labels[indices], device=device)
                embeddings = model(x.to(device))
                triplets = miner(embeddings, labels)
                loss = loss_fn(embeddings, labels, triplets if settings.loss == "triplet" or
                               settings.miner != "all" else None)
                if not torch.isfinite(loss.detach()):
                    kept = (f"the last good checkpoint (epoch {result.epochs[-1].epoch}) is kept in {checkpoint_dir}"
                            if result.epochs else "no checkpoint was written yet")
                    raise TrainingError(f"the loss became {float(loss.detach())} at epoch {epoch} step {step}; "
                                        f"training stopped and {kept}; lower --lr (now {settings.lr}) and retry")
                optimizer.zero_grad(set_to_none=True)
                if loss.requires_grad:  # no triplet at all (nothing mined) leaves nothing to learn from
                    loss.backward()
                    optimizer.step()
                busy += time.perf_counter() - t0
                images_seen += len(indices)
                epoch_images += len(indices)
                record = StepLog(epoch=epoch, step=step, loss=float(loss.detach()),
                                 active_fraction=triplet_active_fraction(embeddings, labels, margin=settings.margin,
                                                                         distance=distance),
                                 mined=int(loss_fn.stats.get("triplets", loss_fn.stats.get("pairs", 0))),
                                 mined_active=float(loss_fn.stats.get("active", 0.0)), lr=lr)
                losses.append(record.loss)
                actives.append(record.active_fraction)
                result.steps.append(record)
                log_out.write(json.dumps({"kind": "step", **asdict(record)}) + "\n")
                if on_step:
                    on_step(record)
            seconds = time.perf_counter() - epoch_start
            val = validation.evaluate(model, device) if validation is not None else None
            epoch_log = EpochLog(epoch=epoch, loss=float(np.mean(losses)), active_fraction=float(np.mean(actives)),
                                 seconds=seconds, images_per_second=epoch_images / seconds if seconds > 0 else 0.0,
                                 validation=val)
            result.epochs.append(epoch_log)
            log_out.write(json.dumps({"kind": "epoch", **asdict(epoch_log)}) + "\n")
            log_out.flush()
            save_checkpoint(checkpoint_dir, model=trainable, optimizer=optimizer,
                            state={**state, "epoch": epoch, "history": [asdict(e) for e in result.epochs]})
            if on_epoch:
                on_epoch(epoch_log)
    result.images_per_second = images_seen / busy if busy > 0 else 0.0
    trainable.eval()
    return result, head
