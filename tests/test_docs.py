"""The examples in the README and in the shipped models' cards (and the generator's history) stay true to the code:
every command in their shell blocks and inline code names a real subcommand and real options of it, and every import
in the README's Python blocks resolves."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import click
import pytest

from lightweight_decoder.cli import main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "models" / "default").glob("*/*.md"))]  # the cards, and the generator's HISTORY.md


def _blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def _prose(path: Path) -> str:
    """A markdown file's text outside its fenced blocks."""
    return re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)


def _cli_calls(path: Path = README) -> list[list[str]]:
    """Each ``lightweight-decoder ...`` call in a markdown file's bash blocks and inline code, as tokens (comments
    cut, pipes split)."""
    calls = [shlex.split(span)[1:] for span in re.findall(r"`(lightweight-decoder [^`]+)`", _prose(path))]
    for block in _blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():  # continuation lines joined
            tokens = shlex.split(line, comments=True) + ["|"]
            while "|" in tokens:
                part, tokens = tokens[:tokens.index("|")], tokens[tokens.index("|") + 1:]
                if part and part[0] == "lightweight-decoder":
                    calls.append(part[1:])
    return calls


def _options(command: click.Command) -> set[str]:
    """Every spelling of every option ``command`` takes (``--adaln`` and ``--no-adaln`` alike), help included."""
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"-h", "--help"}


def _resolve(tokens: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The (sub)command the tokens name, its path, and the options they give it."""
    command, path = main, []
    rest = list(tokens)
    while isinstance(command, click.Group) and rest:
        while rest and rest[0].startswith("-"):  # the group's own options (``--threads 1``) come before its command
            if rest[0] in ("-h", "--help"):
                rest.pop(0)
                continue
            option = next((p for p in command.params if rest[0].split("=", 1)[0] in p.opts), None)
            called = f"`lightweight-decoder {' '.join(path)}`"
            assert option is not None, f"documented call: {called} has no option {rest[0]}"
            taken = rest.pop(0)
            if not getattr(option, "is_flag", False) and "=" not in taken and not option.count:
                rest.pop(0)
        if not rest:
            break
        name = rest.pop(0)
        called = f"`lightweight-decoder {' '.join(path + [name])}`"
        assert name in command.commands, f"documented call {called}: no such command"
        command, path = command.commands[name], path + [name]
    options = [t.split("=", 1)[0] for t in rest if t.startswith("-") and t != "-"]
    return command, path, options


def test_the_readme_has_cli_examples():
    calls = _cli_calls()
    assert len(calls) > 20
    assert ["encode", "A cat sat.", "--json"] in calls and ["decode", "-", "--json"] in calls  # both sides of a pipe


@pytest.mark.parametrize("doc, tokens", [(doc, tokens) for doc in DOCS for tokens in _cli_calls(doc)],
                         ids=lambda v: v.parent.name if isinstance(v, Path) else " ".join(v)[:60])
def test_every_documented_command_and_option_exists(doc, tokens):
    command, path, options = _resolve(tokens)
    unknown = [opt for opt in options if opt not in _options(command)]
    assert not unknown, f"{doc.relative_to(REPO)}: `lightweight-decoder {' '.join(path)}` has no option {unknown}"


def test_the_resolver_catches_a_wrong_option():
    command, path, options = _resolve(["train", "--corpus", "x.txt", "--no-such-flag", "3"])
    assert path == ["train"] and "--no-such-flag" in options
    assert "--no-such-flag" not in _options(command)
    with pytest.raises(AssertionError, match="no such command"):
        _resolve(["bank", "explode"])
    command, path, options = _resolve(["--threads", "1", "decode", "v.npy", "--json"])  # a group option first
    assert path == ["decode"] and options == ["--json"]


def test_every_readme_import_resolves():
    imports = [line.strip() for block in _blocks(README, "python") for line in block.splitlines()
               if re.match(r"\s*(from \S+ import |import )", line)]
    assert imports
    for line in imports:
        if line.startswith("import "):
            importlib.import_module(line.split()[1])
            continue
        module, names = re.match(r"from (\S+) import (.+)", line).groups()
        loaded = importlib.import_module(module)
        for name in names.split("#")[0].split(","):
            assert hasattr(loaded, name.strip()), f"README: `{line}`: {module} has no {name.strip()}"


def test_every_relative_link_in_the_docs_names_a_file():
    docs = [*DOCS, REPO / "bench" / "README.md"]
    broken = []
    for doc in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", _prose(doc)):
            if re.match(r"[a-z]+:|#", target):  # a web address or an anchor in the same file
                continue
            if not (doc.parent / target.split("#")[0]).exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert not broken, broken
