"""Reading an ECG record: one lead, in millivolts, at the rate the models work at.

WFDB records (MIT-BIH and any PhysioNet database: `NAME.hea` + signal files,
optionally `NAME.atr` annotations) are read with the `wfdb` package; a plain
`.npy` or `.csv` / `.txt` file (one column per lead) works too when its sampling
rate is given. Records at another rate are resampled to `RECORD_FS` (polyphase
filter); rates under `MIN_FS` are refused. Missing leads, too-short or empty
signals raise `SignalError` saying what is there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ...errors import SignalError
from ...runtime.extras import require
from .aami import is_beat

log = logging.getLogger(__name__)

#: The rate every record is brought to (MIT-BIH's own).
RECORD_FS = 360
#: Below this the QRS complex is too poorly sampled to classify beats.
MIN_FS = 100
#: A record must be at least this long (the RR features need several beats).
MIN_SECONDS = 10.0
#: The lead the models are trained on, and the names it goes by.
DEFAULT_LEAD = "MLII"
LEAD_ALIASES = {"MLII": ("MLII", "ML2", "II", "LEAD II", "ECG II", "D2", "DII")}
#: When a record lacks the lead a model was trained on: the leads to try instead, closest first (for lead II,
#: the limb and precordial leads whose QRS axis is nearest to it; modified limb leads of Holter recorders).
CLOSEST_LEADS = {"MLII": ("V5", "MLV5", "CM5", "V6", "V4", "AVF", "III", "MLIII", "I", "MLI", "V3", "V2", "V1",
                          "MLV1", "ECG", "ECG1", "ECG2")}


@dataclass(frozen=True)
class EcgRecord:
    name: str
    signal: np.ndarray  # (n,) float32, millivolts, at fs
    fs: int
    lead: str
    original_fs: float
    beats: np.ndarray | None = None  # reference beat positions (samples at fs), if annotated
    symbols: tuple[str, ...] | None = None  # their MIT-BIH symbols
    lead_wanted: str | None = None  # set when the record lacks the lead asked for and `lead` stands in for it

    @property
    def seconds(self) -> float:
        return len(self.signal) / self.fs


def _resample(x: np.ndarray, fs_from: float, fs_to: int) -> np.ndarray:
    resample_poly = require("scipy.signal", extra="ndconv", purpose="resampling ECG records").resample_poly

    ratio = Fraction(fs_to / fs_from).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


def _fill_gaps(x: np.ndarray, name: str) -> np.ndarray:
    bad = ~np.isfinite(x)
    if bad.all():
        raise SignalError(f"{name}: the lead holds no valid samples")
    if bad.any():
        idx = np.arange(len(x))
        x = x.copy()
        x[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return x


def _pick_lead(names: list[str], lead: str | int, source: str, *, asked: bool = True) -> int:
    """Index of `lead` (a name, one of its aliases, or an index); `asked`: the user named it (not a default)."""
    if isinstance(lead, int) or (isinstance(lead, str) and lead.isdigit()):
        k = int(lead)
        if not 0 <= k < len(names):
            raise SignalError(f"{source} has {len(names)} lead(s) ({', '.join(names)}); lead index {k} does not exist")
        return k
    wanted = {a.upper() for a in LEAD_ALIASES.get(lead.upper(), (lead,))}
    for k, n in enumerate(names):
        if n.strip().upper() in wanted:
            return k
    if all(n.isdigit() for n in names):  # columns of a .csv / .npy: nothing says which lead each one is
        raise SignalError(f"{source} has {len(names)} unnamed columns; say which one holds lead {lead} (what the "
                          f"model was trained on) with --lead 0..{len(names) - 1}")
    if asked:
        raise SignalError(f"{source} has no lead {lead!r}; it has {', '.join(names) or 'none'} "
                          f"(give one of them with --lead, by name or index)")
    raise SignalError(f"{source} has no lead {lead!r}, the one the model was trained on (it has: "
                      f"{', '.join(names) or 'none'}); choose one with --lead NAME or INDEX, expecting lower accuracy")


def closest_lead(names: list[str], lead: str) -> int | None:
    """Index of the lead that stands in best for `lead` when the record lacks it (None: no ECG lead known)."""
    upper = [n.strip().upper().replace(" ", "") for n in names]
    for candidate in CLOSEST_LEADS.get(lead.upper(), ()):
        if candidate in upper:
            return upper.index(candidate)
    for k, n in enumerate(upper):  # any other name that looks like an ECG lead
        if n.startswith(("V", "ML", "CM", "ECG", "AV", "LEAD")) or n in ("I", "II", "III"):
            return k
    return None


def _wfdb_base(path: Path) -> Path:
    if path.suffix in (".hea", ".dat", ".atr", ".mat"):
        path = path.with_suffix("")
    return path


def read_record(path: str | Path, *, lead: str | int = DEFAULT_LEAD, fs: int | None = None,
                annotations: str | None = "atr", sampling_rate: float | None = None,
                closest: bool = False) -> EcgRecord:
    """One lead of a record at `RECORD_FS` Hz (or `fs`), with its reference beats when annotated.

    `path`: a WFDB record (with or without .hea), or .npy / .csv / .txt with
    `sampling_rate` given. `annotations`: the WFDB annotator to read ("atr"), or
    None for none; a missing annotation file is not an error (beats stay None).
    The sampling rate, gains and baselines come from the header (wfdb's physical
    signal, in its units). `closest`: when the record has no lead `lead` (a name),
    take the closest one it has (`CLOSEST_LEADS`), log a warning and set
    `lead_wanted`; otherwise a missing lead is a SignalError listing the leads.
    """
    target = int(fs or RECORD_FS)
    path = Path(path)
    if path.is_dir():
        raise SignalError(f"{path} is a folder; give one record (e.g. {path}/100)")
    if path.suffix.lower() in (".npy", ".csv", ".txt"):
        signal, names, rate, beats, symbols = _read_array(path, sampling_rate)
    else:
        signal, names, rate, beats, symbols = _read_wfdb(_wfdb_base(path), annotations)
    source = str(path)
    wanted = None
    if beats is None and symbols is None and len(names) == 1 and lead == DEFAULT_LEAD:
        k = 0  # a plain one-column file: the lead the user has
    else:
        try:
            k = _pick_lead(names, lead, source, asked=not closest)
        except SignalError:
            k_close = closest_lead(names, str(lead)) if closest and isinstance(lead, str) else None
            if k_close is None:
                raise
            k, wanted = k_close, str(lead)
            log.warning("%s has no lead %s (it has: %s); using %s instead: the model was trained on %s, expect "
                        "lower accuracy", source, lead, ", ".join(names), names[k], lead)
    x = _fill_gaps(np.asarray(signal[:, k], dtype=np.float64), source)
    if rate < MIN_FS:
        raise SignalError(f"{source} is sampled at {rate:g} Hz; at least {MIN_FS} Hz is needed to see the QRS shape")
    if len(x) < MIN_SECONDS * rate:
        raise SignalError(f"{source} is {len(x) / rate:.1f} s long; at least {MIN_SECONDS:g} s are needed "
                          f"(the classifier compares each beat with its neighbours)")
    if rate != target:
        log.info("%s: resampling %g Hz -> %d Hz", source, rate, target)
        x = _resample(x, rate, target)
        if beats is not None:
            beats = np.round(beats * (target / rate)).astype(np.int64)
    name = path.stem if path.suffix.lower() in (".npy", ".csv", ".txt") else _wfdb_base(path).name
    return EcgRecord(name=name, signal=x.astype(np.float32), fs=target, lead=names[k],
                     original_fs=float(rate), beats=beats, symbols=symbols, lead_wanted=wanted)


def _read_wfdb(base: Path, annotator: str | None):
    wfdb = require("wfdb", extra="ndconv", purpose="reading WFDB records")

    if not base.with_suffix(".hea").is_file():
        raise SignalError(f"no WFDB record at {base} (expected {base.with_suffix('.hea')})")
    try:
        rec = wfdb.rdrecord(str(base))
    except Exception as exc:  # wfdb raises many types for damaged headers / signal files
        raise SignalError(f"cannot read WFDB record {base}: {exc}") from None
    if rec.p_signal is None or rec.p_signal.size == 0:
        raise SignalError(f"WFDB record {base} holds no samples")
    names = list(rec.sig_name or [])
    beats = symbols = None
    if annotator and base.with_suffix("." + annotator).is_file():
        try:
            ann = wfdb.rdann(str(base), annotator)
        except Exception as exc:
            raise SignalError(f"cannot read annotations {base}.{annotator}: {exc}") from None
        keep = [i for i, s in enumerate(ann.symbol) if is_beat(s)]
        beats = np.asarray(ann.sample, dtype=np.int64)[keep]
        symbols = tuple(ann.symbol[i] for i in keep)
    return rec.p_signal, names, float(rec.fs), beats, symbols


def _read_array(path: Path, sampling_rate: float | None):
    if sampling_rate is None:
        raise SignalError(f"{path.name} has no header saying its sampling rate; pass --fs HZ")
    if not path.is_file():
        raise SignalError(f"no such file: {path}")
    try:
        if path.suffix.lower() == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            data = np.loadtxt(path, delimiter="," if path.suffix.lower() == ".csv" else None, ndmin=2)
    except (ValueError, OSError) as exc:
        raise SignalError(f"cannot read {path}: {exc}") from None
    data = np.asarray(data)
    if data.dtype.kind not in "fiu":
        raise SignalError(f"{path} holds {data.dtype} values, not numbers")
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.size == 0:
        raise SignalError(f"{path} must hold samples x leads (2 axes), got shape {data.shape}")
    if data.shape[0] < data.shape[1]:
        data = data.T  # leads x samples
    names = [str(i) for i in range(data.shape[1])]
    return data.astype(np.float64), names, float(sampling_rate), None, None
