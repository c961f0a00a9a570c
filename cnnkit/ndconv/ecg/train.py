"""Training and evaluating the heartbeat classifier under the inter-patient protocol.

Training uses DS1 only. Choices are made on a patient-wise validation split
inside DS1 (`VALIDATION`: no patient in both parts); `train_ecg` can then train
on the whole of DS1 for the chosen number of epochs. DS2 is touched only by
`evaluate_ecg`.

Class imbalance (DS1: 46k N, 3.8k V, 944 S, 415 F) is handled by a weighted
cross-entropy on top of random undersampling of N: each epoch sees every S, V
and F beat of the training records and a fresh random `n_fraction` of the N
beats; class k then weighs (n / n_k) ** `weight_power` in the loss, counted on
what an epoch sees (1 = fully balanced, 0 = none), normalised to a mean weight
of 1 per beat.

The classifier is an ensemble (`ensemble.EcgEnsemble`): `members` networks
trained alike from different seeds, their probabilities averaged, then mixed
with a class-weighted logistic regression on RR features alone
(`rr_logistic`), share `rr_share`. Cross-validation inside DS1 chose this over
a single network (bench/ndconv/ndconv_ecg_select.py).

The networks read only the beat minus the patient's median beat (`channels`)
and RR features that never take the patient's median RR as the normal one
(`CNN_FEATURES`: seconds, the 5-minute mean, neighbours). With the beat's own
shape, a network learns DS1's bundle-branch-block shapes as classes of their
own and misses such patients' atrial premature beats (DS1 record 207 in
cross-validation, seed 0: 1 of 107 found, 106 called V; 65 without the beat's
own shape, bench/results/ndconv_ecg_select_per_record.json); with the patient's
median RR as the yardstick, a patient whose ectopic atrial rhythm is the
dominant one (DS2 record 232) has no "early" beats at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from ...errors import SettingsError
from ...runtime.training import EpochReport, FitResult, FitSettings, class_weights, fit, predict_batches
from ..checkpoint import load_checkpoint, save_checkpoint
from ..metrics import class_reports, confusion_matrix, macro_f1
from ..models import ResNetConfig
from .aami import CLASSES, DS1, DS2
from .beats import MARGIN, MODEL_FS, RR_FEATURES, check_rr_names, crop_windows, select_rr, window_length
from .dataset import Q_LABEL, BeatSet, load_beats
from .ensemble import ARCHITECTURE, EcgEnsemble, ensemble_from_info, union_names
from .rr_logistic import fit_rr_logistic

log = logging.getLogger(__name__)

TASK = "ecg"
#: Patient-wise validation records inside DS1: a quarter of its S and of its V beats, and one of
#: its two records with atrial fibrillation (201; 203 stays in training).
VALIDATION = ("106", "118", "201", "215", "230")
#: What the networks read beside the beat: RR in seconds (de Chazal et al. 2004), relative to the 5-minute mean RR
#: and to the neighbouring beats, and the rhythm's irregularity; not relative to the patient's median RR, which
#: is an ectopic beat's RR when most beats are ectopic (record 232 of DS2). Chosen by cross-validation inside DS1
#: (bench/ndconv/ndconv_ecg_select.py, "diff-abs-rr" against "3-small+rr-logistic").
CNN_FEATURES = ("pre/post", "pre/local", "irregularity", "irregularity-lag2", "pre_s", "post_s", "local_s",
                "average_s", "pre/average", "post/average", "local/average")
#: What the RR logistic model reads: the rhythm relative to itself (pre/post, pre/local, irregularity) and to
#: the 5-minute mean RR; none of them takes the patient's median beat as the normal one.
RR_MODEL_FEATURES = ("pre/post", "pre/local", "irregularity", "irregularity-lag2", "pre/average", "post/average",
                     "local/average")


@dataclass(frozen=True, kw_only=True)
class EcgSettings:
    # widths, dropout and weight_power chosen by cross-validation inside DS1 (bench/ndconv/ndconv_ecg_select.py):
    # a smaller network with more dropout generalised better to unseen patients
    widths: tuple[int, ...] = (8, 16, 32)
    kernel_size: int = 7
    dropout: float = 0.5
    weight_power: float = 1.0
    n_fraction: float = 0.35  # share of the N beats drawn afresh each epoch (random undersampling)
    jitter: int = MARGIN  # samples at MODEL_FS
    amplitude: float = 0.2  # gain drawn from [1 - a, 1 + a]
    noise: float = 0.03
    rr_noise: float = 0.03
    use_rr: bool = True
    rr_features: tuple[str, ...] = CNN_FEATURES  # the networks' side features, by name (beats.RR_FEATURES)
    # the window channels the networks read: 0 the beat, 1 the beat minus the record's median beat. Only 1 by
    # default: a network that sees the beat's own shape files DS1's bundle-branch-block shapes by shape, and keeps
    # doing so when such beats come early (see the module docstring; docs/ndconv.md, "Why the S beats ...")
    channels: tuple[int, ...] = (1,)
    members: int = 3  # networks in the ensemble, seeds train.seed * members + i
    rr_share: float = 0.5  # weight of the RR logistic model in the averaged probabilities (0: networks only)
    rr_model_features: tuple[str, ...] = RR_MODEL_FEATURES
    rr_model_weight_power: float = 0.5
    train: FitSettings = FitSettings(epochs=12, batch_size=128, lr=2e-3, weight_decay=1e-3)

    def __post_init__(self) -> None:
        if not 0 <= self.weight_power <= 1.5:
            raise SettingsError("weight_power must be in [0, 1.5]")
        if not 0 < self.n_fraction <= 1:
            raise SettingsError("n_fraction must be in (0, 1]")
        if not 0 <= self.jitter <= MARGIN:
            raise SettingsError(f"jitter must be in [0, {MARGIN}] samples")
        if self.members < 1:
            raise SettingsError("members must be >= 1")
        if not 0 <= self.rr_share < 1:
            raise SettingsError("rr_share must be in [0, 1)")
        check_rr_names(self.rr_features)
        check_rr_names(self.rr_model_features)
        if not self.channels or len(set(self.channels)) != len(self.channels) or not set(self.channels) <= {0, 1}:
            raise SettingsError("channels must be (0,), (1,) or (0, 1): 0 the beat, 1 the beat minus the median beat")
        if self.rr_share > 0 and not self.rr_model_features:
            raise SettingsError("rr_share > 0 needs rr_model_features")

    @property
    def cnn_features(self) -> tuple[str, ...]:
        """The RR features each network reads (none without use_rr)."""
        return tuple(self.rr_features) if self.use_rr else ()

    @property
    def rr_model_inputs(self) -> tuple[str, ...]:
        """The RR logistic model's features (none when it takes no share)."""
        return tuple(self.rr_model_features) if self.rr_share > 0 else ()

    @property
    def side_names(self) -> tuple[str, ...]:
        """The RR features the whole ensemble reads, in the order of RR_FEATURES."""
        return union_names(self.cnn_features, self.rr_model_inputs)

    def model_config(self) -> ResNetConfig:
        return ResNetConfig(dim=1, in_channels=len(self.channels), num_classes=len(CLASSES), widths=self.widths,
                            kernel_size=self.kernel_size, stem_kernel=self.kernel_size, dropout=self.dropout,
                            side_features=len(self.cnn_features))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        return d


