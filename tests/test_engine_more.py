"""features, bench prepare, leakage, pairs import on the engine: slices + a finishing run equal one run,
the summary files come from the finishing run only, and setup() loads a model once per worker.

The Ray side of these commands is in ``test_engine_ray.py`` (one Ray session there).
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeing_sound.engine import EngineConfig
from seeing_sound.testing.data import pattern_image, sound_of_type, write_sound_pattern_dataset
from seeing_sound.testing.signals import noise, write_audio

SR = 16000


def files(root: Path, under: str = "") -> dict[str, bytes]:
    """Every output file's bytes below ``root/under`` (engine state left out: done-markers hold timings)."""
    base = root / under
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and "_stages" not in p.relative_to(root).parts and p.name != "config.toml"  # names its --out
    }


def in_slices(run, n: int = 2) -> list:
    """``run(engine_config)`` for each slice ``I/n``, then once without a slice; returns every report."""
    return [run(EngineConfig(shard_slice=f"{i}/{n}")) for i in range(n)] + [run(None)]


# --- inputs (small: every command here runs 3-4 times) ---------------------------------------


def write_pairs_src(root: Path, n: int = 4) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for k in range(n):
        pattern_image(k % 4, rng, 16).convert("RGB").save(root / f"clip{k}.png")
        write_audio(root / f"clip{k}.wav", sound_of_type(k % 4, rng, seconds=0.5), SR)
    (root / "lonely.png").write_bytes((root / "clip0.png").read_bytes())  # unpaired: an error row
    return root


def write_bench_src(root: Path, n: int = 4) -> Path:
    from seeing_sound.bench.synthetic import write_video

    for k in range(n):
        write_video(root / ("fire" if k % 2 else "rain") / f"v{k}.mp4", frames=5, tone_hz=300.0 + 100 * k)
    (root / "rain" / "empty.mp4").write_bytes(b"")  # a failed item: an error row
    return root


def write_leakage_inputs(root: Path) -> tuple[Path, Path]:
    """A folder of 5 training images and a BENCH of 4 items (frame + 2 s of audio), one frame leaked."""
    from PIL import Image

    rng = np.random.default_rng(1)
    train, bench = root / "train", root / "bench"
    train.mkdir(parents=True)
    (bench / "images").mkdir(parents=True)
    (bench / "audio").mkdir()
    for k in range(5):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(train / f"t{k}.png")
    rows = []
    for k in range(4):
        item = f"b{k}"
        if k == 0:
            shutil.copy(train / "t3.png", bench / "images" / f"{item}.png")
        else:
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(bench / "images" / f"{item}.png")
        write_audio(bench / "audio" / f"{item}.wav", sound_of_type(k, rng, seconds=2.0), SR)
        rows.append({"item_id": item, "audio_path": f"audio/{item}.wav", "image_path": f"images/{item}.png"})
    pq.write_table(pa.Table.from_pylist(rows), bench / "metadata.parquet")
    (bench / "benchmark.json").write_text(json.dumps({"name": "tiny"}))
    return train, bench


def counting_thumbs(calls: list):
    """A stand-in for ``_clip_embedder``: counts loads; embeds by 4x4 grey thumbnails (unit length)."""
    from PIL import Image

    def load(cfg):
        calls.append(cfg.clip)

        def embed(paths):
            vecs = []
            for p in paths:
                with Image.open(p) as im:
                    v = np.asarray(im.convert("L").resize((4, 4)), np.float64).reshape(-1)
                vecs.append((v - v.mean()) / (np.linalg.norm(v - v.mean()) + 1e-9))
            return np.stack(vecs).astype(np.float32)

        return embed

    return load


# --- features ----------------------------------------------------------------------------------


