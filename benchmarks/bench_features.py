"""Peak memory of `features` against pairs per shard: it should be flat (bounded by ``batch_size``).

For each shard size a dataset of that many pairs (one shard) is written, and each stage (AST, VAE)
runs in a fresh subprocess; the table gives its peak RSS (``ru_maxrss`` of the child), wall time
and the growth over the smallest size (the in-run baseline). Models are tiny but produce
full-size shapes where memory is decided: the AST has 1 layer of width 192 but AST's real
1024-frame window (1214 tokens, 0.47 MB per pair in fp16); the VAE (16-32 channels) downsamples
by 8 like SD's and sees 512² images (3 MB of float32 pixels per pair).

Usage: python benchmarks/bench_features.py [--small] [--sizes 100 300 1000] [--batch-size 16]
       [--src OTHER/src]  (run another checkout's package, e.g. ``git archive`` of an old revision)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import run_child, table

CHILD = r"""
import json, resource, sys
from seeing_sound.features import compute_features
kind, ds, model, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
opts = dict(ast=model, vae=None) if kind == "ast" else dict(ast=None, vae=model, resolution=512)
report = compute_features(ds, batch_size=batch, device="cpu", progress=False, **opts)[kind]
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "out": report.items_out}))
"""


def build_models(root: Path) -> tuple[Path, Path]:
    import torch
    from diffusers import AutoencoderKL
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    cfg = ASTConfig(hidden_size=192, num_hidden_layers=1, num_attention_heads=3, intermediate_size=384)
    ASTForAudioClassification(cfg).eval().save_pretrained(root / "ast")  # max_length 1024: 1214 tokens
    ASTFeatureExtractor().save_pretrained(root / "ast")
    # An SD-shaped VAE (4 blocks, downsampling by 8: 64² latents at 512²) with 16-32 channels.
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
    )
    vae.eval().save_pretrained(root / "vae")
    return root / "ast", root / "vae"


def main() -> None:
    from seeing_sound.testing.data import write_noise_dataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="shards of 16 and 48 pairs (a quick check)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="pairs per shard (default 100 300 1000)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--src", help="PYTHONPATH for the child processes (another checkout's src/)")
    args = ap.parse_args()
    args.sizes = args.sizes or ([16, 48] if args.small else [100, 300, 1000])
    tmp = Path(tempfile.mkdtemp(prefix="bench_features_"))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if args.src:
        env["PYTHONPATH"] = str(Path(args.src).resolve())
    rows = []
    try:
        ast, pixart = build_models(tmp)
        base: dict[str, float] = {}
        for n in args.sizes:
            ds = write_noise_dataset(tmp / f"n{n}", n)
            for kind, model in (("ast", ast), ("vae", pixart)):
                t0 = time.perf_counter()
                cmd = [sys.executable, "-c", CHILD, kind, str(ds), str(model), str(args.batch_size)]
                done = run_child(cmd, env=env)
                wall = time.perf_counter() - t0
                out = json.loads(done.stdout.strip().splitlines()[-1])
                base.setdefault(kind, out["peak_mb"])
                rows.append(
                    {
                        "stage": kind,
                        "pairs/shard": n,
                        "peak RSS MB": out["peak_mb"],
                        "growth MB": out["peak_mb"] - base[kind],
                        "wall s": wall,
                        "items/s": out["out"] / wall,
                    }
                )
            shutil.rmtree(tmp / f"n{n}")
        rows.sort(key=lambda r: (r["stage"], r["pairs/shard"]))
        print(table(rows, f"features peak memory vs shard size (batch_size {args.batch_size}, one subprocess each)"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
