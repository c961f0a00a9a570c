"""LFW View 2, from raw JPEGs, cnnkit against ageitgey's face_recognition in the same run.

Both go through the same protocol and the same metric code (cnnkit.runtime.metrics):
every image of pairs.txt is encoded once; the face nearest the image centre is
the face of interest; 10 folds, each fold's threshold chosen on the other nine.
An image in which a tool finds no face gives its pairs an infinite distance
(predicted "different"), so they still count.

- cnnkit: `cnnkit faces evaluate` defaults (MTCNN, alignment to dlib's chip, dlib
  ResNet in PyTorch, flip averaging; no face -> centre box refined by O-Net).
- face_recognition 1.3.0 as a new user runs it: `face_locations` (HOG, one
  upsampling) and `face_encodings` (5-point landmarks, num_jitters=1), in a pool
  of as many processes as cores (its CLI's --cpus), since dlib runs one thread.

    pip install -e ".[bench]" && pip install --no-deps face_recognition
    python -m bench.faces.lfw_verification [--pairs PAIRS] [--skip-peer]
    python -m bench.faces.lfw_verification --skip-peer --device cuda --limit 600   # images/s on a GPU

Writes bench/results/lfw_verification.json and bench/results/lfw_roc.png (beside
the JSON). `--limit N` keeps N pairs spread evenly over the file (every fold,
same and different): a quick end-to-end images/s, whose accuracy means little.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from bench.common import LFW, RESULTS, peak_rss_mib, save_result
from cnnkit.faces.evaluate import evaluate_pairs, read_pairs
from cnnkit.runtime import metrics


def summary(distance: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, float]:
    accs, thresholds = metrics.kfold_accuracy(distance, same, folds)
    return {
        "accuracy_mean": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs, ddof=1)),
        "auc": metrics.auc(distance, same),
        "eer": metrics.eer(distance, same),
        "tar_at_far_1e-3": metrics.tar_at_far(distance, same, 1e-3),
        "threshold": float(np.mean(thresholds)),
        "fold_accuracies": [float(a) for a in accs],
    }


def _fr_encode(path: str) -> np.ndarray | None:
    import face_recognition as fr

    image = fr.load_image_file(path)
    boxes = fr.face_locations(image)  # HOG, number_of_times_to_upsample=1
    if not boxes:
        return None
    cy, cx = image.shape[0] / 2, image.shape[1] / 2
    # (top, right, bottom, left): keep the face nearest the centre, as cnnkit does
    box = min(boxes, key=lambda b: ((b[0] + b[2]) / 2 - cy) ** 2 + ((b[1] + b[3]) / 2 - cx) ** 2)
    return fr.face_encodings(image, known_face_locations=[box])[0]


def run_face_recognition(paths: list[str], processes: int) -> tuple[dict[str, np.ndarray], float]:
    start = time.perf_counter()
    with multiprocessing.Pool(processes) as pool:
        encodings = pool.map(_fr_encode, paths, chunksize=16)
    elapsed = time.perf_counter() - start
    return {p: e for p, e in zip(paths, encodings) if e is not None}, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, default=LFW / "pairs.txt")
    parser.add_argument("--images", type=Path, default=LFW / "images")
    parser.add_argument("--skip-peer", action="store_true", help="run cnnkit only")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="face_recognition worker processes (default: the number of cores)")
    parser.add_argument("--device", help="cnnkit's device (default: cnnkit's choice, a GPU if there is one)")
    parser.add_argument("--limit", type=int, help="only N pairs, spread evenly over the file (a quick images/s)")
    parser.add_argument("--out", type=Path, default=RESULTS / "lfw_verification.json")
    args = parser.parse_args()

    pairs = read_pairs(args.pairs)
    if args.limit:
        pairs = pairs[:: max(1, len(pairs) // args.limit)][: args.limit]
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])

    report, cnnkit_distance = evaluate_pairs(pairs, args.images, device=args.device)
    result: dict[str, object] = {
        "what": "LFW View-2 verification from raw images, cnnkit vs face_recognition, same protocol and metrics",
        "pairs_file": str(args.pairs),
        **({"pairs_limit": args.limit} if args.limit else {}),
        "cnnkit": {**report.to_dict(), "peak_rss_mib": peak_rss_mib()},
    }
    print(f"cnnkit            accuracy {100 * report.accuracy_mean:.2f}% +/- {100 * report.accuracy_std:.2f}  "
          f"auc {report.auc:.4f}  no face {report.faces_not_found}  {report.images_per_second:.1f} images/s")

    if not args.skip_peer:
        import face_recognition  # noqa: F401  (fail early with the import error)

        unique = sorted({p.first for p in pairs} | {p.second for p in pairs})
        encodings, elapsed = run_face_recognition([str(args.images / u) for u in unique], args.processes)
        enc = {u: encodings[str(args.images / u)] for u in unique if str(args.images / u) in encodings}
        distance = np.array([np.linalg.norm(enc[p.first] - enc[p.second]) if p.first in enc and p.second in enc
                             else np.inf for p in pairs])
        peer = {**summary(distance, same, folds), "pairs": len(pairs), "images": len(unique),
                "faces_not_found": len(unique) - len(enc), "images_per_second": len(unique) / elapsed,
                "processes": args.processes, "peak_rss_mib_per_process": peak_rss_mib(children=True),
                "settings": "face_locations(model='hog', upsample=1) + face_encodings(num_jitters=1, model='small')"}
        result["face_recognition"] = peer
        result["cnnkit_minus_face_recognition_accuracy"] = report.accuracy_mean - peer["accuracy_mean"]
        result["images_per_second_ratio"] = report.images_per_second / peer["images_per_second"]
        print(f"face_recognition  accuracy {100 * peer['accuracy_mean']:.2f}% +/- {100 * peer['accuracy_std']:.2f}  "
              f"auc {peer['auc']:.4f}  no face {peer['faces_not_found']}  {peer['images_per_second']:.1f} images/s "
              f"({args.processes} processes)")
        print(f"end-to-end speed ratio cnnkit / face_recognition: {result['images_per_second_ratio']:.1f}x")
        _plot(cnnkit_distance, distance, same, args.out.with_name("lfw_roc.png"))

    result["targets"] = {"accuracy_mean": 0.9938, "images_per_second_ratio": 3.0}
    print(f"wrote {save_result('lfw_verification', result, out=args.out)}")


def _plot(ours: np.ndarray, theirs: np.ndarray, same: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    for distance, label in ((ours, "cnnkit"), (theirs, "face_recognition")):
        far, tar, _ = metrics.roc_curve(distance, same)
        ax.plot(np.maximum(far, 1e-4), tar, label=f"{label} (AUC {metrics.auc(distance, same):.4f})")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0.85, 1.001)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("LFW View 2, from raw images")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
