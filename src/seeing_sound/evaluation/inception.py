"""Inception-v3 pool3 features (2048-d) with the TF-FID weights, for FID and KID.

:class:`FidInceptionV3` has the module names of torchvision's ``Inception3(num_classes=1008,
aux_logits=False)`` with pytorch-fid's ``FIDInceptionA/C/E_1/E_2`` blocks (TensorFlow's average
pool that ignores padding; max pool in the last block), so pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` loads into it key by key with ``weights_only=True``
(no torchvision needed). Only pool3 is computed; ``fc`` is kept so the checkpoint loads strictly.

Resize policy (recorded in every output), each the whole input pipeline of one tool:

- ``clean`` (default, clean-fid's ``mode="clean"``): the uint8 RGB image is resized per channel as
  a float32 image with PIL's antialiased bicubic filter to 299 x 299, not re-quantised, clipped
  to [0, 255]; the network sees ``(x - 128) / 128``, as clean-fid feeds its TF-FID Inception
  (``cleanfid/inception_torchscript.py``: ``x1 = x - 128; x2 = x1 / 128``).
- ``legacy`` (pytorch-fid): the image as a [0, 1] float tensor, bilinearly interpolated to
  299 x 299 (``align_corners=False``, no antialiasing); the network sees ``2 * x - 1`` of it
  (``2 * x / 255 - 1`` of the [0, 255] values), as pytorch-fid's ``InceptionV3(normalize_input=True)``.

Files are decoded by :mod:`seeing_sound.imaging` (16-bit scaled, alpha on white, EXIF orientation,
``max_pixels`` checked from the header).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from seeing_sound.builders import DEFAULT_INCEPTION, resolve_device
from seeing_sound.encoders.common import fixed_batches, pad_batch
from seeing_sound.errors import SeeingSoundError
from seeing_sound.evaluation.wav2clip import _load_strict, file_revision, load_state_dict_file
from seeing_sound.imaging import DECODER, DEFAULT_MAX_PIXELS, decode_array

RESIZE_POLICIES = ("clean", "legacy")
#: what the network is fed per policy, and the tag of that input in the feature cache key: features
#: cached while ``clean`` fed ``2x/255 - 1`` (keys without ``n128``) are not reused
NETWORK_INPUT = {"clean": "(x - 128) / 128", "legacy": "2 * x / 255 - 1"}
_INPUT_TAG = {"clean": "n128-clean", "legacy": "legacy"}
INPUT_SIZE = 299
POOL3_DIM = 2048


class BasicConv2d(nn.Module):
    """Convolution (no bias) + BatchNorm (eps 0.001) + ReLU: keys ``conv.*``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's average pool does not count the zero padding (pytorch-fid's FID patch)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, cin: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for k in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{k}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for k in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{k}")(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """``max_pool=False``: pytorch-fid's ``FIDInceptionE_1`` (Mixed_7b); True: ``FIDInceptionE_2`` (Mixed_7c)."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        # the FID network max-pools in its last block (an artefact of the TF graph pytorch-fid ports)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class FidInceptionV3(nn.Module):
    """The FID Inception network up to pool3: ``(B, 3, 299, 299)`` in [-1, 1] -> ``(B, 2048)``."""

    def __init__(self, num_classes: int = 1008):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        self.fc = nn.Linear(POOL3_DIM, num_classes)  # unused for pool3; in the checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def default_inception_path() -> Path:
    """Where pytorch-fid caches its weights: ``<torch hub>/checkpoints/pt_inception-2015-12-05-6726825d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / DEFAULT_INCEPTION


def load_fid_inception(path: str | Path | None = None, device: str | None = "cpu") -> tuple[FidInceptionV3, dict]:
    """:class:`FidInceptionV3` from pytorch-fid's ``.pth`` (default: the torch hub cache) and its identity."""
    sd, file = load_state_dict_file(path, "Inception (FID)", "inception", default_inception_path())
    fc = sd.get("fc.weight")
    model = FidInceptionV3(num_classes=int(fc.shape[0]) if fc is not None else 1008)
    missing, unexpected = _load_strict(model, sd)
    if missing or unexpected:
        raise SeeingSoundError(
            f"{file} is not pytorch-fid's FID Inception: missing {missing[:5]}, unexpected {unexpected[:5]}; "
            "pass pt_inception-2015-12-05-6726825d.pth with --inception"
        )
    model.eval().to(resolve_device(device))
    return model, {"model": str(file), "revision": file_revision(file), "dim": POOL3_DIM}


def load_rgb(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB (:func:`seeing_sound.imaging.decode_array`).

    Raises :class:`~seeing_sound.imaging.DecodeError` for a file that is no image, over ``max_pixels``, or damaged.
    """
    return decode_array(path, max_pixels=max_pixels)


def resize_for_inception(image: np.ndarray, policy: str = "clean") -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(3, 299, 299)`` float32 in [0, 255] by ``policy`` (see the module docstring)."""
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {policy!r}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if policy == "clean":
        channels = [
            np.asarray(
                Image.fromarray(image[:, :, c].astype(np.float32), mode="F").resize(
                    (INPUT_SIZE, INPUT_SIZE), resample=Image.Resampling.BICUBIC
                )
            )
            for c in range(3)
        ]
        return np.clip(np.stack(channels), 0, 255).astype(np.float32)
    x = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return (x[0].numpy() * 255.0).astype(np.float32)


def network_input(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Resized ``(B, 3, 299, 299)`` inputs in [0, 255] -> what the network sees under ``policy``
    (:data:`NETWORK_INPUT`; the operations in the order each tool does them, in float32)."""
    if policy == "clean":
        return (x - 128) / 128
    if policy == "legacy":
        return x * (2.0 / 255.0) - 1.0
    raise ValueError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {policy!r}")


class InceptionEncoder:
    """pool3 features of images, in fixed-shape batches (a row never depends on its batch-mates)."""

    name = "inception"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        resize: str = "clean",
        device: str | None = "auto",
        batch_size: int = 32,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        if resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {resize!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.model, self.info = load_fid_inception(path, str(self.device))
        self.info["resize"] = resize
        self.info["input"] = NETWORK_INPUT[resize]
        self.resize, self.batch_size, self.dim = resize, int(batch_size), POOL3_DIM
        self.max_pixels = int(max_pixels)

    @property
    def key(self) -> str:
        # the decoder's version and the network input are in the key: features cached before 16-bit images
        # decoded right, or while clean fed 2x/255 - 1, are not reused
        return f"inception-{self.info['revision'].split(':')[-1]}-{DECODER}-{_INPUT_TAG[self.resize]}"

    def prepare(self, path: str | Path) -> np.ndarray:
        """One image file -> its ``(3, 299, 299)`` network input in [0, 255]."""
        return resize_for_inception(load_rgb(path, max_pixels=self.max_pixels), self.resize)

    def embed(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Prepared ``(3, 299, 299)`` inputs -> float32 ``(n, 2048)``."""
        out = np.zeros((len(inputs), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for s, e in fixed_batches(len(inputs), self.batch_size):
                x = torch.from_numpy(np.stack(inputs[s:e]))
                x = network_input(pad_batch(x, self.batch_size).to(self.device), self.resize)
                out[s:e] = self.model(x)[: e - s].float().cpu().numpy()
        return out
