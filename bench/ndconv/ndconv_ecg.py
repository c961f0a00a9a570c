"""ECG heartbeat classification under the inter-patient protocol (de Chazal et al. 2004): train DS1, test DS2.

Trains the classifier (an ensemble of 1D ResNets reading the beat window and RR
features, averaged with a logistic regression on RR features) on DS1 only,
choosing each network's epoch on DS1 validation patients (`cnnkit.ndconv.ecg.train.VALIDATION`), then scores
DS2 once: with the reference beat positions (the protocol's standard) and with
the QRS detector's beats (what `cnnkit ndconv ecg classify` does on a raw
record), where detected beats are matched to reference beats within 150 ms.
The table sets per-class Se, +P and F1 beside de Chazal et al. (2004).

    python -m bench.ndconv.ndconv_ecg [--epochs 12] [--threads 1] [--models /tmp/ndconv_models]

Writes bench/results/ndconv_ecg.json and docs/ndconv/ecg_*.png; the checkpoint
goes to --models (outside the repository).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.common import DATA, RESULTS, ROOT, save_result
from cnnkit.ndconv.ecg.aami import CLASSES, DE_CHAZAL_2004, DS1, DS2
from cnnkit.ndconv.ecg.dataset import load_beats
from cnnkit.ndconv.ecg.train import VALIDATION, EcgSettings, evaluate_ecg, save_ecg, train_ecg
from cnnkit.ndconv.metrics import class_reports, macro_f1, roc_auc, roc_curve
from cnnkit.ndconv.plots import save_confusion, save_roc

MITDB = DATA / "ecg" / "mitdb"
DOCS = ROOT / "docs" / "ndconv"


def f1(se: float, ppv: float) -> float:
    return 2 * se * ppv / (se + ppv) if se + ppv else 0.0


def table(report: dict) -> list[dict]:
    rows = []
    for c in report["classes"]:
        ref = DE_CHAZAL_2004[c["class"]]
        rows.append({"class": c["class"], "beats": c["support"], "se": round(100 * c["se"], 1),
                     "ppv": round(100 * c["ppv"], 1), "f1": round(c["f1"], 3),
                     "de_chazal_se": ref["se"], "de_chazal_ppv": ref["ppv"],
                     "de_chazal_f1": round(f1(ref["se"], ref["ppv"]) / 100, 3),
                     "beats_reference": c["f1"] > f1(ref["se"], ref["ppv"]) / 100})
    return rows


def without(report: dict, record: str) -> dict:
    """Per-class figures over DS2 without one record (232 holds 1,382 of DS2's 1,837 S beats)."""
    cm = sum(np.array(m) for r, m in report["per_record"].items() if r != record)
    reps = class_reports(cm, CLASSES)
    return {"without_record": record, "confusion": cm.tolist(), "classes": [r.to_dict() for r in reps],
            "macro_f1": macro_f1(reps)}


def show(title: str, report: dict) -> None:
    print(f"\n{title}\n{'class':5} {'beats':>6} {'Se %':>6} {'+P %':>6} {'F1':>6} | de Chazal Se / +P / F1")
    for r in table(report):
        print(f"{r['class']:5} {r['beats']:6d} {r['se']:6.1f} {r['ppv']:6.1f} {r['f1']:6.3f} | "
              f"{r['de_chazal_se']:5.1f} / {r['de_chazal_ppv']:5.1f} / {r['de_chazal_f1']:.3f}")
    print(f"macro F1 {report['macro_f1']:.3f}  accuracy {100 * report['accuracy']:.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MITDB)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", type=Path, default=Path("/tmp/ndconv_models"))
    parser.add_argument("--checkpoint", type=Path,
                        help="evaluate this checkpoint (made by this script) instead of training a new one")
    parser.add_argument("--out", type=Path, default=RESULTS / "ndconv_ecg.json")
    args = parser.parse_args()
    base = EcgSettings()
    settings = replace(base, train=replace(base.train, epochs=args.epochs, seed=args.seed, threads=args.threads,
                                           device=args.device))
    if args.checkpoint:
        path = args.checkpoint
        trained_info = json.loads(path.with_suffix(".json").read_text())
        info, history = trained_info["info"], trained_info["history"]
        train = {"train_records": info["train_records"], "validation_records": info["validation_records"],
                 "train_counts": info["train_counts"], "settings": info["settings"], "history": history,
                 **{k: info.get(k) for k in ("best_epochs", "validation_score", "member_validation_scores",
                                             "train_seconds")}}
    else:
        t0 = time.perf_counter()
        data = load_beats(args.data, DS1)
        print(f"DS1: {len(data)} beats {data.counts()} read in {time.perf_counter() - t0:.0f} s", flush=True)
        trained = train_ecg(args.data, settings=settings, data=data, validation_records=VALIDATION,
                            on_member=lambda i: print(f" network {i + 1}/{settings.members}", flush=True),
                            on_epoch=lambda r: print(f"  epoch {r.epoch}: loss {r.train_loss:.3f} "
                                                     f"val {r.val_score:.3f} ({r.seconds:.0f} s)", flush=True))
        path = save_ecg(args.models / f"ecg-seed{args.seed}.safetensors", trained)
        summary = trained.summary()
        print(f"trained in {summary['train_seconds']:.0f} s, best epochs {summary['best_epochs']}, ensemble "
              f"validation score {summary['validation_score']:.3f}; {path}", flush=True)
        train = {"train_records": list(trained.train_records), "validation_records": list(trained.validation_records),
                 "train_counts": trained.train_counts, "settings": settings.to_dict(), **summary,
                 "history": trained.history_dicts()}

    ref = evaluate_ecg(path, args.data, records=DS2, positions="reference", device=args.device)
    probs, labels = ref.pop("_probabilities"), ref.pop("_labels")
    show("DS2, reference beat positions", ref)
    det = evaluate_ecg(path, args.data, records=DS2, positions="detected", device=args.device)
    det.pop("_probabilities"), det.pop("_labels")
    show("DS2, beats found by the QRS detector (matched within 150 ms)", det)
    q = det["qrs"]
    print(f"QRS detection on DS2: Se {100 * q['se']:.2f} %  +P {100 * q['ppv']:.2f} %  (FN {q['fn']}, FP {q['fp']})")

    save_confusion(DOCS / "ecg_confusion_ds2.png", np.array(ref["confusion"]), CLASSES,
                   title="DS2 (inter-patient), reference beats")
    curves = {}
    for k, c in enumerate(CLASSES):
        pos = labels == k
        fpr, tpr = roc_curve(probs[:, k], pos)
        curves[c] = (fpr, tpr, roc_auc(probs[:, k], pos))
    save_roc(DOCS / "ecg_roc_ds2.png", curves, title="DS2: each class against the rest")

    result = {
        "protocol": "inter-patient, de Chazal et al. 2004: train DS1 (22 records), test DS2 (22 records); "
                    "paced records 102, 104, 107, 217 excluded; MLII lead",
        **train, "test_records": list(DS2), "checkpoint": str(path),
        "ds2_reference_beats": {"table": table(ref), **ref},
        "ds2_reference_beats_without_232": without(ref, "232"),
        "ds2_detected_beats": {"table": table(det), **{k: v for k, v in det.items() if k != "qrs"}},
        "qrs_detection_ds2": q,
        "reference": "de Chazal, O'Dwyer, Reilly, IEEE TBME 51(7):1196-1206, 2004, Table (DS2, LD classifier)",
    }
    print(f"wrote {save_result('ndconv_ecg', result, out=args.out)}")


if __name__ == "__main__":
    main()