def test_features_slices_finish_to_one_runs_bytes_and_load_each_model_once(tiny_ast_dir, tiny_pixart_dir,
                                                                            tmp_path, monkeypatch):  # fmt: skip
    import seeing_sound.encoders.ast as ast_mod
    import seeing_sound.features.stage as stage_mod
    from seeing_sound.features import compute_features

    loads: list[str] = []
    real_ast, real_vae = ast_mod.load_ast, stage_mod.load_vae
    monkeypatch.setattr(ast_mod, "load_ast", lambda *a, **k: loads.append("ast") or real_ast(*a, **k))
    monkeypatch.setattr(stage_mod, "load_vae", lambda *a, **k: loads.append("vae") or real_vae(*a, **k))
    kw = dict(ast=str(tiny_ast_dir), vae=str(tiny_pixart_dir), resolution=16, progress=False)
    for name in ("one", "sliced"):
        write_sound_pattern_dataset(tmp_path / name, tmp_path / f"{name}-images", per_class=3)  # 2 shards
    one = compute_features(tmp_path / "one", **kw)
    assert one["ast"].ran == one["vae"].ran == 2 and sorted(loads) == ["ast", "vae"]  # once per run, not per shard
    loads.clear()
    cards = sorted((tmp_path / "one" / "features").glob("*/features.json"))
    assert len(cards) == 2

    def run(eng):
        reports = compute_features(tmp_path / "sliced", engine_config=eng, **kw)
        if eng is not None:  # the cards describe every shard: only the finishing run writes them
            assert not list((tmp_path / "sliced" / "features").glob("*/features.json"))
            assert all(not r.complete and r.ran == 1 for r in reports.values())
        return reports

    final = in_slices(run)[-1]
    assert (final["ast"].ran, final["ast"].skipped) == (0, 2)
    assert loads == ["ast", "vae"] * 2  # one load per slice and stage; the finishing run had nothing to compute
    assert files(tmp_path / "one", "features") == files(tmp_path / "sliced", "features")


def test_features_cli_slice_prints_slice_done(tiny_ast_dir, tmp_path, capsys):
    from seeing_sound.cli import main

    write_sound_pattern_dataset(tmp_path / "ds", tmp_path / "images", per_class=3)
    argv = ["--quiet", "features", str(tmp_path / "ds"), "--ast", str(tiny_ast_dir), "--only", "ast"]
    assert main([*argv, "--shard-slice", "1/2"]) == 0
    assert "slice done: ast 1 run" in capsys.readouterr().out
    assert not list((tmp_path / "ds" / "features").glob("*/features.json"))
    assert main(argv) == 0
    assert len(list((tmp_path / "ds" / "features").glob("*/features.json"))) == 1


# --- bench prepare -----------------------------------------------------------------------------


def test_bench_prepare_slices_finish_to_one_runs_bytes(tmp_path):
    pytest.importorskip("av")
    from seeing_sound.bench import prepare_benchmark

    src = write_bench_src(tmp_path / "src")
    kw = dict(shard_items=1, progress=False)
    one = prepare_benchmark("folder", src, tmp_path / "one", **kw)
    assert one.complete and one.counts["out"] == 4 and one.counts["failed"] == 1

    def run(eng):
        r = prepare_benchmark("folder", src, tmp_path / "sliced", engine_config=eng, **kw)
        if eng is not None:  # a slice leaves audio/, images/, the Parquet lists and benchmark.json alone
            assert not r.complete and r.shards_run in (2, 3)
            assert sorted(p.name for p in (tmp_path / "sliced").iterdir()) == ["_stages", "shards"]
        return r

    final = in_slices(run)[-1]
    assert final.complete and (final.shards_run, final.shards_skipped) == (0, 5)
    assert files(tmp_path / "one") == files(tmp_path / "sliced")


# --- pairs import ------------------------------------------------------------------------------


def test_pairs_import_slices_finish_to_one_runs_bytes(tmp_path):
    from seeing_sound.pairs import import_pairs

    src = write_pairs_src(tmp_path / "src")
    kw = dict(pairs_per_shard=1, progress=False)
    one = import_pairs(src, tmp_path / "one", **kw)
    assert one.complete and one.counts["out"] == 4

    def run(eng):
        r = import_pairs(src, tmp_path / "sliced", engine_config=eng, **kw)
        if eng is not None:
            assert not r.complete and r.shards_run == 2 and "slice done" in r.summary()
            assert not (tmp_path / "sliced" / "dataset.json").exists()
            assert not (tmp_path / "sliced" / "import" / "errors.parquet").exists()
        return r

    final = in_slices(run)[-1]
    assert final.complete and final.counts == one.counts
    assert files(tmp_path / "one") == files(tmp_path / "sliced")


