"""What several commands share: option help texts, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

#: --device of the commands that run a model (default "auto").
DEVICE_HELP = "cpu, cuda or auto (default)"


def print_json_array(results: Iterable[Any]) -> None:
    """One JSON array on stdout, one object (`to_dict()`) per result, in order."""
    json.dump([r.to_dict() for r in results], sys.stdout)
    sys.stdout.write("\n")
