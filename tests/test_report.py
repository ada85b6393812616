"""The static dataset page: real pool, real dataset, real images; parsed, and driven in Chromium."""

import io
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from PIL import Image

from seeing_sound.audio.mix import mix_recipe, render_mixture
from seeing_sound.dataset import DatasetWriter
from seeing_sound.dataset.audio_files import quantize_pcm16
from seeing_sound.dataset.schema import METADATA
from seeing_sound.pool import AudioPool, build_pool
from seeing_sound.report import write_report
from seeing_sound.report.plots import bars_svg, int_bins
from seeing_sound.report.script import SEARCH_JS
from seeing_sound.report.spectrogram import COLORMAP, log_spectrogram, spectrogram_png, spectrogram_rgb
from seeing_sound.report.summary import SummaryStats
from seeing_sound.testing.signals import noise, tone, write_audio

SR = 16000
SCRIPT = "<script>alert(1)</script>"
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")


def _png(path: Path, color) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), color).save(path)


def _build(tmp: Path) -> dict:
    """A pool of 6 chunks, 3 pairs (good; odd file name; unsafe path + bad chunk id), an image table."""
    write_audio(tmp / "src/hum.wav", tone(10, SR, freq=220, amp=0.3), SR)
    write_audio(tmp / "src/hiss.wav", noise(10, SR, amp=0.1, seed=1), SR)
    write_audio(tmp / "src/bell.wav", tone(10, SR, freq=880, amp=0.2), SR)
    build_pool([tmp / "src"], tmp / "pool", progress=False)
    pool = AudioPool.open(tmp / "pool")
    m = pool.manifest.to_pydict()
    images = tmp / "images"
    _png(images / "cat.png", (200, 120, 40))
    _png(images / "sub dir/dog #1.png", (40, 120, 200))  # needs URL quoting to be found
    _png(images / "logo.png", (250, 250, 250))

    def comp(cid, concept, target, **kw):
        return {
            "concept_index": kw.pop("index", 0),
            "model": "tiny-vlm",
            "object": kw.pop("object", "thing"),
            "sound": kw.pop("sound", "hum"),
            "concept": concept,
            "chunk_id": cid,
            "chunk_source": m["source"][cid % len(pool)],
            "chunk_offset_s": 0.0,
            "chunk_description": f"chunk {cid} & <b>friends</b>",
            "cosine": 0.61,
            "score": 0.72,
            "threshold": 0.5,
            "chunk_lufs": m["loudness_lufs"][cid % len(pool)],
            "target_lufs": target,
        }

    recipes = [
        ("cat", "cat.png", [comp(0, "cat: purring", -23.0), comp(2, SCRIPT, -22.0, index=1, object=SCRIPT)]),
        ("dog", "sub dir/dog #1.png", [comp(4, "dog: barking", -24.0)]),
        ("evil", "../outside.png", [comp(1, "evil: nothing", -23.0)]),
    ]
    with DatasetWriter(tmp / "dataset", images, shard_size=2, audio_format="flac") as w:
        for n, (pid, path, comps) in enumerate(recipes):
            ids = [c["chunk_id"] for c in comps]
            gains, g_mix, audio = mix_recipe(
                pool.chunks(ids),
                np.array([c["chunk_lufs"] for c in comps]),
                np.array([c["target_lufs"] for c in comps]),
            )
            comps = [c | {"gain_db": float(g)} for c, g in zip(comps, gains, strict=True)]
            if pid == "evil":
                comps[0]["chunk_id"] = 999  # not in the pool: shown as not rendered, no crash
            w.add(
                pair_id=pid, image_id=pid, image_path=path, audio=audio, seed=n, components=comps, mixture_gain_db=g_mix
            )
    table = pa.Table.from_pylist(
        [
            {
                "image_id": "logo",
                "root": str(images),
                "path": "logo.png",
                "caption": "a company logo <i>ACME</i>",
                "filtered": True,
                "filter_word": "logo",
                "error": None,
                "error_detail": None,
            },
            {
                "image_id": "broken",
                "root": str(images),
                "path": "broken.jpg",
                "caption": None,
                "filtered": False,
                "filter_word": None,
                "error": "truncated",
                "error_detail": "<img src=x onerror=alert(2)>",
            },
        ]
    )
    (tmp / "dataset/images").mkdir()
    pq.write_table(table, tmp / "dataset/images/shard-000000.parquet")
    return {"pool": pool, "recipes": recipes}


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.title, self._in_title = [], [], None, False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_title and self.title is None:  # the page's, not an SVG plot's <title>
            self.title = data


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _target(base: Path, src: str) -> Path:
    parts = urlsplit(src)
    assert not parts.scheme and not parts.netloc and not src.startswith("/"), f"not a relative link: {src}"
    return base / unquote(parts.path)


