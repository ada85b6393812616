"""Train AudioPixArt on precomputed AST/VAE features with accelerate (paper Section 4.3).

Either side may instead be computed in the training process from the dataset itself:
``ast_online`` (tokens from the mixtures), ``vae_online`` (latents from the images); with both, no
feature set is read at all.

A torchtune-style recipe: ``TrainRecipe(cfg)`` with ``setup()``, ``train()``,
``save_checkpoint()`` and ``cleanup()``; :func:`train` runs the four. Single process,
``accelerate launch`` multi-GPU and multi-node all run this same code. Every random draw of
optimizer step ``s`` (timesteps, noise, latent sample, CFG dropout) comes from a generator seeded
with ``(seed, s, micro-batch, process)`` and the batch order is a pure function of the step
(:class:`BatchPlan`), so resuming from a checkpoint reproduces the uninterrupted run's next
losses exactly. Several datasets train as one (:mod:`seeing_sound.model.training.sets`: their rows
one after the other, the plan over all of them). Checkpoints (:mod:`seeing_sound.model.checkpoint`)
are safetensors plus a state file read with ``weights_only=True``: resuming never unpickles
anything. The recipe never changes its config: what it resolves (the feature folders) lives in its
own copy.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seeing_sound.engine import command_run
from seeing_sound.engine.shards import write_json_atomic
from seeing_sound.errors import SeeingSoundError
from seeing_sound.model.checkpoint import load_training_state, save_training_state
from seeing_sound.model.diffusion import DiffusionSchedule, diffusion_loss, q_sample
from seeing_sound.model.training.config import TrainConfig
from seeing_sound.model.training.data import BatchPlan, BatchSampler, OnlineAst, OnlineVae
from seeing_sound.model.training.resume import (
    check_resume_settings,
    checkpoints,
    resolve_resume,
    resumed_changes,
    run_record,
    trim_log,
)
from seeing_sound.model.training.sets import build_data, dataset_records, load_sets

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    steps: int  # optimizer steps done in total (incl. before a resume)
    losses: dict[int, float] = field(default_factory=dict)  # step -> mean loss of this invocation's steps
    out: Path | None = None
    pipeline_dir: Path | None = None
    samples_per_second: float = 0.0


class _StepCounter:
    """The global step (saved in each checkpoint's ``state.json``)."""

    def __init__(self):
        self.step = 0

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = int(state["step"])


def _step_generator(seed: int, step: int, micro: int, process: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1009 + micro) * 131 + process)


def _make_accelerator(cfg: TrainConfig, out: Path):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    precision = cfg.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    log_with = None if cfg.report_to == "none" else cfg.report_to
    if log_with is not None and importlib.util.find_spec(log_with) is None:
        raise SeeingSoundError(f"report_to={log_with} needs the {log_with} package: pip install 'seeing-sound[track]'")
    return Accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )


