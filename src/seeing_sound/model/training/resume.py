"""Where a training run continues from, and what it must match to continue (``OUT/train_config.json``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from seeing_sound.errors import SeeingSoundError
from seeing_sound.model.training.config import RESUME_KEYS, TrainConfig
from seeing_sound.model.training.sets import check_resume_datasets

log = logging.getLogger(__name__)


def checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("step-*"))


def resolve_resume(cfg: TrainConfig, out: Path) -> Path | None:
    existing = checkpoints(out)
    if cfg.resume is None:
        if existing:
            raise SeeingSoundError(
                f"{out} already holds checkpoints; pass resume='latest' to continue or choose a new out folder"
            )
        return None
    if cfg.resume == "latest":
        if not existing:
            log.info("resume: no checkpoint in %s yet, starting from scratch", out)
        return existing[-1] if existing else None
    path = Path(cfg.resume)
    if not path.is_dir():
        raise ValueError(f"resume must be 'latest' or a checkpoint folder, got {cfg.resume!r}")
    return path


def check_resume_settings(cfg: TrainConfig, out: Path, datasets: list[dict]) -> None:
    path = out / "train_config.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    defaults = TrainConfig.__dataclass_fields__  # a run saved before a key existed had its default
    changed = [k for k in RESUME_KEYS if old.get(k, defaults[k].default) != getattr(cfg, k)]
    if changed:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {getattr(cfg, k)!r}" for k in changed)
        raise SeeingSoundError(f"cannot resume {out} with changed settings ({detail})")
    check_resume_datasets(old, datasets, out)


def run_record(cfg: TrainConfig, datasets: list[dict], exclusions: list[dict]) -> dict:
    """``OUT/train_config.json``: the resolved config, each dataset's rows and feature fingerprints.

    ``dataset`` stays one path for a one-dataset run (the file as before); a list for several.
    """
    record = cfg.to_dict()
    record["dataset"] = cfg.dataset[0] if len(cfg.dataset) == 1 else list(cfg.dataset)
    return {**record, "datasets": datasets, "exclusions": exclusions}
