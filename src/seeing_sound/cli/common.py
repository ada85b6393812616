"""Arguments shared by several commands."""

from __future__ import annotations

import argparse
import math

from seeing_sound.cli.options import add_config_options, config_from_args, record_hints

#: EngineConfig fields that are command-line options (``barrier`` is set by multi-stage commands)
ENGINE_OPTIONS = (
    "engine",
    "ray_address",
    "num_cpus_per_worker",
    "num_gpus_per_worker",
    "shard_slice",
    "shard_retries",
    "slice_wait_s",
    "max_failed",
)


def add_stage_args(p: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--overwrite``: every resumable stage takes them."""
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    p.add_argument("--overwrite", action="store_true", help="redo shards that are already done")
    record_hints(p, {"overwrite=True": "--overwrite"})


def add_engine_args(p: argparse.ArgumentParser, *, multi_stage: bool = False) -> None:
    """``--engine local|ray``, Ray resources, ``--shard-slice I/N`` and ``--shard-retries`` (see docs/scale.md).

    ``multi_stage``: the command runs several stages in turn, so a slice waits for the others
    between them (``--slice-wait``).
    """
    from seeing_sound.engine import EngineConfig

    g = p.add_argument_group("engine and scale-out (docs/scale.md)")
    include = ENGINE_OPTIONS if multi_stage else tuple(n for n in ENGINE_OPTIONS if n != "slice_wait_s")
    add_config_options(
        g,
        EngineConfig,
        include=include,
        flags={"slice_wait_s": "--slice-wait"},
        metavars={"shard_slice": "I/N", "ray_address": "auto|HOST:PORT", "num_cpus_per_worker": "C",
                  "num_gpus_per_worker": "G", "shard_retries": "N", "slice_wait_s": "SECONDS",
                  "max_failed": "FRACTION"},
    )  # fmt: skip


def engine_from_args(args: argparse.Namespace):
    """The :class:`~seeing_sound.engine.EngineConfig` of the parsed ``add_engine_args`` options."""
    from seeing_sound.engine import EngineConfig

    return config_from_args(args, EngineConfig)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def plus_minus(mean: float, spread: float, digits: int = 4) -> str:
    """``mean ± spread`` for people: the mean at ``digits`` significant digits and the spread rounded
    to the same decimal (``0.001160 ± 0.000000``, never ``± 1.9e-16``). JSON outputs keep both whole."""
    if not (mean and math.isfinite(mean) and math.isfinite(spread)):
        return f"{mean:.{digits}g} ± {spread:.{digits}g}"
    exponent = math.floor(math.log10(abs(mean)))
    place = digits - 1 - exponent  # decimals of the mean's last significant digit
    if place >= 0 and exponent >= -4:
        return f"{mean:.{place}f} ± {spread:.{place}f}"
    shown = f"{spread:.{place}f}" if place > 0 else f"{round(spread, place):.0f}"
    return f"{mean:.{digits}g} ± {shown}"
