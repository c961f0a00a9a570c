"""Tune on LFW View 1 only: the default threshold, and the pipeline choices, never on View 2.

Encodes every image of pairsDevTrain.txt and pairsDevTest.txt once per
setting, chooses the accuracy-maximising threshold on DevTrain, and reports the
accuracy at that threshold on DevTest. The thresholds in
cnnkit/faces/thresholds.py come from this script's output.

    python tools/dev_threshold.py --lfw ../shared/data/lfw
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cnnkit.faces.evaluate import read_pairs
from cnnkit.faces.pipeline import embed_images
from cnnkit.faces.recognizer import centre_face
from cnnkit.runtime import metrics


def pair_distances(pairs, embeddings) -> np.ndarray:
    return np.array([np.linalg.norm(embeddings[p.first] - embeddings[p.second])
                     if p.first in embeddings and p.second in embeddings else np.inf for p in pairs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default="../shared/data/lfw")
    parser.add_argument("--out", default="bench/results/dev_threshold.json")
    args = parser.parse_args()
    lfw = Path(args.lfw)
    train, test = read_pairs(lfw / "pairsDevTrain.txt"), read_pairs(lfw / "pairsDevTest.txt")
    images = sorted({p.first for p in train + test} | {p.second for p in train + test})
    rows = []
    for flip in (False, True):
        start = time.perf_counter()
        embeddings = {}
        for rel, result in zip(images, embed_images((lfw / "images" / r for r in images), select="center",
                                                    flip=flip, fallback=centre_face)):
            if result.faces:
                embeddings[rel] = result.faces[0].embedding
        d_train, d_test = pair_distances(train, embeddings), pair_distances(test, embeddings)
        s_train, s_test = np.array([p.same for p in train]), np.array([p.same for p in test])
        threshold = metrics.best_threshold(d_train, s_train)
        rows.append({
            "flip": flip,
            "threshold": round(threshold, 4),
            "dev_train_accuracy": metrics.accuracy(d_train, s_train, threshold),
            "dev_test_accuracy": metrics.accuracy(d_test, s_test, threshold),
            "dev_test_auc": metrics.auc(d_test, s_test),
            "images": len(images),
            "seconds": round(time.perf_counter() - start, 1),
        })
        print(json.dumps(rows[-1]))
    Path(args.out).write_text(json.dumps({"command": "python tools/dev_threshold.py --lfw ../shared/data/lfw",
                                          "settings": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
