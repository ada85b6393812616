"""HTML pieces of the report: escaping helpers and one pair's card (image, mixture, components).

Every value shown goes through ``html.escape`` (concepts come from a VLM and captions from the
web; treat them as hostile), every link is a relative, URL-quoted path from the page's folder.

Each component is rendered on its own at the gain it has in the mixture
(``render_mixture(chunk[None], [gain_db], mixture_gain_db)``), so listening to the parts and the
whole tells a person how the mixture was built. Those files go to ``DIR/report/components/``, the
spectrogram thumbnails of mixtures and components to ``DIR/report/spectrograms/``. Only the first
``max_audio_per_page`` pairs of a page get players and thumbnails (the rest: metadata and a link),
so a page of a big shard opens fast and the report does not render the whole dataset's audio.
"""

from __future__ import annotations

import hashlib
import html
import io
import logging
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np

from seeing_sound.audio.mix import render_mixture
from seeing_sound.dataset import PairsDataset
from seeing_sound.dataset.audio_files import encode, quantize_pcm16, read_pcm16
from seeing_sound.dataset.image_store import is_folder_root, open_store
from seeing_sound.dataset.paths import UnsafePathError, safe_join
from seeing_sound.engine import atomic_write, reraise_environment
from seeing_sound.imaging import open_image, to_rgb
from seeing_sound.report.spectrogram import spectrogram_png

log = logging.getLogger(__name__)

COMPONENTS_REL = "report/components"
SPECTROGRAMS_REL = "report/spectrograms"
#: thumbnails of images read in place from tar shards or tables (a page cannot link into a shard)
IMAGES_REL = "report/images"


def e(value) -> str:
    """Escape anything for HTML text or a quoted attribute; None shows as a dash."""
    return "&mdash;" if value is None else html.escape(str(value), quote=True)


def num(value, fmt: str, unit: str = "") -> str:
    if value is None:
        return "&mdash;"
    return e(f"{value:{fmt}}{unit}")


def href(target: Path, base: Path) -> str | None:
    """Relative, URL-quoted link from folder ``base`` to ``target`` (None where none exists,
    e.g. another drive on Windows). Quoting keeps '#', '?', '%' and spaces in names working."""
    try:
        rel = os.path.relpath(target, base)
    except ValueError:
        return None
    return quote(Path(rel).as_posix(), safe="/")


def missing(text: str) -> str:
    return f'<div class="missing">{e(text)}</div>'


def kv(obj) -> str:
    """A dict (nested dicts and lists allowed) as an escaped definition list."""
    if isinstance(obj, dict):
        if not obj:
            return "none"
        items = "".join(f"<dt>{e(k)}</dt><dd>{kv(v)}</dd>" for k, v in obj.items())
        return f'<dl class="kv">{items}</dl>'
    if isinstance(obj, (list, tuple)):
        return ", ".join(kv(v) for v in obj) if obj else "none"
    if isinstance(obj, float):
        return e(f"{obj:g}")
    return e(obj)


