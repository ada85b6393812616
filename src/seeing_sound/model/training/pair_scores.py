"""Pair scores (``seeing-sound score``'s ``scores.parquet``): the file format, and the filter
``train --min-pair-score`` and ``export hf --min-pair-score`` apply.

A scores file is one row per pair of one dataset: ``pair_id``, ``row`` (the pair's row in the
dataset), ``pair_score`` (the AIS cosine of the models the file names as its ``score_key``; null for
a pair that could not be scored, ``error`` says why), ``ais_<key>`` (one column per pair of models
ever scored into that folder) and the retrieval scores the dataset stores. Its Parquet metadata
(:data:`META_KEY`) names the models of each key and the dataset it scored: its root and
``pairs_sha256``, the digest of its pairs (:func:`pairs_sha256`: each pair's id with the sha256 of
its mixture and its image, the ``mixture_sha256`` and ``image_sha256`` columns of the file), which
follows the dataset wherever it is copied and changes when it is sonified again (another seed, pool
or top-k gives the same pair ids, with one VLM, but other mixtures). A reader checks the file's own
rows against that digest (a file whose rows were rewritten is refused) and the digest against the
dataset's (a file made for another dataset is refused).

The format lives here, below both the writer (:mod:`seeing_sound.scoring`) and its readers
(training, the Hub export), so one definition serves all three.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seeing_sound.errors import SeeingSoundError

log = logging.getLogger(__name__)

#: the file ``seeing-sound score`` writes in its output folder
SCORES_FILE = "scores.parquet"
#: where a dataset's scores are looked for when no file is named: ``score DATASET --out DATASET/scores``
DEFAULT_SCORES_DIR = "scores"
#: the Parquet schema-metadata key holding the file's card (JSON)
META_KEY = b"seeing_sound_scores"
FORMAT = "seeing-sound pair scores"
#: the column a threshold reads unless told otherwise
DEFAULT_COLUMN = "pair_score"
#: the prefix of one model pair's AIS column (``ais_<score key>``)
KEY_PREFIX = "ais_"


#: the version of the card this module reads and ``seeing-sound score`` writes
CARD_VERSION = 2
#: the columns of a scores file that name its pairs (:func:`pairs_sha256`'s input)
IDENTITY_COLUMNS = ("pair_id", "mixture_sha256", "image_sha256")

#: one pair's identity: its id, and the sha256 of its mixture and of its image (None where unknown)
Pair = tuple[str, str | None, str | None]


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


def dataset_pairs(metadata) -> list[Pair]:
    """``(pair_id, mixture_sha256, image_sha256)`` of each row of a dataset's metadata table (a hash
    column the dataset lacks reads as None)."""
    n = metadata.num_rows
    cols = [metadata.column(c).to_pylist() if c in metadata.column_names else [None] * n for c in IDENTITY_COLUMNS]
    return [(str(p), _text(m), _text(i)) for p, m, i in zip(*cols, strict=True)]


def pairs_sha256(pairs: Sequence[Sequence[Any]]) -> str:
    """The digest of a dataset's pairs: sha256 of its sorted ``(pair_id, mixture_sha256, image_sha256)``
    rows (duplicates kept), one JSON line each. The same pairs give the same digest wherever they
    live; the same images sonified again (other mixtures) or rows rewritten give another one."""
    import hashlib

    lines = sorted(json.dumps([str(p[0]), _text(p[1]), _text(p[2])]) for p in pairs)
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8", "surrogatepass") + b"\n")
    return h.hexdigest()


def scores_path(path: str | Path) -> Path:
    """``path`` itself, or ``path/scores.parquet`` for a folder (the output of ``seeing-sound score``)."""
    p = Path(path)
    return p / SCORES_FILE if p.is_dir() else p


def default_scores(dataset: str | Path) -> Path:
    """Where a dataset's scores are read from when none are named: ``DATASET/scores/scores.parquet``."""
    return Path(dataset) / DEFAULT_SCORES_DIR / SCORES_FILE


@dataclass
class PairScores:
    """One scores file: its card (metadata) and ``{pair_id: value}`` of one column (None: no score)."""

    path: Path
    card: dict
    column: str
    values: dict[str, float | None]

    @property
    def sha256(self) -> str | None:
        return self.card.get("pairs_sha256")


def read_card(path: str | Path) -> dict:
    """The card of a scores file (its Parquet metadata); raises naming the file when it is not one."""
    import pyarrow.parquet as pq

    file = scores_path(path)
    if not file.is_file():
        raise SeeingSoundError(
            f"pair scores {file} do not exist; compute them with `seeing-sound score DATASET --out DATASET/scores` "
            "(where train and export look by default), or name the file with pair_scores"
        )
    try:
        meta = pq.read_schema(file).metadata or {}
    except Exception as exc:  # not Parquet
        raise SeeingSoundError(f"pair scores {file} are not a Parquet file ({type(exc).__name__})") from exc
    try:
        card = json.loads(meta[META_KEY]) if META_KEY in meta else None
    except ValueError:
        card = None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise SeeingSoundError(f"{file} is not a scores file of `seeing-sound score` (no {META_KEY.decode()} card)")
    if card.get("version") != CARD_VERSION:
        raise SeeingSoundError(
            f"{file} was written by another version of `seeing-sound score` (card version {card.get('version')}, "
            f"this one reads {CARD_VERSION}): score the dataset again"
        )
    if not isinstance(card.get("pairs_sha256"), str) or not card["pairs_sha256"]:
        raise SeeingSoundError(f"{file} names no dataset (its card has no pairs_sha256): refusing it; score again")
    return card


