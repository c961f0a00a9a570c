"""The liveness decision on landmark sequences made up for the purpose (no models)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.faces.liveness import LivenessCheck, LivenessSettings
from cnnkit.faces.liveness.eyes import eye_aspect_ratio, eye_openness
from cnnkit.faces.liveness.headturn import turn_ratio

FPS = 25.0


def eye(cx: float, cy: float, openness: float, width: float = 30.0) -> np.ndarray:
    """Six contour points p1..p6 of an eye whose EAR is `openness`."""
    h = openness * width / 2  # EAR = (2h + 2h) / (2 width)
    return np.array([[cx - width / 2, cy], [cx - width / 6, cy - h], [cx + width / 6, cy - h],
                     [cx + width / 2, cy], [cx + width / 6, cy + h], [cx - width / 6, cy + h]])


def frame(openness: float, *, squash: float = 1.0, nose: float = 0.5):
    eyes = np.stack([eye(100, 100, openness), eye(160, 100, openness)])
    mouth = np.array([130.0, 160.0])
    points5 = np.array([[100, 100], [160, 100], [100 + 60 * nose, 130], [110, 160], [150, 160]], dtype=float)
    if squash != 1.0:  # a photo tilted away: every y shrinks towards y = 100
        eyes[..., 1] = 100 + (eyes[..., 1] - 100) * squash
        mouth[1] = 100 + (mouth[1] - 100) * squash
        points5[:, 1] = 100 + (points5[:, 1] - 100) * squash
    return points5, eyes, mouth


def run(values, settings=LivenessSettings(time_limit=10.0), **kw):
    check = LivenessCheck(settings)
    for i, v in enumerate(values):
        extra = {k: (val[i] if isinstance(val, list) else val) for k, val in kw.items()}
        if check.add(i / FPS, *frame(v, **extra)) is not None:
            break
    return check.finish()


def test_eye_aspect_ratio_matches_the_formula():
    assert eye_aspect_ratio(eye(0, 0, 0.3)) == pytest.approx(0.3)
    assert eye_openness(np.stack([eye(0, 0, 0.2), eye(60, 0, 0.4)])) == pytest.approx(0.3)


def test_open_eyes_throughout_are_not_live_and_say_why():
    result = run([0.3] * 60, LivenessSettings(time_limit=1.0))
    assert not result.live
    assert "no blink" in result.reason and "time limit of 1 s" in result.reason
    assert result.checks["blink"]["passed"] is False


def test_a_blink_is_live():
    values = [0.3] * 20 + [0.2, 0.1, 0.05, 0.1, 0.2] + [0.3] * 10
    result = run(values)
    assert result.live and "blink" in result.reason
    assert result.checks["blink"]["lowest_fraction_of_open"] < 0.3


def test_min_closed_frames_ignores_shorter_dips():
    values = [0.3] * 20 + [0.15] + [0.3] * 20
    assert run(values).live
    assert not run(values, LivenessSettings(time_limit=10.0, min_closed_frames=2)).live


def test_a_tilted_photo_is_not_a_blink_and_either_defence_alone_stops_it():
    squash = [1.0] * 15 + [0.8, 0.6, 0.45, 0.45, 0.6, 0.8] + [1.0] * 15
    values = [0.3] * len(squash)
    assert not run(values, squash=squash).live
    only_gate = LivenessSettings(time_limit=10.0, correct_tilt=False)
    result = run(values, only_gate, squash=squash)
    assert not result.live and result.checks["blink"]["frames_refused_shape_changed"] >= 2
    assert not run(values, LivenessSettings(time_limit=10.0, max_shape_change=None), squash=squash).live
    neither = LivenessSettings(time_limit=10.0, correct_tilt=False, max_shape_change=None)
    assert run(values, neither, squash=squash).live


def test_head_turn():
    nose = [0.5] * 10 + [0.45, 0.38, 0.3, 0.3, 0.38, 0.45, 0.5, 0.5]
    settings = LivenessSettings(checks=("turn",), time_limit=10.0)
    assert run([0.3] * len(nose), settings, nose=nose).live
    assert not run([0.3] * len(nose), settings).live
    assert turn_ratio(frame(0.3, nose=0.3)[0]) == pytest.approx(0.3)


def test_require_all_needs_both():
    values = [0.3] * 20 + [0.2, 0.1, 0.05, 0.1, 0.2] + [0.3] * 10
    settings = LivenessSettings(checks=("blink", "turn"), require="all", time_limit=10.0)
    result = run(values, settings)
    assert not result.live and "no head turn" in result.reason


@pytest.mark.parametrize("kwargs, message", [
    ({"checks": ("wink",)}, "checks must be"), ({"require": "most"}, "require must be"),
    ({"time_limit": 0}, "time_limit"), ({"closed_ratio": 0.95}, "closed_ratio"),
])
def test_bad_settings_name_the_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LivenessSettings(**kwargs)
