"""`cnnkit ndconv shape|ecg|volumes|video`: convolution in 1D (ECG), 3D (CT volumes, video clips)."""

from __future__ import annotations

import argparse

from . import ecg, shape, video, volumes


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ndconv", help="convolution beyond images: 1D ECG, 3D CT volumes and video")
    sub = parser.add_subparsers(dest="ndconv_command", metavar="ACTION", required=True)
    for module in (shape, ecg, volumes, video):
        module.add_parser(sub)