# --- leakage -----------------------------------------------------------------------------------


def test_leakage_slices_finish_to_one_runs_bytes_and_clip_loads_once(described_pool, tmp_path, monkeypatch):
    from seeing_sound.leakage import check_leakage
    from seeing_sound.leakage import stage as stage_mod

    train, bench = write_leakage_inputs(tmp_path / "in")
    calls: list[str] = []
    monkeypatch.setattr(stage_mod, "_clip_embedder", counting_thumbs(calls))
    kw = dict(pool=described_pool, shard_items=2, clip_threshold=0.99, progress=False)
    one = check_leakage(train, [bench], tmp_path / "one", **kw)
    # train images (3 shards) and bench frames (2 shards) share one CLIP load in this process
    assert calls == [stage_mod.LeakageConfig().clip]
    assert one.complete and one.exclude_images == ["t3.png"]
    calls.clear()

    def run(eng):
        r = check_leakage(train, [bench], tmp_path / "sliced", engine_config=eng, **kw)
        if eng is not None:  # features only: the report files are the finishing run's
            assert not r.complete and "slice done" in r.summary()
            assert sorted(p.name for p in (tmp_path / "sliced").iterdir()) == ["_features", "_stages"]
        return r

    final = in_slices(run)[-1]
    assert len(calls) == 2  # once per slice (both image stages); the finishing run computed nothing
    assert (final.benchmarks, final.exclude_images, final.exclude_chunks) == (
        one.benchmarks,
        ["t3.png"],
        one.exclude_chunks,
    )
    assert files(tmp_path / "one") == files(tmp_path / "sliced")


# --- SIGKILL of a Ray driver ---------------------------------------------------------------------


def _session(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the killed driver's Ray: GCS, raylet, workers)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):  # it ended meanwhile
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(p.name))
    return out


def _reap(sid: int, timeout: float = 20.0) -> list[int]:
    """Wait for session ``sid`` to be empty; SIGKILL and return whatever is still there after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := _session(sid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_a_ray_driver_resumes_to_the_same_bytes_on_ray_and_locally(tmp_path):
    pytest.importorskip("ray")
    from seeing_sound.cli import main

    src = tmp_path / "src"
    for i in range(40):  # 40 one-file shards: Ray runs two at a time, so the first done-marker is early
        write_audio(src / f"{i:02d}.wav", noise(3, 44100, channels=2, seed=i), 44100)
    args = ["--quiet", "pool", "build", str(src), "--shard-files", "1"]
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0  # uninterrupted, local
    reference = files(tmp_path / "ref")

    def cli(out: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "seeing_sound.cli", *args, "--out", str(out), *extra]

    out = tmp_path / "killed"
    driver = subprocess.Popen(cli(out, "--engine", "ray"), start_new_session=True)  # a new local Ray in its session
    try:
        deadline = time.monotonic() + 240
        while driver.poll() is None and time.monotonic() < deadline:
            if list(out.glob("_stages/build/*.done.json")):
                break
            time.sleep(0.01)
        assert driver.poll() is None, "the build ended before it could be killed: give it more shards"
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
        driver.wait()
    finally:
        leaked = _reap(driver.pid)
    assert not leaked, f"Ray processes outlived their killed driver: {leaked}"
    done = len(list(out.glob("_stages/build/*.done.json")))
    assert 1 <= done < 40 and not (out / "pool.json").exists()  # killed mid-run

    shutil.copytree(out, tmp_path / "resumed-local")
    resumed = subprocess.Popen(cli(out, "--engine", "ray"), start_new_session=True)
    try:
        assert resumed.wait(timeout=300) == 0
    finally:
        leaked = _reap(resumed.pid)
    assert not leaked, f"Ray processes outlived a finished run: {leaked}"
    assert files(out) == reference
    assert main([*args, "--out", str(tmp_path / "resumed-local")]) == 0
    assert files(tmp_path / "resumed-local") == reference
