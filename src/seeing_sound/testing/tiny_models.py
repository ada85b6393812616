"""Tiny random twins of the real checkpoints, saved in the real folder layouts.

Tests, benchmarks and the demo load them through the same public loaders as
``PixArt-alpha/PixArt-XL-2-512x512`` and ``MIT/ast-finetuned-audioset-10-10-0.4593``, so every
code path (config parsing, safetensors, subfolders) is exercised without a download.
"""

from __future__ import annotations

from pathlib import Path

#: Tiny AST: 1 s of audio (100 frames) -> 2 + 12 x 9 = 110 tokens of width 32.
TINY_AST_MAX_FRAMES = 100
TINY_AST_HIDDEN = 32


def build_tiny_ast(out: str | Path, seed: int = 0, hidden_size: int = TINY_AST_HIDDEN,
                   max_length: int = TINY_AST_MAX_FRAMES) -> Path:
    """Save a random ``ASTModel`` and its ``ASTFeatureExtractor`` to ``out``; return ``out``."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    out = Path(out)
    torch.manual_seed(seed)
    config = ASTConfig(
        hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden_size,
        max_length=max_length, num_mel_bins=128,
    )
    ASTModel(config).eval().save_pretrained(out)
    ASTFeatureExtractor(max_length=max_length, num_mel_bins=128).save_pretrained(out)
    return out


def build_tiny_pixart(out: str | Path, seed: int = 0, sample_size: int = 8, width: int = 32,
                      num_layers: int = 2, small_vae_std: bool = True) -> Path:
    """Save a PixArt-α-shaped repository (``transformer/``, ``vae/``, ``scheduler/``) to ``out``.

    The transformer has learned variance (out_channels = 8) like the real one; the VAE downsamples
    by 2 (images of ``2 * sample_size`` pixels). ``small_vae_std`` biases the VAE's log-variance
    output to -12, as a trained VAE's posterior is nearly deterministic, so latents carry the image.
    The VAE's ``scaling_factor`` is calibrated the way Stable Diffusion's 0.18215 was: 1 / std of
    the latents of sample images (here the test patterns), so scaled latents have unit variance.
    """
    import torch
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, PixArtTransformer2DModel

    out = Path(out)
    torch.manual_seed(seed)
    heads = 2
    transformer = PixArtTransformer2DModel(
        num_attention_heads=heads, attention_head_dim=width // heads, in_channels=4, out_channels=8,
        num_layers=num_layers, cross_attention_dim=width, sample_size=sample_size, patch_size=2,
        caption_channels=16, norm_num_groups=8,
    )
    transformer.save_pretrained(out / "transformer")
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 16),
        layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=2 * sample_size,
    )
    if small_vae_std:
        with torch.no_grad():
            vae.quant_conv.bias[4:] = -12.0
    import numpy as np

    rng = np.random.default_rng(seed)
    probe = np.stack([np.asarray(pattern_image(k % 4, rng, 2 * sample_size), np.float32) / 127.5 - 1 for k in range(16)])
    with torch.no_grad():
        latents = vae.encode(torch.from_numpy(probe).permute(0, 3, 1, 2)).latent_dist.mean
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    vae.save_pretrained(out / "vae")
    DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear"
    ).save_pretrained(out / "scheduler")
    return out


def build_tiny_text_encoder(out: str | Path, seed: int = 0, d_model: int = 16) -> Path:
    """Save a tiny ``T5EncoderModel`` and a word-level tokenizer as ``text_encoder/`` and ``tokenizer/``.

    Used by the projector pre-training (paper A.11), which reads the checkpoint's T5.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    out = Path(out)
    words = ("dog bird car rain engine water wind bell tone noise siren music crowd speech "
             "low high band hum beep whistle drum piano guitar a the of").split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(out / "tokenizer")
    torch.manual_seed(seed)
    config = T5Config(vocab_size=len(vocab), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=1,
                      num_heads=2, pad_token_id=0, eos_token_id=1)
    T5EncoderModel(config).eval().save_pretrained(out / "text_encoder")
    return out


