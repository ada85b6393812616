"""``seeing-sound push DATASET_OR_RUN --repo ORG/NAME``: release a pairs dataset or a trained model (A.1).

A dataset is exported first (:func:`~seeing_sound.hub.export.export_hf`: Parquet + dataset card) and
pushed as a dataset repo; the export checks every stored file against the metadata first, so a dataset
with a tampered mixture or image is refused before anything is staged or uploaded. A training run (or a
pipeline folder) is staged as a diffusers-style folder that ``AudioPixArtPipeline.from_pretrained`` loads
(``model_index.json``, component folders), with its training loudness (``seeing_sound_loudness.json``)
and a model card, and pushed as a model repo.

Upload: ``HfApi.upload_large_folder`` where huggingface_hub has it (0.24-1.x: resumable, multi-commit);
huggingface_hub 2.x removed it because its ``upload_folder`` now streams, resumes and splits large folders
into several commits itself, so that is used there. The token is huggingface_hub's own (``HF_TOKEN`` or
``hf auth login``); it is never logged or printed here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
from pathlib import Path

from seeing_sound.config import Config, ConfigError, option, resolve
from seeing_sound.engine import command_run

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PushConfig(Config):
    """Settings of ``seeing-sound push``."""

    private: bool = option(False, "create the repo private")
    revision: str | None = option(None, "branch to push to", default_text="main")
    staging: str | None = option(
        None, "folder to stage the upload in and keep", default_text="a temporary folder, removed after the upload"
    )
    rows_per_shard: int = option(1000, "datasets: pairs per Parquet shard", min=1)
    metadata_only: bool = option(False, "datasets: push the recipes alone (no images or audio)")
    num_workers: int | None = option(None, "upload workers", min=1, default_text="huggingface_hub's")


def _check_repo(repo: str) -> None:
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo):
        raise ConfigError("repo", repo, "must be ORG/NAME")


def source_kind(source: str | Path) -> str:
    """``"dataset"`` (a pairs dataset), ``"model"`` (a run with ``pipeline/`` or a pipeline folder)."""
    from seeing_sound.errors import SeeingSoundError

    p = Path(source)
    if (p / "dataset.json").is_file():
        return "dataset"
    if (p / "pipeline" / "model_index.json").is_file() or (p / "model_index.json").is_file():
        return "model"
    raise SeeingSoundError(
        f"{p} is neither a pairs dataset (dataset.json) nor a training run / pipeline folder (model_index.json)"
    )


def stage_model(run: str | Path, out: str | Path, repo: str = "ORG/NAME") -> Path:
    """The folder a model push uploads: the run's pipeline (as ``save_pretrained`` wrote it), its training
    loudness and a model card. ``AudioPixArtPipeline.from_pretrained(out)`` loads it."""
    from seeing_sound.hub.cards import model_card
    from seeing_sound.model.generate import LOUDNESS_FILE, training_loudness

    with command_run("push", out, inputs={"run": run}, lock=False):  # a staging folder, uploaded whole
        run = Path(run)
        pipe = run / "pipeline" if (run / "pipeline" / "model_index.json").is_file() else run
        out = Path(out)
        shutil.copytree(pipe, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        level = training_loudness(run)
        (out / LOUDNESS_FILE).write_text(
            json.dumps({"target_lufs": level["target_lufs"], "lufs_range": level.get("lufs_range")}, indent=2) + "\n"
        )
        train_cfg = run / "train_config.json"
        info = {
            "target_lufs": level["target_lufs"],
            "train_config": json.loads(train_cfg.read_text()) if train_cfg.is_file() else None,
        }
        if not (out / "README.md").exists():
            (out / "README.md").write_text(model_card(info, repo))
        return out


def _upload(api, *, repo: str, folder: Path, repo_type: str, cfg: PushConfig):
    api.create_repo(repo, repo_type=repo_type, private=cfg.private, exist_ok=True)
    if hasattr(api, "upload_large_folder"):
        kw = {"num_workers": cfg.num_workers} if cfg.num_workers else {}
        return api.upload_large_folder(
            repo_id=repo, folder_path=str(folder), repo_type=repo_type, revision=cfg.revision, private=cfg.private, **kw
        )
    return api.upload_folder(
        repo_id=repo,
        folder_path=str(folder),
        repo_type=repo_type,
        revision=cfg.revision,
        commit_message=f"seeing-sound push ({repo_type})",
    )


def push(source: str | Path, repo: str, config: PushConfig | None = None, **options) -> dict:
    """Stage ``source`` (a pairs dataset or a run) and upload it to ``repo``; returns what was pushed.

    Needs huggingface_hub (extra ``[hub]``) and a token the usual way (``HF_TOKEN``, ``hf auth login``).
    """
    cfg = resolve(PushConfig, config, options)
    _check_repo(repo)
    kind = source_kind(source)
    try:
        from huggingface_hub import HfApi
    except ImportError:  # pragma: no cover - depends on the environment
        from seeing_sound.errors import SeeingSoundError

        raise SeeingSoundError("push needs huggingface_hub: pip install 'seeing-sound[hub]'") from None
    tmp = None
    if cfg.staging is not None:
        staging = Path(cfg.staging)
    else:
        tmp = tempfile.mkdtemp(prefix="seeing-sound-push-")
        staging = Path(tmp) / "upload"
    try:
        if kind == "dataset":
            from seeing_sound.hub.export import export_hf

            export_hf(source, staging, rows_per_shard=cfg.rows_per_shard, metadata_only=cfg.metadata_only)
        else:
            stage_model(source, staging, repo)
        log.info("uploading %s (%s repo) from %s", repo, kind, staging)
        _upload(HfApi(), repo=repo, folder=staging, repo_type=kind, cfg=cfg)
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"repo": repo, "repo_type": kind, "files": files, "staging": None if tmp else str(staging)}
