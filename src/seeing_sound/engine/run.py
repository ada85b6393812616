"""The one run path: every command that writes goes through :func:`command_run`.

A command's library function builds its stages and says how to finish; the run owns the rest,
once for every command::

    with command_run("pool build", out, inputs={"sources": sources}, engine_config=eng,
                     workers=workers, overwrite=overwrite, progress=progress) as run:
        report = run.stage(PoolBuildStage(config=cfg), tasks=tasks)
        if not run.finishing:                       # a shard slice: the finishing run writes the card
            return run.slice_done("the pool", report)
        write_card(...)                             # summaries only after a complete run
        run.finish(Outcome(...), noun="files")      # nothing usable (or > max_failed) -> exit 1

What the run does:

* **inputs** (param name -> path(s)) must exist: a missing one is an :class:`InputError` (exit 2)
  naming the parameter and path, raised before any work; ``out`` may not be an input nor
  contain one (a rerun would read its own output, or overwrite what it reads).
* **one run per output folder**: :func:`~seeing_sound.engine.lock.output_lock` (a shard slice
  holds its slice's lock; ``lock=False`` for a single-file output, which is written atomically).
* **environment errors stop the run**: an ``ENOSPC``/``EDQUOT``/``EROFS``/``EIO`` anywhere inside
  becomes one :class:`OutputEnvironmentError` line naming ``out`` and the free space, never an
  item's error row and never a done-marker.
* **exit status**: :meth:`Run.finish` raises :class:`RunFailedError` when more than ``max_failed``
  of the items failed, and — on the command line (:func:`failures_raise`) — when nothing usable was
  written (from Python the report comes back, with one error logged).
* **slices**: :attr:`Run.finishing` and :meth:`Run.slice_done` say, in one wording for every
  command, that the slice is done and what the finishing run will write.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seeing_sound.engine.config import EngineConfig
from seeing_sound.engine.lock import check_output_root, output_lock
from seeing_sound.engine.outcome import (
    InputError,
    InputNotFoundError,
    Outcome,
    OutputEnvironmentError,
    check_outcome,
    environment_stop,
    is_environment_error,
)
from seeing_sound.engine.runner import StageReport, run_stage
from seeing_sound.engine.stage import ShardTask, Stage
from seeing_sound.image_sources import expand_pattern, is_pattern, is_table, spec_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
Inputs = Mapping[str, PathLike | Sequence[PathLike] | None]


@dataclass
class Run:
    """One command's run on one output: its engine settings and the stages it ran."""

    command: str
    out: Path
    engine: EngineConfig
    workers: int = 1
    overwrite: bool = False
    progress: bool = True
    executor: cf.Executor | None = None

    @property
    def slice(self) -> tuple[int, int] | None:
        """``(I, N)`` when this run is one shard slice, else None."""
        return self.engine.slice

    @property
    def finishing(self) -> bool:
        """True for a whole run (no shard slice): it may write the summaries of every shard."""
        return self.engine.slice is None

    def stage(
        self,
        stage: Stage,
        *,
        tasks: Sequence[ShardTask] | None = None,
        root: PathLike | None = None,
        workers: int | None = None,
        engine_config: EngineConfig | None = None,
    ) -> StageReport:
        """Run ``stage``'s shards on ``root`` (default ``out``) with this run's engine, workers and overwrite."""
        return run_stage(
            stage,
            self.out if root is None else Path(root),
            workers=self.workers if workers is None else workers,
            executor=self.executor,
            overwrite=self.overwrite,
            progress=self.progress,
            tasks=tasks,
            engine_config=engine_config or self.engine,
        )

    def slice_done(self, what: str, report: StageReport | None = None) -> str:
        """Log (and return) the one line a slice ends with: what it ran and what the finishing run writes."""
        i, n = self.engine.slice or (0, 1)
        ran = "" if report is None else f" ({report.ran} shards run, {report.skipped} already done)"
        line = f"{self.command}: slice {i}/{n} done{ran}; run once without the shard slice to finish {what}"
        log.info("%s", line)
        return line

    def finish(self, outcome: Outcome, *, noun: str = "item", hint: str = "", report: Any = None) -> None:
        """The exit status of a complete run: raise :class:`RunFailedError` (carrying ``report``) if
        more than the engine's ``max_failed`` fraction of the items failed, or — on the command line
        (:func:`failures_raise`), or with ``max_failed`` set — if nothing usable was written. From
        Python without ``max_failed``, a run with nothing usable logs one error and returns its report."""
        if self.engine.max_failed is None and not _RAISE.get():
            if outcome.items_in and outcome.failed and not outcome.items_out:
                log.error("%s: every input %s failed (%d); nothing usable was written", self.command, noun,
                          outcome.failed)  # fmt: skip
            return
        check_outcome(outcome, self.command, noun=noun, max_failed=self.engine.max_failed, hint=hint, report=report)


