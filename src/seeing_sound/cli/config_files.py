"""``--config FILE_OR_PRESET``: a command's options from a TOML file, and the resolved config every run writes.

Reading (before argparse parses the command line): the file's values for the command become the
subparser's defaults, converted and checked exactly as flags are (the action's ``type`` and
``choices``, then the :func:`~seeing_sound.config.option` checks of the config field behind it),
so flags on the command line override the file and required options may come from it. Keys are
the options' ``dest`` names (``topk``, ``lufs_range``, ``sources``), at the top of the file or in
a table named for the command (``[sonify]``, ``[pool.build]``); a key the command does not have,
a table no command has, or a bad value is a usage error naming the file and the key.

Writing (after a command returned 0): every option of the command (globals, secrets and
``shard_slice`` left out) in the command's table of ``config.toml`` in its output folder (see
:func:`config_path`), so ``seeing-sound COMMAND --config OUT/config.toml`` runs it again.
Presets are TOML files shipped in ``seeing_sound/presets/``. See docs/config.md.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from seeing_sound.cli.common import non_negative_float, positive_float, positive_int
from seeing_sound.cli.options import CHECKS
from seeing_sound.config import ConfigError, check_value

log = logging.getLogger("seeing_sound")

#: options every command takes, never part of a command's config
GLOBAL_DESTS = frozenset({"help", "version", "quiet", "log_level", "debug", "config"})
#: left out of the written config: a run's slice (every slice writes the same file; ``--config`` runs them all)
NOT_WRITTEN = frozenset({"shard_slice"})
#: option names that look like secrets but hold none: a column name; ``*_env`` options hold a variable's name
NOT_SECRETS = frozenset({"sidecar_key"})
#: words of an option name (split at "_") that mark a secret: ``hf_token``, ``api_key``, ``password``
SECRET_WORDS = frozenset({"key", "token", "password", "passwd", "secret", "credentials"})
_URL_CREDENTIALS = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://([^/\s]*@|[^\s]*\?)")
#: where a command's config.toml goes when it is not ``--out``: the folder it writes into
OUTPUT_DESTS = {("pool", "embed"): "pool", ("features",): "dataset"}
#: commands that write nothing of their own (a summary, a check, an upload, a server)
WRITES_NOTHING = frozenset({("pool", "info"), ("verify",), ("bench", "info"), ("push",), ("app",)})
CONFIG_NAME = "config.toml"
_INT_TYPES = (int, positive_int)
_FLOAT_TYPES = (float, non_negative_float, positive_float)


class ConfigFileError(ValueError):
    """A config file that cannot be used: missing, not TOML, an unknown key or a bad value (exit 2)."""


class _Bad(Exception):
    """One value's reason (the caller adds the file and the key)."""


@dataclass
class Loaded:
    """What ``--config`` brought to one command: the file, the given text, and each option's value."""

    given: str
    path: Path
    command: tuple[str, ...]
    values: dict[str, Any] = field(default_factory=dict)
    appended: dict[str, list] = field(default_factory=dict)  # append actions: filled in after parsing


# ---------------------------------------------------------------------------------------------------- parsers


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _subparsers_action(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def leaf_parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """``(command path, parser)`` of every command that runs (``("pool", "build")``, ``("sonify",)``)."""
    children = subcommands(parser)
    if not children and prefix:
        yield prefix, parser
    for name, child in children.items():
        yield from leaf_parsers(child, (*prefix, name))


def leaf_parser(parser: argparse.ArgumentParser, command: Sequence[str]) -> argparse.ArgumentParser | None:
    for name in command:
        child = subcommands(parser).get(name)
        if child is None:
            return None
        parser = child
    return None if subcommands(parser) else parser


def command_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, ...]:
    """The command path of parsed ``args`` (``("pool", "build")``)."""
    path: list[str] = []
    action = _subparsers_action(parser)
    while action is not None:
        name = getattr(args, action.dest, None)
        if name not in action.choices:
            break
        path.append(name)
        action = _subparsers_action(action.choices[name])
    return tuple(path)


