"""What the training benchmarks share: every LFW image's pretrained embedding, and View 2's people folds."""

from __future__ import annotations

import time

import numpy as np
import torch

from bench.common import LFW


def lfw_embeddings(cache: str, *, log=print) -> tuple[dict[str, int], np.ndarray, float]:
    """(relative path -> row, flip-averaged dlib-resnet-v1 embeddings (N, 128), seconds).

    Chips and embeddings come from the training code's disk cache (detection,
    alignment and encoding run once; later calls only read the cache). The
    pipeline is the evaluation's: the face nearest the centre, or MTCNN's last
    stage on the central region when no face is found.
    """
    from cnnkit.faces.train.dataset import image_chips
    from cnnkit.faces.train.runner import base_embeddings

    start = time.perf_counter()
    paths = sorted((LFW / "images").glob("*/*.jpg"))
    chips, ok = image_chips(paths, chip_size=150, cache_dir=cache)
    if not ok.all():
        log(f"{int((~ok).sum())} LFW images unusable")
    emb = base_embeddings(chips, cache_dir=cache, device=torch.device("cpu"))
    rels = [f"{p.parent.name}/{p.name}" for p, g in zip(paths, ok) if g]
    return {r: i for i, r in enumerate(rels)}, emb, time.perf_counter() - start


def view2_people_folds() -> list[list[str]]:
    """The people of each of View 2's 10 folds (people.txt: fold sizes, then `name count` rows)."""
    lines = [ln.split() for ln in (LFW / "people.txt").read_text().splitlines() if ln.strip()]
    folds: list[list[str]] = []
    for fields in lines[1:]:
        if len(fields) == 1:
            folds.append([])
        else:
            folds[-1].append(fields[0])
    return folds


def people_images(names, row: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows and integer labels of every image of `names` that has two or more usable images."""
    by_person: dict[str, list[int]] = {}
    for rel, i in row.items():
        by_person.setdefault(rel.split("/")[0], []).append(i)
    rows, labels = [], []
    for label, name in enumerate(sorted(set(names))):
        mine = by_person.get(name, [])
        if len(mine) >= 2:
            rows += mine
            labels += [label] * len(mine)
    return np.array(rows), np.array(labels)