def _batches(data: BeatSet, s: EcgSettings) -> Callable[[np.random.Generator], Iterator]:
    bs = s.train.batch_size
    normal = np.flatnonzero(data.labels == 0)
    other = np.flatnonzero(data.labels > 0)
    take = int(round(s.n_fraction * len(normal)))

    def gen(rng: np.random.Generator):
        order = rng.permutation(np.r_[rng.choice(normal, size=take, replace=False), other])
        for i in range(0, len(order) - bs + 1, bs):
            idx = np.sort(order[i:i + bs])
            shift = rng.integers(-s.jitter, s.jitter + 1, size=len(idx)) if s.jitter else 0
            x = crop_windows(data.windows[idx][:, list(s.channels)], shift)
            x = x * rng.uniform(1 - s.amplitude, 1 + s.amplitude, size=(len(idx), 1, 1))
            x = x + rng.normal(0, s.noise, size=x.shape)
            side = None
            if s.cnn_features:
                rr = select_rr(data.rr[idx], s.cnn_features)
                side = torch.from_numpy((rr + rng.normal(0, s.rr_noise, size=rr.shape)).astype(np.float32))
            yield (torch.from_numpy(x.astype(np.float32)), side,
                   torch.from_numpy(data.labels[idx]))
    return gen


def predict_beats(model: nn.Module, windows: np.ndarray, rr: np.ndarray, side_names: tuple[str, ...] | list[str], *,
                  batch_size: int = 512) -> np.ndarray:
    """Class probabilities (n, 4) for beats given as windows (with margins) and all RR features."""
    side = select_rr(rr, side_names) if side_names else None
    return predict_batches(model, crop_windows(windows), side, batch_size=batch_size)


