"""Fine-tuning the pretrained encoder with the triplet loss, LFW View 2 unrestricted protocol: does it help?

What is fine-tuned: a linear projection (128 x 128, no bias, started at the
identity) on top of the frozen dlib-resnet-v1, trained with the triplet loss
and semi-hard (or batch-hard) mining on the encoder's precomputed,
flip-averaged embeddings. (End-to-end fine-tuning of the 5.6 M-parameter
network is supported by `cnnkit faces train --encoder dlib-resnet-v1` but is
beyond this machine's CPU budget.)

1. Development (View 1 only): train on `peopleDevTrain.txt`, test on
   `pairsDevTest.txt` (10-fold cross-validated threshold); a small grid of
   miner x margin. The best setting is fixed for step 2.
2. View 2, unrestricted: for each fold k, train only on the people of the
   other nine folds (`people.txt`; the fold's own people are never seen, which
   is checked), choose the threshold on the other nine folds' pairs, test on
   fold k. The pretrained encoder gets the same threshold procedure.

    OMP_NUM_THREADS=1 nice -n 10 python -m bench.faces.train_finetune
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.common import LFW, RESULTS, save_result
from bench.faces.train_common import lfw_embeddings, people_images, view2_people_folds
from cnnkit.cli.faces.train import read_people
from cnnkit.faces.evaluate import read_pairs
from cnnkit.faces.train.loop import EmbeddingData, TrainSettings, train
from cnnkit.runtime import metrics


def projection() -> nn.Linear:
    layer = nn.Linear(128, 128, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(128))
    return layer


def fit_projection(emb: np.ndarray, rows: np.ndarray, labels: np.ndarray, settings: TrainSettings,
                   out: Path) -> tuple[np.ndarray, float]:
    layer = projection()
    start = time.perf_counter()
    train(layer, EmbeddingData(emb[rows], labels), settings, out=out, architecture="linear-projection",
          arguments={"embedding_dim": 128}, embedding_dim=128)
    with torch.no_grad():
        return layer(torch.from_numpy(emb)).numpy(), time.perf_counter() - start


def pair_arrays(pairs, row):
    first = np.array([row[p.first] for p in pairs])
    second = np.array([row[p.second] for p in pairs])
    return first, second, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/tmp/train_cache")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--models", default="/tmp/train_models/finetune")
    ap.add_argument("--out", default=str(RESULTS / "train_finetune.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    models = Path(args.models)

    row, emb, prep_s = lfw_embeddings(args.cache)
    base = TrainSettings(loss="triplet", miner="semihard", distance="l2", margin=0.2, epochs=args.epochs,
                         batch_p=32, batch_k=4, lr=1e-3, weight_decay=0.0, augment=False, seed=0)

    # 1. Development on View 1.
    dev_rows, dev_labels = people_images(read_people(str(LFW / "peopleDevTrain.txt")), row)
    f, s, same, _ = pair_arrays(read_pairs(LFW / "pairsDevTest.txt"), row)
    cv = np.arange(len(same)) % 10

    def dev_accuracy(vectors: np.ndarray) -> float:
        d = np.linalg.norm(vectors[f] - vectors[s], axis=1)
        return float(np.mean(metrics.kfold_accuracy(d, same, cv)[0]))

    development = [{"setting": "pretrained", "accuracy": dev_accuracy(emb)}]
    print(f"dev pretrained: {100 * development[0]['accuracy']:.2f}%", flush=True)
    for miner, margin, lr in itertools.product(("semihard", "batch-hard"), (0.1, 0.2, 0.4), (args.lr,)):
        settings = replace(base, miner=miner, margin=margin, lr=lr)
        projected, secs = fit_projection(emb, dev_rows, dev_labels, settings, models / "dev")
        acc = dev_accuracy(projected)
        development.append({"setting": {"miner": miner, "margin": margin, "lr": lr}, "accuracy": acc,
                            "seconds": secs})
        print(f"dev {miner} margin {margin} lr {lr}: {100 * acc:.2f}%", flush=True)
    best = max(development[1:], key=lambda r: r["accuracy"])["setting"]
    chosen = replace(base, **best)

    # 2. View 2, unrestricted: train on the people of the other nine folds.
    people_folds = view2_people_folds()
    pairs = read_pairs(LFW / "pairs.txt")
    f, s, same, folds = pair_arrays(pairs, row)
    d_pre = np.linalg.norm(emb[f] - emb[s], axis=1)
    per_fold = []
    for k in range(10):
        train_people = [n for j, names in enumerate(people_folds) if j != k for n in names]
        test_people = {p.first.split("/")[0] for p in pairs if p.fold == k} | {
            p.second.split("/")[0] for p in pairs if p.fold == k}
        overlap = test_people & set(train_people)
        if overlap:
            raise SystemExit(f"fold {k}: test people among the training people: {sorted(overlap)[:5]}")
        rows, labels = people_images(train_people, row)
        projected, secs = fit_projection(emb, rows, labels, chosen, models / f"fold{k}")
        d_ft = np.linalg.norm(projected[f] - projected[s], axis=1)
        test, other = folds == k, folds != k
        entry = {"fold": k, "train_people": int(len(np.unique(labels))), "train_images": int(len(rows)),
                 "seconds": secs}
        for name, d in (("pretrained", d_pre), ("finetuned", d_ft)):
            t = metrics.best_threshold(d[other], same[other])
            entry[name] = {"accuracy": metrics.accuracy(d[test], same[test], t), "threshold": t,
                           "auc": metrics.auc(d[test], same[test])}
        per_fold.append(entry)
        print(f"fold {k}: pretrained {100 * entry['pretrained']['accuracy']:.2f}%  "
              f"fine-tuned {100 * entry['finetuned']['accuracy']:.2f}%  ({entry['train_people']} people, "
              f"{entry['train_images']} images, {secs:.0f} s)", flush=True)
    summary = {}
    for name in ("pretrained", "finetuned"):
        acc = np.array([e[name]["accuracy"] for e in per_fold])
        summary[name] = {"accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std(ddof=1)),
                         "auc_mean": float(np.mean([e[name]["auc"] for e in per_fold]))}
    diff = np.array([e["finetuned"]["accuracy"] - e["pretrained"]["accuracy"] for e in per_fold])
    summary["finetuned_minus_pretrained"] = {"mean": float(diff.mean()), "std": float(diff.std(ddof=1)),
                                             "folds_better_same_worse": [int((diff > 0).sum()),
                                                                         int((diff == 0).sum()),
                                                                         int((diff < 0).sum())]}
    summary["beats_pretrained"] = bool(diff.mean() > 0)
    for name in ("pretrained", "finetuned"):
        print(f"{name:10} {100 * summary[name]['accuracy_mean']:.2f} +- {100 * summary[name]['accuracy_std']:.2f} %")
    print(f"difference {100 * diff.mean():+.2f} +- {100 * diff.std(ddof=1):.2f} points; "
          f"folds better/same/worse {summary['finetuned_minus_pretrained']['folds_better_same_worse']}")
    report = {
        "what": "triplet-loss fine-tuning of dlib-resnet-v1 (a linear projection on its frozen, precomputed "
                "embeddings), LFW View 2 unrestricted protocol",
        "protocol": {"development": "View 1: train peopleDevTrain, test pairsDevTest (10-fold CV threshold)",
                     "test": "View 2: per fold, trained on the people of the other 9 folds (people.txt), threshold "
                             "chosen on the other 9 folds' pairs, tested on the fold's 600 pairs"},
        "model": "Linear(128, 128, bias=False), initialised to the identity, on frozen flip-averaged embeddings",
        "chosen_setting": {k: v for k, v in vars(chosen).items()},
        "development": development, "summary": summary, "folds": per_fold,
        "embedding_seconds_incl_cache": prep_s,
    }
    print(f"saved {save_result('train_finetune', report, out=args.out)}")


if __name__ == "__main__":
    main()