class TrainRecipe:
    """One training run: ``setup()`` builds everything, ``train()`` loops, ``cleanup()`` releases.

    ``config`` is the caller's, untouched; ``cfg`` is the recipe's resolved copy (feature folder
    names filled in), which is what ``OUT/train_config.json`` records and resume compares.
    """

    def __init__(self, config: TrainConfig):
        self.config = config
        self.cfg = config
        self.out = Path(config.out)

    def setup(self) -> None:
        from diffusers.training_utils import EMAModel

        from seeing_sound.model.audio_pixart import AudioPixArt
        from seeing_sound.model.training.samples import TrainSampler

        out = self.out
        out.mkdir(parents=True, exist_ok=True)
        online = self.config.ast_online
        sets, exclusions = load_sets(self.config)
        ast_set, vae_set = sets[0].ast, sets[0].vae  # the others match them (train_sets.check_compatible)
        cfg = self.cfg = dataclasses.replace(
            self.config,
            ast_features=None if ast_set is None else ast_set.path.name,
            vae_features=None if vae_set is None else vae_set.path.name,
        )
        data, self.collate = build_data(sets, online)
        self.data, self.sets = data, sets
        records = dataset_records(sets)
        self.resume_from = resolve_resume(cfg, out)
        saved = check_resume_settings(cfg, out, records) if self.resume_from is not None else None
        self.accelerator = accelerator = _make_accelerator(cfg, out)

        # AST tokens: read from features/ast-* (default), or computed here from the mixtures (ast_online).
        self.online_ast: OnlineAst | None = None
        audio_card: dict[str, Any]
        if ast_set is None:
            self.online_ast = OnlineAst(cfg.ast_model, cfg.ast_pool, accelerator.device, cfg.batch_size)
            audio_card, audio_name = self.online_ast.card, f"AST online ({cfg.ast_model})"
        else:
            audio_card, audio_name = ast_set.card, ast_set.path.name
        # VAE latents: read from features/vae-* (default), or encoded here from the images (vae_online).
        self.online_vae: OnlineVae | None = None
        vae_view: Any = vae_set  # what the validation grid reads: a feature set's card (model, latent shape)
        if vae_set is None:
            self.online_vae = OnlineVae(cfg.pretrained, cfg.vae_resolution, accelerator.device)
            vae_view = _OnlineVaeSet(self.online_vae.card)
            vae_name = f"VAE online ({cfg.pretrained}, {cfg.vae_resolution} px)"
        else:
            vae_name = vae_set.path.name
        plan = BatchPlan(len(data), cfg.batch_size, cfg.seed)
        log.info(
            "training on %d pairs (%s, %s), %d batches per epoch",
            len(data),
            audio_name,
            vae_name,
            plan.batches_per_epoch,
        )
        if len(sets) > 1 or exclusions or cfg.min_pair_score is not None:
            log.info(
                "datasets: %s",
                "; ".join(f"{r['path']}: {r['rows']} pairs ({r['excluded']} excluded)" for r in records),
            )

        # 1. Model (seeded), optional projector pre-training, optimizer, LR schedule, EMA.
        torch.manual_seed(cfg.seed)
        model = AudioPixArt.from_pixart(cfg.pretrained, audio_embed_dim=int(audio_card["dim"]), seed=cfg.seed)
        if cfg.loss == "hybrid" and not model.learned_variance:
            raise SeeingSoundError(f"{cfg.pretrained} predicts no variance; use loss='eps-mse'")
        if cfg.pretrain_projector_steps and self.resume_from is None:
            from seeing_sound.model.pretrain import pretrain_projector

            pretrain_projector(model, cfg, data, device=accelerator.device, audio_of=self.audio_of_items)
        if cfg.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        warmup = cfg.warmup_steps
        self.lr_sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
        )
        self.counter = _StepCounter()
        self.ema = EMAModel(model.parameters(), decay=cfg.ema_decay) if cfg.ema_decay > 0 else None
        if self.ema is not None:
            self.ema.to(accelerator.device)
        # 2. Checkpointed state. The LR scheduler stays unprepared (accelerate would step it once per
        # process) and is stepped once per optimizer step in train(); it is checkpointed with the rest.
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        if self.resume_from is not None:
            self.counter.step = load_training_state(
                self.resume_from,
                model=accelerator.unwrap_model(self.model),
                optimizer=self.optimizer,
                lr_scheduler=self.lr_sched,
                ema=self.ema,
            )
            log.info("resumed from %s at step %d", self.resume_from, self.counter.step)
            changes = resumed_changes(cfg, saved, self.counter.step, self._apply_settings())
        else:
            changes = []
        # Written once the checkpoint is loaded and the new settings applied, so it never records a
        # resume that did not happen (a refused setting, an unreadable checkpoint).
        record = run_record(cfg, records, exclusions, changes)
        if accelerator.is_main_process:
            write_json_atomic(out / "train_config.json", record)
        if cfg.report_to != "none":
            _start_trackers(accelerator, cfg, out, record, self.counter.step)

        # 3. Data in the order of the plan, continuing where the checkpoint left off.
        procs, rank = accelerator.num_processes, accelerator.process_index
        loader = torch.utils.data.DataLoader(
            data,
            batch_sampler=BatchSampler(plan, start=self.counter.step * cfg.grad_accum * procs + rank, stride=procs),
            collate_fn=self.collate,
            num_workers=cfg.num_workers,
        )
        self.batches = iter(loader)
        self.sampler = None
        if accelerator.is_main_process:
            grid_data = data if self.online_vae is None else _EncodedItems(data, self.latents_of_items)
            self.sampler = TrainSampler(cfg, out, grid_data, vae_view, accelerator, audio_card, self.audio_of_items)
            if cfg.sample_every:
                _warn_cpu_sampling(cfg, model, vae_view, accelerator.device)

    def _apply_settings(self) -> dict[str, float]:
        """Set the config's ``lr`` and ``weight_decay`` on the optimizer the checkpoint restored.

        The optimizer and LR-scheduler states hold the values the run used so far; left alone, a
        resume with another ``lr`` would record it and go on with the old one. The LR of the next
        step is ``lr * warm-up factor`` (as :class:`~torch.optim.lr_scheduler.LambdaLR` computes it),
        bit-identical to the restored one when nothing changed. Returns the restored values.
        """
        cfg, sched, groups = self.cfg, self.lr_sched, self.optimizer.param_groups
        restored = {"lr": float(sched.base_lrs[0]), "weight_decay": float(groups[0]["weight_decay"])}
        sched.base_lrs = [cfg.lr for _ in groups]
        for group, factor in zip(groups, sched.lr_lambdas, strict=True):
            group["initial_lr"] = cfg.lr
            group["lr"] = cfg.lr * factor(sched.last_epoch)
            group["weight_decay"] = cfg.weight_decay
        sched._last_lr = [group["lr"] for group in groups]  # what get_last_lr() (log.jsonl's lr) reports
        return restored

    def audio_batch(self, batch: dict) -> dict:
        """The batch with ``"audio"`` tokens: as read, or computed from its ``"wave"``s (ast_online)."""
        if self.online_ast is not None and "wave" in batch:
            batch = {**batch, "audio": self.online_ast(batch.pop("wave"))}
        return batch

    def latent_batch(self, batch: dict) -> dict:
        """The batch with ``"mean"``/``"std"`` latents: as read, or encoded from its ``"pixels"`` (vae_online)."""
        if self.online_vae is not None and "pixels" in batch:
            batch = dict(batch)
            batch["mean"], batch["std"] = self.online_vae(batch.pop("pixels"), rows=batch.get("row"))
        return batch

    def model_batch(self, batch: dict) -> dict:
        """The batch as the model step reads it: AST tokens and VAE latents, computed where online."""
        return self.latent_batch(self.audio_batch(batch))

    def audio_of_items(self, positions: list[int]) -> torch.Tensor:
        """AST tokens ``(n, T, D)`` of dataset positions (validation grid, projector pre-training)."""
        return self.audio_batch(self.collate([self.data[i] for i in positions]))["audio"]

    def latents_of_items(self, positions: list[int]) -> torch.Tensor:
        """VAE posterior means ``(n, C, h, w)`` fp16 of dataset positions (the validation grid's ground truth)."""
        return self.latent_batch(self.collate([self.data[i] for i in positions]))["mean"]

    def train(self) -> TrainResult:
        """Optimizer steps up to ``max_steps``; returns the losses of the steps this call did."""
        from tqdm.auto import tqdm

        cfg, accelerator, model = self.cfg, self.accelerator, self.model
        schedule = DiffusionSchedule.linear(1000)
        procs, rank = accelerator.num_processes, accelerator.process_index
        start = self.counter.step
        result = TrainResult(steps=start, out=self.out)
        main = accelerator.is_main_process
        track = cfg.report_to != "none"
        bar = tqdm(total=cfg.max_steps, initial=start, desc="train", unit="step", disable=not (cfg.progress and main))
        if main:  # rows of steps past the checkpoint (done before a kill) are done again now: one row a step
            trim_log(self.out / "log.jsonl", start)
        log_file = (self.out / "log.jsonl").open("a") if main else None
        t_window, n_window = time.perf_counter(), 0
        try:
            for step in range(start + 1, cfg.max_steps + 1):
                step_losses = []
                log_step = step % cfg.log_every == 0 or step == cfg.max_steps
                grad_norm = None
                for micro in range(cfg.grad_accum):
                    batch = self.model_batch(next(self.batches))
                    gen = _step_generator(cfg.seed, step, micro, rank)
                    with accelerator.accumulate(model):
                        loss = _micro_step(model, batch, gen, schedule, cfg, accelerator.device)
                        accelerator.backward(loss)
                        if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                        elif accelerator.sync_gradients and track and log_step:
                            # the norm for the tracker: an infinite bound scales every gradient by 1.0 (exact)
                            grad_norm = accelerator.clip_grad_norm_(model.parameters(), math.inf)
                        self.optimizer.step()
                        if accelerator.sync_gradients:
                            self.lr_sched.step()
                        self.optimizer.zero_grad(set_to_none=True)
                    step_losses.append(loss.detach())
                mean_loss = accelerator.reduce(torch.stack(step_losses).mean(), reduction="mean").item()
                if not math.isfinite(mean_loss):
                    raise SeeingSoundError(f"loss became {mean_loss} at step {step}; lower lr or check the features")
                self.counter.step = result.steps = step
                result.losses[step] = mean_loss
                n_window += cfg.batch_size * cfg.grad_accum * procs
                if self.ema is not None:
                    self.ema.step(accelerator.unwrap_model(model).parameters())
                lr = self.lr_sched.get_last_lr()[0]
                if log_file is not None:
                    log_file.write(json.dumps({"step": step, "loss": mean_loss, "lr": lr}) + "\n")
                    log_file.flush()
                if log_step:
                    rate = n_window / max(time.perf_counter() - t_window, 1e-9)
                    result.samples_per_second = rate
                    log.info("step %d/%d loss %.4f %.3g samples/s", step, cfg.max_steps, mean_loss, rate)
                    if track:
                        values = {"loss": mean_loss, "lr": lr, "samples_per_second": rate}
                        if grad_norm is not None:  # None: a back end that clips by itself (DeepSpeed)
                            values["grad_norm"] = float(grad_norm)
                        accelerator.log(values, step=step)
                    t_window, n_window = time.perf_counter(), 0
                bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)  # before update(), which redraws
                bar.update(1)
                if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                    self.save_checkpoint(step)
                if (
                    self.sampler is not None
                    and cfg.sample_every
                    and (step % cfg.sample_every == 0 or step == cfg.max_steps)
                ):
                    self.sampler.render(accelerator.unwrap_model(model), self.ema, step)
        finally:
            bar.close()
            if log_file is not None:
                log_file.close()
        accelerator.wait_for_everyone()
        if main and self.sampler is not None:
            result.pipeline_dir = self.sampler.save_pipeline(accelerator.unwrap_model(model), self.ema)
        return result

    def save_checkpoint(self, step: int) -> Path:
        """``OUT/checkpoints/step-N``: model, optimizer, LR, EMA and step (no pickles); keeps the newest.

        Written by the main process into a hidden folder and renamed into place, so a run killed
        while saving leaves no half checkpoint for ``resume='latest'`` to pick. The optimizer state
        is the same on every data-parallel process, so one copy is the whole state.
        """
        path = self.out / "checkpoints" / f"step-{step:08d}"
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            partial = path.with_name(f".{path.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            try:
                save_training_state(
                    partial,
                    model=self.accelerator.unwrap_model(self.model),
                    optimizer=self.optimizer,
                    lr_scheduler=self.lr_sched,
                    ema=self.ema,
                    step=step,
                )
            except BaseException:  # a full disk, a kill: the half checkpoint goes, its space with it
                shutil.rmtree(partial, ignore_errors=True)
                raise
            shutil.rmtree(path, ignore_errors=True)
            partial.rename(path)
            if self.cfg.keep_checkpoints:
                for old in checkpoints(self.out)[: -self.cfg.keep_checkpoints]:
                    shutil.rmtree(old, ignore_errors=True)
            log.info("saved checkpoint %s", path)
        return path

    def cleanup(self) -> None:
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None:
            accelerator.end_training()


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) a training run; returns the losses of the steps this call did.

    The run holds ``cfg.out`` (a second ``train`` into it stops at once; under ``accelerate launch``
    the main process holds it for all), refuses an ``out`` that is or holds a dataset, and stops with
    one line when the disk fills while a checkpoint is saved.
    """
    with command_run("train", cfg.out, inputs={"dataset": list(cfg.dataset)}, lock=_launch_rank() == 0):
        recipe = TrainRecipe(cfg)
        try:
            recipe.setup()
            return recipe.train()
        finally:
            recipe.cleanup()


#: The project every tracker files runs under: ``OUT/logs/seeing-sound`` (TensorBoard), the W&B project.
TRACKER_PROJECT = "seeing-sound"


def _start_trackers(accelerator, cfg: TrainConfig, out: Path, record: dict, step: int) -> None:
    """Start ``cfg.report_to``'s tracker (main process) with the run's record as its hyperparameters.

    TensorBoard writes ``OUT/logs/seeing-sound``; a resume from step N purges the events of steps
    after N that a killed run wrote there (as ``log.jsonl`` drops its rows). W&B files the run under
    project ``seeing-sound``, named after OUT, in ``OUT/wandb`` (``WANDB_DIR`` where set); each
    invocation is one W&B run. W&B's own environment applies (``WANDB_MODE=offline``: no account,
    no network). Under ``progress=False`` (``--quiet``) W&B prints nothing, unless ``WANDB_SILENT=false``
    says otherwise.
    """
    kwargs: dict[str, Any] = {}
    if cfg.report_to == "tensorboard":
        if step:
            kwargs["purge_step"] = step + 1
    else:
        kwargs["name"] = out.resolve().name
        if not os.environ.get("WANDB_DIR"):
            kwargs["dir"] = str(out)
        # a setting, not only the environment: W&B reads WANDB_SILENT once per process (a second run in
        # one process, as in a notebook or a test session, would print its banner again)
        if not cfg.progress and os.environ.get("WANDB_SILENT", "true").lower() not in ("false", "0"):
            import wandb

            kwargs["settings"] = wandb.Settings(silent=True)
    accelerator.init_trackers(TRACKER_PROJECT, config=tracker_config(record), init_kwargs={cfg.report_to: kwargs})


def tracker_config(record: dict) -> dict[str, bool | int | float | str]:
    """``train_config.json``'s record as flat scalars: the run's hyperparameters in a tracker.

    Nested objects become dotted keys (``datasets.0.rows``, ``changes.0.setting``), a list of
    scalars one comma-separated string, and unset values (``None``) are left out: TensorBoard's
    hyperparameters take only bool, int, float and str.
    """
    flat: dict[str, bool | int | float | str] = {}

    def walk(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{key}.{k}" if key else str(k), v)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            flat[key] = ", ".join(map(str, value))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{key}.{i}", v)
        else:
            flat[key] = value if isinstance(value, (bool, int, float, str)) else str(value)

    walk("", record)
    return flat


def _launch_rank() -> int:
    """This process's rank under ``accelerate launch``/``torchrun`` (0 when run directly)."""
    return int(os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or 0)


