"""Choose on LFW View 1 only: each encoder's 1:1 threshold, and the weights of a fusion of two encoders.

Reads every photo's embeddings from bench.faces.lfw_embeddings (cnnkit's face
path, cached), then for each encoder: the accuracy-maximising threshold on
pairsDevTrain.txt, and the accuracy and AUC at it on pairsDevTest.txt. For each
pair of encoders, the fused distance d^2 = w d_a^2 + (1 - w) d_b^2 (the
Euclidean distance of the concatenated embeddings scaled by sqrt(w),
sqrt(1 - w)) with w chosen on DevTrain (accuracy, then AUC), reported on DevTest.
View 2 is never read.

    python -m tools.dev_encoders [--encoders dlib-resnet-v1 sface-2021dec w600k-mbf]

Writes bench/results/dev_encoders.json; cnnkit/faces/thresholds.py and the
fusion weights in cnnkit/faces/catalog.py come from it.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from bench.common import LFW, save_result
from bench.faces.lfw_embeddings import lfw_set
from cnnkit.faces.evaluate import read_pairs
from cnnkit.runtime import metrics

WEIGHTS = np.round(np.arange(0.05, 1.0, 0.05), 2)


def squared_distances(pairs, index: dict[str, int], vectors: np.ndarray) -> np.ndarray:
    a = vectors[[index[p.first] for p in pairs]]
    b = vectors[[index[p.second] for p in pairs]]
    return ((a - b) ** 2).sum(1)


def score(d_train, s_train, d_test, s_test) -> dict:
    t = metrics.best_threshold(d_train, s_train)
    return {"threshold": round(float(t), 4), "dev_train_accuracy": metrics.accuracy(d_train, s_train, t),
            "dev_train_auc": metrics.auc(d_train, s_train), "dev_test_accuracy": metrics.accuracy(d_test, s_test, t),
            "dev_test_auc": metrics.auc(d_test, s_test),
            "dev_test_tar_at_far_1e-2": metrics.tar_at_far(d_test, s_test, 1e-2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoders", nargs="+", default=["dlib-resnet-v1", "sface-2021dec", "w600k-mbf"])
    ap.add_argument("--out", help="result file (default bench/results/dev_encoders.json)")
    args = ap.parse_args()
    photos, _, vectors = lfw_set(args.encoders)
    index = {rel: i for i, rel in enumerate(photos)}
    train, test = read_pairs(LFW / "pairsDevTrain.txt"), read_pairs(LFW / "pairsDevTest.txt")
    s_train, s_test = np.array([p.same for p in train]), np.array([p.same for p in test])
    sq = {e: (squared_distances(train, index, v), squared_distances(test, index, v)) for e, v in vectors.items()}
    result: dict = {"encoders": {}, "fusions": {}}
    for encoder, (a, b) in sq.items():
        result["encoders"][encoder] = score(np.sqrt(a), s_train, np.sqrt(b), s_test)
        print(encoder, result["encoders"][encoder])
    for ea, eb in itertools.combinations(args.encoders, 2):
        (ta, sa), (tb, sb) = sq[ea], sq[eb]
        rows = []
        for w in WEIGHTS:
            d_train = np.sqrt(w * ta + (1 - w) * tb)
            t = metrics.best_threshold(d_train, s_train)
            rows.append((metrics.accuracy(d_train, s_train, t), metrics.auc(d_train, s_train), float(w)))
        _, _, w = max(rows)
        best = score(np.sqrt(w * ta + (1 - w) * tb), s_train, np.sqrt(w * sa + (1 - w) * sb), s_test)
        result["fusions"][f"{ea}+{eb}"] = {"weight_of_first": w, **best,
                                           "dev_train_by_weight": [[r[2], r[0], r[1]] for r in rows]}
        print(f"{ea}+{eb} w={w}", {k: v for k, v in best.items()})
    save_result("dev_encoders", result, out=args.out)


if __name__ == "__main__":
    main()
