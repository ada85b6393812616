"""A static HTML browser for a pairs dataset: ``DIR/index.html`` (issue 5's demo page).

The page shows every pair's image, its concepts, the chunk retrieved for each concept with its
scores and loudness, an audio player per component and one for the mixture, then the images the
filter dropped and the ones that failed. It opens from disk with no server and no script: every
link is a relative path from the page's folder, and every value shown goes through
``html.escape`` (concepts come from a VLM and captions from the web; treat them as hostile).

Each component is rendered on its own at the gain it has in the mixture
(``render_mixture(chunk[None], [gain_db], mixture_gain_db)``), so listening to the parts and the
whole tells a person how the mixture was built. Those files go to ``DIR/report/components/``.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pyarrow.parquet as pq

from seeing_sound.audio.mix import render_mixture
from seeing_sound.dataset import PairsDataset
from seeing_sound.dataset.audio_files import encode, quantize_pcm16
from seeing_sound.dataset.paths import UnsafePathError, safe_join
from seeing_sound.engine import atomic_write, shard_name
from seeing_sound.report.style import CSS

log = logging.getLogger(__name__)

COMPONENTS_REL = "report/components"


def _e(value) -> str:
    """Escape anything for HTML text or a quoted attribute; None shows as a dash."""
    return "&mdash;" if value is None else html.escape(str(value), quote=True)


def _num(value, fmt: str, unit: str = "") -> str:
    if value is None:
        return "&mdash;"
    return _e(f"{value:{fmt}}{unit}")


def _href(target: Path, base: Path) -> str | None:
    """Relative, URL-quoted link from folder ``base`` to ``target`` (None where none exists,
    e.g. another drive on Windows). Quoting keeps '#', '?', '%' and spaces in names working."""
    try:
        rel = os.path.relpath(target, base)
    except ValueError:
        return None
    return quote(Path(rel).as_posix(), safe="/")


def _missing(text: str) -> str:
    return f'<div class="missing">{_e(text)}</div>'


def _kv(obj) -> str:
    """A dict (nested dicts and lists allowed) as an escaped definition list."""
    if isinstance(obj, dict):
        if not obj:
            return "none"
        items = "".join(f"<dt>{_e(k)}</dt><dd>{_kv(v)}</dd>" for k, v in obj.items())
        return f'<dl class="kv">{items}</dl>'
    if isinstance(obj, (list, tuple)):
        return ", ".join(_kv(v) for v in obj) if obj else "none"
    if isinstance(obj, float):
        return _e(f"{obj:g}")
    return _e(obj)


class _Renderer:
    """Holds what every pair needs: the dataset, the pool, the output folder, the counts."""

    def __init__(self, ds: PairsDataset, pool, out: Path):
        self.ds, self.pool, self.out = ds, pool, out
        self.base = out.resolve()
        self.written: set[str] = set()
        self.skipped: dict[str, int] = {}

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def image(self, i: int, row: dict) -> str:
        try:
            path = self.ds.image_path(i)
        except UnsafePathError:  # the error names the absolute root; the page shows only the metadata value
            self._skip("image_path_refused")
            return _missing(f"image path refused (absolute or outside the images root): {row.get('image_path')}")
        href = _href(path, self.base) if path.is_file() else None
        if href is None:
            self._skip("image_missing")
            return _missing(f"image not found: {row.get('image_path')}")
        return f'<img src="{_e(href)}" alt="{_e(row.get("image_id"))}" loading="lazy">'

    def audio(self, path: Path, label: str) -> str:
        href = _href(path, self.base) if path.is_file() else None
        if href is None:
            return _missing(f"{label}: audio file not found")
        return f'<audio controls preload="none" src="{_e(href)}" title="{_e(label)}"></audio>'

    def mixture(self, i: int, row: dict) -> str:
        try:
            path = self.ds.audio_path(i)
        except UnsafePathError:
            self._skip("audio_path_refused")
            return _missing(f"mixture path refused (absolute or outside the dataset): {row.get('audio_path')}")
        gain = row.get("mixture_gain_db") or 0.0
        return (
            f'<div class="mixture"><strong>Mixture</strong> <span class="muted">(whole-mixture gain '
            f"{_num(gain, '.2f', ' dB')})</span><br>{self.audio(path, 'mixture')}</div>"
        )

    def component_audio(self, stem: str, comp: dict, mixture_gain_db: float) -> str:
        """Render one component at its recorded gain to ``report/components/<stem>.wav``."""
        try:
            if comp.get("chunk_id") is None or comp.get("gain_db") is None:
                raise ValueError("no chunk id or gain recorded")
            chunk = self.pool.chunk(int(comp["chunk_id"]))
            x = render_mixture(chunk[None], np.array([float(comp["gain_db"])]), mixture_gain_db)
        except (IndexError, ValueError, OSError) as exc:
            self._skip("component_unrenderable")
            log.warning("report: component %s not rendered: %s", stem, exc)
            # an OSError names the pool's absolute path: keep it in the log, off the page
            return _missing(
                "not rendered: pool chunk unreadable" if isinstance(exc, OSError) else f"not rendered: {exc}"
            )
        rel = f"{COMPONENTS_REL}/{stem}.wav"
        with atomic_write(self.out / rel) as fh:
            fh.write(encode(quantize_pcm16(x), self.pool.sample_rate, "wav"))
        self.written.add(f"{stem}.wav")
        return self.audio(self.out / rel, f"component {stem}")

    def components(self, stem: str, row: dict) -> str:
        comps = row.get("components") or []
        if not comps:
            return _missing("no components recorded")
        mix_gain = float(row.get("mixture_gain_db") or 0.0)
        body = []
        for k, c in enumerate(comps):
            concept = (
                f'<div class="concept">{_e(c.get("concept"))}</div>'
                f'<div><span class="tag">object</span>{_e(c.get("object"))}</div>'
                f'<div><span class="tag">sound</span>{_e(c.get("sound"))}</div>'
                f'<div class="muted">model: {_e(c.get("model"))}</div>'
            )
            chunk = (
                f"<div>{_e(c.get('chunk_description'))}</div>"
                f'<div class="muted">{_e(c.get("chunk_source"))} @ {_num(c.get("chunk_offset_s"), "g", " s")}'
                f" &middot; chunk {_e(c.get('chunk_id'))}</div>"
            )
            scores = (
                f"cosine {_num(c.get('cosine'), '.3f')}<br>SSR {_num(c.get('score'), '.3f')}"
                f"<br>threshold {_num(c.get('threshold'), '.3f')}"
            )
            loud = (
                f"chunk {_num(c.get('chunk_lufs'), '.1f', ' LUFS')}"
                f"<br>target {_num(c.get('target_lufs'), '.1f', ' LUFS')}"
                f"<br>gain {_num(c.get('gain_db'), '+.2f', ' dB')}"
            )
            player = self.component_audio(f"{stem}-{k}", c, mix_gain)
            body.append(
                f'<tr><td class="num">{k}</td><td>{concept}</td><td>{chunk}</td><td class="num">{scores}</td>'
                f'<td class="num">{loud}</td><td>{player}</td></tr>'
            )
        head = "<tr><th>#</th><th>Concept</th><th>Chosen chunk</th><th>Scores</th><th>Loudness</th><th>Listen</th></tr>"
        return f'<table class="components">{head}{"".join(body)}</table>'

    def pair(self, i: int, stem: str, row: dict) -> str:
        return (
            f'<article class="pair" id="{_e(row.get("pair_id"))}"><div class="image">{self.image(i, row)}</div>'
            f"<div><h3>{_e(row.get('image_id'))}</h3>"
            f'<div class="muted">{_e(row.get("image_path"))} &middot; seed {_e(row.get("seed"))}</div>'
            f"{self.mixture(i, row)}{self.components(stem, row)}</div></article>"
        )

    def thumbnail(self, row: dict) -> str:
        """A small <img> for a filtered image when its file is found inside the dataset's images root.

        The root comes from the dataset card, never from the row: a crafted ``root`` column
        must not make the page link arbitrary files."""
        try:
            path = safe_join(self.ds.images_root, row.get("path") or "")
        except UnsafePathError:
            return ""
        href = _href(path, self.base) if path.is_file() else None
        return f'<img class="thumb" src="{_e(href)}" alt="{_e(row.get("image_id"))}">' if href else ""


def _read_images(root: Path) -> tuple[list[dict], list[str]]:
    """Rows of ``DATASET/images/shard-*.parquet`` (absent: none) and any files that would not read."""
    rows, problems = [], []
    for f in sorted((root / "images").glob("shard-*.parquet")):
        try:
            rows.extend(pq.read_table(f).to_pylist())
        except Exception as exc:  # a damaged side table must not cost the whole page
            log.warning("report: cannot read %s: %s", f, exc)
            problems.append(f"{f.name}: {exc}")
    return rows, problems


def _dropped_section(r: _Renderer) -> str:
    rows, problems = _read_images(r.ds.root)
    failed = [x for x in rows if x.get("error")]
    filtered = [x for x in rows if not x.get("error") and x.get("filtered")]
    parts = ['<section id="dropped"><h2>Filtered and failed images</h2>']
    if not rows and not problems:
        parts.append(
            '<p class="muted">No image table in this dataset (images/shard-*.parquet); see the summary for counts.</p>'
        )
    parts += [_missing(f"unreadable image table {p}") for p in problems]
    if rows:
        parts.append(f"<h3>Filtered ({len(filtered)})</h3>")
        if filtered:
            trs = "".join(
                f"<tr><td>{r.thumbnail(x)}</td><td>{_e(x.get('image_id'))}"
                f'<div class="muted">{_e(x.get("path"))}'
                f'</div></td><td><span class="tag">{_e(x.get("filter_word"))}</span></td>'
                f"<td>{_e(x.get('caption'))}</td></tr>"
                for x in filtered
            )
            parts.append(f"<table><tr><th></th><th>Image</th><th>Matched word</th><th>Caption</th></tr>{trs}</table>")
        parts.append(f"<h3>Failed ({len(failed)})</h3>")
        if failed:
            trs = "".join(
                f'<tr><td>{_e(x.get("image_id"))}<div class="muted">{_e(x.get("path"))}</div></td>'
                f'<td><span class="tag">{_e(x.get("error"))}</span></td>'
                f"<td>{_e(x.get('error_detail'))}</td></tr>"
                for x in failed
            )
            parts.append(f"<table><tr><th>Image</th><th>Reason</th><th>Detail</th></tr>{trs}</table>")
    parts.append("</section>")
    return "".join(parts)


def _remove_stale(comp_dir: Path, keep: set[str]) -> None:
    """Drop component files a previous, larger report left behind (only our own *.wav names)."""
    if comp_dir.is_dir():
        for f in comp_dir.glob("shard-*.wav"):
            if f.name not in keep:
                f.unlink()


def write_report(
    dataset: str | Path,
    pool: str | Path,
    out_dir: str | Path,
    *,
    title: str = "seeing-sound dataset",
    max_pairs: int | None = None,
    summary: dict | None = None,
) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/report/components/*.wav`` for a pairs dataset.

    Args:
        dataset: a pairs dataset folder (``dataset.json`` + metadata + audio).
        pool: the audio pool the dataset was built from (the components are re-rendered from it).
        out_dir: where the page goes; links to images and mixtures are relative to it.
        max_pairs: show only the first N pairs (None: all).
        summary: a run summary (e.g. ``SonifyReport.to_dict()``); default: the card's counts.
    Returns:
        The path of ``index.html``. Same inputs give byte-identical files.
    """
    from seeing_sound.pool import AudioPool

    if max_pairs is not None and (not isinstance(max_pairs, int) or max_pairs < 0):
        raise ValueError(f"max_pairs must be None or an integer >= 0, got {max_pairs!r}")
    ds = PairsDataset.open(dataset)
    audio_pool = AudioPool.open(pool)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r = _Renderer(ds, audio_pool, out)
    shown = len(ds) if max_pairs is None else min(max_pairs, len(ds))
    rows = ds.metadata.slice(0, shown).to_pylist()
    pairs = []
    for k in range(ds.num_shards):
        shard_rows = ds.shard_rows(k)
        for i in shard_rows:
            if i >= shown:
                break
            stem = f"{shard_name(ds.card['shards'][k]['index'])}-{i - shard_rows[0]:06d}"
            pairs.append(r.pair(i, stem, rows[i]))
    _remove_stale(out / COMPONENTS_REL, r.written)

    if summary is None and ds.card.get("counts"):
        summary_html = f'<p class="muted">From dataset.json.</p>{_kv(ds.card["counts"])}'
    else:
        summary_html = _kv(summary) if summary is not None else '<p class="muted">No summary given.</p>'
    skipped_text = ", ".join(f"{k}: {v}" for k, v in sorted(r.skipped.items()))
    skipped = f'<p class="missing">Not shown or not rendered: {_e(skipped_text)}</p>' if r.skipped else ""
    params = ds.card.get("params")
    settings = f'<section id="settings"><h2>Settings</h2>{_kv(params)}</section>' if params else ""
    try:
        dataset_rel = Path(os.path.relpath(ds.root.resolve(), r.base)).as_posix()
    except ValueError:
        dataset_rel = ds.root.name
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{_e(title)}</h1>
<p class="muted">{shown} of {len(ds)} pairs shown &middot; dataset folder <code>{_e(dataset_rel)}</code> &middot;
seeing-sound {_e(ds.card.get("seeing_sound_version"))} &middot; {_e(ds.card.get("sample_rate"))} Hz,
{_e(ds.card.get("audio_format"))}. Each component plays at the gain it has in the mixture.</p>{skipped}</header>
<main>
<section id="pairs"><h2>Pairs</h2>
{chr(10).join(pairs) if pairs else '<p class="muted">No pairs.</p>'}
</section>
{_dropped_section(r)}
<section id="summary"><h2>Summary</h2>{summary_html}</section>
{settings}
</main>
</body>
</html>
"""
    index = out / "index.html"
    with atomic_write(index, "wb") as fh:  # bytes: UTF-8 whatever the locale says
        fh.write(page.encode("utf-8"))
    log.info("report: %d pairs, %d component files -> %s", shown, len(r.written), index)
    return index
