"""ECG heartbeat classification under the inter-patient protocol (de Chazal et al. 2004): train DS1, test DS2.

In one run:

1. the default classifier (`cnnkit ndconv ecg train`'s settings: three 1D ResNets reading the beat minus the
   patient's median beat and RR features, averaged with a logistic regression on RR features) trained on DS1
   for each of --seeds, each network's epoch chosen on DS1 validation patients
   (`cnnkit.ndconv.ecg.train.VALIDATION`), then DS2 scored with the reference beat positions (the protocol's
   standard); mean +- std over the seeds;
2. de Chazal et al.'s feature set (RR in seconds, QRS and T-wave morphology and durations of both leads;
   `cnnkit.ndconv.ecg.features`) and their class-weighted linear discriminants, fitted on DS1, scored on DS2;
   also with the MLII lead alone;
3. record 232 (1,382 of DS2's 1,837 S beats) beat by beat: what each model calls its S beats, and the RR
   features of those beats beside DS1's N and S beats;
4. the QRS detector (`cnnkit.ndconv.ecg.qrs`) against `wfdb.processing.xqrs_detect` on the 44 records of
   DS1 and DS2 (matched within 150 ms), and the first seed's classifier on DS2 with detected beats.

    python -m bench.ndconv.ndconv_ecg [--seeds 0,1,2] [--epochs 12] [--threads 2] [--models /tmp/ndconv_models]

Writes bench/results/ndconv_ecg.json and docs/ndconv/ecg_*.png; checkpoints go to --models (outside the
repository).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.common import DATA, RESULTS, ROOT, save_result
from cnnkit.ndconv.ecg.aami import CLASSES, DE_CHAZAL_2004, DS1, DS2
from cnnkit.ndconv.ecg.beats import RR_FEATURES
from cnnkit.ndconv.ecg.dataset import load_beats
from cnnkit.ndconv.ecg.features import de_chazal_features, de_chazal_names
from cnnkit.ndconv.ecg.linear import fit_lda
from cnnkit.ndconv.ecg.qrs import detect_qrs, detection_scores
from cnnkit.ndconv.ecg.records import read_record
from cnnkit.ndconv.ecg.train import VALIDATION, EcgSettings, evaluate_ecg, save_ecg, score_beats, train_ecg
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
                     "de_chazal_paper_se": ref["se"], "de_chazal_paper_ppv": ref["ppv"],
                     "de_chazal_paper_f1": round(f1(ref["se"], ref["ppv"]) / 100, 3)})
    return rows


def without(per_record: dict, record: str) -> dict:
    """Per-class figures over DS2 without one record (232 holds 1,382 of DS2's 1,837 S beats)."""
    cm = sum(np.array(m) for r, m in per_record.items() if r != record)
    reps = class_reports(cm, CLASSES)
    return {"without_record": record, "confusion": cm.tolist(), "classes": [r.to_dict() for r in reps],
            "macro_f1": macro_f1(reps)}


def show(title: str, report: dict) -> None:
    print(f"\n{title}\n{'class':5} {'beats':>6} {'Se %':>6} {'+P %':>6} {'F1':>6} | de Chazal paper Se / +P / F1")
    for r in table(report):
        print(f"{r['class']:5} {r['beats']:6d} {r['se']:6.1f} {r['ppv']:6.1f} {r['f1']:6.3f} | "
              f"{r['de_chazal_paper_se']:5.1f} / {r['de_chazal_paper_ppv']:5.1f} / {r['de_chazal_paper_f1']:.3f}",
              flush=True)
    print(f"macro F1 {report['macro_f1']:.3f}  accuracy {100 * report['accuracy']:.1f} %", flush=True)


def over_seeds(reports: list[dict]) -> dict:
    """Per class: mean and std (population, over seeds) of Se, +P and F1."""
    out = {}
    for k, c in enumerate(CLASSES):
        per = {m: [r["classes"][k][m] for r in reports] for m in ("se", "ppv", "f1")}
        out[c] = {**{f"{m}_mean": float(np.mean(v)) for m, v in per.items()},
                  **{f"{m}_std": float(np.std(v)) for m, v in per.items()}, "per_seed_f1": per["f1"]}
    out["macro_f1_mean"] = float(np.mean([r["macro_f1"] for r in reports]))
    out["macro_f1_std"] = float(np.std([r["macro_f1"] for r in reports]))
    return out


def per_record(labels: np.ndarray, predicted: np.ndarray, records: np.ndarray) -> dict:
    return {r: score_beats(labels[records == r], predicted[records == r])["confusion"] for r in DS2}


def de_chazal(data: Path, leads: int) -> dict:
    """de Chazal's features and class-weighted LDA: fit on DS1, score DS2 (reference beats)."""
    t0 = time.perf_counter()
    x1, y1, _ = de_chazal_features(data, DS1, leads=leads)
    x2, y2, r2 = de_chazal_features(data, DS2, leads=leads)
    k1, k2 = y1 >= 0, y2 >= 0
    model = fit_lda(x1[k1], y1[k1], classes=len(CLASSES))
    with torch.no_grad():
        pred = model(torch.from_numpy(x2)).argmax(1).numpy()
    report = score_beats(y2, pred)
    report.update({"features": list(de_chazal_names(leads)), "leads": leads,
                   "per_record": per_record(y2[k2], pred[k2], r2[k2]), "seconds": round(time.perf_counter() - t0, 1)})
    return report


def rr_of_232(data: Path, ds1) -> dict:
    """Mean RR features of record 232's S beats, and of DS1's N and S beats (why relative RR misses 232)."""
    ds2 = load_beats(data, ("232",))
    names = ("pre_s", "post_s", "average_s", "pre", "pre/average", "pre/post")
    cols = [RR_FEATURES.index(n) for n in names]

    def means(rr: np.ndarray) -> dict:
        return {n: round(float(v), 3) for n, v in zip(names, rr[:, cols].mean(0))}

    return {"232_S": means(ds2.rr[ds2.labels == 1]), "232_N": means(ds2.rr[ds2.labels == 0]),
            "DS1_S": means(ds1.rr[ds1.labels == 1]), "DS1_N": means(ds1.rr[ds1.labels == 0]),
            "note": "pre: log(pre-RR / the record's median RR); pre/average: log(pre-RR / 5-minute mean RR)"}


def compare_detectors(data: Path) -> dict:
    """cnnkit's QRS detector and wfdb.processing.xqrs_detect on the MLII lead of DS1 and DS2 (150 ms)."""
    from wfdb import processing

    out: dict = {}
    for name, detector in (("cnnkit", lambda x, fs: detect_qrs(x, fs)),
                           ("wfdb_xqrs", lambda x, fs: processing.xqrs_detect(x.astype(np.float64), fs=fs,
                                                                               verbose=False))):
        per, seconds = {}, 0.0
        for r in DS1 + DS2:
            rec = read_record(data / r)
            t0 = time.perf_counter()
            found = np.asarray(detector(rec.signal, rec.fs), dtype=np.int64)
            seconds += time.perf_counter() - t0
            per[r] = detection_scores(rec.beats, found, rec.fs)
        summary = {}
        for part, records in (("DS1", DS1), ("DS2", DS2), ("all", DS1 + DS2)):
            tp, fn, fp = (sum(per[r][k] for r in records) for k in ("tp", "fn", "fp"))
            summary[part] = {"tp": tp, "fn": fn, "fp": fp, "se": tp / (tp + fn), "ppv": tp / (tp + fp)}
        out[name] = {**summary, "seconds": round(seconds, 1), "per_record": per}
        a = summary["all"]
        print(f"QRS {name:10s}: Se {100 * a['se']:.2f} %  +P {100 * a['ppv']:.2f} %  (FN {a['fn']}, FP {a['fp']}) "
              f"in {seconds:.0f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MITDB)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the machine is shared)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", type=Path, default=Path("/tmp/ndconv_models"))
    parser.add_argument("--out", type=Path, default=RESULTS / "ndconv_ecg.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = EcgSettings()
    seeds = [int(s) for s in args.seeds.split(",")]

    t0 = time.perf_counter()
    data = load_beats(args.data, DS1)
    print(f"DS1: {len(data)} beats {data.counts()} read in {time.perf_counter() - t0:.0f} s", flush=True)
    runs, reports = [], []
    for seed in seeds:
        settings = replace(base, train=replace(base.train, epochs=args.epochs, seed=seed, threads=args.threads,
                                               device=args.device))
        trained = train_ecg(args.data, settings=settings, data=data, validation_records=VALIDATION)
        path = save_ecg(args.models / f"ecg-seed{seed}.safetensors", trained)
        ref = evaluate_ecg(path, args.data, records=DS2, positions="reference", device=args.device)
        probs, labels = ref.pop("_probabilities"), ref.pop("_labels")
        show(f"seed {seed}: DS2, reference beat positions ({trained.seconds:.0f} s training)", ref)
        reports.append(ref)
        runs.append({"seed": seed, "checkpoint": str(path), **trained.summary(), "table": table(ref), **ref,
                     "without_232": without(ref["per_record"], "232")})
        if seed == seeds[0]:
            first_path, first_probs, first_labels, first_ref = path, probs, labels, ref
    summary = over_seeds(reports)
    print("\nover seeds " + ", ".join(f"{c} F1 {summary[c]['f1_mean']:.3f} ± {summary[c]['f1_std']:.3f}"
                                      for c in CLASSES), flush=True)

    det = evaluate_ecg(first_path, args.data, records=DS2, positions="detected", device=args.device)
    det.pop("_probabilities"), det.pop("_labels")
    show(f"seed {seeds[0]}: DS2, beats found by the QRS detector (matched within 150 ms)", det)

    baselines = {}
    for leads in (2, 1):
        report = de_chazal(args.data, leads)
        show(f"de Chazal features ({leads} lead(s)) + class-weighted LDA, DS2", report)
        baselines[f"{leads}_leads"] = {"table": table(report), **report,
                                       "without_232": without(report["per_record"], "232")}
    ratio = {c: summary[c]["f1_mean"] / max(baselines["2_leads"]["classes"][k]["f1"], 1e-9)
             for k, c in enumerate(CLASSES)}
    print("F1 ratio (ours, mean over seeds) / de Chazal reproduction (2 leads): "
          + ", ".join(f"{c} {v:.2f}" for c, v in ratio.items()), flush=True)
    record_232 = {"ours_seed_first": first_ref["per_record"]["232"],
                  "de_chazal_2_leads": baselines["2_leads"]["per_record"]["232"],
                  "de_chazal_1_lead": baselines["1_leads"]["per_record"]["232"],
                  "rr_features": rr_of_232(args.data, data),
                  "confusion_rows": "true N, S, V, F; columns predicted"}
    print(f"record 232 (rows true N,S,V,F): ours {record_232['ours_seed_first']}, "
          f"de Chazal {record_232['de_chazal_2_leads']}", flush=True)
    detectors = compare_detectors(args.data)

    save_confusion(DOCS / "ecg_confusion_ds2.png", np.array(first_ref["confusion"]), CLASSES,
                   title=f"DS2 (inter-patient), reference beats, seed {seeds[0]}")
    curves = {}
    for k, c in enumerate(CLASSES):
        pos = first_labels == k
        fpr, tpr = roc_curve(first_probs[:, k], pos)
        curves[c] = (fpr, tpr, roc_auc(first_probs[:, k], pos))
    save_roc(DOCS / "ecg_roc_ds2.png", curves, title="DS2: each class against the rest")

    result = {
        "protocol": "inter-patient, de Chazal et al. 2004: train DS1 (22 records), test DS2 (22 records); "
                    "paced records 102, 104, 107, 217 excluded; MLII lead (de Chazal baseline: both leads)",
        "settings": base.to_dict(), "epochs": args.epochs, "seeds": seeds, "test_records": list(DS2),
        "ds2_reference_beats_over_seeds": summary, "runs": runs,
        "ds2_detected_beats_first_seed": {"table": table(det), **det},
        "de_chazal_reproduction": baselines, "f1_ratio_to_de_chazal_reproduction": ratio,
        "record_232": record_232, "qrs_detectors": detectors,
        "reference": "de Chazal, O'Dwyer, Reilly, IEEE TBME 51(7):1196-1206, 2004 (DS2, LD classifier)",
    }
    print(f"wrote {save_result('ndconv_ecg', result, out=args.out)}")


if __name__ == "__main__":
    main()
