"""Reading volumes: MedMNIST-style .npz splits, and single volumes from .npy, .npz or NIfTI.

A volume is a 3-D array (depth, height, width) of numbers. `as_model_input`
turns it into what a network takes: float32 in [0, 1] (uint8 / 255; other
integer or float types min-max scaled), resized to the network's size when it
differs. Wrong rank, non-numeric dtypes, empty or unreadable files and empty
folders raise `VolumeError` with what was found.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import SettingsError, VolumeError
from ...runtime.extras import require

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
SUFFIXES = (".npy", ".npz", *NIFTI_SUFFIXES)


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (n, D, H, W) as stored (uint8 for MedMNIST)
    labels: np.ndarray  # (n,) int64


def load_split(path: str | Path, split: str) -> Split:
    """One official split ('train', 'val', 'test') of a MedMNIST 3D .npz file."""
    if split not in SPLITS:
        raise SettingsError(f"unknown split {split!r}; use one of {SPLITS}")
    path = Path(path)
    if not path.is_file():
        raise VolumeError(f"no dataset file at {path}; pass --data FILE.npz (e.g. adrenalmnist3d_28.npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if f"{split}_images" not in z or f"{split}_labels" not in z:
                raise VolumeError(f"{path} has no '{split}_images' / '{split}_labels' arrays "
                                  f"(it has: {', '.join(z.files)}); a MedMNIST 3D .npz is expected")
            images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    except (OSError, ValueError) as exc:
        raise VolumeError(f"cannot read {path}: {exc}") from None
    if images.ndim != 4:
        raise VolumeError(f"{path}: {split}_images must be (n, D, H, W), got shape {images.shape}")
    check_dtype(images, str(path))
    labels = np.asarray(labels).reshape(len(labels), -1)[:, 0].astype(np.int64)
    if len(labels) != len(images):
        raise VolumeError(f"{path}: {len(images)} {split} images but {len(labels)} labels")
    return Split(images, labels)


def check_dtype(array: np.ndarray, source: str) -> None:
    if array.dtype.kind not in "uif":
        raise VolumeError(f"{source}: volumes must hold integers or floats, got dtype {array.dtype}")


def _is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in NIFTI_SUFFIXES)


def list_volume_files(path: str | Path) -> list[Path]:
    """The volume files of a folder (sorted), or the one file given."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and (p.suffix.lower() in (".npy", ".npz") or _is_nifti(p)))
        if not files:
            raise VolumeError(f"{path} holds no volumes (.npy, .npz, .nii, .nii.gz)")
        return files
    if not path.exists():
        raise VolumeError(f"no such file or folder: {path}")
    return [path]


def read_volumes(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """(name, volume) for each volume in a file: a .npz may hold several, or an (n, D, H, W) stack."""
    path = Path(path)
    source = str(path)
    if _is_nifti(path):
        return [(path.name, _read_nifti(path))]
    try:
        if path.suffix.lower() == ".npy":
            arrays = [(path.name, np.load(path, allow_pickle=False))]
        elif path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = [k for k in z.files if not k.endswith("_labels")]
                arrays = [(f"{path.name}:{k}", z[k]) for k in keys]
        else:
            raise VolumeError(f"{path.name}: unsupported file type; use .npy, .npz, .nii or .nii.gz")
    except (OSError, ValueError, EOFError) as exc:
        raise VolumeError(f"cannot read {source}: {exc}") from None
    if not arrays:
        raise VolumeError(f"{source} holds no arrays")
    out: list[tuple[str, np.ndarray]] = []
    for name, a in arrays:
        check_dtype(a, name)
        if a.ndim == 4 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim == 4:
            out.extend((f"{name}[{i}]", v) for i, v in enumerate(a))
        elif a.ndim == 3:
            out.append((name, a))
        else:
            raise VolumeError(f"{name}: a volume has 3 axes (D, H, W) or a stack 4 (n, D, H, W); got shape {a.shape}")
    return out


def _read_nifti(path: Path) -> np.ndarray:
    nibabel = require("nibabel", extra="ndconv", purpose="reading NIfTI files")
    try:
        img = nibabel.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises its own errors for damaged files
        raise VolumeError(f"cannot read NIfTI file {path}: {exc}") from None
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError(f"{path}: a volume has 3 axes, this NIfTI image has shape {data.shape}")
    check_dtype(data, str(path))
    # NIfTI stores (x, y, z); the arrays here are (D, H, W) = (z, y, x)
    return np.ascontiguousarray(np.transpose(data, (2, 1, 0)))


def as_model_input(volume: np.ndarray, size: int) -> np.ndarray:
    """float32 (size, size, size) in [0, 1]: uint8 / 255, others min-max scaled; resized when needed."""
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise VolumeError(f"a volume has 3 axes (D, H, W), got shape {volume.shape}")
    check_dtype(volume, "volume")
    if volume.dtype == np.uint8:
        x = volume.astype(np.float32) / 255.0
    else:
        x = volume.astype(np.float32)
        if not np.isfinite(x).all():
            raise VolumeError("the volume holds NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if x.shape != (size,) * 3:
        import torch
        import torch.nn.functional as F

        log.info("resizing volume %s -> %d^3", x.shape, size)
        x = F.interpolate(torch.from_numpy(x)[None, None], size=(size,) * 3, mode="trilinear",
                          align_corners=False)[0, 0].numpy()
    return x
