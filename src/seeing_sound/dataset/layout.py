"""Where things live inside a pairs dataset folder."""

from __future__ import annotations

from pathlib import Path

from seeing_sound.engine import shard_name

DATASET_FORMAT = "seeing-sound-pairs"
DATASET_FORMAT_VERSION = 1


def card_path(root: Path) -> Path:
    return Path(root) / "dataset.json"


def metadata_rel(index: int) -> str:
    return f"metadata/{shard_name(index)}.parquet"


def webdataset_rel(index: int) -> str:
    """The WebDataset tar of shard ``index`` (``sonify --copy-images``)."""
    return f"webdataset/{shard_name(index)}.tar"


def audio_dir_rel(index: int) -> str:
    return f"audio/{shard_name(index)}"


def audio_rel(index: int, row: int, fmt: str) -> str:
    return f"{audio_dir_rel(index)}/{row:06d}.{fmt}"