class PairRenderer:
    """Renders pairs for pages in folder ``base``; writes component audio and thumbnails under ``out``."""

    def __init__(self, ds: PairsDataset, pool, out: Path, base: Path):
        self.ds, self.pool, self.out, self.base = ds, pool, out, base.resolve()
        self.written: set[str] = set()  # file names under report/components and report/spectrograms
        self.skipped: dict[str, int] = {}
        self._folders: dict[tuple[Path, str], Path] = {}

    def join(self, root: Path, rel: str | None) -> Path:
        """``safe_join(root, rel)``, resolving each folder once rather than every file (a report links
        thousands of files in a few folders; resolving is most of its time). The leaf is a plain
        name that is not a symlink, so it stays in its checked folder; anything else takes the full check."""
        rel = rel or ""
        parent, _, name = rel.rpartition("/")
        if rel.startswith("/") or name in ("", ".", "..") or any(ch in name for ch in "\\:\x00"):
            return safe_join(root, rel)
        key = (root, parent)
        if key not in self._folders:
            self._folders[key] = safe_join(root, parent) if parent else Path(root).resolve()
        target = self._folders[key] / name
        return safe_join(root, rel) if target.is_symlink() else target

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def _write(self, rel: str, data: bytes) -> Path:
        path = self.out / rel
        with atomic_write(path) as fh:
            fh.write(data)
        self.written.add(Path(rel).name)
        return path

    def _inplace(self, name: str | None) -> str | None:
        """A thumbnail written into the report for an image that lives in a shard or table, or None."""
        if not name:
            return None
        try:
            source = open_store(self.ds.images_spec).source(name)
            with open_image(source) as img:
                img.thumbnail((512, 512))
                buf = io.BytesIO()
                to_rgb(img).save(buf, format="JPEG", quality=85)
        except Exception as exc:  # a missing or broken image is a missing thumbnail, never a failed page
            reraise_environment(exc)
            return None
        stem = hashlib.sha256(name.encode()).hexdigest()[:20]  # a name from data never becomes a path
        return href(self._write(f"{IMAGES_REL}/{stem}.jpg", buf.getvalue()), self.base)

    def image(self, row: dict) -> str:
        if not is_folder_root(self.ds.images_spec):
            link = self._inplace(row.get("image_path"))
            if link is None:
                self.skip("image_missing")
                return missing(f"image not found: {row.get('image_path')}")
            return f'<img src="{e(link)}" alt="{e(row.get("image_id"))}" loading="lazy">'
        try:
            path = self.join(self.ds.images_root, row.get("image_path"))
        except UnsafePathError:  # the error names the absolute root; the page shows only the metadata value
            self.skip("image_path_refused")
            return missing(f"image path refused (absolute or outside the images root): {row.get('image_path')}")
        link = href(path, self.base) if path.is_file() else None
        if link is None:
            self.skip("image_missing")
            return missing(f"image not found: {row.get('image_path')}")
        return f'<img src="{e(link)}" alt="{e(row.get("image_id"))}" loading="lazy">'

    def audio(self, path: Path, label: str) -> str:
        link = href(path, self.base) if path.is_file() else None
        if link is None:
            return missing(f"{label}: audio file not found")
        return f'<audio controls preload="none" src="{e(link)}" title="{e(label)}"></audio>'

    def thumb(self, stem: str, x: np.ndarray, label: str) -> str:
        path = self._write(f"{SPECTROGRAMS_REL}/{stem}.png", spectrogram_png(x))
        return f'<img class="spec" src="{e(href(path, self.base))}" alt="{e(label)}" loading="lazy">'

    def mixture(self, stem: str, row: dict, rich: bool) -> str:
        try:
            path = self.join(self.ds.root, row.get("audio_path"))
        except UnsafePathError:
            self.skip("audio_path_refused")
            return missing(f"mixture path refused (absolute or outside the dataset): {row.get('audio_path')}")
        gain = num(row.get("mixture_gain_db") or 0.0, ".2f", " dB")
        head = f'<strong>Mixture</strong> <span class="muted">(whole-mixture gain {gain})</span>'
        if not rich:
            link = href(path, self.base) if path.is_file() else None
            body = f'<a href="{e(link)}">mixture audio</a>' if link else missing("mixture: audio file not found")
            return f'<div class="mixture">{head} {body}</div>'
        spec = ""
        if path.is_file():
            try:
                pcm, _ = read_pcm16(path)
                x = pcm.astype(np.float32) / 32767.0
                spec = self.thumb(stem, x.mean(axis=1) if x.ndim == 2 else x, "mixture spectrogram")
            except Exception as exc:  # a damaged file: the player shows it, the thumbnail is skipped
                self.skip("mixture_unreadable")
                log.warning("report: mixture %s unreadable: %s", stem, exc)
        return f'<div class="mixture">{head}<br>{self.audio(path, "mixture")}{spec}</div>'

    def component_audio(self, stem: str, comp: dict, mixture_gain_db: float) -> str:
        """Render one component at its recorded gain to ``report/components/<stem>.wav`` (+ thumbnail)."""
        try:
            if comp.get("chunk_id") is None or comp.get("gain_db") is None:
                raise ValueError("no chunk id or gain recorded")
            chunk = self.pool.chunk(int(comp["chunk_id"]))
            x = render_mixture(chunk[None], np.array([float(comp["gain_db"])]), mixture_gain_db)
        except (IndexError, ValueError, OSError) as exc:
            self.skip("component_unrenderable")
            log.warning("report: component %s not rendered: %s", stem, exc)
            # an OSError names the pool's absolute path: keep it in the log, off the page
            return missing(
                "not rendered: pool chunk unreadable" if isinstance(exc, OSError) else f"not rendered: {exc}"
            )
        path = self._write(f"{COMPONENTS_REL}/{stem}.wav", encode(quantize_pcm16(x), self.pool.sample_rate, "wav"))
        return self.audio(path, f"component {stem}") + self.thumb(stem, x, f"component {stem} spectrogram")

    def components(self, stem: str, row: dict, rich: bool) -> str:
        comps = row.get("components") or []
        if not comps:
            return missing("no components recorded")
        mix_gain = float(row.get("mixture_gain_db") or 0.0)
        body = []
        for k, c in enumerate(comps):
            concept = (
                f'<div class="concept">{e(c.get("concept"))}</div>'
                f'<div><span class="tag">object</span>{e(c.get("object"))}</div>'
                f'<div><span class="tag">sound</span>{e(c.get("sound"))}</div>'
                f'<div class="muted">model: {e(c.get("model"))}</div>'
            )
            chunk = (
                f"<div>{e(c.get('chunk_description'))}</div>"
                f'<div class="muted">{e(c.get("chunk_source"))} @ {num(c.get("chunk_offset_s"), "g", " s")}'
                f" &middot; chunk {e(c.get('chunk_id'))}</div>"
            )
            scores = (
                f"cosine {num(c.get('cosine'), '.3f')}<br>SSR {num(c.get('score'), '.3f')}"
                f"<br>threshold {num(c.get('threshold'), '.3f')}<br>|I| {num(c.get('n_candidates'), 'd')}"
            )
            loud = (
                f"chunk {num(c.get('chunk_lufs'), '.1f', ' LUFS')}"
                f"<br>target {num(c.get('target_lufs'), '.1f', ' LUFS')}"
                f"<br>gain {num(c.get('gain_db'), '+.2f', ' dB')}"
            )
            player = self.component_audio(f"{stem}-{k}", c, mix_gain) if rich else ""
            body.append(
                f'<tr><td class="num">{k}</td><td>{concept}</td><td>{chunk}</td><td class="num">{scores}</td>'
                f'<td class="num">{loud}</td><td>{player}</td></tr>'
            )
        listen = "Listen" if rich else '<span class="muted">not rendered (--max-audio-per-page)</span>'
        head = (
            f"<tr><th>#</th><th>Concept</th><th>Chosen chunk</th><th>Scores</th><th>Loudness</th><th>{listen}</th></tr>"
        )
        return f'<table class="components">{head}{"".join(body)}</table>'

    def pair(self, stem: str, row: dict, rich: bool) -> str:
        """One pair's card; ``id`` is the stem (``shard-000000-000003``), the search's link target."""
        return (
            f'<article class="pair" id="{e(stem)}"><div class="image">{self.image(row)}</div>'
            f"<div><h3>{e(row.get('image_id'))}</h3>"
            f'<div class="muted">pair {e(row.get("pair_id"))} &middot; {e(row.get("image_path"))} &middot; '
            f"seed {e(row.get('seed'))}</div>"
            f"{self.mixture(stem, row, rich)}{self.components(stem, row, rich)}</div></article>"
        )

    def thumbnail(self, row: dict, base: Path) -> str:
        """A small <img> for a filtered image when its file is found inside the dataset's images root.

        The root comes from the dataset card, never from the row: a crafted ``root`` column
        must not make the page link arbitrary files."""
        if not is_folder_root(self.ds.images_spec):
            link = self._inplace(row.get("path"))
            return f'<img class="thumb" src="{e(link)}" alt="{e(row.get("image_id"))}" loading="lazy">' if link else ""
        try:
            path = safe_join(self.ds.images_root, row.get("path") or "")
        except UnsafePathError:
            return ""
        link = href(path, base.resolve()) if path.is_file() else None
        return f'<img class="thumb" src="{e(link)}" alt="{e(row.get("image_id"))}" loading="lazy">' if link else ""