def _pages(out: Path) -> list[Path]:
    return sorted((out / "report/pages").glob("shard-*.html"))


def _all(out: Path) -> list[tuple[Path, _Page]]:
    """index.html and every shard page, parsed."""
    return [(p, _parse(p)) for p in [out / "index.html", *_pages(out)]]


def _tags(out: Path, name: str) -> list[tuple[Path, dict]]:
    return [(p.parent, a) for p, page in _all(out) for t, a in page.tags if t == name]


def _text(out: Path) -> str:
    return " ".join(" ".join(t for _, page in _all(out) for t in page.text).split())


def _index_data(out: Path) -> dict:
    raw = (out / "report/index.js").read_text(encoding="ascii")
    prefix = "window.SEEING_SOUND_INDEX="
    assert raw.startswith(prefix) and raw.endswith(";\n")
    return json.loads(raw[len(prefix) : -2])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    info = _build(tmp)
    out = tmp / "site"  # outside the dataset's tree: links climb with ../
    index = write_report(
        tmp / "dataset", tmp / "pool", out, title="Demo <pairs>", summary={"pairs": 3, "failed": {"truncated": 1}}
    )
    return tmp, out, index, info


def test_pages_links_are_relative_and_exist(built):
    tmp, out, index, _ = built
    assert index == out / "index.html"
    assert [p.name for p in _pages(out)] == ["shard-000000.html", "shard-000001.html"]  # shard_size=2, 3 pairs
    audios, imgs = _tags(out, "audio"), _tags(out, "img")
    # 3 mixtures + 3 rendered components (the 4th component's chunk id is not in the pool)
    assert len(audios) == 6 and all("controls" in a for _, a in audios)
    pictures = [(b, a) for b, a in imgs if "spec" not in a.get("class", "")]
    spectrograms = [(b, a) for b, a in imgs if "spec" in a.get("class", "")]
    assert len(pictures) == 3  # cat, the oddly named dog, and the filtered logo's thumbnail; never the unsafe path
    assert len(spectrograms) == 6  # one per mixture and per rendered component
    for base, a in audios + imgs + _tags(out, "a") + _tags(out, "script"):
        link = str(a.get("src") or a.get("href"))
        assert _target(base, link).resolve().is_file(), link
    for p, _ in _all(out):
        assert "file:" not in p.read_text() and str(tmp) not in p.read_text()
    srcs = {_target(b, a["src"]).resolve() for b, a in pictures}
    assert (tmp / "images/sub dir/dog #1.png").resolve() in srcs and (tmp / "images/logo.png").resolve() in srcs


