"""Every `cnnkit ...` command shown in README.md and docs/ is one the parser accepts.

Commands are read from the fenced blocks that are not Python or JSON; optional
parts written `[--like this]` are dropped, so a synopsis line is checked too.
The `ndconv shape` examples, which need no data, are run and their printed
output compared with the one the docs show.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from cnnkit.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
COMMAND = re.compile(r"^(?:\$ )?(?:\S*/)?cnnkit (.*)$")


def fenced_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(language, lines) of every fenced block."""
    blocks, language, lines = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip(), []
            else:
                blocks.append((language, lines))
                language = None
        elif language is not None:
            lines.append(line)
    return blocks


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for language, lines in fenced_blocks(doc.read_text()):
            if language not in ("", "sh", "bash", "console", "shell"):
                continue
            for line in "\n".join(lines).replace("\\\n", " ").splitlines():
                line = re.sub(r"\[[^\[\]]*\]", "", line.split(" #")[0])
                for part in re.split(r"&&|;| \| |>", line):  # "a|b" inside a word is a choice, not a pipe
                    match = COMMAND.match(part.strip())
                    if match:
                        found.append((doc.relative_to(ROOT).as_posix(), match.group(1).strip()))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) > 50, COMMANDS  # the extraction itself works
    assert {doc for doc, _ in COMMANDS} >= {"README.md", "docs/ndconv.md", "docs/service.md", "docs/style.md"}


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{d}: {c}"[:90] for d, c in COMMANDS])
def test_documented_command_parses(doc, command):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(shlex.split(command))
    except SystemExit as exc:
        assert exc.code == 0, f"{doc}: `cnnkit {command}` is refused: {err.getvalue().strip()}"


def test_documented_shape_examples_print_what_the_docs_show(capsys):
    text = (ROOT / "docs" / "ndconv.md").read_text()
    examples = [lines for _, lines in fenced_blocks(text) if lines and lines[0].startswith("$ cnnkit ndconv shape")]
    assert examples
    for lines in examples:
        assert main(shlex.split(lines[0][len("$ cnnkit "):])) == 0
        printed = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
        assert printed == [line.rstrip() for line in lines[1:]]
