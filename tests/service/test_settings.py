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


def test_reconcile_removes_what_no_row_owns_but_spares_recent_files_of_others(tmp_path):
    store = PhotoStore(tmp_path / "kept")
    for person in (1, 2, 3):
        store.save(person, person * 10, b"x", "png")
    store.save(1, 11, b"y", "jpg")  # an embedding of person 1 that was rolled back
    old = time.time() - 3600
    for path in (store.folder(1), store.folder(2), store.folder(1) / "11.jpg"):
        os.utime(path, (old, old))
    (tmp_path / "kept" / "notes").mkdir()  # not a person's folder: left alone
    # 1 is still enrolled (embedding 10 only); 2 is gone; 3 is gone from the file, but its folder
    # is fresh: another worker may be enrolling it right now.
    assert store.reconcile([(1, 10)]) == {"people": 1, "photos": 1}
    assert [p.name for p in store.files(1)] == ["10.png"] and not store.folder(2).exists() and store.files(3)
    assert (tmp_path / "kept" / "notes").is_dir()
    assert store.reconcile([(1, 10)], older_than_s=0) == {"people": 1, "photos": 0}
    assert not store.folder(3).exists()


def test_a_worker_alone_reconciles_everything_one_among_others_only_old_orphans(tmp_path):
    import fcntl

    first = PhotoStore(tmp_path / "kept")
    first.save(5, 50, b"x", "png")  # fresh orphan
    other = os.open(tmp_path / "kept" / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(other, fcntl.LOCK_SH)  # another worker is serving
        assert first.reconcile_at_start([]) == {"people": 0, "photos": 0}
        first.close()
        fcntl.flock(other, fcntl.LOCK_UN)
        second = PhotoStore(tmp_path / "kept")  # now it starts alone: the fresh orphan goes too
        assert second.reconcile_at_start([]) == {"people": 1, "photos": 0}
        second.close()
    finally:
        os.close(other)


def test_photos_are_private_whatever_the_umask(tmp_path):
    import stat

    old = os.umask(0)
    try:
        store = PhotoStore(tmp_path / "kept")
        path = store.save(7, 31, b"x", "jpg")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "kept").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o600
    (tmp_path / "old").mkdir(mode=0o755)  # a folder made by an older cnnkit is made private
    os.chmod(tmp_path / "old", 0o755)
    PhotoStore(tmp_path / "old")
    assert stat.S_IMODE((tmp_path / "old").stat().st_mode) == 0o700
