"""`cnnkit faces embed IMAGE ...`: every face in every image, with its embedding."""

from __future__ import annotations

import argparse

from ..common import print_json_array
from ..progress import progress_bar
from .options import add_pipeline_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    embed = sub.add_parser("embed", help="every face in every image: box, score, landmarks, embedding")
    embed.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders of them")
    embed.add_argument("--json", action="store_true", help="print one JSON array, one object per image")
    add_pipeline_options(embed)
    embed.set_defaults(run=run_embed)


def run_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from ...faces.pipeline import DetectorSettings, embed_images
    from ...faces.types import embedding_of
    from ...images import expand_folders

    args.images = expand_folders(args.images)

    with progress_bar(total=len(args.images), unit="img", desc="embed") as bar:
        results = list(embed_images(args.images, flip=args.flip, batch_size=args.batch_size,
                                    settings=DetectorSettings(min_face_size=args.min_face_size),
                                    encoder=args.encoder, device=args.device, on_image=lambda _: bar.update()))
    if args.json:
        print_json_array(results)
    else:
        for r in results:
            if r.error:
                print(f"{r.source}: error: {r.error}")
                continue
            print(f"{r.source}: {len(r.faces)} face(s)")
            for k, face in enumerate(r.faces):
                x1, y1, x2, y2 = face.box
                emb = np.array2string(embedding_of(face)[:4], precision=3, separator=", ")[:-1]
                print(f"  face {k}: box=({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) score={face.score:.3f} "
                      f"embedding={emb}, ...] ({len(embedding_of(face))}-D)")
    return 2 if any(r.error for r in results) else 0  # an unreadable photo is an error, as everywhere
