"""CLAP audio input in torch, batched on the model's device: resampling and ``ClapFeatureExtractor``.

:func:`clap_features` is a port of ``transformers.ClapFeatureExtractor`` (its numpy path) for a
batch of waveforms already at the extractor's rate: repeat/zero padding to the 10 s window, a
centered (reflect-padded) STFT with the periodic Hann window, power spectrum, the extractor's own
mel filter bank (Slaney for ``rand_trunc``, HTK for ``fusion``), floor 1e-10 and ``10 log10``.
Computed in float64 like the numpy path, it agrees with ``input_features`` to ~1e-5 dB; the random
choices the extractor makes (the crop of a clip longer than the window, the ``is_longer`` row of a
fusion batch with no long clip) draw from numpy's global generator in the same order, so a seeded
run reproduces them exactly.

:func:`resample_poly` resamples by a rational ratio with a Kaiser-windowed sinc (polyphase conv1d):
the device-side stand-in for soxr's HQ resampler, which has no torch equivalent. Its filter
(passband to 91 % of the lower Nyquist, stopband from 100 %, ~125 dB) mirrors soxr HQ's spec;
samples differ from soxr's by about -110 dB of full scale in band (see ``docs/performance.md``).
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)

_MEL_FLOOR = 1e-10  # transformers.audio_utils.spectrogram's mel_floor and power_to_db's min_value
PASSBAND = 0.91  # of the lower rate's Nyquist: soxr HQ's passband end
STOPBAND = 1.0  # soxr HQ's stopband start (no aliasing at all)
ATTENUATION_DB = 125.0  # soxr HQ: 20-bit precision


@lru_cache(maxsize=8)
def _phases(up: int, down: int, passband: float, stopband: float, attenuation: float) -> tuple[np.ndarray, int]:
    """Polyphase Kaiser-sinc taps ``(up, 2 * half + 1)`` float64 and the half width ``half``, in input samples.

    Output sample ``m`` sits at input position ``p = m * down / up``; it is
    ``sum_k x[k] g(p - k)`` with ``g(t) = c sinc(c t) kaiser(t / width)``, ``c`` the cutoff as a
    fraction of the input Nyquist (of the output Nyquist when downsampling).
    """
    scale = min(1.0, up / down)  # cutoff relative to the input Nyquist
    cutoff = 0.5 * (passband + stopband) * scale
    transition = 0.5 * (stopband - passband) * scale  # cycles per input sample
    taps = (attenuation - 7.95) / (14.36 * transition)
    half = math.ceil(taps / 2) + 1
    beta = 0.1102 * (attenuation - 8.7)
    j = np.arange(-half, half + 1, dtype=np.float64)
    out = np.empty((up, j.size))
    for r in range(up):
        # phase r: output position k + r / up from input sample k + j (conv1d correlates): t = r / up - j
        t = r / up - j
        window = np.i0(beta * np.sqrt(np.clip(1 - (t / (half + 1)) ** 2, 0, None))) / np.i0(beta)
        out[r] = cutoff * np.sinc(cutoff * t) * window
    out.setflags(write=False)  # cached and shared between calls: never written
    return out, half


def _ratio(orig_sr: int, target_sr: int) -> tuple[int, int]:
    g = math.gcd(int(orig_sr), int(target_sr))
    return int(target_sr) // g, int(orig_sr) // g


def input_needed(n_out: int, orig_sr: int, target_sr: int) -> int:
    """Input samples that :func:`resample_poly`'s first ``n_out`` outputs depend on (the rest may be cut)."""
    up, down = _ratio(orig_sr, target_sr)
    if up == down:
        return n_out
    return -(-n_out * down // up) + _phases(up, down, PASSBAND, STOPBAND, ATTENUATION_DB)[1] + 1


def resample_poly(waves, orig_sr: int, target_sr: int, dtype=None):
    """``(B, N)`` float tensor at ``orig_sr`` -> ``(B, ceil(N * target / orig))`` at ``target_sr``, same device.

    Zeros are assumed beyond both ends (as soxr flushes). ``dtype``: computing precision (float32 by
    default; the filter's own error, ~1e-6, is far above float32 rounding).
    """
    import torch

    x = torch.as_tensor(waves)
    if x.ndim != 2:
        raise ValueError(f"waves must be (batch, samples), got shape {tuple(x.shape)}")
    dtype = torch.float32 if dtype is None else dtype
    up, down = _ratio(orig_sr, target_sr)
    if up == down:
        return x.to(dtype)
    taps, half = _phases(up, down, PASSBAND, STOPBAND, ATTENUATION_DB)
    n = x.shape[1]
    n_out = -(-n * up // down)
    w = torch.tensor(taps, dtype=dtype, device=x.device)[:, None, :]  # (up, 1, K)
    xp = torch.nn.functional.pad(x.to(dtype)[:, None, :], (half, half + 1))
    y = torch.nn.functional.conv1d(xp, w)  # (B, up, N + 1): y[b, r, k] at input position k + r / up
    y = y.transpose(1, 2).reshape(x.shape[0], -1)  # output index k * up + r
    return y[:, : n_out * down : down].contiguous() if down > 1 else y[:, :n_out].contiguous()


def _pad_to_window(x, lengths, max_len: int, padding: str):
    """Rows ``x[i, :lengths[i]]`` repeated and/or zero padded to ``max_len`` as the extractor does."""
    import torch

    dev = x.device
    t = torch.arange(max_len, device=dev)[None, :]
    ln = lengths[:, None]
    if padding == "repeatpad":
        reps = torch.div(max_len, lengths, rounding_mode="floor")[:, None]
        valid = t < reps * ln
    elif padding == "repeat":
        valid = torch.ones_like(t, dtype=torch.bool).expand(x.shape[0], -1)
    else:  # "pad" (or any other value: the extractor zero pads)
        valid = t < ln
    src = torch.remainder(t, ln)
    return torch.gather(x, 1, src.expand(x.shape[0], -1)) * valid


def log_mel(windows, feature_extractor, mel_filters: np.ndarray, dtype=None):
    """``(B, nb_max_samples)`` -> float32 ``(B, frames, mel)``: ``ClapFeatureExtractor._np_extract_fbank_features``."""
    import torch
    from transformers.audio_utils import window_function

    fe = feature_extractor
    dtype = torch.float64 if dtype is None else dtype
    n_fft, hop = int(fe.fft_window_size), int(fe.hop_length)
    x = torch.nn.functional.pad(windows.to(dtype)[:, None, :], (n_fft // 2, n_fft // 2), mode="reflect")[:, 0]
    frames = x.unfold(1, n_fft, hop) * torch.as_tensor(window_function(n_fft, "hann"), dtype=dtype, device=x.device)
    spec = torch.fft.rfft(frames, n=n_fft)
    if dtype == torch.float64:
        spec = spec.to(torch.complex64).to(torch.complex128)  # the numpy path stores the STFT as complex64
    power = spec.real.square() + spec.imag.square()
    mel = (power @ torch.as_tensor(mel_filters, dtype=dtype, device=x.device)).clamp_min(_MEL_FLOOR)
    return (10.0 * torch.log10(mel)).float()  # power_to_db with reference 1.0, no db_range


def clap_features(
    waves,
    feature_extractor,
    lengths=None,
    truncation: str = "rand_trunc",
    padding: str = "repeatpad",
    n_valid: int | None = None,
):
    """``ClapFeatureExtractor(list_of_waves, truncation=..., padding=...)`` for a padded batch, in torch.

    ``waves``: ``(B, N)`` float tensor at the extractor's rate on any device; ``lengths``: valid
    samples per row (default ``N``, each >= 1). Returns ``{"input_features": (B, 1 | 4, frames, mel)
    float32, "is_longer": (B, 1) bool}`` on that device. Clips longer than the window get a random
    crop under ``rand_trunc`` (``np.random.randint``, as the extractor); ``fusion`` of a clip longer
    than the window (random crops of a full-length spectrogram) is not ported and raises.
    ``n_valid``: the batch's first rows that the extractor would have seen (the rest is filler for a
    fixed batch shape); fusion's random ``is_longer`` row is drawn among them.
    """
    import torch

    fe = feature_extractor
    x = torch.as_tensor(waves)
    if x.ndim != 2:
        raise ValueError(f"waves must be (batch, samples), got shape {tuple(x.shape)}")
    b, n = x.shape
    if b == 0:
        raise ValueError("an empty batch has no features")
    lengths = torch.full((b,), n, dtype=torch.long) if lengths is None else torch.as_tensor(lengths, dtype=torch.long)
    if bool((lengths < 1).any()) or bool((lengths > n).any()):
        raise ValueError(f"lengths must be in 1..{n}")
    max_len = int(fe.nb_max_samples)
    longer = [int(v) > max_len for v in lengths.tolist()]
    if truncation not in ("rand_trunc", "fusion"):
        raise NotImplementedError(f"data_truncating {truncation} not implemented")
    if truncation == "fusion" and any(longer):
        raise NotImplementedError("fusion of clips longer than the window is not ported; cut them to the window")
    starts = torch.zeros(b, dtype=torch.long)
    for i, is_long in enumerate(longer):  # the extractor's draws, in its order
        if is_long:
            starts[i] = int(np.random.randint(0, int(lengths[i]) - max_len + 1))
    if n < max_len:
        x = torch.nn.functional.pad(x, (0, max_len - n))
    idx = (starts[:, None] + torch.arange(max_len)[None, :]).clamp_max(max(n, max_len) - 1).to(x.device)
    x = torch.gather(x, 1, idx)
    lengths = torch.clamp(lengths - starts, max=max_len).to(x.device)
    windows = _pad_to_window(x, lengths, max_len, padding)
    filters = fe.mel_filters if truncation == "fusion" else fe.mel_filters_slaney
    mel = log_mel(windows, fe, filters)[:, None]
    if truncation == "fusion":
        mel = mel.expand(-1, 4, -1, -1).contiguous()
        if not any(longer):
            longer[int(np.random.randint(0, b if n_valid is None else n_valid))] = True
    return {"input_features": mel, "is_longer": torch.tensor(longer, device=mel.device)[:, None]}
