"""The static dataset page: real pool, real dataset, real images; parsed, and driven in Chromium."""

import os
import shutil
import subprocess
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
from seeing_sound.pool import AudioPool, build_pool
from seeing_sound.report import write_report
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
        if self._in_title:
            self.title = data


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _target(out: Path, src: str) -> Path:
    parts = urlsplit(src)
    assert not parts.scheme and not parts.netloc and not src.startswith("/"), f"not a relative link: {src}"
    return out / unquote(parts.path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    info = _build(tmp)
    out = tmp / "site"  # outside the dataset's tree: links climb with ../
    index = write_report(
        tmp / "dataset", tmp / "pool", out, title="Demo <pairs>", summary={"pairs": 3, "failed": {"truncated": 1}}
    )
    return tmp, out, index, info


def test_page_links_are_relative_and_exist(built):
    tmp, out, index, _ = built
    assert index == out / "index.html"
    page = _parse(index)
    audios = [a for t, a in page.tags if t == "audio"]
    imgs = [a for t, a in page.tags if t == "img"]
    # 3 mixtures + 3 rendered components (the 4th component's chunk id is not in the pool)
    assert len(audios) == 6 and all("controls" in a for a in audios)
    assert len(imgs) == 3  # cat, the oddly named dog, and the filtered logo's thumbnail; never the unsafe path
    for a in audios + imgs:
        assert _target(out, a["src"]).resolve().is_file(), a["src"]
    assert "file:" not in index.read_text() and str(tmp) not in index.read_text()
    srcs = {_target(out, a["src"]).resolve() for a in imgs}
    assert (tmp / "images/sub dir/dog #1.png").resolve() in srcs and (tmp / "images/logo.png").resolve() in srcs


def test_everything_is_escaped(built):
    _, _, index, _ = built
    raw = index.read_text()
    page = _parse(index)
    text = "".join(page.text)
    assert not any(t == "script" for t, _ in page.tags)
    assert SCRIPT in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert "<img src=x onerror=alert(2)>" in text and "<img src=x" not in raw
    assert not any("onerror" in a for _, a in page.tags)
    assert page.title == "Demo <pairs>" and "<b>friends</b>" in text


def test_shows_scores_dropped_images_and_summary(built):
    _, _, index, _ = built
    text = " ".join(_parse(index).text)
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
    ):
        assert needle in text, needle
    assert "pairs" in text and "3 of 3 pairs shown" in " ".join(text.split())


def test_component_files_are_each_source_at_its_gain(built):
    _, out, _, info = built
    pool = info["pool"]
    files = sorted(p.name for p in (out / "report/components").iterdir())
    assert files == ["shard-000000-000000-0.wav", "shard-000000-000000-1.wav", "shard-000000-000001-0.wav"]
    from seeing_sound.dataset import PairsDataset

    row = PairsDataset.open(out.parent / "dataset").row(0)
    for k, c in enumerate(row["components"]):
        x, sr = sf.read(out / f"report/components/shard-000000-000000-{k}.wav", dtype="int16")
        ref = quantize_pcm16(render_mixture(pool.chunk(c["chunk_id"])[None], [c["gain_db"]], row["mixture_gain_db"]))
        assert sr == SR and np.array_equal(x, ref)


def test_deterministic_max_pairs_and_stale_files(built, tmp_path):
    tmp = built[0]
    write_report(tmp / "dataset", tmp / "pool", tmp_path / "site")  # all pairs, then fewer
    one = write_report(tmp / "dataset", tmp / "pool", tmp_path / "site", max_pairs=1)
    assert sorted(p.name for p in (tmp_path / "site/report/components").iterdir()) == [
        "shard-000000-000000-0.wav",
        "shard-000000-000000-1.wav",
    ]
    first = one.read_bytes()
    assert write_report(tmp / "dataset", tmp / "pool", tmp_path / "site", max_pairs=1).read_bytes() == first
    assert "1 of 3 pairs shown" in " ".join(" ".join(_parse(one).text).split())
    with pytest.raises(ValueError, match="max_pairs"):
        write_report(tmp / "dataset", tmp / "pool", tmp_path / "x", max_pairs=-1)


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
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


def test_chromium_renders_the_page(built, tmp_path):
    if CHROMIUM is None:
        pytest.skip(
            "chromium not installed: no /usr/bin/chromium or chromium on PATH "
            "(apt-get install chromium); the browser check did not run"
        )
    tmp, _out, _index, _ = built
    # the demo's layout: the page's folder holds the dataset, links go down into it
    site = write_report(tmp / "dataset", tmp / "pool", tmp, title="Demo <pairs>")
    url = site.resolve().as_uri()
    dom = _chromium(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<title>Demo &lt;pairs&gt;</title>" in html
    assert "<script" not in html.lower()  # the concept stayed text: no script element was created
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<audio") == 6 and html.count("<img") == 3
    shot = tmp_path / "shot.png"
    res = _chromium([f"--screenshot={shot}", "--window-size=1200,1600", "--hide-scrollbars", url], tmp_path)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[:2] == (1600, 1200) and shot.stat().st_size > 20_000
    assert pixels.std() > 10  # text, tables and images, not a blank page
    # the cat image (orange 200,120,40) was loaded from its relative link and drawn
    assert (np.abs(pixels - np.array([200, 120, 40])).sum(axis=2) < 30).sum() > 1000
    keep = os.environ.get("SEEING_SOUND_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
