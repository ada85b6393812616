"""Retries of failed shards: how many attempts a shard gets, and which failures are worth another."""

from __future__ import annotations

import logging

from seeing_sound.engine.outcome import is_environment_error
from seeing_sound.engine.shards import shard_name
from seeing_sound.engine.stage import ShardTask
from seeing_sound.errors import SeeingSoundError

log = logging.getLogger(__name__)


class Attempts:
    """Counts each shard's failed attempts; says whether to retry; keeps the final failures."""

    def __init__(self, stage_name: str, retries: int):
        self.name, self.retries = stage_name, retries
        self.counts: dict[int, int] = {}
        self.failures: dict[int, BaseException] = {}

    def failed(self, task: ShardTask, exc: BaseException) -> bool:
        """Record a failed attempt; True if the shard should run again.

        An environment error (full or read-only output) is raised at once: no retry can fix it, and
        the other shards would only fail the same way.
        """
        if is_environment_error(exc):
            raise exc
        n = self.counts[task.index] = self.counts.get(task.index, 0) + 1
        # A SeeingSoundError (a missing model, a missing package) fails the same way every time:
        # retrying it would only load a 7B model three times before the same one-line error.
        if n <= self.retries and not isinstance(exc, SeeingSoundError):
            log.warning("%s: %s failed (%s: %s); retry %d of %d", self.name, shard_name(task.index),
                        type(exc).__name__, one_line(exc), n, self.retries)  # fmt: skip
            return True
        if not isinstance(exc, SeeingSoundError):  # that one's own line is printed once, when it is raised
            log.error("%s: %s failed %d time(s), last: %s: %s", self.name, shard_name(task.index), n,
                      type(exc).__name__, one_line(exc))  # fmt: skip
        self.failures[task.index] = exc
        return False


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def raise_failed(stage_name: str, failed: list[int], first: BaseException, attempts: dict[int, int]) -> None:
    """Raise the first failed shard's own exception (same type as locally), with a note naming all failures.

    ``attempts``: shard -> attempts it had. A :class:`SeeingSoundError` (a missing model, a bad setting:
    the same for every shard, never retried) is raised as it is: its one line says what to fix, and a
    second ERROR line about shards would only bury it.
    """
    listed = ", ".join(shard_name(i) for i in failed[:5]) + (", ..." if len(failed) > 5 else "")
    tries = max((attempts.get(i, 1) for i in failed), default=1)  # what ran, not what was allowed
    note = (
        f"{stage_name}: {len(failed)} shard(s) failed after {tries} attempt(s) ({listed}); "
        "the other shards are done: rerun to retry the failed ones"
    )
    if not isinstance(first, SeeingSoundError):
        log.error("%s", note)
    add_note = getattr(first, "add_note", None)  # Python >= 3.11
    if add_note is not None:
        add_note(note)
    raise first
