"""One-shot device check: everything we want to know about a GPU, in one process, one table, one JSON.

Rows (names for ``--only``), each with its size, result, unit and peak memory:

* ``floor``: the machine's floors, numpy sgemm on the CPU and torch bf16 / float32 (TF32 off)
  matmuls on the device at PixArt-XL/2's MLP shape; the rows below are set against them.
* ``retrieval``: the project's exact search (``seeing_sound.retrieval.match`` over a
  ``PreparedPool``) with the ``bf16`` (screen + canonical rescoring) and ``torch`` engines on the
  device, at k = 10 and k = 100; the in-run baseline is the CPU exact path (faiss, else numpy), and
  every query's chosen row is compared with it ("exact: yes" = the same row on every query). A
  floor row gives a plain torch bf16 matmul of the same shapes.
* ``clap``: CLAP audio embedding through ``load_encoder("clap", ..., audio_prep="torch")``: clips/s
  (fp32, and fp16 on CUDA).
* ``features``: AST tokens and VAE latents, the bare models (``AstEncoder.encode_torch``,
  ``vae.encode``) and the ``features`` stage end to end (``compute_features``: disk, decoding,
  model, shard writing): items/s.
* ``train``: one AudioPixArt training step (PixArt-XL/2 shapes, 512² = 64x64 latents, AST tokens
  1214 x 768) as ``train`` runs it: bf16 autocast, the hybrid loss, AdamW, gradient clipping; with
  and without gradient checkpointing: s/step, and the model FLOPs per sample (counted).
* ``sample``: a guided sampling step of ``AudioPixArtPipeline`` (one clip, CFG: transformer batch
  2), fp32 (as ``generate`` loads it) and bf16, against a bare transformer forward at batch 2; and a
  VAE decode.
* ``eval``: Inception (FID), CLIP ViT-B/32 and Wav2CLIP scoring throughput (``embed`` of prepared
  inputs): images/s or clips/s.

Every model has random weights at the real architecture's shapes (``transformers``/``diffusers``
default configs = the hub checkpoints' shapes; PixArt-α's hub ``transformer/config.json``), saved
to a temporary folder and loaded through the project's own loaders where it has one. Peak memory is
``torch.cuda.max_memory_allocated`` on CUDA (reset before each measurement, so it includes what is
already resident: weights, the pool copy), and the growth of the process's max RSS on the CPU.

A row that cannot run (missing package, no CUDA, out of memory) is printed with its reason; a row
that raises is printed as ERROR with the exception (its traceback on stderr) and the others still
run. Rows are skipped with "time budget" once ``--budget-s`` has elapsed. Exit status 1 when a row
raised, else 0; the table and the JSON are written either way.

    python benchmarks/device_check.py --json device.json          # on a GPU machine: full sizes
    python benchmarks/device_check.py --small --device cpu        # tiny twins, seconds (the test)
    python benchmarks/device_check.py --only retrieval,train      # a subset
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
if importlib.util.find_spec("seeing_sound") is None:  # a bare checkout (no pip install -e .): use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _util import _fmt, matmul_gflops, retrieval_data, table

ROWS = ("floor", "retrieval", "clap", "features", "train", "sample", "eval")

# PixArt-alpha/PixArt-XL-2-512x512 transformer/config.json (diffusers 0.22 Transformer2DModel, legacy keys).
PIXART_HUB_CONFIG = {
    "_class_name": "Transformer2DModel",
    "_diffusers_version": "0.22.0.dev0",
    "activation_fn": "gelu-approximate",
    "attention_bias": True,
    "attention_head_dim": 72,
    "attention_type": "default",
    "caption_channels": 4096,
    "cross_attention_dim": 1152,
    "double_self_attention": False,
    "dropout": 0.0,
    "in_channels": 4,
    "norm_elementwise_affine": False,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "norm_type": "ada_norm_single",
    "num_attention_heads": 16,
    "num_embeds_ada_norm": 1000,
    "num_layers": 28,
    "num_vector_embeds": None,
    "only_cross_attention": False,
    "out_channels": 8,
    "patch_size": 2,
    "sample_size": 64,
    "upcast_attention": False,
    "use_linear_projection": False,
}
# --small: 2 layers, 2 heads x 16, 8x8 latents (the tiny twin's shape).
PIXART_SMALL = {"num_layers": 2, "num_attention_heads": 2, "attention_head_dim": 16, "cross_attention_dim": 32}
PIXART_SMALL.update(sample_size=8, caption_channels=16, norm_num_groups=8)

FULL = {
    "numpy_n": 2048,
    "mm": (8192, 1152, 4608),  # PixArt-XL/2 MLP: batch 8 x 1024 tokens, width 1152 -> 4 x 1152
    "retrieval": (500_000, 512, 4096),
    "retrieval_warmup": 256,
    "ks": (10, 100),
    "clap_clips": 256,
    "clap_seconds": 5.0,  # the pool's chunk length
    "clap_batch": None,  # the encoder's default (16), as `pool embed` runs it
    "ast_clips": 64,
    "vae_images": 64,
    "model_batch": 16,
    "stage_items": 128,
    "stage_audio_s": 10.0,
    "resolution": 512,
    "audio_tokens": (1214, 768),  # AST's 1024-frame window: 2 + 12 x 101 tokens of width 768
    "train": ((8, False), (8, True), (80, True)),  # (batch, gradient checkpointing); the paper: 80 with
    "train_steps": 3,
    "sample_steps": 10,
    "inception": (256, 32, 299),  # images, batch, side (the network's input size)
    "clip": (256, 32),
    "wav2clip": (64, 10.0),  # clips, seconds
}
SMALL = {
    "numpy_n": 512,
    "mm": (256, 64, 256),
    "retrieval": (5_000, 64, 256),
    "retrieval_warmup": 32,
    "ks": (10, 100),
    "clap_clips": 4,
    "clap_seconds": 1.0,
    "clap_batch": 4,
    "ast_clips": 4,
    "vae_images": 8,
    "model_batch": 4,
    "stage_items": 8,
    "stage_audio_s": 1.0,
    "resolution": 16,
    "audio_tokens": (110, 32),  # the tiny AST twin: 1 s window, 2 + 12 x 9 tokens of width 32
    "train": ((2, False), (2, True), (4, True)),
    "train_steps": 1,
    "sample_steps": 2,
    "inception": (2, 2, 107),  # the same network on smaller inputs: 1/8 of the work
    "clip": (8, 4),
    "wav2clip": (4, 1.0),
}


class Skip(Exception):
    """A measurement that cannot run here; the message is the reason printed."""


class Check:
    """The run: device, sizes, the deadline, shared models (built once) and the measured entries."""

    def __init__(self, device: str, small: bool, budget_s: float, tmp: Path, unavailable: str | None = None):
        self.device, self.small, self.budget_s, self.tmp = device, small, budget_s, tmp
        self.size = SMALL if small else FULL
        self.unavailable = unavailable  # why nothing can run on the device (no CUDA, no torch)
        self.t0 = time.perf_counter()
        self.entries: list[dict] = []
        self.cache: dict = {}

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def timed(self, fn: Callable[[], object]) -> float:
        """Wall seconds of ``fn()``, the device synchronized before and after."""
        self.sync()
        t = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - t

    def _mem_start(self, cuda: bool):
        if cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return None
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def _mem_peak(self, start, cuda: bool) -> tuple[float, str]:
        if cuda:
            import torch

            return torch.cuda.max_memory_allocated(self.device) / 2**20, "cuda max allocated"
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024, "max RSS growth"

    def measure(
        self, row: str, what: str, size: str, fn: Callable[[], dict], *, cuda_only: str | None = None, memory=True
    ) -> dict:
        """Run one measurement; ``fn`` returns ``result``, ``unit`` and optional ``vs``, ``note`` and extras.

        ``memory``: True records the device's peak (CUDA) or the max RSS growth (CPU); "rss" the max RSS
        growth also on CUDA (work done on the CPU); False nothing. Never raises: a skip, an out-of-memory or
        an exception becomes the entry's status and reason.
        """
        entry: dict = {"row": row, "what": what, "size": size, "result": None, "unit": "", "peak_mb": None}
        entry.update(mem="", vs="-", note="", status="ok", reason=None, seconds=None)
        self.entries.append(entry)
        reason = self.unavailable
        if reason is None and self.elapsed() > self.budget_s:
            reason = "time budget"
        if reason is None and cuda_only and not self.cuda:
            reason = f"no CUDA: {cuda_only}"
        if reason:
            entry.update(status="skipped", reason=reason)
            _progress(entry)
            return entry
        on_cuda = self.cuda and memory != "rss"
        start = self._mem_start(on_cuda) if memory else None
        t0 = time.perf_counter()
        try:
            entry.update(fn())
        except Exception as exc:
            _fail(entry, exc)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        if memory and entry["status"] != "error" and entry["peak_mb"] is None:
            entry["peak_mb"], entry["mem"] = self._mem_peak(start, on_cuda)
            if self.cuda and not on_cuda:
                entry["note"] += " (peak MB: max RSS growth)"
        if entry["status"] != "ok":
            _free(self)
        _progress(entry)
        return entry

    def floor(self, dtype: str) -> float:
        """Device matmul GFLOP/s at PixArt's MLP shape, ``dtype`` 'bf16' or 'fp32'; measured once."""
        key = f"floor_{dtype}"
        if key not in self.cache:
            import torch

            m, k, n = self.size["mm"]
            self.cache[key] = mm_gflops(self, m, k, n, torch.bfloat16 if dtype == "bf16" else torch.float32)
        return self.cache[key]


