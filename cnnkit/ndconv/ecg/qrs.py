"""A QRS detector in the manner of Pan & Tompkins (IEEE TBME 32(3), 1985), for whole records.

Steps (rates in Hz, so any sampling rate works):

1. band-pass 5-15 Hz (Butterworth, zero phase: offline, so no group delay to undo);
2. five-point derivative, squaring;
3. moving-window integration over 150 ms;
4. candidate peaks of the integrated signal at least 200 ms apart (refractory period);
5. adaptive signal / noise levels with threshold = noise + 0.25 (signal - noise),
   search-back at 0.3 x the threshold when no beat came for 1.5 x the regular RR
   (the paper: half the threshold, 1.66 x),
   and T-wave rejection (a candidate within 360 ms of a beat whose steepest slope
   is under half the beat's is a T wave);
6. each beat is placed on the R wave: the largest deviation of the 0.5-40 Hz
   signal from its local median within +-100 ms of the integrated peak.

Departures from the paper: zero-phase filters instead of the integer filters
at 200 Hz; one threshold set on the integrated signal (the paper keeps a second,
parallel set on the filtered signal); the learning phase is the first 2 s; a
peak counts at most twice the running signal level (big ventricular beats would
otherwise lift the threshold over the small normal beats after them).
"""

from __future__ import annotations

import numpy as np

from ...errors import SignalError
from ...runtime.extras import require


def _bandpass(x: np.ndarray, fs: float, low: float, high: float, order: int = 2) -> np.ndarray:
    scipy_signal = require("scipy.signal", extra="ndconv", purpose="detecting QRS complexes")
    butter, sosfiltfilt = scipy_signal.butter, scipy_signal.sosfiltfilt

    sos = butter(order, [low, min(high, 0.45 * fs)], btype="band", fs=fs, output="sos")
    return sosfiltfilt(sos, x)


def integrated_energy(signal: np.ndarray, fs: float) -> np.ndarray:
    """Steps 1-3: band-pass, derivative, square, 150 ms moving-window integration."""
    band = _bandpass(np.asarray(signal, dtype=np.float64), fs, 5.0, 15.0)
    h = fs / 8.0
    deriv = np.zeros_like(band)
    deriv[2:-2] = (-band[:-4] - 2 * band[1:-3] + 2 * band[3:-1] + band[4:]) * (h / 4.0)
    width = max(1, int(round(0.150 * fs)))
    return np.convolve(deriv**2, np.ones(width) / width, mode="same")


def locate_r_peaks(signal: np.ndarray, fs: float, approx: np.ndarray, *, radius_s: float = 0.1,
                   refine_s: float = 0.06) -> np.ndarray:
    """Move each position onto its R wave.

    First to the steepest part of the QRS (largest |5-15 Hz signal| within
    `radius_s`; T waves are too slow to win), then to the largest deviation of
    the 0.5-40 Hz signal from the isoelectric level (median over +-0.4 s) within
    `refine_s` of it: the R wave, or the S wave of a mostly negative complex.
    """
    x = _bandpass(np.asarray(signal, dtype=np.float64), fs, 0.5, 40.0)
    steep = np.abs(_bandpass(np.asarray(signal, dtype=np.float64), fs, 5.0, 15.0))
    r, rr, wide = int(round(radius_s * fs)), int(round(refine_s * fs)), int(round(0.4 * fs))
    out = np.empty(len(approx), dtype=np.int64)
    for i, p in enumerate(np.asarray(approx, dtype=np.int64)):
        lo, hi = max(0, p - r), min(len(x), p + r + 1)
        q = lo + int(np.argmax(steep[lo:hi]))
        base = np.median(x[max(0, p - wide): p + wide + 1])
        lo, hi = max(0, q - rr), min(len(x), q + rr + 1)
        out[i] = lo + int(np.argmax(np.abs(x[lo:hi] - base)))
    # two candidates can land on the same R wave: keep one
    return np.unique(out)


