"""`cnnkit faces enroll-tree` (a photo tree, on Ray) and `cnnkit faces migrate` (between gallery backends).

A gallery location is a file path (SQLite), `milvus://HOST:PORT/COLLECTION`
(a Milvus server or cluster) or `milvus-lite://PATH.db` (Milvus Lite).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..common import DEVICE_HELP, positive_int
from ..progress import progress_bar
from .options import add_gallery_option


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enroll-tree", help="enroll every photo of ROOT/<person>/<photos> (on Ray; resumable)")
    p.add_argument("root", metavar="ROOT", help="a folder with one folder of photos per person")
    add_gallery_option(p)
    p.add_argument("--engine", choices=["auto", "ray", "local"], default="auto",
                   help="auto (default: Ray with --address, or from 2,000 photos on several cores; else this "
                        "process), ray (a local Ray, or --address) or local (this process only)")
    p.add_argument("--address",
                   help="a Ray cluster to run on, e.g. ray://head:10001 or auto (default: start a local one)")
    p.add_argument("--workers", type=positive_int, help="Ray workers (default: one per CPU Ray sees)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="photos per worker batch (default 32)")
    p.add_argument("--largest", action="store_true",
                   help="take the largest face of photos with several (by default only a clearly dominant one is)")
    p.add_argument("--encoder", help="for a new gallery: a weights name or a saved encoder's folder")
    p.add_argument("--report", metavar="OUT.json", help="write the report (counts, failed photos and why) as JSON")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_enroll_tree)

    p = sub.add_parser("migrate", help="copy a gallery to another backend (e.g. SQLite -> Milvus) without loss")
    p.add_argument("--from", dest="source", required=True, metavar="G1", help="the gallery to copy")
    p.add_argument("--to", dest="target", required=True, metavar="G2", help="a new (empty) gallery")
    p.set_defaults(run=run_migrate)


def run_enroll_tree(args: argparse.Namespace) -> int:
    from ...faces.enroll_tree import enroll_tree
    from ...faces.gallery import Gallery

    with Gallery(args.gallery, create=True, encoder=args.encoder, device=args.device) as gallery, \
            progress_bar(unit="photo", desc="enroll-tree") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        report = enroll_tree(gallery, args.root, engine=args.engine, address=args.address, workers=args.workers,
                             batch_size=args.batch_size, pick="largest" if args.largest else "auto",
                             device=args.device, on_progress=progress)
    if args.report:
        with open(args.report, "w") as fh:
            json.dump(report.to_dict(), fh, indent=1)
    print(f"enrolled {report.enrolled} photo(s) ({report.people_added} new people) into {args.gallery} in "
          f"{report.seconds:.1f} s on {report.engine} ({report.workers} worker(s)); {report.already_enrolled} "
          f"already enrolled, {report.duplicates} duplicate(s), {len(report.failed)} failed")
    for failure in report.failed[:20]:
        print(f"  failed: {failure['photo']}: {failure['error']}", file=sys.stderr)
    if len(report.failed) > 20:
        more = f"see {args.report}" if args.report else "--report FILE lists them all"
        print(f"  ... and {len(report.failed) - 20} more ({more})", file=sys.stderr)
    return 2 if report.failed else 0  # an unreadable photo is an error, as everywhere


def run_migrate(args: argparse.Namespace) -> int:
    from ...faces.gallery import Gallery
    from ...faces.gallery.migrate import migrate_gallery

    with Gallery(args.source, readonly=True) as source, \
            Gallery(args.target, create=True, encoder=source.model.encoder, flip=source.model.flip) as target, \
            progress_bar(total=len(source.people()), unit="person", desc="migrate") as bar:
        counts = migrate_gallery(source, target, on_people=bar.update)
    print(f"migrated {counts['people']} people, {counts['embeddings']} embeddings from {args.source} to "
          f"{args.target} (checked: same contents)")
    return 0