def _fail(entry: dict, exc: BaseException) -> None:
    """Record an exception: missing packages and out-of-memory are skips with a reason, the rest errors."""
    if isinstance(exc, Skip):
        entry.update(status="skipped", reason=str(exc))
    elif isinstance(exc, ModuleNotFoundError):
        entry.update(status="skipped", reason=f"missing package: {exc.name}")
    elif _is_oom(exc):
        entry.update(status="skipped", reason=f"out of memory: {str(exc).splitlines()[0][:160]}")
    else:
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        entry.update(status="error", reason=f"{type(exc).__name__}: {first}")
        print(f"\n--- {entry['row']}: {entry['what']} raised ---", file=sys.stderr)
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


def _progress(entry: dict) -> None:
    """One line per measurement as it finishes: a run cut short still shows what it measured."""
    c = _cell(entry)
    peak = "" if entry["peak_mb"] is None else f", peak {entry['peak_mb']:,.0f} MB"
    result = "" if entry["result"] is None else f"{_fmt(entry['result'])} {entry['unit']}{peak}; "
    print(f"  [{entry['row']}] {entry['what']}: {result}{c['note']}", flush=True)


def _is_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return (oom is not None and isinstance(exc, oom)) or "out of memory" in str(exc).lower()


def _free(ck: Check) -> None:
    gc.collect()
    if ck.cuda and "torch" in sys.modules:
        sys.modules["torch"].cuda.empty_cache()


