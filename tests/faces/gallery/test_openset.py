"""Size-aware identification: the 1:K threshold follows the gallery's size and target FPIR."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.errors import CnnkitError, SettingsError
from cnnkit.faces.gallery import Gallery
from cnnkit.faces.gallery.calibrate import calibrate_identification
from cnnkit.faces.gallery.openset import ImpostorTable, operating_point, pair_rate, shipped_table
from cnnkit.faces.gallery.store import EmbeddingRecord
from cnnkit.faces.models import embedding_model


def test_pair_rate_inverts_the_chance_that_a_stranger_matches_someone():
    for fpir, n in ((0.01, 1), (0.01, 1680), (0.1, 30), (0.01, 1_000_000)):
        rate = pair_rate(fpir, n)
        assert abs(1 - (1 - rate) ** n - fpir) < 1e-9
    assert pair_rate(0.01, 1) == pytest.approx(0.01)
    with pytest.raises(SettingsError):
        pair_rate(1.5, 10)


def test_table_quantiles_and_extrapolation():
    rng = np.random.default_rng(0)
    d = rng.normal(1.3, 0.08, 200_000)
    table = ImpostorTable.from_distances(d, encoder="e", version="v", flip=True, source="normal")
    for rate in (1e-1, 1e-2, 1e-3):
        assert table.threshold_for_rate(rate) == pytest.approx(np.quantile(d, rate), abs=0.01)
    # beyond the data: keeps falling, below the measured minimum
    assert table.threshold_for_rate(1e-8) < table.threshold_for_rate(table.lowest_rate) <= d.min() + 0.01
    assert ImpostorTable.from_dict(table.to_dict()) == table
    with pytest.raises(SettingsError, match="at least 100"):
        ImpostorTable.from_distances(d[:50], encoder="e", version="v", flip=True, source="x")


@pytest.mark.parametrize("encoder", ["sface-2021dec", "dlib-resnet-v1", "w600k-mbf"])
def test_every_pretrained_encoder_ships_its_table_and_larger_galleries_get_smaller_thresholds(encoder):
    model = embedding_model(True, encoder)
    table = shipped_table(encoder, model.version, True)
    assert table is not None and table.pairs > 1_000_000
    points = [operating_point(table, n) for n in (4, 30, 300, 1680, 1_000_000)]
    thresholds = [p.threshold for p in points]
    assert thresholds == sorted(thresholds, reverse=True) and thresholds[-1] > 0
    assert points[-1].extrapolated and not points[0].extrapolated


def unit(rng, dim):
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_gallery_threshold_follows_its_size_and_calibrate_refits_it(tmp_path):
    rng = np.random.default_rng(1)
    with Gallery(tmp_path / "g.db", create=True) as g:
        g.enroll_embeddings("first", [EmbeddingRecord(unit(rng, 128))])
        one = g.operating_point()
        for i in range(40):
            g.enroll_embeddings(f"p{i}", [EmbeddingRecord(unit(rng, 128))])
        forty = g.operating_point()
        assert (one.people, forty.people) == (1, 41) and forty.threshold < one.threshold
        assert "View 1" in forty.method and forty.fpir == 0.01
        answer = g.identify_embeddings(g.embeddings_of(1))[0]
        assert answer.operating_point == forty and answer.threshold == forty.threshold
        result = calibrate_identification(g, fpir=0.05)   # random vectors: ~1.41 apart
        assert result["people"] == 41 and result["pairs"] == 41 * 40 // 2
        assert g.fpir == 0.05 and "people of" in g.operating_point().method
        assert 1.0 < g.operating_point().threshold < 1.41
    with Gallery(tmp_path / "small.db", create=True) as g:
        g.enroll_embeddings("only", [EmbeddingRecord(unit(rng, 128))])
        with pytest.raises(CnnkitError, match="at least 15"):
            calibrate_identification(g)
