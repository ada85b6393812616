"""Every default says where it comes from: the paper, PixArt-α, or ours (the rule: docs/paper-fidelity.md).

A setting's help ends with ``(paper: WHERE)``, ``(PixArt-α[: WHAT])`` or ``(ours[: WHY])``; the CLI shows
it in ``--help`` because the help is the config field's. The table in docs/paper-fidelity.md names only
options that exist, and lists every option whose marker is more than a bare ``(ours)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from seeing_sound.app.core import AppConfig
from seeing_sound.bench.config import BenchConfig
from seeing_sound.cli import build_parser
from seeing_sound.compose import ComposeConfig
from seeing_sound.concepts.config import ConceptsConfig
from seeing_sound.config import Config
from seeing_sound.engine.config import EngineConfig
from seeing_sound.evaluation.config import EvaluateConfig
from seeing_sound.features.config import FeaturesConfig
from seeing_sound.leakage.config import LeakageConfig
from seeing_sound.model.training.config import TrainConfig
from seeing_sound.pairs.config import PairsImportConfig
from seeing_sound.pool.config import EmbedConfig, PoolBuildConfig
from seeing_sound.retrieval.config import RetrieveConfig
from seeing_sound.scoring.config import ScoreConfig
from seeing_sound.sonify.config import SonifyConfig

MARKER = r"\((?:paper|PixArt-α|ours)(?:: [^()]+)?\)"
BARE = "(ours)"  # mechanics and arbitrary choices: no reason to give, no table row
#: the global options every command accepts, and argparse's own
SKIP = {"-h", "--help", "--version", "--quiet", "--log-level", "--debug", "--config"}
#: the publishing commands: they copy finished files to a folder or the Hub, nothing in them has a
#: counterpart in the paper, and their options are not marked (the rule's one exception)
PUBLISHING = {"export", "push"}
#: every config whose fields carry a marker (the publishing commands' ExportConfig/PushConfig do not)
CONFIGS = (
    PoolBuildConfig,
    EmbedConfig,
    ConceptsConfig,
    RetrieveConfig,
    SonifyConfig,
    FeaturesConfig,
    TrainConfig,
    EvaluateConfig,
    BenchConfig,
    LeakageConfig,
    PairsImportConfig,
    ComposeConfig,
    EngineConfig,
    AppConfig,
    ScoreConfig,
)
DOC = Path(__file__).resolve().parents[1] / "docs" / "paper-fidelity.md"
TABLE_HEADING = "## Defaults: where each comes from"


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) of every command and subcommand, the top-level parser first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


def _field_helps() -> dict[str, set[str]]:
    """{field name: the helps that field has in any Config subclass} (as ``--help`` escapes them)."""
    out: dict[str, set[str]] = {}
    stack = list(Config.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if not cls.__module__.startswith("seeing_sound."):
            continue  # a test's own Config subclass
        for f in dataclasses.fields(cls):
            if f.metadata.get("help"):
                out.setdefault(f.name, set()).add(f.metadata["help"].replace("%", "%%"))
    return out


def _config_options():
    """(command, flag, help) of every option whose help is a Config field's (its own text, not a CLI override)."""
    helps = _field_helps()
    for path, parser in _commands(build_parser()):
        if not path:
            continue
        for action in parser._actions:
            if not action.option_strings or SKIP & set(action.option_strings):
                continue
            text = action.help or ""
            if any(h in text for h in helps.get(action.dest, ())):
                yield " ".join(path), action.option_strings[0], text


def _table() -> list[tuple[str, str, int]]:
    """(command, flag, line number) of every row of the defaults table in docs/paper-fidelity.md."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(TABLE_HEADING)
    rows = []
    for number, line in enumerate(lines[start + 1 :], start + 2):
        if line.startswith("## "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) < 2 or cells[0] in ("command", "") or set(cells[0]) <= {"-", " "}:
            continue
        flags = re.findall(r"`(--[a-z0-9-]+)", cells[1])
        assert flags, f"docs/paper-fidelity.md:{number}: no `--option` in {cells[1]!r}"
        for command in (c.strip() for c in cells[0].replace("`", "").split(",")):
            rows.extend((command, flag, number) for flag in flags)
    return rows


def test_every_config_option_says_where_its_default_comes_from():
    checked, unmarked = 0, []
    for command, flag, text in _config_options():
        if command.split()[0] in PUBLISHING:
            continue
        checked += 1
        if not re.search(MARKER, text):
            unmarked.append(f"{command} {flag}: {text}")
    assert checked > 150  # the walk found the config options (a vacuous pass would check none)
    assert not unmarked, "options without (paper: ...), (PixArt-α...) or (ours...):\n" + "\n".join(unmarked)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_config_field_ends_with_a_marker(cls):
    """Library users read the same help (field metadata, reference docs); fields off the CLI too."""
    bad = []
    for f in dataclasses.fields(cls):
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        nested = isinstance(f.type, str) and f.type.endswith("Config")  # its own fields carry the markers
        if no_default or nested:
            continue
        if not re.search(MARKER + "$", f.metadata.get("help", "")):
            bad.append(f"{cls.__name__}.{f.name}: {f.metadata.get('help', '')!r}")
    assert not bad, "\n".join(bad)


def test_the_defaults_table_names_real_options_and_every_reasoned_one():
    options = {(command, flag): text for command, flag, text in _config_options()}
    parsers = {" ".join(path): parser for path, parser in _commands(build_parser()) if path}
    rows = _table()
    assert len(rows) > 50
    missing = [
        f"docs/paper-fidelity.md:{n}: {command} {flag}"
        for command, flag, n in rows
        if command not in parsers or flag not in parsers[command]._option_string_actions
    ]
    assert not missing, "the table names options that do not exist:\n" + "\n".join(missing)
    listed = {(command, flag) for command, flag, _ in rows}
    unlisted = [
        f"{command} {flag}: {re.findall(MARKER, text)[-1]}"
        for (command, flag), text in options.items()
        if command.split()[0] not in PUBLISHING
        and re.search(MARKER, text)
        and re.findall(MARKER, text)[-1] != BARE
        and (command, flag) not in listed
    ]
    assert not unlisted, "options with a sourced or reasoned default missing from the table:\n" + "\n".join(unlisted)
