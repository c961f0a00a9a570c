"""`python -m cnnkit.service ...`: the same as `cnnkit serve ...`."""

from __future__ import annotations

import sys

from ..cli.main import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
