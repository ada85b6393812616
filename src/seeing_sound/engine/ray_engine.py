"""Run a stage's shards on Ray: tasks for stateless stages, an actor pool for model stages.

Imported only when ``EngineConfig(engine="ray")`` is chosen. The stage code is the same as on
the local engine; each shard is one Ray task (or one actor call) that runs
:func:`~seeing_sound.engine.jobs.run_shard_job`, publishes its files on the shared output
folder by rename and writes its done-marker there, exactly as locally. A stage that loads a
model (:attr:`Stage.needs_setup`) runs on actors, each reserving ``num_cpus_per_worker`` /
``num_gpus_per_worker`` and calling ``setup()`` once; the others run as plain tasks with the
same reservations (a worker process that runs several shards still sets up once).

Failed shards (the stage raised, the worker or actor died) go again until ``shard_retries`` is
spent; a dead actor is replaced. The driver keeps few shards in flight per worker, so memory on
the driver is bounded by the plan, never by the outputs.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
from collections.abc import Callable

from seeing_sound.engine.config import EngineConfig
from seeing_sound.engine.jobs import run_shard_job
from seeing_sound.engine.retries import Attempts
from seeing_sound.engine.stage import ShardStats, ShardTask, Stage
from seeing_sound.errors import SeeingSoundError

log = logging.getLogger(__name__)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SeeingSoundError(
            "engine 'ray' needs Ray: pip install 'seeing-sound[ray]' (or 'ray[data]>=2.30,<3')"
        ) from None
    return ray


def connect(cfg: EngineConfig):
    """The ``ray`` module, connected: the running session, ``cfg.ray_address``, or a new local Ray."""
    ray = _import_ray()
    if not ray.is_initialized():
        kwargs: dict = {"include_dashboard": False, "log_to_driver": True}
        if cfg.ray_address is not None:
            kwargs["address"] = cfg.ray_address
        log.info("ray: connecting to %s", cfg.ray_address or "a new local Ray")
        ray.init(**kwargs)
    return ray


def _slots(ray, cfg: EngineConfig, workers: int, n: int) -> int:
    """How many shards run at once: what the cluster's CPUs/GPUs fit (``workers`` > 1 caps it)."""
    res = ray.cluster_resources()
    fit = math.floor(res.get("CPU", 1) / cfg.num_cpus_per_worker + 1e-9)
    if cfg.num_gpus_per_worker > 0:
        fit = min(fit, math.floor(res.get("GPU", 0) / cfg.num_gpus_per_worker + 1e-9))
        if fit < 1:
            raise SeeingSoundError(
                f"num_gpus_per_worker={cfg.num_gpus_per_worker} but the Ray cluster has {res.get('GPU', 0)} GPUs"
            )
    fit = max(1, fit)
    if workers > 1:
        fit = min(fit, workers)
    return max(1, min(fit, n))


def run_on_ray(
    stage: Stage,
    pending: list[ShardTask],
    root: str,
    cfg: EngineConfig,
    *,
    workers: int,
    on_done: Callable[[ShardStats], None],
    attempts: Attempts,
    token: str,
) -> None:
    """Run ``pending`` shards on Ray; every finished one goes to ``on_done``; failures to ``attempts``."""
    if not pending:
        return
    ray = connect(cfg)
    slots = _slots(ray, cfg, workers, len(pending))
    opts = {"num_cpus": cfg.num_cpus_per_worker, "num_gpus": cfg.num_gpus_per_worker}
    log.info("%s: %d shards on Ray, %d at a time (%s)", stage.name, len(pending), slots,
             "actors" if stage.needs_setup else "tasks")  # fmt: skip
    if stage.needs_setup:
        _run_actors(ray, stage, pending, root, opts, slots, on_done, attempts, token)
    else:
        _run_tasks(ray, stage, pending, root, opts, slots, on_done, attempts, token)


def _cause(ray, exc: BaseException) -> BaseException:
    """The stage's own exception inside a RayTaskError (so callers see the same types as locally)."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        try:
            cause = exc.as_instanceof_cause()
        except Exception:  # an unpicklable cause: keep Ray's error
            return exc
        return getattr(cause, "cause", None) or cause
    return exc


def _run_tasks(ray, stage, pending, root, opts, slots, on_done, attempts, token) -> None:
    remote = ray.remote(run_shard_job).options(max_retries=0, **opts)
    stage_ref = ray.put(stage)  # pickled once for the whole stage, not once per shard
    queue = collections.deque(pending)
    in_flight: dict = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < 2 * slots:
                task = queue.popleft()
                in_flight[remote.remote(stage_ref, task, root, token)] = task
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                task = in_flight.pop(ref)
                try:
                    on_done(ray.get(ref))
                except (ray.exceptions.RayError, Exception) as exc:
                    if attempts.failed(task, _cause(ray, exc)):
                        queue.append(task)
    except BaseException:
        for ref in in_flight:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise


def _run_actors(ray, stage, pending, root, opts, slots, on_done, attempts, token) -> None:
    @ray.remote(max_restarts=0, max_task_retries=0)
    class ShardActor:
        """One worker: holds the stage, set up once by its first shard."""

        def __init__(self, stage: Stage):
            self.stage = stage

        def run(self, task: ShardTask, root: str, token: str) -> ShardStats:
            return run_shard_job(self.stage, task, root, token)

    actor_cls = ShardActor.options(**opts)  # type: ignore[attr-defined]
    stage_ref = ray.put(stage)
    idle = [actor_cls.remote(stage_ref) for _ in range(slots)]
    queue = collections.deque(pending)
    in_flight: dict = {}  # ref -> (task, actor)
    try:
        while queue or in_flight:
            while queue and idle:
                task, actor = queue.popleft(), idle.pop()
                in_flight[actor.run.remote(task, root, token)] = (task, actor)
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                task, actor = in_flight.pop(ref)
                try:
                    on_done(ray.get(ref))
                except ray.exceptions.RayActorError as exc:  # the worker died: a new one takes its place
                    log.warning("%s: a Ray actor died; starting a new one", stage.name)
                    ray.kill(actor, no_restart=True)
                    actor = actor_cls.remote(stage_ref)
                    if attempts.failed(task, exc):
                        queue.append(task)
                except (ray.exceptions.RayError, Exception) as exc:
                    if attempts.failed(task, _cause(ray, exc)):
                        queue.append(task)
                idle.append(actor)
    finally:  # also on Ctrl-C: killing the actors stops their shards (no done-marker: redone next run)
        for actor in idle + [a for _, a in in_flight.values()]:
            ray.kill(actor, no_restart=True)
