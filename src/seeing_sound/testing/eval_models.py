"""Random twins of the evaluation checkpoints, saved as the real producers saved them, and sample data.

- :func:`build_tiny_wav2clip`: a ``Wav2CLIP.pt`` in the official format: the flat state dict of
  the pre-training module (``audio_encoder.*``, ``audio_transform.*``, ``image_transform.*``,
  ``loss_fn_a.logit_scale``, ``loss_fn_i.logit_scale``), with smaller widths.
- :func:`build_tiny_clip`: a ``CLIPModel`` folder shaped like ``openai/clip-vit-base-patch32``'s
  repository (``config.json``, ``model.safetensors``, its ``preprocessor_config.json`` at a tiny
  resolution, and a real CLIP byte-level BPE tokenizer with a tiny vocabulary:
  :func:`write_tiny_clip_tokenizer`), so ``CLIPModel``, ``AutoTokenizer`` and
  ``AutoImageProcessor`` all load it like the hub's.
- :func:`build_fid_inception`: the *full* FID Inception (24M parameters, the real architecture
  and keys: there is no smaller one) with random weights, as a ``.pth`` state dict like
  pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``. Tests use it on a few images.
- :func:`write_eval_folders` / :func:`write_synthetic_benchmark`: images and 16 kHz audio paired
  by stem, and a benchmark folder in the layout of the benchmarks contract.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np

#: tiny Wav2CLIP: first-stage width (official 64) and MLP units (official 512, 512, 512)
TINY_WAV2CLIP_WIDTH = 8
TINY_WAV2CLIP_UNITS = (64, 32, 32)
#: tiny CLIP projection dim, equal to the tiny Wav2CLIP's output so AIS can compare them
TINY_CLIP_DIM = 32


def build_tiny_wav2clip(
    out: str | Path, seed: int = 0, width: int = TINY_WAV2CLIP_WIDTH, mlp_units: tuple[int, ...] = TINY_WAV2CLIP_UNITS
) -> Path:
    """Save a random Wav2CLIP checkpoint to the file ``out`` (``torch.save`` of a flat state dict); returns it."""
    import torch

    from seeing_sound.evaluation.wav2clip import MLPLayers, Wav2ClipAudio

    torch.manual_seed(seed)
    audio = Wav2ClipAudio(width=width, mlp_units=mlp_units)
    for m in audio.modules():  # the official ResNet's init
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(m.weight, mean=1, std=0.02)
            torch.nn.init.constant_(m.bias, 0)
    image = MLPLayers((mlp_units[-1],) * 3)
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in audio.audio_encoder.state_dict().items():
        sd[f"audio_encoder.{k}"] = v
    for k, v in image.state_dict().items():
        sd[f"image_transform.{k}"] = v
    for k, v in audio.audio_transform.state_dict().items():
        sd[f"audio_transform.{k}"] = v
    for name in ("loss_fn_i", "loss_fn_a"):
        sd[f"{name}.logit_scale"] = torch.tensor(math.log(1 / 0.07))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, out)
    return out


#: ``openai/clip-vit-base-patch32``'s preprocessor_config.json (sizes filled in per twin)
CLIP_PREPROCESSOR = {
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
}


#: the tiny CLIP text tower: its vocabulary size and longest token sequence (the hub's: 49408 and 77)
TINY_CLIP_VOCAB = 99
TINY_CLIP_MAX_TOKENS = 16
#: words whose BPE merges the tiny tokenizer learns (in this order, while the vocabulary has room):
#: the prompts the grounding and depiction checks write
_CLIP_WORDS = ("a", "photo", "of", "the", "drawing", "statue", "toy", "painting", "sound", "dog", "bird")
#: punctuation the tiny tokenizer knows (as a word of its own, which CLIP's pre-tokenizer makes it):
#: an unknown character is ``<|endoftext|>``, where the text tower would pool early
_CLIP_PUNCTUATION = tuple(".,:;'-!?()")


def _bpe_merges(words, room: int) -> list[tuple[str, str]]:
    """Left-to-right merges spelling each word (``w o r d</w>``), at most ``room`` of them."""
    merges: list[tuple[str, str]] = []
    for word in words:
        symbols = [*word[:-1], word[-1] + "</w>"]
        left = symbols[0]
        for right in symbols[1:]:
            pair = (left, right)
            left = left + right
            if pair not in merges:
                if len(merges) == room:
                    return merges
                merges.append(pair)
    return merges


def write_tiny_clip_tokenizer(
    out: str | Path, vocab_size: int = TINY_CLIP_VOCAB, max_length: int = TINY_CLIP_MAX_TOKENS
) -> Path:
    """Save a ``CLIPTokenizer`` (byte-level BPE, CLIP's pre-tokenizer and specials) to the folder ``out``.

    The files are those of ``openai/clip-vit-base-patch32``: ``vocab.json``, ``merges.txt``,
    ``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``. The vocabulary is
    laid out like the real one, in ``vocab_size`` ids: single characters (``a``-``z``, ``'``), the
    same ending a word (``a</w>``; digits and common punctuation too), the merges of a few prompt
    words (:data:`_CLIP_WORDS`), then ``<|startoftext|>`` and ``<|endoftext|>`` as the two highest
    ids, so the text tower pools at the end of text as CLIP's does (``argmax(input_ids)``). Other
    characters are unknown (``<|endoftext|>``, CLIP's unknown token). Built offline, deterministic.
    """
    from transformers import CLIPTokenizer

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    ends = [*letters, *(str(d) for d in range(10)), *_CLIP_PUNCTUATION]
    base = [*letters, "'", *(c + "</w>" for c in ends)]  # "'" starts a word: "'s"
    specials = ["<|startoftext|>", "<|endoftext|>"]
    room = vocab_size - len(base) - len(specials)
    if room < 0:
        raise ValueError(f"vocab_size must be >= {len(base) + len(specials)}, got {vocab_size}")
    merges = _bpe_merges(_CLIP_WORDS, room)
    tokens = [*base, *(a + b for a, b in merges)]
    tokens += [f"<|unused{i}|>" for i in range(room - len(merges))]  # pad to the model's vocabulary
    vocab = {t: i for i, t in enumerate([*tokens, *specials])}
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)  # type: ignore[arg-type]  # pairs work; the stub says str
    out = Path(out)
    tok.save_pretrained(out)
    # the slow tokenizer's files, as the hub repository also has them
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n")
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special_map = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    if not (out / "special_tokens_map.json").exists():
        (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
    return out


def build_tiny_clip(out: str | Path, seed: int = 0, projection_dim: int = TINY_CLIP_DIM, image_size: int = 32) -> Path:
    """Save a random tiny ``CLIPModel``, the real repository's image-processor config and a tiny
    CLIP tokenizer (:func:`write_tiny_clip_tokenizer`) to the folder ``out``; returns it."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    text = {
        "vocab_size": TINY_CLIP_VOCAB,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": TINY_CLIP_MAX_TOKENS,
        # the hub config's stale ids: with eos_token_id 2 CLIP pools at argmax(input_ids), the
        # tokenizer's <|endoftext|> (its highest id)
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": image_size,
        "patch_size": 8,
    }
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    torch.manual_seed(seed)
    out = Path(out)
    CLIPModel(config).eval().save_pretrained(out)
    pre = {**CLIP_PREPROCESSOR, "crop_size": image_size, "size": image_size}
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
    write_tiny_clip_tokenizer(out, TINY_CLIP_VOCAB, TINY_CLIP_MAX_TOKENS)
    return out


def build_fid_inception(out: str | Path, seed: int = 0):
    """Save a randomly initialised FID Inception (real architecture) as a ``.pth`` state dict; returns ``out``.

    Convolutions get He-normal weights and BatchNorm the identity, so the random features keep a
    useful scale through the 90-odd layers (PyTorch's default init shrinks them towards zero).
    """
    import torch

    from seeing_sound.evaluation.inception import FidInceptionV3

    torch.manual_seed(seed)
    model = FidInceptionV3()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    return out


def _image(rng: np.random.Generator, kind: int, size: int) -> np.ndarray:
    """A smooth colour field plus a class-dependent stripe pattern: (size, size, 3) uint8."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0, 1, 3)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (kind + 1) * (xx if kind % 2 else yy))
    img = np.stack([base[c] * 0.6 + 0.4 * stripes * ((c + kind) % 3 != 0) for c in range(3)], axis=-1)
    img += rng.normal(0, 0.05, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _audio(rng: np.random.Generator, kind: int, seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * (220 * (kind + 1)) * t) + rng.normal(0, 0.02, t.size)
    return wave.astype(np.float32)


def write_eval_folders(
    root: str | Path, n: int = 12, *, seed: int = 0, size: int = 48, seconds: float = 1.0, kinds: int = 3
) -> dict[str, Path]:
    """``root/{generated,reference}/item_XX.png`` and ``root/audio/item_XX.wav`` (16 kHz mono PCM16).

    Generated images are noisy variants of their references. Returns the three folders.
    """
    import soundfile as sf
    from PIL import Image

    root = Path(root)
    dirs = {name: root / name for name in ("generated", "reference", "audio")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        kind, stem = i % kinds, f"item_{i:02d}"
        ref = _image(rng, kind, size)
        gen = np.clip(ref.astype(np.int16) + rng.integers(-40, 40, ref.shape), 0, 255).astype(np.uint8)
        Image.fromarray(ref).save(dirs["reference"] / f"{stem}.png")
        Image.fromarray(gen).save(dirs["generated"] / f"{stem}.png")
        sf.write(dirs["audio"] / f"{stem}.wav", _audio(rng, kind, seconds), 16000, subtype="PCM_16")
    return dirs


def write_synthetic_benchmark(
    out: str | Path, n: int = 6, *, name: str = "synthetic", seed: int = 0, size: int = 32, seconds: float = 1.0
) -> Path:
    """A benchmark folder in the benchmarks contract's layout; returns ``out``.

    ``benchmark.json`` (name, source, protocol, seed, counts), ``metadata.parquet`` (``item_id, label,
    split, source, audio_path, image_path, frame_time_s, duration_s``), ``audio/{item_id}.wav`` (16 kHz
    mono PCM16) and ``images/{item_id}.png``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    import soundfile as sf
    from PIL import Image

    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = ["tone", "hum", "whistle"]
    rows: dict[str, list] = {
        k: [] for k in ("item_id", "label", "split", "source", "audio_path", "image_path", "frame_time_s", "duration_s")
    }
    for i in range(n):
        item, kind = f"{name}_{i:03d}", i % len(labels)
        Image.fromarray(_image(rng, kind, size)).save(out / "images" / f"{item}.png")
        sf.write(out / "audio" / f"{item}.wav", _audio(rng, kind, seconds), 16000, subtype="PCM_16")
        for k, v in (
            ("item_id", item),
            ("label", labels[kind]),
            ("split", "test"),
            ("source", "synthetic"),
            ("audio_path", f"audio/{item}.wav"),
            ("image_path", f"images/{item}.png"),
            ("frame_time_s", seconds / 2),
            ("duration_s", seconds),
        ):
            rows[k].append(v)
    pq.write_table(pa.table(rows), out / "metadata.parquet")
    info = {
        "name": name,
        "source": "synthetic (seeing_sound.testing.eval_models)",
        "protocol": "all items",
        "seed": seed,
        "counts": {"items": n, "labels": len(set(rows["label"]))},
    }
    (out / "benchmark.json").write_text(json.dumps(info, indent=2) + "\n")
    return out
