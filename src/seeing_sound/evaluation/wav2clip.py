"""Wav2CLIP audio encoder (Wu et al. 2022) for the paper's AIS, loaded from the official checkpoint.

The official ``Wav2CLIP.pt`` (github.com/descriptinc/lyrebird-wav2clip, release v0.1.0-alpha) is
the flat ``state_dict`` of the pre-training module: ``audio_encoder.*`` (a ResNet-18 on a log
spectrogram, ``audio_encoder.spectrogram.window`` included), ``audio_transform.sequential.*`` (the
MLP into CLIP ViT-B/32's 512-d image space), plus ``image_transform.*`` and
``loss_fn_{a,i}.logit_scale`` that inference does not use. :class:`Wav2ClipAudio` has the same
state-dict keys as the ``wav2clip`` package's ``ResNetExtractor(transform=True)`` (``encoder`` there
is ``audio_encoder`` here, ``transform`` is ``audio_transform``), so the checkpoint loads strictly,
with ``torch.load(weights_only=True)``; no torchaudio or librosa is needed.

One deviation, on purpose: the official forward standardises the log spectrogram with the mean and
std of the *whole batch tensor*, so a clip's embedding depends on its batch-mates. Here each clip
is standardised on its own, which equals the official output for a batch of one (how
``wav2clip.embed_audio`` is used on a single clip).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seeing_sound.builders import DEFAULT_WAV2CLIP, resolve_device
from seeing_sound.errors import ModelNotFoundError, SeeingSoundError

log = logging.getLogger(__name__)

#: Wav2CLIP's input rate
SAMPLE_RATE = 16000
#: keys of the official checkpoint that belong to training only
TRAINING_ONLY_PREFIXES = ("image_transform.", "loss_fn_a.", "loss_fn_i.")


class Spectrogram(nn.Module):
    """Power spectrogram with torchaudio's ``Spectrogram`` defaults (Hann window, centred, reflect pad).

    ``window`` is a buffer, as in torchaudio, so the checkpoint's ``spectrogram.window`` loads into it.
    """

    def __init__(self, n_fft: int = 512, hop_length: int = 353):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.window: torch.Tensor
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` waveform -> ``(B, 1, n_fft // 2 + 1, frames)`` power spectrogram."""
        spec = torch.stft(
            wave,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        return spec.abs().pow(2.0).unsqueeze(1)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions), keys ``conv1, bn1, conv2, bn2, downsample.{0,1}``."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Wav2ClipResNet(nn.Module):
    """Wav2CLIP's audio ResNet: log spectrogram -> ResNet (``layers`` basic blocks per stage) -> avg pool.

    ``width`` is the first stage's channel count (64 in the official model, doubling per stage);
    smaller widths build tiny twins with the same keys. Output ``(B, 8 * width)``.
    """

    def __init__(self, width: int = 64, layers: Sequence[int] = (2, 2, 2, 2), n_fft: int = 512, hop_length: int = 353):
        super().__init__()
        if width < 1 or len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"width must be >= 1 and layers four counts >= 1, got width={width}, layers={layers}")
        self.spectrogram = Spectrogram(n_fft, hop_length)
        self.conv1 = nn.Conv2d(1, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = width
        for k, blocks in enumerate(layers):
            planes, stride = width * 2**k, 1 if k == 0 else 2
            stage = [BasicBlock(inplanes, planes, stride)] + [BasicBlock(planes, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{k + 1}", nn.Sequential(*stage))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.out_dim = inplanes

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` 16 kHz waveform -> ``(B, out_dim)``; each clip's log spectrogram standardised on its own."""
        x = torch.log(self.spectrogram(wave) + 1e-7)
        flat = x.flatten(1)
        x = (x - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-9)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for k in range(1, 5):
            x = getattr(self, f"layer{k}")(x)
        return self.avgpool(x).flatten(1)


class MLPLayers(nn.Module):
    """Wav2CLIP's projection MLP: ``Linear, ReLU, Dropout`` between ``units``, the last ReLU/Dropout cut."""

    def __init__(self, units: Sequence[int] = (512, 512, 512), dropout: float = 0.1):
        super().__init__()
        if len(units) < 2:
            raise ValueError(f"units must name at least two widths, got {units}")
        seq: list[nn.Module] = []
        for u0, u1 in itertools.pairwise(units):
            seq += [nn.Linear(u0, u1), nn.ReLU(), nn.Dropout(dropout)]
        self.sequential = nn.Sequential(*seq[:-2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequential(x)


class Wav2ClipAudio(nn.Module):
    """Audio -> CLIP image space: ``audio_encoder`` (:class:`Wav2ClipResNet`) then ``audio_transform``."""

    def __init__(self, width: int = 64, layers: Sequence[int] = (2, 2, 2, 2), mlp_units: Sequence[int] | None = None):
        super().__init__()
        self.audio_encoder = Wav2ClipResNet(width, layers)
        units = tuple(mlp_units) if mlp_units is not None else (8 * width, 512, 512)
        if units[0] != self.audio_encoder.out_dim:
            raise ValueError(f"mlp_units[0] must be the encoder's width {self.audio_encoder.out_dim}, got {units}")
        self.audio_transform = MLPLayers(units)
        self.out_dim = units[-1]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` float waveform at 16 kHz -> ``(B, out_dim)`` embedding (not normalised)."""
        return self.audio_transform(self.audio_encoder(wave))


def default_wav2clip_path() -> Path:
    """Where ``wav2clip.get_model()`` caches the official checkpoint: ``<torch hub>/checkpoints/Wav2CLIP.pt``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / DEFAULT_WAV2CLIP


def file_revision(path: Path) -> str:
    """'sha256:<16 hex>' of a checkpoint file: equal for equal weights wherever the file lives."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()[:16]


def load_state_dict_file(path: str | Path | None, what: str, param: str, default: Path) -> tuple[dict, Path]:
    """``torch.load(path, weights_only=True)`` as a flat ``{key: tensor}`` (a ``{"state_dict": ...}`` unwrapped).

    A missing file is a :class:`ModelNotFoundError` naming ``param``; a file that is not a state dict
    is a :class:`SeeingSoundError`.
    """
    file = Path(path).expanduser() if path is not None else default
    if not file.is_file():
        raise ModelNotFoundError(what, str(file), param)
    try:
        obj = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors of a non-checkpoint file, truncated zips, ...
        raise SeeingSoundError(f"{what} checkpoint {file} could not be read ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SeeingSoundError(f"{what} checkpoint {file} is not a state dict of tensors")
    return dict(obj), file


def _architecture(sd: Mapping[str, torch.Tensor]) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(width, blocks per stage, MLP units) read from the checkpoint's shapes."""
    width = int(sd["audio_encoder.conv1.weight"].shape[0])
    layers = []
    for k in range(1, 5):
        idx = {int(m.group(1)) for key in sd if (m := re.match(rf"audio_encoder\.layer{k}\.(\d+)\.", key))}
        layers.append(len(idx))
    linear = sorted(
        (int(m.group(1)), sd[key])
        for key in sd
        if (m := re.fullmatch(r"audio_transform\.sequential\.(\d+)\.weight", key))
    )
    units = (int(linear[0][1].shape[1]), *(int(w.shape[0]) for _, w in linear)) if linear else ()
    return width, tuple(layers), units


def load_wav2clip(path: str | Path | None = None, device: str | None = "cpu") -> tuple[Wav2ClipAudio, dict]:
    """The Wav2CLIP audio model from the official ``.pt`` (default: the torch hub cache) and its identity.

    Returns ``(model in eval mode on device, {"model": path, "revision": "sha256:...", "dim": D})``.
    """
    sd, file = load_state_dict_file(path, "Wav2CLIP", "wav2clip", default_wav2clip_path())
    if "audio_encoder.conv1.weight" not in sd or not any(k.startswith("audio_transform.") for k in sd):
        raise SeeingSoundError(
            f"{file} is not a Wav2CLIP checkpoint (no audio_encoder.* / audio_transform.* keys); "
            "pass the official Wav2CLIP.pt with --wav2clip"
        )
    width, layers, units = _architecture(sd)
    try:
        model = Wav2ClipAudio(width, layers, units)
    except ValueError as exc:
        raise SeeingSoundError(f"{file}: unexpected Wav2CLIP shapes ({exc})") from exc
    ours = {k: v for k, v in sd.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}
    missing, unexpected = _load_strict(model, ours)
    if missing or unexpected:
        raise SeeingSoundError(f"{file} does not match Wav2CLIP: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.eval().to(resolve_device(device))
    return model, {"model": str(file), "revision": file_revision(file), "dim": model.out_dim}


def _load_strict(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Load ``sd``; returns (missing, unexpected) keys. BatchNorm's ``num_batches_tracked`` may be absent."""
    result = model.load_state_dict(sd, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    return missing, list(result.unexpected_keys)


class Wav2ClipEncoder:
    """Wav2CLIP embeddings of 16 kHz mono clips, one clip per forward (clips differ in length)."""

    name = "wav2clip"

    def __init__(self, path: str | Path | None = None, *, device: str | None = "auto"):
        self.device = resolve_device(device)
        self.model, self.info = load_wav2clip(path, self.device.type if self.device.type == "cpu" else str(self.device))
        self.dim = self.model.out_dim
        self.min_samples = self.model.audio_encoder.spectrogram.n_fft // 2 + 1

    @property
    def key(self) -> str:
        return f"wav2clip-{self.info['revision'].split(':')[-1]}"

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """``waves``: float 16 kHz mono arrays -> float32 ``(n, D)``. Raises ``ValueError`` on a too-short clip."""
        out = np.zeros((len(waves), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for i, w in enumerate(waves):
                w = np.asarray(w, dtype=np.float32)
                if w.ndim != 1 or w.size < self.min_samples:
                    raise ValueError(f"clip {i} must be 1-D with >= {self.min_samples} samples, got shape {w.shape}")
                x = torch.from_numpy(w)[None].to(self.device)
                out[i] = self.model(x)[0].float().cpu().numpy()
        return out
