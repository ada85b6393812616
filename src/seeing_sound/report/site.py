"""The static dataset browser: ``DIR/index.html`` and one page per metadata shard.

```text
DIR/index.html                         summary plots, search by concept, the pages, dropped images
DIR/report/index.js                    the search index (window.SEEING_SOUND_INDEX = {...})
DIR/report/search.js                   the search code (textContent only)
DIR/report/pages/shard-000000.html     the shard's pairs: image, mixture, components (no script)
DIR/report/components/*.wav            each component alone at its mixture gain
DIR/report/spectrograms/*.png          thumbnails of mixtures and components
```

It opens from disk (``file://``) with no server and no network: links are relative, data is
loaded with ``<script src>`` (``fetch()`` of local files is refused there). Shards are read one at a
time and only ``max_audio_per_page`` pairs per page get audio and thumbnails, so memory and time
follow one shard, not the dataset.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from seeing_sound.dataset import PairsDataset
from seeing_sound.dataset import layout as ds_layout
from seeing_sound.engine import atomic_write, command_run, shard_name
from seeing_sound.report.html import COMPONENTS_REL, SPECTROGRAMS_REL, PairRenderer, e, kv, missing
from seeing_sound.report.script import SEARCH_JS
from seeing_sound.report.style import CSS
from seeing_sound.report.summary import SummaryStats

log = logging.getLogger(__name__)

PAGES_REL = "report/pages"
INDEX_JS_REL = "report/index.js"
SEARCH_JS_REL = "report/search.js"
MAX_DROPPED_ROWS = 200  # per table (filtered, failed) on the index page; the rest are counted
TOP_CONCEPTS = 12


def _js_json(obj) -> str:
    """JSON for a script file: ASCII only (no U+2028 surprises) and no '<' (no '</script>' either)."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")


