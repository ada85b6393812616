"""Run a stage's shards in-process or on an executor, resumably."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from seeing_sound.engine.config import EngineConfig
from seeing_sound.engine.jobs import done_marker, release_stage, run_shard_job, scratch_dir, state_dir
from seeing_sound.engine.lock import output_lock
from seeing_sound.engine.outcome import Outcome, environment_stop, is_environment_error
from seeing_sound.engine.retries import Attempts, raise_failed
from seeing_sound.engine.shards import shard_name, write_json_atomic, write_json_shared
from seeing_sound.engine.stage import ShardStats, ShardTask, Stage
from seeing_sound.engine.workers import mp_context, tear_down, worker_init
from seeing_sound.errors import SeeingSoundError, StageMismatchError

log = logging.getLogger(__name__)


@dataclass
class StageReport:
    """Per-shard stats of a whole stage, the freshly run and the reused ones."""

    name: str
    shards: list[ShardStats] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    seconds: float = 0.0
    total: int = 0  # shards in the whole plan (a slice runs some of them)
    failed: list[int] = field(default_factory=list)  # shards that failed every attempt

    @property
    def complete(self) -> bool:
        """Every shard of the whole plan is done (false after a slice while others are still out)."""
        return len(self.shards) == self.total and not self.failed

    @property
    def items_in(self) -> int:
        return sum(s.items_in for s in self.shards)

    @property
    def items_out(self) -> int:
        return sum(s.items_out for s in self.shards)

    @property
    def outcome(self) -> Outcome:
        """The items' outcome: those not out are failed (by ``errors``) or skipped (filtered, empty)."""
        failed = min(sum(self.errors.values()), max(self.items_in - self.items_out, 0))
        skipped = max(self.items_in - self.items_out - failed, 0)
        return Outcome(self.items_in, self.items_out, failed, skipped, self.errors)

    @property
    def errors(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.shards:
            for k, v in s.errors.items():
                out[k] = out.get(k, 0) + v
        return dict(sorted(out.items()))


def _plan_digest(stage: Stage, tasks: Sequence[ShardTask]) -> dict:
    h = hashlib.sha256()
    for t in tasks:
        h.update(repr((t.index, t.items) if t.count is None else (t.index, t.items, t.count)).encode())
    return {
        "stage": stage.name,
        "fingerprint": stage.fingerprint(),
        "shards": len(tasks),
        "items_sha256": h.hexdigest(),
    }


def _check_plan(root: Path, stage: Stage, tasks: Sequence[ShardTask], overwrite: bool, shared: bool = False) -> None:
    """Refuse to mix shards made from other inputs/settings into this run.

    ``shared``: other slices may write the same ``plan.json`` at the same moment; each writes
    through its own temp name (never swept by another writer) and the renames are equal bytes.
    """
    path = state_dir(root, stage) / "plan.json"
    digest = json.loads(json.dumps(_plan_digest(stage, tasks)))  # normalise tuples -> lists
    if shared and not path.exists():
        write_json_shared(path, digest)
    if path.exists() and not overwrite:
        old = json.loads(path.read_text())
        if old != digest:
            raise StageMismatchError(
                f"{root} holds a partial or finished '{stage.name}' run made from other inputs or settings; "
                "rerun with the same inputs, pick a new output folder, or pass overwrite=True"
            )
        return
    if overwrite and state_dir(root, stage).exists():
        for marker in state_dir(root, stage).glob("*.done.json"):
            marker.unlink()
        if path.exists():  # shards past the new plan's end would otherwise linger and be read
            old_count = int(json.loads(path.read_text()).get("shards", 0))
            for index in range(len(tasks), old_count):
                for rel in stage.outputs(index):
                    target = root / rel
                    if target.is_dir():
                        shutil.rmtree(target)
                    elif target.exists():
                        target.unlink()
    write_json_atomic(path, digest)


def missing_shards(stage: Stage, root: str | Path, tasks: Sequence[ShardTask] | None = None) -> list[int]:
    """Indexes of the shards of the plan (default ``stage.plan()``) that have no valid done-marker."""
    plan = stage.plan() if tasks is None else tasks
    return [t.index for t in plan if _read_done(Path(root), stage, t.index) is None]


def _read_done(root: Path, stage: Stage, index: int) -> ShardStats | None:
    path = done_marker(root, stage, index)
    if not path.exists():
        return None
    stats = ShardStats.from_dict(json.loads(path.read_text()))
    # A marker whose files vanished (deleted by hand) is not proof of completion.
    if all((root / rel).exists() for rel in stage.outputs(index)):
        return stats
    return None


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=not enabled, dynamic_ncols=True, smoothing=0.1)


