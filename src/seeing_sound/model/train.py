"""Train AudioPixArt on precomputed AST/VAE features with accelerate (paper Section 4.3).

Single process, ``accelerate launch`` multi-GPU and multi-node all run this same function. Every
random draw of optimizer step ``s`` (timesteps, noise, latent sample, CFG dropout) comes from a
generator seeded with ``(seed, s, micro-batch, process)`` and the batch order is a pure function of
the step (:class:`BatchPlan`), so ``--resume`` from a ``save_state`` checkpoint reproduces the
uninterrupted run's next losses exactly.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seeing_sound.errors import SeeingSoundError
from seeing_sound.features.store import find_feature_set
from seeing_sound.model.diffusion import DiffusionSchedule, diffusion_loss, q_sample
from seeing_sound.model.train_config import RESUME_KEYS, TrainConfig
from seeing_sound.model.train_data import BatchPlan, BatchSampler, PairFeatures, collate

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    steps: int  # optimizer steps done in total (incl. before a resume)
    losses: dict[int, float] = field(default_factory=dict)  # step -> mean loss of this invocation's steps
    out: Path | None = None
    pipeline_dir: Path | None = None
    samples_per_second: float = 0.0


class _StepCounter:
    """The global step, saved and restored by ``accelerator.save_state``/``load_state``."""

    def __init__(self):
        self.step = 0

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = int(state["step"])


def _step_generator(seed: int, step: int, micro: int, process: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1009 + micro) * 131 + process)


def _checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("step-*"))


def _resolve_resume(cfg: TrainConfig, out: Path) -> Path | None:
    existing = _checkpoints(out)
    if cfg.resume is None:
        if existing:
            raise SeeingSoundError(f"{out} already holds checkpoints; pass --resume to continue or choose a new --out")
        return None
    if cfg.resume == "latest":
        if not existing:
            log.info("--resume: no checkpoint in %s yet, starting from scratch", out)
        return existing[-1] if existing else None
    path = Path(cfg.resume)
    if not (path / "step.json").is_file() and not path.is_dir():
        raise ValueError(f"resume must be 'latest' or a checkpoint folder, got {cfg.resume!r}")
    return path


def _check_resume_settings(cfg: TrainConfig, out: Path) -> None:
    path = out / "train_config.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    changed = [k for k in RESUME_KEYS if old.get(k) != getattr(cfg, k)]
    if changed:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {getattr(cfg, k)!r}" for k in changed)
        raise SeeingSoundError(f"cannot resume {out} with changed settings ({detail})")


def _make_accelerator(cfg: TrainConfig, out: Path):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    precision = cfg.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    log_with = None
    if cfg.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError as exc:
            raise SeeingSoundError("--tensorboard needs the tensorboard package: pip install tensorboard") from exc
        log_with = "tensorboard"
    return Accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) a training run; returns the losses of the steps this call did."""
    from diffusers.training_utils import EMAModel

    from seeing_sound.model.audio_pixart import AudioPixArt

    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ast_set = find_feature_set(cfg.dataset, "ast", cfg.ast_features)
    vae_set = find_feature_set(cfg.dataset, "vae", cfg.vae_features)
    cfg.ast_features, cfg.vae_features = ast_set.path.name, vae_set.path.name
    resume_from = _resolve_resume(cfg, out)
    if resume_from is not None:
        _check_resume_settings(cfg, out)
    accelerator = _make_accelerator(cfg, out)
    if accelerator.is_main_process:
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")

    data = PairFeatures(ast_set, vae_set)
    if len(data) == 0:
        raise SeeingSoundError(f"no rows have both AST and VAE features in {cfg.dataset}")
    plan = BatchPlan(len(data), cfg.batch_size, cfg.seed)
    log.info(
        "training on %d pairs (%s, %s), %d batches per epoch",
        len(data),
        ast_set.path.name,
        vae_set.path.name,
        plan.batches_per_epoch,
    )

    torch.manual_seed(cfg.seed)
    model = AudioPixArt.from_pixart(cfg.pretrained, audio_embed_dim=int(ast_set.card["dim"]), seed=cfg.seed)
    if cfg.loss == "hybrid" and not model.learned_variance:
        raise SeeingSoundError(f"{cfg.pretrained} predicts no variance; use --loss eps-mse")
    if cfg.pretrain_projector_steps and resume_from is None:
        from seeing_sound.model.pretrain import pretrain_projector

        pretrain_projector(model, cfg, data, device=accelerator.device)
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = cfg.warmup_steps
    lr_sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    counter = _StepCounter()
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay) if cfg.ema_decay > 0 else None
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    # The LR scheduler stays unprepared (accelerate would step it once per process) and is stepped
    # once per optimizer step below; it is checkpointed like the counter.
    accelerator.register_for_checkpointing(counter)
    accelerator.register_for_checkpointing(lr_sched)
    model, optimizer = accelerator.prepare(model, optimizer)
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        log.info("resumed from %s at step %d", resume_from, counter.step)
    if cfg.tensorboard:
        accelerator.init_trackers("seeing-sound", config={k: v for k, v in cfg.to_dict().items() if v is not None})

    schedule = DiffusionSchedule.linear(1000)
    procs, rank = accelerator.num_processes, accelerator.process_index
    start = counter.step
    loader = torch.utils.data.DataLoader(
        data,
        batch_sampler=BatchSampler(plan, start=start * cfg.grad_accum * procs + rank, stride=procs),
        collate_fn=collate,
        num_workers=cfg.num_workers,
    )
    batches = iter(loader)
    sampler_ctx = _Sampler(cfg, out, data, vae_set, accelerator) if accelerator.is_main_process else None
    result = TrainResult(steps=start, out=out)
    from tqdm.auto import tqdm

    bar = tqdm(
        total=cfg.max_steps,
        initial=start,
        desc="train",
        unit="step",
        disable=not (cfg.progress and accelerator.is_main_process),
    )
    log_file = (out / "log.jsonl").open("a") if accelerator.is_main_process else None
    t_window, n_window = time.perf_counter(), 0
    try:
        for step in range(start + 1, cfg.max_steps + 1):
            step_losses = []
            for micro in range(cfg.grad_accum):
                batch = next(batches)
                gen = _step_generator(cfg.seed, step, micro, rank)
                with accelerator.accumulate(model):
                    loss = _micro_step(model, batch, gen, schedule, cfg, accelerator.device)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    if accelerator.sync_gradients:
                        lr_sched.step()
                    optimizer.zero_grad(set_to_none=True)
                step_losses.append(loss.detach())
            mean_loss = accelerator.reduce(torch.stack(step_losses).mean(), reduction="mean").item()
            if not math.isfinite(mean_loss):
                raise SeeingSoundError(f"loss became {mean_loss} at step {step}; lower --lr or check the features")
            counter.step = step
            result.steps = step
            result.losses[step] = mean_loss
            n_window += cfg.batch_size * cfg.grad_accum * procs
            if ema is not None:
                ema.step(accelerator.unwrap_model(model).parameters())
            if log_file is not None:
                log_file.write(json.dumps({"step": step, "loss": mean_loss, "lr": lr_sched.get_last_lr()[0]}) + "\n")
                log_file.flush()
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                rate = n_window / max(time.perf_counter() - t_window, 1e-9)
                result.samples_per_second = rate
                log.info("step %d/%d loss %.4f %.1f samples/s", step, cfg.max_steps, mean_loss, rate)
                if cfg.tensorboard:
                    accelerator.log({"loss": mean_loss, "samples_per_s": rate}, step=step)
                t_window, n_window = time.perf_counter(), 0
            bar.update(1)
            bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                _save_checkpoint(accelerator, out, step, cfg.keep_checkpoints)
            if sampler_ctx is not None and cfg.sample_every and (step % cfg.sample_every == 0 or step == cfg.max_steps):
                sampler_ctx.render(accelerator.unwrap_model(model), ema, step)
    finally:
        bar.close()
        if log_file is not None:
            log_file.close()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and sampler_ctx is not None:
        result.pipeline_dir = sampler_ctx.save_pipeline(accelerator.unwrap_model(model), ema)
    accelerator.end_training()
    return result


