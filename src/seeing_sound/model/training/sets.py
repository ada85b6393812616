"""Several datasets in one run: their feature sets checked against each other, rows numbered across them.

``train DATASET_A DATASET_B ...`` reads each dataset's AST/VAE feature sets (or, ``ast_online``,
its mixtures; ``vae_online``, its images), checks that they can be batched together (same AST
folder, dim, token count and pool; same VAE folder and latent shape; online, one VAE and resolution
for all), and serves them as one :class:`ConcatRows`:
positions ``0 .. n_A - 1`` are A's rows in row order, then B's, and so on. The batch plan runs over
these positions, so it is a pure function of the dataset list (its order included), the row counts
and the seed. :func:`dataset_records` is what the run records of each dataset (path, rows, feature
fingerprints) and :func:`check_resume_datasets` what ``resume`` compares.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seeing_sound.errors import SeeingSoundError
from seeing_sound.features.store import FeatureSet, find_feature_set
from seeing_sound.model.training.data import PairFeatures, PairSources, collate, collate_audio
from seeing_sound.model.training.exclude import read_exclusions
from seeing_sound.model.training.pair_scores import threshold_dataset
from seeing_sound.retrieval.exclude import ids_sha256

log = logging.getLogger(__name__)

#: how ``seeing-sound features`` is told to compute matching sets (named in the mismatch error)
RECOMPUTE_HINT = (
    "compute the features of every dataset with the same models and flags, e.g. "
    "`seeing-sound features DATASET --ast MODEL --ast-pool N --vae MODEL --resolution N`, "
    "or choose matching folders with ast_features / vae_features"
)


@dataclass
class TrainSet:
    """One dataset of a run: its path as given, its feature sets and the rows left out of training.

    ``ast`` None: ``ast_online``; ``vae`` None: ``vae_online`` (``vae_online`` then records the VAE
    and resolution the latents are computed with).
    """

    path: str
    ast: FeatureSet | None
    vae: FeatureSet | None
    excluded: set[int] = field(default_factory=set)
    dropped: int = 0  # rows with features that ``excluded`` left out
    scored_out: set[int] = field(default_factory=set)  # rows min_pair_score left out (part of ``excluded``)
    score_dropped: int = 0  # rows with features that ``scored_out`` left out
    score_record: dict | None = None  # the threshold's file, column, models and counts
    data: PairFeatures | PairSources | None = None
    vae_online: dict | None = None  # {"model", "resolution"} of a vae_online run


class ConcatRows(torch.utils.data.Dataset):
    """The items of several datasets' :class:`PairFeatures`/:class:`PairSources`, one after the other.

    Item ``i`` is ``parts[k][i - offsets[k]]`` with ``"dataset": k`` added. Picklable into
    DataLoader workers (each part opens its files lazily).
    """

    def __init__(self, parts: Sequence[PairFeatures | PairSources]):
        self.parts = list(parts)
        self.offsets = [0, *np.cumsum([len(p) for p in self.parts]).tolist()]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """``(dataset k, position inside part k)`` of position ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(f"position {i} out of range for {len(self)} items")
        k = bisect.bisect_right(self.offsets, i) - 1
        return k, i - self.offsets[k]

    def __getitem__(self, i: int) -> dict:
        k, j = self.locate(int(i))
        return {**self.parts[k][j], "dataset": k}

    def row_of(self, i: int) -> tuple[int, int]:
        """``(dataset k, dataset row)`` of position ``i``."""
        k, j = self.locate(int(i))
        return k, int(self.parts[k].rows[j])

    def validation_positions(self, n: int) -> list[int]:
        """``n`` positions for the validation grid: the first rows, taken from each dataset in turn."""
        if len(self.parts) == 1:
            return list(range(min(n, len(self))))  # the single-dataset grid: its first rows
        out: list[int] = []
        depth = 0
        while len(out) < min(n, len(self)):
            for k, part in enumerate(self.parts):
                if depth < len(part) and len(out) < n:
                    out.append(self.offsets[k] + depth)
            depth += 1
        return out


