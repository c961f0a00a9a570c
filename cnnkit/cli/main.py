"""cnnkit: face verification and recognition with one-shot enrollment, neural style transfer,
what CNN units learn, and 1D/3D convnets."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .. import __version__
from ..errors import CnnkitError
from . import demo, faces, ndconv, serve, style, visualize, weights

VERBOSE_HELP = "log what happens (to stderr)"


class CommandParser(argparse.ArgumentParser):
    """The parser of every sub-command: takes -v/--verbose too, so that it may follow the command."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # SUPPRESS: left out, it keeps what the parser above set (`cnnkit -v faces embed ...`).
        self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnkit", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=CommandParser)
    for module in (weights, faces, style, visualize, ndconv, serve, demo):
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `cnnkit ARGV`: a `CnnkitError` is one line on stderr and exit status 2; anything else is a bug."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "needs_gallery", False) and not args.gallery:  # the one check of the commands that need one
        print("cnnkit: error: say which gallery: --gallery G (or set $CNNKIT_GALLERY)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except CnnkitError as exc:
        print(f"cnnkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cnnkit faces people --json | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that Python's exit flush does not fail again
        return 0


if __name__ == "__main__":
    sys.exit(main())
