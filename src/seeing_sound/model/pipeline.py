"""AudioPixArtPipeline: audio (or precomputed AST tokens) -> images, inference only."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, ImagePipelineOutput
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils.torch_utils import randn_tensor

from seeing_sound.encoders.ast import AstEncoder, ast_grid, pool_ast_tokens
from seeing_sound.model.audio_pixart import AudioPixArt

log = logging.getLogger(__name__)


def _as_wave_list(audio) -> list[np.ndarray]:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    if isinstance(audio, np.ndarray):
        if audio.ndim == 1:
            return [audio]
        if audio.ndim == 2:
            return list(audio)
        raise ValueError(f"audio must be (n,) or (batch, n), got shape {audio.shape}")
    if (
        isinstance(audio, (list, tuple))
        and audio
        and all(isinstance(a, (np.ndarray, torch.Tensor, list)) for a in audio)
    ):
        return [np.asarray(a.cpu().numpy() if isinstance(a, torch.Tensor) else a) for a in audio]
    raise ValueError(f"audio must be a waveform array or a list of them, got {type(audio).__name__}")


def _resolution(value) -> list[int]:
    """``resolution`` as ``[height, width]`` (an int is square); ValueError naming it otherwise."""
    pair = [value, value] if isinstance(value, int) else list(value) if isinstance(value, (list, tuple)) else []
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
        raise ValueError(f"resolution must be a positive int or [height, width], got {value!r}")
    return pair


class AudioPixArtPipeline(DiffusionPipeline):
    """Generate images from sound with an :class:`AudioPixArt` transformer.

    Components: ``transformer`` (AudioPixArt), ``vae`` (AutoencoderKL), ``scheduler`` (any diffusers
    scheduler; DPM-Solver++ by default), ``audio_encoder`` (transformers ``ASTModel``) and
    ``feature_extractor`` (``ASTFeatureExtractor``). The AST parts are optional when you pass
    ``audio_embeds``. ``ast_pool`` is the time-pooling factor of the AST features the transformer was
    trained on (``seeing-sound features --ast-pool``); it is saved in ``model_index.json`` and applied
    to the tokens of ``audio`` so that generation sees the same sequence as training. ``resolution``
    (an int, or ``[height, width]``) is the image size it was trained at, saved likewise: the default
    ``height``/``width`` of a call (without it, the transformer's ``sample_size`` x the VAE's scale).
    """

    model_cpu_offload_seq = "audio_encoder->transformer->vae"
    _optional_components: ClassVar[list[str]] = ["audio_encoder", "feature_extractor"]

    def __init__(
        self,
        transformer: AudioPixArt,
        vae: AutoencoderKL,
        scheduler,
        audio_encoder=None,
        feature_extractor=None,
        ast_pool: int = 1,
        resolution: int | Sequence[int] | None = None,
    ):
        super().__init__()
        if not isinstance(ast_pool, int) or ast_pool < 1:
            raise ValueError(f"ast_pool must be an int >= 1, got {ast_pool!r}")
        size = None if resolution is None else _resolution(resolution)
        self.register_modules(
            transformer=transformer,
            vae=vae,
            scheduler=scheduler,
            audio_encoder=audio_encoder,
            feature_extractor=feature_extractor,
        )
        self.register_to_config(ast_pool=ast_pool, resolution=size)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    # --- inputs -----------------------------------------------------------------------------------
    def check_inputs(
        self,
        audio,
        audio_embeds,
        sampling_rate,
        height,
        width,
        num_inference_steps,
        guidance_scale,
        num_images_per_prompt,
    ) -> None:
        """Raise ``ValueError`` naming the argument for every input the pipeline cannot use."""
        if (audio is None) == (audio_embeds is None):
            raise ValueError("pass exactly one of `audio` and `audio_embeds`")
        if audio is not None:
            if self.audio_encoder is None or self.feature_extractor is None:
                raise ValueError(
                    "`audio` needs the pipeline's audio_encoder and feature_extractor; pass `audio_embeds`"
                )
            if not isinstance(sampling_rate, int) or sampling_rate <= 0:
                raise ValueError(f"`sampling_rate` must be a positive int, got {sampling_rate!r}")
            for i, wave in enumerate(_as_wave_list(audio)):
                if wave.ndim != 1 or wave.size == 0:
                    raise ValueError(f"`audio[{i}]` must be a non-empty mono waveform, got shape {wave.shape}")
                if not np.all(np.isfinite(wave)):
                    raise ValueError(f"`audio[{i}]` contains NaN or inf")
        else:
            dim = self.transformer.config.audio_embed_dim
            if not torch.is_tensor(audio_embeds) or audio_embeds.ndim != 3 or audio_embeds.shape[-1] != dim:
                shape = tuple(audio_embeds.shape) if torch.is_tensor(audio_embeds) else type(audio_embeds).__name__
                raise ValueError(f"`audio_embeds` must be a tensor (batch, tokens, {dim}), got {shape}")
        multiple = self.vae_scale_factor * self.transformer.transformer.config.patch_size
        for name, value in (("height", height), ("width", width)):
            if value is not None and (not isinstance(value, int) or value <= 0 or value % multiple):
                raise ValueError(f"`{name}` must be a positive multiple of {multiple}, got {value!r}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be an int >= 1, got {num_inference_steps!r}")
        if not guidance_scale >= 0:
            raise ValueError(f"`guidance_scale` must be >= 0, got {guidance_scale!r}")
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be an int >= 1, got {num_images_per_prompt!r}")

    def encode_audio(self, audio, sampling_rate: int = 16000) -> torch.Tensor:
        """AST token embeddings ``(B, T, D)`` of waveforms (resampled if needed, time-pooled by ``ast_pool``)."""
        waves = _as_wave_list(audio)
        target = int(self.feature_extractor.sampling_rate)
        if sampling_rate != target:
            import soxr

            waves = [soxr.resample(np.asarray(w, dtype=np.float32), sampling_rate, target) for w in waves]
        encoder = AstEncoder(self.audio_encoder, self.feature_extractor, name_or_path="pipeline")
        f_dim, t_dim = ast_grid(self.audio_encoder.config)
        return torch.from_numpy(pool_ast_tokens(encoder.encode(waves), f_dim, t_dim, self.config.ast_pool))

    # --- sampling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        audio: np.ndarray | Sequence[np.ndarray] | torch.Tensor | None = None,
        audio_embeds: torch.Tensor | None = None,
        sampling_rate: int = 16000,
        num_inference_steps: int = 20,
        guidance_scale: float = 4.5,
        height: int | None = None,
        width: int | None = None,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple[Any]:
        """Images for each audio clip (``num_images_per_prompt`` each, grouped by clip).

        ``guidance_scale`` > 1 enables classifier-free guidance against the learned null audio.
        ``output_type``: "pil", "np", "pt" or "latent".
        """
        trained = self.config.get("resolution")
        sample_px = self.transformer.sample_size * self.vae_scale_factor
        default_h, default_w = (int(trained[0]), int(trained[1])) if trained else (sample_px, sample_px)
        height, width = height or default_h, width or default_w
        self.check_inputs(
            audio,
            audio_embeds,
            sampling_rate,
            height,
            width,
            num_inference_steps,
            guidance_scale,
            num_images_per_prompt,
        )
        device = self._execution_device
        dtype = self.transformer.dtype

        # 1. Audio conditioning, repeated per image, with the null audio for guidance.
        if audio_embeds is None:
            audio_embeds = self.encode_audio(audio, sampling_rate)
        cond = audio_embeds.to(device=device, dtype=dtype).repeat_interleave(num_images_per_prompt, dim=0)
        batch = cond.shape[0]
        do_cfg = guidance_scale > 1.0
        if do_cfg:
            null = self.transformer.projector.null_embeds(batch, cond.shape[1]).to(dtype)
            cond = torch.cat([null, cond], dim=0)

        # 2. Timesteps and initial noise.
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        channels = self.transformer.in_channels
        shape = (batch, channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"`latents` must have shape {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device=device, dtype=torch.float32) * self.scheduler.init_noise_sigma
        learned_var_scheduler = getattr(self.scheduler.config, "variance_type", None) in ("learned", "learned_range")

        # 3. Denoising loop.
        for t in self.progress_bar(self.scheduler.timesteps):
            model_in = torch.cat([latents] * 2) if do_cfg else latents
            model_in = self.scheduler.scale_model_input(model_in, t)
            timestep = t.expand(model_in.shape[0]) if torch.is_tensor(t) else torch.full((model_in.shape[0],), t)
            out = self.transformer(model_in.to(dtype), timestep.to(device), cond).sample.float()
            eps, var = out[:, :channels], out[:, channels:]
            if do_cfg:
                eps_uncond, eps_cond = eps.chunk(2)
                eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
                var = var.chunk(2)[1] if var.shape[1] else var
            model_out = torch.cat([eps, var], dim=1) if (learned_var_scheduler and var.shape[1]) else eps
            latents = self.scheduler.step(model_out, t, latents, generator=generator, return_dict=False)[0]

        # 4. Decode.
        if output_type == "latent":
            images = latents
        else:
            decoded = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor, return_dict=False)[0]
            images = self.image_processor.postprocess(decoded.float(), output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
