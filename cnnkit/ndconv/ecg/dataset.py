"""Beats of many records as arrays: windows, RR features, AAMI labels, record names.

Positions come from the reference annotations ("reference", the protocol's
standard) or from the QRS detector ("detected"); detected beats get the label of
the reference beat they match within 150 ms, and `NO_BEAT` when they match none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ...errors import SettingsError, SignalError
from .aami import CLASSES, class_index
from .beats import beat_inputs
from .qrs import detect_qrs, match_beats
from .records import DEFAULT_LEAD, read_record

Q_LABEL = -1  # a reference Q beat (paced / unclassifiable): reported, not trained on
NO_BEAT = -2  # a detected beat that matches no reference beat


@dataclass
class BeatSet:
    windows: np.ndarray  # (n, 2, W) float32
    rr: np.ndarray  # (n, len(RR_FEATURES)) float32
    labels: np.ndarray  # (n,) index into CLASSES, Q_LABEL or NO_BEAT
    records: np.ndarray  # (n,) record name per beat
    positions: np.ndarray  # (n,) sample at 360 Hz
    detection: dict[str, dict[str, int]] | None = None  # per record tp/fn/fp when detected

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> BeatSet:
        return BeatSet(self.windows[mask], self.rr[mask], self.labels[mask], self.records[mask], self.positions[mask])

    def counts(self) -> dict[str, int]:
        out = {c: int((self.labels == i).sum()) for i, c in enumerate(CLASSES)}
        out["Q"] = int((self.labels == Q_LABEL).sum())
        return out


def load_beats(data_dir: str | Path, records: Iterable[str], *,
               positions: Literal["reference", "detected"] = "reference",
               on_record: Callable[[str], None] | None = None, lead: str | int = DEFAULT_LEAD,
               closest: bool = False) -> BeatSet:
    """All beats of `records` (names like '100') under `data_dir`, lead `lead` (`records.read_record`)."""
    if positions not in ("reference", "detected"):
        raise SettingsError(f"unknown positions {positions!r}; use 'reference' or 'detected'")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SignalError(f"no data folder at {data_dir}; pass --data DIR (the MIT-BIH folder with 100.hea ...)")
    parts, detection = [], {}
    for name in records:
        rec = read_record(data_dir / name, lead=lead, closest=closest)
        if rec.beats is None or rec.symbols is None:
            raise SignalError(f"record {name} in {data_dir} has no reference annotations ({name}.atr)")
        ref_labels = class_index(list(rec.symbols))
        if positions == "reference":
            pos, labels = rec.beats, ref_labels
        else:
            pos = detect_qrs(rec.signal, rec.fs)
            r, d = match_beats(rec.beats, pos, rec.fs)
            labels = np.full(len(pos), NO_BEAT, dtype=np.int64)
            labels[d] = ref_labels[r]
            detection[name] = {"tp": len(r), "fn": len(rec.beats) - len(r), "fp": len(pos) - len(r)}
        inputs = beat_inputs(rec.signal, rec.fs, pos)
        parts.append((inputs.windows, inputs.rr, labels, np.full(len(pos), name), pos))
        if on_record:
            on_record(name)
    if not parts:
        raise SignalError("no records given")
    w, rr, y, recs, pos = (np.concatenate(p) for p in zip(*parts))
    return BeatSet(w, rr, y, recs, pos, detection or None)