def mm_gflops(ck: Check, m: int, k: int, n: int, dtype, reps: int = 3) -> float:
    """GFLOP/s of ``(m, k) @ (k, n)`` in ``dtype`` on the device with torch's current settings (what models get).

    Best of ``reps`` timings of ``inner`` products each (20 on CUDA, where one product takes microseconds).
    """
    import torch

    gen = torch.Generator(device=ck.device).manual_seed(0)
    a = torch.randn(m, k, device=ck.device, generator=gen).to(dtype)
    b = torch.randn(k, n, device=ck.device, generator=gen).to(dtype)
    inner = 20 if ck.cuda else 1

    def go():
        for _ in range(inner):
            a @ b

    a @ b
    t = min(ck.timed(go) for _ in range(reps)) / inner
    return 2 * m * k * n / t / 1e9


def _gf(x: float) -> str:
    return f"{x:,.0f} GFLOP/s" if x >= 100 else f"{x:.3g} GFLOP/s"


# --- floor ------------------------------------------------------------------------------------


def row_floor(ck: Check) -> None:
    import torch

    n = ck.size["numpy_n"]
    m, k, nn = ck.size["mm"]

    def numpy_floor() -> dict:
        return {"result": matmul_gflops(n), "unit": "GFLOP/s", "note": f"{os.cpu_count()} cpus"}

    def device_floor(dtype: str) -> dict:
        tf32 = bool(getattr(torch.backends.cuda.matmul, "allow_tf32", False)) and ck.cuda
        note = "torch's settings" + (f" (TF32 {'on' if tf32 else 'off'})" if dtype == "fp32" else "")
        return {"result": ck.floor(dtype), "unit": "GFLOP/s", "note": note}

    ck.measure("floor", "numpy sgemm (CPU, all threads)", f"{n} x {n} x {n}", numpy_floor, memory="rss")
    for dtype in ("bf16", "fp32"):
        what = f"torch {dtype} matmul on {ck.device}, PixArt MLP shape"
        ck.measure("floor", what, f"{m} x {k} x {nn}", lambda dtype=dtype: device_floor(dtype))


# --- retrieval --------------------------------------------------------------------------------


def row_retrieval(ck: Check) -> None:
    import numpy as np
    import torch

    from seeing_sound.precision import exact_matmul
    from seeing_sound.retrieval import PreparedPool, match
    from seeing_sound.retrieval.search import cpu_engine

    n, d, q = ck.size["retrieval"]
    warm = ck.size["retrieval_warmup"]
    pool, queries, seeds = retrieval_data(n, d, q)
    size = f"{n:,} x {d}, {q:,} queries"
    flops_per_query = 2 * n * d

    def floor(dtype) -> dict:
        x = torch.from_numpy(pool).to(ck.device).to(dtype)
        qt = torch.from_numpy(queries).to(ck.device).to(dtype)
        block = 65536  # the screen's pool block: (q, 65536) scores at a time

        def go():
            for s in range(0, n, block):
                torch.mm(qt, x[s : s + block].T)

        with exact_matmul(torch):
            go()
            t = min(ck.timed(go) for _ in range(3))
        rate = q * flops_per_query / t / 1e9
        return {"result": rate, "unit": "GFLOP/s", "note": f"ceiling {q / t:,.0f} queries/s"}

    for name, dtype in (("bf16", torch.bfloat16), ("fp32 (TF32 off)", torch.float32)):
        ck.measure(
            "retrieval", f"floor: torch {name} matmul, pool blocks of 65,536", f"{q:,} x {d} @ {d} x {n:,}",
            lambda dtype=dtype: floor(dtype),
        )  # fmt: skip

    ref_engine = cpu_engine()
    for k in ck.size["ks"]:
        ref: dict = {}

        def reference(k=k, ref=ref) -> dict:
            prepared = PreparedPool(pool)
            t = time.perf_counter()
            ref["index"] = match(queries, prepared, k, seeds=seeds, engine=ref_engine, device="cpu").index
            ref["qps"] = q / (time.perf_counter() - t)
            return {"result": ref["qps"], "unit": "queries/s", "note": "the in-run baseline and exactness reference"}

        ck.measure("retrieval", f"CPU exact path ({ref_engine} engine), k={k}", size, reference, memory="rss")
        for engine in ("bf16", "torch"):

            def run(engine=engine, k=k, ref=ref) -> dict:
                if "index" not in ref:
                    raise Skip("the CPU reference did not run")
                prepared = PreparedPool(pool)
                # warm-up: the device copy of the pool (kept by the PreparedPool), the kernel probe, cuBLAS
                match(queries[:warm], prepared, k, seeds=seeds[:warm], engine=engine, device=ck.device)
                stats: dict = {}
                holder: dict = {}
                dt = ck.timed(
                    lambda: holder.update(
                        m=match(queries, prepared, k, seeds=seeds, engine=engine, device=ck.device, stats=stats)
                    )
                )
                differ = int(np.count_nonzero(holder["m"].index != ref["index"]))
                qps = q / dt
                sup = stats.get("superset")
                note = f"exact: {'yes' if differ == 0 else 'no'} ({differ} of {q:,} rows differ)"
                if engine == "bf16":
                    mean_sup = float(sup.mean()) if sup is not None and sup.size else 0.0
                    note += f"; screened {stats.get('screened', 0)}, fell back {stats.get('fallback', 0)}"
                    note += f", superset mean {mean_sup:.0f}"
                return {
                    "result": qps,
                    "unit": "queries/s",
                    "vs": f"{qps / ref['qps']:.2f}x CPU exact",
                    "note": note + f"; {_gf(qps * flops_per_query / 1e9)} equivalent",
                    "exact": differ == 0,
                    "rows_differ": differ,
                    "engine_ran": stats.get("engine"),
                    "screened": stats.get("screened"),
                    "fallback": stats.get("fallback"),
                }

            ck.measure("retrieval", f"match, {engine} engine on {ck.device}, k={k}", size, run)


