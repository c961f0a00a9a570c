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
    assert done.stdout.startswith("usage: cnnkit serve [-h] [-v] [--gallery GALLERY] [--keys FILE]")
    for option in ("--port PORT", "--workers WORKERS", "--max-upload-mb", "--batch-wait-ms", "--ssl-certfile",
                   "--no-access-log", "keys"):
        assert option in done.stdout


def test_keys_without_a_gallery_is_one_line(capsys, monkeypatch):
    monkeypatch.delenv("CNNKIT_GALLERY", raising=False)
    monkeypatch.delenv("CNNKIT_KEYS", raising=False)
    code, out, err = run(capsys, "serve", "keys", "list")
    assert code == 2 and out == ""
    assert err == ("cnnkit: error: say where the keys are: --gallery G (a SQLite gallery) or --keys FILE "
                   "(or set $CNNKIT_GALLERY / $CNNKIT_KEYS)\n")


def test_keys_of_a_milvus_gallery_need_a_keys_file(capsys):
    code, out, err = run(capsys, "serve", "--gallery", "milvus://127.0.0.1:1/people", "keys", "list")
    assert code == 2 and out == ""
    assert "a Milvus gallery keeps no API keys" in err and "--keys FILE" in err