def option_actions(leaf: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """dest -> action of the command's own options (the global ones left out)."""
    return {
        a.dest: a
        for a in leaf._actions
        if a.dest not in GLOBAL_DESTS and a.dest is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
    }


def table_name(command: Sequence[str]) -> str:
    return ".".join(command)


# ---------------------------------------------------------------------------------------------------- reading


def presets() -> dict[str, Path]:
    """Preset name -> its TOML file in the package (``paper``, ``demo``)."""
    folder = resources.files("seeing_sound") / "presets"
    return {p.name[: -len(".toml")]: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def resolve_source(given: str) -> Path:
    """An existing file, else a preset name; anything else is a :class:`ConfigFileError`."""
    path = Path(given).expanduser()
    if path.is_file():
        return path
    known = presets()
    if given in known:
        return known[given]
    if path.exists():
        raise ConfigFileError(f"--config: {given} is not a file")
    raise ConfigFileError(f"--config: no such file or preset: {given} (presets: {', '.join(sorted(known))})")


def toml_reader() -> Any:
    """``tomllib`` (Python >= 3.11), else ``tomli`` (its backport, for 3.10)."""
    for name in ("tomllib", "tomli"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ConfigFileError("config files need Python >= 3.11 or the tomli package: pip install tomli")


def read_toml(path: Path) -> dict:
    reader = toml_reader()
    try:
        with open(path, "rb") as fh:
            return reader.load(fh)
    except reader.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def _close(word: str, choices) -> str:
    near = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(n) for n in near)}?)" if near else ""


def _check_tables(data: Mapping[str, Any], parser: argparse.ArgumentParser, path: tuple[str, ...], where) -> None:
    """Every table names a command (``[sonify]``, ``[pool.build]``), whichever command reads the file."""
    children = subcommands(parser)
    for name, table in data.items():
        if not isinstance(table, dict):
            if path:  # a command group's table ([pool]) holds only its subcommands' tables
                tables = ", ".join(f"[{table_name((*path, s))}]" for s in children)
                raise ConfigFileError(f"{where}: [{table_name(path)}] holds {name!r}; options go in {tables}")
            continue
        child = children.get(name)
        if child is None:
            raise ConfigFileError(
                f"{where}: unknown table [{table_name((*path, name))}]: not a command{_close(name, children)}"
            )
        if subcommands(child):
            _check_tables(table, child, (*path, name), where)
            continue
        nested = next((k for k, v in table.items() if isinstance(v, dict)), None)
        if nested is not None:
            raise ConfigFileError(f"{where}: unknown table [{table_name((*path, name, nested))}]: not a command")


def command_values(data: Mapping[str, Any], parser: argparse.ArgumentParser, command: Sequence[str], where) -> dict:
    """The file's settings for ``command``: its top-level keys, then its table's (which win).

    A misspelt table is an error whichever command reads the file; other commands' tables are left alone.
    """
    _check_tables(data, parser, (), where)
    node: Any = data
    for name in command:
        node = node.get(name) if isinstance(node, dict) else None
    table = node if isinstance(node, dict) and command else {}
    return {**{k: v for k, v in data.items() if not isinstance(v, dict)}, **table}


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _scalar(action: argparse.Action, value: Any) -> Any:
    """One file value through the action's type and choices, as argparse would treat ``str(value)``."""
    if isinstance(value, (dict, list)):
        raise _Bad("must be a single value")
    kind = action.type
    if isinstance(value, bool):
        raise _Bad("true/false is for on/off options; this one takes a value")
    if kind in _INT_TYPES and not isinstance(value, int):
        raise _Bad("must be a whole number")
    if kind in _FLOAT_TYPES and not isinstance(value, (int, float)):
        raise _Bad("must be a number")
    if kind in (None, str) and not isinstance(value, str):
        raise _Bad('must be a string (in quotes: "...")')
    text = value if isinstance(value, str) else _text(value)
    try:
        result = kind(text) if callable(kind) else text
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        raise _Bad(str(exc) or "invalid value") from None
    if action.choices is not None and result not in action.choices:
        raise _Bad(f"must be one of {', '.join(map(str, action.choices))}")
    return result


def convert(action: argparse.Action, value: Any) -> Any:
    """A TOML value as this option's parsed value (a :class:`_Bad` says why it cannot be)."""
    if isinstance(action, argparse._StoreConstAction):  # store_true / store_false: the dest's own value
        if not isinstance(value, bool):
            raise _Bad("must be true or false")
        if not isinstance(action.const, bool):
            if value:
                return action.const
            return action.default
        return value
    if not isinstance(action, (argparse._StoreAction, argparse._AppendAction)):
        raise _Bad("cannot be set from a config file")
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*") or isinstance(action.nargs, int)
    if many:
        items = value if isinstance(value, list) else [value]
        if isinstance(action.nargs, int) and not isinstance(action, argparse._AppendAction):
            if len(items) != action.nargs:
                raise _Bad(f"must be a list of {action.nargs} values")
        elif action.nargs == "+" and not items and action.default != []:
            raise _Bad("needs at least one value")
        return [_scalar(action, v) for v in items]
    if isinstance(value, list):  # a list option (comma-separated on the command line: --metrics fid,iis)
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise _Bad("must be a list of plain values")
        value = ",".join(_text(v) for v in value)
    return _scalar(action, value)


def _checks(leaf: argparse.ArgumentParser) -> Mapping[str, Mapping]:
    return leaf.get_default(CHECKS) or {}


