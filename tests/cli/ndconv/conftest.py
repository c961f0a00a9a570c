"""`cli`: run `cnnkit ndconv ...` through cnnkit's own main."""

from __future__ import annotations

import pytest

from cnnkit.cli import main as cli_main


@pytest.fixture
def cli(capsys):
    """Run `cnnkit ndconv ...` through cnnkit's own main."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli_main.main(["ndconv", *argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run
