"""`cnnkit faces enroll|verify|identify|people|remove|rename|export|import|calibrate|reencode|check`.

Every action takes `--gallery G` (default: $CNNKIT_GALLERY). Exit status: 0 on
success (for verify: a match), 1 for "no match" (verify), 2 for an error
(identify: any photo that could not be read; the others are still answered).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...errors import CnnkitError, SettingsError
from ...faces.settings import DEFAULT_ENCODER
from ..common import DEVICE_HELP, open_fraction, positive_int, print_json_array
from ..progress import progress_bar
from .options import add_gallery_option


def add_parser(sub: argparse._SubParsersAction) -> None:
    def gallery_parser(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        add_gallery_option(p)
        return p

    p = gallery_parser("enroll", "add a person (or photos of a person) from one or more photos")
    p.add_argument("name", metavar="NAME")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders of them")
    p.add_argument("--new-person", action="store_true", help="a second person with this name, with its own id")
    p.add_argument("--id", type=positive_int, help="add the photos to the person with this id")
    p.add_argument("--largest", action="store_true",
                   help="take the largest face of photos with several (by default only a clearly dominant one is)")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="metadata to keep (repeatable)")
    p.add_argument("--encoder", help="for a new gallery: a weights name or a saved encoder's folder "
                   f"(default {DEFAULT_ENCODER}); an existing gallery uses its own")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_enroll)

    p = gallery_parser("verify", "is the face in IMAGE the person NAME? (exit 0 yes, 1 no, 2 error)")
    p.add_argument("name", metavar="NAME", help="a name, or #ID")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_verify)

    p = gallery_parser("identify", "who is every face in each IMAGE? (a name, or unknown)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders of them")
    p.add_argument("--top-k", type=positive_int, default=3, help="candidates to list per face (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON array, one object per image, in input order")
    p.add_argument("--index", choices=["auto", "exact", "hnsw"], default="auto", help="search index (default auto)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_identify)

    p = gallery_parser("people", "list the people in the gallery")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=run_people)

    p = gallery_parser("remove", "delete a person and all their embeddings")
    p.add_argument("name", metavar="NAME", help="a name, or #ID")
    p.set_defaults(run=run_remove)

    p = gallery_parser("rename", "rename a person")
    p.add_argument("name", metavar="NAME", help="a name, or #ID")
    p.add_argument("new_name", metavar="NEW_NAME")
    p.set_defaults(run=run_rename)

    p = gallery_parser("export", "write the gallery to a portable .npz file")
    p.add_argument("out", metavar="FILE.npz")
    p.set_defaults(run=run_export)

    p = gallery_parser("import", "add the people of an exported .npz file to the gallery (all of them or none)")
    p.add_argument("source", metavar="FILE.npz")
    p.add_argument("--use-threshold", action="store_true",
                   help="also set the gallery's threshold to the one in the file (never done without this)")
    p.set_defaults(run=run_import)

    p = gallery_parser("calibrate", "1:1: the threshold from labelled pairs for a target false-accept rate "
                                    "(--pairs --images --far); 1:K: the impostor distances of the gallery's "
                                    "own people and a target false-positive identification rate (--fpir)")
    p.add_argument("--pairs", help="pairs file in LFW's format (1:1)")
    p.add_argument("--images", help="folder with NAME/NAME_NNNN.jpg images (1:1)")
    p.add_argument("--far", type=open_fraction, default=1e-3, help="target false-accept rate of 1:1 (default 1e-3)")
    p.add_argument("--fpir", type=open_fraction,
                   help="1:K: the share of strangers identify may let through, e.g. 0.01; "
                        "measured on the gallery's own people (15 or more)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_calibrate)

    p = sub.add_parser("reencode", help="move a gallery to another encoder: encode its people's photos again "
                                        "into a new gallery (photos that no longer exist are listed)")
    p.add_argument("--from", dest="source", required=True, metavar="G1", help="the gallery to re-encode")
    p.add_argument("--to", dest="target", required=True, metavar="G2", help="a new (empty) gallery")
    p.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"the new gallery's encoder (default {DEFAULT_ENCODER})")
    p.add_argument("--photos", metavar="DIR", help="a folder of kept photos (`cnnkit serve --store-images DIR`), "
                   "looked in before each photo's recorded path")
    p.add_argument("--report", metavar="OUT.json", help="write what was left out, and why, as JSON")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_reencode)

    p = gallery_parser("check", "check the gallery file's integrity")
    p.set_defaults(run=run_check)


def _open(args: argparse.Namespace, *, create: bool = False, readonly: bool = False, **kw):
    from ...faces.gallery import Gallery

    return Gallery(args.gallery, create=create, readonly=readonly, device=getattr(args, "device", None), **kw)


def _new_local_gallery(location: str) -> Path | None:
    """The gallery file this command is about to create, or None (it exists, or it is a URL)."""
    if "://" in location:
        return None
    path = Path(location)
    return None if path.exists() else path


def _remove_gallery_file(path: Path) -> None:
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        part.unlink(missing_ok=True)


def run_enroll(args: argparse.Namespace) -> int:
    from ...images import expand_folders

    args.images = expand_folders(args.images)
    metadata = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SettingsError(f"--meta wants KEY=VALUE, got {item!r}")
        metadata[key] = value
    new_file = _new_local_gallery(args.gallery)
    try:
        with _open(args, create=True, encoder=args.encoder) as gallery, \
                progress_bar(total=len(args.images), unit="img", desc="enroll") as bar:
            person = gallery.enroll(args.name, args.images, new_person=args.new_person, person_id=args.id,
                                    metadata=metadata or None, pick="largest" if args.largest else "auto",
                                    on_image=lambda _: bar.update())
    except BaseException:
        if new_file is not None:  # a failed first enrollment leaves no empty gallery behind
            _remove_gallery_file(new_file)
        raise
    print(f"enrolled {person.name} (#{person.id}): {person.embeddings} photo(s) in {args.gallery}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    try:
        with _open(args, readonly=True) as gallery:
            result = gallery.verify(args.name, args.image)
    except CnnkitError as exc:
        if not args.json:
            raise
        print(json.dumps({"error": str(exc)}))  # --json always prints JSON
        return 2
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        verdict = "match" if result.match else "no match"
        print(f"{verdict}: {result.person.name} (#{result.person.id}) distance {result.distance:.4f}, "
              f"threshold {result.threshold:.4f}")
    return 0 if result.match else 1


def run_identify(args: argparse.Namespace) -> int:
    from ...images import expand_folders

    args.images = expand_folders(args.images)
    with _open(args, readonly=True, index=args.index) as gallery, \
            progress_bar(total=len(args.images), unit="img", desc="identify") as bar:
        results = gallery.identify(args.images, top_k=args.top_k, on_image=lambda _: bar.update())
    if args.json:
        print_json_array(results)
    else:
        for r in results:
            if r.error:
                print(f"{r.image}: error: {r.error}")
                continue
            if r.operating_point is not None:
                op = r.operating_point
                print(f"{r.image}: threshold {op.threshold:.3f} for {op.people} people at FPIR {op.fpir:g}")
            if not r.faces:
                print(f"{r.image}: no face")
            for k, face in enumerate(r.faces):
                x1, y1, x2, y2 = face.face.box
                who = f"{face.name} (#{face.person_id})" if face.name else "unknown"
                others = ", ".join(f"{c.name} (#{c.person_id}) {c.distance:.3f}" for c in face.candidates)
                dist = "-" if face.distance is None else f"{face.distance:.3f}"
                print(f"{r.image}: face {k} at ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}): {who} distance {dist} "
                      f"(nearest: {others or 'nobody enrolled'})")
    return 2 if any(r.error for r in results) else 0  # an unreadable photo is an error, as everywhere


def run_people(args: argparse.Namespace) -> int:
    with _open(args, readonly=True) as gallery:
        people = gallery.people()
        if args.json:
            print(json.dumps([p.to_dict() for p in people]))
            return 0
        names = [p.name for p in people]
        print(f"{len(people)} people in {args.gallery} (model {gallery.model.id}, threshold {gallery.threshold:.4f})")
        for p in people:
            same = " (same name as another person)" if names.count(p.name) > 1 else ""
            meta = f" {json.dumps(p.metadata)}" if p.metadata else ""
            print(f"  #{p.id:<6} {p.name}  {p.embeddings} photo(s){meta}{same}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    with _open(args) as gallery:
        person = gallery.remove(args.name)
    print(f"removed {person.name} (#{person.id}) and {person.embeddings} embedding(s)")
    return 0


def run_rename(args: argparse.Namespace) -> int:
    with _open(args) as gallery:
        person = gallery.rename(args.name, args.new_name)
    print(f"#{person.id} is now {person.name}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ...faces.gallery import export_gallery

    with _open(args, readonly=True) as gallery:
        counts = export_gallery(gallery, args.out)
    print(f"exported {counts['people']} people, {counts['embeddings']} embeddings to {args.out}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ...faces.gallery import import_gallery
    from ...faces.gallery.portable import read_export

    manifest, _ = read_export(args.source)
    with _open(args, create=True, flip=manifest["model"]["flip"]) as gallery:
        counts = import_gallery(gallery, args.source, use_threshold=args.use_threshold)
    print(f"imported {counts['people']} people, {counts['embeddings']} embeddings into {args.gallery}")
    if counts["skipped"]:
        print(f"skipped {counts['skipped']} people already in {args.gallery} (same name and embeddings: "
              f"{args.source} was imported before)")
    if counts["threshold_applied"]:
        print(f"threshold set to {counts['threshold_in_file']:g} from {args.source}")
    elif counts["threshold_in_file"] is not None:
        print(f"the threshold in {args.source} ({counts['threshold_in_file']:g}) was not applied; "
              "pass --use-threshold to apply it")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from ...faces.evaluate import read_pairs
    from ...faces.gallery.calibrate import calibrate, calibrate_identification

    if args.fpir is not None:
        with _open(args) as gallery:
            point = calibrate_identification(gallery, fpir=args.fpir)
        print(f"identify: threshold {point['threshold']:.4f} for {point['people']} people at FPIR {point['fpir']:g} "
              f"(impostor distances of {point['pairs']:,} pairs of the gallery's people)")
        if args.pairs is None:
            return 0
    if args.pairs is None or args.images is None:
        raise SettingsError("calibrate needs --pairs and --images (1:1), or --fpir (1:K)")
    pairs = read_pairs(args.pairs)
    n_images = len({p.first for p in pairs} | {p.second for p in pairs})
    with _open(args) as gallery, progress_bar(total=n_images, unit="img", desc="calibrate") as bar:
        result = calibrate(gallery, args.pairs, args.images, far=args.far, on_image=lambda _: bar.update())
    print(f"threshold {result['threshold']:.4f}: false accepts {result['far_measured']:.4%} "
          f"(target {args.far:g}), true accepts {result['tar_measured']:.2%} on {result['pairs_count']} pairs")
    return 0


def run_reencode(args: argparse.Namespace) -> int:
    from ...faces.gallery import Gallery
    from ...faces.gallery.reencode import reencode_gallery

    with Gallery(args.source, readonly=True) as source, \
            Gallery(args.target, create=True, encoder=args.encoder, device=args.device) as target, \
            progress_bar(total=source.store.count(), unit="photo", desc="reencode") as bar:
        report = reencode_gallery(source, target, photos=args.photos, on_photo=bar.update)
    if args.report:
        with open(args.report, "w") as fh:
            json.dump(report.to_dict(), fh, indent=1)
    print(f"re-encoded {report.people} people ({report.photos} photos) from {args.source} into {args.target} "
          f"with {args.encoder}")
    if report.photos_left_out or report.people_left_out:
        print(f"left out: {len(report.photos_left_out)} photo(s) that could not be encoded again and "
              f"{len(report.people_left_out)} person(s) with none left; the gallery keeps file names, not photos "
              "(keep photos with `cnnkit serve --store-images DIR` and pass --photos DIR)")
        for item in report.photos_left_out[:10]:
            print(f"  #{item['person_id']} {item['name']}: {item['source'] or '(no file name)'}: {item['why']}")
    return 0 if not report.people_left_out else 1


def run_check(args: argparse.Namespace) -> int:
    with _open(args, readonly=True) as gallery:
        problems = gallery.check()
        people = gallery.people()
    if problems:
        for problem in problems:
            print(f"problem: {problem}")
        return 1
    print(f"ok: {len(people)} people, {sum(p.embeddings for p in people)} embeddings")
    return 0