def test_everything_is_escaped(built):
    _, out, index, _ = built
    for path, page in _all(out):
        raw = path.read_text()
        scripts = [a for t, a in page.tags if t == "script"]
        # the index has our two script files and nothing inline; the shard pages have no script at all
        assert scripts == ([{"src": "report/index.js"}, {"src": "report/search.js"}] if path == index else [])
        assert "<script>" not in raw and "onerror" not in raw.replace("onerror=alert(2)&gt;", "")
        assert not any(k.startswith("on") for _, a in page.tags for k in a)
    text = _text(out)
    assert SCRIPT in text and "<img src=x onerror=alert(2)>" in text and "<b>friends</b>" in text
    assert "<img src=x" not in index.read_text()
    assert _parse(index).title == "Demo <pairs>"
    js = (out / "report/index.js").read_text()
    assert "<" not in js  # no '</script>' can end anything early
    data = _index_data(out)
    assert SCRIPT in data["concepts"] and data["pages"] == ["shard-000000", "shard-000001"]
    assert [p[:3] for p in data["pairs"]] == [[0, 0, "cat"], [0, 1, "dog"], [1, 0, "evil"]]
    assert "textContent" in SEARCH_JS and "innerHTML" not in SEARCH_JS and "fetch(" not in SEARCH_JS


def test_shows_scores_dropped_images_and_summary(built):
    _, out, _, _ = built
    text = _text(out)
    for needle in (
        "cat: purring",
        "tiny-vlm",
        "cosine 0.610",
        "SSR 0.720",
        "threshold 0.500",
        "target -23.0 LUFS",
        "Filtered (1)",
        "logo",
        "a company logo <i>ACME</i>",
        "Failed (1)",
        "truncated",
        "image path refused",
        "not rendered",
        "chunk_id 999",
        "3 of 3 pairs on 2 pages",
        "3 of 6",  # pool chunks used
        "Chunk loudness vs target",
        "Concepts per image",
        "Chunk reuse",
        "SSR candidate-set sizes",
    ):
        assert needle in text, needle
    svgs = [a for _, a in _tags(out, "svg")]
    assert len(svgs) == 4 and all(a["role"] == "img" for a in svgs)


def test_component_files_are_each_source_at_its_gain(built):
    _, out, _, info = built
    pool = info["pool"]
    files = sorted(p.name for p in (out / "report/components").iterdir())
    assert files == ["shard-000000-000000-0.wav", "shard-000000-000000-1.wav", "shard-000000-000001-0.wav"]
    from seeing_sound.dataset import PairsDataset

    row = PairsDataset.open(out.parent / "dataset").row(0)
    for k, c in enumerate(row["components"]):
        x, sr = sf.read(out / f"report/components/shard-000000-000000-{k}.wav", dtype="int16")
        ref = quantize_pcm16(
            render_mixture(pool.chunk(c["chunk_id"])[None], np.array([c["gain_db"]]), row["mixture_gain_db"])
        )
        assert sr == SR and np.array_equal(x, ref)
        png = (out / f"report/spectrograms/shard-000000-000000-{k}.png").read_bytes()
        assert png == spectrogram_png(
            render_mixture(pool.chunk(c["chunk_id"])[None], np.array([c["gain_db"]]), row["mixture_gain_db"])
        )


def test_spectrogram_is_log_magnitude_on_a_fixed_scale():
    t = np.arange(SR * 2) / SR
    db = log_spectrogram(np.sin(2 * np.pi * 1000 * t))
    assert db.shape == (256, 160) and np.all(db.argmax(axis=0) == 32)  # 1 kHz = bin 32 of a 512-point FFT at 16 kHz
    assert db.max() == pytest.approx(0.0, abs=0.2)  # a full-scale sine peaks at 0 dBFS
    quiet, loud = spectrogram_rgb(0.01 * np.sin(2 * np.pi * 1000 * t)), spectrogram_rgb(np.sin(2 * np.pi * 1000 * t))
    assert quiet.shape == (64, 160, 3) and quiet.sum() < loud.sum()  # absolute scale: quieter is darker
    assert np.all(spectrogram_rgb(np.zeros(100)) == COLORMAP[0])  # silence (and a clip shorter than the FFT)
    png = spectrogram_png(np.sin(2 * np.pi * 440 * t))
    assert png == spectrogram_png(np.sin(2 * np.pi * 440 * t)) and Image.open(io.BytesIO(png)).size == (160, 64)


