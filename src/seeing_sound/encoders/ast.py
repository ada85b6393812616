"""Audio Spectrogram Transformer token embeddings: the paper's audio representation (Section 3.4).

``ASTModel``'s last hidden state is a vector time series: 2 summary tokens ([CLS], distillation)
followed by ``F x T`` patch tokens in frequency-major order (12 x 101 for AST's 1024 frames).
``ASTFeatureExtractor`` computes Kaldi-style fbanks with its numpy path (no torchaudio).

Audio longer than AST's window (``max_length`` frames, 10.24 s for the AudioSet model) is cut into
consecutive windows that are encoded separately and averaged token by token, so every clip gives the
same number of tokens and the whole clip conditions the image. Shorter audio is zero padded by the
feature extractor, exactly as during training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seeing_sound.builders import DEFAULT_AST
from seeing_sound.errors import ModelNotFoundError

log = logging.getLogger(__name__)

_FRAME_SHIFT = 160  # 10 ms at 16 kHz
_FRAME_LENGTH = 400  # 25 ms at 16 kHz


def ast_grid(config) -> tuple[int, int]:
    """``(F, T)`` patch grid of an ``ASTConfig``."""
    f = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    t = (config.max_length - config.patch_size) // config.time_stride + 1
    return f, t


def pool_ast_tokens(tokens: np.ndarray, f_dim: int, t_dim: int, factor: int) -> np.ndarray:
    """Average AST patch tokens over non-overlapping runs of ``factor`` time steps.

    ``tokens``: ``(B, 2 + F*T, D)``; returns ``(B, 2 + F*ceil(T/factor), D)``. The 2 summary tokens
    are kept; a last, shorter run is averaged over its own length. ``factor == 1`` is the identity.
    """
    if factor < 1:
        raise ValueError(f"pool factor must be >= 1, got {factor}")
    b, n, d = tokens.shape
    if n != 2 + f_dim * t_dim:
        raise ValueError(f"tokens have {n} positions, expected 2 + {f_dim}*{t_dim}")
    if factor == 1:
        return tokens
    patches = tokens[:, 2:].reshape(b, f_dim, t_dim, d).astype(np.float32)
    runs = [patches[:, :, s : s + factor].mean(axis=2) for s in range(0, t_dim, factor)]
    pooled = np.stack(runs, axis=2).reshape(b, -1, d)
    return np.concatenate([tokens[:, :2].astype(np.float32), pooled], axis=1).astype(tokens.dtype)


@dataclass
class AstEncoder:
    """A loaded AST and its feature extractor; :meth:`encode` turns waveforms into token embeddings."""

    model: Any
    feature_extractor: Any
    name_or_path: str

    @property
    def sampling_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def grid(self) -> tuple[int, int]:
        return ast_grid(self.model.config)

    @property
    def num_tokens(self) -> int:
        f, t = self.grid
        return 2 + f * t

    @property
    def window_samples(self) -> int:
        """Samples that fill exactly ``max_length`` fbank frames."""
        return (int(self.feature_extractor.max_length) - 1) * _FRAME_SHIFT + _FRAME_LENGTH

    def encode(self, waves: Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
        """Token embeddings ``(len(waves), num_tokens, hidden)`` float32 of mono waveforms at ``sampling_rate``."""
        import torch

        windows, owner = [], []
        for i, wave in enumerate(waves):
            wave = np.asarray(wave, dtype=np.float32).reshape(-1)
            if wave.size == 0:
                raise ValueError(f"waves[{i}] is empty")
            if wave.size < _FRAME_LENGTH:  # fbank needs one full frame
                wave = np.pad(wave, (0, _FRAME_LENGTH - wave.size))
            step = self.window_samples
            for start in range(0, max(wave.size - _FRAME_LENGTH, 0) + 1, step):
                windows.append(wave[start : start + step])
                owner.append(i)
        device = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        outs = []
        for s in range(0, len(windows), batch_size):
            feats = self.feature_extractor(
                windows[s : s + batch_size], sampling_rate=self.sampling_rate, return_tensors="np"
            )
            x = torch.from_numpy(np.asarray(feats["input_values"])).to(device=device, dtype=dtype)
            with torch.inference_mode():
                outs.append(self.model(input_values=x).last_hidden_state.float().cpu().numpy())
        per_window = np.concatenate(outs, axis=0)
        owner_arr = np.asarray(owner)
        result = np.stack([per_window[owner_arr == i].mean(axis=0) for i in range(len(waves))])
        return result.astype(np.float32)


def load_ast(name_or_path: str = DEFAULT_AST, device: str = "cpu", dtype=None, flag: str = "--ast") -> AstEncoder:
    """Load ``ASTModel`` + ``ASTFeatureExtractor`` from a hub id or folder (eval mode, on ``device``).

    The AudioSet AST is saved as an ``ASTForAudioClassification``: loading ``ASTModel`` from it
    would report its ``classifier.*`` head as UNEXPECTED. Such a checkpoint is loaded as the class it
    was saved as and its backbone kept, so every key is expected and transformers' load report still
    names any key that is really missing or unexpected.
    """
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification, ASTModel

    try:
        fe = ASTFeatureExtractor.from_pretrained(str(name_or_path))
        config = ASTConfig.from_pretrained(str(name_or_path))
        if ASTForAudioClassification.__name__ in (config.architectures or []):
            classifier = ASTForAudioClassification.from_pretrained(str(name_or_path), config=config, dtype=dtype)
            model = classifier.audio_spectrogram_transformer
        else:
            model = ASTModel.from_pretrained(str(name_or_path), config=config, dtype=dtype)
    except OSError as exc:
        raise ModelNotFoundError("AST", str(name_or_path), flag, exc) from exc
    return AstEncoder(model=model.to(device).eval(), feature_extractor=fe, name_or_path=str(name_or_path))
