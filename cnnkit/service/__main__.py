"""`python -m cnnkit.service ...`: the same as `cnnkit serve ...`."""

from __future__ import annotations

import sys

from ..cli.serve import main

if __name__ == "__main__":
    sys.exit(main())