def test_summary_stats_stream_and_bin():
    comps = [
        [{"chunk_id": 0, "n_candidates": 1, "chunk_lufs": -30.0, "target_lufs": -23.0}] * 3,
        [{"chunk_id": 0, "n_candidates": 40, "chunk_lufs": None, "target_lufs": -23.0}, {"chunk_id": 7}],
        [],
    ]
    table = pa.Table.from_pylist([{"components": c} for c in comps], schema=pa.schema([METADATA.field("components")]))
    stats = SummaryStats(pool_size=5)
    stats.add(table)
    stats.add(table)
    f = stats.facts()
    assert f["components"] == 10 and f["chunks_used"] == 1 and f["max_uses"] == 8 and f["outside_pool"] == 2
    assert dict(stats.concepts_per_pair) == {3: 2, 2: 2, 0: 2} and stats.candidates == {1: 6, 40: 2}
    assert stats.points == [(-30.0, -23.0)] * 6
    assert int_bins({1: 6, 40: 2}) == (["1", "2-3", "4-7", "8-15", "16-31", "32-63"], [6, 0, 0, 0, 0, 2])
    assert int_bins({0: 1, 2: 3}) == (["0", "1", "2"], [1, 0, 3])
    assert all(svg.startswith("<svg") and svg.endswith("</svg>") for svg in stats.plots())
    assert "&lt;b&gt;" in bars_svg("<b>", ["<i>"], [1], "x") and "<b>" not in bars_svg("<b>", ["<i>"], [1], "x")


def test_deterministic_max_pairs_and_stale_files(built, tmp_path):
    tmp = built[0]
    site = tmp_path / "site"
    write_report(tmp / "dataset", tmp / "pool", site)  # all pairs, then fewer
    write_report(tmp / "dataset", tmp / "pool", site, max_pairs=1)
    assert sorted(p.name for p in (site / "report/components").iterdir()) == [
        "shard-000000-000000-0.wav",
        "shard-000000-000000-1.wav",
    ]
    assert sorted(p.name for p in (site / "report/spectrograms").iterdir()) == [
        "shard-000000-000000-0.png",
        "shard-000000-000000-1.png",
        "shard-000000-000000.png",
    ]
    assert [p.name for p in _pages(site)] == ["shard-000000.html"]
    files = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    write_report(tmp / "dataset", tmp / "pool", site, max_pairs=1)
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == files
    assert "1 of 3 pairs on 1 page" in _text(site)
    for bad in ({"max_pairs": -1}, {"max_audio_per_page": -2}, {"max_audio_per_page": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            write_report(tmp / "dataset", tmp / "pool", tmp_path / "x", **bad)


def test_max_audio_per_page_limits_players_and_thumbnails(built, tmp_path):
    tmp = built[0]
    site = tmp_path / "site"
    write_report(tmp / "dataset", tmp / "pool", site, max_audio_per_page=1)
    assert len(_tags(site, "audio")) == 2 + 2  # first pair of each page: its mixture (+ the cat's 2 components)
    links = [a["href"] for _, a in _tags(site, "a") if a.get("href", "").endswith(".flac")]
    assert len(links) == 1 and "not rendered (--max-audio-per-page)" in _text(site)  # the dog: a plain link
    write_report(tmp / "dataset", tmp / "pool", site, max_audio_per_page=0)
    assert not _tags(site, "audio") and not [a for _, a in _tags(site, "img") if "spec" in a.get("class", "")]
    assert not list((site / "report/components").glob("*.wav")) and not list((site / "report/spectrograms").glob("*"))
    assert len([a for _, a in _tags(site, "a") if a.get("href", "").endswith(".flac")]) == 3


def test_cli_report_command(built, tmp_path, capsys):
    from seeing_sound.cli import main

    tmp = built[0]
    out = tmp_path / "cli"
    argv = ["report", str(tmp / "dataset"), "--pool", str(tmp / "pool"), "--out", str(out), "--quiet"]
    assert main([*argv, "--max-audio-per-page", "0", "--title", "From the CLI"]) == 0
    assert "open" in capsys.readouterr().out and _parse(out / "index.html").title == "From the CLI"
    assert not _tags(out, "audio")
    assert main([*argv, "--max-audio-per-page", "all"]) == 0 and len(_tags(out, "audio")) == 6
    with pytest.raises(SystemExit):
        main([*argv, "--max-audio-per-page", "-1"])


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp / 'profile'}",
    ]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120)


