"""`cnnkit ndconv ecg train|evaluate|classify`: heartbeat classification on MIT-BIH."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...errors import SettingsError
from ..common import DEVICE_HELP, fraction, nonnegative_float, open_fraction, positive_float, positive_int
from ..progress import progress_bar
from .common import Task, add_train_options, epoch_bar, task_settings, write_json

MITDB_CANDIDATES = ("../shared/data/ecg/mitdb", "shared/data/ecg/mitdb", "../../shared/data/ecg/mitdb")
ECG = Task("CNNKIT_MITDB", MITDB_CANDIDATES, "MIT-BIH data", "--data DIR",
           data_help="MIT-BIH folder (100.hea ...); default $CNNKIT_MITDB or ../shared/data/ecg/mitdb",
           checkpoint="ecg.safetensors")


LEAD_HELP = ("lead name or index (default: the lead the model was trained on, MLII; a record without it uses its "
             "closest lead, with a warning)")


def _lead(text: str | None) -> str | int | None:
    return None if text is None else int(text) if text.isdecimal() else text


def _warn_lead(rec) -> None:
    import sys

    if rec.lead_wanted:
        print(f"warning: record {rec.name} has no lead {rec.lead_wanted}; classifying lead {rec.lead} instead "
              f"(the model was trained on {rec.lead_wanted}: expect lower accuracy; --lead chooses another)",
              file=sys.stderr)


def add_parser(sub: argparse._SubParsersAction) -> None:
    ecg = sub.add_parser("ecg", help="heartbeat classification (AAMI N/S/V/F) on MIT-BIH, inter-patient")
    act = ecg.add_subparsers(dest="ecg_command", metavar="ACTION", required=True)

    t = ECG.add_train_parser(act, "train on DS1 (never DS2); best epoch chosen on DS1 validation patients",
                             out_help="checkpoint to write "
                                      f"(.safetensors; default $CNNKIT_HOME/ndconv/{ECG.checkpoint})")
    t.add_argument("--no-validation", action="store_true",
                   help="train on all 22 DS1 records for --epochs and keep the last epoch")
    t.add_argument("--weight-power", type=nonnegative_float,
                   help="class weights (n/n_k)^p in the networks' loss; 1 balanced, 0 none (default 1)")
    t.add_argument("--n-fraction", type=open_fraction, help="share of N beats drawn per epoch (default 0.35)")
    t.add_argument("--members", type=positive_int, help="networks in the ensemble, averaged (default 3)")
    t.add_argument("--rr-share", type=fraction,
                   help="weight of the RR-feature logistic model in the averaged probabilities; 0 leaves it out "
                        "(default 0.5)")
    add_train_options(t, epochs=12, batch=128, lr=2e-3)
    t.set_defaults(run=run_ecg_train)

    e = act.add_parser("evaluate", help="per-class Se, +P, F1 and macro F1 (default: DS2)")
    ECG.add_model_option(e)
    ECG.add_data_option(e)
    e.add_argument("--records", default="DS2", help="DS1, DS2 or comma-separated record names (default DS2)")
    e.add_argument("--beats", choices=("reference", "detected"), default="reference",
                   help="beat positions: the reference annotations (default) or the QRS detector's")
    e.add_argument("--lead", help=LEAD_HELP)
    e.add_argument("--json", dest="json_out", metavar="OUT", help="save the report as JSON")
    e.add_argument("--confusion", metavar="OUT.png", help="draw the confusion matrix")
    e.add_argument("--roc", metavar="OUT.png", help="draw one-vs-rest ROC curves")
    e.add_argument("--device", default="auto", help=DEVICE_HELP)
    e.set_defaults(run=run_ecg_evaluate)

    c = act.add_parser("classify", help="label every beat of a raw record (QRS detection, no annotations needed)")
    c.add_argument("record", metavar="RECORD", help="WFDB record (path without extension or .hea), .npy or .csv")
    ECG.add_model_option(c)
    c.add_argument("--lead", help=LEAD_HELP)
    c.add_argument("--fs", type=positive_float, help="sampling rate in Hz of a .npy / .csv record")
    c.add_argument("--beats", choices=("detected", "reference"), default="detected")
    c.add_argument("--out", metavar="OUT.csv", help="beat labels (default RECORD-beats.csv in the current folder)")
    c.add_argument("--plot", metavar="OUT.png", help="signal with labelled beats (default RECORD-beats.png)")
    c.add_argument("--report", metavar="OUT.md", help="per-record report: counts, heart rate, S and V beats and runs "
                                                      "(default RECORD-report.md)")
    c.add_argument("--start", type=nonnegative_float, help="plot from this second (default: near the first non-N beat)")
    c.add_argument("--seconds", type=positive_float, default=20.0, help="seconds to plot (default 20)")
    c.add_argument("--json", action="store_true", help="print counts and beats as JSON")
    c.add_argument("--device", default="auto", help=DEVICE_HELP)
    c.set_defaults(run=run_ecg_classify)


def run_ecg_train(args: argparse.Namespace) -> int:
    from ...ndconv.ecg.aami import DS1
    from ...ndconv.ecg.dataset import load_beats
    from ...ndconv.ecg.train import VALIDATION, EcgSettings, save_ecg, train_ecg

    data = ECG.find_data(args.data)
    given = {"weight_power": args.weight_power, "n_fraction": args.n_fraction, "members": args.members,
             "rr_share": args.rr_share}
    settings = task_settings(args, EcgSettings(), **{k: v for k, v in given.items() if v is not None})
    val = None if args.no_validation else VALIDATION
    with progress_bar(total=len(DS1), desc="read DS1", unit="record") as rbar:
        beats = load_beats(data, DS1, on_record=lambda _: rbar.update())
    bar, on_epoch = epoch_bar(args.epochs * settings.members, "train")
    with bar:
        trained = train_ecg(data, settings=settings, validation_records=val, data=beats, on_epoch=on_epoch,
                            on_member=lambda i: bar.set_description(f"train network {i + 1}/{settings.members}"))
    out = save_ecg(ECG.out_path(args.out), trained)
    s = trained.summary()
    score = f"{s['validation_score']:.3f}" if s["validation_score"] is not None else "none"
    print(f"{out}  ({settings.members} network(s), best epochs {s['best_epochs']}, "
          f"ensemble validation score {score}, {s['train_seconds']:.0f} s)")
    return 0


def _records(text: str) -> tuple[str, ...]:
    from ...ndconv.ecg.aami import DS1, DS2

    named = {"DS1": DS1, "DS2": DS2}
    if text.upper() in named:
        return named[text.upper()]
    records = tuple(r.strip() for r in text.split(",") if r.strip())
    if not records:
        raise SettingsError("--records must be DS1, DS2 or record names like 100,103")
    return records


def run_ecg_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from ...ndconv.ecg.aami import CLASSES
    from ...ndconv.ecg.train import evaluate_ecg
    from ...ndconv.metrics import roc_auc, roc_curve
    from ...ndconv.plots import save_confusion, save_roc

    data = ECG.find_data(args.data)
    records = _records(args.records)
    with progress_bar(total=len(records), desc="evaluate", unit="record") as bar:
        report = evaluate_ecg(ECG.model_path(args.model), data, records=records, positions=args.beats,
                              device=args.device, on_record=lambda _: bar.update(), lead=_lead(args.lead))
    probs, labels = report.pop("_probabilities"), report.pop("_labels")
    print(f"{'class':5} {'beats':>6} {'Se %':>6} {'+P %':>6} {'F1':>6}")
    for c in report["classes"]:
        print(f"{c['class']:5} {c['support']:6d} {100 * c['se']:6.1f} {100 * c['ppv']:6.1f} {c['f1']:6.3f}")
    print(f"macro F1 {report['macro_f1']:.3f}   accuracy {100 * report['accuracy']:.1f} %   "
          f"Q beats (not classified) {report['q_beats']}")
    if "qrs" in report:
        q = report["qrs"]
        print(f"QRS detection: Se {100 * q['se']:.2f} %  +P {100 * q['ppv']:.2f} %  (FN {q['fn']}, FP {q['fp']})")
    write_json(args.json_out, report)
    if args.confusion:
        save_confusion(args.confusion, np.array(report["confusion"]), CLASSES,
                       title=f"ECG beats, {args.records} ({args.beats} positions)")
    if args.roc:
        curves = {}
        for k, c in enumerate(CLASSES):
            pos = labels == k
            if 0 < pos.sum() < len(pos):
                fpr, tpr = roc_curve(probs[:, k], pos)
                curves[c] = (fpr, tpr, roc_auc(probs[:, k], pos))
        save_roc(args.roc, curves, title=f"ECG beats, {args.records}: one class vs the rest")
    return 0


def run_ecg_classify(args: argparse.Namespace) -> int:
    import csv

    from ...ndconv.ecg.classify import classify_record, record_report, save_beat_plot, save_report

    result = classify_record(args.record, ECG.model_path(args.model), positions=args.beats, lead=_lead(args.lead),
                             sampling_rate=args.fs, device=args.device)
    _warn_lead(result.record)
    stem = result.record.name
    out = Path(args.out or f"{stem}-beats.csv")
    plot = Path(args.plot or f"{stem}-beats.png")
    report_path = Path(args.report or f"{stem}-report.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = result.rows()
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["time_s", "sample", "label", "probability"])
        writer.writeheader()
        writer.writerows(rows)
    save_beat_plot(plot, result, start_s=args.start, seconds=args.seconds)
    save_report(report_path, result, plot=plot, labels_csv=out)
    counts = result.counts()
    if args.json:
        print(json.dumps({"record": str(args.record), "fs": result.record.fs, "lead": result.record.lead,
                          "original_fs": result.record.original_fs, "beats": len(rows), "counts": counts,
                          "labels_csv": str(out), "plot": str(plot), "report": str(report_path),
                          "summary": record_report(result), "beat_labels": rows}))
    else:
        resampled = (f", resampled from {result.record.original_fs:g} Hz"
                     if result.record.original_fs != result.record.fs else "")
        print(f"{args.record}: {len(rows)} beats ({result.source}), lead {result.record.lead}{resampled}, "
              f"{result.record.seconds:.0f} s")
        print("  " + "  ".join(f"{c} {n}" for c, n in counts.items()))
        print(f"  labels: {out}\n  plot:   {plot}\n  report: {report_path}")
    return 0
