"""Every command line in README.md and docs/*.md parses: ``unseen ...`` with unseen's own
argument parser, ``python benchmarks/<script>.py ...`` with the script's (which must exist).

Commands are the lines of the fenced shell blocks (continuations joined, comments and
prompts dropped, leading ``VAR=value`` and wrappers such as ``time`` skipped); lines with
placeholders (``...``, ``<name>``, ``[--option]``, ``[a | b]``) are not commands and are
skipped. Nothing is run: parsing stops at the parser (a successful parse raises
:class:`_Parsed`). Inline mentions are names, not command lines, but a ``benchmarks/`` script
a page names anywhere must exist."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# every fenced block (any language, so a yaml block's closing fence is not taken as an opening
# one); the shell ones hold commands
_FENCE = re.compile(r"```([\w-]*)\n(.*?)```", re.S)
_SHELL = {"", "bash", "sh", "shell", "console"}
_SCRIPT = re.compile(r"benchmarks/\w+\.py")


def _commands(path: Path) -> list[tuple[str, str]]:
    """(where, command line) of the commands in a markdown file."""
    text = path.read_text()
    found = []
    for lang, block in _FENCE.findall(text):
        if lang not in _SHELL:
            continue
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip().removeprefix("$ ")
            if line and not line.startswith("#"):
                found.append(line)
    out = []
    for line in found:
        words = _words(line)
        if words:
            out.append((f"{path.name}: {line[:60]}", " ".join(words)))
    return out


def _words(line: str) -> list[str] | None:
    """The command's words from ``unseen`` / ``benchmarks/x.py`` on, or None."""
    if "..." in line or re.search(r"\[--|\[[^\]]*\||<\w+>", line):
        return None
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    for i, w in enumerate(words):
        if w.endswith("unseen") and "/" not in w.removesuffix("unseen").strip("./venbi"):
            return ["unseen", *words[i + 1 :]]
        if w.startswith("benchmarks/") and w.endswith(".py"):
            return [w, *words[i + 1 :]]
        if (
            "=" in w
            or w in ("python", "python3", "/usr/bin/time")
            or w.endswith(("/python", "/heavy", "time"))
        ):
            continue
        return None
    return None


COMMANDS = sorted({c for doc in DOCS for c in _commands(doc)})


class _Parsed(Exception):
    """Raised instead of running: the command line parsed."""


@pytest.fixture
def parse_only(monkeypatch):
    real = argparse.ArgumentParser.parse_args

    def parse(self, args=None, namespace=None):
        real(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse)


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_benchmark_script_a_page_names_exists(doc):
    missing = sorted({s for s in _SCRIPT.findall(doc.read_text()) if not (ROOT / s).is_file()})
    assert not missing, f"{doc.name} names benchmark scripts that do not exist: {missing}"


def test_the_docs_have_commands():
    assert len(COMMANDS) > 50
    assert any(c.startswith("unseen bench configs/studies/") for _, c in COMMANDS)


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_command_line_parses(where, command, parse_only, monkeypatch):
    words = shlex.split(command)
    if words[0] == "unseen":
        from unseen.cli import main

        with pytest.raises(_Parsed):
            main(words[1:])
        return
    script = ROOT / words[0]
    assert script.is_file(), f"{where}: {words[0]} does not exist"
    monkeypatch.syspath_prepend(str(script.parent))
    monkeypatch.setattr(sys, "argv", [str(script), *words[1:]])
    spec = importlib.util.spec_from_file_location(f"_doc_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(_Parsed):
        module.main(words[1:]) if _takes_argv(module.main) else module.main()


def _takes_argv(fn) -> bool:
    import inspect

    return bool(inspect.signature(fn).parameters)
