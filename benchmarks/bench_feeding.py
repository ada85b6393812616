"""Can the CPUs feed the GPUs? Each input-preparation stage in items per CPU-second (= per core).

Stages (the code paths the toolkit runs, one item at a time, torch limited to 1 thread):

* ``clap prep``: a 10 s clip at 16 kHz -> soxr HQ to 48 kHz -> ``ClapFeatureExtractor`` (rand_trunc,
  repeatpad), as ``ClapEncoder(audio_prep="processor")`` feeds CLAP (the in-run baseline); its soxr
  part alone (what ``audio_prep="soxr"`` leaves on the CPU); the hand-over of ``audio_prep="torch"``
  (the default: a batch of 16 clips as one float32 tensor, all the CPU does); and the device work
  of ``audio_prep="torch"`` (``resample_poly`` + ``clap_features``, batch 16) run here on the CPU,
  to size it: on a GPU it runs beside the model, not on a core;
* ``flac decode``: one 10 s 16 kHz mono FLAC mixture read with soundfile (what every AST path
  reads first; ``train --ast-online`` does it in DataLoader workers);
* ``ast fbank numpy``: ``ASTFeatureExtractor`` on a 10.24 s clip (what ``features`` runs);
* ``ast fbank torch``: :func:`seeing_sound.encoders.ast.ast_fbank` on the same clip, CPU, batch 16
  (what ``train --ast-online`` runs, there on the GPU);
* ``vae image prep``: JPEG decode (1024x1024, quality 90) + shorter side to 512 + center crop +
  float pixels, as ``features`` feeds the VAE (``center_crop_resize``: JPEG draft decoding), and
  the same with a full-size decode (how it was before, for comparison);
* ``vlm image prep``: JPEG decode (draft) + downscale to ``max_side`` + base64 JPEG data URL, as the
  OpenAI back end sends an image (``decode_rgb`` + ``encode_image_data_url``).

Each row sets the CPU rate beside the GPU rate of the model the stage feeds, estimated from the
model's FLOPs at an A100's 312 TFLOP/s bf16 dense and an assumed 40 % utilization, and gives the
cores one A100 needs: GPU items/s / CPU items/s/core. CPU time is the process's user+system time,
so a stage that uses several threads is charged for all of them. Rates are this machine's;
``--seconds`` bounds each stage. Usage: python benchmarks/bench_feeding.py [--small] [--seconds 3]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import table

A100_BF16 = 312e12
UTILIZATION = 0.4
# FLOPs per item of the consumer (torch FlopCounterMode, docs/performance.md): AST forward of one
# 1024-frame clip; SD VAE encode at 512²; PixArt-XL/2 training sample (forward + backward);
# LLaVA-1.5-7B prefill of 576 image + ~60 text tokens (2 * 7e9 * 636), decode not counted.
FLOPS = {"ast": 261e9, "vae": 1.1e12, "train": 6.19e12, "llava": 2 * 7e9 * 636}


def gpu_rate(flops: float) -> float:
    return A100_BF16 * UTILIZATION / flops


def per_core(fn, seconds: float) -> float:
    """Items per CPU-second of ``fn`` (one item per call), run for about ``seconds`` of CPU time."""
    fn()  # warm-up (imports, caches)
    n, c0 = 0, time.process_time()
    while time.process_time() - c0 < seconds or n < 3:
        fn()
        n += 1
    return n / (time.process_time() - c0)


def clap_flops() -> float:
    """FLOPs of one CLAP HTSAT (laion/clap-htsat-unfused shape, random init) audio forward."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection

    model = ClapAudioModelWithProjection(ClapAudioConfig()).eval()
    x = torch.zeros(1, 1, 1001, 64)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(input_features=x, is_longer=torch.tensor([[False]]))
    return float(counter.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="0.2 CPU seconds per stage (a quick check)")
    ap.add_argument("--seconds", type=float, default=None, help="CPU seconds per stage (default 3)")
    args = ap.parse_args()
    args.seconds = args.seconds or (0.2 if args.small else 3.0)

    import soxr
    import torch
    from PIL import Image
    from transformers import ASTFeatureExtractor, ClapFeatureExtractor

    from seeing_sound.concepts.image_payload import encode_image_data_url
    from seeing_sound.concepts.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, decode_rgb
    from seeing_sound.encoders.ast import ast_fbank
    from seeing_sound.encoders.clap_features import clap_features, resample_poly
    from seeing_sound.encoders.common import pad_batch
    from seeing_sound.features.stage import center_crop_resize

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    t = np.arange(160_000) / 16000
    clip = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    ast_clip = np.concatenate([clip, clip[:3840]])  # 10.24 s: exactly 1024 frames
    photo = _photo()

    clap_fe = ClapFeatureExtractor()
    ast_fe = ASTFeatureExtractor()
    batch = torch.from_numpy(np.stack([ast_clip] * 16))

    def clap_prep():
        wave = soxr.resample(clip, 16000, 48000, quality="HQ").astype(np.float32)
        clap_fe([wave], sampling_rate=48000, truncation="rand_trunc", padding="repeatpad", return_tensors="np")

    clips16 = np.stack([clip] * 16)

    def clap_soxr():
        soxr.resample(clip, 16000, 48000, quality="HQ").astype(np.float32)

    def clap_handover():  # what ClapEncoder._embed_audio_torch does on the CPU before .to(device)
        torch.from_numpy(pad_batch(np.asarray(clips16[:15], dtype=np.float32), 16))

    def clap_torch():
        clap_features(resample_poly(torch.from_numpy(clips16), 16000, 48000), clap_fe)

    def vae_prep():
        with Image.open(io.BytesIO(photo)) as im:
            img = center_crop_resize(im, 512)
        np.asarray(img, dtype=np.float32) / 127.5 - 1.0

    def vae_prep_full_decode():
        with Image.open(io.BytesIO(photo)) as im:
            im.load()  # decoded before center_crop_resize sees it: no draft
            img = center_crop_resize(im, 512)
        np.asarray(img, dtype=np.float32) / 127.5 - 1.0

    import soundfile as sf

    flac = io.BytesIO()
    sf.write(flac, clip, 16000, format="FLAC", subtype="PCM_16")

    def flac_decode():
        flac.seek(0)
        sf.read(flac, dtype="int16")

    def vlm_prep():
        img, _, _ = decode_rgb(photo, max_side=DEFAULT_MAX_SIDE, max_pixels=DEFAULT_MAX_PIXELS)
        encode_image_data_url(img)

    clap_gflop = clap_flops() / 1e9
    clap_gpu = gpu_rate(clap_gflop * 1e9)
    stages: list[tuple[str, Callable[[], object], int, str, float | None]] = [
        ("clap prep processor (soxr + ClapFeatureExtractor)", clap_prep, 1, "CLAP HTSAT audio (embed)", clap_gpu),
        ("clap prep soxr only (audio_prep=soxr)", clap_soxr, 1, "CLAP HTSAT audio (embed)", clap_gpu),
        ("clap hand-over (audio_prep=torch, batch 16)", clap_handover, 16, "CLAP HTSAT audio (embed)", clap_gpu),
        ("clap device work on this CPU (torch, batch 16)", clap_torch, 16, "CLAP HTSAT audio (embed)", clap_gpu),
        ("flac decode (10 s, 16 kHz)", flac_decode, 1, "AST", None),
        ("ast fbank numpy (ASTFeatureExtractor)", lambda: ast_fe(ast_clip, sampling_rate=16000), 1, "AST", None),
        ("ast fbank torch (ast_fbank, batch 16)", lambda: ast_fbank(batch, ast_fe), 16, "AST", None),
        ("vae image prep (draft decode + resize + crop)", vae_prep, 1, "SD VAE encode 512²", gpu_rate(FLOPS["vae"])),
        ("vae image prep, full decode (before)", vae_prep_full_decode, 1, "SD VAE encode 512²", gpu_rate(FLOPS["vae"])),
        (f"vlm image prep (decode + {DEFAULT_MAX_SIDE} px + base64)", vlm_prep, 1, "LLaVA-1.5-7B prefill", None),
    ]
    rows = []
    for name, fn, items, consumer, gpu in stages:
        rate = per_core(fn, args.seconds) * items
        if gpu is None:
            gpu = gpu_rate(FLOPS["ast"] if consumer == "AST" else FLOPS["llava"])
        rows.append(
            {
                "stage": name,
                "CPU items/s/core": rate,
                "feeds": consumer,
                "A100 items/s (est.)": gpu,
                "cores per A100": gpu / rate,
            }
        )
    train_gpu = gpu_rate(FLOPS["train"])
    ast_torch = next(r for r in rows if r["stage"].startswith("ast fbank torch"))["CPU items/s/core"]
    rows.append(
        {
            "stage": "ast fbank torch, for train --ast-online",
            "CPU items/s/core": ast_torch,
            "feeds": "PixArt-XL/2 training",
            "A100 items/s (est.)": train_gpu,
            "cores per A100": train_gpu / ast_torch,
        }
    )
    title = (
        f"input preparation per CPU core vs A100 consumption (312 TFLOP/s bf16 x {UTILIZATION:.0%}, "
        f"CLAP {clap_gflop:.0f} GFLOP/clip measured here)"
    )
    print(table(rows, title))
    base = rows[0]["CPU items/s/core"]
    print(
        "\nclap prep vs the processor path (same run): "
        + ", ".join(f"{r['stage']} x{r['CPU items/s/core'] / base:,.1f}" for r in rows[1:4])
    )


def _photo() -> bytes:
    """A 1024x1024 JPEG of a real photo (scikit-image's astronaut, upscaled)."""
    from PIL import Image

    try:
        from skimage import data

        img = Image.fromarray(data.astronaut()).resize((1024, 1024), Image.Resampling.BICUBIC)
    except ImportError:  # no scikit-image: a smooth synthetic picture of the same size
        y, x = np.mgrid[0:1024, 0:1024]
        img = Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


if __name__ == "__main__":
    main()
