"""Arguments shared by several commands."""

from __future__ import annotations

import argparse

from seeing_sound.cli.options import record_hints


def add_stage_args(p: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--overwrite``: every resumable stage takes them."""
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    p.add_argument("--overwrite", action="store_true", help="redo shards that are already done")
    record_hints(p, {"overwrite=True": "--overwrite"})


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
