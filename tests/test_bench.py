"""bench prepare: synthetic videos in each official layout -> BENCH (center frame, whole audio, errors, resume)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("av")

from seeing_sound.bench import layout, prepare_benchmark
from seeing_sound.bench.synthetic import (
    frame_index_of,
    write_greatest_hits_release,
    write_vggsound_release,
    write_video,
)
from seeing_sound.bench.video import BadVideo, decode_video
from seeing_sound.cli import main

SR = 16000


def dominant_hz(x: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * sr / x.size)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    info = sf.info(str(path))
    assert info.subtype == "PCM_16" and info.channels == 1
    x, sr = sf.read(str(path), dtype="float32")
    return x, sr


@pytest.mark.parametrize("frames", [21, 20, 7])
def test_center_frame_and_audio(tmp_path, frames):
    path = write_video(tmp_path / "v.mp4", frames=frames, fps=10, tone_hz=660.0, sample_rate=44100)
    got = decode_video(path, SR)
    assert abs(frame_index_of(got.image) - frames // 2) <= 1
    assert got.frame_time_s == pytest.approx((frames // 2) / 10, abs=0.101)
    # AAC adds up to ~2 frames of encoder padding to the track; nothing is lost
    assert frames / 10 - 0.01 <= got.duration_s <= frames / 10 + 0.1
    assert got.audio.dtype == np.float32 and got.audio.ndim == 1
    assert dominant_hz(got.audio) == pytest.approx(660.0, abs=8)


def test_bad_videos_have_reasons(tmp_path):
    silent = write_video(tmp_path / "silent.mp4", tone_hz=None)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01 this is not a video" * 100)
    reasons = {}
    for p in (silent, empty, corrupt):
        with pytest.raises(BadVideo) as exc:
            decode_video(p, SR)
        reasons[p.name] = exc.value.reason
    assert reasons == {"silent.mp4": "no_audio", "empty.mp4": "empty_file", "corrupt.mp4": "unreadable"}


def _read(bench: Path):
    card = json.loads((bench / "benchmark.json").read_text())
    meta = pq.read_table(bench / "metadata.parquet")
    errors = pq.read_table(bench / "errors.parquet")
    assert meta.schema.equals(layout.METADATA_SCHEMA)
    assert errors.schema.equals(layout.ERRORS_SCHEMA)
    c = card["counts"]
    assert c["in"] == c["out"] + c["skipped"] + c["failed"]
    assert c["out"] == meta.num_rows and c["skipped"] + c["failed"] == errors.num_rows
    return card, meta.to_pylist(), errors.to_pylist()


def test_folder_layout_with_bad_files(tmp_path):
    src = tmp_path / "landscapes"
    for split in ("train", "test"):
        for label, hz in (("fire", 500.0), ("rain", 1000.0)):
            write_video(src / split / label / f"{split}_{label}.mp4", frames=11, tone_hz=hz)
    write_video(src / "test" / "rain" / "mute.mp4", frames=5, tone_hz=None)
    (src / "test" / "fire" / "zero.mp4").write_bytes(b"")
    (src / "test" / "fire" / "broken.mp4").write_bytes(os.urandom(2000))
    (src / "test" / "fire" / "notes.txt").write_text("not a video")
    bench = tmp_path / "bench"
    report = prepare_benchmark("folder", src, bench, progress=False, shard_items=2)
    card, meta, errors = _read(bench)
    assert card["name"] == "landscapes" and card["kind"] == "folder"
    assert card["counts"]["in"] == 7 and report.counts["out"] == 4 and card["counts"]["failed"] == 3
    assert {e["source"]: e["reason"] for e in errors} == {
        "test/fire/broken.mp4": "unreadable",
        "test/fire/zero.mp4": "empty_file",
        "test/rain/mute.mp4": "no_audio",
    }
    assert all(e["status"] == "failed" for e in errors)
    for row in meta:
        assert row["split"] in ("train", "test") and row["label"] in ("fire", "rain")
        assert row["source"] == f"{row['split']}/{row['label']}/{row['split']}_{row['label']}.mp4"
        audio, sr = read_wav(bench / row["audio_path"])
        assert sr == SR and audio.size == round(row["duration_s"] * SR)
        assert dominant_hz(audio) == pytest.approx(500.0 if row["label"] == "fire" else 1000.0, abs=10)
        from PIL import Image

        img = np.asarray(Image.open(bench / row["image_path"]).convert("RGB"))
        assert abs(frame_index_of(img) - 11 // 2) <= 1
        assert row["frame_time_s"] == pytest.approx(0.5, abs=0.101)
        assert row["audio_path"] == f"audio/{row['item_id']}.wav"
        assert row["image_path"] == f"images/{row['item_id']}.png"
    assert sorted(p.name for p in (bench / "audio").iterdir()) == sorted(f"{r['item_id']}.wav" for r in meta)


def test_folder_of_linked_benchmarks(tmp_path):
    """Landscapes + ITW as one benchmark: a folder of links to both downloads (a loop link is harmless)."""
    write_video(tmp_path / "landscapes" / "test" / "fire" / "a.mp4", frames=5)
    write_video(tmp_path / "itw" / "dog" / "b.mp4", frames=5)
    both = tmp_path / "landscapes+itw"
    both.mkdir()
    (both / "landscapes").symlink_to(tmp_path / "landscapes")
    (both / "itw").symlink_to(tmp_path / "itw")
    (tmp_path / "itw" / "dog" / "loop").symlink_to(tmp_path / "itw")
    prepare_benchmark("folder", both, tmp_path / "bench", class_from=-1, progress=False)
    _, meta, _ = _read(tmp_path / "bench")
    assert [(r["source"], r["label"]) for r in meta] == [
        ("itw/dog/b.mp4", "dog"),
        ("landscapes/test/fire/a.mp4", "fire"),
    ]


def test_folder_class_from(tmp_path):
    src = tmp_path / "vegas"
    write_video(src / "Dog" / "video" / "a.mp4", frames=5)
    write_video(src / "Drum" / "video" / "b.mp4", frames=5)
    with pytest.raises(Exception, match="class_from=N"):
        prepare_benchmark("folder", src, tmp_path / "x", progress=False)
    prepare_benchmark("folder", src, tmp_path / "bench", class_from=0, progress=False)
    _, meta, _ = _read(tmp_path / "bench")
    assert [(r["label"], r["split"]) for r in meta] == [("Dog", "all"), ("Drum", "all")]


def test_vggsound_sample_missing_and_resume(tmp_path, monkeypatch):
    rows = [(f"yt{c}{i}", 10 * i, f"class {c}, with comma", "test") for c in "abc" for i in range(3)]
    rows += [("train0", 0, "class a, with comma", "train")]
    csv_path = write_vggsound_release(tmp_path / "vgg", rows, frames=5)
    (tmp_path / "vgg" / "video" / "ytc2_000020.mp4").unlink()  # a video that could not be downloaded
    bench = tmp_path / "bench"
    rc = main(["--quiet", "bench", "prepare", "vggsound", "--src", str(tmp_path / "vgg"), "--csv", str(csv_path),
               "--out", str(bench), "--total", "4", "--seed", "3", "--shard-items", "2"])  # fmt: skip
    assert rc == 0
    card, meta, errors = _read(bench)
    assert card["counts"]["in"] == 4 and card["counts"]["missing_videos"] == 1 and not errors
    labels = [r["label"] for r in meta]
    assert sorted(labels.count(c) for c in set(labels)) == [1, 1, 2]
    assert all(r["split"] == "test" and r["item_id"] == Path(r["source"]).stem for r in meta)
    assert card["protocol"]["sample"]["total"] == 4 and card["seed"] == 3

    # Resume: a rerun redoes nothing and gives the same metadata; a lost shard is redone alone.
    import seeing_sound.bench.stage as stage_mod

    calls = []
    real = stage_mod.decode_video
    monkeypatch.setattr(stage_mod, "decode_video", lambda *a, **k: calls.append(a) or real(*a, **k))
    before = (bench / "metadata.parquet").read_bytes()
    report = prepare_benchmark("vggsound", tmp_path / "vgg", bench, csv=csv_path, total=4, seed=3, shard_items=2,
                               progress=False)  # fmt: skip
    assert report.shards_run == 0 and report.shards_skipped == 2 and not calls
    assert (bench / "metadata.parquet").read_bytes() == before
    (bench / "_stages" / "bench" / "shard-000001.done.json").unlink()
    report = prepare_benchmark("vggsound", tmp_path / "vgg", bench, csv=csv_path, total=4, seed=3, shard_items=2,
                               progress=False)  # fmt: skip
    assert report.shards_run == 1 and len(calls) == 2
    assert (bench / "metadata.parquet").read_bytes() == before
    # Another sample into the same folder is refused (resume only continues the same plan).
    with pytest.raises(Exception, match="other inputs or settings"):
        prepare_benchmark("vggsound", tmp_path / "vgg", bench, csv=csv_path, total=4, seed=4, progress=False)


def test_vggsound_without_sample_skips_missing(tmp_path):
    rows = [("aa", 0, "dog", "test"), ("bb", 30, "cat", "test")]
    csv_path = write_vggsound_release(tmp_path / "vgg", rows, frames=5)
    (tmp_path / "vgg" / "video" / "bb_000030.mp4").unlink()
    prepare_benchmark("vggsound", tmp_path / "vgg", tmp_path / "bench", csv=csv_path, progress=False)
    card, meta, errors = _read(tmp_path / "bench")
    assert [r["item_id"] for r in meta] == ["aa_000000"]
    assert [(e["item_id"], e["status"], e["reason"]) for e in errors] == [("bb_000030", "skipped", "missing_video")]
    assert card["counts"]["skipped"] == 1 and card["counts"]["missing_videos"] == 1


def test_greatest_hits(tmp_path):
    src = write_greatest_hits_release(
        tmp_path / "vis-data",
        {
            "2015-02-16-16-49-06": [(1.0, "rock"), (2.5, "rock"), (3.0, "leaf")],
            "2015-02-16-17-00-00": [(0.5, "None")],
        },
        frames=9,
    )
    (src / "2015-02-16-16-49-06_mic.mp4").write_bytes(b"")  # other files of the release are not items
    prepare_benchmark("greatest-hits", src, tmp_path / "bench", progress=False)
    card, meta, errors = _read(tmp_path / "bench")
    assert [(r["item_id"], r["label"]) for r in meta] == [
        ("2015-02-16-16-49-06", "rock"),
        ("2015-02-16-17-00-00", "unknown"),
    ]
    assert not errors and card["name"] == "greatest-hits"
    assert "whole" in card["source"]["item"]


def test_cli_info_and_no_items(tmp_path, capsys):
    src = tmp_path / "itw"
    (src / "cls").mkdir(parents=True)
    (src / "cls" / "z.mp4").write_bytes(b"")
    assert main(["--quiet", "bench", "prepare", "folder", "--src", str(src), "--out", str(tmp_path / "b")]) == 1
    assert "no video could be prepared" in capsys.readouterr().err
    write_video(src / "cls" / "ok.mp4", frames=5)
    assert main(["--quiet", "bench", "prepare", "folder", "--src", str(src), "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert main(["bench", "info", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "items       1 of 2 (0 skipped, 1 failed)" in out and "empty_file: 1" in out


def test_cli_info_on_a_hand_made_benchmark_in_the_documented_layout(tmp_path, capsys):
    """A benchmark.json without ``kind`` (made by hand, or by another tool) prints its info, never a KeyError."""
    from seeing_sound.testing.eval_models import write_synthetic_benchmark

    bench = write_synthetic_benchmark(tmp_path / "hand", n=3, name="hand-made")
    assert main(["bench", "info", str(bench)]) == 0
    out = capsys.readouterr().out
    assert "hand-made (unknown)" in out and "items       3" in out and "labels      3" in out
    (bench / "benchmark.json").write_text(json.dumps({"name": "bare"}))  # nothing but a name: counted from the rows
    assert main(["bench", "info", str(bench)]) == 0
    out = capsys.readouterr().out
    assert "bare (unknown)" in out and "items       3" in out
    (bench / "benchmark.json").write_text("[1, 2]")
    assert main(["bench", "info", str(bench)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "benchmark.json" in err and "JSON object" in err
