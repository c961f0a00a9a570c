"""`cnnkit serve` and `python -m cnnkit.service`, which is the same command."""

from __future__ import annotations

import subprocess
import sys

from tests.cli.conftest import run
from tests.conftest import ROOT


def test_python_dash_m_service_is_cnnkit_serve():
    done = subprocess.run([sys.executable, "-m", "cnnkit.service", "--help"], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: cnnkit serve [-h] [-v] [--gallery GALLERY] [--host HOST]")
    for option in ("--port PORT", "--workers WORKERS", "--max-upload-mb", "--batch-wait-ms", "--ssl-certfile",
                   "--no-access-log", "keys"):
        assert option in done.stdout


def test_keys_without_a_gallery_is_one_line(capsys, monkeypatch):
    monkeypatch.delenv("CNNKIT_GALLERY", raising=False)
    code, out, err = run(capsys, "serve", "keys", "list")
    assert code == 2 and out == ""
    assert err == "cnnkit: error: say which gallery: --gallery G (or set $CNNKIT_GALLERY)\n"
