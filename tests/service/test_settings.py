"""The service's settings and its optional store of enrollment photos (no models needed)."""

from __future__ import annotations

import os
import time

import pytest

from cnnkit.service import ServiceSettings
from cnnkit.service.photos import PhotoStore


def test_settings_are_keyword_only_checked_and_survive_json(tmp_path):
    with pytest.raises(TypeError):
        ServiceSettings(tmp_path / "g.db")  # type: ignore[misc]
    settings = ServiceSettings(gallery=str(tmp_path / "g.db"), store_images=str(tmp_path / "kept"), device="cuda:1")
    assert settings.gallery == tmp_path / "g.db" and settings.store_images == tmp_path / "kept"
    assert ServiceSettings.from_json(settings.to_json()) == settings
    for bad in ({"max_upload_bytes": 0}, {"max_pixels": -1}, {"request_timeout_s": 0}, {"batch_size": 0},
                {"threads": 0}, {"batch_wait_ms": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ServiceSettings(gallery="g.db", **bad)
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda'"):
        ServiceSettings(gallery="g.db", device="gpu")


def test_photo_store_names_files_by_ids_and_removes_them(tmp_path):
    store = PhotoStore(tmp_path / "kept")
    path = store.save(7, 31, b"\xff\xd8\xff...", "jpg")
    assert path == tmp_path / "kept" / "7" / "31.jpg" and path.read_bytes() == b"\xff\xd8\xff..."
    assert store.files(7) == [path] and not list((tmp_path / "kept" / "7").glob("*.part"))
    store.remove_person(7)
    assert store.files(7) == [] and not (tmp_path / "kept" / "7").exists()


def test_sweep_removes_folders_of_people_gone_but_spares_recent_ones(tmp_path):
    store = PhotoStore(tmp_path / "kept")
    for person in (1, 2, 3):
        store.save(person, person * 10, b"x", "png")
    old = time.time() - 3600
    for person in (1, 2):
        os.utime(store.folder(person), (old, old))
    (tmp_path / "kept" / "notes").mkdir()  # not a person's folder: left alone
    # 1 is still enrolled; 2 is gone (removed by other means); 3 is gone from the file, but its folder
    # is fresh: another worker may be enrolling it right now.
    assert store.sweep([1]) == 1
    assert store.files(1) and not store.folder(2).exists() and store.files(3)
    assert (tmp_path / "kept" / "notes").is_dir()
    assert store.sweep([1], older_than_s=0) == 1 and not store.folder(3).exists()