def test_chromium_renders_the_pages(built, tmp_path):
    if CHROMIUM is None:
        pytest.skip(
            "chromium not installed: no /usr/bin/chromium or chromium on PATH "
            "(apt-get install chromium); the browser check did not run"
        )
    tmp, _out, _index, _ = built
    # the demo's layout: the index's folder holds the dataset, links go down into it
    site = write_report(tmp / "dataset", tmp / "pool", tmp, title="Demo <pairs>")
    url = site.resolve().as_uri()
    # the search runs from file:// (its data is a <script src> file) and shows a hostile concept as text
    dom = _chromium(["--dump-dom", url + "#q=%3Cscript%3E"], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<title>Demo &lt;pairs&gt;</title>" in html and "1 of 3 pairs match" in html
    assert html.lower().count("<script") == 2  # ours; the concept stayed text: no script element was created
    assert '<span class="tag">&lt;script&gt;alert(1)&lt;/script&gt;</span>' in html
    assert 'href="report/pages/shard-000000.html#shard-000000-000000">cat</a>' in html
    dom = _chromium(["--dump-dom", url + "#q=BARK"], tmp_path)  # case-insensitive substring
    assert "1 of 3 pairs match" in dom.stdout and ">dog</a>" in dom.stdout and ">cat</a>" not in dom.stdout
    page = (tmp / "report/pages/shard-000000.html").resolve().as_uri()
    dom = _chromium(["--dump-dom", page], tmp_path)
    assert "<script" not in dom.stdout.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom.stdout
    assert dom.stdout.count("<audio") == 5 and dom.stdout.count('class="spec"') == 5
    shot = tmp_path / "shot.png"
    res = _chromium([f"--screenshot={shot}", "--window-size=1200,1600", "--hide-scrollbars", page], tmp_path)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[:2] == (1600, 1200) and shot.stat().st_size > 20_000
    assert pixels.std() > 10  # text, tables and images, not a blank page
    # the cat image (orange 200,120,40) was loaded from its relative link and drawn
    assert (np.abs(pixels - np.array([200, 120, 40])).sum(axis=2) < 30).sum() > 1000


def _synthetic_dataset(root: Path, images: Path, pairs: int, shard_size: int = 1000) -> Path:
    """A metadata-only pairs dataset (no audio files) of ``pairs`` pairs, 3 components each."""
    from seeing_sound.dataset.layout import metadata_rel
    from seeing_sound.dataset.writer import write_card

    sounds = ["barking", "rain", "engine", "birdsong", "wind", "bells", "crowd", "purring"]
    shards = []
    for k, start in enumerate(range(0, pairs, shard_size)):
        rows = []
        for i in range(start, min(start + shard_size, pairs)):
            comps = [
                {"concept_index": j, "concept": f"thing {i % 97}: {sounds[(i + j) % 8]}", "chunk_id": (i + j) % 6,
                 "n_candidates": 1 + (i * 7 + j) % 9, "chunk_lufs": -30.0 + (i % 11), "target_lufs": -23.0 - j,
                 "gain_db": -3.0, "cosine": 0.5, "score": 0.6, "threshold": 0.4}
                for j in range(3)
            ]  # fmt: skip
            rows.append({"pair_id": f"img{i:06d}", "image_id": f"img{i:06d}", "image_path": "cat.png", "seed": i,
                         "components": comps, "mixture_gain_db": 0.0,
                         "audio_path": f"audio/shard-{k:06d}/{i - start:06d}.flac"})  # fmt: skip
        (root / "metadata").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=METADATA), root / metadata_rel(k))
        shards.append({"index": k, "pairs": len(rows)})
    write_card(root, images_root=str(images), sample_rate=SR, audio_format="flac", shards=shards)
    return root


