"""One shard, run where an executor or a Ray task puts it: set up once per process, published atomically.

:func:`run_shard_job` is what every engine submits (top-level and argument-only, so a process
pool or Ray can call it); the runner (:mod:`seeing_sound.engine.runner`) plans, dispatches and
counts, the Ray engine (:mod:`seeing_sound.engine.ray_engine`) places shards on a cluster: both
import this module, neither the other.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from seeing_sound.engine.shards import move_into_place, shard_name, write_json_atomic
from seeing_sound.engine.stage import ShardStats, ShardTask, Stage


def state_dir(root: Path, stage: Stage) -> Path:
    return Path(root) / "_stages" / stage.name


def done_marker(root: Path, stage: Stage, index: int) -> Path:
    return state_dir(root, stage) / f"{shard_name(index)}.done.json"


def run_shard(stage: Stage, task: ShardTask, root: str) -> ShardStats:
    """Process one shard and publish its files atomically, then write its done-marker.

    Top-level and argument-only so any executor (process pool, Ray) can call it. The stage is
    set up (:meth:`Stage.setup`) on first use in this object. If the process dies half-way, no
    done-marker exists and the next run redoes the shard.
    """
    stage.ensure_setup()
    root_p = Path(root)
    scratch = scratch_dir(root_p, stage, task.index)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    t0 = time.perf_counter()
    stats = stage.process(task, scratch)
    for rel in stage.outputs(task.index):
        move_into_place(scratch / rel, root_p / rel)
    stats.seconds = round(time.perf_counter() - t0, 3)
    write_json_atomic(done_marker(root_p, stage, task.index), stats.to_dict())
    shutil.rmtree(scratch, ignore_errors=True)
    return stats


def scratch_dir(root: Path, stage: Stage, index: int) -> Path:
    return state_dir(root, stage) / "tmp" / shard_name(index)


#: stages set up in this process, by run token: a worker sets a stage up once per run, not per shard
_PREPARED: dict[str, Stage] = {}
_PREPARED_GUARD = threading.Lock()


def run_shard_job(stage: Stage, task: ShardTask, root: str, token: str) -> ShardStats:
    """:func:`run_shard` with the stage set up once per process and run (``token``).

    What executors and Ray tasks call: each submit carries the (small) stage and one task; the
    first shard of a run in a process keeps its set-up stage, later ones reuse it.
    """
    with _PREPARED_GUARD:
        ready = _PREPARED.get(token)
        if ready is None:
            for old in [k for k in _PREPARED if k.split(":", 1)[0] == token.split(":", 1)[0]]:
                del _PREPARED[old]  # an earlier run of the same stage: free its models
            while len(_PREPARED) >= 2:
                del _PREPARED[next(iter(_PREPARED))]
            ready = _PREPARED[token] = stage
    return run_shard(ready, task, root)


def release_stage(token: str) -> None:
    """This process is done with the run ``token``: free what its stage's ``setup()`` loaded."""
    with _PREPARED_GUARD:
        _PREPARED.pop(token, None)
