"""An identity-folder dataset (`DIR/<person>/<images>`) with detection and alignment cached to disk.

Training reads every image many times; decoding JPEGs and running the
detector each epoch would cost more than the training step itself. So each
image is decoded and detected once: its five landmarks go to a landmark cache
(`landmarks-v1.npz`, keyed by the file's path, size and modification time),
and its aligned chip at the encoder's size to a chips file
(`chips-<size>-<hash>.npy`, uint8 N x S x S x 3) that later runs memory-map.
A changed image, a new image or another chip size only costs its own work.

Folders with a single image have no positive pair: they are skipped and
counted. Unreadable images are logged and skipped.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import CnnkitError, DatasetError, SettingsError
from ...images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

LANDMARKS_FILE = "landmarks-v1.npz"
#: Per-image status in the landmark cache.
DETECTED, FALLBACK, UNREADABLE = 0, 1, 2
SELECT_CHOICES = ("center", "largest")

Progress = Callable[[str, int, int], None]  # (stage, done, total)



def default_cache_dir() -> Path:
    from ...weights.store import cnnkit_home

    return cnnkit_home() / "train-cache"


def _key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


class LandmarkCache:
    """Landmarks (5, 2) and a status per image file, in one .npz (no pickle)."""

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        self.dir = Path(cache_dir)
        self.file = self.dir / LANDMARKS_FILE
        self.entries: dict[str, tuple[int, np.ndarray]] = {}
        if self.file.exists():
            try:
                with np.load(self.file, allow_pickle=False) as data:
                    for k, s, lm in zip(data["keys"], data["status"], data["landmarks"]):
                        self.entries[str(k)] = (int(s), lm.astype(np.float32))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring damaged landmark cache %s (%s)", self.file, exc)
                self.entries = {}

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        keys = list(self.entries)
        tmp = self.file.with_name(self.file.name + ".tmp.npz")
        np.savez(tmp, keys=np.array(keys, dtype=str),
                 status=np.array([self.entries[k][0] for k in keys], dtype=np.int8),
                 landmarks=np.stack([self.entries[k][1] for k in keys]) if keys else np.zeros((0, 5, 2), np.float32))
        os.replace(tmp, self.file)


def detect_landmarks(paths: Sequence[Path], *, cache_dir: str | os.PathLike, select: str = "center",
                     batch_size: int = 32, device: str | None = "cpu",
                     on_progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (N, 5, 2) and status (N,) for every path, detecting only what the cache lacks.

    One face per image: the one nearest the centre (`select="center"`, LFW's
    convention) or the largest. When no face is found, MTCNN's last stage is run
    on the central half of the image (status FALLBACK), as the LFW evaluation does.
    """
    from ...images import load_image
    from ..recognizer import centre_face, detect, select_faces

    if select not in SELECT_CHOICES:
        raise SettingsError(f"select must be one of {SELECT_CHOICES}, got {select!r}")
    cache = LandmarkCache(cache_dir)
    keys = [_key(p) for p in paths]
    todo = [i for i, k in enumerate(keys) if k not in cache.entries]
    done = len(paths) - len(todo)
    if on_progress:
        on_progress("detect", done, len(paths))
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        images, ok = [], []
        for i in chunk:
            try:
                images.append(load_image(paths[i]))
                ok.append(i)
            except CnnkitError as exc:
                log.warning("skipping unreadable image %s: %s", paths[i], exc)
                cache.entries[keys[i]] = (UNREADABLE, np.zeros((5, 2), np.float32))
        for i, image, faces in zip(ok, images, detect(images, device=device)):
            status = DETECTED
            faces = select_faces(faces, (image.shape[1], image.shape[0]), select)
            if not faces:
                faces, status = centre_face(image, device=device), FALLBACK
            if not faces:
                log.warning("no face in %s, even in its centre: skipped", paths[i])
                cache.entries[keys[i]] = (UNREADABLE, np.zeros((5, 2), np.float32))
                continue
            cache.entries[keys[i]] = (status, np.asarray(faces[0].landmarks, np.float32))
        done += len(chunk)
        if on_progress:
            on_progress("detect", done, len(paths))
        if (start // batch_size) % 20 == 19:  # keep the work of an interrupted run
            cache.save()
    if todo:
        cache.save()
    statuses = np.array([cache.entries[k][0] for k in keys], dtype=np.int8)
    landmarks = (np.stack([cache.entries[k][1] for k in keys]) if keys
                 else np.zeros((0, 5, 2), np.float32))
    return landmarks, statuses


def aligned_chips(paths: Sequence[Path], landmarks: np.ndarray, *, size: int, cache_dir: str | os.PathLike,
                  on_progress: Progress | None = None) -> np.ndarray:
    """uint8 chips (N, size, size, 3), memory-mapped from the cache (made on first use)."""
    import torch

    from ...images import load_image
    from ..align import align_faces
    from ..models import ALIGNMENT_VERSION

    digest = hashlib.sha256(f"{size}|{ALIGNMENT_VERSION}".encode())
    for p, lm in zip(paths, landmarks):
        digest.update(_key(p).encode())
        digest.update(np.ascontiguousarray(lm, np.float32).tobytes())
    file = Path(cache_dir) / f"chips-{size}-{digest.hexdigest()[:16]}.npy"
    if file.exists():
        try:
            chips = np.load(file, mmap_mode="r")
            if chips.shape == (len(paths), size, size, 3):
                return chips
        except (OSError, ValueError):
            pass
        log.warning("rebuilding damaged chip cache %s", file)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + ".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
    with torch.inference_mode():
        for i, (path, lm) in enumerate(zip(paths, landmarks)):
            out[i] = align_faces(load_image(path), lm[None], size=size)[0]
            if on_progress and (i % 64 == 63 or i == len(paths) - 1):
                on_progress("align", i + 1, len(paths))
    out.flush()
    del out
    os.replace(tmp, file)
    return np.load(file, mmap_mode="r")


def scan_identity_folder(root: str | os.PathLike, *, people: Sequence[str] | None = None
                         ) -> tuple[list[str], list[list[Path]]]:
    """(names, image paths per name) of `root/<person>/<images>`, sorted; `people` restricts the names."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; give a folder with one sub-folder of images per person")
    wanted = set(people) if people is not None else None
    names, files = [], []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        if wanted is not None and person.name not in wanted:
            continue
        images = sorted(f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if images:
            names.append(person.name)
            files.append(images)
    if not names:
        raise DatasetError(f"{root}: no images found (expected {root}/<person>/<image>.jpg)")
    return names, files


@dataclass
class IdentityDataset:
    """Aligned chips and identity labels of an identity folder, ready for P x K sampling.

    `chips` is a uint8 (N, S, S, 3) array (memory-mapped), `labels` int64 (N,)
    indexes `names`. Counts of what was left out are kept for the log.
    """

    root: Path
    chip_size: int
    names: list[str]
    paths: list[Path]
    labels: np.ndarray
    chips: np.ndarray
    skipped_single: int = 0
    skipped_unreadable: int = 0
    fallback_faces: int = 0
    unreadable: list[Path] = field(default_factory=list)

    @classmethod
    def load(cls, root: str | os.PathLike, *, chip_size: int = 150, cache_dir: str | os.PathLike | None = None,
             people: Sequence[str] | None = None, min_images: int = 2, select: str = "center",
             device: str | None = "cpu", on_progress: Progress | None = None) -> IdentityDataset:
        if min_images < 1:
            raise SettingsError("min_images must be at least 1")
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        names, files = scan_identity_folder(root, people=people)
        # Single-image people first: they cannot be anchors with a positive, so never detect them.
        keep = [i for i, f in enumerate(files) if len(f) >= min_images]
        skipped_single = len(names) - len(keep)
        paths = [p for i in keep for p in files[i]]
        landmarks, status = detect_landmarks(paths, cache_dir=cache_dir, select=select, device=device,
                                             on_progress=on_progress)
        good = status != UNREADABLE
        unreadable = [p for p, g in zip(paths, good) if not g]
        labels_all = np.array([j for j, i in enumerate(keep) for _ in files[i]], dtype=np.int64)
        # A person whose unreadable photos leave fewer than min_images is skipped too.
        counts = np.bincount(labels_all[good], minlength=len(keep))
        enough = counts >= min_images
        skipped_single += int((~enough).sum())
        use = good & enough[labels_all]
        kept_people = np.flatnonzero(enough)
        relabel = -np.ones(len(keep), dtype=np.int64)
        relabel[kept_people] = np.arange(len(kept_people))
        sel = np.flatnonzero(use)
        if len(kept_people) < 2:
            raise DatasetError(f"{root}: {len(kept_people)} people with at least {min_images} readable images "
                               f"({skipped_single} skipped with fewer); training needs at least 2")
        used_paths = [paths[i] for i in sel]
        chips = aligned_chips(used_paths, landmarks[sel], size=chip_size, cache_dir=cache_dir,
                              on_progress=on_progress)
        if skipped_single:
            log.info("%d people skipped: fewer than %d readable images (no positive pair)", skipped_single, min_images)
        return cls(root=Path(root), chip_size=chip_size, names=[names[keep[i]] for i in kept_people],
                   paths=used_paths, labels=relabel[labels_all[sel]], chips=chips, skipped_single=skipped_single,
                   skipped_unreadable=len(unreadable), fallback_faces=int((status[sel] == FALLBACK).sum()),
                   unreadable=unreadable)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_people(self) -> int:
        return len(self.names)

    def batch(self, indices: Sequence[int] | np.ndarray):
        """Float chips (B, 3, S, S), 0-255, for these indices (read from the memory map)."""
        import torch

        idx = np.asarray(indices)
        order = np.argsort(idx, kind="stable")  # sorted reads are kinder to the page cache
        block = np.empty((len(idx), self.chip_size, self.chip_size, 3), np.uint8)
        block[order] = self.chips[idx[order]]
        return torch.from_numpy(block).permute(0, 3, 1, 2).float()


def image_chips(paths: Sequence[Path], *, chip_size: int, cache_dir: str | os.PathLike | None = None,
                select: str = "center", device: str | None = "cpu",
                on_progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Chips (N, S, S, 3) of a plain list of images (e.g. those of a pairs file), and which were usable."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    paths = [Path(p) for p in paths]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{missing[0]}: no such image ({len(missing)} missing in all)")
    landmarks, status = detect_landmarks(paths, cache_dir=cache_dir, select=select, device=device,
                                         on_progress=on_progress)
    ok = status != UNREADABLE
    chips = aligned_chips([p for p, g in zip(paths, ok) if g], landmarks[ok], size=chip_size,
                          cache_dir=cache_dir, on_progress=on_progress)
    return chips, ok
