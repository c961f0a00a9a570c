"""The `cnnkit` entry point: a light parser, -v anywhere, one-line errors, tracebacks for bugs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import cnnkit.cli
from cnnkit.cli.main import build_parser, main
from cnnkit.cli.ndconv import shape
from cnnkit.errors import SettingsError
from tests.conftest import ROOT

CLI = Path(cnnkit.cli.__file__).parent


def python(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_help_of_every_command_imports_no_torch():
    """Building the parser and printing every command's help loads none of the application code."""
    code = """
import argparse, contextlib, io, sys
import cnnkit.cli.main as m

def walk(parser, path):
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + [name])

paths = list(walk(m.build_parser(), []))
for path in paths:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        m.main(path + ["--help"])
print(len(paths), *(name in sys.modules for name in ("torch", "numpy", "fastapi")))
"""
    done = python("-c", code)
    assert done.returncode == 0, done.stderr
    count, *loaded = done.stdout.split()
    assert int(count) > 40 and loaded == ["False", "False", "False"]


@pytest.mark.parametrize("module", ["cnnkit", "cnnkit.cli.main"])
def test_python_dash_m(module):
    done = python("-m", module, "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: cnnkit [-h] [--version] [-v] COMMAND")


@pytest.mark.parametrize("argv", [
    ["-v", "faces", "embed", "x.jpg"],
    ["faces", "embed", "x.jpg", "-v"],
    ["faces", "-v", "embed", "x.jpg"],
    ["ndconv", "ecg", "train", "--verbose"],
    ["serve", "--gallery", "g.db", "-v"],
    ["serve", "keys", "list", "-v"],
])
def test_verbose_before_or_after_the_command(argv):
    assert build_parser().parse_args(argv).verbose is True


def test_quiet_without_verbose():
    assert build_parser().parse_args(["faces", "embed", "x.jpg"]).verbose is False


def _raise(exc: BaseException):
    def run(args):
        raise exc
    return run


def test_cnnkit_error_is_one_line_with_status_2(monkeypatch, capsys):
    monkeypatch.setattr(shape, "run_shape", _raise(SettingsError("--kernel is wrong; choose 3 or 5")))
    assert main(["ndconv", "shape", "--input", "14", "--kernel", "5"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "cnnkit: error: --kernel is wrong; choose 3 or 5\n"


def test_other_errors_are_bugs_and_keep_their_traceback(monkeypatch):
    monkeypatch.setattr(shape, "run_shape", _raise(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):
        main(["ndconv", "shape", "--input", "14", "--kernel", "5"])


def test_interrupt(monkeypatch, capsys):
    monkeypatch.setattr(shape, "run_shape", _raise(KeyboardInterrupt()))
    assert main(["ndconv", "shape", "--input", "14", "--kernel", "5"]) == 130
    assert capsys.readouterr().err == "cnnkit: interrupted\n"


def test_no_command_module_imports_the_entry_point():
    """cnnkit.cli.main imports the commands; none of them imports it back, not even inside a function."""
    for path in sorted(CLI.rglob("*.py")):
        if path == CLI / "main.py":
            continue
        package = ".".join(("cnnkit", *path.parent.relative_to(CLI.parent).parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package if node.level else ""
                module = ".".join(filter(None, (base, node.module)))
                names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert "cnnkit.cli.main" not in names, f"{path} imports cnnkit.cli.main"