def run_stage(
    stage: Stage,
    root: str | Path,
    *,
    workers: int = 1,
    executor: cf.Executor | None = None,
    overwrite: bool = False,
    progress: bool = True,
    tasks: Sequence[ShardTask] | None = None,
    engine_config: EngineConfig | None = None,
) -> StageReport:
    """Run every shard of ``stage`` that is not done yet; return all shards' stats.

    ``tasks``: the plan (default ``stage.plan()``). ``workers`` > 1 spreads shards over that
    many spawned processes; pass ``executor`` to use your own. ``engine_config`` picks the
    engine (``local`` or ``ray``), a shard slice and the retries of a failed shard (default:
    local, all shards, 2 retries). Shard outputs land atomically, so killing the run at any
    moment and rerunning gives the same files. The run holds
    :func:`~seeing_sound.engine.output_lock` on ``root`` (a slice holds its slice's lock): a
    second run on the same root stops at once with :class:`~seeing_sound.engine.lock.OutputLockedError`.

    A shard that raises (or whose worker dies) is retried ``shard_retries`` times; shards that
    still fail are logged and the first one's exception is raised once every other shard has
    run (the others stay done for the next run).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cfg = engine_config or EngineConfig()
    if cfg.slice is not None and overwrite:
        raise ValueError("overwrite cannot be combined with a shard slice: run once without the slice to overwrite")
    if cfg.engine == "ray" and executor is not None:
        raise ValueError("pass either executor or engine_config.engine='ray', not both")
    with output_lock(root, cfg.slice):
        return _run_stage(
            stage, Path(root), workers=workers, executor=executor, overwrite=overwrite, progress=progress,
            tasks=tasks, cfg=cfg,
        )  # fmt: skip


def _run_stage(
    stage: Stage,
    root: Path,
    *,
    workers: int,
    executor: cf.Executor | None,
    overwrite: bool,
    progress: bool,
    tasks: Sequence[ShardTask] | None,
    cfg: EngineConfig,
) -> StageReport:
    t_start = time.perf_counter()
    plan = list(stage.plan() if tasks is None else tasks)
    if [t.index for t in plan] != list(range(len(plan))):
        raise ValueError(f"stage {stage.name!r} must number its shards 0..n-1 in order")
    sliced = cfg.slice
    _check_plan(root, stage, plan, overwrite, shared=sliced is not None)
    mine = plan if sliced is None else [t for t in plan if t.index % sliced[1] == sliced[0]]
    report = StageReport(name=stage.name, total=len(plan))
    results: dict[int, ShardStats] = {}
    pending: list[ShardTask] = []
    for task in mine:
        done = None if overwrite else _read_done(root, stage, task.index)
        if done is None:
            pending.append(task)
        else:
            results[task.index] = done
    report.skipped = len(results)
    where = "" if sliced is None else f" (slice {sliced[0]}/{sliced[1]}: {len(mine)} of {len(plan)} shards)"
    if report.skipped:
        log.info("%s%s: %d of %d shards already done, skipping them", stage.name, where, report.skipped, len(mine))
    for task in pending:  # scratch of an interrupted earlier attempt: a crash now is told apart by its scratch
        shutil.rmtree(scratch_dir(root, stage, task.index), ignore_errors=True)
    bar = _progress(sum(stage.task_size(t) for t in pending), stage.name, progress)
    errors = 0

    def _done(stats: ShardStats) -> None:
        nonlocal errors
        results[stats.shard] = stats
        errors += sum(stats.errors.values())
        bar.update(stats.items_in)
        bar.set_postfix(shards=f"{len(results)}/{len(mine)}", errors=errors, refresh=False)

    attempts = Attempts(stage.name, cfg.shard_retries)
    token = f"{stage.name}-{id(stage):x}:{uuid.uuid4().hex}"
    try:
        if cfg.engine == "ray":
            from seeing_sound.engine.ray_engine import run_on_ray

            run_on_ray(stage, pending, str(root), cfg, workers=workers, on_done=_done, attempts=attempts, token=token)
        elif executor is None and (workers == 1 or len(pending) <= 1):
            for task in pending:
                while True:
                    try:
                        _done(run_shard_job(stage, task, str(root), token))
                        break
                    except Exception as exc:
                        if not attempts.failed(task, exc):
                            break
        else:
            _run_on_executor(stage, pending, root, executor, workers, _done, attempts, token)
    except Exception as exc:  # a full or read-only output stops the run: no done-marker, no retry, one line
        if is_environment_error(exc):
            needed = _bytes_needed(root, stage, results, len(pending) - len(results) + report.skipped)
            raise environment_stop(exc, root, what=f"writing '{stage.name}' shards", needed=needed) from exc
        raise
    finally:
        bar.close()
        release_stage(token)  # this process is done with the stage: free what its setup() loaded
    if sliced is None:
        shutil.rmtree(state_dir(root, stage) / "tmp", ignore_errors=True)
    report.ran = len(pending) - len(attempts.failures)
    report.shards = [results[i] for i in sorted(results)]
    report.failed = sorted(attempts.failures)
    report.seconds = round(time.perf_counter() - t_start, 3)
    if attempts.failures:
        first = attempts.failures[report.failed[0]]
        raise_failed(stage.name, report.failed, first, attempts.counts)
    if sliced is not None and cfg.barrier:
        _wait_for_slices(stage, root, plan, cfg)
    return report


def _bytes_needed(root: Path, stage: Stage, done: dict[int, ShardStats], left: int) -> int | None:
    """The mean on-disk size of the finished shards' outputs times the shards left (None if none finished)."""
    if not done or left <= 0:
        return None
    total = 0
    for index in done:
        for rel in stage.outputs(index):
            p = root / rel
            files = [p] if p.is_file() else (f for f in p.rglob("*") if f.is_file()) if p.is_dir() else []
            total += sum(f.stat().st_size for f in files)
    return total // len(done) * left


