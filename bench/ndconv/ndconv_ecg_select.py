"""Choosing ECG classifier settings on DS1 alone: patient-wise cross-validation inside DS1.

DS1's 22 records are split into folds (no patient in two folds, each fold with
some S and V beats); every variant is trained on the other folds for a fixed
number of epochs and scored on the held-out fold; the confusion matrices of the
folds are summed. With several --seeds every seed runs the whole cross-validation
and the score is the mean over seeds (one seed's figure moves by a few hundredths
between seeds). DS2 (the test set) is never read. The variant with the best
mean F1 of N, S and V (`train.validation_score`) becomes the default.

    python -m bench.ndconv.ndconv_ecg_select [--epochs 10] [--seeds 0,1,2] [--variants baseline,mean-rr]

Writes bench/results/ndconv_ecg_select.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.common import DATA, RESULTS, save_result
from cnnkit.ndconv.ecg.aami import CLASSES, DS1
from cnnkit.ndconv.ecg.beats import RR_FEATURES
from cnnkit.ndconv.ecg.dataset import load_beats
from cnnkit.ndconv.ecg.train import (
    CNN_FEATURES,
    RR_MODEL_FEATURES,
    EcgSettings,
    predict_beats,
    score_beats,
    train_ecg,
    validation_score,
)

MITDB = DATA / "ecg" / "mitdb"
#: Three folds of DS1 records, made by hand so that each holds S and V beats of several patients.
FOLDS = (("101", "106", "108", "118", "122", "203", "215", "223"),
         ("109", "112", "114", "124", "201", "207", "220"),
         ("115", "116", "119", "205", "208", "209", "230"))
BEFORE_MEAN_RR = RR_FEATURES[:11]  # the features of the first release (no ratios to the 5-minute mean RR)
ONE_NETWORK = {"members": 1, "rr_share": 0.0, "channels": (0, 1)}
SMALL = {"rr_features": RR_FEATURES, "weight_power": 1.0, "widths": (8, 16, 32), "dropout": 0.5, "channels": (0, 1)}
#: issue 20: the networks see only the beat minus the patient's median beat (not the beat's own shape) and RR
#: features that do not take the patient's median RR as the normal one (RR in seconds, relative to the 5-minute
#: mean and to the neighbours, irregularity)
DIFF_ABS = {**SMALL, "channels": (1,), "rr_features": CNN_FEATURES}
RR_MODEL = {"rr_model_features": RR_MODEL_FEATURES, "rr_model_weight_power": 0.5}
#: Spelled out in full (not relative to EcgSettings' defaults, which the winner becomes).
VARIANTS = {
    "baseline": {"rr_features": BEFORE_MEAN_RR, "weight_power": 0.5, "widths": (16, 32, 64), "dropout": 0.3,
                 **ONE_NETWORK},
    "mean-rr": {"rr_features": RR_FEATURES, "weight_power": 0.5, "widths": (16, 32, 64), "dropout": 0.3,
                **ONE_NETWORK},
    "mean-rr-balanced": {"rr_features": RR_FEATURES, "weight_power": 1.0, "widths": (16, 32, 64), "dropout": 0.3,
                         **ONE_NETWORK},
    "mean-rr-w0.75": {"rr_features": RR_FEATURES, "weight_power": 0.75, "widths": (16, 32, 64), "dropout": 0.3,
                      **ONE_NETWORK},
    "mean-rr-small": {**SMALL, **ONE_NETWORK},
    # a different model beside the network: logistic regression on RR features, probabilities averaged
    "small+rr-logistic": {**SMALL, "members": 1, "rr_share": 0.5, **RR_MODEL},
    "3-small": {**SMALL, "members": 3, "rr_share": 0.0},
    "3-small+rr-logistic": {**SMALL, "members": 3, "rr_share": 0.5, **RR_MODEL},
    "diff": {**SMALL, "channels": (1,), "members": 1, "rr_share": 0.0},
    "abs-rr": {**SMALL, "rr_features": CNN_FEATURES, "members": 1, "rr_share": 0.0},
    "diff-abs-rr": {**DIFF_ABS, "members": 1, "rr_share": 0.0},
    "diff-abs-rr+rr-logistic": {**DIFF_ABS, "members": 1, "rr_share": 0.5, **RR_MODEL},
    "3-diff-abs-rr+rr-logistic": {**DIFF_ABS, "members": 3, "rr_share": 0.5, **RR_MODEL},
}


def expand(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) that give `confusion` (rows true, columns predicted)."""
    labels = np.repeat(np.arange(len(CLASSES)), confusion.sum(1))
    predicted = np.concatenate([np.repeat(np.arange(len(CLASSES)), row) for row in confusion])
    return labels, predicted