def detect_qrs(signal: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of the detected beats (R waves) of a whole single-lead record."""
    find_peaks = require("scipy.signal", extra="ndconv", purpose="detecting QRS complexes").find_peaks

    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 1:
        raise SignalError(f"detect_qrs takes one lead (1 axis), got shape {signal.shape}")
    if len(signal) < 2 * fs:
        raise SignalError(f"{len(signal) / fs:.1f} s of signal is too short to detect beats (need 2 s)")
    mwi = integrated_energy(signal, fs)
    band = _bandpass(signal, fs, 5.0, 15.0)
    slope = np.abs(np.gradient(band))
    peaks, _ = find_peaks(mwi, distance=max(1, int(0.2 * fs)))
    if len(peaks) == 0:
        return np.zeros(0, dtype=np.int64)

    learn = mwi[: int(2 * fs)]
    spk, npk = 0.25 * float(learn.max()), 0.5 * float(learn.mean())
    rr_recent: list[float] = []  # last 8 RR
    rr_regular: list[float] = []  # last 8 RR within 92-116 % of the regular average
    qrs: list[int] = []
    noise_peaks: list[int] = []  # candidates below threshold since the last beat (for search-back)
    half_slope = int(0.075 * fs)

    def max_slope(p: int) -> float:
        return float(slope[max(0, p - half_slope): p + 1].max(initial=0.0))

    def accept(p: int, searchback: bool = False) -> None:
        nonlocal spk
        # departure: a huge (e.g. ventricular) beat counts at most twice the signal level,
        # so that it does not lift the threshold over the normal beats that follow
        v = min(float(mwi[p]), 2.0 * spk) if spk > 0 else float(mwi[p])
        spk = 0.25 * v + 0.75 * spk if searchback else 0.125 * v + 0.875 * spk
        if qrs:
            rr = p - qrs[-1]
            rr_recent.append(rr)
            del rr_recent[:-8]
            avg2 = np.mean(rr_regular) if rr_regular else rr
            if 0.92 * avg2 <= rr <= 1.16 * avg2 or not rr_regular:
                rr_regular.append(rr)
                del rr_regular[:-8]
        qrs.append(p)

    for p in peaks:
        thr1 = npk + 0.25 * (spk - npk)
        if qrs and rr_regular:
            # search-back: a beat was missed if none came for 1.5 x the regular RR
            limit = 1.5 * np.mean(rr_regular)
            if p - qrs[-1] > limit:
                window = [q for q in noise_peaks if q - qrs[-1] > 0.36 * np.mean(rr_regular) and mwi[q] > 0.3 * thr1]
                if window:
                    best = max(window, key=lambda q: mwi[q])
                    accept(best, searchback=True)
                    noise_peaks = [q for q in noise_peaks if q > best]
                    thr1 = npk + 0.25 * (spk - npk)
        if mwi[p] > thr1:
            if qrs and p - qrs[-1] < 0.36 * fs and max_slope(p) < 0.5 * max_slope(qrs[-1]):
                npk = 0.125 * mwi[p] + 0.875 * npk  # a T wave
                continue
            accept(int(p))
            noise_peaks = []
        else:
            npk = 0.125 * mwi[p] + 0.875 * npk
            noise_peaks.append(int(p))
    return locate_r_peaks(signal, fs, np.asarray(qrs, dtype=np.int64))


def match_beats(reference: np.ndarray, detected: np.ndarray, fs: float, *, tolerance_s: float = 0.150
                ) -> tuple[np.ndarray, np.ndarray]:
    """Pair each reference beat with at most one detected beat within the tolerance (nearest first).

    Returns (ref_index, det_index) of the matched pairs, in time order.
    """
    reference = np.asarray(reference, dtype=np.int64)
    detected = np.asarray(detected, dtype=np.int64)
    tol = tolerance_s * fs
    if len(reference) == 0 or len(detected) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    j = np.searchsorted(detected, reference)
    cand = []
    for i, jj in enumerate(j):
        for d in (jj - 1, jj):
            if 0 <= d < len(detected):
                dist = abs(detected[d] - reference[i])
                if dist <= tol:
                    cand.append((dist, i, d))
    cand.sort()
    used_r, used_d = set(), set()
    pairs = []
    for _, i, d in cand:
        if i not in used_r and d not in used_d:
            used_r.add(i)
            used_d.add(d)
            pairs.append((i, d))
    pairs.sort()
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    r, d = np.array(pairs, dtype=np.int64).T
    return r, d


def detection_scores(reference: np.ndarray, detected: np.ndarray, fs: float, *, tolerance_s: float = 0.150
                     ) -> dict[str, float | int]:
    """TP, FN, FP, sensitivity and positive predictivity of detected beats against reference beats."""
    r, _ = match_beats(reference, detected, fs, tolerance_s=tolerance_s)
    tp = len(r)
    fn = len(reference) - tp
    fp = len(detected) - tp
    return {"tp": tp, "fn": fn, "fp": fp, "se": tp / max(tp + fn, 1), "ppv": tp / max(tp + fp, 1)}
