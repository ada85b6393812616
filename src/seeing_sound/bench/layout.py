"""Where things live inside a prepared benchmark folder (BENCH): one place, so readers and writers agree.

The layout is a contract that ``seeing-sound evaluate`` and users rely on::

    BENCH/benchmark.json        name, source, protocol, seed, counts
    BENCH/metadata.parquet      one row per prepared item (METADATA_SCHEMA)
    BENCH/errors.parquet        one row per skipped or failed item (ERRORS_SCHEMA)
    BENCH/audio/{item_id}.wav   the whole audio track, 16 kHz mono PCM 16
    BENCH/images/{item_id}.png  the video's center frame, RGB
    BENCH/shards/shard-NNNNNN/  the resumable stage's own output (the flat files above are hard links
                                to these, or copies where the filesystem has no hard links)
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from seeing_sound.engine import shard_name

BENCH_FORMAT = "seeing-sound-benchmark"
BENCH_FORMAT_VERSION = 1

BENCHMARK_JSON = "benchmark.json"
METADATA = "metadata.parquet"
ERRORS = "errors.parquet"
AUDIO_DIR = "audio"
IMAGES_DIR = "images"

_METADATA_FIELDS: list[pa.Field] = [
    pa.field("item_id", pa.string()),
    pa.field("label", pa.string()),
    pa.field("split", pa.string()),
    pa.field("source", pa.string()),  # the video, relative to --src
    pa.field("audio_path", pa.string()),  # relative to BENCH
    pa.field("image_path", pa.string()),  # relative to BENCH
    pa.field("frame_time_s", pa.float64()),  # presentation time of the extracted frame, from the video's start
    pa.field("duration_s", pa.float64()),  # length of the stored audio
]
_ERRORS_FIELDS: list[pa.Field] = [
    pa.field("item_id", pa.string()),
    pa.field("label", pa.string()),
    pa.field("split", pa.string()),
    pa.field("source", pa.string()),
    pa.field("status", pa.string()),  # 'skipped' (never decoded: e.g. the video is missing) | 'failed'
    pa.field("reason", pa.string()),  # a short stable key: no_audio, unreadable, empty_file, ...
    pa.field("detail", pa.string()),
]
METADATA_SCHEMA = pa.schema(_METADATA_FIELDS)
ERRORS_SCHEMA = pa.schema(_ERRORS_FIELDS)


def audio_rel(item_id: str) -> str:
    return f"{AUDIO_DIR}/{item_id}.wav"


def image_rel(item_id: str) -> str:
    return f"{IMAGES_DIR}/{item_id}.png"


def shard_rel(index: int) -> str:
    return f"shards/{shard_name(index)}"


def shard_metadata_rel(index: int) -> str:
    return f"{shard_rel(index)}/{METADATA}"


def shard_errors_rel(index: int) -> str:
    return f"{shard_rel(index)}/{ERRORS}"


def benchmark_json(root: str | Path) -> Path:
    return Path(root) / BENCHMARK_JSON
