"""`cnnkit ndconv volumes train|evaluate|predict`: a 3D CNN on CT volumes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...errors import SettingsError
from ..common import DEVICE_HELP, positive_int
from .common import Task, add_train_options, epoch_bar, task_settings, write_json

VOLUME_CANDIDATES = ("../shared/data/volumes/adrenalmnist3d_28.npz", "shared/data/volumes/adrenalmnist3d_28.npz")
VOLUMES = Task("CNNKIT_VOLUMES", VOLUME_CANDIDATES, "volume data", "--data FILE.npz",
               data_help="MedMNIST 3D .npz (default $CNNKIT_VOLUMES or ../shared/data/volumes/adrenalmnist3d_28.npz)",
               checkpoint="volumes.safetensors")


def add_parser(sub: argparse._SubParsersAction) -> None:
    vol = sub.add_parser("volumes", help="3D CNN on CT volumes (MedMNIST 3D .npz; .npy / NIfTI for predict)")
    act = vol.add_subparsers(dest="volumes_command", metavar="ACTION", required=True)

    t = VOLUMES.add_train_parser(act, "train on the train split; best epoch by validation AUC",
                                 out_help=f"checkpoint (default $CNNKIT_HOME/ndconv/{VOLUMES.checkpoint})")
    t.add_argument("--augment", choices=("none", "flips", "cube"), default="flips",
                   help="3-D augmentation: axis flips (default), all 48 cube symmetries, or none")
    t.add_argument("--tta", choices=("none", "flips", "cube"), default="flips",
                   help="test-time averaging over the same symmetries (default flips)")
    t.add_argument("--widths", default="8,16,32", help="channels per stage (default 8,16,32)")
    add_train_options(t, epochs=20, batch=32, lr=3e-3)
    t.set_defaults(run=run_volumes_train)

    e = act.add_parser("evaluate", help="AUC and ACC on a split (default test)")
    VOLUMES.add_model_option(e)
    VOLUMES.add_data_option(e)
    e.add_argument("--split", choices=("train", "val", "test"), default="test")
    e.add_argument("--json", dest="json_out", metavar="OUT", help="save the report as JSON")
    e.add_argument("--roc", metavar="OUT.png")
    e.add_argument("--confusion", metavar="OUT.png")
    e.add_argument("--device", default="auto", help=DEVICE_HELP)
    e.set_defaults(run=run_volumes_evaluate)

    p = act.add_parser("predict", help="classify volumes in .npy, .npz, .nii or .nii.gz files or folders")
    p.add_argument("paths", nargs="+", metavar="PATH")
    VOLUMES.add_model_option(p)
    p.add_argument("--montage", metavar="OUT.png", default="volumes-montage.png",
                   help="mid-slice montage of the predictions (default volumes-montage.png)")
    p.add_argument("--max-montage", type=positive_int, default=16, help="volumes drawn at most (default 16)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_volumes_predict)


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise SettingsError(f"--widths must be comma-separated integers such as 8,16,32, got {text!r}") from None


def run_volumes_train(args: argparse.Namespace) -> int:
    from ...ndconv.volumes.train import VolumeSettings, save_volumes, train_volumes

    data = VOLUMES.find_data(args.data)
    settings = task_settings(args, VolumeSettings(), widths=_widths(args.widths), augmentation=args.augment,
                             tta=args.tta)
    bar, on_epoch = epoch_bar(args.epochs, "train")
    with bar:
        trained = train_volumes(data, settings=settings, on_epoch=on_epoch)
    out = save_volumes(VOLUMES.out_path(args.out), trained, dataset=Path(data).name)
    print(f"{out}  (best epoch {trained.fit.best_epoch}: val AUC {trained.val['auc']:.3f} "
          f"ACC {trained.val.get('acc_at_threshold', trained.val['acc']):.3f}"
          + (f" at threshold {trained.threshold:.3f}" if trained.threshold is not None else "")
          + f"; {trained.fit.seconds:.0f} s)")
    return 0


def run_volumes_evaluate(args: argparse.Namespace) -> int:
    from ...ndconv.metrics import roc_curve
    from ...ndconv.plots import save_confusion, save_roc
    from ...ndconv.volumes.train import evaluate_volumes

    data = VOLUMES.find_data(args.data)
    report = evaluate_volumes(VOLUMES.model_path(args.model), data, split=args.split, device=args.device)
    probs, labels = report.pop("_probs"), report.pop("_labels")
    print(f"{Path(data).name} {args.split}: AUC {report['auc']:.3f}  ACC {report['acc']:.3f}  ({report['n']} volumes)")
    write_json(args.json_out, report)
    written = [args.json_out] if args.json_out else []
    if args.roc and probs.shape[1] == 2:
        fpr, tpr = roc_curve(probs[:, 1], labels == 1)
        save_roc(args.roc, {"3D CNN": (fpr, tpr, report["auc"])}, title=f"{Path(data).name}, {args.split}")
        written.append(args.roc)
    if args.confusion:
        import numpy as np

        save_confusion(args.confusion, np.array(report["confusion"]), [str(k) for k in range(probs.shape[1])],
                       title=f"{Path(data).name}, {args.split}")
        written.append(args.confusion)
    if written:
        print(f"wrote {', '.join(written)}")
    return 0


def run_volumes_predict(args: argparse.Namespace) -> int:
    from ...ndconv.volumes.train import predict_files, save_montage
    from ..progress import progress_bar

    with progress_bar(desc="predict", unit="vol") as bar:
        preds = predict_files(VOLUMES.model_path(args.model), args.paths, device=args.device,
                              on_volume=lambda _: bar.update())
    if args.json:
        print(json.dumps([{"volume": p.name, "label": p.label, "class": p.class_name,
                           "probabilities": p.probabilities} for p in preds]))
    else:
        for p in preds:
            print(f"{p.name}: class {p.label}{f' ({p.class_name})' if p.class_name else ''} "
                  f"(p={p.probabilities[p.label]:.3f})")
    if args.montage:
        save_montage(args.montage, preds[: args.max_montage])
        print(f"montage: {args.montage}", file=sys.stderr)
    return 0
