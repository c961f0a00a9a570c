"""Uploaded enrollment photos kept on disk, only when the service is told to (`--store-images DIR`).

Files are named by numbers the gallery gave (`DIR/<person id>/<embedding id>.<ext>`),
never by anything a client sent, so no upload can choose where it lands.
Removing a person removes their folder; folders of people no longer in the
gallery (removed by other means) are swept away when the service starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


class PhotoStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, person_id: int) -> Path:
        return self.root / str(int(person_id))

    def save(self, person_id: int, embedding_id: int, data: bytes, extension: str) -> Path:
        folder = self.folder(person_id)
        folder.mkdir(exist_ok=True)
        path = folder / f"{int(embedding_id)}.{extension}"
        tmp = path.with_suffix(path.suffix + ".part")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def files(self, person_id: int) -> list[Path]:
        folder = self.folder(person_id)
        return sorted(folder.iterdir()) if folder.is_dir() else []

    def discard(self, paths: Iterable[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    def remove_person(self, person_id: int) -> None:
        shutil.rmtree(self.folder(person_id), ignore_errors=True)

    def sweep(self, people: Iterable[int], *, older_than_s: float = 600.0) -> int:
        """Remove the folders of people who are not in `people`; how many were removed.

        Folders changed in the last `older_than_s` are left alone: another worker of the same
        service may be enrolling that person right now (its transaction not yet committed).
        """
        keep = {str(int(p)) for p in people}
        cutoff = time.time() - older_than_s
        removed = 0
        for entry in self.root.iterdir():
            if (entry.is_dir() and entry.name.isdigit() and entry.name not in keep
                    and entry.stat().st_mtime < cutoff):
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        if removed:
            log.info("removed the stored photos of %d people no longer in the gallery", removed)
        return removed
