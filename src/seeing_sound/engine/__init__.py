"""Stage machinery: fixed-size shards, atomic shard outputs, done-markers, executors.

A :class:`Stage` only knows how to plan shards and turn one shard into files in a scratch
folder. :func:`run_stage` decides where and how shards run (in-process, a process pool, or
any ``concurrent.futures.Executor``) and makes every shard's output appear atomically.
"""

from seeing_sound.engine.lock import OutputLockedError, output_lock
from seeing_sound.engine.runner import StageReport, run_stage
from seeing_sound.engine.shards import atomic_write, shard_name
from seeing_sound.engine.stage import ShardStats, ShardTask, Stage

__all__ = [
    "OutputLockedError",
    "ShardStats",
    "ShardTask",
    "Stage",
    "StageReport",
    "atomic_write",
    "output_lock",
    "run_stage",
    "shard_name",
]
