"""Image grids: training progress samples and the contact sheet of ``seeing-sound generate``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw


def image_grid(
    images: Sequence[Image.Image], cols: int, labels: Sequence[str] | None = None, pad: int = 2, min_cell: int = 64
) -> Image.Image:
    """Tile images row by row into one RGB image (cells upscaled to at least ``min_cell`` px, nearest)."""
    if not images:
        raise ValueError("images must not be empty")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    w = max(max(im.width for im in images), min_cell)
    h = max(max(im.height for im in images), min_cell)
    label_h = 12 if labels else 0
    rows = -(-len(images) // cols)
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        x, y = pad + c * (w + pad), pad + r * (h + label_h + pad)
        sheet.paste(im.convert("RGB").resize((w, h), Image.Resampling.NEAREST), (x, y))
        if labels:
            draw.text((x, y + h), str(labels[i])[: max(w // 6, 4)], fill="black")
    return sheet


def render_validation_grid(pipe, audio_embeds, gt_latents, seed: int, steps: int, guidance_scale: float) -> Image.Image:
    """Rows: validation items; columns: ground truth (decoded latent mean), then a sample.

    ``audio_embeds`` ``(N, T, D)``, ``gt_latents`` ``(N, C, h, w)``; the seed fixes the initial noise so
    successive grids differ only by what the model learned.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    samples = pipe(
        audio_embeds=audio_embeds,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        generator=generator,
        output_type="pil",
    ).images
    with torch.no_grad():
        vae = pipe.vae
        decoded = vae.decode(gt_latents.to(vae.device, vae.dtype) / vae.config.scaling_factor).sample
    truth = pipe.image_processor.postprocess(decoded.float(), output_type="pil")
    cells = [im for pair in zip(truth, samples, strict=True) for im in pair]
    return image_grid(cells, cols=2)


def to_uint8(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