def _micro_step(model, batch: dict, gen: torch.Generator, schedule: DiffusionSchedule, cfg: TrainConfig, device):
    """Loss of one micro-batch; all random draws come from ``gen`` (on the CPU, so devices agree)."""
    mean, std = batch["mean"].float(), batch["std"].float()
    b = mean.shape[0]
    x0 = mean + std * torch.randn(mean.shape, generator=gen)
    t = torch.randint(0, schedule.num_steps, (b,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    drop = torch.rand(b, generator=gen) < cfg.uncond_prob
    x0, t, noise, drop = x0.to(device), t.to(device), noise.to(device), drop.to(device)
    xt = q_sample(schedule, x0, t, noise)
    out = model(xt, t, batch["audio"].to(device), drop_mask=drop).sample
    return diffusion_loss(schedule, out.float(), x0, xt, t, noise, cfg.loss).mean()


def _save_checkpoint(accelerator, out: Path, step: int, keep: int) -> None:
    path = out / "checkpoints" / f"step-{step:08d}"
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        (path / "step.json").write_text(json.dumps({"step": step}) + "\n")
        if keep:
            for old in _checkpoints(out)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
        log.info("saved checkpoint %s", path)


class _Sampler:
    """Validation grids during training and the final pipeline folder (main process only)."""

    def __init__(self, cfg: TrainConfig, out: Path, data: PairFeatures, vae_set, accelerator):
        from seeing_sound.model.loading import load_scheduler, load_vae

        self.cfg, self.out, self.device = cfg, out, accelerator.device
        self.vae = load_vae(vae_set.card["model"]).to(self.device).eval()
        self.scheduler = load_scheduler(cfg.pretrained)
        items = [data[i] for i in range(min(cfg.num_validation, len(data)))]
        self.audio = torch.stack([it["audio"] for it in items]).float()
        self.latents = torch.stack([it["mean"] for it in items]).float()
        self.ast_model = data.ast.card["model"]
        self.ast_pool = int(data.ast.card.get("pool", 1))  # generation must pool AST tokens like these features

    def _pipeline(self, model):
        from seeing_sound.model.pipeline import AudioPixArtPipeline

        pipe = AudioPixArtPipeline(transformer=model, vae=self.vae, scheduler=self.scheduler, ast_pool=self.ast_pool)
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
        log.info("saved pipeline to %s", path)
        return path


def _render(pipe, audio, latents, cfg: TrainConfig):
    from seeing_sound.model.samples import render_validation_grid

    with torch.no_grad():
        return render_validation_grid(pipe, audio, latents, cfg.seed, cfg.sample_steps, cfg.guidance_scale)
