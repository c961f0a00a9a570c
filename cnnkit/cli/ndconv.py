"""`cnnkit ndconv shape|ecg|volumes|video`: convolution in 1D (ECG), 3D (CT volumes, video clips)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import CnnkitError, SettingsError

MITDB_CANDIDATES = ("../shared/data/ecg/mitdb", "shared/data/ecg/mitdb", "../../shared/data/ecg/mitdb")
VOLUME_CANDIDATES = ("../shared/data/volumes/adrenalmnist3d_28.npz", "shared/data/volumes/adrenalmnist3d_28.npz")


def _models_dir() -> Path:
    from ..weights.store import cnnkit_home

    return cnnkit_home() / "ndconv"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ndconv", help="convolution beyond images: 1D ECG, 3D CT volumes and video")
    sub = parser.add_subparsers(dest="ndconv_command", metavar="ACTION", required=True)
    _add_shape(sub)
    _add_ecg(sub)
    _add_volumes(sub)
    _add_video(sub)


# ---------------------------------------------------------------- shape

def _add_shape(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shape", help="output shape and parameter count of a 1D/2D/3D convolution",
                       description="Input as the course writes it, channels last: 14 (1D), 14x14x3 (2D, 3 channels), "
                                   "14x14x14x1 (3D, 1 channel). 3 numbers read as 2D + channels unless --dim 3 "
                                   "or a 3-number --kernel says otherwise.")
    p.add_argument("--input", required=True, metavar="SIZES", help="e.g. 14, 14x14x3, 14x14x14x1")
    p.add_argument("--kernel", required=True, metavar="K", help="e.g. 5 or 5x5 or 5x5x5")
    p.add_argument("--filters", type=int, help="number of filters (output channels)")
    p.add_argument("--stride", default="1", metavar="S")
    p.add_argument("--padding", default="0", metavar="P", help="a number per axis, 'valid' or 'same'")
    p.add_argument("--dilation", default="1", metavar="D")
    p.add_argument("--dim", type=int, choices=(1, 2, 3), help="spatial dimensions (default: inferred)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_shape)


def run_shape(args: argparse.Namespace) -> int:
    from ..ndconv.shapes import conv_shape, parse_sizes, split_channels

    kernel = parse_sizes(args.kernel, "kernel")
    dim = args.dim or (len(kernel) if len(kernel) > 1 else None)
    spatial, channels = split_channels(parse_sizes(args.input, "input"), dim)
    padding = args.padding if args.padding in ("same", "valid") else parse_sizes(args.padding, "padding")
    shape = conv_shape(spatial, kernel, in_channels=channels, filters=args.filters,
                       stride=parse_sizes(args.stride, "stride"), padding=padding,
                       dilation=parse_sizes(args.dilation, "dilation"))
    if args.json:
        print(json.dumps({"dim": shape.dim, "input": list(shape.input_spatial), "in_channels": shape.in_channels,
                          "kernel": list(shape.kernel), "stride": list(shape.stride), "padding": list(shape.padding),
                          "dilation": list(shape.dilation), "filters": shape.filters,
                          "output": list(shape.output_shape), "parameters": shape.parameters,
                          "weights": shape.weights, "biases": shape.biases, "multiply_adds": shape.multiply_adds}))
    else:
        print(shape.describe())
    return 0


# ---------------------------------------------------------------- shared

def _find_path(given: str | None, env: str, candidates: tuple[str, ...], what: str, flag: str) -> Path:
    options = [given] if given else [os.environ.get(env), *candidates]
    for c in options:
        if c and Path(c).exists():
            return Path(c)
    raise CnnkitError(f"{what} not found{f' at {given}' if given else ''}; pass {flag} or set {env}")


def _train_options(p: argparse.ArgumentParser, *, epochs: int, batch: int, lr: float) -> None:
    p.add_argument("--epochs", type=int, default=epochs, help=f"default {epochs}")
    p.add_argument("--batch-size", type=int, default=batch, help=f"default {batch}")
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (AdamW, cosine; default {lr:g})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)")


def _train_settings(args: argparse.Namespace, base):
    from dataclasses import replace

    return replace(base, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                   device=args.device, threads=args.threads)


def _epoch_bar(total: int, desc: str):
    from .progress import progress_bar

    bar = progress_bar(total=total, desc=desc, unit="epoch")

    def on_epoch(report) -> None:
        post = {"loss": f"{report.train_loss:.3f}"}
        if report.val_score is not None:
            post["val"] = f"{report.val_score:.3f}"
        bar.set_postfix(post)
        bar.update()
    return bar, on_epoch


def _write_json(path: str | None, data: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=1) + "\n")


# ---------------------------------------------------------------- ECG

def _add_ecg(sub: argparse._SubParsersAction) -> None:
    ecg = sub.add_parser("ecg", help="heartbeat classification (AAMI N/S/V/F) on MIT-BIH, inter-patient")
    act = ecg.add_subparsers(dest="ecg_command", metavar="ACTION", required=True)
    data_help = "MIT-BIH folder (100.hea ...); default $CNNKIT_MITDB or ../shared/data/ecg/mitdb"

    t = act.add_parser("train", help="train on DS1 (never DS2); best epoch chosen on DS1 validation patients")
    t.add_argument("--data", help=data_help)
    t.add_argument("--out", help="checkpoint to write (.safetensors; default $CNNKIT_HOME/ndconv/ecg.safetensors)")
    t.add_argument("--no-validation", action="store_true",
                   help="train on all 22 DS1 records for --epochs and keep the last epoch")
    t.add_argument("--weight-power", type=float,
                   help="class weights (n/n_k)^p in the networks' loss; 1 balanced, 0 none (default 1)")
    t.add_argument("--n-fraction", type=float, help="share of N beats drawn per epoch (default 0.35)")
    t.add_argument("--members", type=int, help="networks in the ensemble, averaged (default 3)")
    t.add_argument("--rr-share", type=float,
                   help="weight of the RR-feature logistic model in the averaged probabilities; 0 leaves it out "
                        "(default 0.5)")
    _train_options(t, epochs=12, batch=128, lr=2e-3)
    t.set_defaults(run=run_ecg_train)

    e = act.add_parser("evaluate", help="per-class Se, +P, F1 and macro F1 (default: DS2)")
    e.add_argument("--model", help="checkpoint (default $CNNKIT_HOME/ndconv/ecg.safetensors)")
    e.add_argument("--data", help=data_help)
    e.add_argument("--records", default="DS2", help="DS1, DS2 or comma-separated record names (default DS2)")
    e.add_argument("--beats", choices=("reference", "detected"), default="reference",
                   help="beat positions: the reference annotations (default) or the QRS detector's")
    e.add_argument("--json", dest="json_out", metavar="OUT", help="save the report as JSON")
    e.add_argument("--confusion", metavar="OUT.png", help="draw the confusion matrix")
    e.add_argument("--roc", metavar="OUT.png", help="draw one-vs-rest ROC curves")
    e.add_argument("--device", default="auto")
    e.set_defaults(run=run_ecg_evaluate)

    c = act.add_parser("classify", help="label every beat of a raw record (QRS detection, no annotations needed)")
    c.add_argument("record", metavar="RECORD", help="WFDB record (path without extension or .hea), .npy or .csv")
    c.add_argument("--model", help="checkpoint (default $CNNKIT_HOME/ndconv/ecg.safetensors)")
    c.add_argument("--lead", default="MLII", help="lead name or index (default MLII, what the model was trained on)")
    c.add_argument("--fs", type=float, help="sampling rate in Hz of a .npy / .csv record")
    c.add_argument("--beats", choices=("detected", "reference"), default="detected")
    c.add_argument("--out", metavar="OUT.csv", help="beat labels (default RECORD-beats.csv in the current folder)")
    c.add_argument("--plot", metavar="OUT.png", help="signal with labelled beats (default RECORD-beats.png)")
    c.add_argument("--start", type=float, help="plot from this second (default: near the first non-N beat)")
    c.add_argument("--seconds", type=float, default=20.0, help="seconds to plot (default 20)")
    c.add_argument("--json", action="store_true", help="print counts and beats as JSON")
    c.add_argument("--device", default="auto")
    c.set_defaults(run=run_ecg_classify)


def _ecg_model(given: str | None) -> Path:
    return Path(given) if given else _models_dir() / "ecg.safetensors"


def run_ecg_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..ndconv.ecg.aami import DS1
    from ..ndconv.ecg.dataset import load_beats
    from ..ndconv.ecg.train import VALIDATION, EcgSettings, save_ecg, train_ecg
    from .progress import progress_bar

    data = _find_path(args.data, "CNNKIT_MITDB", MITDB_CANDIDATES, "MIT-BIH data", "--data DIR")
    base = EcgSettings()
    given = {"weight_power": args.weight_power, "n_fraction": args.n_fraction, "members": args.members,
             "rr_share": args.rr_share}
    settings = replace(base, **{k: v for k, v in given.items() if v is not None},
                       train=_train_settings(args, base.train))
    val = None if args.no_validation else VALIDATION
    with progress_bar(total=len(DS1), desc="read DS1", unit="record") as rbar:
        beats = load_beats(data, DS1, on_record=lambda _: rbar.update())
    bar, on_epoch = _epoch_bar(args.epochs * settings.members, "train")
    with bar:
        trained = train_ecg(data, settings=settings, validation_records=val, data=beats, on_epoch=on_epoch,
                            on_member=lambda i: bar.set_description(f"train network {i + 1}/{settings.members}"))
    out = save_ecg(_ecg_model(args.out), trained)
    s = trained.summary()
    score = f"{s['validation_score']:.3f}" if s["validation_score"] is not None else "none"
    print(f"{out}  ({settings.members} network(s), best epochs {s['best_epochs']}, "
          f"ensemble validation score {score}, {s['train_seconds']:.0f} s)")
    return 0


def _records(text: str) -> tuple[str, ...]:
    from ..ndconv.ecg.aami import DS1, DS2

    named = {"DS1": DS1, "DS2": DS2}
    if text.upper() in named:
        return named[text.upper()]
    records = tuple(r.strip() for r in text.split(",") if r.strip())
    if not records:
        raise SettingsError("--records must be DS1, DS2 or record names like 100,103")
    return records


def run_ecg_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from ..ndconv.ecg.aami import CLASSES
    from ..ndconv.ecg.train import evaluate_ecg
    from ..ndconv.metrics import roc_auc, roc_curve
    from ..ndconv.plots import save_confusion, save_roc
    from .progress import progress_bar

    data = _find_path(args.data, "CNNKIT_MITDB", MITDB_CANDIDATES, "MIT-BIH data", "--data DIR")
    records = _records(args.records)
    with progress_bar(total=len(records), desc="evaluate", unit="record") as bar:
        report = evaluate_ecg(_ecg_model(args.model), data, records=records, positions=args.beats,
                              device=args.device, on_record=lambda _: bar.update())
    probs, labels = report.pop("_probabilities"), report.pop("_labels")
    print(f"{'class':5} {'beats':>6} {'Se %':>6} {'+P %':>6} {'F1':>6}")
    for c in report["classes"]:
        print(f"{c['class']:5} {c['support']:6d} {100 * c['se']:6.1f} {100 * c['ppv']:6.1f} {c['f1']:6.3f}")
    print(f"macro F1 {report['macro_f1']:.3f}   accuracy {100 * report['accuracy']:.1f} %   "
          f"Q beats (not classified) {report['q_beats']}")
    if "qrs" in report:
        q = report["qrs"]
        print(f"QRS detection: Se {100 * q['se']:.2f} %  +P {100 * q['ppv']:.2f} %  (FN {q['fn']}, FP {q['fp']})")
    _write_json(args.json_out, report)
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

    from ..ndconv.ecg.classify import classify_record, save_beat_plot

    lead = int(args.lead) if args.lead.isdigit() else args.lead
    result = classify_record(args.record, _ecg_model(args.model), positions=args.beats, lead=lead,
                             sampling_rate=args.fs, device=args.device)
    stem = result.record.name
    out = Path(args.out or f"{stem}-beats.csv")
    plot = Path(args.plot or f"{stem}-beats.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = result.rows()
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["time_s", "sample", "label", "probability"])
        writer.writeheader()
        writer.writerows(rows)
    save_beat_plot(plot, result, start_s=args.start, seconds=args.seconds)
    counts = result.counts()
    if args.json:
        print(json.dumps({"record": str(args.record), "fs": result.record.fs, "lead": result.record.lead,
                          "original_fs": result.record.original_fs, "beats": len(rows), "counts": counts,
                          "labels_csv": str(out), "plot": str(plot), "beat_labels": rows}))
    else:
        resampled = (f", resampled from {result.record.original_fs:g} Hz"
                     if result.record.original_fs != result.record.fs else "")
        print(f"{args.record}: {len(rows)} beats ({result.source}), lead {result.record.lead}{resampled}, "
              f"{result.record.seconds:.0f} s")
        print("  " + "  ".join(f"{c} {n}" for c, n in counts.items()))
        print(f"  labels: {out}\n  plot:   {plot}")
    return 0


# ---------------------------------------------------------------- volumes

def _add_volumes(sub: argparse._SubParsersAction) -> None:
    vol = sub.add_parser("volumes", help="3D CNN on CT volumes (MedMNIST 3D .npz; .npy / NIfTI for predict)")
    act = vol.add_subparsers(dest="volumes_command", metavar="ACTION", required=True)
    data_help = "MedMNIST 3D .npz (default $CNNKIT_VOLUMES or ../shared/data/volumes/adrenalmnist3d_28.npz)"

    t = act.add_parser("train", help="train on the train split; best epoch by validation AUC")
    t.add_argument("--data", help=data_help)
    t.add_argument("--out", help="checkpoint (default $CNNKIT_HOME/ndconv/volumes.safetensors)")
    t.add_argument("--augment", choices=("none", "flips", "cube"), default="flips",
                   help="3-D augmentation: axis flips (default), all 48 cube symmetries, or none")
    t.add_argument("--tta", choices=("none", "flips", "cube"), default="flips",
                   help="test-time averaging over the same symmetries (default flips)")
    t.add_argument("--widths", default="8,16,32", help="channels per stage (default 8,16,32)")
    _train_options(t, epochs=20, batch=32, lr=3e-3)
    t.set_defaults(run=run_volumes_train)

    e = act.add_parser("evaluate", help="AUC and ACC on a split (default test)")
    e.add_argument("--model", help="checkpoint (default $CNNKIT_HOME/ndconv/volumes.safetensors)")
    e.add_argument("--data", help=data_help)
    e.add_argument("--split", choices=("train", "val", "test"), default="test")
    e.add_argument("--json", dest="json_out", metavar="OUT")
    e.add_argument("--roc", metavar="OUT.png")
    e.add_argument("--confusion", metavar="OUT.png")
    e.add_argument("--device", default="auto")
    e.set_defaults(run=run_volumes_evaluate)

    p = act.add_parser("predict", help="classify volumes in .npy, .npz, .nii or .nii.gz files or folders")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--model", help="checkpoint (default $CNNKIT_HOME/ndconv/volumes.safetensors)")
    p.add_argument("--montage", metavar="OUT.png", default="volumes-montage.png",
                   help="mid-slice montage of the predictions (default volumes-montage.png)")
    p.add_argument("--max-montage", type=int, default=16, help="volumes drawn at most (default 16)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run_volumes_predict)


def _volume_model(given: str | None) -> Path:
    return Path(given) if given else _models_dir() / "volumes.safetensors"


def run_volumes_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..ndconv.volumes.train import VolumeSettings, save_volumes, train_volumes

    data = _find_path(args.data, "CNNKIT_VOLUMES", VOLUME_CANDIDATES, "volume data", "--data FILE.npz")
    widths = tuple(int(w) for w in args.widths.split(","))
    base = VolumeSettings()
    settings = replace(base, widths=widths, augmentation=args.augment, tta=args.tta,
                       train=_train_settings(args, base.train))
    bar, on_epoch = _epoch_bar(args.epochs, "train")
    with bar:
        trained = train_volumes(data, settings=settings, on_epoch=on_epoch)
    out = save_volumes(_volume_model(args.out), trained, dataset=Path(data).name)
    print(f"{out}  (best epoch {trained.fit.best_epoch}: val AUC {trained.val['auc']:.3f} "
          f"ACC {trained.val.get('acc_at_threshold', trained.val['acc']):.3f}"
          + (f" at threshold {trained.threshold:.3f}" if trained.threshold is not None else "")
          + f"; {trained.fit.seconds:.0f} s)")
    return 0


def run_volumes_evaluate(args: argparse.Namespace) -> int:
    from ..ndconv.metrics import roc_curve
    from ..ndconv.plots import save_confusion, save_roc
    from ..ndconv.volumes.train import evaluate_volumes

    data = _find_path(args.data, "CNNKIT_VOLUMES", VOLUME_CANDIDATES, "volume data", "--data FILE.npz")
    report = evaluate_volumes(_volume_model(args.model), data, split=args.split, device=args.device)
    probs, labels = report.pop("_probs"), report.pop("_labels")
    print(f"{Path(data).name} {args.split}: AUC {report['auc']:.3f}  ACC {report['acc']:.3f}  ({report['n']} volumes)")
    _write_json(args.json_out, report)
    if args.roc and probs.shape[1] == 2:
        fpr, tpr = roc_curve(probs[:, 1], labels == 1)
        save_roc(args.roc, {"3D CNN": (fpr, tpr, report["auc"])}, title=f"{Path(data).name}, {args.split}")
    if args.confusion:
        import numpy as np

        save_confusion(args.confusion, np.array(report["confusion"]), [str(k) for k in range(probs.shape[1])],
                       title=f"{Path(data).name}, {args.split}")
    return 0


def run_volumes_predict(args: argparse.Namespace) -> int:
    from ..ndconv.volumes.train import predict_files, save_montage
    from .progress import progress_bar

    with progress_bar(desc="predict", unit="vol") as bar:
        preds = predict_files(_volume_model(args.model), args.paths, device=args.device,
                              on_volume=lambda _: bar.update())
    if args.json:
        print(json.dumps([{"volume": p.name, "label": p.label, "probabilities": p.probabilities} for p in preds]))
    else:
        for p in preds:
            print(f"{p.name}: class {p.label} (p={p.probabilities[p.label]:.3f})")
    if args.montage:
        save_montage(args.montage, preds[: args.max_montage])
        print(f"montage: {args.montage}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- video

def _add_video(sub: argparse._SubParsersAction) -> None:
    vid = sub.add_parser("video", help="3D CNN on clips (frames x height x width); PyAV decoding")
    act = vid.add_subparsers(dest="video_command", metavar="ACTION", required=True)

    g = act.add_parser("generate", help="write clips of the motion task (texture moving up/down/left/right) to a video")
    g.add_argument("out", metavar="OUT.mp4")
    g.add_argument("--clips", type=int, default=8)
    g.add_argument("--seed", type=int, default=2)
    g.add_argument("--codec", choices=("libx264", "mpeg4", "ffv1"), default="libx264")
    g.set_defaults(run=run_video_generate)

    t = act.add_parser("train", help="train a clip classifier on the generated motion task")
    t.add_argument("--arch", choices=("3d", "2d", "frames2d"), default="3d",
                   help="3d (default), 2d (per frame, averaged) or frames2d (frames as channels)")
    t.add_argument("--clips", type=int, default=1600, help="training clips (default 1600)")
    t.add_argument("--out", help="checkpoint (default $CNNKIT_HOME/ndconv/video-ARCH.safetensors)")
    _train_options(t, epochs=8, batch=32, lr=3e-3)
    t.set_defaults(run=run_video_train)

    p = act.add_parser("predict", help="decode a video into clips and classify each clip's motion")
    p.add_argument("video", metavar="VIDEO")
    p.add_argument("--model", help="checkpoint (default $CNNKIT_HOME/ndconv/video-3d.safetensors)")
    p.add_argument("--stride", type=int, help="frames between clip starts (default: the clip length)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run_video_predict)


def run_video_generate(args: argparse.Namespace) -> int:
    from ..ndconv.video.io import write_video
    from ..ndconv.video.synth import DIRECTIONS, make_clips

    clips, labels = make_clips(args.clips, seed=args.seed)
    out = write_video(args.out, clips.reshape(-1, *clips.shape[2:]), codec=args.codec)
    frames = clips.shape[1]
    truth = [{"start_frame": i * frames, "label": DIRECTIONS[k]} for i, k in enumerate(labels)]
    Path(str(out) + ".json").write_text(json.dumps({"clip_frames": frames, "clips": truth}, indent=1) + "\n")
    print(f"{out}: {len(labels)} clips of {frames} frames ({', '.join(DIRECTIONS[k] for k in labels)}); "
          f"labels in {out}.json")
    return 0


def run_video_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..ndconv.video.train import VideoSettings, save_video_model, train_video

    base = VideoSettings()
    settings = replace(base, arch=args.arch, train_clips=args.clips, train=_train_settings(args, base.train))
    bar, on_epoch = _epoch_bar(args.epochs, f"train {args.arch}")
    with bar:
        trained = train_video(settings=settings, on_epoch=on_epoch)
    out = save_video_model(Path(args.out) if args.out else _models_dir() / f"video-{args.arch}.safetensors", trained)
    print(f"{out}  ({trained.parameters} parameters; best epoch {trained.fit.best_epoch}: "
          f"val accuracy {trained.val_accuracy:.3f}; {trained.fit.seconds:.0f} s)")
    return 0


def run_video_predict(args: argparse.Namespace) -> int:
    from ..ndconv.video.train import predict_video

    model = Path(args.model) if args.model else _models_dir() / "video-3d.safetensors"
    preds = predict_video(model, args.video, stride=args.stride, device=args.device)
    if args.json:
        print(json.dumps([{"start_frame": p.start_frame, "frames": p.frames, "label": p.label,
                           "probabilities": p.probabilities}
                          for p in preds]))
    else:
        for p in preds:
            print(f"frames {p.start_frame:5d}-{p.start_frame + p.frames - 1:5d}: {p.label:5} "
                  f"(p={max(p.probabilities):.2f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m cnnkit.cli.ndconv ACTION ...` runs `cnnkit ndconv ACTION ...` (same errors, exit statuses)."""
    from .main import main as cli_main

    return cli_main(["ndconv", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