# Peak RSS from /proc (VmHWM starts afresh at exec; ru_maxrss would carry pytest's own peak over).
_MEASURE = """
import json, sys
from seeing_sound.report import write_report

def peak_kb():
    return int(next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")).split()[1])

write_report(sys.argv[1], sys.argv[2], sys.argv[3] + "-warm", max_pairs=1)  # the lazy imports, off the count
before = peak_kb()
write_report(sys.argv[1], sys.argv[2], sys.argv[3], max_audio_per_page=0)
print(json.dumps({"growth_mb": (peak_kb() - before) / 1024}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc (Linux)")
@pytest.mark.parametrize("small, big", [(300, 3_000), pytest.param(2_000, 20_000, marks=pytest.mark.slow)])
def test_metadata_only_report_is_bounded(built, tmp_path, small, big):
    """10x the pairs (the slow tier: 20K pairs on 20 pages): 10x the pages, a 10x index, and peak
    memory that follows one shard (holding every row or every page would grow with the pairs)."""
    tmp = built[0]
    shard_size = small // 2
    grown, sizes = {}, {}
    for n in (small, big):
        ds = _synthetic_dataset(tmp_path / f"ds{n}", tmp / "images", n, shard_size)
        out = tmp_path / f"site{n}"
        res = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(ds), str(tmp / "pool"), str(out)],
            capture_output=True, text=True, timeout=900, env=os.environ | {"HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        grown[n] = json.loads(res.stdout.strip().splitlines()[-1])["growth_mb"]
        assert len(_pages(out)) == n // shard_size
        data = _index_data(out)
        assert len(data["pairs"]) == n and len(data["concepts"]) <= 97 * 8  # distinct texts, not one per pair
        vocab = len(json.dumps(data["concepts"]))
        sizes[n] = (out / "report/index.js").stat().st_size - vocab  # the per-pair part
        assert sizes[n] < 50 * n  # compact: ~40 bytes a pair
        assert (out / "index.html").stat().st_size < 200_000  # the index page does not list pairs
        assert not list(out.rglob("*.wav")) and not list(out.rglob("*.png"))
    assert 8 < sizes[big] / sizes[small] < 12  # the index scales linearly
    assert grown[big] - grown[small] < 40, grown  # MB: memory follows a shard, not the dataset


def test_join_agrees_with_safe_join(tmp_path):
    """The report's per-folder shortcut refuses and accepts exactly what ``safe_join`` does."""
    from seeing_sound.dataset.paths import UnsafePathError, safe_join
    from seeing_sound.report.html import PairRenderer

    root = tmp_path / "root"
    (root / "sub dir").mkdir(parents=True)
    (root / "sub dir/a #1.png").write_bytes(b"x")
    (tmp_path / "secret.txt").write_bytes(b"s")
    (root / "leak.png").symlink_to(tmp_path / "secret.txt")
    (root / "outdir").symlink_to(tmp_path)
    (root / "inlink.png").symlink_to(root / "sub dir/a #1.png")
    r = PairRenderer(None, None, tmp_path, tmp_path)  # type: ignore[arg-type]
    cases = ["sub dir/a #1.png", "./sub dir/a #1.png", "a.png", "leak.png", "outdir/secret.txt", "inlink.png",
             "../secret.txt", "sub dir/../../secret.txt", "sub dir/..", "/etc/passwd", "/x", "C:\\x", "C:x",
             "sub dir\\..\\..\\x", "a\x00b", "", None, "sub dir/", "sub dir/.", "missing/x.png"]  # fmt: skip
    for rel in cases * 2:  # twice: the second time from the folder cache
        try:
            want: object = safe_join(root, rel)  # type: ignore[arg-type]
        except UnsafePathError:
            want = UnsafePathError
        try:
            got: object = r.join(root, rel)
        except UnsafePathError:
            got = UnsafePathError
        assert got == want, rel