def open_train_sets(
    datasets: Sequence[str],
    ast_features: str | None,
    vae_features: str | None,
    online: bool,
    vae_online: dict | None = None,
):
    """The :class:`TrainSet` of each dataset (feature folders found, shards checked, compatibility checked).

    ``online``: AST tokens from the mixtures (no AST set opened); ``vae_online`` (``{"model",
    "resolution"}``): latents from the images (no VAE set opened; the dataset must open and name its
    images). Each shard's safetensors header is read and checked once here (:meth:`FeatureSet.check`),
    so a tampered or mismatched shard stops the run before training with one line naming the file.
    """
    sets = [
        TrainSet(
            path=str(d),
            ast=None if online else find_feature_set(d, "ast", ast_features),
            vae=None if vae_online else find_feature_set(d, "vae", vae_features),
            vae_online=dict(vae_online) if vae_online else None,
        )
        for d in datasets
    ]
    if vae_online or online:
        from seeing_sound.dataset import PairsDataset

        for s in sets:  # the mixtures or images are read from the dataset: it must open (a clear error, now)
            PairsDataset.open(s.path)
    for kind in ("ast", "vae"):
        folders = [getattr(s, kind).path.resolve() for s in sets if getattr(s, kind) is not None]
        if len(set(folders)) < len(folders):
            raise SeeingSoundError(
                f"{kind}_features names one folder ({folders[0]}) for several datasets; "
                "give a folder name under each DATASET/features"
            )
        for s in sets:  # every shard's header once, here: dtype, shapes, offsets within the file
            fs = getattr(s, kind)
            if fs is not None:
                fs.check(kind)
    check_compatible(sets, online, vae_online=bool(vae_online))
    return sets


def _ast(s: TrainSet) -> FeatureSet:
    if s.ast is None:
        raise SeeingSoundError(f"{s.path}: no AST features opened (ast_online run)")
    return s.ast


def _pool(card: dict) -> int:
    return int(card.get("pool", 1))


def _vae(s: TrainSet) -> FeatureSet:
    if s.vae is None:
        raise SeeingSoundError(f"{s.path}: no VAE features opened (vae_online run)")
    return s.vae


def check_compatible(sets: Sequence[TrainSet], online: bool = False, vae_online: bool = False) -> None:
    """Raise if the datasets' features cannot go into one batch (naming the datasets and what differs).

    ``online`` (ast_online) and ``vae_online``: the side computed in the run is the same for every
    dataset (one model); only the audio sample rate must agree (one AST filterbank).
    """
    first = sets[0]
    checks: list[tuple[str, Callable[[TrainSet], Any]]] = []
    if not vae_online:
        checks += [
            ("VAE feature folder", lambda s: _vae(s).path.name),
            ("VAE latent shape", lambda s: list(_vae(s).card.get("latent_shape") or [])),
        ]
    if not online:
        checks = [
            ("AST feature folder", lambda s: _ast(s).path.name),
            ("AST dim", lambda s: int(_ast(s).card.get("dim", 0))),
            ("AST token count", lambda s: int(_ast(s).card.get("tokens", 0))),
            ("AST pool", lambda s: _pool(_ast(s).card)),
            *checks,
        ]
    else:
        checks.append(("audio sample rate", lambda s: _dataset_card(s.path).get("sample_rate")))
    diffs = [
        f"{what}: {first.path} has {get(first)!r}, {s.path} has {get(s)!r}"
        for s in sets[1:]
        for what, get in checks
        if get(s) != get(first)
    ]
    if diffs:
        raise SeeingSoundError(f"datasets do not share their features ({'; '.join(diffs)}); {RECOMPUTE_HINT}")


def _dataset_card(path: str) -> dict:
    card = Path(path) / "dataset.json"
    return json.loads(card.read_text()) if card.is_file() else {}


def build_data(sets: Sequence[TrainSet], online: bool) -> tuple[ConcatRows, Callable]:
    """Each set's rows (minus the excluded ones) as one :class:`ConcatRows`, and its collate function.

    ``online``: AST tokens computed in the run; a set with ``vae_online`` has its latents computed too
    (:class:`PairSources` then decodes its images). With both, the rows are the dataset's rows.
    """
    any_online = online or any(s.vae is None for s in sets)
    for s in sets:
        if s.ast is not None and s.vae is not None and not online:
            s.data = PairFeatures(s.ast, s.vae)
        else:
            resolution = int(s.vae_online["resolution"]) if s.vae_online else None
            s.data = PairSources(s.path, None if online else s.ast, s.vae, resolution)
        if s.excluded:
            kept = [r for r in s.data.rows if r not in s.excluded]
            s.score_dropped = sum(1 for r in s.data.rows if r in s.scored_out)
            s.dropped, s.data.rows = len(s.data.rows) - len(kept), kept
        if len(s.data) == 0:
            what = {
                (True, True): "pairs",
                (True, False): "VAE features",
                (False, True): "AST features",
                (False, False): "both AST and VAE features",
            }[(online, s.vae is None)]
            after = " (after exclusions and min_pair_score)" if s.scored_out else " (after exclusions)"
            raise SeeingSoundError(f"no rows have {what} in {s.path}" + (after if s.excluded else ""))
    return ConcatRows([s.data for s in sets if s.data is not None]), collate_audio if any_online else collate


