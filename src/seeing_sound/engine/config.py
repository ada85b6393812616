"""How and where a stage's shards run: engine, Ray resources, shard slice, retries, the failure gate.

These settings never change what a shard holds (the same stage code runs on every engine and
writes the same bytes), so none of them is part of a stage's fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass

from seeing_sound.config import Config, ConfigError, option

ENGINES = ("local", "ray")


def parse_shard_slice(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``; raises ``ValueError`` naming the text."""
    try:
        i_text, n_text = str(text).split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ValueError(f"shard slice must be I/N (two whole numbers, e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard slice I/N needs N >= 1 and 0 <= I < N, got {text!r}")
    return i, n


@dataclass(frozen=True)
class EngineConfig(Config):
    """Where shards run. ``local``: this process or ``workers`` processes; ``ray``: Ray tasks/actors."""

    engine: str = option(
        "local", "local: this machine (--workers processes); ray: Ray tasks or actors (ours)", choices=ENGINES
    )
    ray_address: str | None = option(
        None, "ray: auto (the running cluster) or HOST:PORT (ours)", default_text="a local Ray started for this run"
    )
    num_cpus_per_worker: float = option(1.0, "ray: CPUs each worker (task or actor) reserves (ours)", gt=0)
    num_gpus_per_worker: float = option(0.0, "ray: GPUs each worker reserves; 0.5: two per GPU (ours)", min=0)
    shard_slice: str | None = option(
        None, "I/N: run only the shards with index % N == I; run N of these anywhere, then once without it (ours)"
    )
    shard_retries: int = option(
        2, "retries of a failed shard (exception or worker crash) before it is reported (ours)", min=0
    )
    slice_wait_s: float = option(
        6 * 3600.0,
        "multi-stage commands (sonify): how long a slice waits for the other slices between stages (ours)",
        min=0,
    )
    max_failed: float | None = option(
        None,
        "fail the run (exit 1) when more than this fraction of its items failed (0: any failure; a run that "
        "wrote nothing usable always fails) (ours)",
        min=0.0,
        max=1.0,
        default_text="off: partial runs succeed",
    )
    barrier: bool = option(
        False, "after its own shards, a slice waits until every shard of the stage is done; set by sonify (ours)"
    )

    def validate(self) -> None:
        if self.shard_slice is not None:
            try:
                parse_shard_slice(self.shard_slice)
            except ValueError as exc:
                raise ConfigError("shard_slice", self.shard_slice, str(exc).split(", got")[0]) from None
        if self.ray_address is not None and self.engine != "ray":
            raise ConfigError("ray_address", self.ray_address, "needs engine='ray'")

    @property
    def slice(self) -> tuple[int, int] | None:
        """``(I, N)`` of ``shard_slice``, or None for all shards."""
        return None if self.shard_slice is None else parse_shard_slice(self.shard_slice)
