"""Audio Spectrogram Transformer token embeddings: the paper's audio representation (Section 3.4).

``ASTModel``'s last hidden state is a vector time series: 2 summary tokens ([CLS], distillation)
followed by ``F x T`` patch tokens in frequency-major order (12 x 101 for AST's 1024 frames).
``ASTFeatureExtractor`` computes Kaldi-style fbanks with its numpy path (no torchaudio).

Audio longer than AST's window (``max_length`` frames, 10.24 s for the AudioSet model) is cut into
consecutive windows that are encoded separately and averaged token by token, so every clip gives the
same number of tokens and the whole clip conditions the image. Shorter audio is zero padded by the
feature extractor, exactly as during training.

:func:`ast_fbank` is a torch port of ``ASTFeatureExtractor``'s numpy filterbank (batched, on any
device; within 1e-4 of it), used by :meth:`AstEncoder.encode_torch` so training can compute AST
tokens online (``train --ast-online``) without a CPU bottleneck.
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
_FFT_LENGTH = 512
_PREEMPHASIS = 0.97
_MEL_FLOOR = 1.192092955078125e-07  # float32 epsilon, as ASTFeatureExtractor
_FBANK_CONSTANTS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _fbank_constants(num_mel_bins: int, sampling_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(window (400,), mel filters (257, num_mel_bins)) exactly as ``ASTFeatureExtractor`` builds them."""
    key = (num_mel_bins, sampling_rate)
    if key not in _FBANK_CONSTANTS:
        from transformers.audio_utils import mel_filter_bank, window_function

        mel = mel_filter_bank(
            num_frequency_bins=_FFT_LENGTH // 2 + 1,
            num_mel_filters=num_mel_bins,
            min_frequency=20,
            max_frequency=sampling_rate // 2,
            sampling_rate=sampling_rate,
            norm=None,
            mel_scale="kaldi",
            triangularize_in_mel_space=True,
        )
        _FBANK_CONSTANTS[key] = (window_function(_FRAME_LENGTH, "hann", periodic=False), mel)
    return _FBANK_CONSTANTS[key]


def ast_fbank(waves, feature_extractor, lengths=None, dtype=None):
    """AST input features of a batch of waveforms, in torch: ``ASTFeatureExtractor``'s numpy path.

    ``waves``: ``(B, N)`` float tensor at the extractor's sampling rate (any device); ``lengths``:
    ``(B,)`` valid samples per row (default ``N``; each >= 400). Returns float32
    ``(B, max_length, num_mel_bins)``. Per 25 ms frame (400 samples, 10 ms hop, no centering, no
    dither): remove the DC offset, pre-emphasis 0.97 (first sample times 0.03), symmetric Hann
    window (the numpy path's; its torchaudio path uses Kaldi's "hanning"), 512-point power
    spectrum, Kaldi-scale mel filters 20 Hz .. sr/2, floor 1.19e-7, natural log. Frames past a
    row's end are zero (before normalization, as the extractor pads), extra frames truncated;
    then ``(x - mean) / (2 std)`` if ``do_normalize``.

    ``dtype``: the computing precision, float64 by default like the numpy path; in float32 a mel
    bin far below its frame's energy (the one-FFT-bin 31 Hz band of white noise) is off by up to
    3e-4. At ~0.1 GFLOP per clip against AST's 261 GFLOP the float64 cost is negligible on any GPU.
    """
    import torch

    dtype = torch.float64 if dtype is None else dtype

    fe = feature_extractor
    sr, max_len = int(fe.sampling_rate), int(fe.max_length)
    window, mel = _fbank_constants(int(fe.num_mel_bins), sr)
    x = torch.as_tensor(waves).to(dtype)
    if x.ndim != 2:
        raise ValueError(f"waves must be (batch, samples), got shape {tuple(x.shape)}")
    device = x.device
    n = x.shape[1]
    if lengths is None:
        lengths = torch.full((x.shape[0],), n, dtype=torch.long)
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=device)
    if n < _FRAME_LENGTH or bool((lengths < _FRAME_LENGTH).any()):
        raise ValueError(f"every wave needs at least {_FRAME_LENGTH} samples (one 25 ms frame)")
    usable = min(n, (max_len - 1) * _FRAME_SHIFT + _FRAME_LENGTH)  # later samples only feed truncated frames
    frames = x[:, :usable].unfold(1, _FRAME_LENGTH, _FRAME_SHIFT)  # (B, F, 400)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    frames = torch.cat([frames[..., :1] * (1 - _PREEMPHASIS), frames[..., 1:] - _PREEMPHASIS * frames[..., :-1]], -1)
    frames = frames * torch.as_tensor(window, dtype=dtype, device=device)
    spec = torch.fft.rfft(frames, n=_FFT_LENGTH)
    power = spec.real.square() + spec.imag.square()
    fbank = torch.log((power @ torch.as_tensor(mel, dtype=dtype, device=device)).clamp_min(_MEL_FLOOR))
    num_frames = 1 + (lengths - _FRAME_LENGTH) // _FRAME_SHIFT
    valid = torch.arange(fbank.shape[1], device=device)[None, :] < num_frames[:, None]
    fbank = fbank * valid[..., None]
    if fbank.shape[1] < max_len:
        fbank = torch.nn.functional.pad(fbank, (0, 0, 0, max_len - fbank.shape[1]))
    if getattr(fe, "do_normalize", True):
        fbank = (fbank - float(fe.mean)) / (float(fe.std) * 2)
    return fbank.float()


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

    def _windows(self, waves: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
        """Each wave cut into ``window_samples`` windows (a last shorter one kept); the owner of each."""
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
        return windows, owner

    def encode(self, waves: Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
        """Token embeddings ``(len(waves), num_tokens, hidden)`` float32 of mono waveforms at ``sampling_rate``."""
        import torch

        windows, owner = self._windows(waves)
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

    def encode_torch(self, waves: Sequence[np.ndarray], batch_size: int = 8):
        """Like :meth:`encode`, with the filterbank in torch on the model's device: float32 tensor there.

        The model runs in its own dtype (load it in bf16 on a GPU); tokens agree with :meth:`encode`
        to the filterbank's 1e-4 (and the model dtype's rounding).
        """
        import torch

        windows, owner = self._windows(waves)
        param = next(self.model.parameters())
        outs = []
        for s in range(0, len(windows), batch_size):
            chunk = windows[s : s + batch_size]
            longest = max(w.size for w in chunk)
            x = np.zeros((len(chunk), longest), np.float32)
            for j, w in enumerate(chunk):
                x[j, : w.size] = w
            lengths = torch.tensor([w.size for w in chunk])
            feats = ast_fbank(torch.from_numpy(x).to(param.device), self.feature_extractor, lengths)
            with torch.inference_mode():
                outs.append(self.model(input_values=feats.to(param.dtype)).last_hidden_state.float())
        per_window = torch.cat(outs)
        owner_t = torch.as_tensor(owner, device=per_window.device)
        return torch.stack([per_window[owner_t == i].mean(dim=0) for i in range(len(waves))])


def load_ast(name_or_path: str = DEFAULT_AST, device: str = "cpu", dtype=None, param: str = "ast") -> AstEncoder:
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
        raise ModelNotFoundError("AST", str(name_or_path), param, exc) from exc
    model = model.to(device)  # type: ignore[arg-type]  # transformers types .to() without str devices
    return AstEncoder(model=model.eval(), feature_extractor=fe, name_or_path=str(name_or_path))
