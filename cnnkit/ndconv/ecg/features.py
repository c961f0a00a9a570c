"""Engineered beat features in the manner of de Chazal, O'Dwyer & Reilly (IEEE TBME 51(7), 2004).

Per lead, from the beat windows that `beats.beat_inputs` cuts (0.5-40 Hz, at
`beats.MODEL_FS`, the R wave at a known index), all times in seconds so any
sampling rate gives the same features:

- QRS morphology: 10 samples evenly spaced from 50 ms before to 100 ms after the
  R wave, relative to the isoelectric level (median of the PR segment, 120 to
  60 ms before R);
- T-wave morphology: 9 samples from 150 to 450 ms after R, same level;
- QRS duration: the span around R where |signal - level| stays above 15 % of
  the R amplitude, searched within +-150 ms; T-wave duration likewise above 30 %
  of the T peak within 150-500 ms (the 2004 paper used ecgpuwave's onsets and
  offsets: here simple thresholds, so no second program is needed);
- P wave: peak |signal - level| from 250 to 80 ms before R, relative to the R
  amplitude (the paper used a present / absent flag from ecgpuwave).

The RR features in seconds (pre, post, local, 5-minute average) come from
`beats.rr_features` ("pre_s", "post_s", "local_s", "average_s").

`MORPHOLOGY_FEATURES` names the columns of `morphology_features`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import SettingsError, SignalError
from ...runtime.extras import require
from .beats import MARGIN, MODEL_FS, window_length

QRS_SAMPLES = 10
T_SAMPLES = 9
MORPHOLOGY_FEATURES = (tuple(f"qrs{i}" for i in range(QRS_SAMPLES)) + tuple(f"t{i}" for i in range(T_SAMPLES))
                       + ("qrs_duration", "t_duration", "p_amplitude"))


def _at(seconds: float, fs: int) -> int:
    return int(round(seconds * fs))


def _span_above(env: np.ndarray, start: np.ndarray, lo: int, hi: int, level: np.ndarray) -> np.ndarray:
    """Per row i: samples around start[i] (within [lo, hi)) while env > level[i], counting start[i] itself."""
    n, width = env.shape
    hi = min(hi, width)
    rows = np.arange(n)
    above = env > level[:, None]
    count = np.ones(n, dtype=np.int64)
    for step in (-1, 1):
        alive = np.ones(n, dtype=bool)
        for k in range(1, hi - lo):
            col = start + step * k
            inside = (col >= lo) & (col < hi)
            alive &= inside & above[rows, np.clip(col, 0, width - 1)]
            if not alive.any():
                break
            count += alive
    return count


def morphology_features(windows: np.ndarray, fs: int = MODEL_FS) -> np.ndarray:
    """(n, len(MORPHOLOGY_FEATURES)) float32 from (n, W) beat windows with margins (one lead).

    The windows are those of `beats.beat_inputs` (channel 0, the beat itself):
    R at index MARGIN + samples before R.
    """
    x = np.asarray(windows, dtype=np.float64)
    before, _ = window_length(fs)
    r = MARGIN + before
    level = np.median(x[:, r - _at(0.12, fs): r - _at(0.06, fs) + 1], axis=1)
    y = x - level[:, None]
    qrs_idx = np.round(r + np.linspace(-0.05, 0.10, QRS_SAMPLES) * fs).astype(np.int64)
    t_idx = np.round(r + np.linspace(0.15, 0.45, T_SAMPLES) * fs).astype(np.int64)
    t_idx = np.minimum(t_idx, x.shape[1] - 1)
    env = np.abs(y)
    r_amp = np.maximum(env[:, r - _at(0.02, fs): r + _at(0.02, fs) + 1].max(axis=1), 1e-6)
    start = np.full(len(x), r, dtype=np.int64)
    qrs_dur = _span_above(env, start, r - _at(0.15, fs), r + _at(0.15, fs) + 1, 0.15 * r_amp) / fs
    t_lo, t_hi = r + _at(0.15, fs), min(x.shape[1], r + _at(0.5, fs))
    t_env = env[:, t_lo:t_hi]
    t_peak = t_lo + t_env.argmax(axis=1)
    t_dur = _span_above(env, t_peak, t_lo, t_hi, 0.3 * env[np.arange(len(x)), t_peak]) / fs
    p_amp = env[:, r - _at(0.25, fs): r - _at(0.08, fs) + 1].max(axis=1) / r_amp
    out = np.concatenate([y[:, qrs_idx], y[:, t_idx], qrs_dur[:, None], t_dur[:, None], p_amp[:, None]], axis=1)
    return np.clip(out, -20, 20).astype(np.float32)


#: The de Chazal et al. (2004) feature set here: RR in seconds and both leads' morphology (`MORPHOLOGY_FEATURES`,
#: prefixed "lead1:" for the trained lead, MLII on MIT-BIH, and "lead2:" for the record's other lead).
RR_SECONDS = ("pre_s", "post_s", "local_s", "average_s")


def de_chazal_names(leads: int = 2) -> tuple[str, ...]:
    return RR_SECONDS + tuple(f"lead{k + 1}:{m}" for k in range(leads) for m in MORPHOLOGY_FEATURES)


def de_chazal_features(data_dir: str | Path, records: Sequence[str], *, leads: int = 2,
                       lead: str = "MLII") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (n, len(de_chazal_names(leads))), labels (index into CLASSES, -1 for Q), record per beat).

    The reference beats of each record; `lead` first, then (leads=2) the record's other lead.
    """
    from .aami import class_index
    from .beats import RR_FEATURES, beat_inputs
    from .records import read_record

    if leads not in (1, 2):
        raise SettingsError("leads must be 1 or 2")
    rows, labels, names = [], [], []
    for name in records:
        first = read_record(Path(data_dir) / name, lead=lead)
        if first.beats is None or first.symbols is None:
            raise SignalError(f"record {name} has no reference annotations")
        inputs = beat_inputs(first.signal, first.fs, first.beats)
        parts = [inputs.rr[:, [RR_FEATURES.index(n) for n in RR_SECONDS]], morphology_features(inputs.windows[:, 0])]
        if leads == 2:
            wfdb = require("wfdb", extra="ndconv", purpose="reading WFDB records")
            header = wfdb.rdheader(str(Path(data_dir) / name))
            others = [k for k, n in enumerate(header.sig_name) if n != first.lead]
            if not others:
                raise SignalError(f"record {name} has one lead; the two-lead feature set needs two")
            second = read_record(Path(data_dir) / name, lead=others[0])
            parts.append(morphology_features(beat_inputs(second.signal, second.fs, first.beats).windows[:, 0]))
        rows.append(np.concatenate(parts, axis=1))
        labels.append(class_index(list(first.symbols)))
        names.append(np.full(len(first.beats), name))
    return np.concatenate(rows), np.concatenate(labels), np.concatenate(names)
