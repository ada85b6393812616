"""Bad-input corpus for ``evaluate``: a benchmark folder and a feature cache are data, never trusted.

A benchmark folder (``benchmark.json`` + ``metadata.parquet``) is downloaded and shared; its
``name`` and ``item_id`` become file names under ``--out`` (``generated/<name>/<item_id>.png``)
and its ``audio_path``/``image_path`` are read. One case per row, each named in the test id:
every hostile row is a skipped item whose reason starts with a stable key, nothing is written
(or reused) outside ``--out``, and the rows still add up (``rows == scored + skipped``).
The feature cache (``EVAL/features/<key>/<sha256>.npy``) is damaged the same way: a bad entry
is recomputed, never trusted.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeing_sound.cli import main
from seeing_sound.dataset import paths
from seeing_sound.testing.eval_models import (
    build_tiny_clip,
    build_tiny_wav2clip,
    write_eval_folders,
    write_synthetic_benchmark,
)


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-eval-twins")
    return {"wav2clip": build_tiny_wav2clip(root / "Wav2CLIP.pt"), "clip": build_tiny_clip(root / "clip")}


def _models(twins):
    return ["--clip", str(twins["clip"]), "--wav2clip", str(twins["wav2clip"]), "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_pixart_dir, tiny_ast_dir):
    from seeing_sound.encoders.ast import load_ast
    from seeing_sound.model.audio_pixart import AudioPixArt
    from seeing_sound.model.loading import load_scheduler, load_vae
    from seeing_sound.model.pipeline import AudioPixArtPipeline

    root = tmp_path_factory.mktemp("bad-eval-run")
    enc = load_ast(str(tiny_ast_dir))
    pipe = AudioPixArtPipeline(
        AudioPixArt.from_pixart(str(tiny_pixart_dir), audio_embed_dim=32),
        load_vae(str(tiny_pixart_dir)),
        load_scheduler(str(tiny_pixart_dir)),
        enc.model,
        enc.feature_extractor,
    )
    pipe.save_pretrained(root / "run" / "pipeline")
    return root / "run"


# --- the hostile benchmark: one row per case -------------------------------------------------------
# ROOT/a/b/WORK/OUT is --out and ROOT/a/b/WORK/BENCH the benchmark, so a path that climbs out of OUT
# still lands inside the test's own tmp folder (where the check below sees it)


def _row(item_id, audio="audio/good_000.wav", image="images/good_000.png"):
    return {"item_id": item_id, "audio_path": audio, "image_path": image}


def parent_escape(work):
    return _row("../../../y"), "unsafe_id"


def planted_png(work):
    # before: generated/<name>/../planted.png, with the name "../../x" WORK/planted.png, was "already generated"
    from PIL import Image

    Image.new("RGB", (32, 32), (255, 0, 0)).save(work / "planted.png")
    return _row("../planted"), "unsafe_id"


def absolute_id(work):
    return _row(str(work / "abs")), "unsafe_id"


def slash(work):
    return _row("sub/z"), "unsafe_id"


def backslash(work):
    return _row("sub\\z"), "unsafe_id"


def dotdot(work):
    return _row(".."), "unsafe_id"


def empty_id(work):
    return _row(""), "unsafe_id"


def null_id(work):
    return _row(None), "unsafe_id"


def nul_byte(work):
    return _row("x\x00y"), "unsafe_id"


def control_char(work):
    return _row("x\ny"), "unsafe_id"


def too_long(work):
    return _row("a" * 300), "unsafe_id"


def hidden(work):
    return _row(".x"), "unsafe_id"


def duplicate(work):
    return _row("good_000", audio="audio/good_001.wav"), "duplicate_id"


def audio_path_escape(work):
    shutil.copy(work / "BENCH" / "audio" / "good_000.wav", work / "outside.wav")
    return _row("esc_audio", audio="../outside.wav"), "unsafe_path"


def audio_path_absolute(work):
    return _row("abs_audio", audio=str(work / "BENCH" / "audio" / "good_000.wav")), "unsafe_path"


def image_path_escape(work):
    shutil.copy(work / "BENCH" / "images" / "good_000.png", work / "outside.png")
    return _row("esc_image", image="../outside.png"), "unsafe_path"


CASES = [
    ("parent-escape", parent_escape),
    ("planted-png", planted_png),
    ("absolute-id", absolute_id),
    ("slash", slash),
    ("backslash", backslash),
    ("dotdot", dotdot),
    ("empty-id", empty_id),
    ("null-id", null_id),
    ("nul-byte", nul_byte),
    ("control-char", control_char),
    ("too-long", too_long),
    ("hidden", hidden),
    ("duplicate", duplicate),
    ("audio-path-escape", audio_path_escape),
    ("audio-path-absolute", audio_path_absolute),
    ("image-path-escape", image_path_escape),
]
GOOD = 2


def _files(root: Path, skip: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` but those under ``skip``."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and skip not in p.parents
    }


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tiny_run, twins):
    root = tmp_path_factory.mktemp("hostile")
    work = root / "a" / "b" / "WORK"
    bench = write_synthetic_benchmark(work / "BENCH", n=GOOD, name="good", seed=1)
    (work / "OUT" / "generated").mkdir(parents=True)
    rows = pq.read_table(bench / "metadata.parquet").select(["item_id", "audio_path", "image_path"]).to_pylist()
    expected = {}
    for case, make in CASES:
        row, reason = make(work)
        expected[case] = (len(rows), reason)
        rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows), bench / "metadata.parquet")
    info = json.loads((bench / "benchmark.json").read_text())
    (bench / "benchmark.json").write_text(json.dumps({**info, "name": "../../x"}))
    before = _files(root, work / "OUT")
    out = work / "OUT"
    argv = ["--quiet", "evaluate", "--model", str(tiny_run), "--benchmark", str(bench), "--out", str(out)]
    argv += ["--steps", "1", "--metrics", "iis,ais", *_models(twins)]
    rc = main(argv)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else None
    return {"rc": rc, "root": root, "out": out, "before": before, "summary": summary, "rows": rows, "cases": expected}


def _result(hostile) -> dict:
    assert hostile["rc"] == 0 and hostile["summary"] is not None
    (result,) = hostile["summary"]["benchmarks"].values()
    return result


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_hostile_benchmark_row(hostile, case):
    index, reason = hostile["cases"][case]
    result = _result(hostile)
    got = [s["reason"] for s in result["skipped"] if s["reason"].startswith(f"{reason}: row {index}:")]
    assert len(got) == 1, [s["reason"] for s in result["skipped"]]
    assert "\n" not in got[0] and len(got[0]) < 400  # one readable line, however long or odd the id


def test_hostile_benchmark_writes_nothing_outside_out(hostile):
    """Before: PNGs and settings.json landed beside --out, and a planted PNG there was scored as generated."""
    result = _result(hostile)
    assert _files(hostile["root"], hostile["out"]) == hostile["before"]  # nothing outside OUT written or changed
    out = hostile["out"].resolve()
    assert result["n"] == GOOD  # the good rows only: the planted PNG is not an item
    per = pq.read_table(hostile["out"] / "per_sample.parquet").to_pylist()
    assert sorted(r["item_id"] for r in per) == ["good_000", "good_001"]
    for r in per:
        assert out in Path(r["generated"]).resolve().parents
    # the name is made safe, deterministically; the summary keeps the name benchmark.json gives
    assert list(hostile["summary"]["benchmarks"]) == ["../../x"]
    (folder,) = (hostile["out"] / "generated").iterdir()
    assert folder.name == paths.safe_name("../../x", sanitize=True) and (folder / "settings.json").is_file()
    assert sorted(p.name for p in folder.glob("*.png")) == ["good_000.png", "good_001.png"]
    assert len(hostile["rows"]) == result["n"] + len(result["skipped"])  # every row accounted for


def test_two_benchmarks_with_one_safe_name_are_refused(tiny_run, twins, tmp_path, capsys):
    a, b = (write_synthetic_benchmark(tmp_path / d, n=1, name=d, seed=i) for i, d in enumerate("AB"))
    for bench, name in ((a, "a/b"), (b, "a_b")):
        info = json.loads((bench / "benchmark.json").read_text())
        (bench / "benchmark.json").write_text(json.dumps({**info, "name": name}))
    out = tmp_path / "OUT"
    argv = ["--quiet", "evaluate", "--model", str(tiny_run), "--benchmark", str(a), str(b), "--out", str(out)]
    assert main([*argv, "--steps", "1", "--metrics", "ais", *_models(twins)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'a/b'" in err[0] and "'a_b'" in err[0]
    assert not (out / "generated").exists()  # refused before any image


@pytest.mark.parametrize(
    "content, what",
    [("{not json", "not valid JSON"), ('["a list"]', "JSON object"), ('{"name": 5}', "'name' must be a string")],
    ids=["garbage", "not-an-object", "name-not-text"],
)
def test_a_broken_benchmark_json_is_one_line_naming_it(tmp_path, twins, tiny_run, capsys, content, what):
    bench = write_synthetic_benchmark(tmp_path / "B", n=1, name="b")
    (bench / "benchmark.json").write_text(content)
    argv = ["--quiet", "evaluate", "--model", str(tiny_run), "--benchmark", str(bench), "--out", str(tmp_path / "O")]
    assert main([*argv, "--steps", "1", "--metrics", "ais", *_models(twins)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bench / "benchmark.json") in err[0] and what in err[0]


NAMES = [  # (text, safe as is?, what sanitize=True makes of it)
    ("vggsound", True, "vggsound"),
    ("VGGSound test v1.2", True, "VGGSound test v1.2"),
    ("../../x", False, "_.._x"),
    ("a/b", False, "a_b"),
    ("a\\b", False, "a_b"),
    ("..", False, "_"),
    ("", False, "_"),
    (".hidden", False, "hidden"),
    ("x\x00y", False, "x_y"),
    ("tab\there", False, "tab_here"),
]


@pytest.mark.parametrize("text, safe, sanitized", NAMES, ids=[repr(n[0]) for n in NAMES])
def test_safe_name(text, safe, sanitized):
    if safe:
        assert paths.safe_name(text) == text
    else:
        with pytest.raises(paths.UnsafePathError, match="refusing"):
            paths.safe_name(text)
    assert paths.safe_name(text, sanitize=True) == sanitized
    assert paths.safe_name(paths.safe_name(text, sanitize=True)) == sanitized  # what sanitize makes is safe


def test_safe_name_length_and_type():
    for long in ("a" * (paths.MAX_NAME_BYTES + 1), "é" * (paths.MAX_NAME_BYTES // 2 + 1)):  # bytes, not characters
        with pytest.raises(paths.UnsafePathError, match="bytes"):
            paths.safe_name(long)
    made = paths.safe_name("a" * 300, sanitize=True)
    assert len(made.encode()) <= paths.MAX_NAME_BYTES and made == paths.safe_name("a" * 300, sanitize=True)
    assert made != paths.safe_name("a" * 301, sanitize=True)  # truncation keeps a hash of the whole
    assert paths.safe_name("é" * (paths.MAX_NAME_BYTES // 2)) == "é" * (paths.MAX_NAME_BYTES // 2)
    for bad in (None, 5, "\ud800", " x"):
        with pytest.raises(paths.UnsafePathError, match="refusing"):
            paths.safe_name(bad)  # type: ignore[arg-type]


# --- the feature cache -----------------------------------------------------------------------------


def _nan(path):
    v = np.load(path)
    v[0] = np.nan
    np.save(path, v)


def _inf(path):
    v = np.load(path)
    v[-1] = -np.inf
    np.save(path, v)


def _two_d(path):
    np.save(path, np.load(path)[None, :])


def _shorter(path):
    np.save(path, np.load(path)[:-1])


def _empty(path):
    np.save(path, np.zeros(0, np.float32))


def _text(path):
    np.save(path, np.array(["x", "y"]))


def _npz(path):
    v = np.load(path)
    with open(path, "wb") as fh:
        np.savez(fh, v=v)


def _truncated(path):
    path.write_bytes(path.read_bytes()[:40])


CACHE_CASES = [
    ("nan", _nan),
    ("inf", _inf),
    ("two-d", _two_d),
    ("one-number-short", _shorter),
    ("empty", _empty),
    ("strings", _text),
    ("npz-archive", _npz),
    ("truncated", _truncated),
]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, twins):
    root = tmp_path_factory.mktemp("cache")
    dirs = write_eval_folders(root / "data", n=4, size=32)
    argv = ["--quiet", "evaluate", "--images", str(dirs["generated"]), "--reference", str(dirs["reference"])]
    argv += ["--audio", str(dirs["audio"]), "--metrics", "iis,ais", "--batch-size", "2", *_models(twins)]
    assert main([*argv, "--out", str(root / "EVAL")]) == 0
    return {"root": root, "argv": argv, "summary": json.loads((root / "EVAL" / "summary.json").read_text())}


@pytest.mark.parametrize("damage", [c[1] for c in CACHE_CASES], ids=[c[0] for c in CACHE_CASES])
def test_damaged_cache_entry_is_recomputed(evaluated, tmp_path, caplog, damage):
    """Before: a NaN in a cached vector aborted every rerun with an error that did not name the cache file."""
    out = tmp_path / "EVAL"
    shutil.copytree(evaluated["root"] / "EVAL", out)
    (clip,) = (p for p in (out / "features").iterdir() if p.name.startswith("clip"))
    entry = sorted(clip.glob("*.npy"))[0]
    damage(entry)
    with caplog.at_level("WARNING", logger="seeing_sound.evaluation.features"):
        assert main([*evaluated["argv"], "--out", str(out)]) == 0
    warned = [r.getMessage() for r in caplog.records if str(entry) in r.getMessage()]
    assert len(warned) == 1, caplog.text
    before, after = evaluated["summary"]["benchmarks"], json.loads((out / "summary.json").read_text())["benchmarks"]
    for key in ("n", "iis", "ais"):
        assert after["generated"][key] == pytest.approx(before["generated"][key], rel=1e-6), key
    assert after["generated"]["features_computed"] == 1  # the damaged entry only
    fixed = np.load(entry)
    assert fixed.ndim == 1 and fixed.size > 0 and np.all(np.isfinite(fixed))
