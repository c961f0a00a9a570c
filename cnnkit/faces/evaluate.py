"""Face verification on a pairs file in LFW's format, through the whole pipeline.

LFW View 2 (`pairs.txt`): a header `10 300`, then 10 folds of 300 same-person
rows (`name i j`) followed by 300 different-person rows (`name1 i name2 j`).
View 1 files (`pairsDevTrain.txt`) have a header `N`: N same rows then N
different rows, one fold. The image of `name i` is `DIR/name/name_000i.jpg`.

With 2 or more folds the accuracy follows LFW's protocol: for each fold, the
threshold is chosen on the other folds and tested on it. With one fold the
threshold is chosen on the same pairs (an optimistic figure, reported as such),
unless a fixed `threshold` is given.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CnnkitError
from ..runtime import metrics
from .models import DEFAULT_ENCODER
from .pipeline import ImageResult, embed_images
from .recognizer import centre_face
from .settings import MIN_FACE_SIZE, DetectorSettings
from .types import Face, embedding_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    first: str   # relative image path "name/name_0001.jpg"
    second: str
    same: bool
    fold: int


def lfw_image(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """Parse a pairs file in LFW's format; `CnnkitError` naming the line on a bad one."""
    path = Path(path)
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise CnnkitError(f"{path}: cannot read pairs file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise CnnkitError(f"{path}: not a text pairs file") from None
    if not lines:
        raise CnnkitError(f"{path}: empty pairs file")
    header = lines[0]
    try:
        if len(header) == 2:
            n_folds, per_class = int(header[0]), int(header[1])
        elif len(header) == 1:
            n_folds, per_class = 1, int(header[0])
        else:
            raise ValueError
    except ValueError:
        raise CnnkitError(f"{path}:1: expected a header 'FOLDS PAIRS_PER_CLASS' or 'PAIRS', "
                          f"got {' '.join(header)!r}") from None
    body = lines[1:]
    if len(body) != n_folds * per_class * 2:
        raise CnnkitError(f"{path}: header announces {n_folds} folds x {per_class} x 2 = "
                          f"{n_folds * per_class * 2} pairs, file has {len(body)}")
    pairs = []
    for index, fields in enumerate(body):
        line_no = index + 2
        fold = index // (2 * per_class)
        try:
            if len(fields) == 3:
                pair = Pair(lfw_image(fields[0], fields[1]), lfw_image(fields[0], fields[2]), True, fold)
            elif len(fields) == 4:
                pair = Pair(lfw_image(fields[0], fields[1]), lfw_image(fields[2], fields[3]), False, fold)
            else:
                raise ValueError
        except ValueError:
            raise CnnkitError(f"{path}:{line_no}: expected 'name i j' or 'name1 i name2 j', "
                              f"got {' '.join(fields)!r}") from None
        pairs.append(pair)
    return pairs


@dataclass
class VerificationReport:
    accuracy_mean: float
    accuracy_std: float
    auc: float
    eer: float
    tar_at_far_1e_3: float
    threshold: float
    pairs: int
    images: int
    faces_not_found: int
    images_unencoded: int
    images_per_second: float
    fold_accuracies: list[float]
    fold_thresholds: list[float]
    threshold_protocol: str
    encoder: str = DEFAULT_ENCODER
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["tar_at_far_1e-3"] = out.pop("tar_at_far_1e_3")
        return out


def evaluate_pairs(
    pairs: list[Pair],
    images_dir: str | Path,
    *,
    flip: bool = True,
    batch_size: int = 32,
    threshold: float | None = None,
    device: str | None = None,
    min_face_size: float = MIN_FACE_SIZE,
    encoder: str = DEFAULT_ENCODER,
    on_image: Callable[[ImageResult], None] | None = None,
) -> tuple[VerificationReport, np.ndarray]:
    """Run the pipeline over every image of `pairs`; return the report and the pair distances."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise CnnkitError(f"{images_dir}: no such folder of images")
    unique = sorted({p.first for p in pairs} | {p.second for p in pairs})
    not_found = 0

    def fallback(image: np.ndarray) -> list[Face]:
        nonlocal not_found
        not_found += 1
        return centre_face(image, device=device)

    start = time.perf_counter()
    embeddings: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for rel, result in zip(unique, embed_images((images_dir / rel for rel in unique), select="center",
                                                flip=flip, batch_size=batch_size, fallback=fallback,
                                                settings=DetectorSettings(min_face_size=min_face_size),
                                                encoder=encoder,
                                                device=device, on_image=on_image)):
        if result.error:
            errors[rel] = result.error
        elif result.faces:
            embeddings[rel] = embedding_of(result.faces[0])
    elapsed = time.perf_counter() - start
    for rel, message in list(errors.items())[:5]:
        log.warning("could not use %s: %s", rel, message)
    if not embeddings:  # a wrong folder: every pair would be "different", a meaningless 50 %
        example = next(iter(errors.values()), "no face found")
        raise CnnkitError(f"none of the {len(unique)} images of the pairs could be used in {images_dir} "
                          f"(e.g. {example}); is it the folder of NAME/NAME_NNNN.jpg images?")
    if errors:
        log.warning("%d of %d images could not be read; their pairs count as 'different'", len(errors), len(unique))

    distance = np.array([
        float(np.linalg.norm(embeddings[p.first] - embeddings[p.second]))
        if p.first in embeddings and p.second in embeddings else np.inf
        for p in pairs
    ])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    if threshold is not None:
        fold_thresholds = [threshold] * len(np.unique(folds))
        fold_accs = [metrics.accuracy(distance[folds == f], same[folds == f], threshold) for f in np.unique(folds)]
        protocol = "fixed threshold given by the user"
    elif len(np.unique(folds)) >= 2:
        fold_accs, fold_thresholds = metrics.kfold_accuracy(distance, same, folds)
        protocol = "per fold, chosen on the other folds (LFW View 2 protocol)"
    else:
        t = metrics.best_threshold(distance, same)
        fold_accs, fold_thresholds = [metrics.accuracy(distance, same, t)], [t]
        protocol = "chosen on these same pairs (one fold: optimistic)"
    report = VerificationReport(
        accuracy_mean=float(np.mean(fold_accs)),
        accuracy_std=float(np.std(fold_accs, ddof=1)) if len(fold_accs) > 1 else 0.0,
        auc=metrics.auc(distance, same),
        eer=metrics.eer(distance, same),
        tar_at_far_1e_3=metrics.tar_at_far(distance, same, 1e-3),
        threshold=float(np.mean(fold_thresholds)),
        pairs=len(pairs),
        images=len(unique),
        faces_not_found=not_found,
        images_unencoded=len(unique) - len(embeddings),
        images_per_second=len(unique) / elapsed if elapsed > 0 else 0.0,
        fold_accuracies=[float(a) for a in fold_accs],
        fold_thresholds=[float(t) for t in fold_thresholds],
        threshold_protocol=protocol,
        encoder=encoder,
        settings={"flip": flip, "batch_size": batch_size, "device": str(device or "auto"),
                  "min_face_size": min_face_size,
                  "select": "center", "no_face": "centre box refined by MTCNN's O-Net"},
    )
    return report, distance


def save_roc(distance: np.ndarray, same: np.ndarray, path: str | Path, *, title: str = "ROC") -> None:
    """Draw the ROC curve (log false-accept axis) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    far, tar, _ = metrics.roc_curve(distance, same)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    ax.plot(np.maximum(far, 1e-4), tar, lw=1.5)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(min(0.9, float(tar[far >= 1e-3].min()) if (far >= 1e-3).any() else 0.9), 1.001)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
