"""Stage configs: frozen dataclasses whose fields carry their default, help and checks.

Every setting of a stage lives in one field, declared with :func:`option`::

    topk: int = option(100, "k of the threshold mean(topk(t))", min=1)

The help text doubles as the field's comment and as the CLI's ``--help``; the checks (``min``,
``max``, ``gt``, ``lt``, ``choices``, ``finite``) run in ``__post_init__`` and raise a
:class:`ConfigError` naming the field and the value, so a bad setting fails before any work.
``fingerprint=False`` marks a field that cannot change what a shard holds (device, batch size,
shard size: the engine hashes the plan itself):
it is left out of :meth:`Config.fingerprint`, so it may change on resume.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any, TypeVar

C = TypeVar("C", bound="Config")

_MISSING = dataclasses.MISSING


class ConfigError(ValueError):
    """A setting with a bad value: names the field (a library parameter, never a CLI flag) and the value."""

    def __init__(self, field: str, value: Any, reason: str):
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}: {reason}, got {value!r}")

    def with_name(self, name: str) -> str:
        """The message with ``name`` (e.g. the CLI flag) in place of the field."""
        return f"{name}: {self.reason}, got {self.value!r}"


def option(default: Any = _MISSING, help: str = "", *, default_factory: Any = _MISSING, **checks) -> Any:
    """A config field: its default, one line of help, and the checks ``__post_init__`` runs.

    Checks: ``min``/``max`` (inclusive), ``gt``/``lt`` (exclusive), ``choices``, ``finite``
    (default True where a bound is given), ``integer`` (implied by an int default), ``fingerprint=False``
    (left out of the fingerprint), ``default_text`` (how
    ``--help`` shows a ``None`` default).
    """
    kw = {"default": default} if default_factory is _MISSING else {"default_factory": default_factory}
    return dataclasses.field(metadata={"help": help, **checks}, **kw)


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_value(name: str, value: Any, meta: Mapping) -> None:
    """Raise :class:`ConfigError` if ``value`` breaks the checks in a field's ``meta``."""
    if value is None:
        return  # None means "the documented fallback" (default_text); fields that forbid it check it themselves
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(name, value, f"must be one of {', '.join(map(str, choices))}")
    bounds = [k for k in ("min", "max", "gt", "lt") if k in meta]
    if meta.get("integer") and not (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
        raise ConfigError(name, value, "must be a whole number")
    if not bounds and not meta.get("finite"):
        return
    if not _number(value):
        raise ConfigError(name, value, "must be a number")
    if meta.get("finite", True) and not math.isfinite(value):
        raise ConfigError(name, value, "must be finite")
    for key, ok, words in (
        ("min", lambda v, b: v >= b, ">="),
        ("max", lambda v, b: v <= b, "<="),
        ("gt", lambda v, b: v > b, ">"),
        ("lt", lambda v, b: v < b, "<"),
    ):
        if key in meta and not ok(value, meta[key]):
            raise ConfigError(name, value, f"must be {words} {meta[key]}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every stage config: field checks in ``__post_init__``, ``replace``, ``fingerprint``."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            meta: Mapping[str, Any] = f.metadata
            if isinstance(f.default, int) and not isinstance(f.default, bool):
                meta = {"integer": True, **meta}  # an int default means a count/index: 2.5 is a mistake
            check_value(f.name, getattr(self, f.name), meta)
        self.validate()

    def validate(self) -> None:
        """Checks that involve several fields (subclasses override)."""

    def replace(self: C, **options) -> C:
        """A copy with ``options`` (field names) changed; unknown names raise ``TypeError``."""
        unknown = sorted(set(options) - set(field_names(type(self))))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no option {', '.join(map(repr, unknown))}")
        return dataclasses.replace(self, **options) if options else self

    def project(self, cls: type[C], **overrides) -> C:
        """The ``cls`` config holding this one's values for every field the two share (same name),
        then ``overrides``: how a command that runs several stages derives each stage's own config
        from its settings, without listing the shared fields by hand."""
        shared = set(field_names(cls)) & set(field_names(type(self)))
        return cls(**({name: getattr(self, name) for name in sorted(shared)} | overrides))

    def fingerprint(self) -> dict:
        """Fields that change a stage's output (``fingerprint=False`` ones left out), for resume checks."""
        out = {}
        for f in dataclasses.fields(self):
            if f.metadata.get("fingerprint") is False:
                continue
            value = getattr(self, f.name)
            out[f.name] = value.fingerprint() if isinstance(value, Config) else _plain(value)
        return out

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def resolve(cls: type[C], config: C | None, options: Mapping[str, Any]) -> C:
    """``config`` (or the defaults of ``cls``) with keyword ``options`` applied; validates."""
    if config is not None and not isinstance(config, cls):
        raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
    base = config if config is not None else cls()
    return base.replace(**options)


def check_lufs_range(name: str, value: Any, gate: float) -> tuple[float, float]:
    """``(low, high)`` LUFS targets: two finite numbers, ``gate <= low <= high <= 0``.

    A target under the BS.1770 absolute gate would normalize to a level the meter itself
    calls silence (and ``-300`` writes all-zero mixtures): refuse it rather than write them.
    """
    try:
        low, high = value
    except (TypeError, ValueError):
        raise ConfigError(name, value, "must be two numbers (low, high)") from None
    if not (_number(low) and _number(high)):
        raise ConfigError(name, value, "must be two numbers (low, high)")
    if not all(math.isfinite(v) and v >= gate for v in (low, high)):
        raise ConfigError(name, value, f"each value must be finite and >= {gate:g} LUFS (the BS.1770 absolute gate)")
    if low > high:
        raise ConfigError(name, value, "low must be <= high")
    if high > 0:
        raise ConfigError(name, value, "targets must be <= 0 LUFS (full scale)")
    return float(low), float(high)
