"""`cnnkit faces compare A B` (photo to photo, no gallery) and `cnnkit faces match KNOWN UNKNOWN` (folders, CSV).

`match` is face_recognition's command-line workflow: KNOWN holds one photo per
person named after the person (`Ada Lovelace.jpg`), or one folder per person;
each face of each UNKNOWN photo is answered on one CSV line `photo,name,distance`,
with `unknown_person` for a stranger and `no_persons_found` for a photo without a face.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys

from ...errors import CnnkitError
from ...faces.settings import DEFAULT_ENCODER
from ..common import DEVICE_HELP, positive_float
from ..progress import progress_bar


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="are two photos of the same person? (exit 0 same, 1 different, 2 error)")
    p.add_argument("photo_a", metavar="PHOTO_A", help="a photo (its largest face is compared)")
    p.add_argument("photo_b", metavar="PHOTO_B", help="another photo")
    p.add_argument("--json", action="store_true", help="print the answer as JSON (distance, threshold, boxes)")
    p.add_argument("--threshold", type=positive_float, help="a distance of your own (default: the encoder's)")
    p.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"default {DEFAULT_ENCODER}")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_compare)

    p = sub.add_parser("match", help="name the faces of UNKNOWN photos after the KNOWN folder's people (CSV out)")
    p.add_argument("known", metavar="KNOWN", help="a folder: one photo per person, named after them, or one "
                   "folder of photos per person")
    p.add_argument("unknown", nargs="+", metavar="UNKNOWN", help="photos, or folders of them")
    p.add_argument("--fpir", type=positive_float, default=0.01,
                   help="share of strangers that may be named (default 0.01; sets the threshold for the number "
                        "of known people)")
    p.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"default {DEFAULT_ENCODER}")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=run_match)


def run_compare(args: argparse.Namespace) -> int:
    from ...faces.api import compare_photos

    try:
        answer = compare_photos(args.photo_a, args.photo_b, threshold=args.threshold, encoder=args.encoder,
                                device=args.device)
    except CnnkitError as exc:
        if not args.json:
            raise
        print(json.dumps({"error": str(exc)}))
        return 2
    if args.json:
        print(json.dumps(answer.to_dict()))
    else:
        verdict = "same person" if answer.same else "different people"
        print(f"{verdict}: distance {answer.distance:.4f}, threshold {answer.threshold:.4f} ({answer.encoder})")
    return 0 if answer.same else 1


def known_people(folder: str) -> dict[str, list[str]]:
    """name -> photos of the KNOWN folder: its image files (name: the file's stem) and subfolders (name: theirs)."""
    from pathlib import Path

    from ...images import IMAGE_SUFFIXES, expand_folders

    root = Path(folder)
    if not root.is_dir():
        raise CnnkitError(f"{folder}: not a folder (KNOWN is a folder of photos named after the people)")
    people: dict[str, list[str]] = {}
    for entry in sorted(root.iterdir()):
        if entry.is_dir():
            people[entry.name.replace("_", " ")] = expand_folders([entry])
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            people.setdefault(entry.stem.replace("_", " "), []).append(str(entry))
    if not people:
        raise CnnkitError(f"{folder}: no photos of known people in it")
    return people


def run_match(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from ...faces.gallery import Gallery
    from ...images import expand_folders

    people = known_people(args.known)
    unknown = expand_folders(args.unknown)
    out = csv.writer(sys.stdout, lineterminator="\n")
    failed = False
    with tempfile.TemporaryDirectory(prefix="cnnkit-match-") as tmp, \
            Gallery(Path(tmp) / "known.db", create=True, encoder=args.encoder, device=args.device) as gallery:
        gallery.set_fpir(args.fpir)
        for name, photos in people.items():
            try:
                gallery.enroll(name, photos, if_name_taken="new")
            except CnnkitError as exc:
                print(f"cnnkit: skipping known person {name!r}: {exc}", file=sys.stderr)
        with progress_bar(total=len(unknown), unit="img", desc="match") as bar:
            results = gallery.identify(unknown, top_k=1, on_image=lambda _: bar.update())
    for result in results:
        if result.error is not None:
            print(f"cnnkit: {result.image}: {result.error}", file=sys.stderr)
            failed = True
        elif not result.faces:
            out.writerow([result.image, "no_persons_found", ""])
        for face in result.faces:
            out.writerow([result.image, face.name or "unknown_person",
                          "" if face.distance is None else f"{face.distance:.4f}"])
    return 2 if failed else 0
