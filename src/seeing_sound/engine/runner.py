"""Run a stage's shards in-process or on an executor, resumably."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seeing_sound.engine.lock import output_lock
from seeing_sound.engine.shards import move_into_place, shard_name, write_json_atomic
from seeing_sound.engine.stage import ShardStats, ShardTask, Stage
from seeing_sound.errors import StageMismatchError

log = logging.getLogger(__name__)


@dataclass
class StageReport:
    """Per-shard stats of a whole stage, the freshly run and the reused ones."""

    name: str
    shards: list[ShardStats] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def items_in(self) -> int:
        return sum(s.items_in for s in self.shards)

    @property
    def items_out(self) -> int:
        return sum(s.items_out for s in self.shards)

    @property
    def errors(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.shards:
            for k, v in s.errors.items():
                out[k] = out.get(k, 0) + v
        return dict(sorted(out.items()))


def state_dir(root: Path, stage: Stage) -> Path:
    return Path(root) / "_stages" / stage.name


def done_marker(root: Path, stage: Stage, index: int) -> Path:
    return state_dir(root, stage) / f"{shard_name(index)}.done.json"


def _plan_digest(stage: Stage, tasks: Sequence[ShardTask]) -> dict:
    h = hashlib.sha256()
    for t in tasks:
        h.update(repr((t.index, t.items)).encode())
    return {
        "stage": stage.name,
        "fingerprint": stage.fingerprint(),
        "shards": len(tasks),
        "items_sha256": h.hexdigest(),
    }


def _check_plan(root: Path, stage: Stage, tasks: Sequence[ShardTask], overwrite: bool) -> None:
    """Refuse to mix shards made from other inputs/settings into this run."""
    path = state_dir(root, stage) / "plan.json"
    digest = json.loads(json.dumps(_plan_digest(stage, tasks)))  # normalise tuples -> lists
    if path.exists() and not overwrite:
        old = json.loads(path.read_text())
        if old != digest:
            raise StageMismatchError(
                f"{root} holds a partial or finished '{stage.name}' run made from other inputs or settings; "
                "rerun with the same inputs, pick a new output folder, or pass --overwrite"
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


def run_shard(stage: Stage, task: ShardTask, root: str) -> ShardStats:
    """Process one shard and publish its files atomically, then write its done-marker.

    Top-level and argument-only so any executor (process pool, Ray) can call it. If the
    process dies half-way, no done-marker exists and the next run redoes the shard.
    """
    root_p = Path(root)
    scratch = state_dir(root_p, stage) / "tmp" / f"{shard_name(task.index)}"
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


def _mp_context():
    """fork where it is safe (Linux, torch not loaded: starts in ms), else spawn.

    A forked child of a process that already runs torch's thread pools can deadlock,
    so model stages (which import torch) get fresh spawned interpreters.
    """
    if sys.platform.startswith("linux") and "torch" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _worker_init(parent_pid: int) -> None:
    """Worker set-up: die with the parent, leave Ctrl-C to the parent.

    A worker blocked on its task pipe never notices that the parent was SIGKILLed (it holds the
    pipe's other end itself), so it would wait forever holding its memory. On Linux the kernel
    kills it (PR_SET_PDEATHSIG); everywhere a daemon thread watches the parent's PID as well.
    SIGINT is ignored here: the parent tears the pool down, and shards without a done-marker
    are simply redone by the next run.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the watcher below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before this line
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid:
            os._exit(1)


def _tear_down(ex: cf.Executor, futures, own: bool) -> None:
    """Stop at once: drop queued shards and, for our own pool, kill the running workers.

    A killed shard left no done-marker, so the next run redoes exactly it; finished shards stay done.
    """
    for fut in futures:
        fut.cancel()
    if not own:
        return
    procs = list((getattr(ex, "_processes", None) or {}).values()) if isinstance(ex, cf.ProcessPoolExecutor) else []
    for p in procs:
        p.kill()
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.join(timeout=2)


def run_stage(
    stage: Stage,
    root: str | Path,
    *,
    workers: int = 1,
    executor: cf.Executor | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> StageReport:
    """Run every shard of ``stage`` that is not done yet; return all shards' stats.

    ``workers`` > 1 spreads shards over that many spawned processes; pass ``executor``
    to use your own (a Ray-backed executor works the same way). Shard outputs land
    atomically, so killing the run at any moment and rerunning gives the same files.
    The run holds :func:`~seeing_sound.engine.output_lock` on ``root``: a second run on the
    same root stops at once with :class:`~seeing_sound.engine.lock.OutputLockedError`.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with output_lock(root):
        return _run_stage(stage, Path(root), workers=workers, executor=executor, overwrite=overwrite, progress=progress)


def _run_stage(
    stage: Stage, root: Path, *, workers: int, executor: cf.Executor | None, overwrite: bool, progress: bool
) -> StageReport:
    t_start = time.perf_counter()
    tasks = list(stage.plan())
    if [t.index for t in tasks] != list(range(len(tasks))):
        raise ValueError(f"stage {stage.name!r} must number its shards 0..n-1 in order")
    _check_plan(root, stage, tasks, overwrite)
    report = StageReport(name=stage.name)
    results: dict[int, ShardStats] = {}
    pending: list[ShardTask] = []
    for task in tasks:
        done = None if overwrite else _read_done(root, stage, task.index)
        if done is None:
            pending.append(task)
        else:
            results[task.index] = done
    report.skipped = len(results)
    if report.skipped:
        log.info("%s: %d of %d shards already done, skipping them", stage.name, report.skipped, len(tasks))
    bar = _progress(sum(len(t.items) for t in pending), stage.name, progress)
    errors = 0

    def _done(stats: ShardStats) -> None:
        nonlocal errors
        results[stats.shard] = stats
        errors += sum(stats.errors.values())
        bar.update(stats.items_in)
        bar.set_postfix(shards=f"{len(results)}/{len(tasks)}", errors=errors, refresh=False)

    try:
        if executor is None and (workers == 1 or len(pending) <= 1):
            for task in pending:
                _done(run_shard(stage, task, str(root)))
        else:
            own = executor is None
            ex = executor or cf.ProcessPoolExecutor(
                max_workers=min(workers, len(pending)),
                mp_context=_mp_context(),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
            futures = []
            try:
                futures = [ex.submit(run_shard, stage, t, str(root)) for t in pending]
                for fut in cf.as_completed(futures):
                    _done(fut.result())
            except BaseException:
                _tear_down(ex, futures, own)
                raise
            if own:
                ex.shutdown(wait=True)
    finally:
        bar.close()
    shutil.rmtree(state_dir(root, stage) / "tmp", ignore_errors=True)
    report.ran = len(pending)
    report.shards = [results[i] for i in sorted(results)]
    report.seconds = round(time.perf_counter() - t_start, 3)
    return report
