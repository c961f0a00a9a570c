"""What several commands share: option help texts, JSON output."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

#: --device of the commands that run a model (default "auto").
DEVICE_HELP = "cpu, cuda or auto (default)"


def print_json_array(results: Iterable[Any]) -> None:
    """One JSON array on stdout, one object (`to_dict()`) per result, in order."""
    json.dump([r.to_dict() for r in results], sys.stdout)
    sys.stdout.write("\n")


def argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An option type from a library parser: its error message (a ValueError's) becomes argparse's."""
    def wrapped(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapped.__name__ = getattr(parse, "__name__", "value")
    return wrapped


# Types for numeric options: a bad value is refused by the parser, with the option named, before anything runs.

def _number(kind: Callable[[str], Any], test: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if (isinstance(value, float) and not math.isfinite(value)) or not test(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "a whole number >= 1")
nonnegative_int = _number(int, lambda v: v >= 0, "a whole number >= 0")
positive_float = _number(float, lambda v: v > 0, "a number > 0")
nonnegative_float = _number(float, lambda v: v >= 0, "a number >= 0")
open_fraction = _number(float, lambda v: 0 < v < 1, "a number between 0 and 1 (both excluded)")
fraction = _number(float, lambda v: 0 <= v <= 1, "a number between 0 and 1")
port = _number(int, lambda v: 1 <= v <= 65535, "a port number (1-65535)")
