"""What ``leakage`` writes: pair tables (Parquet + CSV), exclusion lists, a contact sheet, JSON and Markdown."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound import __version__
from seeing_sound.dataset.image_store import open_ref
from seeing_sound.engine import atomic_write
from seeing_sound.engine.shards import write_json_atomic
from seeing_sound.leakage import fingerprint as fp
from seeing_sound.leakage.config import LeakageConfig
from seeing_sound.studies.common import markdown_table, pyplot, save_figure, write_csv, write_text

IMAGE_SCHEMA = pa.schema(
    [
        ("benchmark", pa.string()),
        ("bench_item", pa.string()),
        ("bench_image", pa.string()),
        ("train_image", pa.string()),
        ("train_image_path", pa.string()),
        ("clip_cosine", pa.float64()),
        ("phash_distance", pa.int32()),
        ("flagged", pa.bool_()),
        ("flagged_by", pa.string()),
    ]
)
AUDIO_SCHEMA = pa.schema(
    [
        ("benchmark", pa.string()),
        ("bench_item", pa.string()),
        ("bench_audio", pa.string()),
        ("train_audio", pa.string()),
        ("chunk_id", pa.int64()),
        ("chunk_source", pa.string()),
        ("chunk_offset_s", pa.float64()),
        ("votes", pa.int64()),
        ("concentration", pa.float64()),
        ("ratio", pa.float64()),
        ("bench_hashes", pa.int64()),
        ("train_hashes", pa.int64()),
        ("offset_s", pa.float64()),
        ("flagged", pa.bool_()),
    ]
)
FILES = {
    "json": "leakage.json",
    "md": "leakage.md",
    "image_pairs": "image_pairs.parquet",
    "image_csv": "image_pairs.csv",
    "audio_pairs": "audio_pairs.parquet",
    "audio_csv": "audio_pairs.csv",
    "sheet": "contact_sheet.png",
    "exclude_images": "exclude_images.txt",
    "exclude_chunks": "exclude_chunks.txt",
    "exclude_pairs": "exclude_pairs.txt",
}


@dataclass
class LeakageReport:
    """What ``leakage`` found: per-benchmark counts, the pair tables and the exclusion lists."""

    out: Path
    benchmarks: list[dict[str, Any]]
    image_pairs: list[dict[str, Any]]
    audio_pairs: list[dict[str, Any]]
    exclude_images: list[str]
    exclude_chunks: list[int]
    exclude_pairs: list[str]
    train: dict[str, Any]
    errors: dict[str, int] = field(default_factory=dict)
    complete: bool = True  # False after a shard slice: the finishing run matches and writes the outputs

    def summary(self) -> str:
        if not self.complete:
            return (
                f"slice done: features of {self.train['images']} training images and {self.train['audio']} clips "
                f"and of {len(self.benchmarks)} benchmark(s), this slice's shards -> {self.out / '_features'} "
                "(run once without --shard-slice to match and write the report)"
            )
        lines = [
            f"train       {self.train['root']} ({self.train['kind']}; {self.train['images']} images, "
            f"{self.train['audio']} audio clips from {self.train['audio_source'] or 'none'})"
        ]
        for b in self.benchmarks:
            lines.append(
                f"{b['name']:<11.11} {b['items']} items: {b['images_flagged']} frames with a near-duplicate image "
                f"({b['image_pairs']} pairs), {b['audio_flagged']} tracks with near-duplicate audio "
                f"({b['audio_pairs']} pairs); {b['items_flagged']} items in all"
            )
        lines.append(
            f"exclude     {len(self.exclude_images)} images, {len(self.exclude_chunks)} chunks, "
            f"{len(self.exclude_pairs)} pairs -> {self.out}"
        )
        if self.errors:
            lines.append("unreadable  " + ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())))
        return "\n".join(lines)


def _sort_key(r: dict[str, Any]) -> tuple:
    return (not r["flagged"], r["benchmark"], r["bench_item"], str(r.get("train_image", r.get("train_audio"))))


def write_id_list(path: Path, ids: list) -> None:
    """One id a line, UTF-8, ``\\n`` after each (an empty file for none): what ``--exclude-*`` reads."""
    with atomic_write(path, "w") as fh:
        fh.write("".join(f"{i}\n" for i in ids))


def write_outputs(report: LeakageReport, cfg: LeakageConfig) -> None:
    out = report.out
    images = sorted(report.image_pairs, key=_sort_key)
    audio = sorted(report.audio_pairs, key=_sort_key)
    for rows, schema, key, csv in (
        (images, IMAGE_SCHEMA, "image_pairs", "image_csv"),
        (audio, AUDIO_SCHEMA, "audio_pairs", "audio_csv"),
    ):
        table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
        with atomic_write(out / FILES[key]) as fh:
            pq.write_table(table, fh)
        write_csv(out / FILES[csv], table.to_pylist(), schema.names)
    write_id_list(out / FILES["exclude_images"], report.exclude_images)
    write_id_list(out / FILES["exclude_chunks"], report.exclude_chunks)
    write_id_list(out / FILES["exclude_pairs"], report.exclude_pairs)
    contact_sheet(images, out / FILES["sheet"])
    write_json_atomic(
        out / FILES["json"],
        {
            "train": report.train,
            "benchmarks": report.benchmarks,
            "exclusions": {
                "images": len(report.exclude_images),
                "chunks": len(report.exclude_chunks),
                "pairs": len(report.exclude_pairs),
            },
            "errors": report.errors,
            "settings": cfg.to_dict(),
            "method": {
                "images": "CLIP image cosine (transformers CLIPModel) and 64-bit imagehash.phash Hamming distance",
                "audio": f"spectral-peak landmark hashing (Wang 2003) at {fp.FP_RATE} Hz, "
                f"{fp.N_FFT}-point STFT, hop {fp.HOP}; offset-consistent votes in a 2-frame window",
            },
            "files": FILES,
            "created_with": f"seeing-sound {__version__}",
        },
    )
    write_text(out / FILES["md"], _markdown(report, cfg, images, audio))


def _thumb(path: str, side: int = 192) -> Any:
    import numpy as np
    from PIL import Image

    try:
        source = open_ref(path)  # a file, or bytes from a shard or table
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            im = img.convert("RGB")
    except (OSError, ValueError):
        return np.full((side, side, 3), 200, np.uint8)
    im.thumbnail((side, side))
    return np.asarray(im)


def contact_sheet(rows: list[dict[str, Any]], path: Path, limit: int = 24) -> None:
    """Flagged image pairs, benchmark frame above training image, scores in the title; a note when none."""
    plt = pyplot()
    shown = [r for r in rows if r["flagged"]][:limit]
    if not shown:
        fig, ax = plt.subplots(figsize=(4.0, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no near-duplicate images", ha="center", va="center", fontsize=11)
        save_figure(fig, path)
        return
    cols = min(8, len(shown))
    blocks = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(1.9 * cols, 4.1 * blocks), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.axis("off")
    for n, r in enumerate(shown):
        row, col = 2 * (n // cols), n % cols
        top, bottom = axes[row][col], axes[row + 1][col]
        top.imshow(_thumb(r["bench_image"]))
        bottom.imshow(_thumb(r["train_image_path"]))
        clip = "-" if r["clip_cosine"] is None else f"{r['clip_cosine']:.3f}"
        top.set_title(f"cos {clip} | ham {r['phash_distance']}", fontsize=7, color="tab:red")
        top.text(
            0.5,
            -0.06,
            f"{r['benchmark']}: {r['bench_item']}"[:30],
            transform=top.transAxes,
            ha="center",
            va="top",
            fontsize=6,
        )
        bottom.text(
            0.5, -0.06, f"train: {r['train_image']}"[:30], transform=bottom.transAxes, ha="center", va="top", fontsize=6
        )
    fig.suptitle(
        f"Near-duplicate images: benchmark frame (top) / training image (below); {len(shown)} shown", fontsize=9
    )
    save_figure(fig, path)


def _markdown(report: LeakageReport, cfg: LeakageConfig, images: list[dict], audio: list[dict]) -> str:
    counts = markdown_table(
        [
            (
                b["name"],
                b["items"],
                b["images_flagged"],
                b["image_pairs"],
                b["audio_flagged"],
                b["audio_pairs"],
                b["items_flagged"],
            )
            for b in report.benchmarks
        ],
        ["benchmark", "items", "frames flagged", "image pairs", "tracks flagged", "audio pairs", "items flagged"],
    )
    top_img = markdown_table(
        [
            (
                r["benchmark"],
                r["bench_item"],
                r["train_image"],
                "-" if r["clip_cosine"] is None else f"{r['clip_cosine']:.4f}",
                r["phash_distance"],
                r["flagged_by"],
            )
            for r in images
            if r["flagged"]
        ][:20],
        ["benchmark", "item", "training image", "CLIP cosine", "phash distance", "flagged by"],
    )
    top_aud = markdown_table(
        [
            (
                r["benchmark"],
                r["bench_item"],
                r["train_audio"],
                r["votes"],
                f"{r['concentration']:.2f}",
                f"{r['offset_s']:+.3f}",
            )
            for r in audio
            if r["flagged"]
        ][:20],
        ["benchmark", "item", "training clip", "votes", "concentration", "offset (s)"],
    )
    t = report.train
    return (
        "# Train/benchmark leakage check\n\n"
        f"- training data: `{t['root']}` ({t['kind']}): {t['images']} images, {t['audio']} audio clips "
        f"({t['audio_source'] or 'no audio'})\n"
        f"- images: {cfg.image_method} rule; CLIP `{cfg.clip}` cosine >= {cfg.clip_threshold}, "
        f"phash Hamming <= {cfg.phash_distance} of 64\n"
        f"- audio: landmark fingerprints; >= {cfg.min_votes} offset-consistent hashes with concentration "
        f">= {cfg.min_concentration}\n"
        f"- exclusions: {len(report.exclude_images)} images, {len(report.exclude_chunks)} chunks, "
        f"{len(report.exclude_pairs)} pairs\n\n"
        f"{counts}\n\n## Flagged image pairs\n\n{top_img}\n\n## Flagged audio pairs\n\n{top_aud}\n\n"
        "![contact sheet](contact_sheet.png)\n"
    )
