"""From a record and beat positions to what the classifier sees: beat windows and RR features.

- The lead is band-passed 0.5-40 Hz (baseline wander and mains noise removed),
  brought to `MODEL_FS` and divided by the record's median QRS amplitude, so
  that gains and electrode placement matter less between patients.
- Each beat gives a window from `BEFORE_S` before to `AFTER_S` after its R
  wave (P wave, QRS, T wave), two channels: the beat itself and the beat minus
  the record's median beat (how this beat differs from this patient's usual
  one; no labels are used, so a raw record gets the same).
- RR features, normalised by the patient's own median RR (the literature on the
  inter-patient protocol shows they carry most of the S-versus-N information):
  log(pre / median), log(post / median), log(local / median) with local the
  mean of the 10 RR around the beat, log(pre / post), log(pre / local), and the
  irregularity of the rhythm around the beat (median |successive RR difference|
  over 20 beats / local RR): in atrial fibrillation a short RR is the rule, not
  a sign of a premature supraventricular beat, and this feature lets the
  network tell the two apart (a lone premature beat moves the median little);
  the same with |RR(i) - RR(i-2)|, small in bigeminy (short-long-short-long,
  often ventricular) but large in fibrillation.
- The raw RR intervals of de Chazal et al. (2004), in seconds: pre, post, the
  local mean (10 beats) and the mean over the 5 minutes around the beat. A
  patient whose beats are mostly ectopic has a median RR set by the ectopic
  beats; the raw intervals still show that they come early.
- pre, post and local relative to that 5-minute *mean* RR (the normalisation of
  Lin and Yang 2014 and others): unlike the median, the mean is pulled up by
  the long pauses that often follow ectopic beats, so when most of a patient's
  beats are ectopic they still come out as early.

Windows are cut `MARGIN` samples wider on each side so training can shift them
(position jitter); `crop_windows` takes the centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import SettingsError, SignalError
from ...runtime.extras import require

MODEL_FS = 180
BEFORE_S = 0.25
AFTER_S = 0.4611  # 45 + 83 = 128 samples at 180 Hz
MARGIN = 6  # samples at MODEL_FS either side, for jitter during training
LOCAL_BEATS = 10
IRREGULARITY_BEATS = 20
AVERAGE_S = 300.0  # the "average RR" window of de Chazal et al. (2004)
RR_FEATURES = ("pre", "post", "local", "pre/post", "pre/local", "irregularity", "irregularity-lag2",
               "pre_s", "post_s", "local_s", "average_s", "pre/average", "post/average", "local/average")


def window_length(fs: int = MODEL_FS) -> tuple[int, int]:
    """(samples before the R wave, samples from it on) at `fs`."""
    return int(round(BEFORE_S * fs)), int(round(AFTER_S * fs))


@dataclass(frozen=True)
class BeatInputs:
    windows: np.ndarray  # (n, 2, L + 2 * MARGIN) float32
    rr: np.ndarray  # (n, len(RR_FEATURES)) float32
    positions: np.ndarray  # (n,) beat positions at the record's rate


def preprocess(signal: np.ndarray, fs: int) -> np.ndarray:
    """Band-pass 0.5-40 Hz and resample to MODEL_FS (float64 out)."""
    from fractions import Fraction

    scipy_signal = require("scipy.signal", extra="ndconv", purpose="filtering ECG signals")
    butter, resample_poly, sosfiltfilt = scipy_signal.butter, scipy_signal.resample_poly, scipy_signal.sosfiltfilt

    sos = butter(2, [0.5, 40.0], btype="band", fs=fs, output="sos")
    x = sosfiltfilt(sos, np.asarray(signal, dtype=np.float64))
    if fs != MODEL_FS:
        ratio = Fraction(MODEL_FS, int(fs))
        x = resample_poly(x, ratio.numerator, ratio.denominator)
    return x


def rr_features(positions: np.ndarray, fs: float) -> np.ndarray:
    """(n, len(RR_FEATURES)) RR features, relative to the record's median RR and raw (module docstring)."""
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    if n < 3:
        raise SignalError(f"only {n} beat(s) found; at least 3 are needed for RR intervals")
    rr = np.diff(positions) / fs  # seconds, n - 1
    pre = np.r_[rr[0], rr]
    post = np.r_[rr, rr[-1]]
    k = LOCAL_BEATS
    csum = np.r_[0.0, np.cumsum(rr)]
    lo = np.clip(np.arange(n) - k // 2, 0, len(rr))
    hi = np.clip(np.arange(n) + k // 2, 0, len(rr))
    hi = np.maximum(hi, lo + 1)
    lo = np.minimum(lo, len(rr) - 1)
    hi = np.minimum(hi, len(rr))
    local = (csum[hi] - csum[lo]) / (hi - lo)
    med = float(np.median(rr))
    eps = 1e-3
    half = IRREGULARITY_BEATS // 2
    irregular = np.zeros((2, n))
    for lag in (1, 2):
        jumps = np.abs(rr[lag:] - rr[:-lag]) if len(rr) > lag else np.zeros(1)
        for i in range(n):  # median over a sliding window (n ~ 2,000 beats per 30 min: cheap)
            seg = jumps[max(0, i - half): i + half]
            irregular[lag - 1, i] = np.median(seg) if len(seg) else 0.0
    feats = np.stack([np.log((pre + eps) / med), np.log((post + eps) / med), np.log((local + eps) / med),
                      np.log((pre + eps) / (post + eps)), np.log((pre + eps) / (local + eps)),
                      4.0 * irregular[0] / local, 4.0 * irregular[1] / local], axis=1)
    # mean RR over the beats within AVERAGE_S / 2 either side (by time)
    t = positions / fs
    a = np.searchsorted(t, t - AVERAGE_S / 2)
    b = np.searchsorted(t, t + AVERAGE_S / 2, side="right") - 1
    b = np.maximum(b, a + 1)
    a = np.minimum(a, n - 2)
    b = np.minimum(b, n - 1)
    average = (t[b] - t[a]) / (b - a)
    raw = np.stack([pre, post, local, average], axis=1)
    to_mean = np.log(np.stack([pre, post, local], axis=1) + eps) - np.log(average + eps)[:, None]
    return np.concatenate([np.clip(feats, -3, 3), np.clip(raw, 0, 3), np.clip(to_mean, -3, 3)],
                          axis=1).astype(np.float32)


def beat_inputs(signal: np.ndarray, fs: int, positions: np.ndarray) -> BeatInputs:
    """Windows and RR features for every beat at `positions` (samples at `fs`) of one record."""
    positions = np.asarray(positions, dtype=np.int64)
    if len(positions) < 3:
        raise SignalError(f"only {len(positions)} beat(s) found; at least 3 are needed")
    if np.any(np.diff(positions) <= 0):
        raise SettingsError("beat positions must be strictly increasing")
    x = preprocess(signal, fs)
    centre = np.round(positions * (MODEL_FS / fs)).astype(np.int64)
    before, after = window_length()
    width = before + after + 2 * MARGIN
    padded = np.pad(x, (before + MARGIN, after + MARGIN), mode="edge")
    idx = centre[:, None] + np.arange(width)[None, :]
    idx = np.clip(idx, 0, len(padded) - 1)
    beats = padded[idx]  # (n, width)
    # amplitude: median peak-to-peak of the QRS (+-50 ms around R) over the record
    q = int(0.05 * MODEL_FS)
    core = beats[:, MARGIN + before - q: MARGIN + before + q + 1]
    scale = float(np.median(core.max(axis=1) - core.min(axis=1)))
    if not np.isfinite(scale) or scale < 1e-6:
        raise SignalError("the signal is flat: no QRS amplitude to normalise by")
    beats = beats / scale
    template = np.median(beats, axis=0, keepdims=True)
    windows = np.stack([beats, beats - template], axis=1).astype(np.float32)
    return BeatInputs(windows=windows, rr=rr_features(positions, fs), positions=positions)


def check_rr_names(names: Sequence[str]) -> None:
    """ValueError when a name is not one of RR_FEATURES."""
    unknown = [n for n in names if n not in RR_FEATURES]
    if unknown:
        raise SettingsError(f"unknown RR features {unknown}; known: {', '.join(RR_FEATURES)}")


def select_rr(rr: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The columns `names` (from RR_FEATURES) of an (n, len(RR_FEATURES)) RR feature array."""
    check_rr_names(names)
    return rr[:, [RR_FEATURES.index(n) for n in names]]


def crop_windows(windows: np.ndarray, shift: np.ndarray | int = 0) -> np.ndarray:
    """The classifier's input: the window without its margins, shifted by `shift` samples per beat."""
    width = windows.shape[-1] - 2 * MARGIN
    if np.isscalar(shift) or np.ndim(shift) == 0:
        s = MARGIN + int(shift)
        return windows[..., s: s + width]
    idx = MARGIN + np.asarray(shift)[:, None] + np.arange(width)[None, :]
    return np.take_along_axis(windows, idx[:, None, :].repeat(windows.shape[1], axis=1), axis=-1)