# --- clap -------------------------------------------------------------------------------------


def _clap_dir(ck: Check) -> Path:
    """A CLAP folder with laion/clap-htsat-unfused's files; full: ``ClapConfig()``'s shapes (random weights)."""
    from seeing_sound.testing.models import build_tiny_clap

    out = build_tiny_clap(ck.tmp / "clap")  # tokenizer, feature extractor; the tiny model for --small
    if not ck.small:
        import torch
        from transformers import ClapConfig, ClapModel

        torch.manual_seed(0)
        with torch.device(ck.device):
            model = ClapModel(ClapConfig())  # HTSAT-tiny audio tower + RoBERTa text tower, projection 512
        model.eval().save_pretrained(out, safe_serialization=True)  # replaces the tiny config and weights
        del model
    return out


def row_clap(ck: Check) -> None:
    import numpy as np

    from seeing_sound.encoders import load_encoder

    n, seconds = ck.size["clap_clips"], ck.size["clap_seconds"]
    path = _clap_dir(ck)
    waves = (0.1 * np.random.default_rng(0).standard_normal((n, int(seconds * 16000)))).astype(np.float32)
    size = f"{n} clips x {seconds:g} s at 16 kHz" + (" (tiny twin)" if ck.small else " (ClapConfig() = htsat-unfused)")

    def run(fp16: bool) -> dict:
        t = time.perf_counter()
        enc = load_encoder(
            "clap", str(path), device=ck.device, fp16=fp16, audio_prep="torch", cache=False,
            batch_size=ck.size["clap_batch"],
        )  # fmt: skip
        load_s = time.perf_counter() - t
        enc.embed_audio(waves[: enc.batch_size], 16000)  # warm-up
        holder: dict = {}
        dt = ck.timed(lambda: holder.update(out=enc.embed_audio(waves, 16000)))
        if holder["out"].shape != (n, enc.info.dim) or not np.isfinite(holder["out"]).all():
            raise RuntimeError(f"bad embeddings {holder['out'].shape}")
        params = sum(p.numel() for p in enc.model.audio_model.parameters()) / 1e6
        return {
            "result": n / dt,
            "unit": "clips/s",
            "note": f"batch {enc.batch_size}, audio tower {params:.3g}M params, load {load_s:.1f} s",
        }

    ck.measure("clap", "CLAP audio embedding, audio_prep=torch, fp32", size, lambda: run(False))
    ck.measure(
        "clap", "CLAP audio embedding, audio_prep=torch, fp16", size, lambda: run(True),
        cuda_only="the encoder runs fp16 on a GPU only",
    )  # fmt: skip


# --- features ---------------------------------------------------------------------------------


def _ast_dir(ck: Check) -> Path:
    """An ``ASTForAudioClassification`` folder: the tiny twin, or MIT/ast-finetuned-audioset's shapes."""
    if "ast_dir" in ck.cache:
        return ck.cache["ast_dir"]
    from seeing_sound.testing.models import build_tiny_ast

    out = ck.tmp / "ast"
    if ck.small:
        build_tiny_ast(out)
    else:
        import torch
        from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

        from seeing_sound.testing.twin_sizes import AUDIOSET_NUM_LABELS

        id2label = {i: f"label_{i}" for i in range(AUDIOSET_NUM_LABELS)}
        config = ASTConfig(id2label=id2label, label2id={v: i for i, v in id2label.items()})  # 12 x 768, 1024 frames
        torch.manual_seed(0)
        with torch.device(ck.device):
            model = ASTForAudioClassification(config)
        model.eval().save_pretrained(out)
        ASTFeatureExtractor().save_pretrained(out)
        del model
    ck.cache["ast_dir"] = out
    return out


