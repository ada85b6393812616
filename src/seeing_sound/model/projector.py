"""The audio projector: AST token embeddings -> the transformer's cross-attention width (paper A.10).

It is the analogue of diffusers' ``PixArtAlphaTextProjection`` (Linear -> GELU(tanh) -> Linear, the
same parameter names so the module is a drop-in ``caption_projection``), randomly initialised, plus a
learned null embedding for classifier-free guidance. PixArt-α learns its null caption in the *input*
space of the projection (``y_embedding``); we do the same with one learned AST-space vector that
replaces every token of a dropped example, which keeps it independent of the AST sequence length.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class AudioProjector(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers types config_name twice
    """MLP ``(B, T, in_features) -> (B, T, hidden_size)`` with a learned null embedding ``(in_features,)``.

    Args:
        in_features: width of the audio embeddings (AST hidden size, 768 for the AudioSet AST).
        hidden_size: cross-attention width of the transformer (1152 for PixArt-α XL/2).
    """

    @register_to_config
    def __init__(self, in_features: int = 768, hidden_size: int = 1152):
        super().__init__()
        if in_features < 1:
            raise ValueError(f"in_features must be >= 1, got {in_features}")
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
        self.linear_1 = nn.Linear(in_features, hidden_size, bias=True)
        self.act_1 = nn.GELU(approximate="tanh")
        self.linear_2 = nn.Linear(hidden_size, hidden_size, bias=True)
        # Same scale as PixArt-α's y_embedding init: randn / sqrt(in_channels).
        self.null_embedding = nn.Parameter(torch.randn(in_features) / in_features**0.5)

    def forward(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        """Project ``(B, T, in_features)`` audio tokens to ``(B, T, hidden_size)``."""
        return self.linear_2(self.act_1(self.linear_1(audio_embeds)))

    def null_embeds(self, batch_size: int, num_tokens: int) -> torch.Tensor:
        """The unconditional input ``(batch_size, num_tokens, in_features)`` for classifier-free guidance."""
        return self.null_embedding.view(1, 1, -1).expand(batch_size, num_tokens, -1)

    def drop(self, audio_embeds: torch.Tensor, drop_mask: torch.Tensor) -> torch.Tensor:
        """Replace the examples where ``drop_mask`` ``(B,)`` is True by the null embedding."""
        null = self.null_embedding.to(audio_embeds.dtype).view(1, 1, -1)
        return torch.where(drop_mask.view(-1, 1, 1), null, audio_embeds)
