"""Library entry points: :func:`run_concepts` (resumable stage) and :func:`read_concepts`."""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.concepts.backends import clear_backend_cache, get_backend
from seeing_sound.concepts.backends.endpoint import display_url
from seeing_sound.concepts.config import DEFAULT_SHARD_SIZE, ConceptsConfig
from seeing_sound.concepts.images import IMAGE_SUFFIXES, discover_images
from seeing_sound.concepts.stage import CONCEPTS_SCHEMA, IMAGES_SCHEMA, ConceptsStage, plan_concepts
from seeing_sound.config import resolve
from seeing_sound.engine import EngineConfig, Outcome, Run, command_run
from seeing_sound.engine.shards import write_json_atomic
from seeing_sound.errors import SeeingSoundError
from seeing_sound.grounding import clip_weights_digest
from seeing_sound.hashing import file_sha256

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_SHARD_SIZE", "ConceptsReport", "read_concepts", "run_concepts"]


@dataclass
class ConceptsReport:
    """What a concepts run produced, summed over every shard (fresh and resumed)."""

    out_dir: str
    images_in: int = 0
    images_with_concepts: int = 0
    # filter word, or "depiction"/"ungrounded" (the CLIP checks) -> images dropped
    filtered: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)  # image-level reason -> images
    concepts: int = 0  # concepts kept (in concepts/)
    concepts_in: int = 0  # concepts the VLMs returned: concepts + sum(concepts_filtered)
    concepts_filtered: dict[str, int] = field(default_factory=dict)  # "ungrounded"/"depiction" -> concepts dropped
    concepts_per_image: dict[int, int] = field(default_factory=dict)  # n concepts -> images (kept images)
    concepts_per_model: dict[str, int] = field(default_factory=dict)
    model_failures: dict[str, int] = field(default_factory=dict)  # "model|task:reason" -> requests
    shards_ran: int = 0
    shards_skipped: int = 0
    seconds: float = 0.0
    complete: bool = True  # every shard done (False after a slice while others are still out)

    @property
    def images_filtered(self) -> int:
        return sum(self.filtered.values())

    @property
    def images_failed(self) -> int:
        return sum(self.failed.values())

    def summary(self) -> str:
        """A few human lines: images in / filtered / failed by reason / concepts per image."""
        rate = f", {self.images_in / self.seconds:.1f} images/s" if self.seconds > 0 and self.shards_ran else ""
        lines = [
            f"concepts: {self.images_in} images in, {self.images_with_concepts} with concepts, "
            f"{self.images_filtered} filtered, {self.images_failed} failed; {self.concepts} concepts "
            f"({self.shards_ran} shards run, {self.shards_skipped} reused, {self.seconds:.1f}s{rate})",
        ]
        if self.filtered:
            lines.append(
                "  filtered by word or check: " + ", ".join(f"{k}={v}" for k, v in sorted(self.filtered.items()))
            )
        if self.concepts_filtered:
            lines.append(
                f"  concepts: {self.concepts_in} returned, {self.concepts} kept, filtered: "
                + ", ".join(f"{k}={v}" for k, v in sorted(self.concepts_filtered.items()))
            )
        if self.failed:
            lines.append("  failed by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(self.failed.items())))
        if self.concepts_per_image:
            lines.append(
                "  concepts per image: " + ", ".join(f"{k}:{v}" for k, v in sorted(self.concepts_per_image.items()))
            )
        if self.model_failures:
            lines.append("  request failures: " + ", ".join(f"{k}={v}" for k, v in sorted(self.model_failures.items())))
        lines.append(f"  output: {self.out_dir}/concepts/ and {self.out_dir}/images/")
        return "\n".join(lines)


def _add(into: dict, other: dict, key=lambda k: k) -> None:
    for k, v in other.items():
        into[key(k)] = into.get(key(k), 0) + v


def _check_backends(cfg: ConceptsConfig) -> None:
    """Refuse impossible combinations before any image is read (sidecars are cheap to open)."""
    vlms, caption_vlm = cfg.vlms, cfg.caption_vlm
    sidecars = {i: get_backend(s) for i, s in enumerate(vlms) if s.kind == "sidecar"}
    if cfg.captions and caption_vlm in sidecars and not sidecars[caption_vlm].provides_captions:
        hint = "no_filter=True and captions=False" if not cfg.no_filter else "captions=False"
        raise SeeingSoundError(
            f"caption back end #{caption_vlm} ({vlms[caption_vlm].model_id}) has no caption column; "
            f"pick another with caption_vlm or pass {hint}"
        )
    if all(i in sidecars and not sidecars[i].provides_concepts for i in range(len(vlms))):
        raise SeeingSoundError("no back end in vlms provides concepts (the sidecars given hold captions only)")


def run_concepts(
    image_roots: Sequence[str | Path],
    out_dir: str | Path,
    config: ConceptsConfig | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    executor: cf.Executor | None = None,
    engine_config: EngineConfig | None = None,
    **options,
) -> ConceptsReport:
    """Caption, filter and extract sounding concepts for every image under ``image_roots``.

    Writes ``out_dir/concepts/shard-*.parquet`` and ``out_dir/images/shard-*.parquet``; a rerun
    with the same inputs resumes, skipping finished shards. ``config`` holds the settings
    (defaults: :class:`ConceptsConfig`); keyword ``options`` (its field names, e.g.
    ``vlms=[...]``, ``no_filter=True``) override single fields. The ``vlms`` run in order and
    all their concepts are kept (numbered 0.. per image across models); captions come from
    ``vlms[caption_vlm]``. ``captions=False`` skips captioning (requires ``no_filter=True``).
    ``engine_config``: engine (local or Ray), shard slice and retries; a slice's report covers
    its own shards (``complete`` is False until every shard is done) and leaves ``concepts.json``
    to a last run without the slice.
    """
    cfg = resolve(ConceptsConfig, config, options)
    _check_backends(cfg)
    with command_run(
        "concepts", out_dir, inputs={"images": list(image_roots)}, engine_config=engine_config, workers=workers,
        overwrite=overwrite, progress=progress, executor=executor,
    ) as run:  # fmt: skip
        return _run(run, cfg, image_roots)


def _run(run: Run, cfg: ConceptsConfig, image_roots: Sequence[str | Path]) -> ConceptsReport:
    roots, refs = discover_images(image_roots)
    ids = [s.model_id for s in cfg.vlms]
    log.info("concepts: %d images under %d root(s); back ends: %s", len(refs), len(roots), ", ".join(ids))
    if not refs:
        log.warning("no images (%s) found under %s", "/".join(IMAGE_SUFFIXES), ", ".join(map(str, roots)))
    stage = ConceptsStage(
        roots=tuple(str(r) for r in roots),
        config=cfg,
        sidecar_sha256=tuple(file_sha256(s.model) for s in cfg.vlms if s.kind == "sidecar"),
        grounding_sha256=clip_weights_digest(cfg.grounding) if cfg.grounding is not None else None,
    )
    tasks = plan_concepts([(r.image_id, r.root_index, r.path) for r in refs], cfg.shard_size)
    try:
        stage_report = run.stage(stage, tasks=tasks)
    finally:
        # The back ends this process built (sidecar checks, in-process shards: a 7B VLM) are freed
        # for what runs next, e.g. sonify's CLAP and mixing; worker processes free theirs on exit.
        clear_backend_cache()
    report = ConceptsReport(
        out_dir=str(run.out), shards_ran=stage_report.ran, shards_skipped=stage_report.skipped,
        complete=stage_report.complete,
    )  # fmt: skip
    report.seconds = stage_report.seconds
    for s in stage_report.shards:
        report.images_in += s.items_in
        report.images_with_concepts += s.items_out
        _add(report.failed, s.errors)
        _add(report.filtered, s.extra.get("filtered", {}))
        report.concepts += s.extra.get("concepts", 0)
        report.concepts_in += s.extra.get("concepts_in", s.extra.get("concepts", 0))  # shards of older versions
        _add(report.concepts_filtered, s.extra.get("concepts_filtered", {}))
        _add(report.concepts_per_image, s.extra.get("concepts_per_image", {}), key=int)
        _add(report.concepts_per_model, s.extra.get("concepts_per_model", {}))
        _add(report.model_failures, s.extra.get("model_failures", {}))
    if not (report.complete and run.finishing):  # the card sums every shard: a slice leaves it to the finishing run
        run.slice_done(f"{run.out} (concepts.json)", stage_report)
        return report
    _write_card(run.out, cfg, report, grounding_sha256=stage.grounding_sha256)
    log.debug("%s", report.summary().splitlines()[0])
    outcome = Outcome(
        report.images_in, report.images_with_concepts, report.images_failed, report.images_filtered,
        {**report.failed, **report.model_failures},
    )  # fmt: skip
    run.finish(outcome, noun="image", hint=_what_to_check(cfg), report=report)
    return report


def _what_to_check(cfg: ConceptsConfig) -> str:
    """Where a run in which every image failed most likely went wrong, per kind of back end."""
    hints = []
    for spec in cfg.vlms:
        if spec.kind == "openai":
            hints.append(
                f"check the server (base_url={display_url(spec.base_url or '$OPENAI_BASE_URL')}), its API key "
                f"(api_key_env={spec.api_key_env}) and the model name ({spec.model})"
            )
        elif spec.kind == "transformers":
            hints.append(f"check that {spec.model_id} loads and runs on device={spec.device}")
        else:
            hints.append(f"check that the sidecar {spec.model} is keyed by these images' file names")
    return "; ".join(dict.fromkeys(hints))


CARD = "concepts.json"


def _runtime(cfg: ConceptsConfig) -> list[dict]:
    """Per back end, what this machine runs it with: batch size and the resolved device and dtype
    (``auto`` becomes cuda/bfloat16 or cpu/float32), which the stage fingerprint does not hold."""
    out = []
    for spec in cfg.vlms:
        entry: dict = {"model": spec.model_id, "kind": spec.kind}
        if spec.kind == "transformers":
            from seeing_sound.concepts.backends.transformers import runtime_settings

            entry.update(runtime_settings(spec))
        out.append(entry)
    return out


def _write_card(
    root: Path, cfg: ConceptsConfig, report: ConceptsReport, *, grounding_sha256: str | None = None
) -> None:
    """``out_dir/concepts.json``: the settings, the batch size, device and dtype each back end ran
    with (bf16 answers depend on the batch; see docs/concepts.md), and every distinct such set that
    computed shards (``runs_settings``: a resume may use another batch size). ``auto`` is resolved
    on the machine that calls :func:`run_concepts`. Byte-stable: a run killed and resumed with the
    same settings writes the card an uninterrupted run writes. With grounding on, ``settings.grounding``
    holds both the CLIP's name or path (``model``) and its weights' digest (``model_sha256``, what a
    resume is checked against)."""
    path = root / CARD
    try:
        seen = json.loads(path.read_text()).get("runs_settings", []) if path.is_file() else []
    except (OSError, ValueError):
        seen = []
    vlms = _runtime(cfg)
    if (report.shards_ran or not seen) and vlms not in seen:  # no card yet: killed before it was written
        seen.append(vlms)
    settings = cfg.fingerprint()
    if "grounding" in settings:
        settings["grounding"] = {**settings["grounding"], "model_sha256": grounding_sha256}
    card = {
        "stage": "concepts",
        "settings": settings,
        "vlms": vlms,
        "runs_settings": seen,
        "images_in": report.images_in,
        "images_with_concepts": report.images_with_concepts,
        "images_filtered": report.images_filtered,
        "images_failed": report.images_failed,
        "concepts": report.concepts,
        "complete": report.complete,
    }
    if cfg.grounding is not None:  # per-concept accounting: concepts_in == concepts + sum(concepts_filtered)
        card["concepts_in"] = report.concepts_in
        card["concepts_filtered"] = dict(sorted(report.concepts_filtered.items()))
        card["images_filtered_by"] = dict(sorted(report.filtered.items()))
    write_json_atomic(path, card)


def read_concepts(path: str | Path) -> tuple[pa.Table, pa.Table]:
    """(concepts, images) tables of a concepts run; ``path`` is the run's ``out_dir``."""
    root = Path(path)
    if root.name in ("concepts", "images") and not (root / "concepts").is_dir():
        root = root.parent
    tables = []
    for sub, schema in (("concepts", CONCEPTS_SCHEMA), ("images", IMAGES_SCHEMA)):
        files = sorted((root / sub).glob("shard-*.parquet"))
        if not files:
            raise FileNotFoundError(
                f"no {sub}/shard-*.parquet under {root}; make them with run_concepts(images, {str(root)!r}) "
                "(`seeing-sound concepts`)"
            )
        tables.append(pa.concat_tables([_read_shard(f, schema) for f in files]))
    return tables[0], tables[1]


def _read_shard(path: Path, schema: pa.Schema) -> pa.Table:
    """One shard in ``schema``; columns added since the shard was written (``grounding``, ...) are null."""
    table = pq.read_table(path)
    for f in schema:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    return table.select(schema.names).cast(schema)
