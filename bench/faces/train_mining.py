"""Does triplet mining matter? The small encoder trained from scratch with random, batch-hard and semi-hard mining.

Protocol: LFW View 1. Train on the people of `peopleDevTrain.txt` (those with
two or more photos), validate after every epoch on `pairsDevTest.txt`, whose
people are disjoint from the training people (checked below). Every run has
the same budget (epochs, batches, P x K, learning rate, schedule, margin) and
the same seeds; only the miner changes. The accuracy of a run is that of its
last epoch (no checkpoint is picked by test accuracy), with the threshold
chosen by 10-fold cross-validation over the test pairs, as in the library's
PairValidation. Also logged: the fraction of all valid triplets of each batch
with a non-zero loss, over training.

    OMP_NUM_THREADS=1 nice -n 10 python -m bench.faces.train_mining          # ~30 min on one busy core
    python -m bench.faces.train_mining --epochs 2 --batches 5 --seeds 0      # a quick look
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from bench.common import LFW, RESULTS, ROOT, save_result
from cnnkit.cli.faces.train import read_people
from cnnkit.faces.evaluate import read_pairs
from cnnkit.faces.train.dataset import IdentityDataset
from cnnkit.faces.train.loop import ImageData, TrainSettings, train
from cnnkit.faces.train.models import SmallResNet, count_parameters
from cnnkit.faces.train.runner import pair_validation

MINERS = ("random", "batch-hard", "semihard")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batches", type=int, default=30, help="batches per epoch")
    ap.add_argument("--batch-p", type=int, default=16)
    ap.add_argument("--batch-k", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--margin", type=float, default=0.2)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--blocks", default="1,1,1,1")
    ap.add_argument("--chip-size", type=int, default=96)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--miners", default=",".join(MINERS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default="/tmp/train_cache")
    ap.add_argument("--models", default="/tmp/train_models/mining")
    ap.add_argument("--out", default=str(RESULTS / "train_mining.json"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "training_mining.png"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    blocks = tuple(int(b) for b in args.blocks.split(","))

    train_people = read_people(str(LFW / "peopleDevTrain.txt"))
    test_pairs = read_pairs(LFW / "pairsDevTest.txt")
    test_people = {p.first.split("/")[0] for p in test_pairs} | {p.second.split("/")[0] for p in test_pairs}
    overlap = test_people & set(train_people)
    if overlap:
        raise SystemExit(f"View 1 train and test people overlap: {sorted(overlap)[:5]}")

    t0 = time.perf_counter()
    dataset = IdentityDataset.load(LFW / "images", chip_size=args.chip_size, cache_dir=args.cache,
                                   people=train_people)
    validation = pair_validation(LFW / "pairsDevTest.txt", LFW / "images", chip_size=args.chip_size,
                                 cache_dir=args.cache, frozen=False, device=torch.device("cpu"))
    validation.flip = False  # the from-scratch encoder never saw its inputs mirrored at test time; halve the cost
    prep_s = time.perf_counter() - t0
    print(f"{len(dataset)} training images of {dataset.num_people} people "
          f"({dataset.skipped_single} with one photo skipped); {len(validation.same)} test pairs; "
          f"prepared in {prep_s:.0f} s", flush=True)

    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for miner in args.miners.split(","):
            settings = TrainSettings(loss="triplet", miner=miner, margin=args.margin, distance="squared-l2",
                                     epochs=args.epochs, batch_p=args.batch_p, batch_k=args.batch_k,
                                     batches_per_epoch=args.batches, lr=args.lr, seed=seed)
            torch.manual_seed(seed)
            model = SmallResNet(width=args.width, blocks=blocks, embedding_dim=128)
            start = time.perf_counter()
            result, _ = train(model, ImageData(dataset), settings, out=Path(args.models) / f"{miner}-{seed}",
                              architecture="small-resnet",
                              arguments={"width": args.width, "blocks": list(blocks), "embedding_dim": 128},
                              embedding_dim=128, validation=validation)
            run = {"miner": miner, "seed": seed, "seconds": time.perf_counter() - start,
                   "train_images_per_second": result.images_per_second,
                   "final": result.epochs[-1].validation,
                   "epochs": [asdict(e) for e in result.epochs],
                   "active_fraction_per_step": [s.active_fraction for s in result.steps],
                   "mined_per_step": [s.mined for s in result.steps],
                   "loss_per_step": [s.loss for s in result.steps]}
            runs.append(run)
            print(f"{miner:10} seed {seed}: accuracy {100 * run['final']['accuracy']:.2f}% "
                  f"auc {run['final']['auc']:.4f}  active {np.mean(run['active_fraction_per_step']):.3f}  "
                  f"{run['seconds']:.0f} s", flush=True)

    summary = {}
    for miner in args.miners.split(","):
        mine = [r for r in runs if r["miner"] == miner]
        acc = np.array([r["final"]["accuracy"] for r in mine])
        auc = np.array([r["final"]["auc"] for r in mine])
        active = np.array([np.mean(r["active_fraction_per_step"]) for r in mine])
        last_active = np.array([np.mean(r["active_fraction_per_step"][-args.batches:]) for r in mine])
        summary[miner] = {"runs": len(mine), "accuracy_mean": float(acc.mean()),
                          "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                          "accuracy_min": float(acc.min()), "accuracy_max": float(acc.max()),
                          "auc_mean": float(auc.mean()), "auc_std": float(auc.std(ddof=1)) if len(auc) > 1 else 0.0,
                          "active_fraction_mean": float(active.mean()),
                          "active_fraction_last_epoch": float(last_active.mean())}
    report = {
        "what": "small ResNet trained from scratch with the triplet loss on LFW View-1 training people; "
                "accuracy on pairsDevTest (people disjoint from training) after the last epoch",
        "protocol": {"train": "peopleDevTrain.txt, people with >= 2 photos", "test": "pairsDevTest.txt",
                     "threshold": "10-fold cross-validated within the test pairs (no pair scored by a threshold "
                                  "fitted on itself)", "selection": "last epoch, no early stopping",
                     "people_overlap": 0},
        "model": {"architecture": "small-resnet", "width": args.width, "blocks": list(blocks),
                  "chip_size": args.chip_size, "parameters": count_parameters(
                      SmallResNet(width=args.width, blocks=blocks)), "embedding": "128-D, L2-normalised"},
        "budget": {"epochs": args.epochs, "batches_per_epoch": args.batches, "batch_p": args.batch_p,
                   "batch_k": args.batch_k, "lr": args.lr, "optimizer": "AdamW, cosine schedule",
                   "margin": args.margin, "distance": "squared-l2", "augment": True,
                   "images_seen_per_run": args.epochs * args.batches * args.batch_p * args.batch_k},
        "train_images": len(dataset), "train_people": dataset.num_people,
        "test_pairs": int(len(validation.same)),
        "summary": summary, "runs": runs,
    }
    save_result("train_mining", report, out=args.out)
    plot(runs, args, Path(args.plot))
    for miner, s in summary.items():
        print(f"{miner:10} accuracy {100 * s['accuracy_mean']:.2f} +- {100 * s['accuracy_std']:.2f} % "
              f"(min {100 * s['accuracy_min']:.2f}, max {100 * s['accuracy_max']:.2f}); "
              f"active triplets {s['active_fraction_mean']:.3f} (last epoch {s['active_fraction_last_epoch']:.3f})")
    print(f"saved {args.out} and {args.plot}")


def plot(runs: list[dict], args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"random": "tab:grey", "batch-hard": "tab:red", "semihard": "tab:blue"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for miner in args.miners.split(","):
        mine = [r for r in runs if r["miner"] == miner]
        acc = np.array([[e["validation"]["accuracy"] for e in r["epochs"]] for r in mine]) * 100
        epochs = np.arange(1, acc.shape[1] + 1)
        c = colours.get(miner)
        left.plot(epochs, acc.mean(0), "-o", color=c, label=f"{miner} (mean of {len(mine)} seeds)")
        left.fill_between(epochs, acc.min(0), acc.max(0), color=c, alpha=0.15)
        act = np.array([r["active_fraction_per_step"] for r in mine])
        window = max(1, args.batches // 3)
        kernel = np.ones(window) / window
        smooth = np.array([np.convolve(a, kernel, mode="valid") for a in act])
        right.plot(np.arange(smooth.shape[1]) + window, smooth.mean(0), color=c, label=miner)
    left.set_xlabel("epoch")
    left.set_ylabel("pairsDevTest accuracy (%)")
    left.set_title("verification accuracy (band: min-max over seeds)")
    left.grid(alpha=0.3)
    left.legend()
    right.set_xlabel("step")
    right.set_ylabel("fraction of valid triplets with loss > 0")
    right.set_title("active triplets in the batch (moving mean)")
    right.grid(alpha=0.3)
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
