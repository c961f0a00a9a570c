"""Uploaded enrollment photos kept on disk, only when the service is told to (`--store-images DIR`).

Files are named by numbers the gallery gave (`DIR/<person id>/<embedding id>.<ext>`),
never by anything a client sent, so no upload can choose where it lands.

They hold biometric data, so they are private (folders 0700, files 0600,
whatever the umask) and they live and die with the gallery's rows:

- an enrollment writes its photos (fsynced) inside the gallery transaction,
  before the commit; if the transaction fails they are removed. A new person's
  folder is emptied before their photos are written: anything there was left
  by a crashed enrollment whose id the database rolled back and gave again;
- a deletion removes the photos inside the transaction, before the rows go, so
  a crash can leave a person without photos (the delete was not answered) but
  never photos of someone who is gone;
- at start-up `reconcile` removes whatever a crash left: folders of people not
  in the gallery, photos of embeddings not in it, half-written `.part` files,
  and says so in the log. A worker that starts alone (no other worker of the
  service holds the folder's lock) removes every orphan; one that starts while
  others serve leaves files changed in the last `GRACE_S` alone (they may be an
  enrollment in flight in another worker).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from ..runtime.files import fsync_path

log = logging.getLogger(__name__)

FOLDER_MODE = 0o700
FILE_MODE = 0o600
#: Age below which a worker that is not alone leaves an orphan alone (another worker may be enrolling it).
GRACE_S = 600.0
LOCK_NAME = ".lock"


def _private_folder(path: Path) -> None:
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != FOLDER_MODE:
        try:
            os.chmod(path, FOLDER_MODE)  # mkdir's mode passes through the umask; an old folder may be 0755
        except PermissionError:
            log.warning("%s: cannot make the photo folder private (not its owner)", path)


class PhotoStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        _private_folder(self.root)
        self._lock_fd: int | None = None

    def folder(self, person_id: int) -> Path:
        return self.root / str(int(person_id))

    def save(self, person_id: int, embedding_id: int, data: bytes, extension: str) -> Path:
        folder = self.folder(person_id)
        _private_folder(folder)
        for stale in folder.glob(f"{int(embedding_id)}.*"):  # left by a rolled-back embedding of this id
            stale.unlink(missing_ok=True)
        path = folder / f"{int(embedding_id)}.{extension}"
        tmp = path.with_suffix(path.suffix + ".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        fsync_path(folder)
        return path

    def files(self, person_id: int) -> list[Path]:
        folder = self.folder(person_id)
        return sorted(folder.iterdir()) if folder.is_dir() else []

    def discard(self, paths: Iterable[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    def remove_person(self, person_id: int) -> None:
        """Every photo of a person, gone (and the removal made durable)."""
        folder = self.folder(person_id)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            fsync_path(self.root)

    # -- after a crash --------------------------------------------------------------------

    def reconcile(self, stored: Iterable[tuple[int, int]], *, older_than_s: float = GRACE_S) -> dict[str, int]:
        """Remove the photos no stored (person id, embedding id) owns; what was removed, counted.

        Entries changed in the last `older_than_s` are left alone (0: remove every orphan).
        """
        owners: dict[int, set[int]] = {}
        for person_id, embedding_id in stored:
            owners.setdefault(int(person_id), set()).add(int(embedding_id))
        cutoff = time.time() - older_than_s
        removed = {"people": 0, "photos": 0}
        for entry in self.root.iterdir():
            if not (entry.is_dir() and entry.name.isdigit()):
                continue
            if int(entry.name) not in owners:
                if older_than_s <= 0 or entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed["people"] += 1
                continue
            keep = owners[int(entry.name)]
            for photo in entry.iterdir():
                stem = photo.name.split(".", 1)[0]
                orphan = photo.name.endswith(".part") or not stem.isdigit() or int(stem) not in keep
                if orphan and (older_than_s <= 0 or photo.stat().st_mtime < cutoff):
                    photo.unlink(missing_ok=True)
                    removed["photos"] += 1
        if any(removed.values()):
            log.warning("removed photos a crash left behind in %s: %d folders of people not in the gallery, "
                        "%d photos of embeddings not in it", self.root, removed["people"], removed["photos"])
        return removed

    def reconcile_at_start(self, stored: Iterable[tuple[int, int]]) -> dict[str, int]:
        """`reconcile` when a worker starts: every orphan when it is alone, old ones only when not.

        Each worker holds a shared lock on DIR/.lock while it serves; one that gets the
        lock exclusively is alone, reconciles, and only then lets others in.
        """
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, FILE_MODE)
        self._lock_fd = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits for a worker that is reconciling alone
            alone = False
        try:
            return self.reconcile(stored, older_than_s=0.0 if alone else GRACE_S)
        finally:
            if alone:
                fcntl.flock(fd, fcntl.LOCK_SH)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
