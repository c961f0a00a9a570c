"""Options that several `cnnkit faces` actions share: the detection pipeline's and --gallery."""

from __future__ import annotations

import argparse
import os

from ...faces.settings import DEFAULT_ENCODER, MIN_FACE_SIZE
from ..common import DEVICE_HELP, positive_float, positive_int


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """The detector and encoder options of `faces embed` and `faces evaluate`."""
    parser.add_argument("--no-flip", dest="flip", action="store_false",
                        help="encode each face once (default: average with its mirror image)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per detector batch (default 32)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--encoder", default=DEFAULT_ENCODER,
                        help=f"encoder: a weights name (`cnnkit weights list`) or the folder of a saved encoder "
                             f"(default {DEFAULT_ENCODER})")
    parser.add_argument("--min-face-size", type=positive_float, default=MIN_FACE_SIZE,
                        help="smallest face to look for, in pixels (default 40; the detector works down to 20)")


def add_gallery_option(parser: argparse.ArgumentParser) -> None:
    """--gallery G, needed unless $CNNKIT_GALLERY names one (cli/main.py says so when neither is there)."""
    parser.add_argument("--gallery", default=os.environ.get("CNNKIT_GALLERY"), metavar="G",
                        help="gallery: a SQLite file, milvus://HOST:PORT/COLLECTION or milvus-lite://PATH.db "
                             "(default $CNNKIT_GALLERY)")
    parser.set_defaults(needs_gallery=True)
