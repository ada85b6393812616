"""Memorization of training images (paper A.6, Fig. 14).

For every generated image, its nearest training image: by CLIP image-embedding cosine
(``transformers.CLIPModel``, default ``openai/clip-vit-base-patch32``) or by perceptual hash
(``imagehash.phash``; similarity = 1 - Hamming distance / 64). The share of generated images whose
nearest training image is above a threshold estimates how much a model reproduces its training
data; a grid of the closest pairs (generated on top, training below, as in Fig. 14) shows it.

Training images come from a folder or from a pairs dataset (its images). Generated images are
the images of a folder, except in a folder written by ``seeing-sound generate`` (it holds a
``generate.json``): there exactly the images that file lists under ``outputs`` (not its
``contact-sheet.png``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.engine import command_run
from seeing_sound.errors import SeeingSoundError
from seeing_sound.studies.common import (
    IMAGE_EXTENSIONS,
    find_files,
    markdown_table,
    pyplot,
    save_figure,
    write_csv,
    write_text,
)

log = logging.getLogger(__name__)

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
METHODS = ("clip", "phash")
#: default "memorized" thresholds: CLIP cosine (near duplicates), phash similarity (<= 8 of 64 bits differ)
DEFAULT_THRESHOLDS = {"clip": 0.95, "phash": 1 - 8 / 64}
HASH_BITS = 64


@dataclass
class MemorizationReport:
    out: Path
    method: str
    threshold: float
    rows: list[dict[str, Any]]  # one per generated image, most similar first
    training_images: int

    @property
    def share_above(self) -> float:
        return float(np.mean([r["above_threshold"] for r in self.rows])) if self.rows else 0.0


def training_images(source: str | Path) -> list[Path | str]:
    """Images of a training folder, or of a pairs dataset (a folder with ``dataset.json``), unique and sorted.

    A dataset whose images are read in place from tar shards or tables gives each image as its
    :func:`~seeing_sound.dataset.image_store.source_ref` (decoded by :func:`_rgb` all the same).
    """
    root = Path(source)
    if (root / "dataset.json").is_file():
        from seeing_sound.dataset.image_store import is_folder_root
        from seeing_sound.dataset.reader import PairsDataset

        ds = PairsDataset.open(root)
        if is_folder_root(ds.images_spec):
            return sorted({ds.image_path(i) for i in range(len(ds))})
        return sorted({ds.image_ref(i) for i in range(len(ds))})
    return list(find_files(root, IMAGE_EXTENSIONS))


#: the report ``seeing-sound generate`` writes beside its images (``outputs``: {audio file: [image names]})
GENERATE_REPORT = "generate.json"


def _generate_outputs(report: Path) -> set[str]:
    """The image names a ``generate.json`` lists under ``outputs``."""
    try:
        outputs = json.loads(report.read_text(encoding="utf-8")).get("outputs")
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise SeeingSoundError(f"{report} is not a generate report (JSON object with outputs): {exc}") from None
    if not isinstance(outputs, dict) or not all(isinstance(v, list) for v in outputs.values()):
        raise SeeingSoundError(f"{report}: 'outputs' must map each audio file to a list of image names")
    return {str(name) for names in outputs.values() for name in names}


def generated_images(source: str | Path) -> list[Path]:
    """The generated images under ``source`` (a file, or a folder walked), sorted.

    A folder holding a ``generate.json`` (written by ``seeing-sound generate``) contributes exactly the
    images it lists under ``outputs``, so its ``contact-sheet.png`` is not counted as a generated
    image; any other folder, every image in it. A file given alone is taken as it is.
    """
    found = find_files(source, IMAGE_EXTENSIONS)
    if Path(source).is_file():
        return found
    outputs: dict[Path, set[str] | None] = {}  # folder -> the names its generate.json lists (None: no report)
    for folder in sorted({p.parent for p in found}):
        report = folder / GENERATE_REPORT
        outputs[folder] = _generate_outputs(report) if report.is_file() else None
    keep = []
    for path in found:
        names = outputs[path.parent]
        if names is None or path.name in names:
            keep.append(path)
    return keep


def _rgb(path: Path | str) -> Any:
    """8-bit RGB as every stage decodes it (16-bit scaled, alpha on white, EXIF orientation, size bounded);
    ``path`` a file, or an image's place in its shards or table (``source_ref``)."""
    from seeing_sound.dataset.image_store import open_ref
    from seeing_sound.imaging import decode

    return decode(open_ref(str(path))).image


class ClipImageEmbedder:
    """Unit-norm CLIP image embeddings of image files (float32 (n, D)), batched."""

    def __init__(self, model: str = DEFAULT_CLIP, device: str = "auto", batch_size: int = 32):
        from transformers import CLIPImageProcessor, CLIPModel

        from seeing_sound.builders import resolve_device
        from seeing_sound.encoders.common import load_or_raise

        self.device = resolve_device(device)
        self.model = load_or_raise(lambda: CLIPModel.from_pretrained(model), "CLIP", model, "clip")
        self.model = self.model.to(self.device).eval()
        self.processor = load_or_raise(lambda: CLIPImageProcessor.from_pretrained(model), "CLIP", model, "clip")
        self.name = model
        self.batch_size = batch_size

    def __call__(self, paths: Sequence[Path | str]) -> np.ndarray:
        import torch

        out = []
        for s in range(0, len(paths), self.batch_size):
            images = [_rgb(p) for p in paths[s : s + self.batch_size]]
            pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                feats = self.model.get_image_features(pixel_values=pixels)
            feats = getattr(feats, "pooler_output", feats)  # transformers 5 returns an output object
            out.append(feats.float().cpu().numpy())
        x = np.concatenate(out) if out else np.zeros((0, 1), np.float32)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return (x / np.where(n > 0, n, 1.0)).astype(np.float32)


