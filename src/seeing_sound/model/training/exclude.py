"""``train --exclude-pairs FILE``: leave out the pairs a ``seeing-sound leakage`` check flagged.

``leakage TRAIN BENCH --out CHECK`` writes ``CHECK/exclude_pairs.txt`` (one ``pair_id`` a line) and
``CHECK/leakage.json``, whose ``train.root`` is the dataset those ids belong to. Pair ids are only
unique inside one dataset (two datasets may both hold ``pair-0001``), so a file beside its
``leakage.json`` applies to that dataset alone; a file without one applies to every dataset of the
run, and an id found in several of them is refused as ambiguous.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from seeing_sound.errors import SeeingSoundError
from seeing_sound.retrieval.exclude import read_id_list

log = logging.getLogger(__name__)


def _leakage_root(path: Path) -> Path | None:
    """The training dataset ``leakage.json`` beside ``path`` names, or None without one."""
    card = path.parent / "leakage.json"
    if not card.is_file():
        return None
    root = (json.loads(card.read_text()).get("train") or {}).get("root")
    return Path(root).resolve() if root else None


def _pair_rows(root: str) -> dict[str, int]:
    from seeing_sound.dataset import PairsDataset

    ids = PairsDataset.open(root).metadata.column("pair_id").to_pylist()
    return {str(pid): row for row, pid in enumerate(ids)}


def read_exclusions(files: Sequence[str], datasets: Sequence[str]) -> tuple[list[set[int]], list[dict]]:
    """The dataset rows each exclusion file leaves out (one set per dataset) and a record per file."""
    excluded: list[set[int]] = [set() for _ in datasets]
    records: list[dict] = []
    if not files:
        return excluded, records
    roots = [Path(d).resolve() for d in datasets]
    rows_of: dict[int, dict[str, int]] = {}
    for name in files:
        path = Path(name)
        listed = read_id_list(path, "exclude_pairs", "pair")  # the format sonify's exclusion lists share
        ids = list(listed.ids) if listed is not None else []
        target = _leakage_root(path)
        if target is not None and target not in roots:
            raise SeeingSoundError(
                f"exclude_pairs: {path} lists pairs of {target} (its leakage.json), which is not among the "
                f"datasets ({', '.join(map(str, datasets))})"
            )
        targets = [roots.index(target)] if target is not None else list(range(len(datasets)))
        for k in targets:
            if k not in rows_of:
                rows_of[k] = _pair_rows(datasets[k])
        matched = unmatched = 0
        for pid in ids:
            hits = [k for k in targets if pid in rows_of[k]]
            if len(hits) > 1:
                raise SeeingSoundError(
                    f"exclude_pairs: pair id {pid!r} of {path} is in several datasets "
                    f"({', '.join(datasets[k] for k in hits)}); keep the file beside its leakage.json, "
                    "which names the dataset it belongs to"
                )
            if hits:
                excluded[hits[0]].add(rows_of[hits[0]][pid])
                matched += 1
            else:
                unmatched += 1
        if unmatched:
            log.warning("exclude_pairs: %d of %d ids in %s match no pair of its dataset(s)", unmatched, len(ids), path)
        records.append(
            {
                "file": str(path),
                "datasets": [datasets[k] for k in targets],
                "ids": len(ids),
                "sha256": None if listed is None else listed.sha256,
                "matched": matched,
                "unmatched": unmatched,
            }
        )
    return excluded, records
