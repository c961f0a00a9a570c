"""`cnnkit --help` and every command's `--help` answer without importing torch (bench/cli/startup.py times it)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

COMMANDS = [[], ["faces"], ["faces", "embed"], ["faces", "identify"], ["faces", "enroll"], ["faces", "compare"],
            ["faces", "match"], ["faces", "train"], ["faces", "watch"], ["style"], ["visualize"], ["ndconv"],
            ["ndconv", "ecg", "classify"], ["ndconv", "volumes", "predict"], ["serve"], ["weights", "list"], ["demo"]]

SCRIPT = f"""
import contextlib, io, sys
from cnnkit.cli.main import build_parser
for argv in {COMMANDS!r}:
    try:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            build_parser().parse_args(argv + ["--help"])
    except SystemExit as exc:
        assert exc.code == 0 and "usage:" in out.getvalue(), argv
print(sorted(m for m in ("torch", "numpy", "PIL", "fastapi") if m in sys.modules))
"""


def test_help_imports_neither_torch_nor_numpy():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