def _wait_for_slices(stage: Stage, root: Path, plan: list[ShardTask], cfg: EngineConfig, poll_s: float = 2.0) -> None:
    """Block until every shard of ``plan`` has its done-marker (written by the other slices), or time out."""
    deadline = time.monotonic() + cfg.slice_wait_s
    missing = missing_shards(stage, root, plan)
    if missing:
        log.info("%s: slice %s done; waiting for %d shards of the other slices", stage.name, cfg.shard_slice,
                 len(missing))  # fmt: skip
    while missing:
        if time.monotonic() >= deadline:
            raise SeeingSoundError(
                f"{stage.name}: {len(missing)} shard(s) ({', '.join(shard_name(i) for i in missing[:5])}"
                f"{', ...' if len(missing) > 5 else ''}) still not done by the other slices after "
                f"{cfg.slice_wait_s:g} s; rerun the slices that failed, or run once without --shard-slice"
            )
        time.sleep(poll_s)
        missing = [i for i in missing if _read_done(root, stage, i) is None]


def _run_on_executor(
    stage: Stage,
    pending: list[ShardTask],
    root: Path,
    executor: cf.Executor | None,
    workers: int,
    on_done,
    attempts: Attempts,
    token: str,
) -> None:
    """Shards on a process pool (ours) or any executor, a bounded number in flight, with retries.

    Each submit carries the stage (config only, a few KB) and one task. When one of our workers
    dies (segfault, OOM kill), the pool is rebuilt: shards that had started (their scratch folder
    exists) count an attempt, the queued ones go again for free.
    """
    own = executor is None

    def new_pool() -> cf.Executor:
        return cf.ProcessPoolExecutor(
            max_workers=min(workers, len(pending)),
            mp_context=mp_context(),
            initializer=worker_init,
            initargs=(os.getpid(),),
        )

    ex = executor or new_pool()
    limit = 2 * (workers if own else max(workers, int(getattr(ex, "_max_workers", 0) or 16)))
    queue = collections.deque(pending)
    in_flight: dict[cf.Future, ShardTask] = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < limit:
                task = queue.popleft()
                in_flight[ex.submit(run_shard_job, stage, task, str(root), token)] = task
            finished, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
            broken = False
            for fut in finished:
                task = in_flight.pop(fut)
                try:
                    on_done(fut.result())
                except BrokenProcessPool as exc:
                    broken = True
                    if not scratch_dir(root, stage, task.index).exists():
                        queue.appendleft(task)  # never started: not its fault
                    elif attempts.failed(task, exc):
                        queue.append(task)
                except Exception as exc:
                    if attempts.failed(task, exc):
                        queue.append(task)
            if broken and own:
                log.warning("%s: a worker process died; starting a new pool", stage.name)
                for fut, task in list(in_flight.items()):  # the rest of the broken pool's shards
                    in_flight.pop(fut)
                    err = fut.exception() if fut.done() else None
                    started = scratch_dir(root, stage, task.index).exists()
                    if err is None and fut.done():
                        on_done(fut.result())
                    elif not started or attempts.failed(task, err or BrokenProcessPool("worker died")):
                        queue.append(task)
                tear_down(ex, [], own)
                ex = new_pool()
    except BaseException:
        tear_down(ex, list(in_flight), own)
        raise
    if own:
        ex.shutdown(wait=True)
