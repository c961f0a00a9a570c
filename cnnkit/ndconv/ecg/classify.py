"""Classify the beats of a raw record: detect QRS complexes, build beat inputs, run the model.

No annotations are needed; when the record has some, they can be used as the
beat positions instead (`positions="reference"`) or to score the detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ...errors import SettingsError, SignalError
from .beats import beat_inputs
from .qrs import detect_qrs
from .records import EcgRecord, read_record
from .train import checkpoint_side_names, load_ecg, predict_beats, trained_lead


@dataclass(frozen=True)
class BeatLabels:
    record: EcgRecord
    positions: np.ndarray  # (n,) samples at record.fs
    labels: tuple[str, ...]  # class name per beat
    probabilities: np.ndarray  # (n, K)
    classes: tuple[str, ...]
    source: str  # "detected" or "reference"

    def counts(self) -> dict[str, int]:
        return {c: int(sum(1 for label in self.labels if label == c)) for c in self.classes}

    def rows(self) -> list[dict]:
        """One dict per beat: time, sample, label, probability of the label."""
        fs = self.record.fs
        return [{"time_s": round(float(p) / fs, 3), "sample": int(p), "label": lab,
                 "probability": round(float(pr.max()), 4)}
                for p, lab, pr in zip(self.positions, self.labels, self.probabilities)]


def classify_record(record: str | Path | EcgRecord, checkpoint: str | Path, *,
                    positions: Literal["detected", "reference"] = "detected", lead: str | int | None = None,
                    sampling_rate: float | None = None, device: str = "auto") -> BeatLabels:
    """Beat positions and AAMI labels of one record (path or an already read EcgRecord).

    `lead` None: the lead the model was trained on, or the closest one the record has (`record.lead_wanted`
    then names the missing one); a lead given by name or index must be there. Any sampling rate: the record
    is resampled to the model's rate from its header's.
    """
    if positions not in ("detected", "reference"):
        raise SettingsError(f"unknown positions {positions!r}; use 'detected' or 'reference'")
    ck = load_ecg(checkpoint, device=device)
    rec = record if isinstance(record, EcgRecord) else read_record(
        record, lead=trained_lead(ck) if lead is None else lead, sampling_rate=sampling_rate, closest=lead is None)
    if positions == "reference":
        if rec.beats is None:
            raise SignalError(f"record {rec.name} has no reference annotations; use the detector (the default)")
        pos = rec.beats
    else:
        pos = detect_qrs(rec.signal, rec.fs)
    if len(pos) < 3:
        raise SignalError(f"record {rec.name}: only {len(pos)} beat(s) found in {rec.seconds:.0f} s; "
                          "is this an ECG lead?")
    inputs = beat_inputs(rec.signal, rec.fs, pos)
    probs = predict_beats(ck.model, inputs.windows, inputs.rr, checkpoint_side_names(ck))
    classes = tuple(ck.info["classes"])
    labels = tuple(classes[k] for k in probs.argmax(1))
    return BeatLabels(rec, pos, labels, probs, classes, positions)


COLOURS = {"N": "#2b8a3e", "S": "#1c7ed6", "V": "#e03131", "F": "#f08c00", "Q": "#868e96"}


def save_beat_plot(path: str | Path, result: BeatLabels, *, start_s: float | None = None, seconds: float = 20.0,
                   rows: int = 2) -> Path:
    """The signal with each beat's label above it, `rows` strips of `seconds` / rows each.

    `start_s` None: start 2 s before the first beat that is not N (or at 0).
    """
    from ..plots import new_figure, save_figure

    rec = result.record
    fs = rec.fs
    if start_s is None:
        abnormal = [p for p, lab in zip(result.positions, result.labels) if lab != "N"]
        start_s = max(0.0, abnormal[0] / fs - 2.0) if abnormal else 0.0
    start_s = min(max(0.0, start_s), max(0.0, rec.seconds - seconds))
    strip = seconds / rows
    fig = new_figure(11, 1.9 * rows + 0.5)
    counts = result.counts()
    fig.suptitle(f"record {rec.name} ({rec.lead}, {result.source} beats): "
                 + ", ".join(f"{c} {n}" for c, n in counts.items()), fontsize=9)
    for r in range(rows):
        ax = fig.add_subplot(rows, 1, r + 1)
        a, b = int((start_s + r * strip) * fs), int((start_s + (r + 1) * strip) * fs)
        t = np.arange(a, b) / fs
        y = rec.signal[a:b]
        ax.plot(t, y, color="0.2", lw=0.7)
        top = float(y.max()) if len(y) else 1.0
        span = float(np.ptp(y)) if len(y) else 1.0
        for p, lab in zip(result.positions, result.labels):
            if a <= p < b:
                ax.axvline(p / fs, color=COLOURS.get(lab, "k"), lw=0.6, alpha=0.35)
                ax.text(p / fs, top + 0.08 * span, lab, color=COLOURS.get(lab, "k"), ha="center", va="bottom",
                        fontsize=8, fontweight="bold")
        ax.set_ylim(float(y.min()) - 0.1 * span if len(y) else -1, top + 0.3 * span)
        ax.set_xlim(a / fs, b / fs)
        ax.set_ylabel("mV", fontsize=8)
        ax.tick_params(labelsize=7)
    ax.set_xlabel("time (s)", fontsize=8)
    return save_figure(fig, path)


def record_report(result: BeatLabels) -> dict:
    """What a reader of one record wants first: beats per class, heart rate, where the S and V beats are."""
    rec = result.record
    fs = rec.fs
    rr = np.diff(result.positions) / fs
    labels = np.array(result.labels)
    flagged = {}
    for c in ("S", "V"):
        idx = np.flatnonzero(labels == c)
        # runs: consecutive beats of the class (2 = couplet, 3 or more = a run of tachycardia)
        runs = np.split(idx, np.flatnonzero(np.diff(idx) != 1) + 1) if len(idx) else []
        flagged[c] = {"beats": int(len(idx)), "per_hour": round(len(idx) / max(rec.seconds, 1e-9) * 3600, 1),
                      "couplets": sum(1 for r in runs if len(r) == 2),
                      "runs_of_3_or_more": sum(1 for r in runs if len(r) >= 3),
                      "first_times_s": [round(float(result.positions[i]) / fs, 2) for i in idx[:20]]}
    return {"record": rec.name, "lead": rec.lead, "lead_wanted": rec.lead_wanted, "fs": fs,
            "original_fs": rec.original_fs, "seconds": round(rec.seconds, 1), "beat_positions": result.source,
            "beats": len(labels), "counts": result.counts(),
            "heart_rate_bpm": round(60.0 / float(np.median(rr)), 1) if len(rr) else None, "flagged": flagged}


def save_report(path: str | Path, result: BeatLabels, *, plot: str | Path | None = None,
                labels_csv: str | Path | None = None) -> Path:
    """`record_report` as a short Markdown page (beside the plot and the beat CSV it links)."""
    r = record_report(result)
    lines = [f"# ECG record {r['record']}", "",
             f"- lead {r['lead']}" + (f" (the model was trained on {r['lead_wanted']}, which this record lacks: "
                                       "expect lower accuracy)" if r["lead_wanted"] else ""),
             f"- {r['seconds']:g} s at {r['original_fs']:g} Hz"
             + (f" (resampled to {r['fs']} Hz)" if r["original_fs"] != r["fs"] else ""),
             f"- {r['beats']} beats ({r['beat_positions']}), median heart rate {r['heart_rate_bpm']} bpm",
             "- beats per class: " + ", ".join(f"{c} {n}" for c, n in r["counts"].items()), ""]
    names = {"S": "supraventricular ectopic (S)", "V": "ventricular ectopic (V)"}
    for c, f in r["flagged"].items():
        lines.append(f"## {names[c]}: {f['beats']} beats, {f['per_hour']} per hour")
        lines.append(f"couplets {f['couplets']}, runs of 3 or more {f['runs_of_3_or_more']}"
                     + (f"; first at {', '.join(f'{t:g}' for t in f['first_times_s'])} s" if f["beats"] else ""))
        lines.append("")
    if plot:
        lines += [f"![signal with the beats flagged]({Path(plot).name})", ""]
    if labels_csv:
        lines += [f"Every beat: `{Path(labels_csv).name}`", ""]
    lines.append("Screening aid, not a diagnosis: labels come from a model trained on the MIT-BIH DS1 patients.")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out
