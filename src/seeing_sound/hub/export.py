"""``seeing-sound export hf``: a pairs dataset as self-contained Parquet shards for the Hugging Face Hub.

Each row holds the image and the mixture *as bytes* (``datasets`` ``Image()`` and ``Audio()`` features,
declared in the Parquet schema's ``huggingface`` metadata, so ``datasets.load_dataset(DIR)`` decodes
them), every metadata column of the dataset (the recipe's ``components`` included) and ``recipe``, the
:class:`~seeing_sound.audio.mixture.Mixture` record as JSON. A dataset card ``README.md`` with YAML metadata
describes prompts, models, parameters and counts from ``dataset.json`` (the paper's A.1 release).
Nothing is published unchecked: every stored file must match its checksum in the metadata first.

``metadata_only`` leaves images and audio out: the recipes alone, plus the dataset's own ``dataset.json``
and ``metadata/`` shards, so ``seeing-sound rebuild EXPORT --pool POOL --out DIR`` re-renders the audio.
Needs only pyarrow; ``datasets`` (extra ``[hub]``) is for loading the result.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.config import Config, option, resolve
from seeing_sound.dataset.image_store import ImageNotFoundError
from seeing_sound.dataset.paths import UnsafePathError
from seeing_sound.engine import command_run
from seeing_sound.image_sources import NoBytesError

if TYPE_CHECKING:
    from seeing_sound.dataset import PairsDataset

log = logging.getLogger(__name__)

MEDIA = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
DATA_DIR = "data"


@dataclasses.dataclass(frozen=True)
class ExportConfig(Config):
    """Settings of ``seeing-sound export hf``."""

    rows_per_shard: int = option(1000, "pairs per Parquet shard (Hub viewers like shards under ~500 MB)", min=1)
    metadata_only: bool = option(False, "export the recipes alone (no images or audio): rebuild them with `rebuild`")
    split: str = option("train", "split name of the shards")
    pretty_name: str | None = option(None, "dataset card title", default_text="the dataset folder's name")
    min_pair_score: float | None = option(
        None,
        "export only pairs whose score (`seeing-sound score`) is >= this; pairs without a score are left out",
        default_text="every pair",
    )
    pair_scores: str | None = option(
        None, "the scores.parquet (or `score --out` folder) min_pair_score reads",
        default_text="DATASET/scores/scores.parquet",
    )  # fmt: skip
    score_column: str = option("pair_score", "the column of the scores file min_pair_score compares")

    def validate(self) -> None:
        import math

        from seeing_sound.config import ConfigError

        if self.min_pair_score is not None and not math.isfinite(self.min_pair_score):
            raise ConfigError("min_pair_score", self.min_pair_score, "must be a finite number")
        if self.min_pair_score is not None and self.metadata_only:
            raise ConfigError(
                "min_pair_score", self.min_pair_score,
                "cannot be combined with metadata_only (the dataset's own metadata/ is copied whole for `rebuild`)",
            )  # fmt: skip
        if self.pair_scores is not None and self.min_pair_score is None:
            raise ConfigError("pair_scores", self.pair_scores, "is read only with min_pair_score: set a threshold too")


@dataclasses.dataclass
class ExportReport:
    out: Path
    rows: int = 0
    shards: list[str] = dataclasses.field(default_factory=list)
    missing_images: list[str] = dataclasses.field(default_factory=list)
    missing_audio: list[str] = dataclasses.field(default_factory=list)
    #: with min_pair_score: the scores file, column, models, threshold and counts (kept, below, unscored)
    pair_scores: dict | None = None

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "out": str(self.out)}


def hf_features(schema: pa.Schema, sample_rate: int, media: bool) -> dict:
    """The ``datasets`` features of an export schema (``Features.to_dict()`` form), written by hand so the
    export needs no ``datasets``: ``Value``/``List``/struct dicts from the Arrow types, Image and Audio."""

    def feat(t: pa.DataType):
        if pa.types.is_struct(t):
            return {f.name: feat(f.type) for f in t}
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return {"feature": feat(t.value_type), "_type": "List"}
        name = {"float": "float32", "double": "float64", "halffloat": "float16"}.get(str(t), str(t))
        return {"dtype": name, "_type": "Value"}

    out: dict[str, Any] = {}
    for f in schema:
        if media and f.name == "image":
            out[f.name] = {"_type": "Image"}
        elif media and f.name == "audio":
            out[f.name] = {"sampling_rate": int(sample_rate), "_type": "Audio"}
        else:
            out[f.name] = feat(f.type)
    return out


def export_schema(media: bool, metadata: pa.Schema | None = None) -> pa.Schema:
    """The export's columns: ``metadata`` (the dataset's own metadata schema, with components'
    ``grounding`` when its concepts were CLIP-checked; default the plain one) plus media and recipe."""
    from seeing_sound.dataset.schema import METADATA

    meta = metadata if metadata is not None else METADATA
    fields = [meta.field("pair_id")]
    if media:
        fields += [pa.field("image", MEDIA), pa.field("audio", MEDIA)]
    fields += [f for f in meta if f.name != "pair_id"]
    fields.append(pa.field("recipe", pa.string()))
    return pa.schema(fields)


def _media(path: Path) -> dict | None:
    try:
        return {"bytes": path.read_bytes(), "path": path.name}
    except OSError:
        return None


def _image_media(ds: PairsDataset, i: int) -> dict | None:
    """Pair ``i``'s image as ``{bytes, path}`` wherever it lives (folder, shard, table); None if it is not there."""
    try:
        data = ds.image_bytes(i)
    except (UnsafePathError, ImageNotFoundError, NoBytesError, OSError):
        return None
    return {"bytes": data, "path": Path(ds.metadata.column("image_path")[i].as_py()).name}


