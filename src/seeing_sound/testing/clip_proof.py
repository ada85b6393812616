"""A tiny CLIP that really knows a small world, to prove the grounding and depiction checks offline.

Random twins cannot show that grounding removes hallucinations: their scores are noise. Here a
tiny ``transformers`` ``CLIPModel`` (shaped like the hub's, tiny sizes) is trained in seconds on
a CPU on synthetic images of a few object classes:

- *photos*: a filled shape of the class, with the class's colour and striped surface, on a noisy
  background, captioned "a photo of <class>" (shape alone took a tiny model minutes to learn);
- *drawings*: the same shape as a dark outline on a light, plain background ("line art"),
  captioned "a drawing of <class>".

:func:`train_proof_clip` saves it with ``save_pretrained`` plus a word-level tokenizer and the
real repository's image-processor config, so ``CLIPModel.from_pretrained(folder)`` and the
:class:`~seeing_sound.grounding.Grounder` load it like any hub CLIP. :func:`write_proof_images`
renders held-out photos and drawings (another seed) for the test to plant concepts on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seeing_sound.testing.eval_models import CLIP_PREPROCESSOR

#: the object classes of the synthetic world
PROOF_CLASSES = ("circle", "square", "triangle", "cross")
PROOF_KINDS = ("photo", "drawing")
PROOF_SIZE = 32
_WORDS = ("a", "an", "the", "photo", "drawing", "of", "something", *PROOF_CLASSES)
_PREPROCESSOR = {**CLIP_PREPROCESSOR, "crop_size": PROOF_SIZE, "size": PROOF_SIZE}


def _mask(rng: np.random.Generator, cls: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(filled, outline) boolean (size, size) masks of one randomly placed and sized shape."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    r = rng.uniform(0.25, 0.38) * size
    cy, cx = rng.uniform(r, size - r, 2)
    dy, dx = (yy - cy) / r, (xx - cx) / r
    if cls == "circle":
        d = np.hypot(dy, dx)
    elif cls == "square":
        d = np.maximum(abs(dy), abs(dx)) * 1.15
    elif cls == "triangle":  # apex up: inside when below the two slanted edges and above the base
        d = np.maximum.reduce([dy * 1.3 - 0.2, (-dy * 0.65 + abs(dx) * 1.15) + 0.1])
    elif cls == "cross":
        d = np.minimum(np.maximum(abs(dy), abs(dx) * 3.0), np.maximum(abs(dy) * 3.0, abs(dx))) * 1.05
    else:
        raise ValueError(f"cls must be one of {', '.join(PROOF_CLASSES)}, got {cls!r}")
    filled = d <= 1.0
    outline = (d <= 1.0) & (d >= 1.0 - 2.2 / r)
    return filled, outline


#: each class's colour (RGB in 0..1), so a tiny model learns the classes in seconds
_COLOURS = {
    "circle": np.array([0.6, 0.05, 0.05]),
    "square": np.array([0.05, 0.6, 0.05]),
    "triangle": np.array([0.05, 0.05, 0.6]),
    "cross": np.array([0.6, 0.6, 0.0]),
}


def _texture(cls: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) stripes in [0, 1], their direction set by the class, their phase random."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = {c: i * np.pi / len(PROOF_CLASSES) for i, c in enumerate(PROOF_CLASSES)}[cls]
    u = yy * np.cos(angle) + xx * np.sin(angle)
    return (np.sin(2 * np.pi * u / 4.0 + rng.uniform(0, 2 * np.pi)) > 0).astype(np.float64)


def render(rng: np.random.Generator, cls: str, kind: str, size: int = PROOF_SIZE) -> np.ndarray:
    """One (size, size, 3) uint8 image of ``cls`` as a ``kind`` ("photo" or "drawing")."""
    filled, outline = _mask(rng, cls, size)
    if kind == "photo":
        background = rng.uniform(0.3, 0.6) + 0.1 * rng.standard_normal((size, size, 3))
        # each class also has its own surface (as real objects do: fur, bricks, ...) so a tiny
        # model learns it in seconds; the shape alone took minutes
        texture = _texture(cls, size, rng)[..., None] * 0.35 + _COLOURS[cls] + rng.uniform(-0.08, 0.08, 3)
        img = np.where(filled[..., None], texture, background)
    elif kind == "drawing":
        paper = rng.uniform(0.85, 1.0) + 0.03 * rng.standard_normal((size, size, 1))
        ink = rng.uniform(0.0, 0.25)
        img = np.repeat(np.where(outline[..., None], ink, paper), 3, axis=2)
    else:
        raise ValueError(f"kind must be photo or drawing, got {kind!r}")
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def caption(cls: str, kind: str) -> str:
    return f"a {kind} of {cls}"


def _write_tokenizer(out: Path) -> int:
    """A word-level tokenizer over the world's words (lower-cased, <s> ... </s>); returns the eos id."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "<unk>": 2, "</s>": 3, **{w: i + 4 for i, w in enumerate(_WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 3)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    fast.save_pretrained(out)
    return len(vocab)


def _config(vocab_size: int):
    from transformers import CLIPConfig

    text = {
        "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "max_position_embeddings": 16, "pad_token_id": 0, "bos_token_id": 1,
        "eos_token_id": 3,  # not 2: CLIP then pools at the first </s> (the hub's configs do the same)
    }  # fmt: skip
    vision = {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "image_size": PROOF_SIZE, "patch_size": 8,
    }  # fmt: skip
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)


def train_proof_clip(out: str | Path, *, seed: int = 0, steps: int = 400, batch: int = 64, lr: float = 1e-3) -> Path:
    """Train the tiny CLIP on the synthetic world and save it to the folder ``out``; returns it.

    Each step classifies ``batch`` fresh images against every caption (cross-entropy over the
    2·classes captions, CLIP's zero-shot objective), so repeated captions in a batch are no issue.
    """
    import torch
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_tokenizer(out)
    (out / "preprocessor_config.json").write_text(json.dumps(_PREPROCESSOR, indent=2) + "\n")
    processor = CLIPImageProcessor.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = CLIPModel(_config(vocab_size))
    labels = [(c, k) for k in PROOF_KINDS for c in PROOF_CLASSES]
    tokens = tokenizer([caption(c, k) for c, k in labels], padding=True, return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        y = rng.integers(0, len(labels), batch)
        images = [render(rng, *labels[i]) for i in y]
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        out_ = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=pixels)
        loss = torch.nn.functional.cross_entropy(out_.logits_per_image, torch.as_tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().save_pretrained(out)
    return out


def build_word_clip(out: str | Path, *, seed: int = 0) -> Path:
    """The same tiny CLIP, tokenizer and processor, untrained (random weights): for plumbing tests."""
    import torch
    from transformers import CLIPModel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_tokenizer(out)
    (out / "preprocessor_config.json").write_text(json.dumps(_PREPROCESSOR, indent=2) + "\n")
    torch.manual_seed(seed)
    CLIPModel(_config(vocab_size)).eval().save_pretrained(out)
    return out


def write_proof_images(root: str | Path, *, per_class: int = 10, seed: int = 1) -> list[dict]:
    """Render ``per_class`` photos and drawings of every class as PNGs under ``root``.

    Returns one dict per image: ``{"path", "class", "kind"}`` (path relative to ``root``).
    """
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for kind in PROOF_KINDS:
        for cls in PROOF_CLASSES:
            for n in range(per_class):
                rel = f"{kind}-{cls}-{n:02d}.png"
                Image.fromarray(render(rng, cls, kind)).save(root / rel)
                rows.append({"path": rel, "class": cls, "kind": kind})
    return rows
