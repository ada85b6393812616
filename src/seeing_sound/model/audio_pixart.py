"""AudioPixArt: PixArt-α's transformer with its T5 caption projection replaced by an audio projector.

Every weight except the projector comes from a pretrained ``PixArtTransformer2DModel`` (paper A.10).
The whole model is a diffusers ``ModelMixin``: ``save_pretrained`` writes ``config.json`` (the
transformer's config and the projector's sizes) and safetensors weights; ``from_pretrained`` loads
them back. :meth:`AudioPixArt.from_pixart` starts a new model from a PixArt-α checkpoint.

The hub's PixArt-α ``transformer/config.json`` was written by diffusers 0.22 for the generic
``Transformer2DModel``: it carries that class's keys (``double_self_attention``, ``num_vector_embeds``,
``only_cross_attention``, ``use_linear_projection``), which diffusers keeps in the loaded model's
config. :func:`pixart_init_config` turns such a config into ``PixArtTransformer2DModel`` arguments.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass

import torch
from diffusers import PixArtTransformer2DModel, Transformer2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from seeing_sound.model.loading import DEFAULT_PIXART, load_pixart_transformer
from seeing_sound.model.projector import AudioProjector

log = logging.getLogger(__name__)


@dataclass
class AudioPixArtOutput(BaseOutput):
    """``sample``: ``(B, out_channels, H, W)``; with learned variance the first half is epsilon."""

    sample: torch.Tensor


def _init_keys(cls) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}


def pixart_init_config(config) -> dict:
    """The ``PixArtTransformer2DModel`` constructor arguments held in a transformer ``config``.

    Private keys (``_class_name``, ``_diffusers_version``, ...) and the keys only the legacy
    ``Transformer2DModel`` takes are dropped, as diffusers' own loader drops them; any other key the
    constructor does not take raises ``ValueError``.
    """
    init_keys = _init_keys(PixArtTransformer2DModel)
    legacy = _init_keys(Transformer2DModel) - init_keys
    public = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    unknown = sorted(set(public) - init_keys - legacy)
    if unknown:
        raise ValueError(f"transformer_config has keys PixArtTransformer2DModel does not take: {unknown}")
    return {k: v for k, v in public.items() if k in init_keys}


class AudioPixArt(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers types config_name twice
    """A ``PixArtTransformer2DModel`` conditioned on audio token embeddings.

    Args:
        transformer_config: the ``PixArtTransformer2DModel`` config (a dict; ``caption_channels`` is replaced
            by ``audio_embed_dim``; legacy ``Transformer2DModel`` keys are ignored, see :func:`pixart_init_config`).
        audio_embed_dim: width of the audio tokens (AST hidden size).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, transformer_config: dict | None = None, audio_embed_dim: int = 768):
        super().__init__()
        if audio_embed_dim < 1:
            raise ValueError(f"audio_embed_dim must be >= 1, got {audio_embed_dim}")
        cfg = {**pixart_init_config(transformer_config or {}), "caption_channels": audio_embed_dim}
        self.transformer = PixArtTransformer2DModel(**cfg)
        self.transformer.caption_projection = AudioProjector(audio_embed_dim, self.transformer.inner_dim)

    @property
    def projector(self) -> AudioProjector:
        return self.transformer.caption_projection

    @property
    def in_channels(self) -> int:
        return self.transformer.config.in_channels

    @property
    def learned_variance(self) -> bool:
        return self.transformer.out_channels == 2 * self.transformer.config.in_channels

    @property
    def sample_size(self) -> int:
        return self.transformer.config.sample_size

    @classmethod
    def from_pixart(cls, name_or_path: str = DEFAULT_PIXART, audio_embed_dim: int = 768, seed: int = 0) -> AudioPixArt:
        """All transformer weights from a PixArt-α checkpoint, a freshly initialised projector (seeded).

        The loaded transformer itself becomes the model's ``transformer`` (its caption projection
        swapped for the projector), so only one copy of the weights is ever in memory.
        """
        base = load_pixart_transformer(name_or_path)
        config = {**pixart_init_config(base.config), "caption_channels": audio_embed_dim}
        with torch.device("meta"):  # the wrapper's own transformer is replaced below: allocate nothing
            model = cls(transformer_config=config, audio_embed_dim=audio_embed_dim)
        torch.manual_seed(seed)
        projector = AudioProjector(audio_embed_dim, base.inner_dim)
        base.caption_projection = projector if projector.dtype == base.dtype else projector.to(base.dtype)
        base.register_to_config(caption_channels=audio_embed_dim)
        model.transformer = base
        model.train()  # a fresh model trains; diffusers' from_pretrained left the base in eval mode
        log.info(
            "AudioPixArt from %s: %.1fM parameters, projector %d -> %d (new)",
            name_or_path,
            sum(p.numel() for p in model.parameters()) / 1e6,
            audio_embed_dim,
            base.inner_dim,
        )
        return model

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        audio_embeds: torch.Tensor,
        drop_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ):
        """Predict noise (and variance) for noisy latents.

        Args:
            sample: ``(B, C, H, W)`` noisy latents.
            timestep: ``(B,)`` or scalar diffusion step in [0, 1000).
            audio_embeds: ``(B, T, audio_embed_dim)`` audio tokens.
            drop_mask: ``(B,)`` bool; True replaces that example's audio by the null embedding.
        Returns:
            :class:`AudioPixArtOutput` with ``sample`` ``(B, out_channels, H, W)``.
        """
        if audio_embeds.ndim != 3 or audio_embeds.shape[-1] != self.config["audio_embed_dim"]:
            raise ValueError(
                f"audio_embeds must be (B, T, {self.config['audio_embed_dim']}), got {tuple(audio_embeds.shape)}"
            )
        audio_embeds = audio_embeds.to(self.dtype)
        if drop_mask is not None:
            audio_embeds = self.projector.drop(audio_embeds, drop_mask)
        if not torch.is_tensor(timestep) or timestep.ndim == 0:
            timestep = torch.as_tensor(timestep, device=sample.device).reshape(1).expand(sample.shape[0])
        added: dict[str, torch.Tensor | None] = {"resolution": None, "aspect_ratio": None}
        if self.transformer.use_additional_conditions:  # the 1024px checkpoints condition on size
            b, _, h, w = sample.shape
            added = {
                "resolution": torch.tensor([[h * 8.0, w * 8.0]], device=sample.device).repeat(b, 1).to(self.dtype),
                "aspect_ratio": torch.tensor([[h / w]], device=sample.device).repeat(b, 1).to(self.dtype),
            }
        out = self.transformer(
            sample.to(self.dtype),
            encoder_hidden_states=audio_embeds,
            timestep=timestep,
            added_cond_kwargs=added,
            return_dict=False,
        )[0]
        return AudioPixArtOutput(sample=out) if return_dict else (out,)
