import json

import numpy as np
import pyloudnorm
import pytest
import soxr

from seeing_sound.audio import io as audio_io
from seeing_sound.errors import SeeingSoundError, StageMismatchError
from seeing_sound.pool import AudioPool, build_pool
from seeing_sound.testing.signals import noise, tone, write_audio

SR = 16000


def _build(src, out, **kw):
    kw.setdefault("progress", False)
    return build_pool([src], out, **kw)


def test_paper_rules_34s_stereo_44k(tmp_path):
    x = tone(34, 44100, freq=440, amp=0.4, channels=2)
    write_audio(tmp_path / "src/long.wav", x, 44100, subtype="FLOAT")
    report = _build(tmp_path / "src", tmp_path / "pool")
    pool = AudioPool.open(tmp_path / "pool")
    assert report.chunks == len(pool) == 7
    m = pool.manifest.to_pydict()
    assert m["chunk_id"] == list(range(7))
    assert m["real_samples"] == [5 * SR] * 6 + [4 * SR]
    assert m["offset_s"] == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    assert m["source"] == ["src/long.wav"] * 7
    last = pool.chunk(6)
    assert last.dtype == np.float32 and last.shape == (5 * SR,)
    assert np.all(last[4 * SR + 200 :] == 0)  # 1 s of zero padding (resampler tail aside)
    # downmix is the channel mean, resampled with soxr HQ: compare with a whole-file reference
    ref = soxr.resample(x.mean(axis=1), 44100, SR, quality="HQ")
    got = pool.chunks(range(7)).reshape(-1)[: ref.size]
    np.testing.assert_allclose(got, ref, atol=2e-4)  # 16-bit storage
    assert abs(np.abs(pool.chunk(2)).max() - 0.3) < 0.01  # mean of 0.4 and 0.2, not their sum
    # loudness: pyloudnorm on the stored chunk's real audio
    for cid in (0, 6):
        real = m["real_samples"][cid]
        assert m["loudness_lufs"][cid] == pytest.approx(
            pyloudnorm.Meter(SR).integrated_loudness(pool.chunk(cid)[:real]), abs=0.01
        )
    assert not any(m["silent"]) and not any(m["short"])