def read_scores(path: str | Path, column: str = DEFAULT_COLUMN) -> PairScores:
    """``column`` of a scores file by pair id; a null or non-finite value is None (the pair has no score)."""
    import pyarrow.parquet as pq

    file = scores_path(path)
    card = read_card(file)
    names = pq.read_schema(file).names
    if column not in names:
        available = [n for n in names if n == DEFAULT_COLUMN or n.startswith(KEY_PREFIX)]
        raise SeeingSoundError(f"{file} has no score column {column!r}; it has {', '.join(available)}")
    missing = [c for c in IDENTITY_COLUMNS if c not in names]
    if missing:
        raise SeeingSoundError(f"{file} has no {', '.join(missing)} column: not a file of `seeing-sound score`")
    table = pq.read_table(file, columns=[*IDENTITY_COLUMNS, column]).to_pydict()
    rows = list(zip(*(table[c] for c in IDENTITY_COLUMNS), strict=True))
    if pairs_sha256(rows) != card["pairs_sha256"] or len(rows) != card.get("pairs"):
        raise SeeingSoundError(
            f"{file}: its {len(rows)} rows do not match its card ({card.get('pairs')} pairs, pairs_sha256 "
            f"{str(card['pairs_sha256'])[:12]}...): the file was changed after scoring, refusing it; score again"
        )
    values: dict[str, float | None] = {}
    for pid, v in zip(table["pair_id"], table[column], strict=True):
        values[str(pid)] = float(v) if v is not None and math.isfinite(v) else None
    return PairScores(file, card, column, values)


@dataclass
class ScoreFilter:
    """What a threshold kept of one dataset: the rows left out and the counts a run records."""

    kept: int
    below: int
    unscored: int
    dropped_rows: set[int]
    record: dict


def apply_threshold(
    scores: PairScores, pairs: Sequence[Sequence[Any]], threshold: float, *, dataset: str, check_identity: bool = True
) -> ScoreFilter:
    """Rows of a dataset whose score is below ``threshold`` or missing.

    ``pairs``: the dataset's ``(pair_id, mixture_sha256, image_sha256)`` in row order
    (:func:`dataset_pairs`). A pair is kept when its score is ``>= threshold``; a pair the file has no
    finite score for (it failed to score) is left out and counted as ``unscored``. With
    ``check_identity`` the file must have scored these very pairs (its ``pairs_sha256`` equals theirs):
    a card without the digest, or with another one, is refused.
    """
    ids = [str(p[0]) for p in pairs]
    if check_identity and scores.sha256 is None:
        raise SeeingSoundError(
            f"pair scores {scores.path} name no dataset (no pairs_sha256 in the card): refusing them"
        )
    if check_identity and scores.sha256 != pairs_sha256(pairs):
        raise SeeingSoundError(
            f"pair scores {scores.path} were computed for another dataset ({scores.card.get('dataset_root')}, "
            f"{scores.card.get('pairs')} pairs, or its mixtures or images before they changed), not {dataset}: "
            f"score it with `seeing-sound score {dataset} --out DIR`"
        )
    dropped: set[int] = set()
    below = unscored = 0
    for row, pid in enumerate(ids):
        v = scores.values.get(pid)
        if v is None:
            unscored += 1
            dropped.add(row)
        elif v < threshold:
            below += 1
            dropped.add(row)
    kept = len(ids) - len(dropped)
    record = {
        "file": str(scores.path),
        "dataset": dataset,
        "column": scores.column,
        "score_key": scores.card.get("score_key") if scores.column == DEFAULT_COLUMN else None,
        "models": (scores.card.get("keys") or {}).get(
            scores.card.get("score_key") if scores.column == DEFAULT_COLUMN else scores.column.removeprefix(KEY_PREFIX)
        ),
        "min_pair_score": threshold,
        "pairs": len(ids),
        "kept": kept,
        "below": below,
        "unscored": unscored,
    }
    if unscored:
        log.warning("min_pair_score: %d of %d pairs of %s have no score in %s: left out", unscored, len(ids), dataset,
                    scores.path)  # fmt: skip
    return ScoreFilter(kept, below, unscored, dropped, record)


def threshold_dataset(
    dataset: str | Path, threshold: float, *, scores: str | Path | None = None, column: str = DEFAULT_COLUMN
) -> ScoreFilter:
    """:func:`apply_threshold` for one pairs dataset, its scores read from ``scores`` (default
    ``DATASET/scores/scores.parquet``)."""
    from seeing_sound.dataset import PairsDataset

    if not math.isfinite(threshold):
        raise ValueError(f"min_pair_score must be a finite number, got {threshold}")
    ds = PairsDataset.open(dataset)
    file = scores_path(scores) if scores is not None else default_scores(dataset)
    got = read_scores(file, column)
    return apply_threshold(got, dataset_pairs(ds.metadata), threshold, dataset=str(dataset))
