"""Verification metrics and the pairs-file reader, against plain loops and hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.errors import CnnkitError
from cnnkit.faces.evaluate import read_pairs
from cnnkit.runtime import metrics
from tests.conftest import LFW


def _brute_best_accuracy(distance, same):
    best = 0.0
    for t in np.concatenate([[-1.0], distance, [distance.max() + 1]]):
        best = max(best, np.mean((distance <= t) == same))
    return best


def test_best_threshold_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        same = rng.random(200) < 0.5
        distance = np.where(same, rng.normal(0.4, 0.1, 200), rng.normal(0.8, 0.15, 200)).round(2)
        t = metrics.best_threshold(distance, same)
        assert metrics.accuracy(distance, same, t) == pytest.approx(_brute_best_accuracy(distance, same))


def test_kfold_threshold_is_chosen_on_other_folds():
    # Fold 0 alone would want a threshold near 0.5; folds 1-2 agree on ~0.3.
    distance = np.array([0.45, 0.55, 0.2, 0.4, 0.2, 0.4])
    same = np.array([True, False, True, False, True, False])
    folds = np.array([0, 0, 1, 1, 2, 2])
    accs, thresholds = metrics.kfold_accuracy(distance, same, folds)
    assert 0.2 < thresholds[0] < 0.4
    assert accs == [0.5, 1.0, 1.0]


def test_auc_eer_tar_on_separable_and_random_scores():
    same = np.array([True] * 50 + [False] * 50)
    perfect = np.r_[np.linspace(0, 0.4, 50), np.linspace(0.6, 1, 50)]
    assert metrics.auc(perfect, same) == pytest.approx(1.0)
    assert metrics.eer(perfect, same) == pytest.approx(0.0)
    assert metrics.tar_at_far(perfect, same, 1e-3) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    same = rng.random(20000) < 0.5
    noise = rng.random(20000)
    assert metrics.auc(noise, same) == pytest.approx(0.5, abs=0.02)
    assert metrics.eer(noise, same) == pytest.approx(0.5, abs=0.02)


def test_auc_equals_pairwise_probability():
    rng = np.random.default_rng(2)
    same = rng.random(300) < 0.4
    distance = rng.normal(same * -0.5, 1.0).round(1)  # many ties
    pos, neg = distance[same], distance[~same]
    pairwise = ((pos[:, None] < neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert metrics.auc(distance, same) == pytest.approx(pairwise)


def test_unencodable_pairs_count_as_different():
    distance = np.array([0.1, np.inf, 0.9, np.inf])
    same = np.array([True, True, False, False])
    t = metrics.best_threshold(distance, same)
    assert metrics.accuracy(distance, same, t) == 0.75
    assert 0.5 <= metrics.auc(distance, same) <= 1.0


def test_read_official_pairs():
    path = LFW / "pairs.txt"
    if not path.exists():
        pytest.skip("LFW pairs.txt not available")
    pairs = read_pairs(path)
    assert len(pairs) == 6000
    assert sum(p.same for p in pairs) == 3000
    assert [p.fold for p in pairs[::600]] == list(range(10))
    assert pairs[0].same and pairs[0].first.endswith(".jpg") and not pairs[300].same
    dev = read_pairs(LFW / "pairsDevTrain.txt")
    assert len(dev) == 2200 and {p.fold for p in dev} == {0}


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("ten 300\n", "header"),
    ("1 1\nAl\t1\t2\n", "announces"),
    ("1 1\nAl\t1\nBo\t1\tCy\t2\n", ":2: expected"),
    ("1 1\nAl\t1\t2\nBo\tx\tCy\t2\n", ":3: expected"),
])
def test_bad_pairs_files(tmp_path, text, message):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(CnnkitError, match=message):
        read_pairs(path)
