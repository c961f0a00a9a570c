"""`cnnkit faces ACTION`: registers the face actions, one module per group of them."""

from __future__ import annotations

import argparse

from . import compare, distributed, embed, evaluate, gallery, train, watch


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("faces", help="face detection, encoding, verification")
    sub = parser.add_subparsers(dest="faces_command", metavar="ACTION", required=True)
    for module in (embed, compare, evaluate, gallery, distributed, watch, train):
        module.add_parser(sub)
