"""The liveness check of one face over frames: did it blink, or turn its head, within the time limit?

    check = LivenessCheck(LivenessSettings(checks=("blink",)))
    for t, points5, eyes, mouth in ...:   # one face, frame after frame
        check.add(t, points5, eyes, mouth)
        if check.result is not None:      # decided: live as soon as a check passes
            break
    result = check.finish()               # not live if nothing passed in time

A blink is the eyes' openness (eyes.eye_openness) falling below `closed_ratio`
of the face's own open-eye level for `min_closed_frames` frames, while the
face's proportions stay as they were (`max_shape_change`), and coming back
above `reopen_ratio` of it.
The open level is a high percentile of the openness seen so far, so each face
is compared with itself, not with a population threshold.
A head turn is the nose's position between the eyes (headturn.turn_ratio)
moving at least `turn_delta` away from where it started, and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import SettingsError
from .eyes import eye_openness, face_shape
from .headturn import turn_ratio

CHECK_CHOICES = ("blink", "turn")
#: "any": live when one of the checks passes; "all": when every one does.
REQUIRE_CHOICES = ("any", "all")


@dataclass(frozen=True, kw_only=True)
class LivenessSettings:
    checks: tuple[str, ...] = ("blink",)
    require: str = "any"
    #: Seconds the person has, from the first frame their face is seen.
    time_limit: float = 6.0
    #: Eyes count as closed below this fraction of their open level ...
    #: (closed_ratio, min_closed_frames and max_shape_change were chosen on clips of LFW View 1
    #: training people by bench/faces/video_liveness.py; 0.58-0.89 did equally well there.)
    closed_ratio: float = 0.74
    #: ... for at least this many frames in a row (raise it against landmark jitter) ...
    min_closed_frames: int = 1
    #: ... and as open again above this fraction.
    reopen_ratio: float = 0.9
    #: Frames needed before the open level is trusted.
    min_frames: int = 5
    #: How far the nose must move along the eye line (0.5 = frontal) for a head turn.
    turn_delta: float = 0.12
    #: Divide the eye aspect ratio by the face's vertical proportion (against a tilted photo).
    correct_tilt: bool = True
    #: A closed-eye frame counts only while the face's proportions (from MTCNN's five points)
    #: are within this fraction of their usual value: a blink leaves them alone, a photo
    #: tilted or bent away from the camera changes them. None: no such gate.
    max_shape_change: float | None = 0.05

    def __post_init__(self) -> None:
        checks = tuple(self.checks)
        if not checks or any(c not in CHECK_CHOICES for c in checks):
            raise SettingsError(f"checks must be a non-empty subset of {CHECK_CHOICES}, got {self.checks!r}")
        object.__setattr__(self, "checks", checks)
        if self.require not in REQUIRE_CHOICES:
            raise SettingsError(f"require must be one of {REQUIRE_CHOICES}, got {self.require!r}")
        if self.time_limit <= 0:
            raise SettingsError(f"time_limit must be positive seconds, got {self.time_limit}")
        if not 0 < self.closed_ratio < self.reopen_ratio <= 1:
            raise SettingsError("need 0 < closed_ratio < reopen_ratio <= 1")
        if self.max_shape_change is not None and not 0 < self.max_shape_change < 1:
            raise SettingsError(f"max_shape_change must be in (0, 1) or None, got {self.max_shape_change}")
        if self.min_closed_frames < 1 or self.min_frames < 1:
            raise SettingsError("min_closed_frames and min_frames must be at least 1")
        if not 0 < self.turn_delta < 0.5:
            raise SettingsError(f"turn_delta must be in (0, 0.5), got {self.turn_delta}")

    @property
    def needs_mesh(self) -> bool:
        """Whether the face mesh must run (the blink check needs eye contours)."""
        return "blink" in self.checks


@dataclass(frozen=True)
class LivenessResult:
    """The decision, with why: which checks ran, what each measured, whether each passed."""

    live: bool
    reason: str
    checks: dict[str, dict] = field(default_factory=dict)
    frames: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"live": self.live, "reason": self.reason, "checks": self.checks, "frames": self.frames,
                "seconds": round(self.seconds, 3)}


class _Blink:
    def __init__(self, s: LivenessSettings) -> None:
        self.s = s
        self.values: list[float] = []
        self.closed_at: float | None = None
        self.passed_at: float | None = None
        self.run = 0  # frames in a row below the closed level
        self.lowest = np.inf
        self.shapes: list[float] = []
        self.gated = 0  # closed-looking frames refused because the face's shape changed

    def add(self, t: float, points5: np.ndarray, eyes: np.ndarray | None, mouth: np.ndarray | None) -> None:
        if eyes is None or self.passed_at is not None:
            return
        value = float(eye_openness(eyes, mouth if self.s.correct_tilt else None))
        self.values.append(value)
        self.shapes.append(float(face_shape(points5)))
        if len(self.values) < self.s.min_frames:
            return
        level = self.open_level()
        self.lowest = min(self.lowest, value / level)
        if self.closed_at is None:
            closed = value < self.s.closed_ratio * level
            if closed and self.s.max_shape_change is not None:
                usual = float(np.median(self.shapes))
                if abs(self.shapes[-1] - usual) > self.s.max_shape_change * usual:
                    closed = False
                    self.gated += 1
            self.run = self.run + 1 if closed else 0
            if self.run >= self.s.min_closed_frames:
                self.closed_at = t
        elif value > self.s.reopen_ratio * level:
            self.passed_at = t

    def open_level(self) -> float:
        return float(np.percentile(self.values, 80))

    def report(self) -> dict:
        out: dict = {"passed": self.passed_at is not None, "frames": len(self.values)}
        if len(self.values) >= self.s.min_frames:
            out["open_level"] = round(self.open_level(), 4)
            out["lowest_fraction_of_open"] = round(float(self.lowest), 3)
            out["closed_below"] = self.s.closed_ratio
        if self.gated:
            out["frames_refused_shape_changed"] = self.gated
        if self.passed_at is not None and self.closed_at is not None:  # a pass follows a closing
            out["blink_at"] = round(self.closed_at, 3)
        return out


class _Turn:
    def __init__(self, s: LivenessSettings) -> None:
        self.s = s
        self.values: list[float] = []
        self.turned_at: float | None = None
        self.passed_at: float | None = None
        self.widest = 0.0

    def add(self, t: float, points5: np.ndarray) -> None:
        if self.passed_at is not None:
            return
        value = float(turn_ratio(points5))
        self.values.append(value)
        start = float(np.median(self.values[: self.s.min_frames]))
        if len(self.values) < self.s.min_frames:
            return
        away = abs(value - start)
        self.widest = max(self.widest, away)
        if self.turned_at is None and away >= self.s.turn_delta:
            self.turned_at = t
        elif self.turned_at is not None and away <= self.s.turn_delta / 2:
            self.passed_at = t

    def report(self) -> dict:
        out: dict = {"passed": self.passed_at is not None, "frames": len(self.values),
                     "widest_turn": round(self.widest, 3), "needed": self.s.turn_delta}
        if self.passed_at is not None and self.turned_at is not None:  # a pass follows a turn
            out["turn_at"] = round(self.turned_at, 3)
        return out


class LivenessCheck:
    """Feeds on one face's landmarks frame by frame; `result` is set once it is decided."""

    def __init__(self, settings: LivenessSettings = LivenessSettings()) -> None:
        self.settings = settings
        self.start: float | None = None
        self.last: float | None = None
        self.frames = 0
        self.result: LivenessResult | None = None
        self._checks: dict[str, _Blink | _Turn] = {
            name: (_Blink(settings) if name == "blink" else _Turn(settings)) for name in settings.checks}

    def add(self, time: float, points5: np.ndarray, eyes: np.ndarray | None = None,
            mouth: np.ndarray | None = None) -> LivenessResult | None:
        """One frame of the face: MTCNN's 5 points; for "blink", the eye contours (2, 6, 2) and mouth centre (2,)."""
        if self.result is not None:
            return self.result
        if self.start is None:
            self.start = time
        self.last = time
        self.frames += 1
        for check in self._checks.values():
            if isinstance(check, _Blink):
                check.add(time, points5, eyes, mouth)
            else:
                check.add(time, points5)
        passed = [n for n, c in self._checks.items() if c.passed_at is not None]
        done = bool(passed) if self.settings.require == "any" else len(passed) == len(self._checks)
        if done:
            what = " and ".join("a blink" if n == "blink" else "a head turn" for n in passed)
            self.result = self._result(True, f"{what} seen within {self.settings.time_limit:g} s")
        elif time - self.start > self.settings.time_limit:
            self.result = self._result(False, self._failure(f"within the time limit of {self.settings.time_limit:g} s"))
        return self.result

    def tick(self, time: float) -> LivenessResult | None:
        """A frame without this face: only the time limit moves on."""
        if self.result is None and self.start is not None and time - self.start > self.settings.time_limit:
            self.result = self._result(False, self._failure(f"within the time limit of {self.settings.time_limit:g} s"))
        return self.result

    def finish(self) -> LivenessResult:
        """The decision now: the one already made, or not live (the face left before passing)."""
        if self.result is None:
            if self.frames == 0:
                return LivenessResult(False, "no face was seen", {}, 0, 0.0)
            self.result = self._result(False, self._failure("before the face left or the video ended"))
        return self.result

    def _failure(self, when: str) -> str:
        names = ["blink" if n == "blink" else "head turn" for n in self._checks]
        if self.settings.require == "all" and len(names) > 1:
            missing = [nm for nm, c in zip(names, self._checks.values()) if c.passed_at is None]
            return f"no {' and no '.join(missing)} {when}"
        return f"no {' or '.join(names)} {when}"

    def _result(self, live: bool, reason: str) -> LivenessResult:
        seconds = (self.last or 0.0) - (self.start or 0.0)
        return LivenessResult(live, reason, {n: c.report() for n, c in self._checks.items()}, self.frames, seconds)
