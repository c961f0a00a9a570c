"""Measure each face encoder's impostor-distance distribution on LFW View 1 training people, for 1:K thresholds.

One photo per person of peopleDevTrain.txt (the first; every pair of people
then weighs the same, so a family with many photos cannot dominate the tail),
with the identities LFW labels twice under two names dropped (they are one
person, not impostors). Every pair of those photos is an impostor pair; the
table of F(distance) is written to cnnkit/faces/pretrained/impostors/ and used
by galleries to set the 1:K threshold for their size (faces/gallery/openset.py).
Embeddings come from bench.faces.lfw_embeddings (cnnkit's face path, cached).

    python -m tools.impostor_table
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import LFW
from bench.faces.lfw_embeddings import lfw_set
from cnnkit.faces.catalog import ENCODERS, FUSIONS
from cnnkit.faces.gallery.openset import ImpostorTable, write_table
from cnnkit.faces.models import embedding_model

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "cnnkit" / "faces" / "pretrained" / "impostors"
#: LFW names that are one person (or one photo) under two labels.
DUPLICATES = {"Bart_Hendricks", "Ricky_Ray", "Joseph_Blatter", "Sepp_Blatter", "John_Gruden", "Jon_Gruden",
              "Nan_Wang", "Wang_Nan"}


def read_people(path: Path) -> list[str]:
    rows = [line.split() for line in path.read_text().splitlines()[1:] if line.strip()]
    return [name for name, _ in rows]


def impostor_distances(vectors: np.ndarray) -> np.ndarray:
    """Euclidean distances of every pair of rows (upper triangle), float32."""
    sq = (vectors.astype(np.float64) ** 2).sum(1)
    out = []
    for start in range(0, len(vectors), 512):
        block = vectors[start:start + 512].astype(np.float64)
        d2 = sq[start:start + 512, None] + sq[None, :] - 2 * block @ vectors.T.astype(np.float64)
        rows = np.arange(start, start + len(block))[:, None]
        out.append(np.sqrt(np.maximum(d2[np.arange(len(vectors))[None, :] > rows], 0)).astype(np.float32))
    return np.concatenate(out)


def fused(vectors: dict[str, np.ndarray], name: str) -> np.ndarray:
    return np.concatenate([np.sqrt(w) * vectors[part] for part, w in FUSIONS[name].parts], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    photos, _, vectors = lfw_set(list(ENCODERS))
    index = {rel: i for i, rel in enumerate(photos)}
    people = [p for p in read_people(LFW / "peopleDevTrain.txt") if p not in DUPLICATES]
    rows = [index[f"{p}/{p}_0001.jpg"] for p in people]
    source = (f"LFW View 1 training people, one photo each ({len(people)} people), "
              "python -m tools.impostor_table")
    for name in [*ENCODERS, *FUSIONS]:
        v = fused(vectors, name) if name in FUSIONS else vectors[name]
        model = embedding_model(True, name)
        table = ImpostorTable.from_distances(impostor_distances(v[rows]), encoder=name, version=model.version,
                                             flip=True, source=source)
        path = write_table(table, Path(args.out) / f"{name}+flip.json")
        print(f"{name}: {table.pairs:,} pairs, F=1e-6 at {table.threshold_for_rate(1e-6):.4f}, "
              f"1e-4 at {table.threshold_for_rate(1e-4):.4f}, 1e-2 at {table.threshold_for_rate(1e-2):.4f} -> {path}")


if __name__ == "__main__":
    main()
