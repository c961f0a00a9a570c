"""Binary-classification head vs a tuned threshold, on the pretrained encoder, LFW View 2 (10 folds).

For each fold k: the head (logistic regression on `abs` or `chi2` pair
features) is fitted on the 5,400 pairs of the other nine folds and tested on
fold k's 600 at P(same) >= 0.5; the threshold baseline picks the
accuracy-maximising distance threshold on the same nine folds. Same
embeddings (dlib-resnet-v1, flip-averaged) for all three.

    OMP_NUM_THREADS=1 nice -n 10 python -m bench.faces.train_binary_head
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench.common import LFW, RESULTS, save_result
from bench.faces.train_common import lfw_embeddings
from cnnkit.faces.evaluate import read_pairs
from cnnkit.faces.train.binary_head import fit_binary_head
from cnnkit.runtime import metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/tmp/train_cache")
    ap.add_argument("--l2", type=float, default=1e-4, help="the head's L2 penalty")
    ap.add_argument("--out", default=str(RESULTS / "train_binary_head.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    row, emb, prep_s = lfw_embeddings(args.cache)
    pairs = read_pairs(LFW / "pairs.txt")
    a = emb[[row[p.first] for p in pairs]]
    b = emb[[row[p.second] for p in pairs]]
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    distance = np.linalg.norm(a - b, axis=1)

    results: dict[str, dict] = {"threshold": {"fold_accuracies": [], "fold_thresholds": []},
                                "head-abs": {"fold_accuracies": [], "fit_seconds": []},
                                "head-chi2": {"fold_accuracies": [], "fit_seconds": []}}
    for k in range(10):
        test, trainset = folds == k, folds != k
        t = metrics.best_threshold(distance[trainset], same[trainset])
        results["threshold"]["fold_accuracies"].append(metrics.accuracy(distance[test], same[test], t))
        results["threshold"]["fold_thresholds"].append(t)
        for kind in ("abs", "chi2"):
            start = time.perf_counter()
            head = fit_binary_head(a[trainset], b[trainset], same[trainset], features=kind, l2=args.l2)
            fit_s = time.perf_counter() - start
            p = head.probability(a[test], b[test])
            results[f"head-{kind}"]["fold_accuracies"].append(float(np.mean((p >= 0.5) == same[test])))
            results[f"head-{kind}"]["fit_seconds"].append(fit_s)
        print(f"fold {k}: threshold {100 * results['threshold']['fold_accuracies'][-1]:.2f}%  "
              f"abs {100 * results['head-abs']['fold_accuracies'][-1]:.2f}%  "
              f"chi2 {100 * results['head-chi2']['fold_accuracies'][-1]:.2f}%", flush=True)
    for name, r in results.items():
        acc = np.array(r["fold_accuracies"])
        r["accuracy_mean"] = float(acc.mean())
        r["accuracy_std"] = float(acc.std(ddof=1))
        print(f"{name:10} {100 * r['accuracy_mean']:.2f} +- {100 * r['accuracy_std']:.2f} %")
    base = np.array(results["threshold"]["fold_accuracies"])
    for kind in ("abs", "chi2"):
        diff = np.array(results[f"head-{kind}"]["fold_accuracies"]) - base
        results[f"head-{kind}"]["minus_threshold_mean"] = float(diff.mean())
        results[f"head-{kind}"]["minus_threshold_std"] = float(diff.std(ddof=1))
        results[f"head-{kind}"]["folds_better_same_worse"] = [int((diff > 0).sum()), int((diff == 0).sum()),
                                                              int((diff < 0).sum())]
    report = {
        "what": "LFW View 2, 10 folds: logistic-regression head on pair features vs tuned threshold, "
                "pretrained dlib-resnet-v1 embeddings (flip-averaged)",
        "protocol": "per fold: fitted (head) or tuned (threshold) on the other 9 folds' 5400 pairs, tested on the "
                    "fold's 600; the head decides same at P >= 0.5",
        "features": {"abs": "|f(a)_k - f(b)_k|, 128 features",
                     "chi2": "(g(a)_k - g(b)_k)^2 / (g(a)_k + g(b)_k) over g(f) = [max(f,0), max(-f,0)], 256 features"},
        "head": {"fit": "full-batch L-BFGS, class-balanced logistic loss", "l2": args.l2},
        "embedding_seconds_incl_cache": prep_s,
        "results": results,
    }
    print(f"saved {save_result('train_binary_head', report, out=args.out)}")


if __name__ == "__main__":
    main()