class _OnlineVaeSet:
    """Stands in for a VAE feature set where the validation grid reads one (``card``: model, latent shape)."""

    def __init__(self, card: dict):
        self.card = card
        self.path = Path(f"vae-online-{card['resolution']}")


class _EncodedItems:
    """The run's items for the validation grid under vae_online: ``items[i]["mean"]`` encoded on demand."""

    def __init__(self, data, latents_of):
        self.data, self.latents_of = data, latents_of

    def __len__(self) -> int:
        return len(self.data)

    def validation_positions(self, n: int) -> list[int]:
        return self.data.validation_positions(n)

    def __getitem__(self, i: int) -> dict:
        return {"mean": self.latents_of([int(i)])[0]}


#: PixArt-XL/2 (611M parameters), one 512² sampling step with guidance, timed once on a 2-core CPU: the
#: order of magnitude a warning needs; the CPU estimate of a validation grid scales it by parameters and
#: latent area.
_CPU_FULL_SIZE_STEP_S = 17.7
_FULL_SIZE_PARAMS = 611e6
_FULL_SIZE_LATENT_AREA = 64 * 64


def _warn_cpu_sampling(cfg: TrainConfig, model, vae_set, device) -> None:
    """Say once, on a CPU, what a validation grid will cost and how to turn grids off."""
    if torch.device(device).type != "cpu":
        return
    params = sum(p.numel() for p in model.parameters())
    shape = vae_set.card.get("latent_shape") or [4, 64, 64]
    area = int(shape[-1]) * int(shape[-2])
    est = cfg.num_validation * cfg.sample_steps * _CPU_FULL_SIZE_STEP_S * params / _FULL_SIZE_PARAMS
    est *= area / _FULL_SIZE_LATENT_AREA
    level = logging.WARNING if est > 60 else logging.INFO
    log.log(
        level,
        "no GPU: each validation grid (%d images x %d steps, every %d steps) runs on the CPU, about %s here "
        "(a full-size 611M PixArt at 512² takes ~%.0f s per step); sample_every=0 (--sample-every 0) skips them",
        cfg.num_validation,
        cfg.sample_steps,
        cfg.sample_every,
        f"{est / 60:.3g} min" if est >= 60 else f"{est:.2g} s",
        _CPU_FULL_SIZE_STEP_S,
    )


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