def load_sets(cfg) -> tuple[list[TrainSet], list[dict]]:
    """The run's datasets with their exclusions applied (``cfg``: a TrainConfig); and the exclusion records."""
    vae_online = {"model": cfg.pretrained, "resolution": cfg.vae_resolution} if cfg.vae_online else None
    sets = open_train_sets(cfg.dataset, cfg.ast_features, cfg.vae_features, cfg.ast_online, vae_online)
    excluded, records = read_exclusions(cfg.exclude_pairs, [s.path for s in sets])
    for s, rows in zip(sets, excluded, strict=True):
        s.excluded = rows
    if cfg.min_pair_score is not None:
        for k, s in enumerate(sets):
            scores = cfg.pair_scores[k] if cfg.pair_scores else None
            kept = threshold_dataset(s.path, cfg.min_pair_score, scores=scores, column=cfg.score_column)
            s.scored_out = kept.dropped_rows
            s.excluded = s.excluded | kept.dropped_rows
            s.score_record = kept.record
            log.info(
                "min_pair_score %g: %s keeps %d of %d pairs (%d below, %d without a score)",
                cfg.min_pair_score, s.path, kept.kept, kept.record["pairs"], kept.below, kept.unscored,
            )  # fmt: skip
    return sets, records


def fingerprint(fs: FeatureSet | None) -> str | None:
    """A short digest of a feature set: its card and its shards' names and sizes (no data read)."""
    if fs is None:
        return None
    h = hashlib.sha256(json.dumps(fs.card, sort_keys=True).encode())
    for shard in fs.shards:
        h.update(f"\n{shard.name} {shard.stat().st_size}".encode())
    return h.hexdigest()[:16]


def dataset_records(sets: Sequence[TrainSet]) -> list[dict]:
    """What the run records of each dataset (``train_config.json`` -> ``datasets``)."""
    out = []
    for s in sets:
        assert s.data is not None
        out.append(
            {
                "path": s.path,
                "root": str(Path(s.path).resolve()),
                "rows": len(s.data),
                "excluded": s.dropped,
                "below_min_pair_score": s.score_dropped,  # of ``excluded``: rows the score threshold left out
                "pair_scores": s.score_record,
                # which rows, not only how many: another list of the same length reorders the batches
                "excluded_sha256": ids_sha256(s.excluded) if s.excluded else None,
                "ast_features": None if s.ast is None else s.ast.path.name,
                "ast_fingerprint": fingerprint(s.ast),
                "vae_features": None if s.vae is None else s.vae.path.name,
                "vae_fingerprint": fingerprint(s.vae),
                # vae_online: the VAE (the pretrained checkpoint's) and resolution the latents come from
                "vae_online": s.vae_online,
            }
        )
    return out


def check_resume_datasets(old: dict, records: Sequence[dict], out: Path) -> None:
    """Refuse to resume ``out`` (its saved ``train_config.json``: ``old``) on other datasets or rows."""
    saved = old.get("datasets")
    if saved is None:  # a run saved before several datasets: only its dataset path
        paths = old.get("dataset")
        paths = [paths] if isinstance(paths, str) else list(paths or [])
        saved = [{"root": str(Path(p).resolve()), "rows": None} for p in paths]
    was = [r["root"] for r in saved]
    now = [r["root"] for r in records]
    if was != now:
        raise SeeingSoundError(
            f"cannot resume {out} on other datasets: it trained on {', '.join(was)}, now given {', '.join(now)} "
            "(the batch order depends on the dataset list and its order); pass the same datasets or a new out folder"
        )
    for a, b in zip(saved, records, strict=True):
        if a.get("rows") is not None and a["rows"] != b["rows"]:
            raise SeeingSoundError(
                f"cannot resume {out}: {b['path']} had {a['rows']} training rows, now {b['rows']} "
                "(features recomputed, or other pairs left out by exclude_pairs or min_pair_score); "
                "the batch order would differ"
            )
        if "excluded_sha256" in a and a["excluded_sha256"] != b["excluded_sha256"]:
            raise SeeingSoundError(
                f"cannot resume {out}: other pairs of {b['path']} are excluded than when the run started "
                "(exclude_pairs, min_pair_score or the pair scores changed); the batch order would differ"
            )
        for key in ("ast_fingerprint", "vae_fingerprint"):
            if a.get(key) and a.get(key) != b.get(key):
                log.warning("resume: %s's %s changed since the run started (%s)", b["path"], key.split("_")[0], key)