def write_synthetic_features(root: str | Path, num_pairs: int = 16, num_shards: int = 2, tokens: int = 110,
                             dim: int = TINY_AST_HIDDEN, latent_size: int = 8, seed: int = 0,
                             vae_model: str = "tiny-vae") -> Path:
    """Random AST/VAE feature sets in the on-disk layout of ``seeing-sound features`` (for train tests).

    Each pair's latent mean depends on its audio tokens' mean (a learnable relation).
    """
    import json

    import numpy as np

    from seeing_sound.engine import shard_name
    from seeing_sound.features.store import feature_dir, write_shard

    rng = np.random.default_rng(seed)
    root = Path(root)
    audio = rng.standard_normal((num_pairs, tokens, dim)).astype(np.float16)
    mean = np.repeat(audio.astype(np.float32).mean(axis=(1, 2))[:, None, None, None] * 8, 4, axis=1)
    mean = (mean + 0.1 * rng.standard_normal((num_pairs, 4, latent_size, latent_size))).astype(np.float16)
    std = np.full_like(mean, 0.01)
    ast_dir, vae_dir = feature_dir(root, "ast", "tiny"), feature_dir(root, "vae", "tiny")
    for k, rows in enumerate(np.array_split(np.arange(num_pairs), num_shards)):
        write_shard(ast_dir / f"{shard_name(k)}.safetensors", {"rows": rows.astype(np.int64), "embeds": audio[rows]}, {})
        write_shard(vae_dir / f"{shard_name(k)}.safetensors",
                    {"rows": rows.astype(np.int64), "mean": mean[rows], "std": std[rows]}, {})
    (ast_dir / "features.json").write_text(json.dumps({"kind": "ast", "model": "tiny-ast", "dim": dim,
                                                       "tokens": tokens, "pool": 1}))
    (vae_dir / "features.json").write_text(json.dumps({"kind": "vae", "model": vae_model,
                                                       "latent_shape": [4, latent_size, latent_size]}))
    return root


SOUND_TYPES = ("low_tone", "high_tone", "low_noise", "high_noise")


def sound_of_type(kind: int, rng, seconds: float = 1.0, sr: int = 16000):
    """A 1-s clip of sound type ``kind`` (see ``SOUND_TYPES``) with random pitch, level and phase."""
    import numpy as np

    n = int(seconds * sr)
    t = np.arange(n) / sr
    amp = rng.uniform(0.1, 0.4)
    if kind in (0, 1):
        freq = rng.uniform(250, 400) if kind == 0 else rng.uniform(2500, 4000)
        wave = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    else:
        spec = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / sr)
        lo, hi = (100, 800) if kind == 2 else (3000, 7000)
        spec[(freqs < lo) | (freqs > hi)] = 0
        wave = np.fft.irfft(spec, n)
        wave /= np.abs(wave).max() + 1e-9
    return (amp * wave).astype(np.float32)


def pattern_image(kind: int, rng, size: int = 16):
    """A ``size`` px RGB PIL image of pattern ``kind``: h-stripes, v-stripes, checker, diagonal split."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size]
    period = 4
    masks = [(y // period) % 2 == 0, (x // period) % 2 == 0, ((x // period) + (y // period)) % 2 == 0, x > y]
    a = np.array([230, 60, 40]) + rng.integers(-20, 20, 3)
    b = np.array([30, 80, 220]) + rng.integers(-20, 20, 3)
    img = np.where(masks[kind][..., None], a, b).clip(0, 255).astype(np.uint8)
    return Image.fromarray(img)


def write_sound_pattern_dataset(out: str | Path, images_root: str | Path, per_class: int = 16, seed: int = 0,
                                image_size: int = 16) -> list[int]:
    """A pairs dataset where each of 4 sound types goes with one image pattern; returns the class per row."""
    import numpy as np

    from seeing_sound.dataset import DatasetWriter

    rng = np.random.default_rng(seed)
    images_root = Path(images_root)
    images_root.mkdir(parents=True, exist_ok=True)
    labels = [k for _ in range(per_class) for k in range(4)]
    with DatasetWriter(out, images_root, shard_size=max(8, len(labels) // 2)) as writer:
        for i, kind in enumerate(labels):
            name = f"{SOUND_TYPES[kind]}-{i:04d}.png"
            pattern_image(kind, rng, image_size).save(images_root / name)
            writer.add(pair_id=f"pair-{i:04d}", image_id=name, image_path=name, audio=sound_of_type(kind, rng),
                       components=[{"concept": SOUND_TYPES[kind].replace("_", " ")}])
    return labels
