"""The guides keep their promises: links and images resolve, the examples run, the CLI is covered.

Checked in README.md and docs/*.md:

- every relative link and image names a file that exists, and every ``#anchor`` a heading of the
  file it points into (GitHub's heading slugs);
- every example command runs. The convention: in a fenced ```` ```console ```` block, each line
  that starts with ``$ `` is run, in order, and must be ``python -m study ...`` or
  ``python -m analysis ...`` (optionally led by ``NAME=value`` settings, and ending in
  ``# exits N`` when it is meant to fail). ``text`` blocks (synopses, recipes on the reader's own
  files) are never run. Each guide's commands run against its own copy of one demo database
  (``python -m study demo --tokens FILE``), from a folder whose ``data/`` and ``tests/`` are the
  project's, with ``$COORDINATOR_TOKEN`` and ``$STATISTICIAN_TOKEN`` set to the demo people's
  tokens;
- every ``python -m study`` and ``python -m analysis`` command (and sub-command) has its
  section in docs/cli.md, and every option of it is named there.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

from analysis.cli import main as analysis_main
from study.cli import main as study_main

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CLI_DOC = ROOT / "docs" / "cli.md"
FENCE = re.compile(r"^(`{3,})(\S*)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
EXITS = re.compile(r"\s+#\s*exits?\s+(\d+)\s*$")
SETTING = re.compile(r"^[A-Z_][A-Z0-9_]*=")
TOKEN_VARIABLES = {
    "COORDINATOR_TOKEN": "coordinator@demo.clinval.example",
    "STATISTICIAN_TOKEN": "statistician@demo.clinval.example",
}
"""Shell variables the examples may use -> the demo person whose token they hold."""
PROGRAMS: dict[str, Callable[[list[str]], int]] = {
    "study": study_main,
    "analysis": analysis_main,
}


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- reading Markdown ------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    info: str  # the fence's info string: console, text, toml, ...
    first_line: int  # 1-based number of the block's first content line
    lines: tuple[str, ...]


def split_markdown(text: str) -> tuple[list[tuple[int, str]], list[Block]]:
    """The numbered lines outside fenced blocks, and the fenced blocks themselves."""
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    fence: tuple[str, str, int] | None = None
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line)
        if fence is None and opened:
            fence, body = (opened.group(1), opened.group(2), number + 1), []
        elif fence is not None and line.strip() == fence[0]:
            blocks.append(Block(fence[1], fence[2], tuple(body)))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            prose.append((number, line))
    assert fence is None, f"a fenced block opened on line {fence[2] - 1} is never closed"
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[|\]\([^)]*\)", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = split_markdown(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for _, line in prose:
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if heading:
            base = slug(heading.group(1))
            name, n = base, 0
            while name in found:  # GitHub numbers repeated headings
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link and image outside code."""
    prose, _ = split_markdown(path.read_text(encoding="utf-8"))
    found = []
    for number, line in prose:
        line = re.sub(r"`[^`]*`", "", line)  # inline code is not a link
        found += [(number, m.group(1)) for m in LINK.finditer(line)]
    return found


# --- links and images ------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_relative_link_and_image_resolves(doc: Path) -> None:
    problems = []
    for number, target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if not resolved.is_file():
            problems.append(f"line {number}: {target}: no file {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"line {number}: {target}: no heading #{anchor} in {resolved.name}")
    assert not problems, f"{_name(doc)}:\n" + "\n".join(problems)


SOURCE_PATH = re.compile(r"`((?:study|analysis|pages|benchmarks|tests|docs|deploy)/[\w/.-]*)`")
"""A path in the project named in code style (`study/protocol.py`, `study/cli/`)."""


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_source_path_named_exists(doc: Path) -> None:
    """Modules move as they are split: a guide naming one sends a newcomer nowhere."""
    missing = [
        f"line {number}: {path}"
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1)
        for path in SOURCE_PATH.findall(line)
        if not (ROOT / path).exists()
    ]
    assert not missing, f"{_name(doc)} names paths that do not exist:\n" + "\n".join(missing)


def test_the_guides_are_linked_from_the_readme() -> None:
    readme = {target for _, target in links(ROOT / "README.md")}
    for doc in DOCS[1:]:
        assert f"docs/{doc.name}" in readme, f"README.md does not link docs/{doc.name}"


def test_the_readme_stays_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines < 200, f"README.md has {lines} lines: move the detail into docs/"


# --- the example commands --------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    doc: Path
    line: int
    text: str
    settings: dict[str, str]
    program: str
    argv: list[str]
    exit_code: int

    def __str__(self) -> str:
        return f"{_name(self.doc)}, line {self.line}: {self.text}"


def parse_example(doc: Path, line: int, text: str, tokens: dict[str, str]) -> Example:
    """One ``$ ...`` line: its settings, the program, its arguments and the exit it promises."""
    expected = EXITS.search(text)
    command = text[: expected.start()] if expected else text

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        assert name in tokens, f"{_name(doc)}, line {line}: unknown variable ${name}"
        return tokens[name]

    words = shlex.split(re.sub(r"\$\{(\w+)\}|\$(\w+)", value, command))
    settings = {}
    while words and SETTING.match(words[0]):
        name, _, setting = words.pop(0).partition("=")
        settings[name] = setting
    assert words[:2] == ["python", "-m"] and words[2:3] and words[2] in PROGRAMS, (
        f"{_name(doc)}, line {line}: only `python -m study` and `python -m analysis` lines are "
        f"run; show other commands in a ```text block: {text}"
    )
    return Example(
        doc, line, text, settings, words[2], words[3:], int(expected.group(1)) if expected else 0
    )


