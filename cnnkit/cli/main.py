"""`cnnkit` command line: one sub-command module per application."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..errors import CnnkitError
from . import demo, faces, ndconv, serve, style, visualize, weights


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnkit", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (to stderr)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (weights, faces, style, visualize, ndconv, serve, demo):
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except CnnkitError as exc:
        print(f"cnnkit: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad settings: the library names the allowed choices
        print(f"cnnkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
