"""The one interface every stage implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: a stable shard index and the (picklable) item descriptors it covers."""

    index: int
    items: tuple


@dataclass
class ShardStats:
    """What a shard did. ``seconds`` is filled in by the runner, not the stage."""

    shard: int
    items_in: int
    items_out: int
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ShardStats:
        return cls(**{k: d[k] for k in ("shard", "items_in", "items_out", "errors", "seconds", "extra") if k in d})


class Stage(abc.ABC):
    """A stage turns shards of input items into files, one shard at a time.

    Subclasses are small picklable objects (config only): they may be sent to another
    process or a Ray actor. ``process`` must be a pure function of the task and the
    stage's config, so that a rerun of a shard writes byte-identical files.
    """

    #: folder name under ``<root>/_stages/`` that holds plan and done-markers
    name: str = "stage"

    @abc.abstractmethod
    def plan(self) -> Sequence[ShardTask]:
        """All shards of this stage, in stable order (same inputs -> same shards)."""

    @abc.abstractmethod
    def outputs(self, index: int) -> list[str]:
        """Paths (relative to the stage root) of the files shard ``index`` produces."""

    @abc.abstractmethod
    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        """Write this shard's ``outputs`` under ``scratch`` (same relative paths)."""

    def fingerprint(self) -> dict:
        """Settings that must match for a rerun to reuse finished shards."""
        return {}