@pytest.mark.parametrize(
    "ext,subtype",
    [("wav", "PCM_16"), ("flac", "PCM_24"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III"), ("aiff", "PCM_16")],
)
def test_formats(tmp_path, ext, subtype):
    write_audio(tmp_path / f"src/a.{ext}", tone(6.5, 22050, amp=0.5), 22050, subtype=subtype)
    report = _build(tmp_path / "src", tmp_path / "pool")
    assert report.errors == {} and report.chunks == 2


def test_bad_inputs_are_recorded_not_fatal(tmp_path):
    src = tmp_path / "src"
    write_audio(src / "good.wav", noise(3, SR), SR)
    (src / "empty.wav").write_bytes(b"")
    (src / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    (src / "readme.txt").write_text("not audio")
    write_audio(src / "zero_frames.wav", np.zeros((0,), np.float32), SR)
    bad = noise(2, SR)
    bad[100] = np.nan
    write_audio(src / "nan.wav", bad, SR, subtype="FLOAT")
    good = (src / "good.wav").read_bytes()
    (src / "truncated.wav").write_bytes(good[: len(good) // 3])  # header says more frames than exist
    report = _build(src, tmp_path / "pool")
    pool = AudioPool.open(tmp_path / "pool")
    errors = {r["source"]: r["reason"] for r in pool.errors.to_pylist()}
    assert errors == {
        "src/empty.wav": "empty_file",
        "src/corrupt.flac": "unreadable",
        "src/readme.txt": "unsupported_format",
        "src/zero_frames.wav": "empty",
        "src/nan.wav": "non_finite",
    }
    # a truncated WAV decodes what is there (libsndfile's behaviour): it is ingested, shorter
    assert set(pool.manifest.column("source").to_pylist()) == {"src/good.wav", "src/truncated.wav"}
    assert report.files == 7 and report.files_ok == 2
    assert sum(report.errors.values()) == 5


def test_all_inputs_failing_exits_1(tmp_path, capsys):
    from seeing_sound.cli import main

    (tmp_path / "src").mkdir()
    (tmp_path / "src/x.wav").write_bytes(b"garbage")
    assert main(["--quiet", "pool", "build", str(tmp_path / "src"), "--out", str(tmp_path / "pool")]) == 1
    assert "every input file failed" in capsys.readouterr().err


def test_silent_short_and_min_tail(tmp_path):
    src = tmp_path / "src"
    write_audio(src / "silence.wav", np.zeros(3 * SR, np.float32), SR)
    write_audio(src / "blip.wav", noise(0.2, SR, amp=0.3), SR)  # shorter than one 0.4 s block
    write_audio(src / "tail.wav", noise(5.5, SR), SR)
    _build(src, tmp_path / "pool")
    m = {(r["source"], r["chunk_in_source"]): r for r in AudioPool.open(tmp_path / "pool").manifest.to_pylist()}
    assert m[("src/silence.wav", 0)]["silent"] and m[("src/silence.wav", 0)]["loudness_lufs"] == -np.inf
    blip = m[("src/blip.wav", 0)]
    assert blip["short"] and not blip["silent"] and np.isfinite(blip["loudness_lufs"])
    assert len([k for k in m if k[0] == "src/tail.wav"]) == 2
    report = _build(src, tmp_path / "pool2", min_tail_seconds=1.0)
    m2 = AudioPool.open(tmp_path / "pool2").manifest.to_pylist()
    assert [r["chunk_in_source"] for r in m2 if r["source"] == "src/tail.wav"] == [0]
    assert report.errors == {"too_short": 1}  # the 0.2 s blip has no chunk left


def test_descriptions_by_path_name_and_stem(tmp_path):
    src = tmp_path / "sfx"
    for name in ("rain.wav", "sub/bell.flac", "dog.wav"):
        write_audio(src / name, noise(1, SR), SR)
    desc = tmp_path / "d.csv"
    desc.write_text(
        'fname,description,labels\nrain.wav,Rain on a roof,"Rain,Water"\nsub/bell.flac,A church bell,Bell\n'
    )
    jl = tmp_path / "d.jsonl"
    jl.write_text(json.dumps({"stem": "dog", "labels": ["Dog", "Bark"]}) + "\n")
    _build(src, tmp_path / "p1", descriptions=desc)
    rows = {r["source"]: r for r in AudioPool.open(tmp_path / "p1").manifest.to_pylist()}
    assert rows["sfx/rain.wav"]["description"] == "Rain on a roof" and rows["sfx/rain.wav"]["labels"] == [
        "Rain",
        "Water",
    ]
    assert rows["sfx/sub/bell.flac"]["labels"] == ["Bell"]
    assert rows["sfx/dog.wav"]["description"] is None
    _build(src, tmp_path / "p2", descriptions=jl)
    rows = {r["source"]: r for r in AudioPool.open(tmp_path / "p2").manifest.to_pylist()}
    assert rows["sfx/dog.wav"]["labels"] == ["Dog", "Bark"]


def test_streaming_block_size_does_not_change_output(tmp_path, monkeypatch):
    write_audio(tmp_path / "src/a.wav", noise(23, 44100, channels=2, seed=3), 44100)
    _build(tmp_path / "src", tmp_path / "big")
    monkeypatch.setattr(audio_io, "BLOCK_FRAMES", 1000)  # a long file read in many small blocks
    _build(tmp_path / "src", tmp_path / "small")
    a = AudioPool.open(tmp_path / "big").chunks(range(5))
    b = AudioPool.open(tmp_path / "small").chunks(range(5))
    np.testing.assert_array_equal(a, b)


def test_chunk_reads_and_bounds(tmp_path):
    for i in range(5):
        write_audio(tmp_path / f"src/{i}.wav", tone(7, SR, freq=200 + 100 * i), SR)
    _build(tmp_path / "src", tmp_path / "pool", shard_files=2)
    pool = AudioPool.open(tmp_path / "pool")
    assert len(pool) == 10 and len(pool.info["shards"]) == 3
    ids = [9, 0, 4, 4, 7]
    np.testing.assert_array_equal(pool.chunks(ids), np.stack([pool.chunk(i) for i in ids]))
    with pytest.raises(IndexError):
        pool.chunk(10)
    with pytest.raises(SeeingSoundError, match="not an audio pool"):
        AudioPool.open(tmp_path / "src")


def test_resume_skips_done_and_refuses_changed_settings(tmp_path):
    for i in range(3):
        write_audio(tmp_path / f"src/{i}.wav", noise(2, SR, seed=i), SR)
    first = _build(tmp_path / "src", tmp_path / "pool", shard_files=1)
    assert (first.shards_run, first.shards_skipped) == (3, 0)
    again = _build(tmp_path / "src", tmp_path / "pool", shard_files=1)
    assert (again.shards_run, again.shards_skipped) == (0, 3)
    with pytest.raises(StageMismatchError):
        _build(tmp_path / "src", tmp_path / "pool", shard_files=1, chunk_seconds=2.0)
    redo = _build(tmp_path / "src", tmp_path / "pool", shard_files=1, chunk_seconds=2.0, overwrite=True)
    assert redo.shards_run == 3 and redo.chunks == 3 * 1


def test_workers_give_identical_pool(tmp_path):
    for i in range(4):
        write_audio(tmp_path / f"src/{i}.flac", noise(6, 22050, seed=i, channels=2), 22050)
    _build(tmp_path / "src", tmp_path / "w1", shard_files=1, workers=1)
    _build(tmp_path / "src", tmp_path / "w2", shard_files=1, workers=2)
    for rel in ["pool.json"] + [
        f"{d}/shard-00000{i}.{e}"
        for i in range(4)
        for d, e in (("chunks", "i16"), ("manifest", "parquet"), ("errors", "parquet"))
    ]:
        assert (tmp_path / "w1" / rel).read_bytes() == (tmp_path / "w2" / rel).read_bytes(), rel


def test_hot_float_sources_are_not_clipped(tmp_path):
    x = tone(2, SR, amp=3.0)  # a float WAV far above full scale
    write_audio(tmp_path / "src/hot.wav", x, SR, subtype="FLOAT")
    _build(tmp_path / "src", tmp_path / "pool")
    pool = AudioPool.open(tmp_path / "pool")
    row = pool.manifest.to_pylist()[0]
    assert row["pcm_scale"] == pytest.approx(3.0, rel=1e-3) and row["peak"] == pytest.approx(3.0, rel=1e-3)
    np.testing.assert_allclose(pool.chunk(0)[: 2 * SR], x, atol=3.0 / 32767)