#: whether a run with nothing usable raises :class:`RunFailedError` (the command line sets it)
_RAISE: contextvars.ContextVar[bool] = contextvars.ContextVar("seeing_sound_failures_raise", default=False)


@contextlib.contextmanager
def failures_raise() -> Iterator[None]:
    """Inside the block, a run that wrote nothing usable raises :class:`RunFailedError` (exit 1 on the
    command line) instead of returning its report. ``seeing-sound`` runs every command in it."""
    token = _RAISE.set(True)
    try:
        yield
    finally:
        _RAISE.reset(token)


def _paths(value: PathLike | Sequence[PathLike] | None) -> list[Path]:
    """The paths an input names; a glob or brace pattern of shards (``sa_{000..009}.tar``) is expanded
    (one that matches nothing is returned as is, so it reads as missing)."""
    if value is None:
        return []
    values = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    out: list[Path] = []
    for v in values:
        if is_table(v):  # hf:PATH[:SPLIT], X.parquet#id=...: the path part
            v = spec_path(v)
        try:
            out.extend(expand_pattern(v) if is_pattern(v) else [Path(v)])
        except (FileNotFoundError, ValueError):
            out.append(Path(v))
    return out


def check_inputs(inputs: Inputs) -> None:
    """Every input path exists; else :class:`InputError` naming the parameter (``images=nope``)."""
    for name, value in inputs.items():
        for p in _paths(value):
            if not p.exists():
                raise InputNotFoundError(f"{name}={p} does not exist; check the path")


def check_output_clear(
    out: PathLike, inputs: Inputs | Iterable[PathLike], *, name: str = "out", nested_ok: bool = False
) -> None:
    """Refuse an output that is an input or holds one (the run would overwrite or re-read what it reads).

    ``nested_ok``: the command writes only its own names into ``out`` (``report``: ``index.html`` and
    ``report/``), so an input inside it is fine; the output may still not *be* an input.
    """
    target = Path(out).resolve()
    named = inputs.items() if isinstance(inputs, Mapping) else (("input", p) for p in inputs)
    for param, value in named:
        for p in _paths(value):
            src = p.resolve()
            if src == target:
                raise InputError(f"{name}={out} is also the input {param}={p}; pick another output")
            if target in src.parents and not nested_ok:
                raise InputError(f"{name}={out} holds the input {param}={p}; pick an output outside the inputs")


def check_owned(path: PathLike, is_ours, *, name: str = "out") -> None:
    """Refuse to replace an existing ``path`` that this command did not write (``is_ours(path)`` is False)."""
    p = Path(path)
    if p.exists() and not is_ours(p):
        raise InputError(f"{name}: {p} exists and was not written by seeing-sound; move it away or pick another output")


@contextlib.contextmanager
def command_run(
    command: str,
    out: PathLike,
    *,
    inputs: Inputs | None = None,
    engine_config: EngineConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    executor: cf.Executor | None = None,
    lock: bool = True,
    barrier: bool = False,
    nested_ok: bool = False,
) -> Iterator[Run]:
    """Hold the run of ``command`` on ``out`` for the ``with`` block (see the module docstring).

    ``inputs``: parameter name -> path(s) that must exist and lie outside ``out``. ``barrier``:
    the command runs several stages in turn, so a slice waits for the other slices between them.
    ``lock=False``: ``out`` is a single file (written atomically), not a folder to lock.
    ``nested_ok``: inputs may lie inside ``out`` (see :func:`check_output_clear`).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    eng = engine_config or EngineConfig()
    if barrier and eng.slice is not None:
        eng = eng.replace(barrier=True)
    if eng.slice is not None and overwrite:
        raise ValueError("overwrite cannot be combined with a shard slice: run once without the slice to overwrite")
    out_p = Path(out)
    if inputs:
        check_inputs(inputs)
        check_output_clear(out_p, inputs, nested_ok=nested_ok)
    if lock:
        check_output_root(out_p)
    run = Run(command, out_p, eng, workers=workers, overwrite=overwrite, progress=progress, executor=executor)
    try:
        with output_lock(out_p, eng.slice) if lock else contextlib.nullcontext(out_p):
            yield run
    except OutputEnvironmentError:
        raise
    except Exception as exc:  # OSError, torch's RuntimeError, safetensors' "(os error 28)", ...
        if is_environment_error(exc):
            raise environment_stop(exc, out_p) from exc
        raise
