"""Command-line options generated from config dataclasses, so every default lives in one place.

:func:`add_config_options` turns fields into ``--flags`` (type, default, help and choices read
from the field and its :func:`seeing_sound.config.option` metadata); :func:`config_from_args`
builds the config back from the parsed namespace. Each call records field -> flag on the
parser, so ``main`` can name the flag when a :class:`~seeing_sound.config.ConfigError` names a field.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: namespace attribute holding {field: flag} and {"param=value" hint: flag} for error messages
FLAGS = "_config_flags"
HINTS = "_config_hints"
#: parser default holding {field: its option() checks}, which config files' values go through (cli/config_files.py)
CHECKS = "_config_checks"
#: option() metadata keys that are checks (see seeing_sound.config.check_value)
CHECK_KEYS = ("min", "max", "gt", "lt", "choices", "finite", "integer")


class UsageError(Exception):
    """A bad command line found after parsing (exit 2, one line)."""


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``(default X)`` after an option's help, where there is a default to show.

    Not after a required option or a ``None`` default, not after an on/off flag (its help says
    what the flag does: a ``--no-X`` flag's default is "not given", never its dest's True), and
    not after a help that already states its default ("(default: the model's)").
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.required
            or not action.option_strings
            or action.default is None
            or action.default is argparse.SUPPRESS
            or isinstance(action, argparse._StoreConstAction)  # store_true / store_false
            or re.search(r"\bdefault\b", text, re.IGNORECASE)
        ):
            return text
        return f"{text} (default %(default)s)" if text else "default %(default)s"


def comma_list(text: str) -> tuple[str, ...]:
    """``"logo, sign"`` -> ``("logo", "sign")``."""
    return tuple(w.strip() for w in text.split(",") if w.strip())


def _base_type(annotation: str) -> str:
    # Annotations are strings (``from __future__ import annotations``): "int | None", "tuple[float, float]".
    parts = [p.strip() for p in str(annotation).split("|") if p.strip() != "None"]
    return parts[0] if len(parts) == 1 else str(annotation)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if all(isinstance(v, str) for v in value) else " ".join(map(str, value))
    return str(value)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_config_options(
    target,
    cls,
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    flags: Mapping[str, str] | None = None,
    helps: Mapping[str, str] | None = None,
    types: Mapping[str, Callable[[str], Any]] | None = None,
    metavars: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Add one option per field of ``cls`` to ``target`` (a parser or argument group).

    ``include``/``exclude`` pick fields (``include`` also sets the order); ``flags`` renames
    (default ``--field-name``; ``--no-field-name`` for a field that defaults to True);
    ``helps``/``types``/``metavars`` override per field. The dest is always the field name.
    Returns {field: flag}.
    """
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    names = list(include) if include is not None else list(by_name)
    unknown = [n for n in [*names, *exclude] if n not in by_name]
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}")
    flags, helps, types, metavars = flags or {}, helps or {}, types or {}, metavars or {}
    added: dict[str, str] = {}
    hints: dict[str, str] = {}
    checks: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in exclude:
            continue
        f = by_name[name]
        default, meta = _default(f), f.metadata
        text = helps.get(name) or meta.get("help", "")
        base = _base_type(str(f.type))
        kw: dict[str, Any] = {"dest": name, "default": default}
        if base == "bool":
            flag = flags.get(name, f"--{'no-' if default else ''}{name.replace('_', '-')}")
            kw["action"] = "store_false" if default else "store_true"
            if default and name not in helps:
                text = f"turn off: {text}"
            hints[f"{name}={not default}"] = flag
        else:
            flag = flags.get(name, f"--{name.replace('_', '-')}")
            if name in types:
                kw["type"] = types[name]
            elif base.startswith("tuple[") and base.endswith("...]"):
                kw["type"] = comma_list
            elif base.startswith("tuple["):
                kw["nargs"] = base.count(",") + 1
                kw["type"] = {"float": float, "int": int}.get(base[6:].split(",")[0].strip(), str)
            else:
                kw["type"] = {"int": int, "float": float}.get(base, str)
            if meta.get("choices") is not None:
                kw["choices"] = list(meta["choices"])
            if name in metavars:
                kw["metavar"] = metavars[name]
            elif name in flags and "nargs" not in kw:  # show the flag's word, not the field's
                kw["metavar"] = flags[name].lstrip("-").replace("-", "_").upper()
            shown = meta.get("default_text") or (None if default is None else _show(default))
            if shown:
                text = f"{text} (default {shown})" if text else f"default {shown}"
        kw["help"] = text.replace("%", "%%")
        target.add_argument(flag, **kw)
        added[name] = flag
        checks[name] = {k: meta[k] for k in CHECK_KEYS if k in meta}
        if isinstance(default, int) and not isinstance(default, bool):
            checks[name].setdefault("integer", True)  # as Config.__post_init__: an int default means a count
    _record(target, FLAGS, added)
    _record(target, HINTS, hints)
    _record(target, CHECKS, checks)
    return added


def _record(target, key: str, new: Mapping[str, Any]) -> None:
    target.set_defaults(**{key: {**(target.get_default(key) or {}), **new}})


def record_hints(target, hints: Mapping[str, str]) -> None:
    """Extra ``"param=value" -> flag`` rewrites for this command's error messages."""
    _record(target, HINTS, hints)


def config_from_args(args: argparse.Namespace, cls, base=None, **extra):
    """The ``cls`` config from the fields of ``args`` that options were made for (plus ``extra``).

    ``base``: a config to start from instead of the defaults. Raises ``ConfigError`` on a bad value.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names and k in getattr(args, FLAGS, {})}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    values.update(extra)
    if base is not None:
        return base.replace(**values)
    return cls(**values)


def cli_wording(message: str, args: argparse.Namespace) -> str:
    """A library message with its parameters replaced by this command's flags.

    Recorded hints first (``overwrite=True`` -> ``--overwrite``), then any ``field=VALUE`` of a
    field this command has a flag for (``vae=PATH`` -> ``--vae PATH``).
    """
    for hint, flag in sorted(getattr(args, HINTS, {}).items(), key=lambda kv: -len(kv[0])):
        message = re.sub(rf"(?<![\w-]){re.escape(hint)}(?![\w'\"])", flag, message)
    for field, flag in sorted(getattr(args, FLAGS, {}).items(), key=lambda kv: -len(kv[0])):
        if not flag.startswith("--no-"):  # a boolean's "x=False" is a recorded hint above
            message = re.sub(rf"(?<![\w.-]){re.escape(field)}=(?=\S)", f"{flag} ", message)
    return message


def flag_for(args: argparse.Namespace, field: str) -> str | None:
    return getattr(args, FLAGS, {}).get(field)