def examples(doc: Path, tokens: dict[str, str]) -> list[Example]:
    _, blocks = split_markdown(doc.read_text(encoding="utf-8"))
    found = []
    for block in blocks:
        if block.info != "console":
            continue
        for offset, line in enumerate(block.lines):
            if line.startswith("$ "):
                found.append(parse_example(doc, block.first_line + offset, line[2:], tokens))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_block_says_whether_its_commands_run(doc: Path) -> None:
    """A command is either run (``$ `` in a ``console`` block) or plainly not (a ``text``
    block): no block without a language, no ``bash`` block, no ``console`` command without
    its ``$``."""
    _, blocks = split_markdown(doc.read_text(encoding="utf-8"))
    problems = []
    for block in blocks:
        where = f"{_name(doc)}, line {block.first_line - 1}"
        if block.info in ("", "bash", "sh", "shell"):
            problems.append(f"{where}: a ```{block.info} block; use ```console or ```text")
        if block.info == "console":
            problems += [
                f"{where}: a command without its '$ ': {line}"
                for line in block.lines
                if line.startswith("python -m ")
            ]
    assert not problems, "\n".join(problems)


DOCS_WITH_EXAMPLES = [d for d in DOCS if examples(d, dict.fromkeys(TOKEN_VARIABLES, "t"))]


def test_the_guides_show_commands_that_are_run() -> None:
    assert len(DOCS_WITH_EXAMPLES) >= 4, [_name(d) for d in DOCS_WITH_EXAMPLES]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One demo database (both demo studies, simulated ratings) and its people's tokens by
    shell variable; every guide runs against a copy."""
    folder = tmp_path_factory.mktemp("docs-demo")
    db, tokens = folder / "demo.duckdb", folder / "tokens.json"
    assert study_main(["demo", "--db", str(db), "--tokens", str(tokens)]) == 0
    by_email = json.loads(tokens.read_text(encoding="utf-8"))
    return db, {name: by_email[email] for name, email in TOKEN_VARIABLES.items()}


@pytest.mark.parametrize("doc", DOCS_WITH_EXAMPLES, ids=_name)
def test_every_example_command_runs(
    doc: Path,
    demo: tuple[Path, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, tokens = demo
    db = tmp_path / "demo.duckdb"
    shutil.copy(source, db)
    for shared in ("data", "tests"):
        (tmp_path / shared).symlink_to(ROOT / shared, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLINVAL_DB", str(db))
    monkeypatch.delenv("CLINVAL_TOKEN", raising=False)
    for example in examples(doc, tokens):
        with monkeypatch.context() as patch:
            for name, setting in example.settings.items():
                patch.setenv(name, setting)
            try:
                code = PROGRAMS[example.program](example.argv)
            except SystemExit as exit_:  # argparse refusing the command line
                code = exit_.code if isinstance(exit_.code, int) else 2
        output = capsys.readouterr()
        assert code == example.exit_code, (
            f"{example}\nexit {code}, documented {example.exit_code}\n"
            f"{output.out[-2000:]}\n{output.err[-2000:]}"
        )


# --- the command-line reference covers every command -----------------------------------------


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def cli_parser(main: Callable[[list[str]], int]) -> argparse.ArgumentParser:
    """The parser ``main`` builds, caught as it parses (so the test needs no private name)."""

    def catch(self: argparse.ArgumentParser, *_args, **_kwargs):
        raise _Parsed(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", catch)
        with pytest.raises(_Parsed) as parsed:
            main(["--help"])
    return parsed.value.parser


def commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command and sub-command with its parser, e.g. ``status``, ``audit``,
    ``audit verify``."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((f"{prefix}{name}", sub))
                found += commands(sub, f"{prefix}{name} ")
    return found


def cli_sections() -> dict[str, str]:
    """docs/cli.md's command sections: ``### `name` `` or ``#### `name sub` `` -> its text."""
    text = CLI_DOC.read_text(encoding="utf-8")
    parts = re.split(r"(?m)^#{2,4} ", text)
    return {m.group(1): part for part in parts if (m := re.match(r"`([^`]+)`\n", part)) is not None}


SHARED_OPTIONS = {"-h", "--help", "--db", "--token"}
"""Options every ``python -m study`` command takes, documented once at the top of cli.md."""


@pytest.mark.parametrize(
    ("program", "main"),
    [("study", study_main), ("analysis", analysis_main)],
    ids=["study", "analysis"],
)
def test_every_command_has_its_section_in_the_cli_reference(program: str, main) -> None:
    found = commands(cli_parser(main))
    assert found, f"no commands found in python -m {program}'s parser"
    headings = anchors(CLI_DOC)
    missing = [name for name, _ in found if slug(f"`{name}`") not in headings]
    assert not missing, f"docs/cli.md has no section for python -m {program} {missing}"
    sections = cli_sections()
    undocumented = [
        f"{name} {option}"
        for name, parser in found
        for action in parser._actions
        for option in action.option_strings
        if option not in SHARED_OPTIONS and f"`{option}" not in sections[name]
    ]
    assert not undocumented, f"docs/cli.md does not describe python -m {program} {undocumented}"