def load(parser: argparse.ArgumentParser, command: Sequence[str], given: str) -> Loaded:
    """Read ``given`` (a file or a preset) and convert and check its values for ``command``."""
    leaf = leaf_parser(parser, command)
    path = resolve_source(given)
    where = str(path)
    data = read_toml(path)
    loaded = Loaded(given=given, path=path, command=tuple(command))
    if leaf is None:
        return loaded
    actions = option_actions(leaf)
    checks = _checks(leaf)
    name = " ".join(("seeing-sound", *command))
    for key, value in command_values(data, parser, command, where).items():
        action = actions.get(key)
        if action is None:
            hint = _close(key, actions)
            if not hint and key.replace("-", "_") in actions:
                hint = f" (keys are option names with underscores: {key.replace('-', '_')!r})"
            raise ConfigFileError(f"{where}: unknown option {key!r} for `{name}`{hint}")
        try:
            converted = convert(action, value)
            if key in checks:
                items = converted if isinstance(action, argparse._AppendAction) else [converted]
                for item in items:
                    check_value(key, tuple(item) if isinstance(item, list) else item, checks[key])
        except _Bad as exc:
            raise ConfigFileError(f"{where}: {key}: {exc}, got {value!r}") from None
        except ConfigError as exc:
            raise ConfigFileError(f"{where}: {exc.with_name(key)}") from None
        if isinstance(action, argparse._AppendAction):
            loaded.appended[key] = converted
        else:
            loaded.values[key] = converted
    return loaded


def apply(parser: argparse.ArgumentParser, loaded: Loaded) -> None:
    """The file's values as the command's defaults: flags still override them; required options may be left out."""
    leaf = leaf_parser(parser, loaded.command)
    if leaf is None:
        return
    actions = option_actions(leaf)
    for dest in loaded.values:
        actions[dest].required = False
    leaf.set_defaults(**loaded.values)


def fill_appended(parser: argparse.ArgumentParser, args: argparse.Namespace, loaded: Loaded) -> None:
    """Repeatable options (``--vlm``) the command line did not give take the file's list (given, it replaces it)."""
    leaf = leaf_parser(parser, loaded.command)
    if leaf is None:
        return
    actions = option_actions(leaf)
    for dest, items in loaded.appended.items():
        if getattr(args, dest, None) is actions[dest].default:
            setattr(args, dest, list(items))
            loaded.values[dest] = getattr(args, dest)


def from_file(args: argparse.Namespace, dest: str) -> Path | None:
    """The config file ``dest``'s value came from (not overridden on the command line), else None."""
    loaded: Loaded | None = getattr(args, "_config_loaded", None)
    if loaded is None or dest not in loaded.values:
        return None
    return loaded.path if getattr(args, dest, None) is loaded.values[dest] else None