def check_files(ds: PairsDataset, first: int = 5) -> None:
    """Refuse a dataset whose stored files differ from its metadata (``seeing-sound verify``'s check).

    Every mixture is re-hashed on its samples against ``mixture_sha256`` and every hashed image
    against ``image_sha256`` (:func:`~seeing_sound.dataset.verify.verify_dataset`); a mismatch, an
    unreadable file or a metadata path that leaves the dataset (:data:`~seeing_sound.dataset.verify.TAMPERED`)
    raises one line naming the first ``first`` files and their pairs, and the count of the rest.
    Missing files are not refused: they stay null cells.
    """
    from seeing_sound.dataset.verify import TAMPERED, verify_dataset
    from seeing_sound.errors import SeeingSoundError

    report = verify_dataset(ds.root, images_root=ds.images_root)
    found = [(kind, rel) for kind in TAMPERED for rel in getattr(report, kind)]
    if not found:
        return
    pairs: dict[tuple[bool, str], list[str]] = {}
    for r in ds.metadata.select(["pair_id", "audio_path", "image_path"]).to_pylist():
        pairs.setdefault((False, r["audio_path"]), []).append(str(r["pair_id"]))
        pairs.setdefault((True, r["image_path"]), []).append(str(r["pair_id"]))
    named = []
    for kind, rel in found[:first]:
        image = kind == "image_mismatched" or rel.startswith("image:")  # verify prefixes unsafe image paths
        ids = pairs.get((image, rel.removeprefix("image:") if image else rel), [])
        who = f" (pair {', '.join(ids[:3])}{' ...' if len(ids) > 3 else ''})" if ids else ""
        text = f"{kind} {rel}{who}"
        named.append(text if text.isprintable() else repr(text))  # a path from data stays on one line
    more = f" and {len(found) - first} more" if len(found) > first else ""
    raise SeeingSoundError(
        f"{ds.root}: {len(found)} stored file(s) differ from the metadata, refusing to publish them: "
        f"{', '.join(named)}{more}; see `seeing-sound verify {ds.root}` (nothing was exported)"
    )