def score_beats(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Confusion matrix over N, S, V, F beats (Q and unmatched detections left out) and per-class metrics."""
    keep = labels >= 0
    cm = confusion_matrix(labels[keep], predicted[keep], len(CLASSES))
    reports = class_reports(cm, CLASSES)
    q = labels == Q_LABEL
    return {
        "confusion": cm.tolist(),
        "classes": [r.to_dict() for r in reports],
        "macro_f1": macro_f1(reports),
        "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "q_beats": int(q.sum()),
        "q_predicted_as": {c: int((predicted[q] == i).sum()) for i, c in enumerate(CLASSES)},
    }


def validation_score(labels: np.ndarray, predicted: np.ndarray) -> float:
    """What model selection maximises: the mean F1 of N, S and V (F is too rare outside record 208)."""
    keep = labels >= 0
    reports = class_reports(confusion_matrix(labels[keep], predicted[keep], len(CLASSES)), CLASSES)
    return float(np.mean([r.f1 for r in reports if r.name in ("N", "S", "V")]))


@dataclass
class TrainedEcg:
    model: EcgEnsemble
    settings: EcgSettings
    fits: list[FitResult]  # one per network
    train_records: tuple[str, ...]
    validation_records: tuple[str, ...]
    train_counts: dict[str, int]
    validation_score: float | None  # the ensemble's, on the validation records
    seconds: float

    def summary(self) -> dict:
        return {"best_epochs": [f.best_epoch for f in self.fits], "validation_score": self.validation_score,
                "member_validation_scores": [f.best_score for f in self.fits], "train_seconds": round(self.seconds, 1)}

    def history_dicts(self) -> list[dict]:
        return [{"member": i, **h} for i, f in enumerate(self.fits) for h in f.history_dicts()]


def train_ecg(data_dir: str | Path, *, settings: EcgSettings = EcgSettings(),
              train_records: tuple[str, ...] | None = None, validation_records: tuple[str, ...] | None = VALIDATION,
              on_epoch: Callable[[EpochReport], None] | None = None,
              on_record: Callable[[str], None] | None = None, on_step: Callable[[int, float], None] | None = None,
              on_member: Callable[[int], None] | None = None, data: BeatSet | None = None) -> TrainedEcg:
    """Train on DS1 (minus `validation_records`, which choose each network's best epoch); DS2 is refused.

    With `validation_records=None` it trains on all of `train_records` for
    `settings.train.epochs` epochs and keeps the last epoch. `on_member(i)` is
    called before network i is trained.
    """
    val = tuple(validation_records or ())
    if train_records is None:
        train_records = tuple(r for r in DS1 if r not in val)
    leak = (set(train_records) | set(val)) & set(DS2)
    if leak:
        raise SettingsError(f"records {sorted(leak)} belong to the DS2 test set; train and tune on DS1 only")
    if set(train_records) & set(val):
        raise SettingsError("a record cannot be in both the training and the validation part")
    if data is None:
        data = load_beats(data_dir, train_records + val, on_record=on_record)
    train = data.subset(np.isin(data.records, train_records) & (data.labels >= 0))
    valid = data.subset(np.isin(data.records, val) & (data.labels >= 0)) if val else None
    t0 = time.perf_counter()
    seen = np.r_[train.labels[train.labels > 0], np.zeros(int(round(settings.n_fraction * (train.labels == 0).sum())),
                                                           dtype=np.int64)]
    weights = torch.from_numpy(class_weights(seen, settings.weight_power, len(CLASSES)))
    loss = nn.CrossEntropyLoss(weight=weights)
    steps = len(seen) // settings.train.batch_size

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss.to(logits.device)(logits, y)

    validate = None
    if valid is not None:
        def validate(m: nn.Module) -> float:
            return validation_score(valid.labels, predict_beats(m, valid.windows[:, list(settings.channels)], valid.rr,
                                                                settings.cnn_features).argmax(1))

    ensemble = EcgEnsemble(settings.model_config(), members=settings.members, cnn_features=settings.cnn_features,
                           rr_model_features=settings.rr_model_inputs, rr_share=settings.rr_share,
                           channels=settings.channels)
    fits = []
    for i, network in enumerate(ensemble.networks):
        if on_member:
            on_member(i)
        member_train = replace(settings.train, seed=settings.train.seed * settings.members + i)
        fits.append(fit(network, batches=_batches(train, settings), steps_per_epoch=steps, loss_fn=loss_fn,
                        settings=member_train, validate=validate, on_epoch=on_epoch, on_step=on_step))
    if ensemble.rr_model is not None:
        rr_model = fit_rr_logistic(select_rr(train.rr, settings.rr_model_inputs), train.labels,
                                   classes=len(CLASSES), weight_power=settings.rr_model_weight_power)
        ensemble.rr_model.load_state_dict(rr_model.state_dict())
    ensemble.eval()
    score = None
    if valid is not None:
        score = validation_score(valid.labels,
                                 predict_beats(ensemble, valid.windows, valid.rr, settings.side_names).argmax(1))
    return TrainedEcg(ensemble, settings, fits, tuple(train_records), val, train.counts(), score,
                      time.perf_counter() - t0)


def save_ecg(path: str | Path, trained: TrainedEcg) -> Path:
    before, after = window_length()
    info = {"classes": list(CLASSES), "model_fs": MODEL_FS, "window": [before, after],
            "rr_features": list(trained.settings.side_names),
            "use_rr": bool(trained.settings.side_names), "lead": "MLII", "settings": trained.settings.to_dict(),
            "train_records": list(trained.train_records), "validation_records": list(trained.validation_records),
            "train_counts": trained.train_counts, **trained.summary(),
            "ensemble": {"members": trained.settings.members, "cnn_features": list(trained.settings.cnn_features),
                         "rr_model_features": list(trained.settings.rr_model_inputs),
                         "rr_share": trained.settings.rr_share, "channels": list(trained.settings.channels)}}
    return save_checkpoint(path, trained.model, task=TASK, architecture=ARCHITECTURE,
                           config=trained.settings.model_config(), info=info, history=trained.history_dicts())


def load_ecg(checkpoint: str | Path, *, device: str = "auto"):
    """An ECG checkpoint, refused when it was made for other beat inputs (RR features, rate, window)."""
    from ...errors import CheckpointError
    from ...runtime.device import resolve_device

    ck = load_checkpoint(checkpoint, task=TASK, device=resolve_device(device),
                         builders={ARCHITECTURE: ensemble_from_info})
    before, after = window_length()
    side = checkpoint_side_names(ck)  # older checkpoints stored every feature
    # a single network (earlier releases) reads its side features directly; an ensemble names what it reads
    consistent = (tuple(side) == ck.model.side_names if isinstance(ck.model, EcgEnsemble)
                  else len(side) == ck.config.side_features)
    if not set(side) <= set(RR_FEATURES) or not consistent \
            or ck.info.get("model_fs") != MODEL_FS or list(ck.info.get("window", [])) != [before, after]:
        raise CheckpointError(f"{checkpoint} was trained on other beat inputs than this cnnkit makes; retrain it "
                              "(cnnkit ndconv ecg train)")
    return ck


def checkpoint_side_names(ck) -> list[str]:
    """The RR features an ECG checkpoint's model reads, in order."""
    return list(ck.info.get("rr_features", [])) if ck.info.get("use_rr", True) else []


def trained_lead(ck) -> str:
    """The lead an ECG checkpoint was trained on (MLII for every checkpoint so far)."""
    return str(ck.info.get("lead", "MLII"))


def evaluate_ecg(checkpoint: str | Path, data_dir: str | Path, *, records: tuple[str, ...] = DS2,
                 positions: Literal["reference", "detected"] = "reference", device: str = "auto",
                 on_record: Callable[[str], None] | None = None, lead: str | int | None = None) -> dict:
    """Per-class Se, +P, F1 and macro F1 on `records` (default DS2); with detected beats also QRS Se / +P.

    `lead` None: the lead the model was trained on, or the closest one a record has (with a warning);
    a lead given by name or index must be there.
    """
    ck = load_ecg(checkpoint, device=device)
    t0 = time.perf_counter()
    data = load_beats(data_dir, records, positions=positions, on_record=on_record,
                      lead=trained_lead(ck) if lead is None else lead, closest=lead is None)
    prob = predict_beats(ck.model, data.windows, data.rr, checkpoint_side_names(ck))
    pred = prob.argmax(1)
    report = score_beats(data.labels, pred)
    report.update({"records": list(records), "positions": positions, "beats": int(len(data)),
                   "seconds": round(time.perf_counter() - t0, 1)})
    keep = data.labels >= 0
    # rows: true N, S, V, F; columns: predicted (one patient can hold most of a class: 232 has 75 % of DS2's S)
    report["per_record"] = {r: confusion_matrix(data.labels[keep & (data.records == r)],
                                                pred[keep & (data.records == r)], len(CLASSES)).tolist()
                            for r in records}
    if data.detection:
        tp = sum(d["tp"] for d in data.detection.values())
        fn = sum(d["fn"] for d in data.detection.values())
        fp = sum(d["fp"] for d in data.detection.values())
        report["qrs"] = {"tp": tp, "fn": fn, "fp": fp, "se": tp / max(tp + fn, 1), "ppv": tp / max(tp + fp, 1),
                         "per_record": data.detection, "tolerance_ms": 150}
    keep = data.labels >= 0
    report["_probabilities"] = prob[keep]
    report["_labels"] = data.labels[keep]
    return report
