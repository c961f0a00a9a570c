"""The MIT-BIH records (../shared/data/ecg/mitdb) and a small ECG classifier trained on two of them."""

from __future__ import annotations

import pytest

from tests.conftest import DATA

MITDB = DATA / "ecg" / "mitdb"


@pytest.fixture(scope="session")
def mitdb():
    if not (MITDB / "100.hea").is_file():
        pytest.skip(f"MIT-BIH not available at {MITDB}")
    return MITDB


@pytest.fixture(scope="session")
def small_ecg_model(mitdb, tmp_path_factory):
    """A classifier trained for one short epoch on two DS1 records (a check of the plumbing, not of accuracy)."""
    from cnnkit.ndconv.ecg.train import EcgSettings, save_ecg, train_ecg
    from cnnkit.runtime.training import FitSettings

    settings = EcgSettings(widths=(4, 8), n_fraction=0.1,
                           train=FitSettings(epochs=1, batch_size=64, threads=1, device="cpu"))
    trained = train_ecg(mitdb, settings=settings, train_records=("119",), validation_records=("106",))
    return save_ecg(tmp_path_factory.mktemp("ecg") / "ecg.safetensors", trained)
