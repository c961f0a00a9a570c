"""Choosing ECG classifier settings on DS1 alone: patient-wise cross-validation inside DS1.

DS1's 22 records are split into folds (no patient in two folds, each fold with
some S and V beats); every variant is trained on the other folds for a fixed
number of epochs and scored on the held-out fold; the confusion matrices of the
folds are summed. DS2 (the test set) is never read. The variant with the best
mean F1 of N, S and V (`train.validation_score`) becomes the default.

    python bench/ndconv_ecg_select.py [--epochs 10] [--variants baseline,mean-rr]

Writes bench/results/ndconv_ecg_select.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, command, machine  # noqa: E402

from cnnkit.ndconv.ecg.aami import CLASSES, DS1  # noqa: E402
from cnnkit.ndconv.ecg.beats import RR_FEATURES  # noqa: E402
from cnnkit.ndconv.ecg.dataset import load_beats  # noqa: E402
from cnnkit.ndconv.ecg.train import EcgSettings, predict_beats, score_beats, train_ecg, validation_score  # noqa: E402

MITDB = ROOT.parent / "shared" / "data" / "ecg" / "mitdb"
#: Three folds of DS1 records, made by hand so that each holds S and V beats of several patients.
FOLDS = (("101", "106", "108", "118", "122", "203", "215", "223"),
         ("109", "112", "114", "124", "201", "207", "220"),
         ("115", "116", "119", "205", "208", "209", "230"))
BEFORE_MEAN_RR = RR_FEATURES[:11]  # the features of the first release (no ratios to the 5-minute mean RR)
#: Spelled out in full (not relative to EcgSettings' defaults, which the winner becomes).
VARIANTS = {
    "baseline": {"rr_features": BEFORE_MEAN_RR, "weight_power": 0.5},
    "mean-rr": {"rr_features": RR_FEATURES, "weight_power": 0.5},
    "mean-rr-balanced": {"rr_features": RR_FEATURES, "weight_power": 1.0},
    "mean-rr-only": {"rr_features": ("pre_s", "post_s", "local_s", "average_s", "pre/average", "post/average",
                                     "local/average", "pre/post", "pre/local", "irregularity", "irregularity-lag2"),
                     "weight_power": 0.5},
    "mean-rr-small": {"rr_features": RR_FEATURES, "weight_power": 1.0, "widths": (8, 16, 32), "dropout": 0.5},
    "mean-rr-w0.75": {"rr_features": RR_FEATURES, "weight_power": 0.75},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MITDB)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=RESULTS / "ndconv_ecg_select.json")
    args = parser.parse_args()
    assert sorted(r for f in FOLDS for r in f) == sorted(DS1), "the folds must cover DS1 exactly"
    t0 = time.perf_counter()
    data = load_beats(args.data, DS1)
    print(f"DS1: {len(data)} beats {data.counts()} in {time.perf_counter() - t0:.0f} s", flush=True)
    results = json.loads(args.out.read_text())["variants"] if args.out.is_file() else {}
    for name in args.variants.split(","):
        base = EcgSettings()
        settings = replace(base, **VARIANTS[name], train=replace(base.train, epochs=args.epochs, seed=args.seed,
                                                                   threads=args.threads))
        total = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
        folds, seconds = [], 0.0
        for k, held_out in enumerate(FOLDS):
            train_records = tuple(r for r in DS1 if r not in held_out)
            trained = train_ecg(args.data, settings=settings, train_records=train_records, validation_records=None,
                                data=data)
            test = data.subset(np.isin(data.records, held_out) & (data.labels >= 0))
            pred = predict_beats(trained.model, test.windows, test.rr, settings.side_names).argmax(1)
            report = score_beats(test.labels, pred)
            total += np.array(report["confusion"])
            seconds += trained.fit.seconds
            folds.append({"held_out": list(held_out), "confusion": report["confusion"],
                          "f1": {c["class"]: round(c["f1"], 4) for c in report["classes"]}})
            print(f"{name} fold {k}: F1 {folds[-1]['f1']} ({trained.fit.seconds:.0f} s)", flush=True)
        labels = np.repeat(np.arange(len(CLASSES)), total.sum(1))
        predicted = np.concatenate([np.repeat(np.arange(len(CLASSES)), row) for row in total])
        summary = score_beats(labels, predicted)
        settings_json = {k: list(v) if isinstance(v, tuple) else v for k, v in VARIANTS[name].items()}
        results[name] = {"settings": settings_json, "score_nsv": validation_score(labels, predicted),
                         "classes": summary["classes"], "confusion": total.tolist(), "folds": folds,
                         "train_seconds": round(seconds, 1)}
        print(f"{name}: mean F1 N,S,V {results[name]['score_nsv']:.4f}; "
              + ", ".join(f"{c['class']} {c['f1']:.3f}" for c in summary["classes"]), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        best = max(results, key=lambda n: results[n]["score_nsv"])
        args.out.write_text(json.dumps({"protocol": "patient-wise 3-fold cross-validation inside DS1 (DS2 not read)",
                                        "folds": [list(f) for f in FOLDS], "epochs": args.epochs, "seed": args.seed,
                                        "variants": results, "chosen": best, "machine": machine(),
                                        "command": command()}, indent=1) + "\n")
    print(f"best: {best}")


if __name__ == "__main__":
    main()