def prescan(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    """``--config``'s value and the command path in ``argv``, before parsing (the file must be read first)."""
    given = None
    tokens = list(argv[: argv.index("--")] if "--" in argv else argv)
    for i, token in enumerate(tokens):
        name, eq, value = token.partition("=")
        if len(name) < 4 or not "--config".startswith(name):  # argparse takes an unambiguous "--conf" too
            continue
        if eq:
            given = value
        elif i + 1 < len(tokens):
            given = tokens[i + 1]
    command: list[str] = []
    node, i = parser, 0
    while i < len(tokens) and subcommands(node):
        token = tokens[i]
        if token.startswith("-"):
            action = node._option_string_actions.get(token)
            i += 2 if action is not None and action.nargs != 0 and "=" not in token else 1
            continue
        child = subcommands(node).get(token)
        if child is None:
            break
        command.append(token)
        node, i = child, i + 1
    return given, tuple(command)


# ---------------------------------------------------------------------------------------------------- writing


def config_path(command: Sequence[str], args: argparse.Namespace) -> Path | None:
    """Where the command's resolved config goes: ``OUT/config.toml`` for an output folder (``--out``,
    the pool for ``pool embed``, the dataset for ``features``), ``NAME.config.toml`` beside a
    single-file output (``compose mix --out NAME.wav``); None for a command that writes nothing."""
    command = tuple(command)
    if command in WRITES_NOTHING:
        return None
    value = getattr(args, OUTPUT_DESTS.get(command, "out"), None)
    if not isinstance(value, (str, os.PathLike)):
        return None
    out = Path(value)
    if out.is_dir():
        return out / CONFIG_NAME
    if out.is_file():
        return out.with_name(f"{out.stem}.{CONFIG_NAME}")
    return None


def is_secret(dest: str) -> bool:
    """``api_key``, ``hf_token``: never written; ``api_key_env`` (a variable's name) and ``sidecar_key`` are none."""
    words = set(dest.lower().split("_"))
    return bool(words & SECRET_WORDS) and not dest.endswith("_env") and dest not in NOT_SECRETS


def _toml_value(value: Any) -> Any:
    """``value`` as TOML can hold it (tuples as lists, paths as text), or raise ``TypeError``."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_toml_value(v) for v in value]
    raise TypeError(f"{type(value).__name__} cannot be written to TOML")


def _none_word(action: argparse.Action) -> str | None:
    """The word the option takes for "no value" (``--max-audio-per-page all``), if it has one."""
    if not callable(action.type):
        return None
    for word in ("all", "none"):
        try:
            if action.type(word) is None:
                return word
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            continue
    return None


def resolved(parser: argparse.ArgumentParser, command: Sequence[str], args: argparse.Namespace) -> tuple[dict, list]:
    """Every option of the command as written to its config table, and comments on what was left out."""
    leaf = leaf_parser(parser, command)
    table: dict[str, Any] = {}
    notes: list[str] = []
    if leaf is None:
        return table, notes
    for dest, action in option_actions(leaf).items():
        if dest in NOT_WRITTEN or not hasattr(args, dest):
            continue
        flag = action.option_strings[0] if action.option_strings else dest.upper()
        if is_secret(dest):
            notes.append(f"{dest}: left out (a secret); give it again with {flag}")
            continue
        value = getattr(args, dest)
        if value is None:
            if action.default is None:
                continue  # the default again
            word = _none_word(action)
            if word is None:
                notes.append(f"{dest}: left out (no value, which TOML cannot hold)")
                continue
            value = word
        try:
            value = _toml_value(value)
        except TypeError as exc:
            notes.append(f"{dest}: left out ({exc})")
            continue
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and _URL_CREDENTIALS.search(t) for t in texts):
            notes.append(f"{dest}: left out (its URL may hold credentials); give it again with {flag}")
            continue
        table[dest] = value
    return table, notes


def _merge(data: dict, command: Sequence[str], table: dict) -> dict:
    node = data
    for name in command[:-1]:
        child = node.get(name)
        if not isinstance(child, dict):
            child = node[name] = {}
        node = child
    node[command[-1]] = table
    return data


def write_resolved(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path | None:
    """Write the command's resolved options into its table of ``config.toml`` (see :func:`config_path`).

    Other commands' tables in that file stay (``pool build`` and ``pool embed`` share a pool's
    file, ``sonify`` and ``features`` a dataset's). Written atomically, and only when its bytes
    change (every shard slice writes the same file); skipped in processes of rank > 0 (``accelerate``).
    """
    from seeing_sound.engine import atomic_write

    command = command_of(parser, args)
    target = config_path(command, args) if command else None
    if target is None or os.environ.get("RANK", "0") not in ("", "0"):
        return None
    table, notes = resolved(parser, command, args)
    data: dict = {}
    old = None
    if target.exists():
        reader = toml_reader()  # other commands' tables must be read to be kept
        try:
            old = target.read_bytes()
            data = reader.loads(old.decode("utf-8"))
        except (OSError, UnicodeDecodeError, reader.TOMLDecodeError):
            log.warning("%s is not a config file seeing-sound can read; replacing it", target)
            data = {}
    text = dumps(_merge(data, command, table), notes={table_name(command): notes})
    if old == text.encode("utf-8"):
        return target
    with atomic_write(target, "w") as fh:
        fh.write(text)
    return target


# ---------------------------------------------------------------------------------------------------- TOML


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # shortest text that reads back as the same float
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"{type(value).__name__} cannot be written to TOML")


def dumps(data: Mapping[str, Any], *, notes: Mapping[str, Sequence[str]] | None = None) -> str:
    """TOML for the subset config files use: strings, numbers, booleans, lists of those, tables.

    Tables are written in sorted order of their names, each after a comment saying how to rerun
    its command; ``notes`` adds comment lines to a table (what was left out, and why).
    """
    notes = notes or {}
    lines = [f"{_key(k)} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]

    def tables(node: Mapping[str, Any], path: tuple[str, ...]):
        for name in sorted(k for k, v in node.items() if isinstance(v, dict)):
            child = node[name]
            sub = (*path, name)
            scalars = {k: v for k, v in child.items() if not isinstance(v, dict)}
            if scalars or not any(isinstance(v, dict) for v in child.values()):
                if lines:
                    lines.append("")
                lines.append(f"# seeing-sound {' '.join(sub)} --config THIS_FILE runs it again")
                lines.extend(f"# {note}" for note in notes.get(".".join(sub), ()))
                lines.append("[" + ".".join(_key(p) for p in sub) + "]")
                lines.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars.items())
            tables(child, sub)

    tables(data, ())
    return "\n".join(lines) + "\n"
