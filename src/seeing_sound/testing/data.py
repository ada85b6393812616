"""Sample data for tests, benchmarks and the demo: learnable sound/image pairs, feature sets, bad files."""

from __future__ import annotations

from pathlib import Path

from seeing_sound.testing.twin_sizes import TINY_AST_HIDDEN


def write_synthetic_features(
    root: str | Path,
    num_pairs: int = 16,
    num_shards: int = 2,
    tokens: int = 110,
    dim: int = TINY_AST_HIDDEN,
    latent_size: int = 8,
    seed: int = 0,
    vae_model: str = "tiny-vae",
) -> Path:
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
        write_shard(
            ast_dir / f"{shard_name(k)}.safetensors", {"rows": rows.astype(np.int64), "embeds": audio[rows]}, {}
        )
        write_shard(
            vae_dir / f"{shard_name(k)}.safetensors",
            {"rows": rows.astype(np.int64), "mean": mean[rows], "std": std[rows]},
            {},
        )
    (ast_dir / "features.json").write_text(
        json.dumps({"kind": "ast", "model": "tiny-ast", "dim": dim, "tokens": tokens, "pool": 1})
    )
    (vae_dir / "features.json").write_text(
        json.dumps({"kind": "vae", "model": vae_model, "latent_shape": [4, latent_size, latent_size]})
    )
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


def write_sound_pattern_dataset(
    out: str | Path, images_root: str | Path, per_class: int = 16, seed: int = 0, image_size: int = 16
) -> list[int]:
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
            writer.add(
                pair_id=f"pair-{i:04d}",
                image_id=name,
                image_path=name,
                audio=sound_of_type(kind, rng),
                components=[{"concept": SOUND_TYPES[kind].replace("_", " ")}],
            )
    return labels


def write_noise_dataset(root: str | Path, n: int, audio_samples: int = 16000, image_size: int = 64) -> Path:
    """``ROOT/ds``: ``n`` pairs in one shard (pattern images in ``ROOT/images``, noise audio at 16 kHz).

    For measuring the feature stages by shard size: content does not matter, sizes do.
    """
    import numpy as np

    from seeing_sound.dataset import DatasetWriter

    root = Path(root)
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    with DatasetWriter(root / "ds", root / "images", shard_size=n) as writer:
        for i in range(n):
            pattern_image(i % 4, rng, image_size).save(root / "images" / f"{i}.png")
            writer.add(
                pair_id=f"p{i}",
                image_id=f"{i}.png",
                image_path=f"{i}.png",
                audio=(0.1 * rng.standard_normal(audio_samples)).astype(np.float32),
                components=[{"concept": "noise"}],
            )
    return root / "ds"


def write_bad_images(folder: str | Path) -> dict[str, str]:
    """Write files that must be recorded as failures; returns {relative path: expected reason}."""
    import io
    import zlib

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    # A valid 1x1 PNG whose header claims 100000 x 100000 pixels: a decompression bomb.
    png = io.BytesIO()
    Image.new("L", (1, 1)).save(png, format="PNG")
    data = bytearray(png.getvalue())
    data[16:24] = (100_000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    (folder / "bomb.png").write_bytes(bytes(data))
    return {
        "truncated.jpg": "truncated",
        "empty.png": "empty-file",
        "notes.jpg": "not-an-image",
        "bomb.png": "decompression-bomb",
    }
