"""Scoring throughput of the evaluation feature path against the bare forward pass of the same network.

Full-size, randomly initialised FID Inception (23.9M parameters, 299²) and CLIP ViT-B/32 (224²) on
CPU. "ours" is what ``seeing-sound evaluate`` runs per file: sha256, PNG decode, resize policy /
CLIP processor, fixed-shape batches, forward, cache write. "bare" is the network's forward alone
on the same batches, already preprocessed, in the same run. The overhead target is <= 15 %.

    python benchmarks/bench_eval.py [--small] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import cpu_seconds, matmul_gflops, table


def _images(folder: Path, n: int, size: int) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        # smooth content compresses like a generated image; noise would make PNG decoding the bottleneck
        base = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)
        files.append(folder / f"{i:04d}.png")
        img.save(files[-1])
    return files


def _timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - t0, cpu_seconds() - c0


def _measure(name: str, enc, files: list[Path], root: Path, repeat: int) -> dict:
    import torch

    from seeing_sound.encoders.common import fixed_batches, pad_batch
    from seeing_sound.evaluation.features import FeatureCache, extract

    bs = enc.batch_size
    inputs = [enc.prepare(f) for f in files]  # warm-up and the bare pass's inputs
    enc.embed(inputs[:bs])
    batches = [pad_batch(torch.from_numpy(np.stack(inputs[s:e])), bs) for s, e in fixed_batches(len(inputs), bs)]
    if name == "inception":
        batches = [b * (2.0 / 255.0) - 1.0 for b in batches]

    def bare() -> None:
        with torch.inference_mode():
            for b in batches:
                x = b.to(enc.device)
                _ = enc.model(x) if name == "inception" else enc.model.get_image_features(pixel_values=x).pooler_output

    def ours(k: list[int] = [0]) -> None:  # noqa: B006 - a fresh cache folder per call
        k[0] += 1
        cache = FeatureCache(root / "features", f"{name}-{k[0]}")
        extract(files, cache=cache, prepare=enc.prepare, embed=enc.embed, batch_size=bs)

    runs_bare, runs_ours = [], []
    for _ in range(repeat):  # interleaved, so load from other jobs hits both alike
        runs_bare.append(_timed(bare))
        runs_ours.append(_timed(ours))
    wb, cb = min(runs_bare)[0], min(r[1] for r in runs_bare)
    wo, co = min(runs_ours)[0], min(r[1] for r in runs_ours)
    n = len(files)
    return {
        "network": name,
        "images": n,
        "batch": bs,
        "bare img/s": n / wb,
        "ours img/s": n / wo,
        "wall ratio": wo / wb,
        "cpu ratio": co / cb,
        "overhead %": 100 * (wo / wb - 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="few images (a quick check)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=512, help="side of the benchmark PNGs")
    args = p.parse_args(argv)
    import torch
    from transformers import CLIPConfig, CLIPModel

    from seeing_sound.evaluation.clip import ClipImageEncoder
    from seeing_sound.evaluation.inception import InceptionEncoder
    from seeing_sound.testing.eval_models import CLIP_PREPROCESSOR, build_fid_inception

    n_inc, n_clip, repeat = (16, 32, 2) if args.small else (64, 128, 3)
    print(f"torch threads {torch.get_num_threads()}, numpy sgemm {matmul_gflops():.0f} GFLOP/s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = _images(root / "images", max(n_inc, n_clip), args.size)
        inc = InceptionEncoder(build_fid_inception(root / "inception.pth"), device=args.device, batch_size=8)
        rows.append(_measure("inception", inc, files[:n_inc], root, repeat))
        del inc
        torch.manual_seed(0)
        CLIPModel(CLIPConfig()).save_pretrained(root / "clip")  # ViT-B/32 shapes, random weights
        import json

        pre = {**CLIP_PREPROCESSOR, "crop_size": 224, "size": 224}
        (root / "clip" / "preprocessor_config.json").write_text(json.dumps(pre))
        clip = ClipImageEncoder(str(root / "clip"), device=args.device, batch_size=16)
        rows.append(_measure("clip", clip, files[:n_clip], root, repeat))
    print(table(rows, f"evaluation feature path vs bare forward ({args.device}, {args.size}² PNGs)"))
    worst = max(r["overhead %"] for r in rows)
    print(f"\nworst overhead {worst:.1f} % (target <= 15 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
