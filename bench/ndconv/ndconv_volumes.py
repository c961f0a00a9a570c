"""AdrenalMNIST3D (MedMNIST v2): a 3D ResNet with 3-D augmentation, test AUC and ACC over seeds, 28^3 and 64^3.

Official splits: trained on `train`, the epoch kept is the one with the best
`val` AUC, `test` is scored once per seed. Mean and spread (sample standard
deviation) over the seeds, beside the MedMNIST v2 table (Yang et al., Scientific
Data 2023, Table: AdrenalMNIST3D).

    python -m bench.ndconv.ndconv_volumes [--sizes 28,64] [--seeds 0,1,2] [--epochs 12] [--epochs-64 6]

Writes bench/results/ndconv_volumes.json and docs/ndconv/volumes_*.png;
checkpoints go to --models (outside the repository).
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

from bench.common import DATA, RESULTS, ROOT, command, machine, save_result
from cnnkit.ndconv.layers import count_parameters
from cnnkit.ndconv.metrics import roc_curve
from cnnkit.ndconv.plots import save_roc
from cnnkit.ndconv.volumes.io import load_split
from cnnkit.ndconv.volumes.train import (
    VolumePrediction,
    VolumeSettings,
    evaluate_volumes,
    save_montage,
    save_volumes,
    train_volumes,
)

VOLUMES = DATA / "volumes"
DOCS = ROOT / "docs" / "ndconv"
#: the two rows of the MedMNIST v2 table (AdrenalMNIST3D) that issue 7 compares with
MEDMNIST_V2 = {"ResNet-18 (3D)": {"auc": 0.827, "acc": 0.721}, "ResNet-50 (3D)": {"auc": 0.828, "acc": 0.745}}


def spread(values: list[float]) -> dict:
    return {"mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "min": round(min(values), 4), "max": round(max(values), 4), "values": [round(v, 4) for v in values]}


def summary(runs: list[dict], epochs: int, base: VolumeSettings, load_before: float) -> dict:
    return {"epochs": epochs, "seeds": [r["seed"] for r in runs],
            "settings": base.to_dict() | {"train": {**base.train.to_dict(), "epochs": epochs}},
            "test_auc": spread([r["test_auc"] for r in runs]), "test_acc": spread([r["test_acc"] for r in runs]),
            **({"test_acc_at_0.5": spread([r["test_acc_at_0.5"] for r in runs])}
               if all(r.get("test_acc_at_0.5") is not None for r in runs) else {}),
            "train_seconds_mean": round(statistics.fmean(r["train_seconds"] for r in runs), 1),
            "runs": runs, "machine": {**machine(), "load_average_1min_before": load_before}, "command": command()}


def save(out: Path, size: int, runs: list[dict], epochs: int, base: VolumeSettings, load_before: float) -> dict:
    """Merge `runs` into `out`: sizes and seeds may be run by separate processes (other seeds are kept)."""
    sizes = json.loads(out.read_text())["sizes"] if out.is_file() else {}
    mine = {r["seed"] for r in runs}
    earlier = [r for r in sizes.get(str(size), {}).get("runs", []) if r["seed"] not in mine]
    if earlier and (sizes[str(size)]["epochs"] != epochs or any("threshold" not in r for r in earlier)):
        earlier = []  # runs of another budget or decision rule are not mixed
    merged = sorted(earlier + runs, key=lambda r: r["seed"])
    sizes[str(size)] = summary(merged, epochs, base, load_before)
    save_result("ndconv_volumes", {"dataset": "AdrenalMNIST3D (MedMNIST v2), official train/val/test splits",
                                   "medmnist_v2_table": MEDMNIST_V2, "target": {"auc": 0.85, "acc": 0.80},
                                   "sizes": sizes}, out=out)
    return sizes[str(size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="28,64")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=12, help="epochs at 28^3 (default 12: CPU time)")
    parser.add_argument("--epochs-64", type=int, default=8, help="epochs at 64^3 (default 8: CPU time)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", type=Path, default=Path("/tmp/ndconv_models"))
    parser.add_argument("--out", type=Path, default=RESULTS / "ndconv_volumes.json")
    args = parser.parse_args()
    load_before = machine()["load_average_1min"]
    for size in (int(s) for s in args.sizes.split(",")):
        data = VOLUMES / f"adrenalmnist3d_{size}.npz"
        epochs = args.epochs_64 if size == 64 else args.epochs
        base = VolumeSettings()
        runs = []
        for seed in (int(s) for s in args.seeds.split(",")):
            settings = replace(base, train=replace(base.train, epochs=epochs, seed=seed, threads=args.threads,
                                                   device=args.device))
            trained = train_volumes(data, settings=settings, on_epoch=lambda r, s=size, sd=seed: print(
                f"  {s}^3 seed {sd} epoch {r.epoch}: loss {r.train_loss:.3f} val {r.val_score:.3f} "
                f"({r.seconds:.0f} s)", flush=True))
            path = save_volumes(args.models / f"volumes{size}-seed{seed}.safetensors", trained, dataset=data.name)
            test = evaluate_volumes(path, data, split="test", device=args.device)
            probs, labels = test.pop("_probs"), test.pop("_labels")
            runs.append({"seed": seed, "test_auc": test["auc"], "test_acc": test["acc"],
                         "test_acc_at_0.5": test.get("acc_at_0.5"), "threshold": trained.threshold,
                         "confusion": test["confusion"], "val_auc": trained.val["auc"],
                         "val_acc": trained.val.get("acc_at_threshold", trained.val["acc"]),
                         "best_epoch": trained.fit.best_epoch, "train_seconds": round(trained.fit.seconds, 1),
                         "test_seconds": test["seconds"], "parameters": count_parameters(trained.model)})
            print(f"{size}^3 seed {seed}: test AUC {test['auc']:.3f} ACC {test['acc']:.3f} "
                  f"(val AUC {trained.val['auc']:.3f}, epoch {trained.fit.best_epoch}, {trained.fit.seconds:.0f} s)",
                  flush=True)
            if seed == 0:
                fpr, tpr = roc_curve(probs[:, 1], labels == 1)
                save_roc(DOCS / f"volumes_roc_{size}.png", {f"3D ResNet, seed {seed}": (fpr, tpr, test["auc"])},
                         title=f"AdrenalMNIST3D {size}^3, test split")
                test_split = load_split(data, "test")
                picks = list(range(12))
                preds = [VolumePrediction(f"test[{i}]", int(probs[i].argmax()), tuple(map(float, probs[i])),
                                          test_split.images[i].astype("float32") / 255.0) for i in picks]
                save_montage(DOCS / f"volumes_montage_{size}.png", preds, columns=4,
                             truth=[int(test_split.labels[i]) for i in picks])
            # saved after every seed, so that a run stopped early keeps what it measured
            r = save(args.out, size, runs, epochs, base, load_before)
        print(f"{size}^3, seeds {r['seeds']}: test AUC {r['test_auc']['mean']:.3f} ± {r['test_auc']['std']:.3f}, "
              f"ACC {r['test_acc']['mean']:.3f} ± {r['test_acc']['std']:.3f}", flush=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