def export_hf(dataset: str | Path, out: str | Path, config: ExportConfig | None = None, **options) -> ExportReport:
    """Write ``out/data/<split>-NNNNN-of-MMMMM.parquet`` and ``out/README.md``; returns what was written.

    Every stored file is first checked against the metadata as ``seeing-sound verify`` does
    (:func:`check_files`): a mixture or image whose bytes differ from its recorded sha256 refuses the
    whole export before anything is written (``metadata_only`` publishes no files, so checks none).
    A pair whose image or audio file is missing keeps its row with a null cell and is listed in the
    report (and the card). ``out`` must be new or empty (an export is never merged into another).
    """
    from seeing_sound.audio.mixture import Mixture
    from seeing_sound.dataset import PairsDataset
    from seeing_sound.engine.shards import atomic_write
    from seeing_sound.errors import SeeingSoundError
    from seeing_sound.hub.cards import dataset_card

    cfg = resolve(ExportConfig, config, options)
    ds = PairsDataset.open(dataset)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SeeingSoundError(f"out {out} is not empty: export into a new folder")
    if out.resolve() == ds.root.resolve():
        raise SeeingSoundError(f"out {out} is the dataset itself")
    with command_run("export hf", out, inputs={"dataset": dataset}, lock=False):  # out must be new: no lock file in it
        meta = ds.metadata
        report = ExportReport(out)  # the threshold first: a missing scores file fails before the checks
        selected = list(range(meta.num_rows))
        if cfg.min_pair_score is not None:
            from seeing_sound.model.training.pair_scores import threshold_dataset

            kept = threshold_dataset(ds.root, cfg.min_pair_score, scores=cfg.pair_scores, column=cfg.score_column)
            selected = [i for i in selected if i not in kept.dropped_rows]
            report.pair_scores = kept.record
            if not selected:
                raise SeeingSoundError(
                    f"no pair of {ds.root} scores >= {cfg.min_pair_score} in {kept.record['file']} "
                    f"({kept.below} below, {kept.unscored} without a score): nothing to export"
                )
        media = not cfg.metadata_only
        if media:  # every file is checked before anything is written: a tampered file is never published
            check_files(ds)
        schema = export_schema(media, ds.metadata.schema.remove_metadata())
        sr = int(ds.card["sample_rate"])
        features = hf_features(schema, sr, media)
        schema = schema.with_metadata({"huggingface": json.dumps({"info": {"features": features}})})
        n = len(selected)
        n_shards = max(1, -(-n // cfg.rows_per_shard))
        (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
        for k in range(n_shards):
            picked = selected[k * cfg.rows_per_shard : (k + 1) * cfg.rows_per_shard]
            rows = meta.take(pa.array(picked, pa.int64())).to_pylist()
            for i, row in zip(picked, rows, strict=True):
                if media:
                    row["image"] = _image_media(ds, i)
                    if row["image"] is None:
                        report.missing_images.append(row["pair_id"])
                    try:
                        row["audio"] = _media(ds.audio_path(i))
                    except UnsafePathError:
                        row["audio"] = None
                    if row["audio"] is None:
                        report.missing_audio.append(row["pair_id"])
                try:
                    row["recipe"] = json.dumps(Mixture.from_pair(row, sr).to_dict(), sort_keys=True)
                except (KeyError, TypeError, ValueError):  # a partial recipe (imported pairs): no mixture record
                    row["recipe"] = None
            name = f"{DATA_DIR}/{cfg.split}-{k:05d}-of-{n_shards:05d}.parquet"
            with atomic_write(out / name) as fh:
                pq.write_table(pa.Table.from_pylist(rows, schema=schema), fh)
            report.shards.append(name)
            report.rows += len(rows)
        if cfg.metadata_only:  # the dataset's own layout, so `rebuild` reads the export directly
            shutil.copy2(ds.root / "dataset.json", out / "dataset.json")
            shutil.copytree(ds.root / "metadata", out / "metadata")
        (out / "README.md").write_text(dataset_card(ds, cfg, report, features))
        if report.missing_images or report.missing_audio:
            log.warning(
                "export: %d pairs without an image, %d without audio (null cells)",
                len(report.missing_images),
                len(report.missing_audio),
            )
        log.debug("exported %d pairs in %d shards to %s", report.rows, len(report.shards), out)
        return report
