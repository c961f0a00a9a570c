"""Open-set identification on LFW View 1 test people only, to choose the default encoder and the 1:K rule.

The gallery: every peopleDevTest.txt person with two or more photos, enrolled
from their first photo; probes: their other photos; strangers: the
peopleDevTest.txt people with one photo. The threshold comes from each
encoder's impostor table (measured on the View 1 *training* people,
tools/impostor_table.py) for the gallery's size at the target FPIR, against the
1:1 threshold. View 2 is never read.

    python -m tools.dev_openset
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import LFW, save_result
from bench.faces.lfw_embeddings import lfw_set
from cnnkit.faces.catalog import ENCODERS, FUSIONS
from cnnkit.faces.gallery.openset import operating_point, shipped_table
from cnnkit.faces.models import embedding_model
from cnnkit.faces.thresholds import default_threshold
from tools.impostor_table import fused


def read_counts(path) -> dict[str, int]:
    rows = [line.split() for line in path.read_text().splitlines()[1:] if line.strip()]
    return {name: int(n) for name, n in rows}


def nearest(probes: np.ndarray, gallery: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d2 = (probes ** 2).sum(1)[:, None] + (gallery ** 2).sum(1)[None, :] - 2 * probes @ gallery.T
    best = d2.argmin(1)
    return best, np.sqrt(np.maximum(d2[np.arange(len(probes)), best], 0))


def rates(best, dist, truth, stranger_dist, threshold: float) -> dict:
    dir_ = float(np.mean((best == truth) & (dist <= threshold)))
    fpir = float(np.mean(stranger_dist <= threshold))
    return {"threshold": round(threshold, 4), "DIR": round(dir_, 4), "FPIR": round(fpir, 4),
            "balanced_accuracy": round((dir_ + 1 - fpir) / 2, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fpir", type=float, default=0.01)
    ap.add_argument("--out", help="result file (default bench/results/dev_openset.json)")
    args = ap.parse_args()
    photos, _, vectors = lfw_set(list(ENCODERS))
    index = {rel: i for i, rel in enumerate(photos)}
    counts = read_counts(LFW / "peopleDevTest.txt")
    known = sorted(p for p, n in counts.items() if n >= 2)
    strangers = [index[f"{p}/{p}_0001.jpg"] for p, n in sorted(counts.items()) if n == 1]
    enrolled = [index[f"{p}/{p}_0001.jpg"] for p in known]
    probe_rows, truth = [], []
    for k, p in enumerate(known):
        for i in range(2, counts[p] + 1):
            probe_rows.append(index[f"{p}/{p}_{i:04d}.jpg"])
            truth.append(k)
    result: dict = {"people": len(known), "probes": len(probe_rows), "strangers": len(strangers), "fpir": args.fpir,
                    "encoders": {}}
    for name in [*ENCODERS, *FUSIONS]:
        v = fused(vectors, name) if name in FUSIONS else vectors[name]
        best, dist = nearest(v[probe_rows], v[enrolled])
        _, stranger_dist = nearest(v[strangers], v[enrolled])
        model = embedding_model(True, name)
        table = shipped_table(name, model.version, True)
        assert table is not None, f"no impostor table for {name}: run python -m tools.impostor_table"
        point = operating_point(table, len(known), args.fpir)
        row = {"rank1": round(float(np.mean(best == np.array(truth))), 4),
               "size_aware": rates(best, dist, np.array(truth), stranger_dist, point.threshold),
               "one_to_one_threshold": rates(best, dist, np.array(truth), stranger_dist, default_threshold(name))}
        result["encoders"][name] = row
        print(name, row)
    save_result("dev_openset", result, out=args.out)


if __name__ == "__main__":
    main()
