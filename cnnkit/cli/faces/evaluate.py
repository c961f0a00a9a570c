"""`cnnkit faces evaluate --pairs P --images DIR`: verification accuracy on an LFW-style pairs file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..common import positive_float
from ..progress import progress_bar
from .options import add_pipeline_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="verification accuracy on a pairs file in LFW's format")
    ev.add_argument("--pairs", required=True, help="pairs file (LFW pairs.txt format)")
    ev.add_argument("--images", required=True, help="folder with NAME/NAME_NNNN.jpg images")
    ev.add_argument("--json", dest="json_out", metavar="OUT", help="save the report as JSON")
    ev.add_argument("--roc", metavar="OUT.png", help="draw the ROC curve")
    ev.add_argument("--threshold", type=positive_float, help="use this fixed threshold instead of choosing one")
    add_pipeline_options(ev)
    ev.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from ...faces.evaluate import evaluate_pairs, read_pairs, save_roc

    pairs = read_pairs(args.pairs)
    n_images = len({p.first for p in pairs} | {p.second for p in pairs})
    with progress_bar(total=n_images, unit="img", desc="evaluate") as bar:
        report, distance = evaluate_pairs(pairs, args.images, flip=args.flip, batch_size=args.batch_size,
                                          threshold=args.threshold, device=args.device,
                                          min_face_size=args.min_face_size, encoder=args.encoder,
                                          on_image=lambda _: bar.update())
    data = report.to_dict()
    data["pairs_file"] = str(args.pairs)
    for key in ("accuracy_mean", "accuracy_std", "auc", "eer", "tar_at_far_1e-3", "threshold", "pairs",
                "images", "faces_not_found", "images_per_second"):
        value = data[key]
        print(f"{key:18} {value:.4f}" if isinstance(value, float) else f"{key:18} {value}")
    print(f"{'threshold chosen':18} {report.threshold_protocol}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(data, indent=2) + "\n")
        print(f"{'report':18} {args.json_out}")
    if args.roc:
        same = np.array([p.same for p in pairs])
        save_roc(distance, same, args.roc, title=f"{Path(args.pairs).name}: accuracy "
                                                  f"{100 * report.accuracy_mean:.2f}%")
        print(f"{'ROC curve':18} {args.roc}")
    return 0
