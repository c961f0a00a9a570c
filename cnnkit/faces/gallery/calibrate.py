"""Set a gallery's threshold from labelled pairs, for a target false-accept rate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...errors import CnnkitError, SettingsError
from ...runtime.clock import utc_timestamp
from ..evaluate import evaluate_pairs, read_pairs
from ..pipeline import ImageResult
from .gallery import Gallery


def threshold_for_far(distance: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float, float]:
    """The largest threshold whose false-accept rate on these pairs is at most `far`.

    Returns (threshold, measured FAR, true-accept rate at it). A pair is
    accepted when its distance is <= threshold.
    """
    different = np.sort(distance[~same])
    if len(different) == 0 or not same.any():
        raise CnnkitError("calibration needs both same-person and different-person pairs")
    allowed = int(np.floor(far * len(different)))  # false accepts we may make
    if allowed >= len(different):
        threshold = float(different[-1])
    else:
        # Accept everything strictly below the (allowed+1)-th nearest different pair.
        threshold = float(np.nextafter(different[allowed], -np.inf))
    accepted_diff = int(np.searchsorted(different, threshold, side="right"))
    tar = float(np.mean(distance[same] <= threshold))
    return threshold, accepted_diff / len(different), tar


def calibrate(gallery: Gallery, pairs_path: str | Path, images_dir: str | Path, *, far: float = 1e-3,
              on_image: Callable[[ImageResult], None] | None = None) -> dict:
    """Encode the pairs' images with the gallery's model, choose the threshold, record how."""
    if not 0.0 < far < 1.0:
        raise SettingsError(f"far must be in (0, 1), got {far}")
    pairs = read_pairs(pairs_path)
    _, distance = evaluate_pairs(pairs, images_dir, flip=gallery.model.flip, device=gallery.device,
                                 encoder=gallery.model.encoder, on_image=on_image)
    same = np.array([p.same for p in pairs])
    threshold, far_measured, tar = threshold_for_far(distance, same, far)
    source = {
        "method": "calibrate",
        "pairs": str(pairs_path),
        "pairs_count": len(pairs),
        "far_target": far,
        "far_measured": far_measured,
        "tar_measured": tar,
        "date": utc_timestamp(),
    }
    gallery.set_threshold(threshold, source)
    return {"threshold": threshold, **source}


#: Fewest people a gallery needs to measure its own impostor distances (their pairs: 15 people give 105).
MIN_PEOPLE_FOR_IMPOSTORS = 15


def calibrate_identification(gallery: Gallery, *, fpir: float | None = None) -> dict:
    """Measure the impostor distances among the gallery's own people and identify at `fpir` with them.

    One embedding per person (their first), every pair of people is an impostor
    pair; the 1:K threshold then follows the gallery's size (openset.py). The
    gallery's own people are the best sample of the faces it will see, but a
    small gallery measures the tail poorly: from MIN_PEOPLE_FOR_IMPOSTORS people on.
    """
    from .openset import ImpostorTable

    people = gallery.people()
    if len(people) < MIN_PEOPLE_FOR_IMPOSTORS:
        raise CnnkitError(f"{gallery.path}: {len(people)} people; measuring impostor distances needs at least "
                          f"{MIN_PEOPLE_FOR_IMPOSTORS} (the encoder's own table is used until then)")
    vectors = np.stack([gallery.embeddings_of(p.id)[0] for p in people]).astype(np.float64)
    d2 = (vectors ** 2).sum(1)[:, None] + (vectors ** 2).sum(1)[None, :] - 2 * vectors @ vectors.T
    upper = np.triu_indices(len(people), 1)
    source = (f"{len(people)} people of {gallery.path}, one photo each, cnnkit faces calibrate --fpir "
              f"({utc_timestamp()})")
    table = ImpostorTable.from_distances(np.sqrt(np.maximum(d2[upper], 0)), encoder=gallery.model.encoder,
                                         version=gallery.model.version, flip=gallery.model.flip, source=source)
    gallery.set_impostor_table(table)
    if fpir is not None:
        gallery.set_fpir(fpir)
    point = gallery.operating_point()
    return {"people": len(people), "pairs": table.pairs, **point.to_dict()}
