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


def read_card(root: str | Path) -> dict:
    """``BENCH/benchmark.json`` as a dict; :class:`~seeing_sound.errors.SeeingSoundError` (one line) when it
    is missing, not JSON or not a JSON object.

    Only ``bench prepare`` writes every field; a card made by hand (or by another tool) following the
    documented layout may lack any of them (``kind``, ``counts``, ``protocol``...), so readers use
    ``.get`` and say "unknown" where a field is absent.
    """
    import json

    from seeing_sound.errors import SeeingSoundError

    path = benchmark_json(root)
    if not path.is_file():
        raise SeeingSoundError(f"{root} is not a prepared benchmark: benchmark.json missing")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SeeingSoundError(f"{path} is not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(card, dict):
        raise SeeingSoundError(f"{path} must hold a JSON object, not {type(card).__name__}")
    return card


def metadata_rows(root: str | Path) -> int | None:
    """Rows of ``BENCH/metadata.parquet`` from its footer (None where there is no readable one)."""
    import pyarrow.parquet as pq

    path = Path(root) / METADATA
    try:
        return int(pq.read_metadata(path).num_rows) if path.is_file() else None
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return None
