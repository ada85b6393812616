"""``seeing-sound features``: run the AST and VAE feature stages over a dataset."""

from __future__ import annotations

import logging
from pathlib import Path

from seeing_sound.config import resolve
from seeing_sound.engine import EngineConfig, Run, StageReport, command_run
from seeing_sound.engine.shards import write_json_atomic
from seeing_sound.features.config import FeaturesConfig
from seeing_sound.features.stage import AstFeatureStage, VaeFeatureStage
from seeing_sound.features.store import model_slug

log = logging.getLogger(__name__)


def _model_ref(name_or_path: str) -> str:
    """Local folders are recorded as absolute paths so training can run from anywhere."""
    path = Path(name_or_path)
    return str(path.resolve()) if path.exists() else str(name_or_path)


def ast_key(model: str, pool: int) -> str:
    return f"ast-{model_slug(model)}" + (f"-pool{pool}" if pool > 1 else "")


def vae_key(model: str, resolution: int) -> str:
    return f"vae-{model_slug(model)}-{resolution}"


def compute_features(
    dataset: str | Path,
    config: FeaturesConfig | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    engine_config: EngineConfig | None = None,
    **options,
) -> dict[str, StageReport]:
    """Compute (or finish) AST and/or VAE features of ``dataset``; returns each stage's report.

    Output: ``DATASET/features/<key>/shard-*.safetensors`` + ``features.json`` (see ``store``).
    ``config`` holds the settings (defaults: :class:`FeaturesConfig`); keyword ``options`` (its
    field names) override single fields. Pass ``ast=None`` or ``vae=None`` to skip one of them.
    ``engine_config``: engine (local or Ray), shard slice and retries; a slice computes its own
    shards (its reports are not ``complete``) and a last run without the slice writes each
    ``features.json``.
    """
    from seeing_sound.dataset import PairsDataset

    cfg = resolve(FeaturesConfig, config, options)
    ds = PairsDataset.open(dataset)  # fails early, with a clear message, on a non-dataset
    with command_run(
        "features", dataset, engine_config=engine_config, workers=workers, overwrite=overwrite, progress=progress
    ) as run:  # held across both stages, so the cards describe this run's shards
        return _compute(run, cfg, len(ds))


def _compute(run: Run, cfg: FeaturesConfig, pairs: int) -> dict[str, StageReport]:
    root = run.out
    reports: dict[str, StageReport] = {}
    stages: list[tuple[str, AstFeatureStage | VaeFeatureStage]] = []
    if cfg.ast is not None:
        stages.append(("ast", AstFeatureStage(str(root), _model_ref(cfg.ast), ast_key(cfg.ast, cfg.pool), cfg)))
    if cfg.vae is not None:
        stages.append(("vae", VaeFeatureStage(str(root), _model_ref(cfg.vae), vae_key(cfg.vae, cfg.resolution), cfg)))
    for kind, stage in stages:
        report = run.stage(stage)
        reports[kind] = report
        if not (run.finishing and report.complete):  # the card describes every shard: the finishing run's
            run.slice_done(f"{stage.key} (features.json)", report)
            continue
        _write_card(root, kind, stage, report, pairs)
        log.info(
            "%s features: %d of %d items in %s (%d skipped: %s)",
            kind.upper(),
            report.items_out,
            report.items_in,
            stage.key,
            report.items_in - report.items_out,
            report.errors or "none",
        )
    for kind, report in reports.items():
        if run.finishing and report.complete:
            run.finish(report.outcome, noun="pair", hint=f"check that the {kind.upper()} model loads", report=reports)
    return reports


def _write_card(root: Path, kind: str, stage, report: StageReport, pairs: int) -> None:
    from safetensors import safe_open

    folder = root / "features" / stage.key
    first = folder / "shard-000000.safetensors"
    shapes = {}
    if first.is_file():
        with safe_open(str(first), framework="np") as fh:
            shapes = {name: list(fh.get_slice(name).get_shape()[1:]) for name in fh.keys() if name != "rows"}  # noqa: SIM118  (safe_open is not iterable)
    card = {
        **stage.fingerprint(),
        "key": stage.key,
        "pairs": pairs,
        "items_out": report.items_out,
        "errors": report.errors,
        "shards": len(report.shards),
    }
    if kind == "ast":
        tokens, dim = shapes.get("embeds", [0, 0])
        card.update(tokens=tokens, dim=dim, bytes_per_pair=2 * tokens * dim)
    else:
        card.update(latent_shape=shapes.get("mean", []), bytes_per_pair=2 * 2 * int(_prod(shapes.get("mean", []))))
    write_json_atomic(folder / "features.json", card)


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out
