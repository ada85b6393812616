"""Stage machinery: fixed-size shards, atomic shard outputs, done-markers, executors.

A :class:`Stage` is config only: it sets itself up once per worker (:meth:`Stage.setup`) and
turns one shard into files in a scratch folder. :func:`run_stage` decides where and how shards
run (in-process, a process pool, any ``concurrent.futures.Executor``, or Ray with
``EngineConfig(engine="ray")``), which slice of them (``shard_slice``), retries failed ones,
and makes every shard's output appear atomically. :func:`command_run` is the one run every
writing command goes through: inputs checked, the output locked, environment errors (full or
read-only disk) stopping the run, and the exit status from the items' outcome.
"""

from seeing_sound.engine.config import EngineConfig, parse_shard_slice
from seeing_sound.engine.lock import OutputLockedError, output_lock
from seeing_sound.engine.outcome import (
    InputError,
    Outcome,
    OutputEnvironmentError,
    RunFailedError,
    is_environment_error,
    reraise_environment,
)
from seeing_sound.engine.run import Run, command_run
from seeing_sound.engine.runner import StageReport, missing_shards, run_stage
from seeing_sound.engine.shards import atomic_write, shard_name
from seeing_sound.engine.stage import ShardStats, ShardTask, Stage

__all__ = [
    "EngineConfig",
    "InputError",
    "Outcome",
    "OutputEnvironmentError",
    "OutputLockedError",
    "Run",
    "RunFailedError",
    "ShardStats",
    "ShardTask",
    "Stage",
    "StageReport",
    "atomic_write",
    "command_run",
    "is_environment_error",
    "missing_shards",
    "output_lock",
    "parse_shard_slice",
    "reraise_environment",
    "run_stage",
    "shard_name",
]
