"""Size-aware identification: the 1:K threshold that lets a target share of strangers through.

A stranger compared with N enrolled people is let in when *any* of the N is
within the threshold t. If one impostor pair is within t with probability
F(t) (the encoder's impostor-distance distribution), a stranger is let in with
probability FPIR(t, N) = 1 - (1 - F(t))^N, so for a target FPIR the gallery
uses t = F^-1(1 - (1 - FPIR)^(1/N)): the larger the gallery, the smaller t.

F is measured once per encoder on development people (LFW View 1 training
people, one photo each, known duplicate identities dropped) by
`python tools/impostor_table.py`, and shipped as a table of (distance, log10 F)
points in cnnkit/faces/pretrained/impostors/; `cnnkit faces calibrate --fpir`
can measure it again on a gallery's own people. Below the smallest rate the
table measured, F is extrapolated along the straight line through its lowest
decade (log10 F against distance), and the operating point says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ...errors import SettingsError

#: The share of strangers a gallery lets through by default (false-positive identification rate).
DEFAULT_FPIR = 0.01


@dataclass(frozen=True)
class ImpostorTable:
    """An encoder's impostor-distance distribution: F(distance) at increasing distances."""

    encoder: str
    version: str
    flip: bool
    distances: tuple[float, ...]   # increasing
    log10_rates: tuple[float, ...]  # log10 F at each distance, increasing
    pairs: int
    source: str

    def __post_init__(self) -> None:
        if len(self.distances) != len(self.log10_rates) or len(self.distances) < 2:
            raise SettingsError("an impostor table needs two or more (distance, rate) points")

    @classmethod
    def from_distances(cls, distances: np.ndarray, *, encoder: str, version: str, flip: bool, source: str,
                       weights: np.ndarray | None = None) -> ImpostorTable:
        """The table of measured impostor distances (optionally weighted), at log-spaced rates."""
        d = np.asarray(distances, np.float64)
        w = np.ones_like(d) if weights is None else np.asarray(weights, np.float64)
        keep = np.isfinite(d)
        d, w = d[keep], w[keep]
        if len(d) < 100:
            raise SettingsError(f"an impostor table needs at least 100 different-person pairs, got {len(d)}")
        order = np.argsort(d, kind="stable")
        d, cum = d[order], np.cumsum(w[order]) / w.sum()
        lowest = max(cum[0], 1.0 / len(d))
        rates = np.unique(np.concatenate([10.0 ** np.arange(math.ceil(math.log10(lowest) * 4) / 4, 0, 0.25), [0.5]]))
        # the distance below which a share `rate` of impostors falls
        points = np.interp(rates, cum, d)
        keep_points = np.concatenate([[True], np.diff(points) > 0])
        return cls(encoder, version, flip, tuple(float(v) for v in points[keep_points]),
                   tuple(float(v) for v in np.log10(rates[keep_points])), int(len(d)), source)

    @property
    def lowest_rate(self) -> float:
        return 10.0 ** self.log10_rates[0]

    def threshold_for_rate(self, rate: float) -> float:
        """The distance t with F(t) = rate (extrapolated below the lowest measured rate)."""
        x = math.log10(max(rate, 1e-300))
        d, r = np.asarray(self.distances), np.asarray(self.log10_rates)
        if x >= r[0]:
            return float(np.interp(x, r, d))
        # straight line through the lowest decade of points (log10 F is about linear in the tail)
        low = r <= r[0] + 1.0
        if low.sum() < 2:
            low = np.zeros_like(r, bool)
            low[:2] = True
        slope, intercept = np.polyfit(r[low], d[low], 1)
        return float(max(slope * x + intercept, 0.0))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ImpostorTable:
        try:
            return cls(encoder=str(data["encoder"]), version=str(data["version"]), flip=bool(data["flip"]),
                       distances=tuple(float(v) for v in data["distances"]),
                       log10_rates=tuple(float(v) for v in data["log10_rates"]), pairs=int(data["pairs"]),
                       source=str(data["source"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SettingsError(f"not an impostor table ({exc})") from None


@dataclass(frozen=True)
class OperatingPoint:
    """Where a gallery identifies: the 1:K threshold for its size and target FPIR, and how it was set."""

    threshold: float
    people: int
    fpir: float
    method: str
    extrapolated: bool = False

    def to_dict(self) -> dict:
        return {"threshold": round(self.threshold, 4), "people": self.people, "fpir": self.fpir,
                "method": self.method, "extrapolated": self.extrapolated}


def pair_rate(fpir: float, people: int) -> float:
    """The per-pair false-accept rate that gives `fpir` over `people` independent comparisons."""
    if not 0.0 < fpir < 1.0:
        raise SettingsError(f"fpir must be in (0, 1), got {fpir}")
    return -math.expm1(math.log1p(-fpir) / max(people, 1))


def operating_point(table: ImpostorTable, people: int, fpir: float = DEFAULT_FPIR) -> OperatingPoint:
    rate = pair_rate(fpir, people)
    return OperatingPoint(table.threshold_for_rate(rate), people, fpir, f"impostor table: {table.source}",
                          extrapolated=rate < table.lowest_rate)


IMPOSTOR_TABLES = "pretrained/impostors"


def shipped_table(encoder: str, version: str, flip: bool) -> ImpostorTable | None:
    """The impostor table cnnkit ships for this encoder (None when it has none, e.g. a saved encoder)."""
    name = f"{encoder}{'+flip' if flip else ''}.json"
    folder = resources.files("cnnkit.faces") / IMPOSTOR_TABLES
    file = folder / name
    if "/" in encoder or not file.is_file():
        return None
    table = ImpostorTable.from_dict(json.loads(file.read_text()))
    return table if table.version == version else None


def write_table(table: ImpostorTable, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table.to_dict(), indent=1) + "\n")
    return path
