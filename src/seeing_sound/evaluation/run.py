"""``seeing-sound evaluate``: score folders, or generate then score benchmarks; write EVAL/.

Outputs: ``summary.json`` (per benchmark: n, fid, kid_mean, kid_std, iis, ais, protocol, models and
their identities, resize policy, seed, skipped files with reasons), ``per_sample.parquet``
(per-item cosines and ranks), ``table.md`` (Table 1's layout with the published rows) and
``samples.png``. Features are cached in ``EVAL/features/<model-key>/`` by file sha256.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.config import resolve
from seeing_sound.engine import Run, command_run
from seeing_sound.engine.shards import atomic_write, write_json_atomic
from seeing_sound.errors import SeeingSoundError
from seeing_sound.evaluation import metrics as M
from seeing_sound.evaluation.config import EvaluateConfig
from seeing_sound.evaluation.features import FeatureCache, extract
from seeing_sound.evaluation.pairing import (
    Benchmark,
    Item,
    benchmark_folder_name,
    benchmark_rows,
    pair_folders,
    read_benchmark,
    skip,
)
from seeing_sound.evaluation.report import RANK_WARNING, contact_sheet, write_table

log = logging.getLogger(__name__)

RAW_NOTE = "raw protocol: AIS/IIS are mean raw cosines, as in Table 1 of the paper"


@dataclass
class Encoders:
    """The feature extractors a config needs (None where no metric needs one)."""

    inception: Any = None
    clip: Any = None
    wav2clip: Any = None

    @classmethod
    def load(cls, cfg: EvaluateConfig) -> Encoders:
        """Load every model first, so a missing checkpoint fails before any generation or extraction."""
        enc = cls()
        # checkpoint files first: a missing one fails in milliseconds, before the hub model loads
        if cfg.needs_audio:
            from seeing_sound.evaluation.wav2clip import Wav2ClipEncoder

            enc.wav2clip = Wav2ClipEncoder(cfg.wav2clip, device=cfg.device)
        if cfg.needs_inception:
            from seeing_sound.evaluation.inception import InceptionEncoder

            enc.inception = InceptionEncoder(
                cfg.inception, resize=cfg.resize, device=cfg.device, batch_size=cfg.batch_size,
                max_pixels=cfg.max_pixels,
            )  # fmt: skip
        if cfg.needs_clip:
            from seeing_sound.evaluation.clip import ClipImageEncoder

            enc.clip = ClipImageEncoder(
                cfg.clip, device=cfg.device, batch_size=cfg.batch_size, max_pixels=cfg.max_pixels
            )
        if enc.wav2clip is not None and enc.clip is not None and enc.wav2clip.dim != enc.clip.dim:
            raise SeeingSoundError(
                f"Wav2CLIP embeds into {enc.wav2clip.dim}-d but the CLIP model {cfg.clip} into {enc.clip.dim}-d: "
                "AIS needs the CLIP Wav2CLIP was trained against (openai/clip-vit-base-patch32)"
            )
        return enc

    def identities(self) -> dict[str, dict]:
        return {k: dict(e.info, key=e.key) for k, e in vars(self).items() if e is not None}


def _wav2clip_input(path: Path) -> np.ndarray:
    from seeing_sound.audio.io import stream_mono
    from seeing_sound.evaluation.wav2clip import SAMPLE_RATE

    blocks = list(stream_mono(path, SAMPLE_RATE))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def _features(enc, files: list[Path], out: Path, cfg: EvaluateConfig, progress: bool, desc: str):
    prepare = _wav2clip_input if enc.name == "wav2clip" else enc.prepare
    return extract(
        files,
        cache=FeatureCache(out / "features", enc.key, dim=getattr(enc, "dim", None)),
        prepare=prepare,
        embed=enc.embed,
        batch_size=cfg.batch_size,
        progress=progress,
        desc=desc,
    )


def score_benchmark(bench: Benchmark, enc: Encoders, out: Path, cfg: EvaluateConfig, progress: bool):
    """Features for every file of ``bench``, then its metrics. Returns (result dict, per-sample rows)."""
    roles = [("generated", enc.inception), ("generated", enc.clip)]
    if cfg.needs_reference:
        roles += [("reference", enc.inception if cfg.needs_inception else None)]
        roles += [("reference", enc.clip if "iis" in cfg.metrics else None)]
    if cfg.needs_audio:
        roles += [("audio", enc.wav2clip)]
    feats: dict[tuple[str, str], dict[Path, np.ndarray]] = {}
    bad: dict[str, str] = {}
    computed = 0
    for role, e in roles:
        if e is None:
            continue
        files = [getattr(it, role) for it in bench.items]
        got, errors, n = _features(e, files, out, cfg, progress, f"{bench.name}: {e.name} {role}")
        feats[(role, e.name)] = got
        computed += n
        for it in bench.items:
            f = getattr(it, role)
            if f in errors:
                bad.setdefault(it.item_id, f"{role} file unreadable ({e.name}): {errors[f]}")
    skipped = list(bench.skipped)
    items = []
    for it in bench.items:
        if it.item_id in bad:
            skipped.append(skip(it.generated, bad[it.item_id]))
        else:
            items.append(it)

    def stack(role: str, name: str) -> np.ndarray:
        table = feats[(role, name)]
        return np.stack([table[getattr(it, role)] for it in items])

    n = len(items)
    result: dict[str, Any] = {"n": n, "protocol": cfg.protocol, "resize": cfg.resize, "seed": cfg.seed}
    result.update({"fid": None, "kid_mean": None, "kid_std": None, "iis": None, "ais": None, "notes": []})
    per: dict[str, Any] = {"iis_cosine": None, "ais_cosine": None, "iis_rank": None, "ais_rank": None}
    minimum = 2 if (cfg.needs_inception or cfg.protocol == "rank") else 1
    if n < minimum:
        result["notes"].append(f"too few scorable items ({n}, need >= {minimum}); no metric computed")
    else:
        if cfg.needs_inception:
            gen_i, ref_i = stack("generated", "inception"), stack("reference", "inception")
            if "fid" in cfg.metrics:
                result["fid"] = M.frechet_distance(gen_i, ref_i)
                result["n_fid"] = [len(gen_i), len(ref_i)]
            if "kid" in cfg.metrics:
                result["kid_mean"], result["kid_std"] = M.kernel_inception_distance(
                    gen_i, ref_i, subsets=cfg.kid_subsets, subset_size=cfg.kid_subset_size, seed=cfg.seed
                )
                result["kid_subset_size"] = int(min(cfg.kid_subset_size, n))
        if "iis" in cfg.metrics:
            gen_c, ref_c = stack("generated", "clip"), stack("reference", "clip")
            per["iis_cosine"] = M.paired_cosine(gen_c, ref_c)
            if cfg.protocol == "rank":
                per["iis_rank"] = M.rank_score(ref_c, gen_c)
        if "ais" in cfg.metrics:
            aud, gen_c = stack("audio", "wav2clip"), stack("generated", "clip")
            per["ais_cosine"] = M.paired_cosine(aud, gen_c)
            if cfg.protocol == "rank":
                per["ais_rank"] = M.rank_score(aud, gen_c)
        for m in ("iis", "ais"):
            values = per[f"{m}_{'rank' if cfg.protocol == 'rank' else 'cosine'}"]
            if values is not None:
                result[m] = float(np.mean(values))
    result["note"] = RANK_WARNING if cfg.protocol == "rank" else RAW_NOTE
    result["models"] = enc.identities()
    result["features_computed"] = computed
    result["skipped"] = skipped
    rows = []
    for i, it in enumerate(items):
        row: dict[str, Any] = {"benchmark": bench.name, "item_id": it.item_id, "protocol": cfg.protocol}
        row.update({k: str(getattr(it, k)) if getattr(it, k) else None for k in ("generated", "reference", "audio")})
        row.update({k: (float(v[i]) if v is not None else None) for k, v in per.items()})
        rows.append(row)
    return result, rows, items


def _write_per_sample(path: Path, rows: list[dict], protocol: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [(k, pa.string()) for k in ("benchmark", "item_id", "protocol", "generated", "reference", "audio")]
        + [(k, pa.float64()) for k in ("iis_cosine", "ais_cosine", "iis_rank", "ais_rank")],
        metadata={"protocol": protocol, "note": RANK_WARNING if protocol == "rank" else RAW_NOTE},
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_write(path) as fh:
        pq.write_table(table, fh)


def score(
    benchmarks: Sequence[Benchmark],
    *,
    out: Path,
    cfg: EvaluateConfig,
    enc: Encoders,
    progress: bool,
    label: str,
    extra: dict | None = None,
) -> dict:
    """Score every benchmark and write the four outputs; returns the summary."""
    summary: dict[str, Any] = {
        "protocol": cfg.protocol,
        "note": RANK_WARNING if cfg.protocol == "rank" else RAW_NOTE,
        "metrics": list(cfg.metrics),
        "resize": cfg.resize,
        "seed": cfg.seed,
        "models": enc.identities(),
        "config": cfg.to_dict(),
        "benchmarks": {},
        **(extra or {}),
    }
    rows: list[dict] = []
    sheet: list[tuple[str, Path | None, Path]] = []
    for bench in benchmarks:
        result, bench_rows, items = score_benchmark(bench, enc, out, cfg, progress)
        summary["benchmarks"][bench.name] = {**result, "source": bench.source}
        rows += bench_rows
        prefix = f"{bench.name}/" if len(benchmarks) > 1 else ""
        sheet += [
            (f"{prefix}{(it.audio or it.generated).name}", it.reference, it.generated) for it in items[: cfg.samples]
        ]
        scores = " ".join(f"{k}={result[k]:.4g}" for k in ("fid", "iis", "ais") if result[k] is not None)
        log.debug("%s: n=%d %s", bench.name, result["n"], scores)  # the command prints the summary
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "summary.json", summary)
    _write_per_sample(out / "per_sample.parquet", rows, cfg.protocol)
    write_table(out / "table.md", summary, label=label)
    if sheet:
        contact_sheet(out / "samples.png", sheet)
    if not any(b["n"] for b in summary["benchmarks"].values()):
        raise SeeingSoundError(f"nothing could be scored; see the skipped files in {out / 'summary.json'}")
    return summary


def evaluate_folders(
    images: str | Path,
    *,
    out: str | Path,
    audio: str | Path | None = None,
    reference: str | Path | None = None,
    name: str | None = None,
    config: EvaluateConfig | None = None,
    progress: bool = True,
    **options,
) -> dict:
    """Score generated ``images`` against ``reference`` images and ``audio``, files paired by stem.

    ``options`` are :class:`EvaluateConfig` fields. FID, KID and IIS need ``reference``; AIS needs
    ``audio``. Returns the summary written to ``out/summary.json``.
    """
    cfg = resolve(EvaluateConfig, config, options)
    if cfg.needs_reference and reference is None:
        raise ValueError(f"reference (the ground-truth images) is needed for {', '.join(cfg.metrics)}")
    if cfg.needs_audio and audio is None:
        raise ValueError("audio is needed for ais (or leave ais out of metrics)")
    inputs = {"images": images, "reference": reference, "audio": audio}
    with command_run("evaluate", out, inputs=inputs, progress=progress) as run:
        bench = pair_folders(
            images,
            reference=reference if cfg.needs_reference else None,
            audio=audio if cfg.needs_audio else None,
            name=name,
        )
        enc = Encoders.load(cfg)
        return score([bench], out=run.out, cfg=cfg, enc=enc, progress=progress, label=bench.name)


def evaluate_model(
    model: str | Path,
    benchmarks: Sequence[str | Path],
    *,
    out: str | Path,
    config: EvaluateConfig | None = None,
    progress: bool = True,
    **options,
) -> dict:
    """Generate one image per audio of each benchmark folder with ``model`` (resumable), then score them.

    Images go to ``out/generated/<benchmark name>/<item_id>.png``; both are data (a downloaded
    benchmark folder), so a name that is not a safe file name is made one (two benchmarks that get one
    folder are refused) and a row whose id or paths are unsafe is a skipped item (``unsafe_id``,
    ``duplicate_id``, ``unsafe_path``): nothing is written or read outside ``out`` and the benchmark
    folder. ``options`` are :class:`EvaluateConfig`
    fields (``seed``, ``steps``, ``guidance`` shape the images). Each clip is normalized to the
    training loudness and generated at the training resolution, as ``seeing-sound generate`` does
    (one function, so the images are the same); ``summary.json``'s ``generation`` records the level
    (``target_lufs``, ``loudness``) and size. Returns the summary.
    """
    cfg = resolve(EvaluateConfig, config, options)
    if not benchmarks:
        raise ValueError("benchmarks must name at least one benchmark folder")
    with command_run("evaluate", out, inputs={"benchmarks": list(benchmarks)}) as run:
        return _evaluate_model(run, model, benchmarks, cfg, progress)


def _evaluate_model(run: Run, model: str | Path, benchmarks: Sequence[str | Path], cfg: EvaluateConfig, progress: bool):
    from seeing_sound.evaluation.generation import generate_missing, generation_settings, load_generator

    out = run.out
    # every benchmark's name and rows first: a broken folder, or two names for one folder, stop the run
    # before any model loads; names and ids become paths only through pairing's safe-name functions
    read: list[tuple[Path, str, str, dict, list[dict]]] = []
    folders: dict[str, str] = {}
    for folder in map(Path, benchmarks):
        name, info, rows = read_benchmark(folder)
        dirname = benchmark_folder_name(name)
        clash = folders.get(dirname.casefold())
        if clash is not None:
            raise SeeingSoundError(
                f"benchmarks {clash!r} and {name!r} ({folder}) would share the folder generated/{dirname}; "
                "give them distinct names in benchmark.json"
            )
        folders[dirname.casefold()] = name
        read.append((folder, name, dirname, info, rows))
    enc = Encoders.load(cfg)
    pipe = load_generator(model, cfg.device)
    settings, record = generation_settings(model, cfg, pipe)
    scored: list[Benchmark] = []
    generated: dict[str, dict] = {}
    for folder, name, dirname, info, rows in read:
        usable, skipped = benchmark_rows(folder, rows)
        jobs = []
        for item_id, audio, _ in usable:
            if not audio.is_file():
                skipped.append(skip(audio, f"item {item_id}: audio file missing"))
            else:
                jobs.append((item_id, audio))
        done, failed, made = generate_missing(pipe, jobs, out / "generated" / dirname, settings, progress=progress)
        generated[name] = {"generated_now": made, "reused": len(done) - made}
        items = []
        for item_id, audio, ref in usable:
            if item_id in failed:
                skipped.append(skip(audio, failed[item_id]))
            if item_id not in done:
                continue
            if cfg.needs_reference and not ref.is_file():
                skipped.append(skip(ref, f"item {item_id}: ground-truth image missing"))
                continue
            items.append(Item(item_id, done[item_id], ref, audio))
        scored.append(Benchmark(name, items, skipped, {"folder": str(folder), "benchmark": info}))
    extra = {"generation": {**settings, **record, "per_benchmark": generated}}
    return score(scored, out=out, cfg=cfg, enc=enc, progress=progress, label=Path(model).name, extra=extra)
