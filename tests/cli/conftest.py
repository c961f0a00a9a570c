"""What the command-line tests share: `run`, cnnkit's own main with the output it printed."""

from __future__ import annotations

from cnnkit.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`cnnkit ARGV` in this process: (exit status, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