def phash_bits(paths: Sequence[Path | str]) -> np.ndarray:
    """64-bit perceptual hashes as bool (n, 64)."""
    try:
        import imagehash
    except ImportError as exc:  # pragma: no cover - the studies extra
        raise ImportError("method='phash' needs imagehash: pip install 'seeing-sound[studies]'") from exc
    return np.stack([np.asarray(imagehash.phash(_rgb(p)).hash, dtype=bool).reshape(-1) for p in paths])


def nearest(gen: np.ndarray, train: np.ndarray, method: str, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Index of the most similar training row for each generated row, and that similarity.

    ``clip``: unit float (G, D) vs (T, D), cosine. ``phash``: bool (G, 64) vs (T, 64), 1 - Hamming/64.
    Ties go to the lower training index.
    """
    idx = np.zeros(gen.shape[0], np.int64)
    best = np.full(gen.shape[0], -np.inf)
    for s in range(0, train.shape[0], block):
        part = train[s : s + block]
        if method == "clip":
            sims = gen.astype(np.float64) @ part.astype(np.float64).T
        else:
            differ = (gen[:, None, :] != part[None, :, :]).sum(axis=2)
            sims = 1.0 - differ / gen.shape[1]
        j = np.argmax(sims, axis=1)
        v = sims[np.arange(gen.shape[0]), j]
        better = v > best
        idx[better], best[better] = j[better] + s, v[better]
    return idx, best


def memorization_study(
    generated: str | Path,
    training: str | Path,
    out: str | Path,
    *,
    method: str = "clip",
    model: str = DEFAULT_CLIP,
    threshold: float | None = None,
    grid: int = 8,
    device: str = "auto",
    batch_size: int = 32,
) -> MemorizationReport:
    """Nearest training image of every generated image; write memorization.csv/.png/.md."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    with command_run("study memorization", out, inputs={"generated": generated, "training": training}):
        thr = DEFAULT_THRESHOLDS[method] if threshold is None else float(threshold)
        gen_paths = generated_images(generated)
        train_paths = training_images(training)
        if not gen_paths:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {generated}")
        if not train_paths:
            raise ValueError(f"no training images under {training}")
        log.info("memorization: %d generated vs %d training images (%s)", len(gen_paths), len(train_paths), method)
        if method == "clip":
            embed = ClipImageEmbedder(model, device=device, batch_size=batch_size)
            g, t = embed(gen_paths), embed(train_paths)
            what = f"CLIP image cosine (`{model}`)"
        else:
            g, t = phash_bits(gen_paths), phash_bits(train_paths)
            what = f"perceptual hash (imagehash.phash, 1 - Hamming/{HASH_BITS})"
        idx, sim = nearest(g, t, method)
        rows: list[dict[str, Any]] = [
            {
                "generated": str(gen_paths[i]),
                "nearest_training": str(train_paths[int(idx[i])]),
                "similarity": float(sim[i]),
                "above_threshold": bool(sim[i] >= thr),
            }
            for i in range(len(gen_paths))
        ]
        rows.sort(key=lambda r: (-r["similarity"], r["generated"]))
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "memorization.csv", rows, ["generated", "nearest_training", "similarity", "above_threshold"])
        report = MemorizationReport(out, method, thr, rows, len(train_paths))
        _grid(report, grid)
        write_text(out / "memorization.md", _summary(report, what))
        return report


def _thumb(path: str, side: int = 256) -> np.ndarray:
    img = _rgb(path)
    img.thumbnail((side, side))
    return np.asarray(img)


def _grid(report: MemorizationReport, n: int) -> None:
    plt = pyplot()
    pairs = report.rows[: max(1, n)]
    fig, axes = plt.subplots(2, len(pairs), figsize=(2.0 * len(pairs), 4.4), squeeze=False)
    for j, r in enumerate(pairs):
        for i, key in enumerate(("generated", "nearest_training")):
            ax = axes[i][j]
            ax.imshow(_thumb(r[key]))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(Path(r[key]).name[:22], fontsize=6)
            if i == 0:
                color = "tab:red" if r["above_threshold"] else "0.2"
                ax.set_title(f"{r['similarity']:.3f}", fontsize=9, color=color)
        if j == 0:
            axes[0][0].set_ylabel("generated", fontsize=9)
            axes[1][0].set_ylabel("nearest training", fontsize=9)
    fig.suptitle(
        f"Closest generated/training pairs ({report.method}; red: >= {report.threshold:.3f}; "
        f"{100 * report.share_above:.1f}% of {len(report.rows)} above)",
        fontsize=10,
    )
    save_figure(fig, report.out / "memorization.png")


def _summary(report: MemorizationReport, what: str) -> str:
    top = markdown_table(
        [
            (Path(r["generated"]).name, Path(r["nearest_training"]).name, f"{r['similarity']:.4f}")
            for r in report.rows[:10]
        ],
        ["generated", "nearest training image", "similarity"],
    )
    n_above = sum(r["above_threshold"] for r in report.rows)
    return (
        "# Memorization of training images (paper A.6, Fig. 14)\n\n"
        f"- {len(report.rows)} generated images vs {report.training_images} training images\n"
        f"- similarity: {what}\n"
        f"- threshold: {report.threshold:.4f}; above it: {n_above} images = **{100 * report.share_above:.1f}%**\n\n"
        f"Closest pairs:\n\n{top}\n\n![closest pairs](memorization.png)\n"
    )
