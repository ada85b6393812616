"""The one interface every stage implements."""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_SETUP_LOCK = threading.Lock()


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: a stable shard index and the (picklable) item descriptors it covers.

    ``items`` holds only this shard's items (a few hundred refs, or the path of an input file
    on shared storage); ``count`` is the number of items it stands for when that is not
    ``len(items)`` (an input file of 1,000 rows is one descriptor and ``count=1000``).
    """

    index: int
    items: tuple
    count: int | None = None

    @property
    def size(self) -> int:
        """Items this shard covers (for progress and reports)."""
        return len(self.items) if self.count is None else self.count


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

    A stage object is its config only: small, picklable and O(1) in the number of input items
    (the items travel in the :class:`ShardTask` of their own shard), so it can be sent to another
    process, a Ray task or a Ray actor per shard at no cost. :meth:`setup` loads what
    :meth:`process` needs (models, indexes, an opened pool) once per worker; what it builds stays
    on that worker (it is never pickled). ``process`` must be a pure function of the task, the
    stage's config and what ``setup`` built, so a rerun of a shard writes byte-identical files
    on any engine.
    """

    #: folder name under ``<root>/_stages/`` that holds plan and done-markers
    name: str = "stage"

    def plan(self) -> Sequence[ShardTask]:
        """All shards of this stage, in stable order (same inputs -> same shards).

        Stages whose items come from outside (a file listing) leave this out and their run
        function passes ``tasks=`` to :func:`~seeing_sound.engine.run_stage` instead.
        """
        raise TypeError(f"stage {self.name!r} is planned by its run function: pass tasks= to run_stage")

    @abc.abstractmethod
    def outputs(self, index: int) -> list[str]:
        """Paths (relative to the stage root) of the files shard ``index`` produces."""

    @abc.abstractmethod
    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        """Write this shard's ``outputs`` under ``scratch`` (same relative paths)."""

    def fingerprint(self) -> dict:
        """Settings that must match for a rerun to reuse finished shards."""
        return {}

    def task_size(self, task: ShardTask) -> int:
        """Items ``task`` will report as ``items_in`` (the progress bar's unit): ``task.size`` unless the
        descriptors stand for ranges (a stage planning ``(start, stop)`` pairs overrides this)."""
        return task.size

    def setup(self) -> None:  # noqa: B027 (optional hook: most stages load nothing)
        """Load models, indexes and pools once per worker (process, thread pool or Ray actor).

        Store them as attributes of ``self``; they are dropped when the stage is pickled, so a
        stage sent to another worker is set up there again. The default loads nothing.
        """

    @property
    def needs_setup(self) -> bool:
        """Whether this stage loads something in :meth:`setup` (Ray runs those as actors)."""
        return type(self).setup is not Stage.setup

    def ensure_setup(self) -> None:
        """Run :meth:`setup` once for this object (thread-safe, idempotent)."""
        if self.__dict__.get("_setup_done"):
            return
        with _SETUP_LOCK:
            if self.__dict__.get("_setup_done"):
                return
            before = set(self.__dict__)
            self.setup()
            self.__dict__["_setup_attrs"] = tuple(sorted(set(self.__dict__) - before))
            self.__dict__["_setup_done"] = True

    def provide(self, **built: Any) -> None:
        """Hand this object what :meth:`setup` would build (already loaded by the caller, in-process).

        A run function that had to load an index to check its inputs gives it to the stage
        instead of loading it twice; like setup's, these attributes never travel with a pickle,
        so another worker still runs :meth:`setup` itself.
        """
        with _SETUP_LOCK:
            self.__dict__.update(built)
            self.__dict__["_setup_attrs"] = tuple(sorted({*self.__dict__.get("_setup_attrs", ()), *built}))
            self.__dict__["_setup_done"] = True

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in state.pop("_setup_attrs", ()):
            state.pop(key, None)
        state.pop("_setup_done", None)
        return state
