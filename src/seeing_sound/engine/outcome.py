"""What a run's failures mean: environment errors stop it, item errors are counted, and the count gates the exit.

Two kinds of failure, told apart once for every command:

* An **environment** error — the output's disk is full (``ENOSPC``), over quota (``EDQUOT``),
  read-only (``EROFS``) or failing (``EIO``) — is the run's failure, never an item's: retrying a
  shard or skipping a file cannot fix it, and recording it as a per-item error row would mark a
  shard done with data missing. :func:`is_environment_error` recognises one (also inside the
  ``RuntimeError`` that ``torch.save`` wraps it in); :class:`OutputEnvironmentError` is the one
  line the run stops with, naming the output folder and the space it needs.
* An **item** error (one corrupt file, one refused request) is a row with a reason. A run whose
  every item failed wrote nothing usable: :func:`check_outcome` turns that — or a failed fraction
  above ``max_failed`` — into :class:`RunFailedError` (exit 1) with the top reasons and what to
  check.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seeing_sound.errors import SeeingSoundError

#: errno values that say "the place we write to cannot take it", whatever the item
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EROFS, errno.EIO} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())
)
#: the same conditions where a library only kept the text (torch.save: "enforce fail ... file write failed")
_ENVIRONMENT_TEXT = {
    "no space left on device": errno.ENOSPC,
    "disk quota exceeded": getattr(errno, "EDQUOT", errno.ENOSPC),
    "read-only file system": errno.EROFS,
    "file write failed": errno.ENOSPC,  # torch's PyTorchStreamWriter on a full disk
    "unexpected pos": errno.ENOSPC,  # torch's inline_container.cc when a write came up short
}


_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


class OutputEnvironmentError(SeeingSoundError):
    """The output side cannot be written (full, over quota, read-only, failing): the run stops."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.errno = code


class RunFailedError(SeeingSoundError):
    """The run finished but wrote nothing usable, or failed more items than ``max_failed`` allows.

    ``outcome`` holds the counts and ``report`` the command's own report (its summary files are
    written); everything that was written stays (a rerun resumes).
    """

    def __init__(self, message: str, outcome: Outcome, report: Any = None):
        super().__init__(message)
        self.outcome = outcome
        self.report = report


class InputError(SeeingSoundError):
    """An input does not exist, holds nothing usable, or overlaps the output (a usage error: exit 2)."""


class InputNotFoundError(InputError, FileNotFoundError):
    """An input path that does not exist (still a ``FileNotFoundError`` for callers that catch one)."""


def environment_errno(exc: BaseException | None, *, reading: bool = False) -> int | None:
    """The environment errno behind ``exc`` (following ``__cause__``/``__context__``), or None.

    ``reading``: the error came from code that reads inputs as well as writes outputs (a stage's
    per-item ``try``); there ``EIO`` is the input's (a bad sector in one source file) and stays an
    item error, while a full or read-only disk cannot be a reader's fault.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OutputEnvironmentError):
            return exc.errno
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            if not (reading and exc.errno == errno.EIO):
                return exc.errno
        elif isinstance(exc, RuntimeError):
            text = str(exc).lower()
            for needle, code in _ENVIRONMENT_TEXT.items():
                if needle in text:
                    return code
        # Rust libraries (safetensors, tokenizers) format an io::Error as "... (os error 28)"
        for match in _RUST_OS_ERROR.finditer(str(exc)):
            code = int(match.group(1))
            if code in ENVIRONMENT_ERRNOS and not (reading and code == errno.EIO):
                return code
        # Ray hands a task's exception back as RayTaskError with the original in ``.cause``
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return None


def is_environment_error(exc: BaseException | None, *, reading: bool = False) -> bool:
    """True for a full disk, a quota, a read-only or failing output (see :func:`environment_errno`)."""
    return environment_errno(exc, reading=reading) is not None


def reraise_environment(exc: BaseException) -> None:
    """In a stage's per-item ``except``: re-raise ``exc`` if it is the output's (full, read-only)
    rather than the item's, so the run stops instead of recording a false error row."""
    if is_environment_error(exc, reading=True):
        raise exc


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing parent), None if unknown."""
    p = Path(path).absolute()
    for candidate in (p, *p.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def environment_stop(
    exc: BaseException, out: str | os.PathLike, *, what: str = "", needed: int | None = None
) -> OutputEnvironmentError:
    """The one line a run stops with when ``out`` cannot be written: the cause, the folder, the space.

    ``what``: where it happened (``"writing build shard-000003"``); ``needed``: an estimate of the
    bytes the rest of the run needs (e.g. the mean size of the finished shards times those left).
    """
    code = environment_errno(exc) or errno.EIO
    cause = {
        errno.ENOSPC: "no space left on device",
        errno.EROFS: "the file system is read-only",
        errno.EIO: "an I/O error on the output device",
    }.get(code, "the disk quota is exceeded")
    free = free_bytes(out)
    parts = [f"cannot write {out}: {cause}" + (f" while {what}" if what else "")]
    if code != errno.EROFS:
        if free is not None:
            parts.append(f"{human_bytes(free)} free there")
        if needed:
            parts.append(f"the rest of the run needs about {human_bytes(needed)} more")
        fix = "free some space (or pick another output folder) and rerun the same command to resume"
    else:
        fix = "make it writable or pick another output folder, then rerun the same command"
    if code == errno.EIO:
        fix = "check the output device, then rerun the same command to resume"
    return OutputEnvironmentError(f"{'; '.join(parts)}; {fix}", code)


@dataclass(frozen=True)
class Outcome:
    """A finished run's item counts: ``items_in == items_out + skipped + failed``.

    ``skipped``: items left out on purpose (filtered, excluded, already present); ``reasons``:
    failure reason -> items (or requests) failed for it.
    """

    items_in: int
    items_out: int
    failed: int
    skipped: int = 0
    reasons: Mapping[str, int] = field(default_factory=dict)


def check_outcome(
    outcome: Outcome,
    command: str,
    *,
    noun: str = "item",
    max_failed: float | None = None,
    hint: str = "",
    report: Any = None,
) -> None:
    """Raise :class:`RunFailedError` if the run wrote nothing usable, or failed more than ``max_failed``.

    Nothing usable: items came in, none came out and at least one failed (a run whose items
    were all filtered, none failed, is a valid empty answer). ``max_failed``: the largest allowed
    fraction of failed items (``None``: no gate, partial runs succeed). ``noun``: what an item is
    (``"file"``, ``"image"``); ``hint``: what to check (URL, key, model).
    """
    if outcome.items_in <= 0 or outcome.failed <= 0:
        return
    fraction = outcome.failed / outcome.items_in
    nothing = outcome.items_out == 0
    if not nothing and (max_failed is None or fraction <= max_failed):
        return
    top = sorted(outcome.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    reasons = ", ".join(f"{k}={v}" for k, v in top) or "no reason recorded"
    if nothing:
        head = (
            f"{command}: every input {noun} failed ({outcome.failed} of {outcome.items_in}"
            + (f", {outcome.skipped} filtered" if outcome.skipped else "")
            + "); nothing usable was written"
        )
    else:
        head = (
            f"{command}: {outcome.failed} of {outcome.items_in} {noun}s failed ({fraction:.1%}), "
            f"more than max_failed={max_failed:g} allows"
        )
    raise RunFailedError(f"{head} (top reasons: {reasons})" + (f"; {hint}" if hint else ""), outcome, report)