def _html_page(title: str, body: str, scripts: tuple[str, ...] = ()) -> bytes:
    tags = "".join(f'<script src="{e(s)}"></script>' for s in scripts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{CSS}</style>
</head>
<body>
{body}
{tags}</body>
</html>
""".encode()


def _nav(k: int, names: list[str]) -> str:
    prev = f'<a href="{names[k - 1]}.html">&larr; {names[k - 1]}</a>' if k > 0 else ""
    nxt = f'<a href="{names[k + 1]}.html">{names[k + 1]} &rarr;</a>' if k + 1 < len(names) else ""
    return (
        f'<nav><a href="../../index.html">index</a> &middot; page {k + 1} of {len(names)} &middot; {prev} {nxt}</nav>'
    )


def _read_images(root: Path, failed: list[dict], filtered: list[dict], problems: list[str]) -> Counter:
    """Stream ``DATASET/images/shard-*.parquet``: keep the first rows of each kind, count them all."""
    counts: Counter = Counter()
    for f in sorted((root / "images").glob("shard-*.parquet")):
        try:
            rows = pq.read_table(f).to_pylist()
        except Exception as exc:  # a damaged side table must not cost the whole page
            log.warning("report: cannot read %s: %s", f, exc)
            problems.append(f"{f.name}: {exc}")
            continue
        counts["rows"] += len(rows)
        for x in rows:
            kind, keep = (
                ("failed", failed) if x.get("error") else ("filtered", filtered) if x.get("filtered") else ("", None)
            )
            if keep is not None:
                counts[kind] += 1
                if len(keep) < MAX_DROPPED_ROWS:
                    keep.append(x)
    return counts


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _more(shown: int, total: int) -> str:
    return f'<p class="muted">First {shown} of {total} shown.</p>' if total > shown else ""


def _dropped_section(r: PairRenderer, out: Path) -> str:
    failed: list[dict] = []
    filtered: list[dict] = []
    problems: list[str] = []
    counts = _read_images(r.ds.root, failed, filtered, problems)
    parts = ['<section id="dropped"><h2>Filtered and failed images</h2>']
    if not counts["rows"] and not problems:
        parts.append(
            '<p class="muted">No image table in this dataset (images/shard-*.parquet); see the summary for counts.</p>'
        )
    parts += [missing(f"unreadable image table {p}") for p in problems]
    if counts["rows"]:
        parts.append(f"<h3>Filtered ({counts['filtered']})</h3>")
        if filtered:
            trs = "".join(
                f"<tr><td>{r.thumbnail(x, out)}</td><td>{e(x.get('image_id'))}"
                f'<div class="muted">{e(x.get("path"))}'
                f'</div></td><td><span class="tag">{e(x.get("filter_word"))}</span></td>'
                f"<td>{e(x.get('caption'))}</td></tr>"
                for x in filtered
            )
            parts.append(f"<table><tr><th></th><th>Image</th><th>Matched word</th><th>Caption</th></tr>{trs}</table>")
            parts.append(_more(len(filtered), counts["filtered"]))
        parts.append(f"<h3>Failed ({counts['failed']})</h3>")
        if failed:
            trs = "".join(
                f'<tr><td>{e(x.get("image_id"))}<div class="muted">{e(x.get("path"))}</div></td>'
                f'<td><span class="tag">{e(x.get("error"))}</span></td>'
                f"<td>{e(x.get('error_detail'))}</td></tr>"
                for x in failed
            )
            parts.append(f"<table><tr><th>Image</th><th>Reason</th><th>Detail</th></tr>{trs}</table>")
            parts.append(_more(len(failed), counts["failed"]))
    parts.append("</section>")
    return "".join(parts)


def _remove_stale(folder: Path, pattern: str, keep: set[str]) -> None:
    """Drop files a previous, larger report left behind (only our own ``shard-*`` names)."""
    if folder.is_dir():
        for f in folder.glob(pattern):
            if f.name not in keep:
                f.unlink()


def _check_limit(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be None or an integer >= 0, got {value!r}")


def write_report(
    dataset: str | Path,
    pool: str | Path,
    out_dir: str | Path,
    *,
    title: str = "seeing-sound dataset",
    max_pairs: int | None = None,
    summary: dict | None = None,
    max_audio_per_page: int | None = 50,
) -> Path:
    """Write the dataset browser (``out_dir/index.html`` and ``out_dir/report/``) for a pairs dataset.

    Args:
        dataset: a pairs dataset folder (``dataset.json`` + metadata + audio).
        pool: the audio pool the dataset was built from (the components are re-rendered from it).
        out_dir: where the pages go; links to images and mixtures are relative to it.
        max_pairs: show only the first N pairs (None: all).
        summary: a run summary (e.g. ``SonifyReport.to_dict()``); default: the card's counts.
        max_audio_per_page: the first N pairs of each page get audio players, rendered components
            and spectrogram thumbnails; the others show their metadata and a link to the mixture
            (None: every pair; 0: a metadata-only report).
    Returns:
        The path of ``index.html``. Same inputs give byte-identical files.
    """
    from seeing_sound.pool import AudioPool

    _check_limit("max_pairs", max_pairs)
    _check_limit("max_audio_per_page", max_audio_per_page)
    # index.html and report/ are the report's own names: the dataset may sit inside out_dir (the demo's layout)
    with command_run("report", out_dir, inputs={"dataset": dataset, "pool": pool}, nested_ok=True):
        ds = PairsDataset.open(dataset)
        audio_pool = AudioPool.open(pool)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        r = PairRenderer(ds, audio_pool, out, out / PAGES_REL)
        stats = SummaryStats(len(audio_pool))
        limit = len(ds) if max_pairs is None else min(max_pairs, len(ds))
        plan, left = [], limit  # (shard index, rows to show); shards past max_pairs get no page
        for s in ds.card["shards"]:
            if left <= 0:
                break
            plan.append((int(s["index"]), min(int(s["pairs"]), left)))
            left -= plan[-1][1]
        names = [shard_name(i) for i, _ in plan]
        vocab: dict[str, int] = {}
        uses: Counter[int] = Counter()
        # 1. one page per shard, one shard in memory at a time; the index's entries stream to its file
        with atomic_write(out / INDEX_JS_REL) as js:
            js.write(b'window.SEEING_SOUND_INDEX={"pairs":[')
            first = True
            for k, ((shard_index, n), name) in enumerate(zip(plan, names, strict=True)):
                table = pq.read_table(ds.root / ds_layout.metadata_rel(shard_index)).slice(0, n)
                stats.add(table)
                cards = []
                for j, row in enumerate(table.to_pylist()):
                    rich = max_audio_per_page is None or j < max_audio_per_page
                    cards.append(r.pair(f"{name}-{j:06d}", row, rich))
                    comps = row.get("components") or []
                    cids = sorted(
                        {vocab.setdefault(str(c["concept"]), len(vocab)) for c in comps if c.get("concept") is not None}
                    )
                    uses.update(cids)
                    entry = [k, j, str(row.get("pair_id") or row.get("image_id") or ""), cids]
                    js.write((b"" if first else b",") + _js_json(entry).encode())
                    first = False
                body = (
                    f"<header><h1>{e(title)}</h1>{_nav(k, names)}"
                    f'<p class="muted">{table.num_rows} pairs of metadata shard {e(name)}.</p></header>'
                    f'<main><section id="pairs">{chr(10).join(cards) if cards else missing("No pairs.")}</section>'
                    f"{_nav(k, names)}</main>"
                )
                with atomic_write(out / PAGES_REL / f"{name}.html") as fh:
                    fh.write(_html_page(f"{title} - {name}", body))
            concepts = sorted(vocab, key=vocab.__getitem__)
            js.write(f'],"pages":{_js_json(names)},"concepts":{_js_json(concepts)}}};\n'.encode())
        with atomic_write(out / SEARCH_JS_REL) as fh:
            fh.write(SEARCH_JS.encode())
        _remove_stale(out / PAGES_REL, "shard-*.html", {f"{n}.html" for n in names})
        _remove_stale(out / COMPONENTS_REL, "shard-*.wav", r.written)
        _remove_stale(out / SPECTROGRAMS_REL, "shard-*.png", r.written)

        # 2. the index page: summary plots, search, the pages, dropped images, run summary, settings
        dropped = _dropped_section(r, out)
        index = out / "index.html"
        with atomic_write(index) as fh:  # bytes: UTF-8 whatever the locale says
            top = [concepts[c] for c, _ in uses.most_common(TOP_CONCEPTS)]
            body = _index_body(r, title, shown=limit, plan=plan, names=names, stats=stats, top=top, dropped=dropped,
                               summary=summary)  # fmt: skip
            fh.write(_html_page(title, body, (INDEX_JS_REL, SEARCH_JS_REL)))
        log.info("report: %d pairs on %d pages, %d files rendered -> %s", limit, len(names), len(r.written), index)
        return index


def _index_body(r: PairRenderer, title: str, *, shown: int, plan, names, stats: SummaryStats, top: list[str],
                dropped: str, summary: dict | None) -> str:  # fmt: skip
    ds = r.ds
    if summary is None and ds.card.get("counts"):
        summary_html = f'<p class="muted">From dataset.json.</p>{kv(ds.card["counts"])}'
    else:
        summary_html = kv(summary) if summary is not None else '<p class="muted">No summary given.</p>'
    skipped_text = ", ".join(f"{k}: {v}" for k, v in sorted(r.skipped.items()))
    skipped = f'<p class="missing">Not shown or not rendered: {e(skipped_text)}</p>' if r.skipped else ""
    params = ds.card.get("params")
    settings = f'<section id="settings"><h2>Settings</h2>{kv(params)}</section>' if params else ""
    try:
        dataset_rel = Path(os.path.relpath(ds.root.resolve(), r.out.resolve())).as_posix()
    except ValueError:
        dataset_rel = ds.root.name
    f = stats.facts()
    facts = {
        "pairs shown": f"{shown} of {len(ds)}",
        "pages": len(names),
        "components": f["components"],
        "pool chunks used": f"{f['chunks_used']} of {f['pool_chunks']} (the most used one: {f['max_uses']}x)",
        "mean candidate-set size |I|": "not recorded"
        if f["mean_candidates"] is None
        else f"{f['mean_candidates']:.2f}",
    }
    if f["outside_pool"]:
        facts["chunk ids not in the pool"] = f["outside_pool"]
    plots = "".join(f'<figure class="plot">{svg}</figure>' for svg in stats.plots())
    chips = "".join(
        f'<button type="button" class="chip" data-q="{e(c)}" title="{e(c)}">{e(_short(c))}</button>' for c in top
    )
    rows = "".join(
        f'<tr><td><a href="{PAGES_REL}/{name}.html">{name}</a></td><td class="num">{n}</td></tr>'
        for name, (_, n) in zip(names, plan, strict=True)
    )
    return f"""<header><h1>{e(title)}</h1>
<p class="muted">{shown} of {len(ds)} pairs on {_plural(len(names), "page")} &middot;
dataset folder <code>{e(dataset_rel)}</code> &middot; seeing-sound {e(ds.card.get("seeing_sound_version"))}
&middot; {e(ds.card.get("sample_rate"))} Hz,
{e(ds.card.get("audio_format"))}. Each component plays at the gain it has in the mixture.</p>{skipped}</header>
<main>
<section id="overview"><h2>Overview</h2>{kv(facts)}<div class="plots">{plots}</div></section>
<section id="find"><h2>Search by concept</h2>
<input id="search" type="search" placeholder="e.g. dog, rain, engine" autocomplete="off" aria-label="concept text">
<div class="chips">{chips}</div>
<p id="search-status" class="muted">Search needs JavaScript; the pages below work without it.</p>
<ol id="results"></ol></section>
<section id="pages"><h2>Pages</h2><table><tr><th>Metadata shard</th><th>Pairs</th></tr>{rows}</table></section>
{dropped}
<section id="summary"><h2>Run summary</h2>{summary_html}</section>
{settings}
</main>"""
