"""LFW View 2 (10 folds, from raw JPEGs) for every face encoder and fusion, face_recognition in the same run.

The photos go through cnnkit's face path once (bench.faces.lfw_embeddings:
MTCNN, the face nearest the centre, each encoder's own chip, flip-averaged
embeddings); each encoder and each fusion (weights chosen on View 1 by
`python -m tools.dev_encoders`, read from cnnkit/faces/catalog.py) is then
scored by LFW's protocol: each fold's threshold chosen on the other nine.
face_recognition 1.3.0 runs on the same photos as in bench.faces.lfw_verification.

    python -m bench.faces.lfw_encoders [--skip-peer]

Writes bench/results/lfw_encoders.json.
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import LFW, peak_rss_mib, save_result
from bench.faces.lfw_embeddings import face_recognition_embeddings, lfw_set
from bench.faces.lfw_verification import summary
from cnnkit.faces.catalog import ENCODERS, FUSIONS
from cnnkit.faces.evaluate import read_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default=str(LFW / "pairs.txt"))
    ap.add_argument("--skip-peer", action="store_true", help="leave face_recognition out")
    ap.add_argument("--out", help="result file (default bench/results/lfw_encoders.json)")
    args = ap.parse_args()
    pairs = read_pairs(args.pairs)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    photos, found, vectors = lfw_set(list(ENCODERS))
    index = {rel: i for i, rel in enumerate(photos)}
    first, second = [index[p.first] for p in pairs], [index[p.second] for p in pairs]
    squared = {e: ((v[first] - v[second]) ** 2).sum(1) for e, v in vectors.items()}
    used = sorted(set(first) | set(second))
    result: dict = {"pairs": len(pairs), "images": len(used),
                    "images_with_centre_box_fallback": int((found["status"][used] == 2).sum()), "encoders": {}}
    for encoder, d2 in squared.items():
        result["encoders"][encoder] = summary(np.sqrt(d2), same, folds)
    for name, fusion in FUSIONS.items():
        d2 = sum(weight * squared[part] for part, weight in fusion.parts)
        result["encoders"][name] = {**summary(np.sqrt(d2), same, folds), "fusion": [list(p) for p in fusion.parts]}
    for name, row in result["encoders"].items():
        print(f"{name:34} {100 * row['accuracy_mean']:.2f} % ± {100 * row['accuracy_std']:.2f}  AUC {row['auc']:.5f}"
              f"  TAR@FAR1e-3 {row['tar_at_far_1e-3']:.4f}")
    if not args.skip_peer:
        encoded, _ = face_recognition_embeddings(photos)
        missing = sum(photos[i] not in encoded for i in used)
        d = np.array([np.linalg.norm(encoded[photos[a]] - encoded[photos[b]])
                      if photos[a] in encoded and photos[b] in encoded else np.inf for a, b in zip(first, second)])
        result["face_recognition"] = {**summary(d, same, folds), "images_without_face": missing}
        row = result["face_recognition"]
        print(f"{'face_recognition 1.3.0':34} {100 * row['accuracy_mean']:.2f} %  AUC {row['auc']:.5f}")
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    save_result("lfw_encoders", result, out=args.out)


if __name__ == "__main__":
    main()
