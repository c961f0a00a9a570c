"""`cnnkit faces embed|evaluate`, and the gallery actions (see cli/gallery.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..faces.settings import MIN_FACE_SIZE
from . import distributed, gallery, train, watch
from .progress import progress_bar


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("faces", help="face detection, encoding, verification")
    sub = parser.add_subparsers(dest="faces_command", metavar="ACTION", required=True)

    embed = sub.add_parser("embed", help="every face in every image: box, score, landmarks, embedding")
    embed.add_argument("images", nargs="+", metavar="IMAGE")
    embed.add_argument("--json", action="store_true", help="print one JSON array, one object per image")
    _add_pipeline_options(embed)
    embed.set_defaults(run=run_embed)

    ev = sub.add_parser("evaluate", help="verification accuracy on a pairs file in LFW's format")
    ev.add_argument("--pairs", required=True, help="pairs file (LFW pairs.txt format)")
    ev.add_argument("--images", required=True, help="folder with NAME/NAME_NNNN.jpg images")
    ev.add_argument("--json", dest="json_out", metavar="OUT", help="save the report as JSON")
    ev.add_argument("--roc", metavar="OUT.png", help="draw the ROC curve")
    ev.add_argument("--threshold", type=float, help="use this fixed threshold instead of choosing one")
    _add_pipeline_options(ev)
    ev.set_defaults(run=run_evaluate)

    gallery.add_actions(sub)
    distributed.add_actions(sub)
    watch.add_actions(sub)
    train.add_actions(sub)


def _add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-flip", dest="flip", action="store_false",
                        help="encode each face once (default: average with its mirror image)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per detector batch (default 32)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--encoder", default="dlib-resnet-v1",
                        help="encoder: a weights name or the folder of a saved encoder (default dlib-resnet-v1)")
    parser.add_argument("--min-face-size", type=float, default=MIN_FACE_SIZE,
                        help="smallest face to look for, in pixels (default 40; the detector works down to 20)")


def run_embed(args: argparse.Namespace) -> int:
    from ..faces.pipeline import DetectorSettings, embed_images

    results = []
    with progress_bar(total=len(args.images), unit="img", desc="embed") as bar:
        for result in embed_images(args.images, flip=args.flip, batch_size=args.batch_size,
                                   settings=DetectorSettings(min_face_size=args.min_face_size),
                                   encoder=args.encoder, device=args.device, on_image=lambda _: bar.update()):
            results.append(result)
    if args.json:
        json.dump([r.to_dict() for r in results], sys.stdout)
        sys.stdout.write("\n")
    else:
        for r in results:
            if r.error:
                print(f"{r.source}: error: {r.error}")
                continue
            print(f"{r.source}: {len(r.faces)} face(s)")
            for k, face in enumerate(r.faces):
                x1, y1, x2, y2 = face.box
                emb = np.array2string(face.embedding[:4], precision=3, separator=", ")[:-1]
                print(f"  face {k}: box=({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) score={face.score:.3f} "
                      f"embedding={emb}, ...] (128-D)")
    return 1 if any(r.error for r in results) else 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..faces.evaluate import evaluate_pairs, read_pairs, save_roc

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
    if args.roc:
        same = np.array([p.same for p in pairs])
        save_roc(distance, same, args.roc, title=f"{Path(args.pairs).name}: accuracy "
                                                  f"{100 * report.accuracy_mean:.2f}%")
    return 0