def _vae_dir(ck: Check) -> Path:
    """An ``AutoencoderKL`` folder: the SD/PixArt-α VAE's shapes (downsampling 8), or the tiny twin's (2)."""
    if "vae_dir" in ck.cache:
        return ck.cache["vae_dir"]
    import torch
    from diffusers import AutoencoderKL

    if ck.small:
        kw = {"block_out_channels": (8, 16), "layers_per_block": 1, "norm_num_groups": 8, "sample_size": 16}
    else:
        kw = {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "norm_num_groups": 32}
        kw.update(sample_size=512, scaling_factor=0.18215)
    blocks = len(kw["block_out_channels"])
    torch.manual_seed(0)
    with torch.device(ck.device):
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * blocks,
            up_block_types=("UpDecoderBlock2D",) * blocks,
            latent_channels=4,
            **kw,
        )
    out = ck.tmp / "vae"
    vae.eval().save_pretrained(out)
    del vae
    ck.cache["vae_dir"] = out
    return out


def row_features(ck: Check) -> None:
    import numpy as np
    import torch

    from seeing_sound.builders import load_vae
    from seeing_sound.encoders.ast import load_ast
    from seeing_sound.features import compute_features
    from seeing_sound.testing.data import write_noise_dataset

    b, res = ck.size["model_batch"], ck.size["resolution"]
    ast_path, vae_path = _ast_dir(ck), _vae_dir(ck)
    rng = np.random.default_rng(0)

    def ast_bare(dtype) -> dict:
        enc = load_ast(str(ast_path), device=ck.device, dtype=dtype)
        n = ck.size["ast_clips"]
        waves = list((0.1 * rng.standard_normal((n, enc.window_samples))).astype(np.float32))
        enc.encode_torch(waves[:b], batch_size=b)  # warm-up
        dt = ck.timed(lambda: enc.encode_torch(waves, batch_size=b))
        note = f"{enc.num_tokens} tokens x {enc.hidden_size}, batch {b}, fbank in torch on the device"
        return {"result": n / dt, "unit": "clips/s", "note": note}

    clips = f"{ck.size['ast_clips']} x {'1 s' if ck.small else '10.24 s'}"
    ck.measure("features", "AST tokens, model only (encode_torch), fp32", clips, lambda: ast_bare(None))
    ck.measure(
        "features", "AST tokens, model only (encode_torch), bf16", clips,
        lambda: ast_bare(torch.bfloat16), cuda_only="bf16 AST (train --ast-online) is a GPU path",
    )  # fmt: skip

    def vae_bare() -> dict:
        vae = load_vae(str(vae_path)).to(ck.device).eval()
        n = ck.size["vae_images"]
        x = torch.rand(b, 3, res, res, device=ck.device) * 2 - 1

        def go():
            with torch.inference_mode():
                for _ in range(-(-n // b)):
                    dist = vae.encode(x).latent_dist
                    _ = dist.mean.float(), dist.std.float()  # what the stage stores

        with torch.inference_mode():
            vae.encode(x)  # warm-up
        dt = ck.timed(go)
        return {"result": -(-n // b) * b / dt, "unit": "images/s", "note": f"batch {b}, fp32"}

    ck.measure("features", "VAE latents, model only (vae.encode), fp32", f"{ck.size['vae_images']} x {res}²", vae_bare)

    n = ck.size["stage_items"]
    ds_holder: dict = {}

    def stage(kind: str) -> dict:
        if "ds" not in ds_holder:
            ds_holder["ds"] = write_noise_dataset(
                ck.tmp / "features_ds", n, audio_samples=int(ck.size["stage_audio_s"] * 16000), image_size=res
            )
        opts = {"ast": str(ast_path), "vae": None} if kind == "ast" else {"ast": None, "vae": str(vae_path)}
        t = time.perf_counter()
        report = compute_features(
            ds_holder["ds"], batch_size=b, device=ck.device, resolution=res, progress=False, overwrite=True, **opts
        )[kind]
        dt = time.perf_counter() - t
        if report.items_out != n:
            raise RuntimeError(f"{kind} stage wrote {report.items_out} of {n} items: {report.errors}")
        return {"result": n / dt, "unit": "items/s", "note": f"batch {b}, wall incl. model load, reads and writes"}

    what = f"{n} pairs, {ck.size['stage_audio_s']:g} s audio, {res}² PNG"
    ck.measure("features", "features stage, AST (compute_features)", what, lambda: stage("ast"))
    ck.measure("features", "features stage, VAE (compute_features)", what, lambda: stage("vae"))


# --- train ------------------------------------------------------------------------------------


def _pixart_config(ck: Check) -> dict:
    return {**PIXART_HUB_CONFIG, **(PIXART_SMALL if ck.small else {})}


def _audio_pixart(ck: Check):
    """The project's ``AudioPixArt`` from the hub transformer config (random weights), on the device; built once."""
    if "pixart" not in ck.cache:
        import torch

        from seeing_sound.model.audio_pixart import AudioPixArt

        torch.manual_seed(0)
        with torch.device(ck.device):
            model = AudioPixArt(transformer_config=_pixart_config(ck), audio_embed_dim=ck.size["audio_tokens"][1])
        ck.cache["pixart"] = model.to(ck.device)
    return ck.cache["pixart"]


@contextlib.contextmanager
def _autocast_forward(model, device_type: str):
    """bf16 autocast around ``model.forward`` only, as accelerate's ``mixed_precision="bf16"`` wraps it."""
    import torch

    inner = model.forward

    def forward(*args, **kwargs):
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            return inner(*args, **kwargs)

    model.forward = forward
    try:
        yield model
    finally:
        del model.forward


def row_train(ck: Check) -> None:
    from types import SimpleNamespace

    import torch

    from seeing_sound.model.diffusion import DiffusionSchedule
    from seeing_sound.model.training.recipe import _micro_step

    model = _audio_pixart(ck)
    model.train()
    dev = torch.device(ck.device)
    h = _pixart_config(ck)["sample_size"]
    tokens, width = ck.size["audio_tokens"]
    schedule = DiffusionSchedule.linear(1000)
    cfg = SimpleNamespace(uncond_prob=0.1, loss="hybrid")  # TrainConfig's defaults
    params = sum(p.numel() for p in model.parameters())
    gen_data = torch.Generator().manual_seed(0)

    def batch_of(b: int) -> dict:
        return {
            "mean": torch.randn(b, 4, h, h, generator=gen_data),
            "std": torch.full((b, 4, h, h), 0.05),
            "audio": torch.randn(b, tokens, width, generator=gen_data).half().to(dev),  # features are float16
        }

    flops: dict = {}

    def count() -> dict:
        from torch.utils.flop_counter import FlopCounterMode

        model.disable_gradient_checkpointing()
        with _autocast_forward(model, dev.type), FlopCounterMode(display=False) as fc:
            loss = _micro_step(model, batch_of(1), torch.Generator().manual_seed(0), schedule, cfg, dev)
            loss.backward()
        model.zero_grad(set_to_none=True)
        flops["sample"] = fc.get_total_flops()
        return {"result": flops["sample"] / 1e12, "unit": "TFLOP/sample", "note": "torch FlopCounterMode"}

    size = f"{h}x{h} latents, {tokens} x {width} audio tokens, {params / 1e6:.3g}M params"
    ck.measure("train", "model FLOPs per sample (forward + backward, batch 1)", size, count, memory=False)

    optimizer = torch.optim.AdamW(model.parameters(), lr=3.16e-5, weight_decay=3e-2)
    steps = ck.size["train_steps"]

    def run(b: int, checkpointing: bool) -> dict:
        if checkpointing:
            model.enable_gradient_checkpointing()
        else:
            model.disable_gradient_checkpointing()
        data = batch_of(b)
        losses = []

        def step(i: int) -> None:
            loss = _micro_step(model, data, torch.Generator().manual_seed(i), schedule, cfg, dev)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())

        try:
            with _autocast_forward(model, dev.type):
                step(0)  # warm-up (AdamW state, kernels)
                dt = ck.timed(lambda: [step(i) for i in range(1, steps + 1)]) / steps
        finally:
            optimizer.zero_grad(set_to_none=True)
        last = float(losses[-1])
        if not math.isfinite(last):
            raise RuntimeError(f"loss is {last}")
        note = f"{b / dt:.3g} samples/s, loss {last:.3g}"
        out = {"result": dt, "unit": "s/step", "note": note, "samples_per_s": b / dt}
        if flops.get("sample"):
            achieved = flops["sample"] * b / dt / 1e9
            out["note"] += f", {_gf(achieved)} (model FLOPs)"
            with contextlib.suppress(Exception):
                out["vs"] = f"{achieved / ck.floor('bf16'):.0%} of bf16 floor"
        return out

    for b, checkpointing in ck.size["train"]:
        ckpt = "gradient checkpointing" if checkpointing else "no checkpointing"
        what = f"training step, bf16 autocast, AdamW, batch {b}, {ckpt}"
        ck.measure("train", what, size, lambda b=b, c=checkpointing: run(b, c))
    model.disable_gradient_checkpointing()


# --- sample -----------------------------------------------------------------------------------


def row_sample(ck: Check) -> None:
    import torch
    from diffusers import DPMSolverMultistepScheduler

    from seeing_sound.builders import load_vae
    from seeing_sound.model.pipeline import AudioPixArtPipeline

    model = _audio_pixart(ck).eval()
    model.disable_gradient_checkpointing()
    vae = load_vae(str(_vae_dir(ck))).to(ck.device).eval()
    # load_scheduler's schedule for a checkpoint without scheduler/: PixArt-α's linear betas
    sched = DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear"
    )
    pipe = AudioPixArtPipeline(model, vae, sched)
    pipe.set_progress_bar_config(disable=True)
    tokens, width = ck.size["audio_tokens"]
    audio = torch.randn(1, tokens, width, generator=torch.Generator().manual_seed(0))
    h = model.sample_size
    steps = ck.size["sample_steps"]
    px = h * pipe.vae_scale_factor
    size = f"{px}² ({h}x{h} latents), 1 clip, {tokens} audio tokens"
    bare: dict = {}

    def forward(dtype) -> dict:
        model.to(dtype)
        x = torch.randn(2, 4, h, h, device=ck.device, dtype=dtype)
        t = torch.full((2,), 500, device=ck.device)
        cond = audio.repeat(2, 1, 1).to(ck.device, dtype)
        with torch.inference_mode():
            model(x, t, cond)
            dt = min(ck.timed(lambda: model(x, t, cond)) for _ in range(3))
        bare[dtype] = dt
        return {"result": dt, "unit": "s/forward", "note": "the in-run baseline of the step below"}

    def sampling(dtype) -> dict:
        model.to(dtype)
        kw = {"audio_embeds": audio, "guidance_scale": 4.5, "output_type": "latent"}
        pipe(num_inference_steps=1, **kw)  # warm-up
        g = torch.Generator().manual_seed(0)
        dt = ck.timed(lambda: pipe(num_inference_steps=steps, generator=g, **kw)) / steps
        out = {"result": dt, "unit": "s/step", "note": f"{steps} DPM-Solver steps, guidance 4.5"}
        if bare.get(dtype):
            out["vs"] = f"{dt / bare[dtype]:.2f}x bare forward"
        return out

    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        ck.measure("sample", f"transformer forward, batch 2 (CFG), {name}", size, lambda d=dtype: forward(d))
        what = f"sampling step with guidance (AudioPixArtPipeline), {name}"
        ck.measure("sample", what, size, lambda d=dtype: sampling(d))
    model.to(torch.float32)

    def decode() -> dict:
        z = torch.randn(1, 4, h, h, device=ck.device)
        with torch.inference_mode():
            vae.decode(z)
            dt = min(ck.timed(lambda: vae.decode(z)) for _ in range(3))
        return {"result": dt, "unit": "s/image", "note": "fp32, once per image after the last step"}

    ck.measure("sample", "VAE decode, batch 1", f"{h}x{h} latents -> {px}²", decode)


# --- eval -------------------------------------------------------------------------------------


def row_eval(ck: Check) -> None:
    import numpy as np

    from seeing_sound.evaluation.clip import ClipImageEncoder
    from seeing_sound.evaluation.inception import INPUT_SIZE, InceptionEncoder
    from seeing_sound.evaluation.wav2clip import Wav2ClipEncoder
    from seeing_sound.testing.eval_models import build_fid_inception, build_tiny_clip, build_tiny_wav2clip

    rng = np.random.default_rng(0)

    def images(enc, n: int, prepared: list) -> dict:
        b = enc.batch_size
        enc.embed(prepared[:b])  # warm-up
        dt = ck.timed(lambda: enc.embed(prepared))
        return {"result": n / dt, "unit": "images/s", "note": f"embed of prepared inputs, batch {b}, fp32"}

    n, b, side = ck.size["inception"]

    def inception() -> dict:
        enc = InceptionEncoder(build_fid_inception(ck.tmp / "inception.pth"), device=ck.device, batch_size=b)
        x = rng.uniform(0, 255, (3, side, side)).astype(np.float32)
        return images(enc, n, [x] * n)

    note = "" if side == INPUT_SIZE else f" (inputs {side}², not {INPUT_SIZE}²)"
    ck.measure("eval", f"FID Inception pool3 (real architecture){note}", f"{n} images, {side}²", inception)

    def clip() -> dict:
        n, b = ck.size["clip"]
        side = 32 if ck.small else 224
        path = build_tiny_clip(ck.tmp / "clip", image_size=side)  # the processor config; the tiny model
        if not ck.small:
            import torch
            from transformers import CLIPConfig, CLIPModel

            torch.manual_seed(0)
            with torch.device(ck.device):
                model = CLIPModel(CLIPConfig())  # ViT-B/32, projection 512
            model.eval().save_pretrained(path)
            del model
        enc = ClipImageEncoder(str(path), device=ck.device, batch_size=b)
        x = rng.standard_normal((3, side, side)).astype(np.float32)
        return images(enc, n, [x] * n)

    n = ck.size["clip"][0]
    side = 32 if ck.small else 224
    label = "CLIP image tower (tiny twin)" if ck.small else "CLIP image tower (ViT-B/32 shapes)"
    ck.measure("eval", label, f"{n} images, {side}²", clip)

    def wav2clip() -> dict:
        n, seconds = ck.size["wav2clip"]
        kw = {} if ck.small else {"width": 64, "mlp_units": (512, 512, 512)}  # the official widths
        enc = Wav2ClipEncoder(build_tiny_wav2clip(ck.tmp / "wav2clip.pt", **kw), device=ck.device)
        waves = list((0.1 * rng.standard_normal((n, int(seconds * 16000)))).astype(np.float32))
        enc.embed(waves[:1])  # warm-up
        dt = ck.timed(lambda: enc.embed(waves))
        return {"result": n / dt, "unit": "clips/s", "note": "one clip per forward (clips differ in length), fp32"}

    n, seconds = ck.size["wav2clip"]
    ck.measure("eval", "Wav2CLIP audio", f"{n} clips x {seconds:g} s at 16 kHz", wav2clip)


ROW_FUNCS = {
    "floor": row_floor,
    "retrieval": row_retrieval,
    "clap": row_clap,
    "features": row_features,
    "train": row_train,
    "sample": row_sample,
    "eval": row_eval,
}
CACHE_USERS = {"pixart": {"train", "sample"}}  # memory-heavy shared models: dropped after their last row


# --- main -------------------------------------------------------------------------------------


def resolve_device(arg: str) -> tuple[str, str | None]:
    """(device, why nothing can run there or None)."""
    try:
        import torch
    except ImportError:
        return "cpu", "missing package: torch"
    if arg == "auto":
        return ("cuda" if torch.cuda.is_available() else "cpu"), None
    if arg == "cpu":
        return "cpu", None
    if arg == "cuda" or (arg.startswith("cuda:") and arg[5:].isdigit()):
        if not torch.cuda.is_available():
            return arg, "no CUDA: torch sees no GPU"
        if arg != "cuda" and int(arg[5:]) >= torch.cuda.device_count():
            return arg, f"no CUDA: {arg} does not exist ({torch.cuda.device_count()} devices)"
        return arg, None
    raise SystemExit(f"--device must be auto, cpu, cuda or cuda:N, got {arg!r}")


def environment(device: str) -> dict:
    env = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    with contextlib.suppress(Exception):
        import torch

        env["torch"] = torch.__version__
        env["cuda"] = torch.version.cuda
        if device.startswith("cuda") and torch.cuda.is_available():
            props = torch.cuda.get_device_properties(torch.device(device))
            env["gpu"] = props.name
            env["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
            env["capability"] = f"{props.major}.{props.minor}"
    for pkg in ("transformers", "diffusers", "faiss", "numpy"):
        with contextlib.suppress(Exception):
            env[pkg] = __import__(pkg).__version__
    with contextlib.suppress(Exception):
        root = Path(__file__).resolve().parents[1]
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        if done.returncode == 0:
            env["commit"] = done.stdout.strip()
    return env


def _cell(entry: dict) -> dict:
    status = entry["status"]
    note = entry["note"]
    if status == "skipped":
        note = f"skipped: {entry['reason']}"
    elif status == "error":
        note = f"ERROR: {entry['reason']}"
    peak = entry["peak_mb"]
    return {
        "row": entry["row"],
        "what": entry["what"],
        "size": entry["size"],
        "result": entry["result"] if entry["result"] is not None else "-",
        "unit": entry["unit"] or "-",
        "peak MB": peak if peak is not None else "-",
        "vs": entry["vs"],
        "note": note,
    }


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    ap.add_argument("--small", action="store_true", help="tiny twins and sizes: seconds on a CPU (the test)")
    ap.add_argument("--json", metavar="PATH", help="also write every entry, with the environment, as JSON")
    ap.add_argument("--only", help=f"comma-separated subset of: {','.join(ROWS)}")
    ap.add_argument("--budget-s", type=float, default=460.0, help="skip what is left after this many seconds")
    args = ap.parse_args(argv)
    rows = list(ROWS)
    if args.only:
        rows = [r.strip() for r in args.only.split(",") if r.strip()]
        unknown = sorted(set(rows) - set(ROWS))
        if unknown:
            ap.error(f"--only: unknown rows {', '.join(unknown)} (known: {', '.join(ROWS)})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model is built here: never wait on the network
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device, unavailable = resolve_device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="device_check_"))
    ck = Check(device, args.small, args.budget_s, tmp, unavailable)
    env = environment(device)
    print(
        f"device check: {device} ({env.get('gpu', platform.processor() or platform.machine())}), "
        f"{'small' if args.small else 'full'} sizes, budget {args.budget_s:g} s; torch {env.get('torch', '-')}",
        flush=True,
    )

    def write_json(complete: bool) -> None:
        if not args.json:
            return
        doc = {
            "script": "benchmarks/device_check.py",
            "small": args.small,
            "device": device,
            "budget_s": args.budget_s,
            "elapsed_s": round(ck.elapsed(), 1),
            "complete": complete,  # False: the run was cut short after the rows listed
            "rows": rows,
            "environment": env,
            "entries": ck.entries,
        }
        path = Path(args.json)
        part = path.with_name(path.name + ".part")
        part.write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
        part.replace(path)

    try:
        for i, name in enumerate(rows):
            before = len(ck.entries)
            t = time.perf_counter()
            if unavailable is None and ck.elapsed() <= ck.budget_s:
                try:
                    ROW_FUNCS[name](ck)
                except Exception as exc:  # the row's setup (building models, data): one entry says why
                    entry = {"row": name, "what": "(row setup)", "size": "-", "result": None, "unit": ""}
                    entry.update(peak_mb=None, mem="", vs="-", note="", status="ok", reason=None, seconds=None)
                    _fail(entry, exc)
                    ck.entries.append(entry)
                    _progress(entry)
            if len(ck.entries) == before:
                ck.measure(name, "(row)", "-", dict)  # skipped: the device is unavailable, or time budget
            for key, users in CACHE_USERS.items():
                if key in ck.cache and not users & set(rows[i + 1 :]):
                    del ck.cache[key]
            _free(ck)
            write_json(False)
            print(f"  {name}: {time.perf_counter() - t:.1f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mem = "torch.cuda.max_memory_allocated" if ck.cuda and unavailable is None else "growth of the process's max RSS"
    print(table([_cell(e) for e in ck.entries], f"device check on {device}, {ck.elapsed():.0f} s; peak MB = {mem}"))
    write_json(True)
    if args.json:
        print(f"wrote {args.json}")
    errors = [e for e in ck.entries if e["status"] == "error"]
    if errors:
        print(f"{len(errors)} measurement(s) raised; tracebacks above on stderr", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
