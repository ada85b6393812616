"""Validation grids during training and the final pipeline folder (main process only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from seeing_sound.errors import SeeingSoundError
from seeing_sound.model.training.config import TrainConfig

log = logging.getLogger(__name__)


class TrainSampler:
    """Validation grids during training and the final pipeline folder (main process only)."""

    def __init__(
        self,
        cfg: TrainConfig,
        out: Path,
        data,
        vae_set,
        accelerator,
        audio_card: dict,
        audio_of: Callable[[list[int]], torch.Tensor],
    ):
        """``audio_card``: the AST features' card (model, pool); ``audio_of(positions)``: their tokens."""
        from seeing_sound.model.loading import load_scheduler, load_vae

        self.cfg, self.out, self.device, self.accelerator = cfg, out, accelerator.device, accelerator
        self.vae = load_vae(vae_set.card["model"]).to(self.device).eval()
        self.scheduler = load_scheduler(cfg.pretrained)
        spread = getattr(data, "validation_positions", None)  # several datasets: rows of each in the grid
        positions = spread(cfg.num_validation) if spread else list(range(min(cfg.num_validation, len(data))))
        self.audio = audio_of(positions).float().cpu()
        self.latents = torch.stack([data[i]["mean"] for i in positions]).float()
        self.ast_model = audio_card["model"]
        self.ast_pool = int(audio_card.get("pool", 1))  # generation must pool AST tokens like these features
        shape = vae_set.card.get("latent_shape") or []  # (C, h, w): the pixel size trained on, saved with the pipeline
        scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.resolution = [int(shape[1]) * scale, int(shape[2]) * scale] if len(shape) == 3 else None

    def _pipeline(self, model):
        from seeing_sound.model.pipeline import AudioPixArtPipeline

        pipe = AudioPixArtPipeline(
            transformer=model,
            vae=self.vae,
            scheduler=self.scheduler,
            ast_pool=self.ast_pool,
            resolution=self.resolution,
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def render(self, model, ema, step: int) -> Path:
        was_training = model.training
        model.eval()
        if ema is not None:
            ema.store(model.parameters())
            ema.copy_to(model.parameters())
        try:
            grid = _render(self._pipeline(model), self.audio, self.latents, self.cfg)
        finally:
            if ema is not None:
                ema.restore(model.parameters())
            model.train(was_training)
        path = self.out / "samples" / f"step-{step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
        if self.cfg.report_to != "none":
            log_grid(self.accelerator, self.cfg.report_to, grid, step)
        return path

    def save_pipeline(self, model, ema) -> Path:
        """``OUT/pipeline``: transformer (EMA weights if kept), VAE, DPM-Solver, AST (if loadable)."""
        from seeing_sound.encoders.ast import load_ast

        if ema is not None:
            ema.copy_to(model.parameters())
        pipe = self._pipeline(model)
        try:
            encoder = load_ast(self.ast_model)
            pipe.register_modules(audio_encoder=encoder.model, feature_extractor=encoder.feature_extractor)
        except SeeingSoundError as exc:
            log.warning("pipeline saved without its AST (%s); it then needs audio_embeds", exc)
        path = self.out / "pipeline"
        pipe.save_pretrained(str(path), safe_serialization=True)
        if len(self.cfg.dataset) > 1:
            write_training_loudness(path, self.cfg.dataset)
        log.info("saved pipeline to %s", path)
        return path


#: What a validation grid shows, as the tracker's caption.
GRID_CAPTION = "rows: validation audios; columns: ground truth (decoded latent) | sample"


def log_grid(accelerator, report_to: str, grid, step: int) -> None:
    """The validation grid (a PIL image) as the tracker's image ``samples`` at ``step``.

    TensorBoard: ``add_image`` on the tracker's ``SummaryWriter`` (RGB, HWC); W&B: a ``wandb.Image``
    logged at ``step`` (its file under the run's ``files/media/images``).
    """
    if report_to == "tensorboard":
        import numpy as np

        writer = accelerator.get_tracker("tensorboard", unwrap=True)
        writer.add_image("samples", np.asarray(grid.convert("RGB")), step, dataformats="HWC")
        writer.flush()
    elif report_to == "wandb":
        import wandb

        run = accelerator.get_tracker("wandb", unwrap=True)
        run.log({"samples": wandb.Image(grid, caption=GRID_CAPTION)}, step=step)


def write_training_loudness(pipeline: Path, datasets) -> Path:
    """``pipeline/seeing_sound_loudness.json`` of a run on several datasets (what ``generate`` normalizes to).

    ``generate`` finds one dataset's loudness through ``train_config.json``; with several, the span of
    the LUFS ranges the datasets record (imported real pairs record none) and its midpoint are written
    here, where it looks first. No dataset with a range: the inference default.
    """
    import json

    from seeing_sound.model.generate import DEFAULT_INFERENCE_LUFS, LOUDNESS_FILE, lufs_span

    span = lufs_span(datasets)
    target = (span[0] + span[1]) / 2 if span else DEFAULT_INFERENCE_LUFS
    out = pipeline / LOUDNESS_FILE
    out.write_text(json.dumps({"target_lufs": target, "lufs_range": span}, indent=2) + "\n")
    return out


def _render(pipe, audio, latents, cfg: TrainConfig):
    from seeing_sound.model.samples import render_validation_grid

    with torch.no_grad():
        return render_validation_grid(pipe, audio, latents, cfg.seed, cfg.sample_steps, cfg.guidance_scale)