def cross_validate(args: argparse.Namespace, data, name: str, seed: int) -> dict:
    """One seed of one variant over the folds: summed confusion, score and per-fold F1."""
    base = EcgSettings()
    settings = replace(base, **VARIANTS[name], train=replace(base.train, epochs=args.epochs, seed=seed,
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
        seconds += trained.seconds
        # per held-out patient (rows true N, S, V, F): shows which patients' S beats a variant finds, e.g. 207
        # and 118, DS1's bundle-branch-block patients with atrial premature beats
        per_record = {r: score_beats(test.labels[test.records == r], pred[test.records == r])["confusion"]
                      for r in held_out}
        folds.append({"held_out": list(held_out), "confusion": report["confusion"],
                      "f1": {c["class"]: round(c["f1"], 4) for c in report["classes"]}, "per_record": per_record})
        print(f"{name} seed {seed} fold {k}: F1 {folds[-1]['f1']} ({trained.seconds:.0f} s)", flush=True)
    labels, predicted = expand(total)
    s_f1 = next(c["f1"] for c in score_beats(labels, predicted)["classes"] if c["class"] == "S")
    return {"seed": seed, "score_nsv": validation_score(labels, predicted), "s_f1": s_f1, "confusion": total.tolist(),
            "folds": folds, "train_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MITDB)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", default="0", help="comma-separated; each runs the whole cross-validation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=RESULTS / "ndconv_ecg_select.json")
    args = parser.parse_args()
    assert sorted(r for f in FOLDS for r in f) == sorted(DS1), "the folds must cover DS1 exactly"
    t0 = time.perf_counter()
    data = load_beats(args.data, DS1)
    print(f"DS1: {len(data)} beats {data.counts()} in {time.perf_counter() - t0:.0f} s", flush=True)
    results = json.loads(args.out.read_text())["variants"] if args.out.is_file() else {}
    seeds = [int(x) for x in args.seeds.split(",")]
    for name in args.variants.split(","):
        runs = [cross_validate(args, data, name, seed) for seed in seeds]
        total = sum(np.array(r["confusion"]) for r in runs)  # pooled over seeds, for the per-class figures
        summary = score_beats(*expand(total))
        scores = [r["score_nsv"] for r in runs]
        settings_json = {k: list(v) if isinstance(v, tuple) else v for k, v in VARIANTS[name].items()}
        results[name] = {"settings": settings_json, "seeds": seeds, "score_nsv": float(np.mean(scores)),
                         "score_nsv_sd": float(np.std(scores)), "s_f1_per_seed": [r["s_f1"] for r in runs],
                         "classes": summary["classes"], "confusion": total.tolist(), "runs": runs,
                         "train_seconds": round(sum(r["train_seconds"] for r in runs), 1)}
        print(f"{name}: mean F1 N,S,V {results[name]['score_nsv']:.4f} (sd {results[name]['score_nsv_sd']:.4f} over "
              f"{len(seeds)} seed(s)); " + ", ".join(f"{c['class']} {c['f1']:.3f}" for c in summary["classes"]),
              flush=True)
        best = max(results, key=lambda n: results[n]["score_nsv"])
        save_result("ndconv_ecg_select", {"protocol": "patient-wise 3-fold cross-validation inside DS1 (DS2 not read)",
                                          "folds": [list(f) for f in FOLDS], "epochs": args.epochs,
                                          "variants": results, "chosen": best}, out=args.out)
    print(f"best: {best}")


if __name__ == "__main__":
    main()
